//! `history`: a channel's recent publications at their stream positions, from the Router.
//!
//! `limit`: -1 for every publication kept, 0 for only the stream position, N for at most N;
//! below -1 is error 107. `since` continues from a position (after it, or before it with
//! `reverse`); a position of another epoch, or past the stream's top, is error 112.

use actix_web_actors::ws::WebsocketContext;
use rpc_crypto_proto::protocol::{HistoryRequest, Reply};
use rpc_crypto_proto::{Disconnect, ErrorReply};

use super::ask_router;
use crate::history::Query;
use crate::router::History;
use crate::session::Session;

pub(super) fn handle(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    id: u32,
    req: HistoryRequest,
) -> Result<(), Disconnect> {
    let config = session.config.clone();
    let policy = match config.rules.policy(&req.channel) {
        Ok(policy) => policy,
        Err(error) => return session.reply_error(id, error),
    };
    if policy.options.history().is_none() {
        let error = ErrorReply::NOT_AVAILABLE.with_message("the channel keeps no history");
        return session.reply_error(id, error);
    }
    let subscribed = session.subscriptions.contains(&req.channel);
    if !policy.may_read_history(&session.user, subscribed) {
        return session.reply_error(id, ErrorReply::PERMISSION_DENIED);
    }
    let limit = match req.limit {
        -1 => None,
        n if n < -1 => {
            let error = ErrorReply::BAD_REQUEST
                .with_message("limit must be -1 (all), 0 (position only) or a count");
            return session.reply_error(id, error);
        }
        n => Some(n as usize),
    };
    let query = Query {
        limit,
        since: req.since.map(|p| (p.offset, p.epoch)),
        reverse: req.reverse,
    };
    let ask = History {
        channel: req.channel,
        query,
    };
    ask_router(session, ctx, id, ask, move |answer| {
        answer.map(|history| Reply {
            id,
            history: Some(history),
            ..Reply::default()
        })
    })
}
