//! `subscribe`: checks the channel's rules, then hands the subscription to the Router, which
//! queues the result before the channel's first publication.

use actix::prelude::*;
use actix_web_actors::ws::WebsocketContext;
use rpc_crypto_proto::codec::encode_reply;
use rpc_crypto_proto::protocol::{Reply, SubscribeRequest, SubscribeResult};
use rpc_crypto_proto::{Disconnect, ErrorReply};

use crate::router::Subscribe;
use crate::session::Session;

pub(super) fn handle(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    id: u32,
    req: SubscribeRequest,
) -> Result<(), Disconnect> {
    let config = session.config.clone();
    let policy = match config.rules.policy(&req.channel) {
        Ok(policy) => policy,
        Err(error) => return session.reply_error(id, error),
    };
    if !policy.may_subscribe(&session.user) {
        return session.reply_error(id, ErrorReply::PERMISSION_DENIED);
    }
    if session.subscriptions.contains(&req.channel) {
        return session.reply_error(id, ErrorReply::ALREADY_SUBSCRIBED);
    }
    if session.subscriptions.len() >= config.client.channel_limit {
        return session.reply_error(id, ErrorReply::LIMIT_EXCEEDED);
    }
    // Channels without history are not recoverable: a `recover` flag is answered with
    // `recoverable: false`, which tells the SDK not to try again.
    let reply = encode_reply(
        session.format,
        &Reply {
            id,
            subscribe: Some(SubscribeResult::default()),
            ..Reply::default()
        },
    );
    let subscribe = Subscribe {
        key: session.registered().key,
        channel: req.channel.clone(),
        format: session.format,
        outbox: session.outbox.clone(),
        close: ctx.address().recipient(),
        reply,
    };
    match session.router.try_send(subscribe) {
        Ok(()) => {
            session.subscriptions.insert(req.channel);
            Ok(())
        }
        Err(SendError::Full(_)) => session.reply_error(id, ErrorReply::TOO_MANY_REQUESTS),
        Err(SendError::Closed(_)) => Err(Disconnect::SERVER_ERROR),
    }
}
