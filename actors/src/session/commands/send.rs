//! `send`: an asynchronous message from the client, with no reply. RPC-Crypto reads it as a
//! fire-and-forget call, `{"method":"heartbeat"}`: the method runs and its result is dropped. A
//! call that fails is reported as a `message` push `{"send_error":{"code":..,"message":..}}`,
//! since a send has no id to answer.

use actix_web_actors::ws::WebsocketContext;
use rpc_crypto_proto::protocol::{Message, Push, SendRequest};
use rpc_crypto_proto::{rpc, Disconnect, ErrorReply};

use crate::encode;
use crate::session::methods::Method;
use crate::session::Session;

pub(super) fn handle(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    req: SendRequest,
) -> Result<(), Disconnect> {
    let method = rpc::member(&req.data, "method");
    let method = match method.as_ref().and_then(|m| m.as_str()) {
        None => Err(ErrorReply::BAD_REQUEST.with_message("send data must be {\"method\": NAME}")),
        Some(name) => Method::from_name(name).ok_or(ErrorReply::METHOD_NOT_FOUND),
    };
    match method {
        Ok(method) => method.call(session, ctx, None, None, &req.data),
        Err(error) => report(session, error),
    }
}

/// Tells the client that a send failed.
pub(in crate::session) fn report(
    session: &mut Session,
    error: ErrorReply,
) -> Result<(), Disconnect> {
    let data = serde_json::json!({
        "send_error": {"code": error.code, "message": error.message}
    });
    let push = Push {
        message: Some(Message {
            data: serde_json::to_vec(&data).expect("JSON").into(),
        }),
        ..Push::default()
    };
    let item = encode::push(session.format, push);
    session.push_item(item)
}
