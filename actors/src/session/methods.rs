//! The RPC methods a client can call with `rpc` (or fire and forget with `send`).
//!
//! | method | answer |
//! |---|---|
//! | `session.status` | SessionStatus: session id, user, expiry, id of the last message sent, id of the last received |
//! | `session.close` | SessionClose: no answer; queued messages are flushed, then close 4500 |
//! | `heartbeat` | `{"time": <unix ms>}` at once |
//! | `channels.list` | streamed: items of up to 100 channel names, then the FIN reply |
//! | `exchange.list` | the names of the exchanges this server runs |
//! | `rates.fetch` | a fiat rate, `{"symbol": "USD/JPY"}`, as its `rates:ecb:USD/JPY` message |
//! | `exchange.<ccxt method>` | the exchange adapter's answer (`session/exchange.rs`) |

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use actix_web_actors::ws::WebsocketContext;
use bytes::Bytes;
use rpc_crypto_proto::protocol::{Reply, RpcResult};
use rpc_crypto_proto::rpc::stream_end;
use rpc_crypto_proto::{Disconnect, ErrorReply};

use super::commands::report_send_error;
use super::{Session, State};
use crate::adapters::contract::ExchangeMethod;
use crate::adapters::rates::FetchRate;
use crate::router::ListChannels;

/// How long a call that names no deadline may run.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);
/// Calls of one session that may wait on another actor at once; more get error 111.
pub(in crate::session) const MAX_CALLS_IN_FLIGHT: usize = 16;
/// Channel names per streamed item of `channels.list`.
const CHANNELS_PER_ITEM: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    SessionStatus,
    SessionClose,
    Heartbeat,
    ChannelsList,
    /// `exchange.list`: the exchanges this server runs.
    ExchangeList,
    /// `exchange.<ccxt method>`, answered by the exchange's adapter.
    Exchange(ExchangeMethod),
    /// `rates.fetch`: a fiat rate, `{"symbol": "USD/JPY"}`.
    RatesFetch,
    /// `debug.panic`: test-only fault injection ([`crate::fault`]).
    #[cfg(debug_assertions)]
    DebugPanic,
}

impl Method {
    pub(super) fn from_name(name: &str) -> Option<Method> {
        Some(match name {
            "session.status" => Method::SessionStatus,
            "session.close" => Method::SessionClose,
            "heartbeat" => Method::Heartbeat,
            "channels.list" => Method::ChannelsList,
            "exchange.list" => Method::ExchangeList,
            "rates.fetch" => Method::RatesFetch,
            #[cfg(debug_assertions)]
            "debug.panic" if crate::fault::enabled() => Method::DebugPanic,
            _ => Method::Exchange(ExchangeMethod::from_name(name.strip_prefix("exchange.")?)?),
        })
    }

    /// Runs the method; `id` is `None` for a fire-and-forget `send`.
    pub(super) fn call(
        self,
        session: &mut Session,
        ctx: &mut WebsocketContext<Session>,
        id: Option<u32>,
        deadline: Option<Duration>,
        data: &[u8],
    ) -> Result<(), Disconnect> {
        match self {
            Method::SessionStatus => {
                let status = serde_json::json!({
                    "session_id": session.registered().id.as_str(),
                    "user": session.user,
                    "expires_at": session.expires_at,
                    "last_sent_id": session.sent(),
                    "last_received_id": session.received,
                    "protocol_version": session.protocol_version,
                });
                answer(session, id, json_bytes(&status))
            }
            Method::SessionClose => {
                session.close(ctx, Disconnect::SESSION_CLOSED, true);
                Ok(())
            }
            Method::Heartbeat => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                answer(session, id, json_bytes(&serde_json::json!({ "time": now })))
            }
            Method::ChannelsList => list_channels(session, ctx, id, deadline),
            Method::ExchangeList => {
                let names: Vec<&str> = session.config.exchanges.names().collect();
                answer(session, id, json_bytes(&serde_json::json!(names)))
            }
            Method::RatesFetch => fetch_rate(session, ctx, id, data, deadline),
            #[cfg(debug_assertions)]
            Method::DebugPanic => {
                match rpc_crypto_proto::rpc::member(data, "actor")
                    .as_ref()
                    .and_then(|a| a.as_str())
                {
                    Some("router") => session.router.do_send(crate::fault::InjectPanic),
                    Some("registry") => session.registry.do_send(crate::fault::InjectPanic),
                    Some("session") => {
                        panic!("injected panic in a Session (TEST_RPC_CRYPTO_FAULT_INJECTION)")
                    }
                    _ => return fail(session, id, ErrorReply::BAD_REQUEST),
                }
                answer(session, id, json_bytes(&serde_json::json!({})))
            }
            Method::Exchange(method) => {
                let deadline = deadline.unwrap_or(DEFAULT_DEADLINE);
                super::exchange::call(session, ctx, id, method, data, deadline)
            }
        }
    }
}

fn json_bytes(value: &serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("JSON values encode"))
}

pub(in crate::session) fn answer(
    session: &mut Session,
    id: Option<u32>,
    data: Bytes,
) -> Result<(), Disconnect> {
    let Some(id) = id else { return Ok(()) };
    session.reply(Reply {
        id,
        rpc: Some(RpcResult { data }),
        ..Reply::default()
    })
}

pub(in crate::session) fn fail(
    session: &mut Session,
    id: Option<u32>,
    error: ErrorReply,
) -> Result<(), Disconnect> {
    match id {
        Some(id) => session.reply_error(id, error),
        None => report_send_error(session, error),
    }
}

fn list_channels(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    id: Option<u32>,
    deadline: Option<Duration>,
) -> Result<(), Disconnect> {
    if session.calls_in_flight >= MAX_CALLS_IN_FLIGHT {
        return fail(session, id, ErrorReply::TOO_MANY_REQUESTS);
    }
    session.calls_in_flight += 1;
    let request = session.router.send(ListChannels);
    let call = tokio::time::timeout(deadline.unwrap_or(DEFAULT_DEADLINE), request);
    ctx.spawn(call.into_actor(session).map(move |result, act, ctx| {
        act.calls_in_flight -= 1;
        if act.state == State::Closing {
            return;
        }
        let outcome = match result {
            Ok(Ok(names)) => stream_names(act, id, &names),
            Ok(Err(_)) => fail(act, id, ErrorReply::INTERNAL),
            Err(_elapsed) => fail(act, id, ErrorReply::DEADLINE_EXCEEDED),
        };
        if let Err(disconnect) = outcome {
            let flush = disconnect != Disconnect::SLOW;
            act.close(ctx, disconnect, flush);
        }
    }));
    Ok(())
}

/// `rates.fetch`: asks the rates adapter for one pair.
fn fetch_rate(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    id: Option<u32>,
    data: &[u8],
    deadline: Option<Duration>,
) -> Result<(), Disconnect> {
    let Some(rates) = session.config.rates.clone() else {
        let error = ErrorReply::NOT_AVAILABLE.with_message("this server keeps no fiat rates");
        return fail(session, id, error);
    };
    let symbol = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v.get("symbol")?.as_str().map(str::to_owned));
    let Some((base, quote)) = symbol.as_deref().and_then(|s| s.split_once('/')) else {
        let error =
            ErrorReply::BAD_REQUEST.with_message("rates.fetch takes {\"symbol\": \"BASE/QUOTE\"}");
        return fail(session, id, error);
    };
    if session.calls_in_flight >= MAX_CALLS_IN_FLIGHT {
        return fail(session, id, ErrorReply::TOO_MANY_REQUESTS);
    }
    session.calls_in_flight += 1;
    let request = rates.send(FetchRate {
        base: base.to_owned(),
        quote: quote.to_owned(),
    });
    let call = tokio::time::timeout(deadline.unwrap_or(DEFAULT_DEADLINE), request);
    ctx.spawn(call.into_actor(session).map(move |result, act, ctx| {
        act.calls_in_flight -= 1;
        if act.state == State::Closing {
            return;
        }
        let outcome = match result {
            Ok(Ok(Ok(data))) => answer(act, id, data),
            Ok(Ok(Err(error))) => fail(act, id, error.to_reply()),
            Ok(Err(_)) => fail(act, id, ErrorReply::INTERNAL),
            Err(_elapsed) => fail(act, id, ErrorReply::DEADLINE_EXCEEDED),
        };
        if let Err(disconnect) = outcome {
            let flush = disconnect != Disconnect::SLOW;
            act.close(ctx, disconnect, flush);
        }
    }));
    Ok(())
}

/// Streams the names as items, then the FIN reply.
fn stream_names(
    session: &mut Session,
    id: Option<u32>,
    names: &[String],
) -> Result<(), Disconnect> {
    let Some(id) = id else { return Ok(()) };
    let mut items = 0;
    for chunk in names.chunks(CHANNELS_PER_ITEM) {
        items += 1;
        let payload = serde_json::to_vec(chunk).expect("strings encode");
        session.push_stream_item(id, items, &payload)?;
    }
    answer(session, Some(id), stream_end(items))
}
