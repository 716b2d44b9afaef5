//! `unsubscribe {user, channel, client?}`: unsubscribes the live sessions of `user` (or the one
//! session `client`) from a channel; each client gets an `unsubscribe` push with code 2000.
//! Answers `{"sessions": n}`: the sessions reached, subscribed to the channel or not.

use rpc_crypto_actors::registry::Control;
use serde::Deserialize;

use super::subscribe::{control_sessions, Reached};
use super::{channel_options, ApiError, ApiMethod, ApiState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeRequest {
    #[serde(default)]
    pub user: Option<String>,
    pub channel: String,
    #[serde(default)]
    pub client: Option<String>,
}

impl ApiMethod for UnsubscribeRequest {
    type Output = Reached;

    async fn apply(self, state: &ApiState) -> Result<Reached, ApiError> {
        channel_options(state, &self.channel)?;
        let control = Control::Unsubscribe {
            channel: self.channel,
        };
        control_sessions(state, self.user, self.client, control).await
    }
}
