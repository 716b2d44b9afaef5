//! Who a client is, decided at connect: a connection token (JWT), the key of a session a
//! backend created, a client certificate (mutual TLS), or nobody (anonymous). Also the session's
//! lifetime: a token's `exp`, moved by `refresh`, and each subscription token's.
//!
//! Tokens and keys never reach a log line: only the reason a token was refused does.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use actix_web_actors::ws::WebsocketContext;
use bytes::Bytes;
use rpc_crypto_proto::protocol::{Push, Unsubscribe as PushUnsubscribe};
use rpc_crypto_proto::{Disconnect, ErrorReply};

use super::{Session, SessionConfig};
use crate::auth::TokenError;
use crate::channel::user_name_problem;
use crate::encode;
use crate::registry::CREATED_SESSION_KEY_PREFIX;
use crate::router::Unsubscribe;

/// Unsubscribe push code: the server ended the subscription (the client does not resubscribe).
pub(crate) const UNSUBSCRIBE_SERVER: u32 = 2000;
/// Unsubscribe push code: the subscription token expired (the client resubscribes with a new one).
pub(crate) const UNSUBSCRIBE_EXPIRED: u32 = 2501;

/// The current time in unix seconds, as tokens count it.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What a connect's credentials establish before the Registry has a say.
#[derive(Debug)]
pub(super) enum Credentials {
    /// A user from a token or a certificate, or nobody (an empty user).
    Known {
        user: String,
        info: Option<Bytes>,
        expires_at: Option<u64>,
        /// Channels the token subscribes server-side.
        channels: Vec<String>,
    },
    /// The key of a session a backend created: the Registry knows its owner.
    CreatedSession(String),
}

/// Why a connect is refused.
#[derive(Debug)]
pub(super) enum Refusal {
    /// The token expired (109): the client gets a new one and connects again.
    Expired,
    Disconnect(Disconnect),
}

/// Reads the credentials of a connect: its token, and the client certificate's user.
/// `log_id` names the session in the log line of a refused token.
pub(super) fn credentials(
    config: &SessionConfig,
    log_id: &str,
    token: &str,
    certificate_user: Option<&str>,
    now: u64,
) -> Result<Credentials, Refusal> {
    let refuse = |reason: String| {
        Err(Refusal::Disconnect(
            Disconnect::INVALID_TOKEN.with_reason(reason),
        ))
    };
    if token.starts_with(CREATED_SESSION_KEY_PREFIX) {
        return Ok(Credentials::CreatedSession(token.to_owned()));
    }
    let anonymous_allowed = config.client.allow_anonymous || config.client.insecure;
    if let Some(problem) = certificate_user.and_then(user_name_problem) {
        let reason = format!("the client certificate's name {problem}");
        return Err(Refusal::Disconnect(
            Disconnect::PERMISSION_DENIED.with_reason(reason),
        ));
    }
    if token.is_empty() {
        return match certificate_user {
            Some(user) => Ok(Credentials::Known {
                user: user.to_owned(),
                info: None,
                expires_at: None,
                channels: Vec::new(),
            }),
            None if anonymous_allowed => Ok(Credentials::Known {
                user: String::new(),
                info: None,
                expires_at: None,
                channels: Vec::new(),
            }),
            None => refuse("a token is required".into()),
        };
    }
    let claims = match config.tokens.connection(token, now) {
        Ok(claims) => claims,
        Err(TokenError::Expired) => return Err(Refusal::Expired),
        Err(error) => {
            log::debug!(session = log_id; "connect refused: {error}");
            return refuse(error.to_string());
        }
    };
    if let Some(problem) = user_name_problem(&claims.user) {
        return refuse(format!("invalid token: the user (sub) {problem}"));
    }
    if certificate_user.is_some_and(|user| user != claims.user) {
        return refuse("the token's user is not the certificate's".into());
    }
    if claims.user.is_empty() && !anonymous_allowed {
        return refuse("the token names no user (sub) and anonymous clients are off".into());
    }
    Ok(Credentials::Known {
        user: claims.user,
        info: claims.info,
        expires_at: claims.expires_at,
        channels: claims.channels,
    })
}

/// What a client learns of its session's lifetime: `expires` and `ttl` (seconds left).
pub(super) fn lifetime(expires_at: Option<u64>, now: u64) -> (bool, u32) {
    match expires_at {
        Some(at) => (true, at.saturating_sub(now).min(u64::from(u32::MAX)) as u32),
        None => (false, 0),
    }
}

/// A subscription token's verdict, as the reply to subscribe or sub_refresh.
pub(super) fn subscription_refusal(
    session: &Session,
    error: TokenError,
) -> Result<ErrorReply, Disconnect> {
    match error {
        TokenError::Expired => Ok(ErrorReply::TOKEN_EXPIRED),
        error => {
            log::debug!(
                session = session.log_id(), user = session.user.as_str();
                "subscription token refused: {error}"
            );
            Err(Disconnect::INVALID_TOKEN.with_reason(error.to_string()))
        }
    }
}

impl Session {
    /// Arms the timer that ends the session when its lifetime does. A token's session gets
    /// `expired_close_delay` past `exp` to refresh (the SDKs refresh at about `exp`); a session a
    /// backend created ends at once.
    pub(super) fn arm_expiry(&mut self, ctx: &mut WebsocketContext<Self>) {
        if let Some(timer) = self.expiry_timer.take() {
            ctx.cancel_future(timer);
        }
        let Some(expires_at) = self.expires_at else {
            return;
        };
        let grace = if self.created {
            Duration::ZERO
        } else {
            self.config.client.expired_close_delay
        };
        let left = Duration::from_secs(expires_at.saturating_sub(unix_now()));
        self.expiry_timer = Some(ctx.run_later(left + grace, |act, ctx| {
            act.expiry_timer = None;
            if act.expires_at.is_some_and(|at| at <= unix_now()) {
                act.close(ctx, Disconnect::EXPIRED, true);
            } else {
                act.arm_expiry(ctx);
            }
        }));
    }

    /// Arms the timer that ends a subscription when its token's lifetime does, unless
    /// `sub_refresh` moved it.
    pub(super) fn arm_subscription_expiry(
        &mut self,
        ctx: &mut WebsocketContext<Self>,
        channel: String,
        expires_at: Option<u64>,
    ) {
        if let Some(timer) = self.subscription_timers.remove(&channel) {
            ctx.cancel_future(timer);
        }
        let Some(expires_at) = expires_at else {
            self.subscription_expiry.remove(&channel);
            return;
        };
        self.subscription_expiry.insert(channel.clone(), expires_at);
        let left = Duration::from_secs(expires_at.saturating_sub(unix_now()));
        let delay = left + self.config.client.expired_close_delay;
        let name = channel.clone();
        let timer = ctx.run_later(delay, move |act, ctx| {
            act.subscription_timers.remove(&name);
            match act.subscription_expiry.get(&name) {
                Some(at) if *at <= unix_now() => {
                    act.end_subscription(&name, UNSUBSCRIBE_EXPIRED, "subscription expired");
                }
                Some(at) => {
                    let at = *at;
                    act.arm_subscription_expiry(ctx, name, Some(at));
                }
                None => {}
            }
        });
        self.subscription_timers.insert(channel, timer);
    }

    /// Ends a subscription from the server side: the client gets an `unsubscribe` push with
    /// `code` once the Router has removed it (no publication of the channel follows).
    pub(super) fn end_subscription(&mut self, channel: &str, code: u32, reason: &str) {
        if !self.subscriptions.remove(channel) {
            return;
        }
        self.subscription_expiry.remove(channel);
        let push = Push {
            channel: channel.to_owned(),
            unsubscribe: Some(PushUnsubscribe {
                code,
                reason: reason.to_owned(),
            }),
            ..Push::default()
        };
        self.router.do_send(Unsubscribe {
            key: self.key(),
            channel: channel.to_owned(),
            reply: encode::push(self.format, push),
        });
    }
}
