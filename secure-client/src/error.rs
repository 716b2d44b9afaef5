//! The client's error type.
//!
//! A server frame that cannot be opened is the proto layer's one opaque [`SecureError`]: the
//! client does not learn (and does not need) which check failed. After any error other than
//! [`ClientError::Timeout`] the session should be dropped and a new one opened.

use rpc_crypto_proto::secure::{EncodeError, SecureError};
use tokio_tungstenite::tungstenite;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The WebSocket failed (connect, I/O, protocol).
    #[error("websocket: {0}")]
    WebSocket(#[from] tungstenite::Error),
    /// A server message was refused: RSA decryption, AES frame, padding or XDR. Deliberately
    /// carries no detail.
    #[error(transparent)]
    Secure(#[from] SecureError),
    /// Our own message could not be built (a field too long, an RSA failure).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The server sent a frame of the wrong kind, e.g. a text frame (this transport is binary
    /// only).
    #[error("unexpected frame from the server: {0}")]
    UnexpectedFrame(String),
    /// The server closed the connection with this close code and reason (4000 concurrent
    /// connection, 4001 invalid sequence, 4009 rate limit, 1012 server restart, ...). 1005 stands
    /// for a close frame without a code.
    #[error("connection closed by the server: code {code}, reason {reason:?}")]
    Closed { code: u16, reason: String },
    /// The connection ended without a close frame.
    #[error("connection lost without a close frame")]
    ConnectionLost,
    /// The handshake or an RPC did not finish in time.
    #[error("timed out")]
    Timeout,
    /// The server chose a protocol version above the one the client offered.
    #[error("the server chose protocol version {server}, above the {offered} offered")]
    VersionMismatch { offered: u32, server: u32 },
    /// The server's challenge has the shape of a client message. Signing it would hand the
    /// server a valid signed frame (versions 1–2 sign frames with the same key and scheme), so
    /// the client refuses.
    #[error("refusing to sign a challenge that parses as a client message")]
    SuspiciousChallenge,
    /// The next SEQUENCE or request id would overflow an `i64`.
    #[error("sequence or request id space exhausted")]
    IdExhausted,
    /// The client's own settings are unusable (protocol version 0, an invalid client id).
    #[error("invalid client configuration: {0}")]
    Config(&'static str),
}
