//! Orders from the server API, passed on by the Registry ([`Control`]): server-side subscribe
//! and unsubscribe, and disconnect.

use actix::prelude::*;

use super::identity::UNSUBSCRIBE_SERVER;
use super::{Session, State};
use crate::registry::Control;
use crate::router::{Answer, ChannelRequest};

impl Handler<Control> for Session {
    type Result = ();

    fn handle(&mut self, msg: Control, ctx: &mut Self::Context) {
        if self.state != State::Connected {
            return;
        }
        match msg {
            Control::Subscribe { channel } => {
                // The server's grant needs no permission, only a channel that exists; the client
                // learns of it from a `subscribe` push, queued before the channel's publications.
                if self.subscriptions.contains(&channel)
                    || self.config.rules.policy(&channel).is_err()
                {
                    return;
                }
                if self.subscriptions.len() >= self.config.client.channel_limit {
                    log::warn!(
                        session = self.log_id(), user = self.user.as_str();
                        "server-side subscribe over client.channel_limit: not made"
                    );
                    return;
                }
                let request = ChannelRequest {
                    channel: channel.clone(),
                    recover: None,
                    recoverable: false,
                    positioned: false,
                    join_leave: false,
                    strict: false,
                    expires_in: None,
                };
                let subscribe = self.subscribe_message(ctx, vec![request], Answer::Push);
                if self.router.try_send(subscribe).is_ok() {
                    self.subscriptions.insert(channel);
                }
            }
            Control::Unsubscribe { channel } => {
                self.end_subscription(&channel, UNSUBSCRIBE_SERVER, "server unsubscribe");
            }
            Control::Disconnect(disconnect) => self.close(ctx, disconnect, true),
        }
    }
}
