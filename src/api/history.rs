//! `history {channel, limit?, since?: {offset, epoch}, reverse?}`: a channel's kept publications
//! and its stream position: `{"publications":[{"data":..,"offset":..}],"epoch":..,"offset":..}`.
//!
//! `limit` as in the client's `history` command (and Centrifugo): absent or 0 for the position
//! only, -1 for every publication kept, N for at most N; below -1 is 107. `since` continues from a
//! position (after it, or before it with `reverse`); a position of another epoch or past the top
//! is 112. A namespace without history answers 108.

use rpc_crypto_actors::history::Query;
use rpc_crypto_actors::router::History;
use rpc_crypto_proto::protocol::Publication;
use rpc_crypto_proto::ErrorReply;
use serde::{Deserialize, Serialize};

use super::{ask, channel_options, ApiError, ApiMethod, ApiState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryRequest {
    pub channel: String,
    #[serde(default)]
    pub limit: i64,
    #[serde(default)]
    pub since: Option<StreamPosition>,
    #[serde(default)]
    pub reverse: bool,
}

/// A position in a channel's stream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamPosition {
    pub offset: u64,
    pub epoch: String,
}

#[derive(Debug, Serialize)]
pub struct HistoryResult {
    /// Always present, `[]` when none (the protocol type leaves an empty list out).
    pub publications: Vec<Publication>,
    pub epoch: String,
    pub offset: u64,
}

impl ApiMethod for HistoryRequest {
    type Output = HistoryResult;

    async fn apply(self, state: &ApiState) -> Result<HistoryResult, ApiError> {
        if channel_options(state, &self.channel)?.history().is_none() {
            return Err(ErrorReply::NOT_AVAILABLE
                .with_message("the channel keeps no history")
                .into());
        }
        let limit = match self.limit {
            -1 => None,
            n => Some(usize::try_from(n).map_err(|_| {
                ErrorReply::BAD_REQUEST
                    .with_message("limit must be -1 (all), 0 (position only) or a count")
            })?),
        };
        let query = Query {
            limit,
            since: self.since.map(|p| (p.offset, p.epoch)),
            reverse: self.reverse,
        };
        let history = ask(
            &state.router,
            History {
                channel: self.channel,
                query,
            },
        )
        .await??;
        Ok(HistoryResult {
            publications: history.publications,
            epoch: history.epoch,
            offset: history.offset,
        })
    }
}
