//! The servers under test and how each one is spoken to: rpc-crypto (JSON and Protobuf, and
//! subscribers on its secure transport), NATS over WebSocket, and MQTT 3.1.1 over WebSocket
//! (Mosquitto).
//!
//! Each adapter opens a subscriber (connected, subscribed, and confirmed by the server) or a
//! publisher, and encodes a batch of payloads as one WebSocket message of its protocol. The
//! secure transport's subscribers are in [`crate::secure`].

use anyhow::{bail, Context as _};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use rpc_crypto_proto::codec::{encode_commands, Format};
use rpc_crypto_proto::protocol::{
    Command, ConnectRequest, PublishRequest, Reply, SubscribeRequest,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The channel (subject, topic) every run uses.
pub const CHANNEL: &str = "bench:fanout";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    RpcJson,
    RpcProtobuf,
    /// rpc-crypto's encrypted fan-out, `fanout` only: subscribers on the secure transport
    /// (`/connection/secure`, one client id each, see [`crate::secure`]), the publisher a plain
    /// JSON-wire client of the same server (`--url`), as with `rpc-json`. What is measured is the
    /// secure delivery: the server encrypts each publication once per subscriber (AES-256-CBC,
    /// its own WebSocket message each), where the JSON wire encodes it once for all and batches
    /// it into frames; the subscribers decrypt every message.
    RpcSecure,
    Nats,
    Mqtt,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::RpcJson => "rpc-crypto JSON",
            Target::RpcProtobuf => "rpc-crypto Protobuf",
            Target::RpcSecure => "rpc-crypto secure",
            Target::Nats => "NATS",
            Target::Mqtt => "Mosquitto",
        }
    }

    fn format(self) -> Format {
        if self == Target::RpcProtobuf {
            Format::Protobuf
        } else {
            Format::Json
        }
    }

    async fn open(self, url: &str) -> anyhow::Result<Ws> {
        let subprotocol = match self {
            Target::RpcProtobuf => Some(Format::PROTOBUF_SUBPROTOCOL),
            Target::Mqtt => Some("mqtt"),
            Target::RpcJson | Target::RpcSecure | Target::Nats => None,
        };
        connect(url, subprotocol).await
    }

    /// A connection subscribed to [`CHANNEL`], the subscription confirmed by the server.
    /// Not for [`Target::RpcSecure`], whose subscribers [`crate::secure`] opens.
    pub async fn subscriber(self, url: &str, n: usize) -> anyhow::Result<Ws> {
        if self == Target::RpcSecure {
            bail!("rpc-secure subscribers need the secure transport's keys");
        }
        let mut ws = self.open(url).await?;
        match self {
            Target::RpcJson | Target::RpcProtobuf => {
                let commands = [
                    rpc_connect(1),
                    Command {
                        id: 2,
                        subscribe: Some(SubscribeRequest {
                            channel: CHANNEL.into(),
                            ..SubscribeRequest::default()
                        }),
                        ..Command::default()
                    },
                ];
                ws.send(rpc_frame(self.format(), &commands)).await?;
                rpc_wait_reply(&mut ws, self.format(), 2).await?;
            }
            Target::RpcSecure => unreachable!("refused above"),
            Target::Nats => {
                let connect = format!(
                    "CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\nSUB {} 1\r\nPING\r\n",
                    nats_subject()
                );
                ws.send(Message::binary(connect.into_bytes())).await?;
                wait_for(&mut ws, |data| find(data, b"PONG\r\n")).await?;
            }
            Target::Mqtt => {
                ws.send(Message::binary(mqtt_connect(&format!("sub{n}"))))
                    .await?;
                wait_for(&mut ws, |data| data.first() == Some(&0x20)).await?;
                ws.send(Message::binary(mqtt_subscribe())).await?;
                wait_for(&mut ws, |data| data.first() == Some(&0x90)).await?;
            }
        }
        Ok(ws)
    }

    /// A connection ready to publish (for [`Target::RpcSecure`]: a JSON-wire one on `url`).
    pub async fn publisher(self, url: &str, n: usize) -> anyhow::Result<Ws> {
        let mut ws = self.open(url).await?;
        match self {
            Target::RpcJson | Target::RpcProtobuf | Target::RpcSecure => {
                ws.send(rpc_frame(self.format(), &[rpc_connect(1)])).await?;
                rpc_wait_reply(&mut ws, self.format(), 1).await?;
            }
            Target::Nats => {
                ws.send(Message::binary(
                    &b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n"[..],
                ))
                .await?;
                wait_for(&mut ws, |data| find(data, b"PONG\r\n")).await?;
            }
            Target::Mqtt => {
                ws.send(Message::binary(mqtt_connect(&format!("pub{n}"))))
                    .await?;
                wait_for(&mut ws, |data| data.first() == Some(&0x20)).await?;
            }
        }
        Ok(ws)
    }

    /// One WebSocket message publishing every payload in `payloads`, in order.
    /// `next_id` numbers rpc-crypto's commands.
    pub fn publish_message(self, payloads: &[Vec<u8>], next_id: &mut u32) -> Message {
        match self {
            Target::RpcJson | Target::RpcSecure => {
                let mut out = Vec::new();
                for payload in payloads {
                    if !out.is_empty() {
                        out.push(b'\n');
                    }
                    *next_id += 1;
                    out.extend_from_slice(
                        format!(
                            "{{\"id\":{next_id},\"publish\":{{\"channel\":\"{CHANNEL}\",\"data\":"
                        )
                        .as_bytes(),
                    );
                    out.extend_from_slice(payload);
                    out.extend_from_slice(b"}}");
                }
                Message::text(String::from_utf8(out).expect("payloads are ASCII"))
            }
            Target::RpcProtobuf => {
                let mut out = Vec::new();
                for payload in payloads {
                    *next_id += 1;
                    let command = Command {
                        id: *next_id,
                        publish: Some(PublishRequest {
                            channel: CHANNEL.into(),
                            data: Bytes::copy_from_slice(payload),
                        }),
                        ..Command::default()
                    };
                    command
                        .encode_length_delimited(&mut out)
                        .expect("Vec grows");
                }
                Message::binary(out)
            }
            Target::Nats => {
                let mut out = Vec::new();
                for payload in payloads {
                    out.extend_from_slice(
                        format!("PUB {} {}\r\n", nats_subject(), payload.len()).as_bytes(),
                    );
                    out.extend_from_slice(payload);
                    out.extend_from_slice(b"\r\n");
                }
                Message::binary(out)
            }
            Target::Mqtt => {
                let mut out = Vec::new();
                for payload in payloads {
                    mqtt_publish(payload, &mut out);
                }
                Message::binary(out)
            }
        }
    }

    /// What a subscriber must send back on receiving `data`, if anything (NATS PINGs).
    pub fn answer(self, data: &[u8]) -> Option<Message> {
        (self == Target::Nats && (data.starts_with(b"PING\r\n") || find(data, b"\r\nPING\r\n")))
            .then(|| Message::binary(&b"PONG\r\n"[..]))
    }
}

/// Opens a WebSocket, offering `subprotocol` if any.
pub(crate) async fn connect(url: &str, subprotocol: Option<&str>) -> anyhow::Result<Ws> {
    let mut request = url.into_client_request()?;
    if let Some(protocol) = subprotocol {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocol.parse()?);
    }
    // tokio-tungstenite zero-fills its read buffer on every read: keep it small.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .with_context(|| format!("cannot open {url}"))?;
    Ok(ws)
}

fn nats_subject() -> String {
    CHANNEL.replace(':', ".")
}

fn rpc_connect(id: u32) -> Command {
    Command {
        id,
        connect: Some(ConnectRequest::default()),
        ..Command::default()
    }
}

fn rpc_frame(format: Format, commands: &[Command]) -> Message {
    // The generator's own commands: their data is JSON text it wrote itself.
    let frame = encode_commands(format, commands).expect("the generator's commands encode");
    match format {
        Format::Json => Message::text(String::from_utf8(frame.to_vec()).expect("JSON is UTF-8")),
        Format::Protobuf => Message::binary(frame),
    }
}

/// Reads until the reply to command `id`; an error reply is an error.
async fn rpc_wait_reply(ws: &mut Ws, format: Format, id: u32) -> anyhow::Result<()> {
    loop {
        let data = next_data(ws).await?;
        let replies: Vec<Reply> = match format {
            Format::Json => data
                .split(|&b| b == b'\n')
                .map(serde_json::from_slice)
                .collect::<Result<_, _>>()?,
            Format::Protobuf => {
                let mut buf = &data[..];
                let mut replies = Vec::new();
                while !buf.is_empty() {
                    replies.push(Reply::decode_length_delimited(&mut buf)?);
                }
                replies
            }
        };
        for reply in replies {
            if let Some(error) = reply.error {
                bail!("the server refused command {}: {error:?}", reply.id);
            }
            if reply.id == id {
                return Ok(());
            }
        }
    }
}

async fn wait_for(ws: &mut Ws, done: impl Fn(&[u8]) -> bool) -> anyhow::Result<()> {
    loop {
        if done(&next_data(ws).await?) {
            return Ok(());
        }
    }
}

/// The next text or binary message's bytes.
pub async fn next_data(ws: &mut Ws) -> anyhow::Result<Bytes> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(Bytes::copy_from_slice(text.as_bytes())),
            Some(Ok(Message::Binary(data))) => return Ok(data),
            Some(Ok(Message::Close(frame))) => bail!("closed by the server: {frame:?}"),
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Err(error.into()),
            None => bail!("the connection ended"),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn mqtt_remaining_length(mut len: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
}

fn mqtt_string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// CONNECT, MQTT 3.1.1, clean session, no keep-alive.
fn mqtt_connect(client_id: &str) -> Vec<u8> {
    let mut body = Vec::new();
    mqtt_string("MQTT", &mut body);
    body.extend_from_slice(&[4, 0x02, 0, 0]);
    mqtt_string(client_id, &mut body);
    let mut out = vec![0x10];
    mqtt_remaining_length(body.len(), &mut out);
    out.extend(body);
    out
}

/// SUBSCRIBE to the bench topic at QoS 0.
fn mqtt_subscribe() -> Vec<u8> {
    let mut body = vec![0, 1];
    mqtt_string(&nats_subject(), &mut body);
    body.push(0);
    let mut out = vec![0x82];
    mqtt_remaining_length(body.len(), &mut out);
    out.extend(body);
    out
}

/// PUBLISH at QoS 0.
fn mqtt_publish(payload: &[u8], out: &mut Vec<u8>) {
    let topic = nats_subject();
    out.push(0x30);
    mqtt_remaining_length(2 + topic.len() + payload.len(), out);
    mqtt_string(&topic, out);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_lengths_are_varints() {
        let mut out = Vec::new();
        mqtt_remaining_length(321, &mut out);
        assert_eq!(out, [0xc1, 0x02]);
        let mut out = Vec::new();
        mqtt_publish(&[b'x'; 10], &mut out);
        assert_eq!(&out[..4], &[0x30, 24, 0, 12]);
    }
}
