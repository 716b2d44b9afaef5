//! The handshake one step at a time, and the WebSocket reads and writes under it.
//!
//! [`SecureClient::handshake`](crate::SecureClient::handshake) is these steps in order:
//! [`send_client_hello`], [`read_server_hello`], [`send_signature`]. Tests call them one by one
//! to misbehave at a chosen step: a hello sealed to the wrong key, a garbage signature
//! ([`send_binary`] of any bytes), a hello that never comes.
//!
//! Everything here works on any `WebSocketStream<S>` (plain TCP, TLS, or an in-memory stream).

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rand::{CryptoRng, RngCore};
use rpc_crypto_proto::secure::{
    sign_challenge, ClientHello, ClientMessage, PrivateKey, PublicKey, ServerHello,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::ClientError;

/// The version-1 heartbeat: one zero byte, unencrypted. Never a valid frame (a frame is at
/// least 32 bytes), so it cannot be mistaken for one.
pub const HEARTBEAT: [u8; 1] = [0];

/// The close code reported for a close frame that carries none (RFC 6455, 1005).
pub const NO_STATUS_CODE: u16 = 1005;

/// One thing read from the socket, below the secure layer.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A binary message other than the heartbeat.
    Binary(Bytes),
    /// The version-1 heartbeat ([`HEARTBEAT`]).
    Heartbeat,
    /// A close frame: its code (or [`NO_STATUS_CODE`]) and reason.
    Closed { code: u16, reason: String },
}

/// Reads the next binary message, heartbeat or close frame. Pings are answered (tungstenite
/// queues the pong; it is flushed here rather than on some later write), pongs skipped. A text
/// frame is [`ClientError::UnexpectedFrame`]; the end of the stream without a close frame is
/// [`ClientError::ConnectionLost`]. After a close frame, the caller should [`flush_close_reply`].
///
/// Cancel safe: it awaits only the socket's read and flush.
pub(crate) async fn read_incoming<S>(ws: &mut WebSocketStream<S>) -> Result<Incoming, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let message = match ws.next().await {
            None => return Err(ClientError::ConnectionLost),
            Some(Err(tungstenite::Error::Protocol(
                ProtocolError::ResetWithoutClosingHandshake,
            ))) => return Err(ClientError::ConnectionLost),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(message)) => message,
        };
        match message {
            Message::Binary(bytes) if bytes[..] == HEARTBEAT => return Ok(Incoming::Heartbeat),
            Message::Binary(bytes) => return Ok(Incoming::Binary(bytes)),
            Message::Text(_) => return Err(ClientError::UnexpectedFrame("text frame".into())),
            Message::Ping(_) => ws.flush().await?,
            Message::Pong(_) | Message::Frame(_) => {}
            Message::Close(frame) => {
                let (code, reason) = match frame {
                    Some(frame) => (u16::from(frame.code), frame.reason.as_str().to_owned()),
                    None => (NO_STATUS_CODE, String::new()),
                };
                return Ok(Incoming::Closed { code, reason });
            }
        }
    }
}

/// Writes the close reply tungstenite queued on reading the server's close frame. Errors are
/// ignored: the connection is over either way.
pub(crate) async fn flush_close_reply<S>(ws: &mut WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = ws.flush().await;
}

/// Sends one binary message (and flushes).
pub async fn send_binary<S>(
    ws: &mut WebSocketStream<S>,
    bytes: impl Into<Bytes>,
) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(Message::Binary(bytes.into())).await?;
    Ok(())
}

/// Reads the next binary message, skipping heartbeats (a version-1 server may start them
/// early). A close frame is [`ClientError::Closed`], a text frame
/// [`ClientError::UnexpectedFrame`].
pub async fn read_binary<S>(ws: &mut WebSocketStream<S>) -> Result<Bytes, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match read_incoming(ws).await? {
            Incoming::Binary(bytes) => return Ok(bytes),
            Incoming::Heartbeat => {}
            Incoming::Closed { code, reason } => {
                flush_close_reply(ws).await;
                return Err(ClientError::Closed { code, reason });
            }
        }
    }
}

/// Step 1: sends `hello` RSA-OAEP encrypted to `server_public_key`.
pub async fn send_client_hello<S, R>(
    ws: &mut WebSocketStream<S>,
    hello: &ClientHello,
    server_public_key: &PublicKey,
    rng: &mut R,
) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: CryptoRng + RngCore,
{
    let sealed = hello.seal(server_public_key, rng)?;
    send_binary(ws, sealed).await
}

/// Step 2: reads the server's hello and decrypts it with the client's private key.
pub async fn read_server_hello<S, R>(
    ws: &mut WebSocketStream<S>,
    client_private_key: &PrivateKey,
    rng: &mut R,
) -> Result<ServerHello, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: CryptoRng + RngCore,
{
    let message = read_binary(ws).await?;
    Ok(ServerHello::open(client_private_key, &message, rng)?)
}

/// Refuses a challenge that decodes as a client message: versions 1–2 sign every client frame
/// with the same key and RSA-PSS scheme as the challenge, so signing such a challenge would
/// give the server (or whoever encrypted a hello to our public key) a valid signed frame.
/// A random 32-byte challenge practically never has that shape.
pub fn check_challenge(data_to_sign: &[u8]) -> Result<(), ClientError> {
    if ClientMessage::decode(data_to_sign).is_ok() {
        return Err(ClientError::SuspiciousChallenge);
    }
    Ok(())
}

/// Step 3: signs `data_to_sign` (RSA-PSS, SHA-512) and sends the signature, after
/// [`check_challenge`].
pub async fn send_signature<S, R>(
    ws: &mut WebSocketStream<S>,
    client_private_key: &PrivateKey,
    data_to_sign: &[u8],
    rng: &mut R,
) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: CryptoRng + RngCore,
{
    check_challenge(data_to_sign)?;
    let signature = sign_challenge(client_private_key, data_to_sign, rng)?;
    send_binary(ws, signature).await
}
