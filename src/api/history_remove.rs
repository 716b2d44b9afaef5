//! `history_remove {channel}`: drops a channel's kept publications. Its stream position (epoch
//! and offset) stays, so subscribers that recover later learn that they missed publications
//! rather than being handed a new stream. A namespace without history answers 108.

use rpc_crypto_actors::router::RemoveHistory;
use serde::Deserialize;

use super::{ask, channel_options, ApiError, ApiMethod, ApiState, Empty};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryRemoveRequest {
    pub channel: String,
}

impl ApiMethod for HistoryRemoveRequest {
    type Output = Empty;

    async fn apply(self, state: &ApiState) -> Result<Empty, ApiError> {
        // The Router checks as well; this keeps the answer for a bad name the same as elsewhere.
        channel_options(state, &self.channel)?;
        ask(
            &state.router,
            RemoveHistory {
                channel: self.channel,
            },
        )
        .await??;
        Ok(Empty {})
    }
}
