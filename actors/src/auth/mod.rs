//! Authentication: connection and subscription tokens (JWT), verified as Centrifugo does.
//!
//! A client proves who it is with a connection token (its `sub` becomes the session's user) and
//! gets into a private channel with a subscription token (which names the `channel`). Both are
//! JWTs signed by the application's backend, so the broker only needs the verifying keys: an
//! HMAC secret (HS256), an RSA (RS256) or P-256 (ES256) public key, or a JWKS file.
//!
//! [`TokenVerifier`] refuses by default: only the algorithms a configured key can verify are
//! accepted, so a token cannot pick a weaker algorithm or reuse a public key as an HMAC secret.
//! Time checks take `now` from the caller, which keeps them deterministic in tests.
//!
//! Nothing here puts a token, a secret or key material into an error, a log line or `Debug`
//! output: errors are fixed reasons, and key errors name the setting, not its value.

mod keys;
#[cfg(test)]
mod tests;

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use keys::KeyError;
use keys::Keys;

/// How connection and subscription tokens are verified (the `[token]` config table). With no key
/// at all, every token is refused (disconnect 3500); clients connect anonymously, with a client
/// certificate, or with the key of a session a backend created.
///
/// `Debug` says whether the HMAC secret is set, never what it is.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
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

impl std::fmt::Debug for TokenSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSettings")
            .field("hmac_secret", &redacted(&self.hmac_secret))
            .field("rsa_public_key", &self.rsa_public_key)
            .field("ecdsa_public_key", &self.ecdsa_public_key)
            .field("jwks_file", &self.jwks_file)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .finish()
    }
}

/// What `Debug` shows of a secret: whether there is one.
pub fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() {
        "<empty>"
    } else {
        "<redacted>"
    }
}

/// The shortest HMAC secret accepted: HS256 gives no more security than its key has entropy, and
/// RFC 7518 asks for a key at least as long as the hash output.
pub const MIN_HMAC_SECRET_LEN: usize = 32;

impl TokenSettings {
    /// Checks what can be checked without reading files (config validation). The keys
    /// themselves are checked by [`TokenVerifier::from_settings`].
    pub fn check(&self) -> Result<(), String> {
        if !self.hmac_secret.is_empty() && self.hmac_secret.len() < MIN_HMAC_SECRET_LEN {
            return Err(format!(
                "token.hmac_secret must be at least {MIN_HMAC_SECRET_LEN} bytes (it has {})",
                self.hmac_secret.len()
            ));
        }
        Ok(())
    }
}

/// Why a token was refused. The reasons are fixed strings so that nothing from the token ends up
/// in a log line or a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// `exp <= now`.
    #[error("token expired")]
    Expired,
    /// `nbf > now`.
    #[error("token not yet valid")]
    NotYetValid,
    /// Anything else: a bad signature, an algorithm no key allows, a malformed token, a wrong
    /// audience or issuer, or a token of the other kind.
    #[error("invalid token: {0}")]
    Invalid(&'static str),
}

/// The claims of a verified connection token.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionClaims {
    /// `sub`; empty when absent: a token may authenticate an anonymous connection.
    pub user: String,
    /// `exp`, unix seconds; `None` = the connection never needs a refresh.
    pub expires_at: Option<u64>,
    /// `info`: any JSON value, as its raw JSON text (it is passed on to other clients as is).
    pub info: Option<Bytes>,
    /// `channels`: subscribed server-side at connect.
    pub channels: Vec<String>,
}

/// The claims of a verified subscription token.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionClaims {
    /// `sub`; the subscriber must be this user.
    pub user: String,
    /// `channel`: the only channel this token opens.
    pub channel: String,
    /// `exp`, unix seconds; `None` = the subscription never needs a refresh.
    pub expires_at: Option<u64>,
    /// `info`: any JSON value, as its raw JSON text.
    pub info: Option<Bytes>,
}

/// Verifies connection and subscription tokens against the configured keys. Built once from the
/// settings; immutable, so it is shared between sessions in an `Arc`.
pub struct TokenVerifier {
    keys: Keys,
}

// By hand: the derived output would print the HMAC secret.
impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("algorithms", &self.keys.algorithms())
            .finish_non_exhaustive()
    }
}

/// The claims both kinds of token may carry. Unknown claims are ignored, as JWT asks.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<serde_json::Number>,
    #[serde(default)]
    nbf: Option<serde_json::Number>,
    #[serde(default)]
    info: Option<Box<RawValue>>,
    #[serde(default)]
    channels: Option<Vec<String>>,
    // Only its presence matters in a connection token, hence any JSON value.
    #[serde(default)]
    channel: Option<serde_json::Value>,
}

/// The part of the header read before the signature is checked, to pick the key.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

impl TokenVerifier {
    /// Builds the keys from settings (reading the key and JWKS files). Errors name the setting and
    /// the problem, never a secret.
    pub fn from_settings(settings: &TokenSettings) -> Result<TokenVerifier, KeyError> {
        Ok(TokenVerifier {
            keys: Keys::from_settings(settings)?,
        })
    }

    /// Whether any key is configured (no key: every token is refused).
    pub fn is_configured(&self) -> bool {
        !self.keys.is_empty()
    }

    /// A connection token's claims. `now` = unix seconds.
    pub fn connection(&self, token: &str, now: u64) -> Result<ConnectionClaims, TokenError> {
        let claims = self.verify(token, now)?;
        // Otherwise a subscription token for one channel would log its holder in.
        if claims.channel.is_some() {
            return Err(TokenError::Invalid(
                "a subscription token is not a connection token",
            ));
        }
        Ok(ConnectionClaims {
            user: claims.sub.unwrap_or_default(),
            expires_at: numeric_date(claims.exp.as_ref(), false)?,
            info: raw_bytes(claims.info),
            channels: claims.channels.unwrap_or_default(),
        })
    }

    /// A subscription token's claims (must carry `channel`). `now` = unix seconds.
    pub fn subscription(&self, token: &str, now: u64) -> Result<SubscriptionClaims, TokenError> {
        let claims = self.verify(token, now)?;
        let channel = match claims.channel {
            Some(serde_json::Value::String(channel)) if !channel.is_empty() => channel,
            Some(serde_json::Value::String(_)) | None => {
                return Err(TokenError::Invalid("missing channel"))
            }
            Some(_) => return Err(TokenError::Invalid("malformed")),
        };
        Ok(SubscriptionClaims {
            user: claims.sub.unwrap_or_default(),
            channel,
            expires_at: numeric_date(claims.exp.as_ref(), false)?,
            info: raw_bytes(claims.info),
        })
    }

    /// Checks the signature, the audience and issuer, then the times.
    fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        if !self.is_configured() {
            return Err(TokenError::Invalid("no key configured"));
        }
        let header = raw_header(token)?;
        // RFC 7515: a header extension the verifier does not understand must not be ignored.
        if header.crit.is_some() {
            return Err(TokenError::Invalid("unsupported critical header"));
        }
        let alg = match header.alg.as_str() {
            "HS256" => Algorithm::HS256,
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            _ => return Err(TokenError::Invalid("algorithm not allowed")),
        };
        let key = self.keys.pick(alg, header.kid.as_deref())?;
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &key.validation)
            .map_err(|e| TokenError::Invalid(reason(e.kind())))?
            .claims;
        // Zero leeway: the backend and the broker are expected to have synchronised clocks, and
        // the time checks are done here because jsonwebtoken only knows the system clock.
        if let Some(exp) = numeric_date(claims.exp.as_ref(), false)? {
            if exp <= now {
                return Err(TokenError::Expired);
            }
        }
        if let Some(nbf) = numeric_date(claims.nbf.as_ref(), true)? {
            if nbf > now {
                return Err(TokenError::NotYetValid);
            }
        }
        Ok(claims)
    }
}

/// Reads the header without jsonwebtoken, which fails on an algorithm it does not know (`none`)
/// with the same error as on garbage; the caller tells those apart.
fn raw_header(token: &str) -> Result<RawHeader, TokenError> {
    const MALFORMED: TokenError = TokenError::Invalid("malformed");
    let (header, rest) = token.split_once('.').ok_or(MALFORMED)?;
    if rest.split('.').count() != 2 {
        return Err(MALFORMED);
    }
    let json = URL_SAFE_NO_PAD.decode(header).map_err(|_| MALFORMED)?;
    serde_json::from_slice(&json).map_err(|_| MALFORMED)
}

/// A JWT NumericDate as whole seconds, rounded towards the stricter side: an expiry down, a
/// not-before up.
fn numeric_date(
    value: Option<&serde_json::Number>,
    round_up: bool,
) -> Result<Option<u64>, TokenError> {
    let Some(value) = value else {
        return Ok(None);
    };
    if let Some(seconds) = value.as_u64() {
        return Ok(Some(seconds));
    }
    match value.as_f64() {
        Some(seconds) if seconds.is_finite() && seconds >= 0.0 => {
            let rounded = if round_up {
                seconds.ceil()
            } else {
                seconds.floor()
            };
            // `as` saturates, and u64::MAX seconds is "never" either way.
            Ok(Some(rounded as u64))
        }
        _ => Err(TokenError::Invalid("malformed")),
    }
}

fn raw_bytes(raw: Option<Box<RawValue>>) -> Option<Bytes> {
    raw.map(|raw| Bytes::from(String::from(Box::<str>::from(raw))))
}

fn reason(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => "algorithm not allowed",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => "wrong audience",
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => "wrong issuer",
        // The keys are checked at startup, so this is a key unfit for the token's algorithm.
        ErrorKind::InvalidKeyFormat | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidEcdsaKey => {
            "algorithm not allowed"
        }
        _ => "malformed",
    }
}

/// The validation jsonwebtoken does for one key: the signature with `alg` only, plus `aud` and
/// `iss` when configured. Times are checked by [`TokenVerifier`] against the caller's `now`.
fn validation(alg: Algorithm, settings: &TokenSettings) -> Validation {
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let mut required = Vec::new();
    if settings.audience.is_empty() {
        // Otherwise jsonwebtoken refuses every token that carries an `aud`.
        validation.validate_aud = false;
    } else {
        validation.set_audience(&[&settings.audience]);
        // jsonwebtoken lets a token without `aud` (or `iss`) through unless it is required.
        required.push("aud");
    }
    if !settings.issuer.is_empty() {
        validation.set_issuer(&[&settings.issuer]);
        required.push("iss");
    }
    validation.set_required_spec_claims(&required);
    validation
}

/// Signs `claims` with HS256 (for `rpc-crypto gentoken` and tests).
pub fn sign_hs256(secret: &[u8], claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    // HMAC takes a key of any length and a JSON value always serializes.
    .expect("HS256 signing cannot fail")
}

/// A fresh random secret, 32 bytes from the OS as 64 hex digits: an HMAC secret or an API key.
pub fn generate_secret() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
