//! Error and disconnect codes: Centrifuge's, exactly, plus the few RPC-Crypto adds.
//!
//! An [`ErrorReply`] answers one command and leaves the connection open; a [`Disconnect`] ends the
//! connection with a WebSocket close frame. The official SDKs reconnect after a disconnect code in
//! 3000–3499 or 4000–4499 and give up after 3500–3999 or 4500–4999.

use std::borrow::Cow;

use crate::protocol;

/// An error in a reply: `{"error":{"code":..,"message":..,"temporary":..}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    pub code: u32,
    pub message: Cow<'static, str>,
    /// The client may retry the same command later.
    pub temporary: bool,
}

const fn error(code: u32, message: &'static str, temporary: bool) -> ErrorReply {
    ErrorReply {
        code,
        message: Cow::Borrowed(message),
        temporary,
    }
}

impl ErrorReply {
    pub const INTERNAL: Self = error(100, "internal server error", true);
    pub const UNAUTHORIZED: Self = error(101, "unauthorized", false);
    pub const UNKNOWN_CHANNEL: Self = error(102, "unknown channel", false);
    pub const PERMISSION_DENIED: Self = error(103, "permission denied", false);
    pub const METHOD_NOT_FOUND: Self = error(104, "method not found", false);
    pub const ALREADY_SUBSCRIBED: Self = error(105, "already subscribed", false);
    pub const LIMIT_EXCEEDED: Self = error(106, "limit exceeded", false);
    pub const BAD_REQUEST: Self = error(107, "bad request", false);
    pub const NOT_AVAILABLE: Self = error(108, "not available", false);
    pub const TOKEN_EXPIRED: Self = error(109, "token expired", false);
    pub const EXPIRED: Self = error(110, "expired", false);
    pub const TOO_MANY_REQUESTS: Self = error(111, "too many requests", true);
    pub const UNRECOVERABLE_POSITION: Self = error(112, "unrecoverable position", false);

    /// RPC-Crypto: an rpc call ran past its deadline (seed-001 status Timeout).
    pub const DEADLINE_EXCEEDED: Self = error(1004, "deadline exceeded", true);
    /// RPC-Crypto: an rpc response would be larger than a frame (seed-001 MalformedResponse).
    pub const RESPONSE_TOO_LARGE: Self = error(1005, "response too large", false);
    /// RPC-Crypto: the thing an rpc call names does not exist (seed-001 NotFound).
    pub const NOT_FOUND: Self = error(1007, "not found", false);
    /// RPC-Crypto: the call conflicts with the current state (seed-001 Conflict).
    pub const CONFLICT: Self = error(1010, "conflict", false);

    // RPC-Crypto SessionError (seed 000): the answer to a connect that asks to resume a session.
    /// No resumable session with that id and key for this user: it never existed, its grace
    /// period ran out, the key is wrong, or it is another user's (one answer, so that nothing
    /// about other sessions leaks).
    pub const SESSION_NOT_FOUND: Self = error(1101, "session not found", false);
    /// The session exists, but messages after the client's last received one are no longer held
    /// (its queue overflowed while it was away, or the replay buffer moved past them). The
    /// session has ended; the client starts a new one and recovers its channels from history.
    pub const SESSION_GAP: Self = error(
        1102,
        "session cannot be resumed: missed messages are gone",
        false,
    );
    /// Another connection is taking the session over at this moment; try again.
    pub const SESSION_BUSY: Self = error(1103, "session busy", true);

    /// RPC-Crypto: the server holds `limits.max_channels` channels, each with a subscriber, and
    /// takes no new one until some are left; try again later.
    pub const TOO_MANY_CHANNELS: Self = error(1104, "too many channels", true);

    /// The same code with a more specific message.
    pub fn with_message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.message = message.into();
        self
    }

    pub fn to_proto(&self) -> protocol::Error {
        protocol::Error {
            code: self.code,
            message: self.message.clone().into_owned(),
            temporary: self.temporary,
        }
    }
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

/// A reason to end a connection, sent as the code and reason of the WebSocket close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    pub code: u16,
    /// Under 123 bytes, so that it fits a close frame.
    pub reason: Cow<'static, str>,
}

const fn disconnect(code: u16, reason: &'static str) -> Disconnect {
    Disconnect {
        code,
        reason: Cow::Borrowed(reason),
    }
}

impl Disconnect {
    // The client reconnects after these.
    pub const CONNECTION_CLOSED: Self = disconnect(3000, "connection closed");
    pub const SHUTDOWN: Self = disconnect(3001, "shutdown");
    pub const SERVER_ERROR: Self = disconnect(3004, "internal server error");
    pub const EXPIRED: Self = disconnect(3005, "connection expired");
    pub const SUBSCRIPTION_EXPIRED: Self = disconnect(3006, "subscription expired");
    pub const SLOW: Self = disconnect(3008, "slow");
    pub const WRITE_ERROR: Self = disconnect(3009, "write error");
    pub const INSUFFICIENT_STATE: Self = disconnect(3010, "insufficient state");
    pub const FORCE_RECONNECT: Self = disconnect(3011, "force reconnect");
    pub const NO_PONG: Self = disconnect(3012, "no pong");
    pub const TOO_MANY_REQUESTS: Self = disconnect(3013, "too many requests");
    pub const STATE_INVALIDATED: Self = disconnect(3014, "state invalidated");

    // The client gives up after these.
    pub const INVALID_TOKEN: Self = disconnect(3500, "invalid token");
    pub const BAD_REQUEST: Self = disconnect(3501, "bad request");
    pub const STALE: Self = disconnect(3502, "stale");
    pub const FORCE_DISCONNECT: Self = disconnect(3503, "force disconnect");
    pub const CONNECTION_LIMIT: Self = disconnect(3504, "connection limit");
    pub const CHANNEL_LIMIT: Self = disconnect(3505, "channel limit");
    pub const INAPPROPRIATE_PROTOCOL: Self = disconnect(3506, "inappropriate protocol");
    pub const PERMISSION_DENIED: Self = disconnect(3507, "permission denied");
    pub const NOT_AVAILABLE: Self = disconnect(3508, "not available");
    pub const TOO_MANY_ERRORS: Self = disconnect(3509, "too many errors");

    /// RPC-Crypto SessionClose: the client asked to end its session (`session.close`).
    pub const SESSION_CLOSED: Self = disconnect(4500, "session closed");
    /// Another connection resumed this session; this one is superseded (terminal, so the two do
    /// not take it from each other in a loop).
    pub const SESSION_RESUMED_ELSEWHERE: Self = disconnect(4505, "session resumed elsewhere");

    // RPC-Crypto session rejects (seed 001 handshake reject reasons), see `handshake`.
    /// NO_SERVER_SESSIONS_AVAILABLE: a session limit is reached; try again later.
    pub const NO_SERVER_SESSIONS_AVAILABLE: Self = disconnect(4102, "no server sessions available");
    /// UNSUPPORTED_VERSION: the client and the server share no protocol version.
    pub const UNSUPPORTED_VERSION: Self = disconnect(4501, "unsupported version");
    /// PROTOCOL_NOT_SUPPORTED: the client asked for a wire format this server does not speak.
    pub const PROTOCOL_NOT_SUPPORTED: Self = disconnect(4504, "protocol not supported");

    // The secure transport's close codes (seed 002, the cryptology client's).
    /// Another connection with the same client id took the session over.
    pub const CONCURRENT_CONNECTION: Self = disconnect(4000, "concurrent connection");
    /// A client message whose SEQUENCE is not the last one + 1 (replayed or skipped).
    pub const INVALID_SEQUENCE: Self = disconnect(4001, "invalid sequence");
    /// The client kept sending past its rate after THROTTLING.
    pub const RATE_LIMIT: Self = disconnect(4009, "rate limit");
    /// The server is going away or cannot go on with this connection now: reconnect.
    pub const SERVICE_RESTART: Self = disconnect(1012, "service restart");
    /// Any handshake or frame the secure transport cannot accept: one code and one reason
    /// whatever the cause (no padding or decryption oracle).
    pub const MESSAGE_REJECTED: Self = disconnect(1008, "message rejected");
    /// A text frame on the secure transport, which takes binary frames only.
    pub const BINARY_ONLY: Self = disconnect(1003, "binary frames only");

    /// The same code with a more specific reason, cut to fit a close frame.
    pub fn with_reason(mut self, reason: impl Into<Cow<'static, str>>) -> Self {
        let mut reason = reason.into().into_owned();
        if reason.len() > 120 {
            let mut end = 120;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
        }
        self.reason = Cow::Owned(reason);
        self
    }

    /// Whether the official SDKs reconnect after this code.
    pub fn reconnect(&self) -> bool {
        matches!(self.code, 3000..=3499 | 4000..=4499) || self.code >= 5000
    }
}

impl std::fmt::Display for Disconnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_follows_the_sdk_ranges() {
        assert!(Disconnect::SLOW.reconnect());
        assert!(Disconnect::NO_SERVER_SESSIONS_AVAILABLE.reconnect());
        assert!(!Disconnect::BAD_REQUEST.reconnect());
        assert!(!Disconnect::UNSUPPORTED_VERSION.reconnect());
    }

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let d = Disconnect::BAD_REQUEST.with_reason("é".repeat(100));
        assert!(d.reason.len() <= 120);
        assert!(d.reason.chars().all(|c| c == 'é'));
    }
}
