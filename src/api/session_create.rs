//! `session_create {owner, lifetime}` (also `POST /session/create`, the original RPC-Crypto
//! gateway's SessionCreate, whose `owner_id` is taken as `owner`): a backend creates a session
//! for its user `owner` that lasts `lifetime` seconds (1 s to 30 days, else 107), and hands the
//! answer's `session_key` to its client.
//!
//! The client connects with `{"connect":{"token":"<session_key>"}}` and is that session: its
//! ConnectResult's `client` is `id`, with `expires` and `ttl`. At `expires_at` (unix seconds) the
//! connection is closed with 3005 and the key no longer connects (3500).

use std::time::Duration;

use rpc_crypto_actors::channel::user_name_problem;
use rpc_crypto_actors::registry::CreateSession;
use serde::{Deserialize, Serialize};

use super::{ask, ApiError, ApiMethod, ApiState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionCreateRequest {
    #[serde(alias = "owner_id")]
    pub owner: String,
    /// Seconds.
    pub lifetime: u64,
}

#[derive(Debug, Serialize)]
pub struct SessionCreateResult {
    pub id: String,
    pub session_key: String,
    pub expires_at: u64,
}

impl ApiMethod for SessionCreateRequest {
    type Output = SessionCreateResult;

    async fn apply(self, state: &ApiState) -> Result<SessionCreateResult, ApiError> {
        if let Some(problem) = user_name_problem(&self.owner) {
            return Err(ApiError::BadRequest(format!("owner {problem}")));
        }
        let create = CreateSession {
            owner: self.owner,
            lifetime: Duration::from_secs(self.lifetime),
        };
        let created = ask(&state.registry, create).await??;
        Ok(SessionCreateResult {
            id: created.id.to_string(),
            session_key: created.key,
            expires_at: created.expires_at,
        })
    }
}
