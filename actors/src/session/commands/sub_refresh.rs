//! `sub_refresh`: the client presents a new subscription token for a channel it holds by
//! token, before that token's `exp`. Not refreshed by `exp` plus `expired_close_delay`, the
//! subscription ends with an `unsubscribe` push, code 2501 (the SDK resubscribes).

use actix_web_actors::ws::WebsocketContext;
use rpc_crypto_proto::protocol::{Reply, SubRefreshRequest, SubRefreshResult};
use rpc_crypto_proto::{Disconnect, ErrorReply};

use super::subscribe::check_token;
use crate::session::identity::{self, unix_now};
use crate::session::Session;

pub(super) fn handle(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    id: u32,
    req: SubRefreshRequest,
) -> Result<(), Disconnect> {
    if req.channel.is_empty() || req.token.is_empty() {
        let error = ErrorReply::BAD_REQUEST.with_message("channel and token required");
        return session.reply_error(id, error);
    }
    if !session.subscriptions.contains(&req.channel) {
        let error = ErrorReply::PERMISSION_DENIED.with_message("not subscribed to the channel");
        return session.reply_error(id, error);
    }
    let expires_at = match check_token(session, &req.channel, &req.token)? {
        Ok(expires_at) => expires_at,
        Err(error) => return session.reply_error(id, error),
    };
    session.arm_subscription_expiry(ctx, req.channel, expires_at);
    let (expires, ttl) = identity::lifetime(expires_at, unix_now());
    session.reply(Reply {
        id,
        sub_refresh: Some(SubRefreshResult { expires, ttl }),
        ..Reply::default()
    })
}
