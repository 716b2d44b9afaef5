//! `presence_stats {channel}`: how many clients, and distinct users, are subscribed to a channel
//! (on a connection): `{"num_clients":..,"num_users":..}`, zeros included. Anonymous clients
//! count as one user. A namespace without `presence` answers 108.

use rpc_crypto_actors::router::PresenceStats;
use serde::{Deserialize, Serialize};

use super::presence::check_presence;
use super::{ask, ApiError, ApiMethod, ApiState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceStatsRequest {
    pub channel: String,
}

#[derive(Debug, Serialize)]
pub struct PresenceStatsResult {
    pub num_clients: u32,
    pub num_users: u32,
}

impl ApiMethod for PresenceStatsRequest {
    type Output = PresenceStatsResult;

    async fn apply(self, state: &ApiState) -> Result<PresenceStatsResult, ApiError> {
        check_presence(state, &self.channel)?;
        let stats = ask(
            &state.router,
            PresenceStats {
                channel: self.channel,
            },
        )
        .await?;
        Ok(PresenceStatsResult {
            num_clients: stats.num_clients,
            num_users: stats.num_users,
        })
    }
}
