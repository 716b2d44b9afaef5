//! `unsubscribe`: the Router removes the subscription and then queues the result, so no
//! publication of the channel follows it.

use actix::prelude::*;
use rpc_crypto_proto::protocol::{Reply, UnsubscribeRequest, UnsubscribeResult};
use rpc_crypto_proto::{Disconnect, ErrorReply};

use crate::encode;
use crate::router::Unsubscribe;
use crate::session::Session;

pub(super) fn handle(
    session: &mut Session,
    id: u32,
    req: UnsubscribeRequest,
) -> Result<(), Disconnect> {
    let reply = Reply {
        id,
        unsubscribe: Some(UnsubscribeResult {}),
        ..Reply::default()
    };
    if req.channel.is_empty() {
        return session.reply_error(id, ErrorReply::BAD_REQUEST.with_message("channel required"));
    }
    // Not subscribed: nothing to undo, and Centrifuge answers success.
    if !session.subscriptions.contains(&req.channel) {
        return session.reply(reply);
    }
    let unsubscribe = Unsubscribe {
        key: session.registered().key,
        channel: req.channel.clone(),
        reply: encode::reply(session.format, &reply),
    };
    match session.router.try_send(unsubscribe) {
        Ok(()) => {
            session.subscriptions.remove(&req.channel);
            session.subscription_expiry.remove(&req.channel);
            Ok(())
        }
        // The subscription stays as it was: the client may try again.
        Err(SendError::Full(_)) => session.reply_error(id, ErrorReply::TOO_MANY_REQUESTS),
        Err(SendError::Closed(_)) => Err(Disconnect::SERVER_ERROR),
    }
}
