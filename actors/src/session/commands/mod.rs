//! One file per client command, and the dispatcher that picks one.
//!
//! A Centrifuge Command is not a oneof: the server takes the first field that is set, in field
//! number order. An empty command (no id, no field) is the client's pong.

mod connect;
mod history;
mod presence;
mod publish;
mod refresh;
mod rpc;
mod send;
mod sub_refresh;
mod subscribe;
mod unsubscribe;

use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::prelude::*;
use actix_web_actors::ws::WebsocketContext;
use rpc_crypto_proto::protocol::{
    Command, ConnectRequest, HistoryRequest, PingResult, PresenceRequest, PresenceStatsRequest,
    PublishRequest, RefreshRequest, Reply, RpcRequest, SendRequest, SubRefreshRequest,
    SubscribeRequest, UnsubscribeRequest,
};
use rpc_crypto_proto::{Disconnect, ErrorReply};

pub(super) use connect::{connected, reattached};
pub(super) use send::report as report_send_error;

use super::methods::MAX_CALLS_IN_FLIGHT;
use super::{Session, State};
use crate::metrics::metrics;
use crate::router::Router;

/// How long a command waits for the Router's answer before error 100.
const ROUTER_TIMEOUT: Duration = Duration::from_secs(10);

/// What a client asked for.
pub(super) enum ClientCommand {
    Connect(ConnectRequest),
    Subscribe(SubscribeRequest),
    Unsubscribe(UnsubscribeRequest),
    Publish(PublishRequest),
    Presence(PresenceRequest),
    PresenceStats(PresenceStatsRequest),
    History(HistoryRequest),
    Rpc(RpcRequest),
    Send(SendRequest),
    Refresh(RefreshRequest),
    SubRefresh(SubRefreshRequest),
    Ping,
    /// The answer to the server's ping.
    Pong,
    /// An id and no known command: error 104.
    Unknown,
}

impl ClientCommand {
    /// The method's name in `rpc_crypto_commands_total`; `None` for what gets no reply.
    fn method(&self) -> Option<&'static str> {
        Some(match self {
            ClientCommand::Connect(_) => "connect",
            ClientCommand::Subscribe(_) => "subscribe",
            ClientCommand::Unsubscribe(_) => "unsubscribe",
            ClientCommand::Publish(_) => "publish",
            ClientCommand::Presence(_) => "presence",
            ClientCommand::PresenceStats(_) => "presence_stats",
            ClientCommand::History(_) => "history",
            ClientCommand::Rpc(_) => "rpc",
            ClientCommand::Refresh(_) => "refresh",
            ClientCommand::SubRefresh(_) => "sub_refresh",
            ClientCommand::Ping => "ping",
            ClientCommand::Unknown => "unknown",
            ClientCommand::Send(_) | ClientCommand::Pong => return None,
        })
    }

    fn from_proto(command: Command) -> (u32, ClientCommand) {
        let Command {
            id,
            connect,
            subscribe,
            unsubscribe,
            publish,
            presence,
            presence_stats,
            history,
            ping,
            send,
            rpc,
            refresh,
            sub_refresh,
        } = command;
        let kind = if let Some(req) = connect {
            ClientCommand::Connect(req)
        } else if let Some(req) = subscribe {
            ClientCommand::Subscribe(req)
        } else if let Some(req) = unsubscribe {
            ClientCommand::Unsubscribe(req)
        } else if let Some(req) = publish {
            ClientCommand::Publish(req)
        } else if let Some(req) = presence {
            ClientCommand::Presence(req)
        } else if let Some(req) = presence_stats {
            ClientCommand::PresenceStats(req)
        } else if let Some(req) = history {
            ClientCommand::History(req)
        } else if ping.is_some() {
            ClientCommand::Ping
        } else if let Some(req) = send {
            ClientCommand::Send(req)
        } else if let Some(req) = rpc {
            ClientCommand::Rpc(req)
        } else if let Some(req) = refresh {
            ClientCommand::Refresh(req)
        } else if let Some(req) = sub_refresh {
            ClientCommand::SubRefresh(req)
        } else if id == 0 {
            ClientCommand::Pong
        } else {
            ClientCommand::Unknown
        };
        (id, kind)
    }
}

/// Runs one command. An `Err` ends the session with that disconnect.
pub(super) fn dispatch(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    command: Command,
) -> Result<(), Disconnect> {
    let (id, command) = ClientCommand::from_proto(command);
    if id == 0 && !matches!(command, ClientCommand::Send(_) | ClientCommand::Pong) {
        return Err(Disconnect::BAD_REQUEST.with_reason("command id required"));
    }
    if session.state == State::Fresh && !matches!(command, ClientCommand::Connect(_)) {
        return Err(Disconnect::BAD_REQUEST.with_reason("connect first"));
    }
    match command.method() {
        Some(method) => session.awaiting_reply(id, method),
        // Neither is answered: a send is counted as taken.
        None if matches!(command, ClientCommand::Send(_)) => metrics().command("send", 0),
        None => {}
    }
    match command {
        ClientCommand::Connect(req) => connect::handle(session, ctx, id, req),
        ClientCommand::Subscribe(req) => subscribe::handle(session, ctx, id, req),
        ClientCommand::Unsubscribe(req) => unsubscribe::handle(session, id, req),
        ClientCommand::Publish(req) => publish::handle(session, id, req),
        ClientCommand::Presence(req) => presence::handle(session, ctx, id, req),
        ClientCommand::PresenceStats(req) => presence::handle_stats(session, ctx, id, req),
        ClientCommand::History(req) => history::handle(session, ctx, id, req),
        ClientCommand::Rpc(req) => rpc::handle(session, ctx, id, req),
        ClientCommand::Send(req) => send::handle(session, ctx, req),
        ClientCommand::Refresh(req) => refresh::handle(session, ctx, id, req),
        ClientCommand::SubRefresh(req) => sub_refresh::handle(session, ctx, id, req),
        ClientCommand::Ping => session.reply(Reply {
            id,
            ping: Some(PingResult {}),
            ..Reply::default()
        }),
        ClientCommand::Pong => {
            if !session.awaiting_pong {
                return Err(Disconnect::BAD_REQUEST.with_reason("pong without ping"));
            }
            session.ponged();
            Ok(())
        }
        ClientCommand::Unknown => session.reply_error(id, ErrorReply::METHOD_NOT_FOUND),
    }
}

/// Whether a command is a connect that resumes a session.
pub(super) fn resumes(command: &Command) -> bool {
    command.connect.as_ref().is_some_and(|c| {
        rpc_crypto_proto::handshake::session_request(&c.data).is_ok_and(|r| r.resume.is_some())
    })
}

/// Sends `ask` to the Router and replies with what `answer` makes of its result, once it comes.
/// Bounded by `MAX_CALLS_IN_FLIGHT` per session (more: 111).
fn ask_router<M>(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    id: u32,
    ask: M,
    answer: impl FnOnce(M::Result) -> Result<Reply, ErrorReply> + 'static,
) -> Result<(), Disconnect>
where
    M: Message + Send + 'static,
    M::Result: Send,
    Router: Handler<M>,
    <Router as Actor>::Context: ToEnvelope<Router, M>,
{
    if session.calls_in_flight >= MAX_CALLS_IN_FLIGHT {
        return session.reply_error(id, ErrorReply::TOO_MANY_REQUESTS);
    }
    session.calls_in_flight += 1;
    let call = tokio::time::timeout(ROUTER_TIMEOUT, session.router.send(ask));
    ctx.spawn(call.into_actor(session).map(move |result, act, ctx| {
        act.calls_in_flight -= 1;
        if act.state == State::Closing {
            return;
        }
        let reply = match result {
            Ok(Ok(result)) => answer(result),
            _ => Err(ErrorReply::INTERNAL),
        };
        let outcome = match reply {
            Ok(reply) => act.reply(reply),
            Err(error) => act.reply_error(id, error),
        };
        if let Err(disconnect) = outcome {
            let flush = disconnect != Disconnect::SLOW;
            act.close(ctx, disconnect, flush);
        }
    }));
    Ok(())
}
