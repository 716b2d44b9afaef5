//! `presence` and `presence_stats`: who is subscribed to a channel (sessions on a connection;
//! parked sessions are not present), from the Router.

use actix_web_actors::ws::WebsocketContext;
use rpc_crypto_proto::protocol::{PresenceRequest, PresenceStatsRequest, Reply};
use rpc_crypto_proto::{Disconnect, ErrorReply};

use super::ask_router;
use crate::router::{Presence, PresenceStats};
use crate::session::Session;

/// Checks that the client may ask about the channel's presence.
fn check(session: &Session, channel: &str) -> Result<(), ErrorReply> {
    let policy = session.config.rules.policy(channel)?;
    if !policy.options.presence {
        return Err(ErrorReply::NOT_AVAILABLE.with_message("the channel keeps no presence"));
    }
    let subscribed = session.subscriptions.contains(channel);
    if !policy.may_read_presence(&session.user, subscribed) {
        return Err(ErrorReply::PERMISSION_DENIED);
    }
    Ok(())
}

pub(super) fn handle(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    id: u32,
    req: PresenceRequest,
) -> Result<(), Disconnect> {
    if let Err(error) = check(session, &req.channel) {
        return session.reply_error(id, error);
    }
    let ask = Presence {
        channel: req.channel,
    };
    ask_router(session, ctx, id, ask, move |presence| {
        Ok(Reply {
            id,
            presence: Some(presence),
            ..Reply::default()
        })
    })
}

pub(super) fn handle_stats(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    id: u32,
    req: PresenceStatsRequest,
) -> Result<(), Disconnect> {
    if let Err(error) = check(session, &req.channel) {
        return session.reply_error(id, error);
    }
    let ask = PresenceStats {
        channel: req.channel,
    };
    ask_router(session, ctx, id, ask, move |stats| {
        Ok(Reply {
            id,
            presence_stats: Some(stats),
            ..Reply::default()
        })
    })
}
