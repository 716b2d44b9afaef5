//! `subscribe`: checks the channel's rules, then hands the subscription to the Router, which
//! answers it (recovering missed publications from history when asked) before the channel's
//! next publication.

use actix::prelude::*;
use actix_web_actors::ws::WebsocketContext;
use rpc_crypto_proto::protocol::SubscribeRequest;
use rpc_crypto_proto::{Disconnect, ErrorReply};

use crate::router::{Answer, ChannelRequest, Subscribe};
use crate::session::Session;

/// Subscribe flag 2: answer error 112 rather than `recovered: false`.
const FLAG_STRICT_RECOVERY: i64 = 2;

/// What the Router needs of a subscribe request.
pub(super) fn channel_request(req: SubscribeRequest) -> ChannelRequest {
    ChannelRequest {
        recover: req.recover.then_some((req.offset, req.epoch)),
        recoverable: req.recoverable,
        positioned: req.positioned,
        join_leave: req.join_leave,
        strict: req.flag & FLAG_STRICT_RECOVERY != 0,
        channel: req.channel,
    }
}

/// The Router message that subscribes this session to `channels`, answered with `answer`.
pub(super) fn to_router(
    session: &Session,
    ctx: &mut WebsocketContext<Session>,
    channels: Vec<ChannelRequest>,
    answer: Answer,
) -> Subscribe {
    Subscribe {
        key: session.key(),
        client: session.info(),
        format: session.format,
        outbox: session.outbox.clone(),
        notify: Session::recipients(ctx),
        channels,
        answer,
    }
}

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
    let channel = req.channel.clone();
    let subscribe = to_router(
        session,
        ctx,
        vec![channel_request(req)],
        Answer::Subscribe(id),
    );
    match session.router.try_send(subscribe) {
        Ok(()) => {
            session.subscriptions.insert(channel);
            Ok(())
        }
        Err(SendError::Full(_)) => session.reply_error(id, ErrorReply::TOO_MANY_REQUESTS),
        Err(SendError::Closed(_)) => Err(Disconnect::SERVER_ERROR),
    }
}
