//! The secure transport of seed 002 (the cryptology client's protocol), as pure functions over
//! bytes: XDR, the three-message RSA handshake, and AES-256-CBC frames. No sockets, no actors.
//!
//! # The protocol
//! 1. Client → server, [`ClientHello`]: RSA-OAEP (SHA-1, MGF1-SHA-1, no label) to the server's
//!    key, of XDR `bytes client_id, hyper last_seen_order, bytes client_aes_key[32], uint version`
//!    (`version` absent = 1).
//! 2. Server → client, [`ServerHello`]: RSA-OAEP to the client's key (looked up by client id), of
//!    XDR `bytes data_to_sign, hyper last_seen_sequence, bytes server_aes_key[32],
//!    uint server_version` (absent = 1).
//! 3. Client → server: the raw RSA-PSS signature (SHA-512, MGF1-SHA-512, maximum salt length) of
//!    `data_to_sign` ([`sign_challenge`] / [`verify_challenge`]).
//!
//! Then every frame is `IV(16) || AES-256-CBC(PKCS7(plaintext))` ([`frame`]); each side encrypts
//! with its own key. Client plaintext is `enum type, hyper sequence_or_request_id, bytes json`,
//! wrapped for protocol versions 1–2 as `bytes rsa_pss_signature(buf), bytes buf`
//! ([`ClientLayout`]); server plaintext is `enum type` and the fields of a [`ServerMessage`].
//!
//! # Security
//! - **One generic failure.** Every way a peer's bytes can be refused — frame length, padding,
//!   XDR, message type, signature, RSA decryption, client id, key length, version — is the same
//!   [`SecureError`]: same `Display`, and all values compare equal. The reason is kept only for
//!   the server's own logs, behind [`SecureError::detail_for_logs`]; never send it to the peer.
//!   The server must answer any failure the same way (close the connection) and discard the
//!   session's keys, so a padding oracle yields at most one query per session key. The PKCS#7
//!   check itself runs in constant time.
//! - **No MAC on frames.** AES-CBC frames (server frames in every version, client frames from
//!   version 3) carry no MAC: they can be altered in flight undetected by this layer. Integrity
//!   comes from TLS underneath (`wss://`); run this transport only over TLS.
//! - **RUSTSEC-2023-0071 ("Marvin").** The `rsa` crate (0.9) has an open advisory: its private-key
//!   operations are not constant time, so the timing of RSA decryption can leak the server's key to
//!   an attacker who can make many decryption queries and time them closely. There is no fixed
//!   release. Mitigations here: decryption is blinded ([`PrivateKey::decrypt_oaep`]), and every
//!   failure is the one [`SecureError`]. The server **must** also rate-limit handshakes per remote
//!   address and per client id, answer every handshake failure identically (no step-specific
//!   errors or close codes, no early/late difference it can avoid), and keep the listener behind
//!   TLS.
//! - **Key hygiene.** [`AesKey`] and [`PrivateKey`] are wiped on drop (`zeroize`), their `Debug`
//!   never prints key bytes, and decrypted handshake plaintexts (which hold AES keys) are kept
//!   in `Zeroizing` buffers. Secrets are compared with `subtle` in constant time.
//!
//! # Versions
//! The server speaks up to [`PROTOCOL_VERSION`] (5, the real client's). The session's version is
//! [`negotiate_version`]`(client_version)`; it picks the client frame layout
//! ([`ClientLayout::for_version`]): signed for 1–2, plain from 3.

use std::fmt;

pub mod frame;
pub mod handshake;
pub mod keys;
pub mod xdr;

pub use frame::{
    open_client_frame, open_server_frame, seal_client_frame, seal_server_frame, ClientLayout,
    ClientMessage, ClientMessageType, FrameOpener, FrameSealer, ServerMessage, ServerMessageType,
};
pub use handshake::{
    negotiate_version, sign_challenge, verify_challenge, ClientHello, ServerHello, PROTOCOL_VERSION,
};
pub use keys::{AesKey, KeyError, PrivateKey, PublicKey};

/// The one error for anything a peer sends that cannot be accepted.
///
/// All values look the same: one `Display`, an opaque `Debug`, and `==` holds between any two.
/// Callers cannot (and must not try to) tell a padding failure from a parse or signature failure.
/// [`SecureError::detail_for_logs`] gives the reason for the server's own logs only.
#[derive(Clone, Copy)]
pub struct SecureError {
    detail: Detail,
}

/// The private reason behind a [`SecureError`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Detail {
    FrameLength,
    Padding,
    Xdr(xdr::XdrError),
    MessageType,
    Signature,
    RsaDecrypt,
    ClientId,
    KeyLength,
    Version,
}

impl SecureError {
    pub(crate) const fn new(detail: Detail) -> Self {
        SecureError { detail }
    }

    /// Why the bytes were refused, for the server's debug logs only. Never send this to the peer
    /// or let it change the response: that would make the server a padding/parsing oracle.
    pub fn detail_for_logs(&self) -> String {
        match self.detail {
            Detail::FrameLength => "frame length is not IV + a positive multiple of 16".into(),
            Detail::Padding => "bad PKCS#7 padding".into(),
            Detail::Xdr(e) => e.to_string(),
            Detail::MessageType => "unknown message type".into(),
            Detail::Signature => "bad RSA-PSS signature".into(),
            Detail::RsaDecrypt => "RSA-OAEP decryption failed".into(),
            Detail::ClientId => "client id is empty, too long or not printable ASCII".into(),
            Detail::KeyLength => "AES key is not 32 bytes".into(),
            Detail::Version => "protocol version 0".into(),
        }
    }
}

impl From<xdr::XdrError> for SecureError {
    fn from(e: xdr::XdrError) -> Self {
        SecureError::new(Detail::Xdr(e))
    }
}

impl fmt::Display for SecureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("secure transport: message rejected")
    }
}

impl fmt::Debug for SecureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecureError")
    }
}

/// Any two are equal: the reason is not part of the value callers see.
impl PartialEq for SecureError {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for SecureError {}

impl std::error::Error for SecureError {}

/// Our own message could not be built (a local fault, not a peer's): a field above the XDR
/// maximum, or an RSA operation that failed (message too long for the key, RNG failure).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("secure transport: {0}")]
    Xdr(#[from] xdr::XdrError),
    #[error("secure transport: RSA: {0}")]
    Rsa(#[from] rsa::Error),
}

#[cfg(test)]
mod interop_vectors;
#[cfg(test)]
pub(crate) mod test_keys;
