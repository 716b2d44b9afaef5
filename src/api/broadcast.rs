//! `broadcast {channels, data}`: `publish` of the same data on each channel, with one answer per
//! channel in the order given: `{"result":{}}` or `{"error":{...}}`. One channel's failure does
//! not stop the others.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::publish::{checked_data, publish};
use super::{ApiError, ApiMethod, ApiState, Empty, ErrorBody};
use rpc_crypto_proto::ErrorReply;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BroadcastRequest {
    pub channels: Vec<String>,
    pub data: Box<RawValue>,
}

#[derive(Debug, Serialize)]
pub struct BroadcastResult {
    pub responses: Vec<ChannelResponse>,
}

/// The answer for one channel.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelResponse {
    Result(Empty),
    Error(ErrorBody),
}

impl ApiMethod for BroadcastRequest {
    type Output = BroadcastResult;

    async fn apply(self, state: &ApiState) -> Result<BroadcastResult, ApiError> {
        if self.channels.is_empty() {
            return Err(ErrorReply::BAD_REQUEST
                .with_message("channels required")
                .into());
        }
        let data = checked_data(&self.data)?;
        let mut responses = Vec::with_capacity(self.channels.len());
        for channel in self.channels {
            responses.push(match publish(state, channel, data.clone()).await {
                Ok(()) => ChannelResponse::Result(Empty {}),
                Err(error) => ChannelResponse::Error(error.body()),
            });
        }
        Ok(BroadcastResult { responses })
    }
}
