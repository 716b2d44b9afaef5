//! `subscribe`: checks the channel's rules (and the subscription token, which private `$`
//! channels need and which lets a client into any channel of a namespace), then hands the subscription to the Router, which
//! answers it (recovering missed publications from history when asked) before the channel's
//! next publication.

use actix::prelude::*;
use actix_web_actors::ws::WebsocketContext;
use rpc_crypto_proto::protocol::SubscribeRequest;
use rpc_crypto_proto::{Disconnect, ErrorReply};

use crate::router::{Answer, ChannelRequest};
use crate::session::identity::{self, unix_now};
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
        expires_in: None,
        channel: req.channel,
    }
}

/// Checks a subscription token for `channel`: its expiry (unix seconds) when it is good, the
/// error to answer when it does not fit, or the disconnect for a forged or malformed one.
pub(super) fn check_token(
    session: &Session,
    channel: &str,
    token: &str,
) -> Result<Result<Option<u64>, ErrorReply>, Disconnect> {
    let claims = match session.config.tokens.subscription(token, unix_now()) {
        Ok(claims) => claims,
        Err(error) => return identity::subscription_refusal(session, error).map(Err),
    };
    if claims.channel != channel {
        let error = ErrorReply::PERMISSION_DENIED.with_message("the token is for another channel");
        return Ok(Err(error));
    }
    if claims.user != session.user {
        let error = ErrorReply::PERMISSION_DENIED.with_message("the token is for another user");
        return Ok(Err(error));
    }
    Ok(Ok(claims.expires_at))
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
    let (granted, expires_at) = if req.token.is_empty() {
        (false, None)
    } else {
        match check_token(session, &req.channel, &req.token)? {
            Ok(expires_at) => (true, expires_at),
            Err(error) => return session.reply_error(id, error),
        }
    };
    if !policy.may_subscribe(&session.user, granted) {
        return session.reply_error(id, ErrorReply::PERMISSION_DENIED);
    }
    if session.subscriptions.contains(&req.channel) {
        return session.reply_error(id, ErrorReply::ALREADY_SUBSCRIBED);
    }
    if session.subscriptions.len() >= config.client.channel_limit {
        return session.reply_error(id, ErrorReply::LIMIT_EXCEEDED);
    }
    let channel = req.channel.clone();
    let mut request = channel_request(req);
    request.expires_in = expires_at.map(|at| identity::lifetime(Some(at), unix_now()).1);
    let subscribe = session.subscribe_message(ctx, vec![request], Answer::Subscribe(id));
    match session.router.try_send(subscribe) {
        Ok(()) => {
            session.subscriptions.insert(channel.clone());
            session.arm_subscription_expiry(ctx, channel, expires_at);
            Ok(())
        }
        Err(SendError::Full(_)) => session.reply_error(id, ErrorReply::TOO_MANY_REQUESTS),
        Err(SendError::Closed(_)) => Err(Disconnect::SERVER_ERROR),
    }
}
