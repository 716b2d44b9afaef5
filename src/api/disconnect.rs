//! `disconnect {user?, client?, disconnect?: {code, reason?}}`: ends the sessions of `user` (or
//! the one session `client`) with a close frame of `code` and `reason`, after what is already
//! queued for them is written; by default 3503 "force disconnect". A parked session of theirs
//! ends too. Answers `{"sessions": n}`.
//!
//! `code` must be in 3000–4999 (the application range the SDKs act on: they reconnect after
//! 3000–3499 and 4000–4499) and `reason` fit a close frame (at most 120 bytes); otherwise 107.

use std::borrow::Cow;

use rpc_crypto_actors::registry::Control;
use rpc_crypto_proto::{Disconnect, ErrorReply};
use serde::Deserialize;

use super::subscribe::{control_sessions, Reached};
use super::{ApiError, ApiMethod, ApiState};

/// The longest close reason taken: a close frame's payload is at most 125 bytes, two of which
/// are the code.
pub const MAX_REASON_LEN: usize = 120;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisconnectRequest {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub disconnect: Option<DisconnectSpec>,
}

/// The close code and reason.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisconnectSpec {
    pub code: u32,
    #[serde(default)]
    pub reason: String,
}

impl ApiMethod for DisconnectRequest {
    type Output = Reached;

    async fn apply(self, state: &ApiState) -> Result<Reached, ApiError> {
        let disconnect = match self.disconnect {
            None => Disconnect::FORCE_DISCONNECT,
            Some(spec) => {
                let code = u16::try_from(spec.code)
                    .ok()
                    .filter(|code| (3000..=4999).contains(code))
                    .ok_or_else(|| {
                        ErrorReply::BAD_REQUEST.with_message("disconnect code must be 3000-4999")
                    })?;
                if spec.reason.len() > MAX_REASON_LEN {
                    return Err(ErrorReply::BAD_REQUEST
                        .with_message("disconnect reason longer than 120 bytes")
                        .into());
                }
                Disconnect {
                    code,
                    reason: Cow::Owned(spec.reason),
                }
            }
        };
        control_sessions(
            state,
            self.user,
            self.client,
            Control::Disconnect(disconnect),
        )
        .await
    }
}
