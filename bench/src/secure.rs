//! Subscribers on rpc-crypto's secure transport (`/connection/secure`, target `rpc-secure`).
//!
//! Each subscriber is its own client id (`<prefix><n>`: one id is one session, a second
//! connection with the same id would take the first one's over), all sharing one private key.
//! The handshake and the subscribe go through [`rpc_crypto_secure_client`]; after that the
//! scenario reads the raw WebSocket messages itself and opens each with the session's server
//! key ([`publication_time`]): one decryption buffer per message, the rest borrowed.
//!
//! Every publication comes as its own OUTBOX message whose JSON is the push the JSON wire would
//! carry, `{"push":{"channel":"bench:fanout","pub":{"data":<payload>}}}` (`,"offset":N` too when
//! the namespace keeps history).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use rpc_crypto_proto::protocol::Reply;
use rpc_crypto_proto::secure::xdr::Reader;
use rpc_crypto_proto::secure::{
    AesKey, FrameOpener, PrivateKey, PublicKey, SecureError, ServerMessage, ServerMessageType,
};
use rpc_crypto_secure_client::{raw::HEARTBEAT, ClientKeys, Event, Options, SecureClient};

use crate::payload;
use crate::target::{connect, Ws, CHANNEL};

/// How long a subscriber waits for the answer to its subscribe.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and as whom the subscribers of target `rpc-secure` connect.
#[derive(Debug, Clone)]
pub struct SecureSubscribers {
    /// The secure transport's URL, `ws://host:port/connection/secure`.
    pub url: String,
    /// The server's RSA public key.
    pub server_public_key: PublicKey,
    /// The private key every subscriber's client id shares (the server has its public key under
    /// each id).
    pub client_key: Arc<PrivateKey>,
    /// Subscriber `n` is client id `<client_prefix><n>`.
    pub client_prefix: String,
}

impl SecureSubscribers {
    /// Reads the keys from PEM files.
    pub fn load(
        url: String,
        server_public_key: &Path,
        client_key: &Path,
        client_prefix: String,
    ) -> anyhow::Result<Self> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
        };
        let server_public_key = PublicKey::from_pem(&read(server_public_key)?)
            .with_context(|| format!("server public key {}", server_public_key.display()))?;
        let client_key = PrivateKey::from_pem(&read(client_key)?)
            .with_context(|| format!("client private key {}", client_key.display()))?;
        Ok(SecureSubscribers {
            url,
            server_public_key,
            client_key: Arc::new(client_key),
            client_prefix,
        })
    }

    /// Subscriber `n`: handshake as `<prefix><n>`, subscribed to [`CHANNEL`] (the reply read),
    /// then handed over raw: the WebSocket and the key that opens the server's frames.
    pub async fn subscriber(&self, n: usize) -> anyhow::Result<(Ws, AesKey)> {
        let client_id = format!("{}{n}", self.client_prefix);
        let keys = ClientKeys {
            client_id: client_id.clone(),
            private_key: Arc::clone(&self.client_key),
            server_public_key: self.server_public_key.clone(),
        };
        // Opened here rather than by `SecureClient::connect`, for the small read buffer.
        let ws = connect(&self.url, None).await?;
        let (mut client, _) = SecureClient::handshake(ws, &keys, Options::default())
            .await
            .with_context(|| format!("secure handshake of client {client_id}"))?;
        client
            .send_inbox(&format!(
                "{{\"id\":1,\"subscribe\":{{\"channel\":\"{CHANNEL}\"}}}}"
            ))
            .await?;
        loop {
            match client.next_timeout(SUBSCRIBE_TIMEOUT).await? {
                None => bail!("client {client_id}: no answer to subscribe"),
                Some(Event::Message(ServerMessage::Outbox { json, .. })) => {
                    let reply: Reply = serde_json::from_str(&json)
                        .with_context(|| format!("client {client_id}: {json}"))?;
                    if let Some(error) = reply.error {
                        bail!("client {client_id}: the server refused subscribe: {error:?}");
                    }
                    if reply.id == 1 {
                        break;
                    }
                }
                Some(Event::Message(ServerMessage::Error {
                    error_type,
                    message,
                })) => bail!("client {client_id}: ERROR {error_type} {message:?}"),
                Some(Event::Closed { code, reason }) => {
                    bail!("client {client_id}: closed by the server: {code} {reason:?}")
                }
                Some(_) => {}
            }
        }
        Ok(client.into_parts())
    }
}

/// The send time of the benchmark payload a server frame carries: `Ok(None)` for anything but a
/// publication (a heartbeat, a reply, an ERROR before a close). A frame that does not open is
/// an error: the session's keys are not what this side thinks.
pub fn publication_time(opener: &FrameOpener, message: &[u8]) -> Result<Option<u64>, SecureError> {
    if message == HEARTBEAT {
        return Ok(None);
    }
    let plaintext = opener.open(message)?;
    Ok(publication_payload(&plaintext).and_then(payload::sent_at))
}

/// The published data in a server message's plaintext, if it is an OUTBOX message carrying a
/// publication push; borrowed from `plaintext`.
pub fn publication_payload(plaintext: &[u8]) -> Option<&[u8]> {
    push_data(outbox_json(plaintext)?)
}

/// The JSON of an OUTBOX message (XDR: `enum type, hyper order, double timestamp, string
/// json`), unvalidated as UTF-8.
fn outbox_json(plaintext: &[u8]) -> Option<&[u8]> {
    let mut r = Reader::new(plaintext);
    if r.int().ok()? != ServerMessageType::Outbox as i32 {
        return None;
    }
    r.hyper().ok()?;
    r.double().ok()?;
    let json = r.opaque().ok()?;
    r.finish().ok()?;
    Some(json)
}

/// The `data` of a publication push, `{"push":{"channel":"…","pub":{"data":<data>…}}}`, as the
/// server writes it (the channel, then `pub` with `data` first); `None` for anything else
/// (replies, other pushes). Runs once per delivery: it jumps through strings with `memchr`.
pub fn push_data(json: &[u8]) -> Option<&[u8]> {
    const PUSH: &[u8] = b"{\"push\":{\"channel\":";
    const DATA: &[u8] = b",\"pub\":{\"data\":";
    let rest = json.strip_prefix(PUSH)?;
    let data = rest[string_len(rest)?..].strip_prefix(DATA)?;
    Some(&data[..json_value_len(data)?])
}

/// The length of the JSON string at the start of `buf`, quotes included.
fn string_len(buf: &[u8]) -> Option<usize> {
    if buf.first() != Some(&b'"') {
        return None;
    }
    let mut at = 1;
    loop {
        at += memchr::memchr2(b'"', b'\\', buf.get(at..)?)?;
        if buf[at] == b'"' {
            return Some(at + 1);
        }
        at += 2; // a backslash and the character it escapes
    }
}

/// The length of the JSON value at the start of `buf` (an object, array, string, number or
/// literal), found from its brackets and strings alone.
fn json_value_len(buf: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = 0;
    while at < buf.len() {
        match buf[at] {
            b'"' => {
                at += string_len(&buf[at..])?;
                if depth == 0 {
                    return Some(at);
                }
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 0 => return (at > 0).then_some(at),
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(at + 1);
                }
            }
            // A scalar at the top ends with its container's next token.
            b',' if depth == 0 => return (at > 0).then_some(at),
            _ => {}
        }
        at += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rpc_crypto_proto::secure::seal_server_frame;

    fn outbox(json: &str) -> Vec<u8> {
        ServerMessage::Outbox {
            order: 7,
            timestamp: 1_764_000_000.5,
            json: json.into(),
        }
        .encode()
        .unwrap()
    }

    #[test]
    fn push_data_is_the_published_value() {
        let cases: [(&str, &str); 6] = [
            (
                r#"{"push":{"channel":"bench:fanout","pub":{"data":{"t":12,"p":"xx"}}}}"#,
                r#"{"t":12,"p":"xx"}"#,
            ),
            (
                r#"{"push":{"channel":"bench:fanout","pub":{"data":{"t":12,"p":"xx"},"offset":42}}}"#,
                r#"{"t":12,"p":"xx"}"#,
            ),
            // Braces, brackets, commas and escaped quotes inside strings; an escaped quote in
            // the channel.
            (
                r#"{"push":{"channel":"a \"b\"","pub":{"data":{"s":"}],\"{","a":[1,{"b":[]}]},"offset":1}}}"#,
                r#"{"s":"}],\"{","a":[1,{"b":[]}]}"#,
            ),
            (
                r#"{"push":{"channel":"c","pub":{"data":"str\\\"ing","offset":3}}}"#,
                r#""str\\\"ing""#,
            ),
            (
                r#"{"push":{"channel":"c","pub":{"data":-1.5e3}}}"#,
                "-1.5e3",
            ),
            (
                r#"{"push":{"channel":"c","pub":{"data":true,"offset":9}}}"#,
                "true",
            ),
        ];
        for (json, data) in cases {
            assert_eq!(push_data(json.as_bytes()), Some(data.as_bytes()), "{json}");
        }
    }

    #[test]
    fn strings_end_at_their_first_unescaped_quote() {
        for (json, len) in [
            (r#""""#, Some(2)),
            (r#""ab"c"#, Some(4)),
            (r#""a\\"b"#, Some(5)),
            (r#""a\"b"c"#, Some(6)),
            (r#""a\"b"#, None),
            (r#""ab\"#, None),
            (r#""ab\\"#, None),
            ("ab", None),
            ("", None),
        ] {
            assert_eq!(string_len(json.as_bytes()), len, "{json}");
        }
    }

    #[test]
    fn anything_but_a_publication_push_has_no_data() {
        for json in [
            r#"{"id":1,"subscribe":{}}"#,
            r#"{"id":2,"error":{"code":103,"message":"permission denied"}}"#,
            r#"{"push":{"channel":"c","join":{"info":{"client":"x"}}}}"#,
            r#"{"push":{"channel":"c","pub":{"data":{"t":1"#,
            r#"{"push":{"channel":"c","pub":{"data":}}}"#,
            r#"{"push":{"channel":"c","pub":{"data":"abc\"#,
            r#"{"push":{"channel":"c\","pub":{"data":1}}}"#,
            r#"{"push":{"channel":"c","join":{"data":1}}}"#,
            "",
        ] {
            assert_eq!(push_data(json.as_bytes()), None, "{json}");
        }
    }

    #[test]
    fn publication_payload_reads_outbox_messages_only() {
        let mut payload = Vec::new();
        payload::make(123_456_789, 64, &mut payload);
        let push = format!(
            r#"{{"push":{{"channel":"bench:fanout","pub":{{"data":{}}}}}}}"#,
            std::str::from_utf8(&payload).unwrap()
        );
        assert_eq!(publication_payload(&outbox(&push)), Some(&payload[..]));
        assert_eq!(
            publication_payload(&outbox(r#"{"id":1,"subscribe":{}}"#)),
            None
        );
        let broadcast = ServerMessage::Broadcast { json: push.clone() }
            .encode()
            .unwrap();
        assert_eq!(publication_payload(&broadcast), None);
        // Truncated or with bytes after it: not an OUTBOX message.
        let whole = outbox(&push);
        assert_eq!(publication_payload(&whole[..whole.len() - 4]), None);
        let mut longer = whole.clone();
        longer.extend_from_slice(&[0; 4]);
        assert_eq!(publication_payload(&longer), None);
    }

    #[test]
    fn publication_time_opens_the_frame() {
        let key = AesKey::from_bytes([7; 32]);
        let mut payload = Vec::new();
        payload::make(987_654_321, 64, &mut payload);
        let push = format!(
            r#"{{"push":{{"channel":"bench:fanout","pub":{{"data":{}}}}}}}"#,
            std::str::from_utf8(&payload).unwrap()
        );
        let message = ServerMessage::Outbox {
            order: 1,
            timestamp: 0.0,
            json: push,
        };
        let sealed = seal_server_frame(&key, &message, &mut rand::thread_rng()).unwrap();
        let opener = FrameOpener::new(&key);
        assert_eq!(publication_time(&opener, &sealed), Ok(Some(987_654_321)));
        assert_eq!(publication_time(&opener, &HEARTBEAT), Ok(None));
        let other = FrameOpener::new(&AesKey::from_bytes([8; 32]));
        assert!(
            publication_time(&other, &sealed).is_err() || {
                // A wrong key can still unpad by chance; then the XDR does not parse.
                publication_time(&other, &sealed) == Ok(None)
            }
        );
    }
}
