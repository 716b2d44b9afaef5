//! `presence {channel}`: who is subscribed to a channel, by client id: `{"presence":{"<client>":
//! {"user":..,"client":..,"conn_info"?:..}}}`. Only sessions on a connection are present (parked
//! ones are not). A namespace without `presence` answers 108, as a client's `presence` does.

use std::collections::HashMap;

use rpc_crypto_actors::router::Presence;
use rpc_crypto_proto::protocol::ClientInfo;
use rpc_crypto_proto::ErrorReply;
use serde::{Deserialize, Serialize};

use super::{ask, channel_options, ApiError, ApiMethod, ApiState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceRequest {
    pub channel: String,
}

#[derive(Debug, Serialize)]
pub struct PresenceResult {
    /// Always present, `{}` when nobody is (the protocol type leaves an empty map out).
    pub presence: HashMap<String, ClientInfo>,
}

impl ApiMethod for PresenceRequest {
    type Output = PresenceResult;

    async fn apply(self, state: &ApiState) -> Result<PresenceResult, ApiError> {
        check_presence(state, &self.channel)?;
        let result = ask(
            &state.router,
            Presence {
                channel: self.channel,
            },
        )
        .await?;
        Ok(PresenceResult {
            presence: result.presence,
        })
    }
}

/// The channel exists and keeps presence (else 102, 107 or 108).
pub(super) fn check_presence(state: &ApiState, channel: &str) -> Result<(), ApiError> {
    if !channel_options(state, channel)?.presence {
        return Err(ErrorReply::NOT_AVAILABLE
            .with_message("the channel keeps no presence")
            .into());
    }
    Ok(())
}
