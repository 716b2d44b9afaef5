//! `info {}`: this server's version, uptime and counts, from the Registry (sessions) and the
//! Router (channels and history).

use rpc_crypto_actors::registry::GetRegistryInfo;
use rpc_crypto_actors::router::GetRouterInfo;
use serde::{Deserialize, Serialize};

use super::{ask, ApiError, ApiMethod, ApiState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfoRequest {}

#[derive(Debug, Serialize)]
pub struct InfoResult {
    pub version: &'static str,
    pub uptime_seconds: u64,
    /// Sessions on a connection.
    pub sessions: usize,
    /// Sessions waiting for their client to resume them.
    pub parked: usize,
    /// Distinct users with a session.
    pub users: usize,
    /// Sessions created with `session_create` whose lifetime has not ended.
    pub created_sessions: usize,
    /// Channels with a subscriber or a kept stream position.
    pub channels: usize,
    pub subscriptions: usize,
    pub history_publications: usize,
    pub history_bytes: usize,
}

impl ApiMethod for InfoRequest {
    type Output = InfoResult;

    async fn apply(self, state: &ApiState) -> Result<InfoResult, ApiError> {
        let registry = ask(&state.registry, GetRegistryInfo).await?;
        let router = ask(&state.router, GetRouterInfo).await?;
        Ok(InfoResult {
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: state.started.elapsed().as_secs(),
            sessions: registry.sessions,
            parked: registry.parked,
            users: registry.users,
            created_sessions: registry.created,
            channels: router.channels,
            subscriptions: router.subscriptions,
            history_publications: router.history_publications,
            history_bytes: router.history_bytes,
        })
    }
}
