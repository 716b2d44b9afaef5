//! Encoding what the actors queue for clients.
//!
//! A reply or push that cannot be encoded (in JSON, a `bytes` field that is not JSON text) would
//! be a bug: data is checked where it enters ([`rpc_crypto_proto::json::JsonText`]). It is still
//! never a panic: it is logged, and error 100 for its command id goes out in its place, so the
//! client gets an answer it can read and the actor goes on.

use bytes::Bytes;
use rpc_crypto_proto::codec::{encode_reply_or_internal, Format};
use rpc_crypto_proto::protocol::{Push, Reply};

/// A Reply as an outbox item.
pub fn reply(format: Format, reply: &Reply) -> Bytes {
    let (item, error) = encode_reply_or_internal(format, reply);
    if let Some(error) = error {
        log::error!(
            "reply to command {} replaced by error 100: {error}",
            reply.id
        );
    }
    item
}

/// A push (a Reply without id) as an outbox item.
pub fn push(format: Format, push: Push) -> Bytes {
    reply(
        format,
        &Reply {
            push: Some(push),
            ..Reply::default()
        },
    )
}
