//! `connect`: SessionCreate. Negotiates the protocol version (seed 001), makes the session
//! resumable if asked, subscribes the channels of `subs` (with recovery), and answers with the
//! ConnectResult (SessionCreateResponse) whose `client` is the session id.
//!
//! A connect whose data names a session to `resume` asks the Registry for it instead; see
//! [`resume`].

use std::collections::HashMap;

use actix::prelude::*;
use actix_web_actors::ws::WebsocketContext;
use rpc_crypto_proto::handshake::{
    accepted_data, negotiate, resumable_data, session_request, ResumeRequest,
};
use rpc_crypto_proto::protocol::{ConnectRequest, ConnectResult, Reply, SubscribeRequest};
use rpc_crypto_proto::{Disconnect, ErrorReply};

use super::subscribe::channel_request;
use crate::encode;
use crate::registry::{BindUser, ClaimSession, Claimed, MakeResumable, ResumeSession, SessionId};
use crate::router::{Answer, Reattach};
use crate::session::identity::{self, unix_now, Credentials, Refusal};
use crate::session::{ParkedSession, Session, State, SERVER_VERSION};

pub(super) fn handle(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    id: u32,
    req: ConnectRequest,
) -> Result<(), Disconnect> {
    if session.state != State::Fresh {
        return Err(Disconnect::BAD_REQUEST.with_reason("already connected"));
    }
    let request = session_request(&req.data)
        .map_err(|error| Disconnect::BAD_REQUEST.with_reason(error.to_string()))?;
    let version = negotiate(request.versions.as_deref()).map_err(|reason| reason.disconnect())?;
    let now = unix_now();
    let certificate_user = session.peer.certificate_user.clone();
    let credentials = match identity::credentials(
        &session.config,
        session.log_id(),
        &req.token,
        certificate_user.as_deref(),
        now,
    ) {
        Ok(credentials) => credentials,
        // The client gets a fresh token and connects again on this connection.
        Err(Refusal::Expired) => return session.reply_error(id, ErrorReply::TOKEN_EXPIRED),
        Err(Refusal::Disconnect(disconnect)) => return Err(disconnect),
    };
    let accept = Accept {
        id,
        version,
        resumable: request.resumable,
        subs: req.subs,
    };
    match credentials {
        Credentials::Known {
            user,
            info,
            expires_at,
            channels,
        } => {
            session.user = user;
            session.conn_info = info;
            session.expires_at = expires_at;
            if let Some(resume) = request.resume {
                if !accept.subs.is_empty() {
                    let error = ErrorReply::BAD_REQUEST.with_message(
                        "a resumed session keeps its subscriptions: no subs with resume",
                    );
                    return session.reply_error(id, error);
                }
                return start_resume(session, ctx, id, resume);
            }
            if session.user.is_empty() {
                return accepted(session, ctx, accept, channels);
            }
            let bind = BindUser {
                key: session.key(),
                user: session.user.clone(),
            };
            wait_for_registry(
                session,
                ctx,
                session.registry.send(bind),
                move |act, ctx, ()| accepted(act, ctx, accept, channels),
            );
            Ok(())
        }
        Credentials::CreatedSession(credential) => {
            if request.resume.is_some() {
                let error = ErrorReply::BAD_REQUEST
                    .with_message("a session created by a backend is claimed with its key alone");
                return session.reply_error(id, error);
            }
            let claim = ClaimSession {
                key: session.key(),
                credential,
            };
            wait_for_registry(
                session,
                ctx,
                session.registry.send(claim),
                move |act, ctx, claimed: Claimed| {
                    if certificate_user.is_some_and(|user| user != claimed.user) {
                        return Err(Disconnect::INVALID_TOKEN
                            .with_reason("the session's owner is not the certificate's"));
                    }
                    if let Some(registration) = act.registration.as_mut() {
                        registration.id = claimed.id;
                    }
                    act.user = claimed.user;
                    act.expires_at = Some(claimed.expires_at);
                    act.created = true;
                    accepted(act, ctx, accept, Vec::new())
                },
            );
            Ok(())
        }
    }
}

/// What an accepted connect goes on with once the client is known.
struct Accept {
    id: u32,
    version: u32,
    resumable: bool,
    subs: HashMap<String, SubscribeRequest>,
}

/// Waits for the Registry's verdict on the client, holding back the commands that follow the
/// connect, then goes on with `then` (or ends the connection with the Registry's disconnect).
fn wait_for_registry<T: 'static>(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    ask: impl std::future::Future<Output = Result<Result<T, Disconnect>, MailboxError>> + 'static,
    then: impl FnOnce(&mut Session, &mut WebsocketContext<Session>, T) -> Result<(), Disconnect>
        + 'static,
) {
    session.state = State::Waiting;
    let waiting = ask.into_actor(session).map(move |answer, act, ctx| {
        if act.state == State::Closing {
            return;
        }
        act.state = State::Fresh;
        let outcome = match answer {
            Ok(Ok(value)) => then(act, ctx, value),
            Ok(Err(disconnect)) => Err(disconnect),
            Err(_) => Err(Disconnect::SERVER_ERROR),
        };
        match outcome {
            Ok(()) => act.run_deferred(ctx),
            Err(disconnect) => act.close(ctx, disconnect, true),
        }
    });
    ctx.wait(waiting);
}

/// Accepts the connect of a known client: makes the session resumable if asked, subscribes the
/// token's channels and those of `subs` it may have, and answers with the ConnectResult.
fn accepted(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    accept: Accept,
    granted: Vec<String>,
) -> Result<(), Disconnect> {
    let Accept {
        id,
        version,
        resumable,
        mut subs,
    } = accept;
    // Every channel is checked before anything changes. The token's channels are the server's
    // grant; a channel of `subs` the client may not subscribe to is left out of the result (as
    // Centrifuge does with a server-side subscription it no longer grants: the SDK drops it).
    let config = session.config.clone();
    let mut channels = Vec::with_capacity(subs.len() + granted.len());
    for channel in granted {
        if let Err(error) = config.rules.policy(&channel) {
            return Err(Disconnect::INVALID_TOKEN
                .with_reason(format!("token channel {channel:?}: {}", error.message)));
        }
        let mut sub = subs.remove(&channel).unwrap_or_default();
        sub.channel = channel;
        sub.flag = 0;
        channels.push(channel_request(sub));
    }
    for (channel, mut sub) in subs {
        let policy = match config.rules.policy(&channel) {
            Ok(policy) => policy,
            Err(error) => return session.reply_error(id, naming(error, &channel)),
        };
        if !policy.may_subscribe(&session.user, false) {
            log::debug!("connect subs: {channel:?} left out, not permitted");
            continue;
        }
        sub.channel = channel;
        // Connect subs answer `recovered: false`, never 112: there is one reply for all.
        sub.flag = 0;
        channels.push(channel_request(sub));
    }
    if channels.len() > config.client.channel_limit {
        return session.reply_error(id, ErrorReply::LIMIT_EXCEEDED);
    }

    session.protocol_version = version;
    let grace = config.session.resume_grace;
    let secret = (resumable && !grace.is_zero()).then(|| SessionId::random().to_string());
    let data = match &secret {
        Some(secret) => resumable_data(version, secret, grace.as_secs(), false),
        None => accepted_data(version),
    };
    let result = connect_result(session, data);
    if channels.is_empty() {
        make_resumable(session, secret);
        session.reply(Reply {
            id,
            connect: Some(result),
            ..Reply::default()
        })?;
    } else {
        let answer = Answer::Connect(id, Box::new(result));
        let subscribe = session.subscribe_message(ctx, channels, answer);
        let names: Vec<String> = subscribe
            .channels
            .iter()
            .map(|c| c.channel.clone())
            .collect();
        match session.router.try_send(subscribe) {
            // The Router queues the reply later; the journal is on before anything is written.
            Ok(()) => {
                session.subscriptions.extend(names);
                make_resumable(session, secret);
            }
            Err(SendError::Full(_)) => {
                return session.reply_error(id, ErrorReply::TOO_MANY_REQUESTS)
            }
            Err(SendError::Closed(_)) => return Err(Disconnect::SERVER_ERROR),
        }
    }
    connected(session, ctx);
    Ok(())
}

/// An error about one channel of `subs`, with the channel named after its message.
fn naming(error: ErrorReply, channel: &str) -> ErrorReply {
    let message = format!("{}: {channel:?}", error.message);
    error.with_message(message)
}

/// Makes the session resumable with `secret` (if any): the Registry learns who may resume it, and
/// the queue keeps what it writes for a replay.
fn make_resumable(session: &mut Session, secret: Option<String>) {
    let Some(secret) = secret else { return };
    session.registry.do_send(MakeResumable {
        key: session.key(),
        secret: secret.clone(),
        user: session.user.clone(),
    });
    session.keep_journal();
    session.secret = Some(secret);
    session.park_on_stop = true;
}

fn connect_result(session: &Session, data: bytes::Bytes) -> ConnectResult {
    let ping = session.config.client.ping_interval.as_secs() as u32;
    let (expires, ttl) = identity::lifetime(session.expires_at, unix_now());
    ConnectResult {
        client: session.registered().id.to_string(),
        version: SERVER_VERSION.to_owned(),
        data,
        ping,
        pong: ping > 0,
        expires,
        ttl,
        ..ConnectResult::default()
    }
}

/// The session is connected: heartbeats and lifetimes start.
pub(in crate::session) fn connected(session: &mut Session, ctx: &mut WebsocketContext<Session>) {
    session.state = State::Connected;
    if let Some(timer) = session.stale_timer.take() {
        ctx.cancel_future(timer);
    }
    session.start_heartbeat(ctx);
    session.arm_expiry(ctx);
    let subscriptions: Vec<(String, u64)> = session
        .subscription_expiry
        .iter()
        .map(|(channel, at)| (channel.clone(), *at))
        .collect();
    for (channel, at) in subscriptions {
        session.arm_subscription_expiry(ctx, channel, Some(at));
    }
}

/// Asks the Registry for the session; commands behind this connect wait for the answer.
fn start_resume(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    id: u32,
    resume: ResumeRequest,
) -> Result<(), Disconnect> {
    if session.config.session.resume_grace.is_zero() {
        return session.reply_error(id, ErrorReply::SESSION_NOT_FOUND);
    }
    session.state = State::Waiting;
    let last_received = resume.last_received;
    let ask = ResumeSession {
        key: session.key(),
        session: resume.session,
        secret: resume.key,
        last_received,
        user: session.user.clone(),
        format: session.format,
        close: ctx.address().recipient(),
        control: ctx.address().recipient(),
    };
    let resuming = session
        .registry
        .send(ask)
        .into_actor(session)
        .map(move |answer, act, ctx| match answer {
            Ok(Ok(parked)) if act.state == State::Closing => {
                // The connection closed meanwhile: the session goes back to wait.
                act.adopt(parked);
                act.park_on_stop = true;
            }
            Ok(Ok(parked)) => resumed(act, ctx, id, parked, last_received),
            Ok(Err(error)) => {
                if act.state == State::Waiting {
                    act.state = State::Fresh;
                }
                if let Err(disconnect) = act.reply_error(id, error) {
                    return act.close(ctx, disconnect, false);
                }
                act.run_deferred(ctx);
            }
            Err(_) => act.close(ctx, Disconnect::SERVER_ERROR, false),
        });
    ctx.wait(resuming);
    Ok(())
}

/// Carries on with a resumed session: the connect result and the replay of what the client
/// missed are written first, then the queue takes over.
fn resumed(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    id: u32,
    parked: ParkedSession,
    last_received: u64,
) {
    // A token presented with the resume moves the session's lifetime on.
    let token_expiry = session.expires_at.take();
    session.adopt(parked);
    if token_expiry.is_some() && !session.created {
        session.expires_at = token_expiry;
    }
    session.park_on_stop = true;
    let secret = session.secret.clone().unwrap_or_default();
    let grace = session.config.session.resume_grace.as_secs();
    let data = resumable_data(session.protocol_version, &secret, grace, true);
    let reply = Reply {
        id,
        connect: Some(connect_result(session, data)),
        ..Reply::default()
    };
    session.write_direct(ctx, encode::reply(session.format, &reply));
    // The Registry checked that the replay is whole before handing the session over.
    if let Some(Ok(Some(replay))) = session.stream.with(|s| s.replay(last_received)) {
        session.write_direct(ctx, replay);
    }
    // What follows last_received (the replay, what was queued while parked) is kept until the
    // client shows it read it: this connection may drop before it does.
    session.stream.with(|s| s.resumed_from(last_received));
    reattached(session, ctx);
    session.run_deferred(ctx);
}

/// A session this connection took over (its replay already written) goes on here: the Router
/// notifies this actor from now on, the context polls the session's queue, and it is connected.
pub(in crate::session) fn reattached(session: &mut Session, ctx: &mut WebsocketContext<Session>) {
    session.router.do_send(Reattach {
        key: session.key(),
        notify: Session::recipients(ctx),
    });
    ctx.spawn(fut::ready(()));
    connected(session, ctx);
}
