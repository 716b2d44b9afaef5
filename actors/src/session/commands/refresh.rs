//! `refresh`: the client presents a new connection token before its session's lifetime ends
//! (the SDKs do it at about `exp`, with their `getToken`). The new `exp` moves the end; an
//! expired token gets 109, and a session not refreshed by `exp` plus `expired_close_delay` ends
//! with 3005.

use actix_web_actors::ws::WebsocketContext;
use rpc_crypto_proto::protocol::{RefreshRequest, RefreshResult, Reply};
use rpc_crypto_proto::{Disconnect, ErrorReply};

use crate::auth::TokenError;
use crate::session::identity::{self, unix_now};
use crate::session::{Session, SERVER_VERSION};

pub(super) fn handle(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    id: u32,
    req: RefreshRequest,
) -> Result<(), Disconnect> {
    if session.created {
        let error = ErrorReply::PERMISSION_DENIED
            .with_message("a session created by a backend keeps the lifetime it was given");
        return session.reply_error(id, error);
    }
    if req.token.is_empty() {
        return session.reply_error(id, ErrorReply::BAD_REQUEST.with_message("token required"));
    }
    let now = unix_now();
    let claims = match session.config.tokens.connection(&req.token, now) {
        Ok(claims) => claims,
        Err(TokenError::Expired) => return session.reply_error(id, ErrorReply::TOKEN_EXPIRED),
        Err(error) => {
            log::debug!(
                session = session.log_id(), user = session.user.as_str();
                "refresh refused: {error}"
            );
            return Err(Disconnect::INVALID_TOKEN.with_reason(error.to_string()));
        }
    };
    if claims.user != session.user {
        return Err(Disconnect::INVALID_TOKEN.with_reason("the token is another user's"));
    }
    session.expires_at = claims.expires_at;
    session.arm_expiry(ctx);
    let (expires, ttl) = identity::lifetime(session.expires_at, now);
    session.reply(Reply {
        id,
        refresh: Some(RefreshResult {
            client: session.registered().id.to_string(),
            version: SERVER_VERSION.to_owned(),
            expires,
            ttl,
        }),
        ..Reply::default()
    })
}
