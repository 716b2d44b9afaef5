//! `exchange.<ccxt method>` rpc calls: the data is a JSON object that names the exchange,
//! `{"exchange":"sim","symbol":"BTC/USDT"}`; the rest are the method's parameters. The call goes
//! to the exchange's adapter; its answer (a ccxt structure) is the rpc result.
//!
//! `exchange.login` checks credentials with the adapter and keeps them in the session (never in
//! a log): an account name for `sim`, `api_key` and `secret` for a real exchange. The private
//! methods use them; before a login they fail with AuthenticationError, and a second login with
//! other credentials is refused, so a session never trades on two accounts of one exchange.

use std::time::Duration;

use actix::prelude::*;
use actix_web_actors::ws::WebsocketContext;
use rpc_crypto_proto::ccxt::ErrorKind;
use rpc_crypto_proto::{Disconnect, ErrorReply};
use serde_json::Value;

use super::methods::{answer, fail, MAX_CALLS_IN_FLIGHT};
use super::{Session, State};
use crate::adapters::contract::{Credentials, ExchangeCall, ExchangeError, ExchangeMethod};

pub(super) fn call(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    id: Option<u32>,
    method: ExchangeMethod,
    data: &[u8],
    deadline: Duration,
) -> Result<(), Disconnect> {
    let mut params = match serde_json::from_slice(data) {
        Ok(Value::Object(params)) => params,
        _ => {
            let error = ErrorReply::BAD_REQUEST
                .with_message("exchange calls take a JSON object: {\"exchange\": NAME, ...}");
            return fail(session, id, error);
        }
    };
    // The rpc envelope's own members, read already (a `send` names its method in its data).
    params.remove("deadline");
    if id.is_none() {
        params.remove("method");
    }
    let Some(Value::String(exchange)) = params.remove("exchange") else {
        let error = ErrorReply::BAD_REQUEST.with_message("exchange required");
        return fail(session, id, error);
    };
    let Some(adapter) = session.config.exchanges.get(&exchange).cloned() else {
        let error = ExchangeError::new(ErrorKind::BadSymbol, format!("no exchange {exchange:?}"));
        return fail(session, id, error.to_reply());
    };
    let refuse = |message: String| ExchangeError::new(ErrorKind::AuthenticationError, message);
    // `secret` too: no exchange's key or secret is near this long.
    const MAX_ACCOUNT_LEN: usize = 128;
    let credentials = match method {
        ExchangeMethod::Login => {
            if session.user.is_empty() {
                let error = refuse("exchange.login needs a user: connect with a token".into());
                return fail(session, id, error.to_reply());
            }
            let text = |params: &mut serde_json::Map<String, Value>, name: &str| match params
                .remove(name)
            {
                Some(Value::String(value)) if !value.is_empty() => Some(value),
                _ => None,
            };
            let account = text(&mut params, "account").or_else(|| text(&mut params, "api_key"));
            let Some(account) = account else {
                let error = ErrorReply::BAD_REQUEST.with_message("account (or api_key) required");
                return fail(session, id, error);
            };
            // The session holds these for its life and the sim exchange keeps account names for
            // its own: bounded, and printable.
            if account.len() > MAX_ACCOUNT_LEN || account.chars().any(char::is_control) {
                let error = ErrorReply::BAD_REQUEST.with_message(format!(
                    "account (or api_key): at most {MAX_ACCOUNT_LEN} bytes, no control characters"
                ));
                return fail(session, id, error);
            }
            let credentials = Credentials {
                user: session.user.clone(),
                account,
                secret: text(&mut params, "secret"),
            };
            if session
                .logins
                .get(&exchange)
                .is_some_and(|known| *known != credentials)
            {
                let error = refuse(format!(
                    "already logged in to {exchange} as another account"
                ));
                return fail(session, id, error.to_reply());
            }
            Some(credentials)
        }
        method if method.is_private() => match session.logins.get(&exchange) {
            Some(credentials) => Some(credentials.clone()),
            None => {
                let error = refuse(format!("{} needs exchange.login first", method.name()));
                return fail(session, id, error.to_reply());
            }
        },
        _ => None,
    };
    if session.calls_in_flight >= MAX_CALLS_IN_FLIGHT {
        return fail(session, id, ErrorReply::TOO_MANY_REQUESTS);
    }
    session.calls_in_flight += 1;
    let login = (method == ExchangeMethod::Login)
        .then(|| credentials.clone())
        .flatten();
    let request = adapter.send(ExchangeCall {
        method,
        params,
        credentials,
    });
    let call = tokio::time::timeout(deadline, request);
    ctx.spawn(call.into_actor(session).map(move |result, act, ctx| {
        act.calls_in_flight -= 1;
        if act.state == State::Closing {
            return;
        }
        let outcome = match result {
            Ok(Ok(Ok(data))) => {
                if let Some(login) = login {
                    act.logins.insert(exchange, login);
                }
                // One answer may not take more than half the queue: it would cut the client
                // off as slow (3008) for asking.
                let room = act.config.client.queue_max_size / 2;
                if data.len() > room {
                    let error = ErrorReply::RESPONSE_TOO_LARGE.with_message(format!(
                        "the answer has {} bytes, more than {room} a reply may have",
                        data.len()
                    ));
                    fail(act, id, error)
                } else {
                    answer(act, id, data)
                }
            }
            Ok(Ok(Err(error))) => fail(act, id, error.to_reply()),
            Ok(Err(_mailbox)) => fail(act, id, ErrorReply::INTERNAL),
            Err(_elapsed) => fail(act, id, ErrorReply::DEADLINE_EXCEEDED),
        };
        if let Err(disconnect) = outcome {
            let flush = disconnect != Disconnect::SLOW;
            act.close(ctx, disconnect, flush);
        }
    }));
    Ok(())
}
