//! A client for rpc-crypto's secure transport (seed 002, the cryptology client protocol) over
//! WebSocket, on top of the pure protocol layer in [`rpc_crypto_proto::secure`].
//!
//! # Session
//! 1. [`SecureClient::connect`] opens `ws://` (or [`SecureClient::handshake`] takes an open
//!    WebSocket, e.g. `wss://` the caller set up) and runs the three-message handshake: the
//!    client's hello sealed to the server's RSA key, the server's hello opened with the client's
//!    key, the RSA-PSS signature of the server's challenge ([`raw`] has the steps one by one).
//! 2. The session runs at the server's version; client frames are signed for versions 1–2
//!    ([`ClientLayout::for_version`]). Inbox messages are numbered from the server's
//!    `last_seen_sequence + 1`, RPC request ids from 1.
//! 3. [`SecureClient::next`] reads server frames as [`Event`]s: messages, the version-1
//!    heartbeat (one zero byte), and the server's close frame. [`SecureClient::rpc`] waits for
//!    one response and keeps everything else it meets for later `next` calls, in order.
//!
//! # Security
//! AES-CBC frames carry no MAC and the handshake does not authenticate the server to the
//! client, so run this over TLS (`wss://`) with the server's certificate verified. Keys stay out
//! of `Debug` output. RSA operations (the handshake, and signing every frame at versions 1–2)
//! run inline on the calling task.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::rngs::OsRng;
use rpc_crypto_proto::secure::handshake::MAX_CLIENT_ID_LEN;
use rpc_crypto_proto::secure::{
    open_server_frame, seal_client_frame, AesKey, ClientHello, ClientLayout, ClientMessage,
    PrivateKey, PublicKey, ServerMessage, PROTOCOL_VERSION,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

mod error;
pub mod raw;

pub use error::ClientError;

/// How long [`SecureClient::close`] waits for the server to answer the close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Who the client is and whom it talks to.
#[derive(Debug, Clone)]
pub struct ClientKeys {
    /// The id the server looks the client's public key up by (printable ASCII, no spaces).
    pub client_id: String,
    /// The client's RSA key: decrypts the server's hello, signs the challenge (and, at versions
    /// 1–2, every frame). Its `Debug` shows only the size.
    pub private_key: Arc<PrivateKey>,
    /// The server's RSA public key, to seal the client's hello to.
    pub server_public_key: PublicKey,
}

/// Session settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// The protocol version offered (default [`PROTOCOL_VERSION`]); the server may choose a lower
    /// one. 1 omits the version field from the hello, as the seed's client did.
    pub version: u32,
    /// The last ORDER processed in an earlier session (default 0); the server resends only newer
    /// outbox messages.
    pub last_seen_order: i64,
    /// The longest the handshake may take (default 10 s).
    pub handshake_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            version: PROTOCOL_VERSION,
            last_seen_order: 0,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// What the server said in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// The last inbox SEQUENCE the server saw; the client continues with the next.
    pub last_seen_sequence: i64,
    /// The session's protocol version.
    pub server_version: u32,
}

/// Something the server sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A decrypted server message.
    Message(ServerMessage),
    /// The version-1 heartbeat: one unencrypted zero byte (every 2 s in the seed).
    Heartbeat,
    /// The server closed the connection (1005 for a close frame without a code).
    Closed { code: u16, reason: String },
}

/// A session over the secure transport, after the handshake.
///
/// `S` is the WebSocket's byte stream: by default the one [`SecureClient::connect`] opens.
pub struct SecureClient<S = MaybeTlsStream<TcpStream>> {
    ws: WebSocketStream<S>,
    client_key: Arc<PrivateKey>,
    client_aes: AesKey,
    server_aes: AesKey,
    version: u32,
    layout: ClientLayout,
    /// The last inbox SEQUENCE used (the server's `last_seen_sequence` at first).
    last_sequence: i64,
    /// The last RPC request id used.
    last_request_id: i64,
    /// The highest ORDER handed to the caller (or the one we reconnected with).
    last_seen_order: i64,
    /// Events read while [`SecureClient::rpc`] waited, for [`SecureClient::next`].
    buffered: VecDeque<Event>,
    /// The server's close frame, once read.
    closed: Option<(u16, String)>,
    /// Whether [`Event::Closed`] has been handed out (or buffered).
    close_reported: bool,
}

impl SecureClient {
    /// Opens `url` (`ws://host:port/path`) and runs the handshake, both within
    /// `options.handshake_timeout`.
    pub async fn connect(
        url: &str,
        keys: &ClientKeys,
        options: Options,
    ) -> Result<(SecureClient, Handshake), ClientError> {
        validate(keys, &options)?;
        let steps = async {
            let (ws, _response) = tokio_tungstenite::connect_async(url).await?;
            SecureClient::handshake_steps(ws, keys, &options).await
        };
        tokio::time::timeout(options.handshake_timeout, steps)
            .await
            .map_err(|_| ClientError::Timeout)?
    }
}

impl<S> SecureClient<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Runs the handshake over an already open WebSocket (`wss://` set up by the caller, or a
    /// test's stream), within `options.handshake_timeout`.
    pub async fn handshake(
        ws: WebSocketStream<S>,
        keys: &ClientKeys,
        options: Options,
    ) -> Result<(SecureClient<S>, Handshake), ClientError> {
        validate(keys, &options)?;
        tokio::time::timeout(
            options.handshake_timeout,
            SecureClient::handshake_steps(ws, keys, &options),
        )
        .await
        .map_err(|_| ClientError::Timeout)?
    }

    /// The three handshake messages ([`raw`]'s steps), without a time limit.
    async fn handshake_steps(
        mut ws: WebSocketStream<S>,
        keys: &ClientKeys,
        options: &Options,
    ) -> Result<(SecureClient<S>, Handshake), ClientError> {
        let hello = ClientHello::generate(
            &mut OsRng,
            keys.client_id.as_str(),
            options.last_seen_order,
            options.version,
        );
        raw::send_client_hello(&mut ws, &hello, &keys.server_public_key, &mut OsRng).await?;
        let server_hello = raw::read_server_hello(&mut ws, &keys.private_key, &mut OsRng).await?;
        if server_hello.server_version > options.version {
            return Err(ClientError::VersionMismatch {
                offered: options.version,
                server: server_hello.server_version,
            });
        }
        raw::send_signature(
            &mut ws,
            &keys.private_key,
            &server_hello.data_to_sign,
            &mut OsRng,
        )
        .await?;
        let handshake = Handshake {
            last_seen_sequence: server_hello.last_seen_sequence,
            server_version: server_hello.server_version,
        };
        let client = SecureClient {
            ws,
            client_key: Arc::clone(&keys.private_key),
            client_aes: hello.client_key,
            server_aes: server_hello.server_key,
            version: handshake.server_version,
            layout: ClientLayout::for_version(handshake.server_version),
            last_sequence: handshake.last_seen_sequence,
            last_request_id: 0,
            last_seen_order: options.last_seen_order,
            buffered: VecDeque::new(),
            closed: None,
            close_reported: false,
        };
        Ok((client, handshake))
    }

    /// Sends an inbox message with the next SEQUENCE and returns that SEQUENCE.
    pub async fn send_inbox(&mut self, json: &str) -> Result<i64, ClientError> {
        let sequence = self
            .last_sequence
            .checked_add(1)
            .ok_or(ClientError::IdExhausted)?;
        let frame = self.seal_inbox_frame(sequence, json)?;
        // Counted once sealed: whether or not the send completes, never reuse a SEQUENCE.
        self.last_sequence = sequence;
        raw::send_binary(&mut self.ws, frame).await?;
        Ok(sequence)
    }

    /// Sends an inbox message with a SEQUENCE of the caller's choice (to test skipped or
    /// replayed sequences); the counter [`SecureClient::send_inbox`] uses does not move.
    pub async fn send_inbox_with_sequence(
        &mut self,
        sequence: i64,
        json: &str,
    ) -> Result<(), ClientError> {
        let frame = self.seal_inbox_frame(sequence, json)?;
        raw::send_binary(&mut self.ws, frame).await
    }

    /// Sends an RPC request with the next request id (from 1 on each connection) and returns
    /// that id. The response comes as an [`Event::Message`] of [`ServerMessage::RpcResponse`].
    /// The server refuses an id that is not above the last one (close 4001), so ids are never
    /// reused, not even for a send that failed.
    pub async fn send_rpc(&mut self, json: &str) -> Result<i64, ClientError> {
        let request_id = self
            .last_request_id
            .checked_add(1)
            .ok_or(ClientError::IdExhausted)?;
        let message = ClientMessage::rpc_request(request_id, json.as_bytes());
        let frame = self.seal(&message)?;
        self.last_request_id = request_id;
        raw::send_binary(&mut self.ws, frame).await?;
        Ok(request_id)
    }

    /// Sends an RPC request and waits up to `timeout` for its response's JSON. Whatever else
    /// arrives meanwhile is kept, in order, for later [`SecureClient::next`] calls. If the
    /// server closes first, the result is [`ClientError::Closed`] and `next` reports the
    /// buffered events, then [`Event::Closed`].
    pub async fn rpc(&mut self, json: &str, timeout: Duration) -> Result<String, ClientError> {
        let wait = async {
            let request_id = self.send_rpc(json).await?;
            loop {
                match self.read_event().await? {
                    Event::Message(ServerMessage::RpcResponse {
                        request_id: id,
                        json,
                    }) if id == request_id => return Ok(json),
                    Event::Closed { code, reason } => {
                        self.buffered.push_back(Event::Closed {
                            code,
                            reason: reason.clone(),
                        });
                        return Err(ClientError::Closed { code, reason });
                    }
                    other => self.buffered.push_back(other),
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    /// The next event: buffered ones first, then the socket. After [`Event::Closed`] has been
    /// returned, every call is [`ClientError::Closed`]. A frame that cannot be opened is
    /// [`ClientError::Secure`]; the session should then be dropped.
    pub async fn next(&mut self) -> Result<Event, ClientError> {
        let event = match self.buffered.pop_front() {
            Some(event) => event,
            None => self.read_event().await?,
        };
        if let Event::Message(ServerMessage::Outbox { order, .. }) = &event {
            self.last_seen_order = self.last_seen_order.max(*order);
        }
        Ok(event)
    }

    /// Like [`SecureClient::next`], but `Ok(None)` when nothing arrives within `timeout`.
    pub async fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Event>, ClientError> {
        match tokio::time::timeout(timeout, self.next()).await {
            Ok(result) => result.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Sends any WebSocket message as is (tests of bad input: text frames, tampered frames).
    pub async fn send_raw(&mut self, message: Message) -> Result<(), ClientError> {
        self.ws.send(message).await?;
        Ok(())
    }

    /// The sealed frame of an inbox message with this SEQUENCE, without sending it (for tests
    /// that tamper with the bytes, then [`SecureClient::send_raw`] them).
    pub fn seal_inbox_frame(&self, sequence: i64, json: &str) -> Result<Vec<u8>, ClientError> {
        self.seal(&ClientMessage::inbox(sequence, json.as_bytes()))
    }

    /// The sealed frame of an RPC request with this request id, without sending it (for tests
    /// that replay or reorder frames, then [`SecureClient::send_raw`] them); the counter
    /// [`SecureClient::send_rpc`] uses does not move.
    pub fn seal_rpc_frame(&self, request_id: i64, json: &str) -> Result<Vec<u8>, ClientError> {
        self.seal(&ClientMessage::rpc_request(request_id, json.as_bytes()))
    }

    /// The highest ORDER of the outbox messages [`SecureClient::next`] has returned, or the
    /// `last_seen_order` of [`Options`] if none: what to reconnect with.
    pub fn last_seen_order(&self) -> i64 {
        self.last_seen_order
    }

    /// The session's protocol version (the server's choice).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The last inbox SEQUENCE used (the server's `last_seen_sequence` before any).
    pub fn last_sequence(&self) -> i64 {
        self.last_sequence
    }

    /// Gives up the session, leaving the connection open: the WebSocket and the key that opens
    /// the server's frames ([`open_server_frame`]), for a caller that reads raw frames itself
    /// (the load generator in `bench/`, which decrypts without the per-message allocations of
    /// [`Event`]). Nothing can be sent through the session any more; events [`SecureClient::rpc`]
    /// buffered are dropped. The key is a secret: do not log or store it.
    pub fn into_parts(self) -> (WebSocketStream<S>, AesKey) {
        (self.ws, self.server_aes)
    }

    /// Closes the connection: a normal close frame, then up to 2 s for the server's reply.
    /// Nothing to do if the server closed first.
    pub async fn close(mut self) -> Result<(), ClientError> {
        if self.closed.is_some() {
            return Ok(());
        }
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        self.ws.close(Some(frame)).await?;
        // Read until the server's close reply ends the stream (or the wait runs out).
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
        Ok(())
    }

    fn seal(&self, message: &ClientMessage) -> Result<Vec<u8>, ClientError> {
        Ok(seal_client_frame(
            &self.client_aes,
            self.layout,
            &self.client_key,
            message,
            &mut OsRng,
        )?)
    }

    /// Reads one event from the socket (not the buffer). Cancel safe.
    async fn read_event(&mut self) -> Result<Event, ClientError> {
        if self.closed.is_none() {
            match raw::read_incoming(&mut self.ws).await? {
                raw::Incoming::Binary(bytes) => {
                    return Ok(Event::Message(open_server_frame(&self.server_aes, &bytes)?));
                }
                raw::Incoming::Heartbeat => return Ok(Event::Heartbeat),
                raw::Incoming::Closed { code, reason } => {
                    // Recorded before the flush, so a cancelled flush loses nothing.
                    self.closed = Some((code, reason));
                    raw::flush_close_reply(&mut self.ws).await;
                }
            }
        }
        let (code, reason) = self.closed.clone().unwrap_or_default();
        if self.close_reported {
            Err(ClientError::Closed { code, reason })
        } else {
            self.close_reported = true;
            Ok(Event::Closed { code, reason })
        }
    }
}

/// Refuses settings the server would refuse anyway: version 0, a client id that is empty, too
/// long or not printable ASCII (the server's rule).
fn validate(keys: &ClientKeys, options: &Options) -> Result<(), ClientError> {
    if options.version == 0 {
        return Err(ClientError::Config("protocol version 0"));
    }
    let id = keys.client_id.as_bytes();
    if id.is_empty() || id.len() > MAX_CLIENT_ID_LEN || !id.iter().all(u8::is_ascii_graphic) {
        return Err(ClientError::Config(
            "client id must be 1 to 128 bytes of printable ASCII without spaces",
        ));
    }
    Ok(())
}

impl<S> fmt::Debug for SecureClient<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureClient")
            .field("version", &self.version)
            .field("layout", &self.layout)
            .field("last_sequence", &self.last_sequence)
            .field("last_request_id", &self.last_request_id)
            .field("last_seen_order", &self.last_seen_order)
            .field("buffered", &self.buffered.len())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}
