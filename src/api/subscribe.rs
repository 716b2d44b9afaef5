//! `subscribe {user, channel, client?}`: subscribes the live sessions of `user` (or only the one
//! whose id is `client`; `client` alone addresses that session whoever its user is) to a channel,
//! as the server: no permission applies. Each session tells its client with a `subscribe` push,
//! queued before the channel's publications. Answers `{"sessions": n}`, the sessions reached.
//!
//! A session already subscribed to the channel counts as reached and stays as it is. The API
//! refuses channels of unknown namespaces (102) itself: the sessions would drop the order
//! silently.

use rpc_crypto_actors::registry::{Control, ControlSessions};
use serde::{Deserialize, Serialize};

use super::{ask, channel_options, non_empty, ApiError, ApiMethod, ApiState};
use rpc_crypto_proto::ErrorReply;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRequest {
    #[serde(default)]
    pub user: Option<String>,
    pub channel: String,
    #[serde(default)]
    pub client: Option<String>,
}

/// How many sessions an order reached.
#[derive(Debug, Serialize)]
pub struct Reached {
    pub sessions: usize,
}

impl ApiMethod for SubscribeRequest {
    type Output = Reached;

    async fn apply(self, state: &ApiState) -> Result<Reached, ApiError> {
        channel_options(state, &self.channel)?;
        let control = Control::Subscribe {
            channel: self.channel,
        };
        control_sessions(state, self.user, self.client, control).await
    }
}

/// Passes `control` to the sessions of `user` and/or `client` (at least one required: 107).
pub(super) async fn control_sessions(
    state: &ApiState,
    user: Option<String>,
    client: Option<String>,
    control: Control,
) -> Result<Reached, ApiError> {
    let (user, client) = (non_empty(user), non_empty(client));
    if user.is_none() && client.is_none() {
        return Err(ErrorReply::BAD_REQUEST
            .with_message("user or client required")
            .into());
    }
    let order = ControlSessions {
        user,
        client,
        control,
    };
    let sessions = ask(&state.registry, order).await?;
    Ok(Reached { sessions })
}
