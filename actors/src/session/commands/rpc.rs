//! `rpc`: the seed-001 RPC envelope. Reads the optional deadline, then runs the method.

use actix_web_actors::ws::WebsocketContext;
use rpc_crypto_proto::protocol::RpcRequest;
use rpc_crypto_proto::{rpc, Disconnect, ErrorReply};

use crate::session::methods::Method;
use crate::session::Session;

pub(super) fn handle(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    id: u32,
    req: RpcRequest,
) -> Result<(), Disconnect> {
    let Some(method) = Method::from_name(&req.method) else {
        return session.reply_error(id, ErrorReply::METHOD_NOT_FOUND);
    };
    let deadline = match rpc::deadline(&req.data) {
        Ok(deadline) => deadline,
        Err(error) => return session.reply_error(id, error),
    };
    method.call(session, ctx, Some(id), deadline, &req.data)
}
