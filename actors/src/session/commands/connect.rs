//! `connect`: SessionCreate. Negotiates the protocol version (seed 001) and answers with the
//! ConnectResult (SessionCreateResponse) whose `client` is the session id.

use actix::prelude::*;
use actix_web_actors::ws::WebsocketContext;
use rpc_crypto_proto::handshake::{accepted_data, negotiate, requested_versions};
use rpc_crypto_proto::protocol::{ConnectRequest, ConnectResult, Reply};
use rpc_crypto_proto::Disconnect;

use crate::session::{Session, State, SERVER_VERSION};

pub(super) fn handle(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    id: u32,
    req: ConnectRequest,
) -> Result<(), Disconnect> {
    if session.state != State::Fresh {
        return Err(Disconnect::BAD_REQUEST.with_reason("already connected"));
    }
    if !req.token.is_empty() {
        return Err(Disconnect::INVALID_TOKEN.with_reason("this server verifies no tokens"));
    }
    if !req.subs.is_empty() {
        return Err(Disconnect::BAD_REQUEST.with_reason("connect subs are not supported"));
    }
    let requested = requested_versions(&req.data)
        .map_err(|error| Disconnect::BAD_REQUEST.with_reason(error.to_string()))?;
    let version = negotiate(requested.as_deref()).map_err(|reason| reason.disconnect())?;

    session.protocol_version = version;
    session.state = State::Connected;
    if let Some(timer) = session.stale_timer.take() {
        ctx.cancel_future(timer);
    }
    let ping = session.config.client.ping_interval.as_secs() as u32;
    session.reply(Reply {
        id,
        connect: Some(ConnectResult {
            client: session.registered().id.to_string(),
            version: SERVER_VERSION.to_owned(),
            data: accepted_data(version),
            ping,
            pong: ping > 0,
            ..ConnectResult::default()
        }),
        ..Reply::default()
    })?;
    session.start_heartbeat(ctx);
    Ok(())
}
