//! `publish`: checks the channel's rules and the data ([`JsonText`]: UTF-8 JSON, one line, nested
//! at most 64 deep, so every JSON subscriber can read it), then hands the publication to the
//! Router.

use actix::prelude::*;
use rpc_crypto_proto::json::{DataError, JsonText};
use rpc_crypto_proto::protocol::{PublishRequest, PublishResult, Reply};
use rpc_crypto_proto::{Disconnect, ErrorReply};

use crate::router::Publish;
use crate::session::Session;

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
    let data = match JsonText::parse(req.data) {
        Ok(data) => data,
        Err(error) => return session.reply_error(id, bad_data(&error)),
    };
    let publish = Publish::new(req.channel, data);
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

/// Error 107 naming what is wrong with the data (never quoting it).
pub(crate) fn bad_data(error: &DataError) -> ErrorReply {
    let message = match error {
        // serde_json's message names a line and column, not the data.
        DataError::NotJson(_) => "publication data must be JSON".to_owned(),
        other => other.to_string(),
    };
    ErrorReply::BAD_REQUEST.with_message(message)
}
