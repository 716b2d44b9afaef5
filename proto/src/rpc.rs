//! The RPC envelope of seed 001, carried by Centrifuge's `rpc` command.
//!
//! - Request: `{"rpc":{"method":"session.status","data":{...}},"id":7}`. The reserved member
//!   `deadline` of `data` (seconds, at least [`MIN_DEADLINE`]) bounds how long the caller waits.
//! - Single response: the rpc Reply, `{"id":7,"rpc":{"data":{...}}}`.
//! - Streamed response: each item is a `message` push
//!   `{"push":{"message":{"data":{"request_id":7,"seq":1,"flags":0,"payload":ITEM}}}}`, then the
//!   rpc Reply ends the stream: `{"id":7,"rpc":{"data":{"flags":1,"items":N}}}` (flag FIN).
//! - Errors: a Reply with `error`; the seed's non-zero status codes map to error codes by
//!   [`RpcStatus::error_reply`]. An error ends a stream.

use std::time::Duration;

use bytes::Bytes;

use crate::codec::{encode_push, EncodeError, Format};
use crate::codes::ErrorReply;
use crate::protocol::{Message, Push};

/// Flag bit on the last message of a response.
pub const FLAG_FIN: u32 = 0x01;
/// The shortest deadline a request may carry.
pub const MIN_DEADLINE: Duration = Duration::from_secs(1);

/// Seed 001's response status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcStatus {
    Ok = 0,
    BadRequest = 1,
    UnsupportedMethod = 2,
    NotImplemented = 3,
    Timeout = 4,
    MalformedResponse = 5,
    General = 6,
    NotFound = 7,
    ProtocolError = 8,
    Forbidden = 9,
    Conflict = 10,
}

impl RpcStatus {
    /// The Centrifuge error a status is sent as; `None` for Ok.
    pub fn error_reply(self) -> Option<ErrorReply> {
        Some(match self {
            RpcStatus::Ok => return None,
            RpcStatus::BadRequest | RpcStatus::ProtocolError => ErrorReply::BAD_REQUEST,
            RpcStatus::UnsupportedMethod => ErrorReply::METHOD_NOT_FOUND,
            RpcStatus::NotImplemented => ErrorReply::NOT_AVAILABLE,
            RpcStatus::Timeout => ErrorReply::DEADLINE_EXCEEDED,
            RpcStatus::MalformedResponse => ErrorReply::RESPONSE_TOO_LARGE,
            RpcStatus::General => ErrorReply::INTERNAL,
            RpcStatus::NotFound => ErrorReply::NOT_FOUND,
            RpcStatus::Forbidden => ErrorReply::PERMISSION_DENIED,
            RpcStatus::Conflict => ErrorReply::CONFLICT,
        })
    }
}

/// The deadline of a request, if its data carries one.
pub fn deadline(data: &[u8]) -> Result<Option<Duration>, ErrorReply> {
    let Some(value) = member(data, "deadline") else {
        return Ok(None);
    };
    let seconds = value
        .as_f64()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .ok_or_else(|| {
            ErrorReply::BAD_REQUEST.with_message("deadline must be a number of seconds")
        })?;
    let deadline = Duration::from_secs_f64(seconds.min(u32::MAX as f64));
    if deadline < MIN_DEADLINE {
        return Err(ErrorReply::BAD_REQUEST.with_message("deadline is below the 1 s minimum"));
    }
    Ok(Some(deadline))
}

/// A member of `data` when it is a JSON object.
pub fn member(data: &[u8], name: &str) -> Option<serde_json::Value> {
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(serde_json::Value::Object(mut object)) => object.remove(name),
        _ => None,
    }
}

/// One item of a streamed response, as a `message` push.
pub fn stream_item(
    format: Format,
    request_id: u32,
    seq: u32,
    payload: &[u8],
) -> Result<Bytes, EncodeError> {
    let data = stream_item_data(request_id.into(), seq, payload);
    encode_push(
        format,
        Push {
            message: Some(Message {
                data: Bytes::from(data),
            }),
            ..Push::default()
        },
    )
}

/// The JSON of one item of a streamed response: `{"request_id", "seq", "flags": 0, "payload"}`.
/// The secure transport's request ids are 64-bit, hence `i64`.
pub fn stream_item_data(request_id: i64, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(64 + payload.len());
    data.extend_from_slice(
        format!("{{\"request_id\":{request_id},\"seq\":{seq},\"flags\":0,\"payload\":").as_bytes(),
    );
    data.extend_from_slice(payload);
    data.push(b'}');
    data
}

/// The result data of the rpc Reply that ends a streamed response.
pub fn stream_end(items: u32) -> Bytes {
    Bytes::from(format!("{{\"flags\":{FLAG_FIN},\"items\":{items}}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines() {
        assert_eq!(deadline(b""), Ok(None));
        assert_eq!(deadline(b"[1]"), Ok(None));
        assert_eq!(deadline(b"{\"symbol\":\"x\"}"), Ok(None));
        assert_eq!(
            deadline(b"{\"deadline\":2.5}"),
            Ok(Some(Duration::from_millis(2500)))
        );
        assert_eq!(deadline(b"{\"deadline\":0.5}").unwrap_err().code, 107);
        assert_eq!(deadline(b"{\"deadline\":\"5\"}").unwrap_err().code, 107);
        assert_eq!(deadline(b"{\"deadline\":-3}").unwrap_err().code, 107);
    }

    #[test]
    fn every_error_status_has_a_code() {
        use RpcStatus::*;
        let codes: Vec<u32> = [
            BadRequest,
            UnsupportedMethod,
            NotImplemented,
            Timeout,
            MalformedResponse,
            General,
            NotFound,
            ProtocolError,
            Forbidden,
            Conflict,
        ]
        .iter()
        .map(|s| s.error_reply().unwrap().code)
        .collect();
        assert_eq!(
            codes,
            [107, 104, 108, 1004, 1005, 100, 1007, 107, 103, 1010]
        );
        assert!(Ok.error_reply().is_none());
    }

    #[test]
    fn stream_items_are_message_pushes() {
        let item = stream_item(Format::Json, 7, 2, b"[\"a\"]").unwrap();
        assert_eq!(
            &item[..],
            &b"{\"push\":{\"message\":{\"data\":{\"request_id\":7,\"seq\":2,\"flags\":0,\"payload\":[\"a\"]}}}}"[..]
        );
        assert_eq!(&stream_end(3)[..], b"{\"flags\":1,\"items\":3}");
    }
}
