//! `publish`: checks the channel's rules and that the data is JSON (so JSON subscribers can
//! always read it), then hands the publication to the Router.

use actix::prelude::*;
use bytes::Bytes;
use rpc_crypto_proto::protocol::{PublishRequest, PublishResult, Reply};
use rpc_crypto_proto::{Disconnect, ErrorReply, Format};

use crate::router::Publish;
use crate::session::Session;

/// Data without raw newlines, so that it fits one JSON line. In valid JSON a raw newline can
/// only be white space between tokens (inside strings it must be escaped), so a space does as well.
fn one_line(data: Bytes) -> Bytes {
    if !data.contains(&b'\n') {
        return data;
    }
    let spaced: Vec<u8> = data
        .iter()
        .map(|&b| if b == b'\n' { b' ' } else { b })
        .collect();
    Bytes::from(spaced)
}

pub(super) fn handle(
    session: &mut Session,
    id: u32,
    req: PublishRequest,
) -> Result<(), Disconnect> {
    let config = session.config.clone();
    let policy = match config.rules.policy(&req.channel) {
        Ok(policy) => policy,
        Err(error) => return session.reply_error(id, error),
    };
    let subscribed = session.subscriptions.contains(&req.channel);
    if !policy.may_publish(&session.user, subscribed) {
        return session.reply_error(id, ErrorReply::PERMISSION_DENIED);
    }
    if req.data.is_empty() {
        return session.reply_error(id, ErrorReply::BAD_REQUEST.with_message("data required"));
    }
    // JSON clients' data was parsed as JSON, within one line, on the way in; Protobuf clients'
    // is checked here.
    if session.format == Format::Protobuf
        && serde_json::from_slice::<serde::de::IgnoredAny>(&req.data).is_err()
    {
        return session.reply_error(
            id,
            ErrorReply::BAD_REQUEST.with_message("publication data must be JSON"),
        );
    }
    let publish = Publish {
        channel: req.channel,
        data: one_line(req.data),
    };
    match session.router.try_send(publish) {
        Ok(()) => session.reply(Reply {
            id,
            publish: Some(PublishResult {}),
            ..Reply::default()
        }),
        Err(SendError::Full(_)) => session.reply_error(id, ErrorReply::TOO_MANY_REQUESTS),
        Err(SendError::Closed(_)) => Err(Disconnect::SERVER_ERROR),
    }
}
