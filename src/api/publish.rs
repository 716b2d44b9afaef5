//! `publish {channel, data}`: publishes `data` (any JSON value) on a channel, as the server:
//! no client permission applies, only a channel the rules know.
//!
//! The Router itself drops a publication on a channel of an unknown namespace without a word (a
//! client's publish is checked by its session first), so the API checks the name here and
//! answers 102 (unknown namespace) or 107 (malformed name) rather than a false success.
//! `data` is re-written on one line without white space, keeping its key order and numbers
//! as sent: JSON subscribers receive it embedded in a JSON line. Data nested deeper than
//! [`MAX_DEPTH`](rpc_crypto_proto::json::MAX_DEPTH) is refused with HTTP 400, code 107, as a
//! client's publish is with 107.

use bytes::Bytes;
use rpc_crypto_actors::router::Publish;
use rpc_crypto_proto::json::JsonText;
use serde::Deserialize;
use serde_json::value::RawValue;

use rpc_crypto_proto::ErrorReply;

use super::{ask, channel_options, ApiError, ApiMethod, ApiState, Empty};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    pub channel: String,
    pub data: Box<RawValue>,
}

impl ApiMethod for PublishRequest {
    type Output = Empty;

    async fn apply(self, state: &ApiState) -> Result<Empty, ApiError> {
        // As a client's publish: a publication carries something.
        if self.data.get() == "null" {
            let error = ErrorReply::BAD_REQUEST.with_message("data required");
            return Err(ApiError::Method(error));
        }
        publish(state, self.channel, checked_data(&self.data)?).await?;
        Ok(Empty {})
    }
}

/// Checks the channel and hands the publication to the Router, waiting until it has been
/// queued to every subscriber (so a `history` right after sees it).
pub(super) async fn publish(
    state: &ApiState,
    channel: String,
    data: JsonText,
) -> Result<(), ApiError> {
    channel_options(state, &channel)?;
    ask(&state.router, Publish::new(channel, data)).await
}

/// The request's `data` as publication data: compacted, then checked as a client's is (its depth
/// above all: the body parser does not bound how deeply `data` nests).
pub(super) fn checked_data(raw: &RawValue) -> Result<JsonText, ApiError> {
    JsonText::parse(compact(raw)).map_err(|error| ApiError::BadRequest(error.to_string()))
}

/// `raw` without white space between tokens. Inside strings nothing changes (a raw newline cannot
/// be there: JSON strings escape control characters), so the result is one line.
pub(super) fn compact(raw: &RawValue) -> Bytes {
    let text = raw.get().as_bytes();
    let mut out = Vec::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for &byte in text {
        if in_string {
            out.push(byte);
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
        } else if !matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
            in_string = byte == b'"';
            out.push(byte);
        }
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_keeps_strings_order_and_numbers() {
        let raw: Box<RawValue> = serde_json::from_str(
            "{ \"z\" : [1, 2.50,\n 12345678901234567890 ],\r\n\t\"a\": \"x \\\" y\\\\\", \"b\": \" \" }",
        )
        .unwrap();
        assert_eq!(
            &compact(&raw)[..],
            b"{\"z\":[1,2.50,12345678901234567890],\"a\":\"x \\\" y\\\\\",\"b\":\" \"}"
        );
    }
}
