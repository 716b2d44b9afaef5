//! The two Centrifuge wire formats as pure functions over bytes.
//!
//! - JSON: text frames, one Command (or Reply) per line, lines joined by `\n`.
//! - Protobuf: binary frames, each message prefixed by its varint length.
//!
//! Every outbound message is encoded once into an *item* ([`Bytes`]): a JSON line without its
//! newline, or a length-prefixed Protobuf message. [`append_item`] joins items into one frame, so
//! the bytes of a publication are shared by every subscriber and only framing is per connection.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message as _;

use crate::json::JsonText;
use crate::protocol::{Command, Publication, Push, Reply};

/// The wire format of one connection, fixed when it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Json,
    Protobuf,
}

impl Format {
    /// The WebSocket subprotocol that selects Protobuf.
    pub const PROTOBUF_SUBPROTOCOL: &'static str = "centrifuge-protobuf";
    /// The optional WebSocket subprotocol that names JSON explicitly.
    pub const JSON_SUBPROTOCOL: &'static str = "centrifuge-json";

    /// `?cf_protocol=` values: `json` or `protobuf`.
    pub fn from_query_value(value: &str) -> Option<Self> {
        match value {
            "json" => Some(Format::Json),
            "protobuf" => Some(Format::Protobuf),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Protobuf => "protobuf",
        }
    }
}

/// Why an inbound frame could not be read as commands.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed JSON command: {0}")]
    Json(#[from] serde_json::Error),
    #[error("malformed Protobuf command: {0}")]
    Protobuf(#[from] prost::DecodeError),
}

/// The commands of one inbound frame, decoded one at a time so that a bad command in the middle
/// of a batch still lets the ones before it run.
pub fn decode_commands(format: Format, frame: &[u8]) -> Commands<'_> {
    Commands {
        format,
        rest: frame,
    }
}

/// Iterator returned by [`decode_commands`].
pub struct Commands<'a> {
    format: Format,
    rest: &'a [u8],
}

impl Iterator for Commands<'_> {
    type Item = Result<Command, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.format {
            Format::Json => loop {
                if self.rest.is_empty() {
                    return None;
                }
                let (line, rest) = match self.rest.iter().position(|&b| b == b'\n') {
                    Some(at) => (&self.rest[..at], &self.rest[at + 1..]),
                    None => (self.rest, &[][..]),
                };
                self.rest = rest;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(serde_json::from_slice(line).map_err(DecodeError::from));
            },
            Format::Protobuf => {
                if self.rest.is_empty() {
                    return None;
                }
                let mut buf = self.rest;
                let result = Command::decode_length_delimited(&mut buf);
                // A bad message ends the batch: its length can no longer be trusted.
                self.rest = if result.is_ok() { buf } else { &[] };
                Some(result.map_err(DecodeError::from))
            }
        }
    }
}

/// Why a message could not be encoded: in JSON, a `bytes` field (data, info) that is not JSON
/// text cannot be embedded. Protobuf encoding never fails.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode as JSON: {0}")]
pub struct EncodeError(#[from] serde_json::Error);

/// Encodes commands into one client frame: what a client of this protocol sends.
pub fn encode_commands(format: Format, commands: &[Command]) -> Result<Bytes, EncodeError> {
    let mut frame = BytesMut::new();
    for command in commands {
        match format {
            Format::Json => append_item(format, &mut frame, &serde_json::to_vec(command)?),
            Format::Protobuf => frame.extend_from_slice(&command.encode_length_delimited_to_vec()),
        }
    }
    Ok(frame.freeze())
}

/// Encodes one Reply as an item.
pub fn encode_reply(format: Format, reply: &Reply) -> Result<Bytes, EncodeError> {
    Ok(match format {
        Format::Json => Bytes::from(serde_json::to_vec(reply)?),
        Format::Protobuf => Bytes::from(reply.encode_length_delimited_to_vec()),
    })
}

/// Encodes a Reply, or, when it cannot be encoded, error 100 (internal) for its id in its place,
/// with the reason for the caller to log: the client always gets an answer it can read.
pub fn encode_reply_or_internal(format: Format, reply: &Reply) -> (Bytes, Option<EncodeError>) {
    match encode_reply(format, reply) {
        Ok(item) => (item, None),
        Err(error) => (internal_error_item(format, reply.id), Some(error)),
    }
}

/// Error 100 for the command `id` (0: a push context), written without serde so that it cannot
/// fail.
fn internal_error_item(format: Format, id: u32) -> Bytes {
    let error = crate::codes::ErrorReply::INTERNAL;
    match format {
        Format::Json => {
            let mut out = BytesMut::with_capacity(96);
            if id != 0 {
                let _ = write!(
                    out,
                    "{{\"id\":{id},\"error\":{{\"code\":{},\"message\":",
                    error.code
                );
            } else {
                let _ = write!(out, "{{\"error\":{{\"code\":{},\"message\":", error.code);
            }
            write_json_string(&mut out, &error.message);
            out.put_slice(b",\"temporary\":true}}");
            out.freeze()
        }
        Format::Protobuf => Bytes::from(
            Reply {
                id,
                error: Some(error.to_proto()),
                ..Reply::default()
            }
            .encode_length_delimited_to_vec(),
        ),
    }
}

/// Encodes a push (a Reply with no id) as an item.
pub fn encode_push(format: Format, push: Push) -> Result<Bytes, EncodeError> {
    encode_reply(
        format,
        &Reply {
            push: Some(push),
            ..Reply::default()
        },
    )
}

/// The server's ping: an empty Reply (`{}` in JSON, a zero-length message in Protobuf).
pub fn ping_item(format: Format) -> Bytes {
    match format {
        Format::Json => Bytes::from_static(b"{}"),
        Format::Protobuf => Bytes::from_static(&[0]),
    }
}

/// Encodes the push of a publication of `data` at `offset` (0: none) on `channel`: the hot path,
/// run once per publication and format. It cannot fail: `data` is [`JsonText`].
pub fn encode_publication(format: Format, channel: &str, data: &JsonText, offset: u64) -> Bytes {
    match format {
        Format::Json => {
            // Written by hand so the data is copied once, not parsed again as serde's RawValue
            // would.
            let data = data.bytes();
            let mut out = BytesMut::with_capacity(48 + channel.len() + data.len());
            out.put_slice(b"{\"push\":{\"channel\":");
            write_json_string(&mut out, channel);
            out.put_slice(b",\"pub\":{\"data\":");
            out.put_slice(data);
            if offset != 0 {
                // Writing into a BytesMut cannot fail.
                let _ = write!(out, ",\"offset\":{offset}");
            }
            out.put_slice(b"}}}");
            out.freeze()
        }
        Format::Protobuf => {
            let reply = Reply {
                push: Some(Push {
                    channel: channel.to_owned(),
                    r#pub: Some(Publication {
                        data: data.bytes().clone(),
                        offset,
                        ..Publication::default()
                    }),
                    ..Push::default()
                }),
                ..Reply::default()
            };
            Bytes::from(reply.encode_length_delimited_to_vec())
        }
    }
}

/// A string as a JSON string literal.
fn write_json_string(out: &mut BytesMut, text: &str) {
    // serde_json writes a &str into any io::Write; a BytesMut's writer cannot fail.
    let _ = serde_json::to_writer(out.writer(), text);
}

/// Appends one item to a frame being built: JSON lines are joined by `\n`, Protobuf messages
/// already carry their lengths.
pub fn append_item(format: Format, frame: &mut BytesMut, item: &[u8]) {
    if format == Format::Json && !frame.is_empty() {
        frame.put_u8(b'\n');
    }
    frame.put_slice(item);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ConnectRequest, PublishRequest};

    fn json_commands(frame: &str) -> Vec<Command> {
        decode_commands(Format::Json, frame.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn json_batch_of_the_js_sdk() {
        let cmds = json_commands(
            "{\"connect\":{\"name\":\"js\"},\"id\":1}\n{\"subscribe\":{\"channel\":\"news\",\"flag\":1},\"id\":2}",
        );
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[0].id, 1);
        assert_eq!(cmds[0].connect.as_ref().unwrap().name, "js");
        let sub = cmds[1].subscribe.as_ref().unwrap();
        assert_eq!((sub.channel.as_str(), sub.flag), ("news", 1));
    }

    #[test]
    fn json_data_is_raw_and_null_is_empty() {
        let cmds = json_commands(
            "{\"id\":3,\"publish\":{\"channel\":\"a\",\"data\":{\"x\": [1, 2]}}}\n\n{\"id\":4,\"connect\":{\"data\":null}}\n",
        );
        assert_eq!(
            &cmds[0].publish.as_ref().unwrap().data[..],
            b"{\"x\": [1, 2]}"
        );
        assert!(cmds[1].connect.as_ref().unwrap().data.is_empty());
    }

    #[test]
    fn json_bad_line_stops_only_itself() {
        let mut it = decode_commands(Format::Json, b"{\"id\":1}\n{\"id\":\n{\"id\":2}");
        assert_eq!(it.next().unwrap().unwrap().id, 1);
        assert!(it.next().unwrap().is_err());
        assert_eq!(it.next().unwrap().unwrap().id, 2);
    }

    #[test]
    fn json_reply_leaves_defaults_out() {
        let reply = Reply {
            id: 7,
            publish: Some(Default::default()),
            ..Default::default()
        };
        assert_eq!(
            &encode_reply(Format::Json, &reply).unwrap()[..],
            b"{\"id\":7,\"publish\":{}}"
        );
        assert_eq!(
            &encode_reply(Format::Json, &Reply::default()).unwrap()[..],
            b"{}"
        );
    }

    #[test]
    fn encoded_commands_decode_again() {
        let commands = [
            Command {
                id: 1,
                connect: Some(ConnectRequest::default()),
                ..Default::default()
            },
            Command::default(),
        ];
        for format in [Format::Json, Format::Protobuf] {
            let frame = encode_commands(format, &commands).unwrap();
            let decoded: Vec<Command> = decode_commands(format, &frame)
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(decoded, commands);
        }
        assert_eq!(
            &encode_commands(Format::Json, &commands).unwrap()[..],
            b"{\"id\":1,\"connect\":{}}\n{}"
        );
    }

    #[test]
    fn protobuf_batch_round_trips() {
        let a = Command {
            id: 1,
            connect: Some(ConnectRequest::default()),
            ..Default::default()
        };
        let b = Command {
            id: 2,
            publish: Some(PublishRequest {
                channel: "c".into(),
                data: Bytes::from_static(b"1"),
            }),
            ..Default::default()
        };
        let mut frame = a.encode_length_delimited_to_vec();
        frame.extend(b.encode_length_delimited_to_vec());
        frame.push(0); // an empty command: a pong
        let cmds: Vec<Command> = decode_commands(Format::Protobuf, &frame)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(cmds, vec![a, b, Command::default()]);
    }

    #[test]
    fn protobuf_truncated_is_an_error_that_ends_the_batch() {
        let mut it = decode_commands(Format::Protobuf, &[10, 8, 1]);
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }

    #[test]
    fn hand_written_publication_equals_serde() {
        let data = JsonText::parse(Bytes::from_static(b"{\"price\":\"1.5\"}")).unwrap();
        let publication = Publication {
            data: data.bytes().clone(),
            offset: 42,
            ..Default::default()
        };
        let channel = "ticker:sim:BTC/USDT \"q\"";
        for format in [Format::Json, Format::Protobuf] {
            let fast = encode_publication(format, channel, &data, 42);
            let slow = encode_push(
                format,
                Push {
                    channel: channel.into(),
                    r#pub: Some(publication.clone()),
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(fast, slow);
        }
        assert_eq!(
            &encode_publication(Format::Json, channel, &data, 42)[..],
            &b"{\"push\":{\"channel\":\"ticker:sim:BTC/USDT \\\"q\\\"\",\"pub\":{\"data\":{\"price\":\"1.5\"},\"offset\":42}}}"[..]
        );
    }

    #[test]
    fn a_reply_whose_data_is_not_json_is_an_error_not_a_panic() {
        let reply = Reply {
            push: Some(Push {
                channel: "c".into(),
                r#pub: Some(Publication {
                    data: Bytes::from_static(b"\"\xff\xfe\""),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(encode_reply(Format::Json, &reply).is_err());
        assert!(encode_reply(Format::Protobuf, &reply).is_ok());
    }

    #[test]
    fn the_internal_error_stand_in_equals_serde() {
        for id in [0, 7] {
            let reply = Reply {
                id,
                error: Some(crate::codes::ErrorReply::INTERNAL.to_proto()),
                ..Default::default()
            };
            for format in [Format::Json, Format::Protobuf] {
                assert_eq!(
                    internal_error_item(format, id),
                    encode_reply(format, &reply).unwrap()
                );
            }
        }
    }

    #[test]
    fn frames_join_json_with_newlines_and_protobuf_by_length() {
        let mut json = BytesMut::new();
        append_item(Format::Json, &mut json, b"{}");
        append_item(Format::Json, &mut json, b"{\"id\":1}");
        assert_eq!(&json[..], b"{}\n{\"id\":1}");
        let mut pb = BytesMut::new();
        append_item(Format::Protobuf, &mut pb, &ping_item(Format::Protobuf));
        append_item(Format::Protobuf, &mut pb, &[2, 8, 1]);
        assert_eq!(&pb[..], &[0, 2, 8, 1]);
    }
}
