//! Authentication: connection and subscription tokens (JWT).

use serde::{Deserialize, Serialize};

/// How connection and subscription tokens are verified (the `[token]` config table). With no key
/// at all, every token is refused (disconnect 3500) and only anonymous clients connect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    /// HS256: the shared secret (at least 32 bytes).
    pub hmac_secret: String,
    /// RS256: the public key, as PEM text or the path of a PEM file.
    pub rsa_public_key: String,
    /// ES256: the public key (P-256), as PEM text or the path of a PEM file.
    pub ecdsa_public_key: String,
    /// RS256/ES256: the path of a JWKS file (`{"keys":[...]}`); a token's `kid` picks the key.
    pub jwks_file: String,
    /// When set, tokens must carry this `aud`.
    pub audience: String,
    /// When set, tokens must carry this `iss`.
    pub issuer: String,
}
