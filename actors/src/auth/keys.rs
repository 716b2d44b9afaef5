//! The verifying keys, read from the `[token]` settings once at startup.
//!
//! Every key is checked here, so that a bad key is a startup error rather than every token
//! failing later with "bad signature".

use std::collections::HashMap;
use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, Validation};
use rsa::pkcs1::DecodeRsaPublicKey as _;

use super::{validation, TokenError, TokenSettings};

/// Why the `[token]` keys cannot be used. Names the setting and the problem, never key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key or JWKS file cannot be read.
    // The I/O error is in the message, not the source chain, so that it is not printed twice.
    #[error("token.{setting}: cannot read {path}: {error}")]
    Read {
        setting: &'static str,
        /// The path, or a placeholder when the value does not look like one (it may be a
        /// mangled key).
        path: String,
        error: std::io::Error,
    },
    /// A key is not what the setting needs.
    #[error("token.{setting}: {problem}")]
    Invalid {
        setting: &'static str,
        problem: String,
    },
}

fn invalid(setting: &'static str, problem: impl Into<String>) -> KeyError {
    KeyError::Invalid {
        setting,
        problem: problem.into(),
    }
}

/// A key with the validation it is used with (its algorithm, `aud`, `iss`).
pub(super) struct VerifyingKey {
    pub(super) key: DecodingKey,
    pub(super) validation: Validation,
    alg: Algorithm,
}

impl VerifyingKey {
    fn new(key: DecodingKey, alg: Algorithm, settings: &TokenSettings) -> Self {
        VerifyingKey {
            key,
            validation: validation(alg, settings),
            alg,
        }
    }
}

pub(super) struct Keys {
    hmac: Option<VerifyingKey>,
    rsa: Option<VerifyingKey>,
    ec: Option<VerifyingKey>,
    /// JWKS keys by `kid`.
    jwks: HashMap<String, VerifyingKey>,
}

impl Keys {
    pub(super) fn from_settings(settings: &TokenSettings) -> Result<Keys, KeyError> {
        let hmac = (!settings.hmac_secret.is_empty()).then(|| {
            VerifyingKey::new(
                DecodingKey::from_secret(settings.hmac_secret.as_bytes()),
                Algorithm::HS256,
                settings,
            )
        });
        let rsa = if settings.rsa_public_key.is_empty() {
            None
        } else {
            let pem = pem_or_file("rsa_public_key", &settings.rsa_public_key)?;
            let key = DecodingKey::from_rsa_pem(&pem)
                .map_err(|_| invalid("rsa_public_key", "not an RSA public key in PEM format"))?;
            check_rsa(&key).map_err(|problem| invalid("rsa_public_key", problem))?;
            Some(VerifyingKey::new(key, Algorithm::RS256, settings))
        };
        let ec = if settings.ecdsa_public_key.is_empty() {
            None
        } else {
            let pem = pem_or_file("ecdsa_public_key", &settings.ecdsa_public_key)?;
            let key = DecodingKey::from_ec_pem(&pem)
                .map_err(|_| invalid("ecdsa_public_key", "not an EC public key in PEM format"))?;
            check_p256(&key).map_err(|problem| invalid("ecdsa_public_key", problem))?;
            Some(VerifyingKey::new(key, Algorithm::ES256, settings))
        };
        let jwks = if settings.jwks_file.is_empty() {
            HashMap::new()
        } else {
            read_jwks(&settings.jwks_file, settings)?
        };
        Ok(Keys {
            hmac,
            rsa,
            ec,
            jwks,
        })
    }

    pub(super) fn is_empty(&self) -> bool {
        self.hmac.is_none() && self.rsa.is_none() && self.ec.is_none() && self.jwks.is_empty()
    }

    /// The algorithms some key verifies, for `Debug`.
    pub(super) fn algorithms(&self) -> Vec<&'static str> {
        [
            (Algorithm::HS256, "HS256"),
            (Algorithm::RS256, "RS256"),
            (Algorithm::ES256, "ES256"),
        ]
        .into_iter()
        .filter(|(alg, _)| self.allows(*alg))
        .map(|(_, name)| name)
        .collect()
    }

    fn allows(&self, alg: Algorithm) -> bool {
        self.fixed(alg).is_some() || self.jwks.values().any(|k| k.alg == alg)
    }

    fn fixed(&self, alg: Algorithm) -> Option<&VerifyingKey> {
        match alg {
            Algorithm::HS256 => self.hmac.as_ref(),
            Algorithm::RS256 => self.rsa.as_ref(),
            Algorithm::ES256 => self.ec.as_ref(),
            _ => None,
        }
    }

    /// The key for a token's `alg` and `kid`. A `kid` found in the JWKS picks that key; otherwise
    /// the key of the algorithm's own setting, if any.
    pub(super) fn pick(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<&VerifyingKey, TokenError> {
        // The JWKS holds only public keys, so an HS256 token never looks there: its `kid` must
        // not turn a public key into an HMAC secret.
        if alg != Algorithm::HS256 {
            if let Some(key) = kid.and_then(|kid| self.jwks.get(kid)) {
                return if key.alg == alg {
                    Ok(key)
                } else {
                    Err(TokenError::Invalid("algorithm not allowed"))
                };
            }
        }
        match self.fixed(alg) {
            Some(key) => Ok(key),
            None if self.allows(alg) => Err(TokenError::Invalid("unknown key id")),
            None => Err(TokenError::Invalid("algorithm not allowed")),
        }
    }
}

/// The value itself when it is PEM text, else the content of the file it names.
fn pem_or_file(setting: &'static str, value: &str) -> Result<Vec<u8>, KeyError> {
    if value.trim_start().starts_with("-----BEGIN") {
        return Ok(value.as_bytes().to_vec());
    }
    std::fs::read(value).map_err(|error| KeyError::Read {
        setting,
        path: shown_path(value),
        error,
    })
}

/// A path for an error message. A value that does not look like a path may be key material
/// pasted without its PEM armour, so it is not repeated.
fn shown_path(value: &str) -> String {
    if value.len() <= 256 && !value.contains(['\n', '\r']) {
        format!("`{value}`")
    } else {
        "the file (the value is neither PEM text starting with -----BEGIN nor a file path)"
            .to_owned()
    }
}

/// jsonwebtoken parses an RSA key only when it checks a signature; parse it now instead. This also
/// catches keys larger than the rsa crate takes (4096 bits).
fn check_rsa(key: &DecodingKey) -> Result<(), &'static str> {
    let parsed = match key.kind() {
        DecodingKeyKind::SecretOrDer(der) => rsa::RsaPublicKey::from_pkcs1_der(der).ok(),
        DecodingKeyKind::RsaModulusExponent { n, e } => rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(n),
            rsa::BigUint::from_bytes_be(e),
        )
        .ok(),
    };
    parsed
        .map(|_| ())
        .ok_or("not a usable RSA public key (at most 4096 bits)")
}

/// jsonwebtoken builds its P-256 verifier from the key before it looks at the signature, so a
/// check with any signature fails only for a key that is not a P-256 point.
fn check_p256(key: &DecodingKey) -> Result<(), &'static str> {
    jsonwebtoken::crypto::verify("AA", b"", key, Algorithm::ES256)
        .map(|_| ())
        .map_err(|_| "not a P-256 public key (ES256 needs the P-256 curve)")
}

fn read_jwks(
    path: &str,
    settings: &TokenSettings,
) -> Result<HashMap<String, VerifyingKey>, KeyError> {
    const SETTING: &str = "jwks_file";
    let text = std::fs::read(Path::new(path)).map_err(|error| KeyError::Read {
        setting: SETTING,
        path: shown_path(path),
        error,
    })?;
    #[derive(serde::Deserialize)]
    struct JwkSet {
        keys: Vec<serde_json::Value>,
    }
    let set: JwkSet = serde_json::from_slice(&text)
        .map_err(|_| invalid(SETTING, "not a JWKS (a JSON object with a `keys` array)"))?;
    let mut keys = HashMap::new();
    for (index, value) in set.keys.into_iter().enumerate() {
        // Identity providers publish keys for other uses too (encryption, other algorithms):
        // those are skipped, not errors, so that their JWKS can be used as it is.
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            log::warn!("token.jwks_file: key #{index} is not a JWK this server knows; skipped");
            continue;
        };
        let name = match &jwk.common.key_id {
            Some(kid) => format!("key `{kid}`"),
            None => format!("key #{index}"),
        };
        let Some(alg) = jwk_algorithm(&jwk) else {
            log::warn!("token.jwks_file: {name} is not an RS256 or ES256 signing key; skipped");
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            log::warn!(
                "token.jwks_file: {name} has no `kid`, which tokens select keys by; skipped"
            );
            continue;
        };
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|_| invalid(SETTING, format!("{name}: malformed key parameters")))?;
        match alg {
            Algorithm::RS256 => check_rsa(&key),
            _ => check_p256(&key),
        }
        .map_err(|problem| invalid(SETTING, format!("{name}: {problem}")))?;
        if keys
            .insert(kid, VerifyingKey::new(key, alg, settings))
            .is_some()
        {
            return Err(invalid(SETTING, format!("{name} appears twice")));
        }
    }
    if keys.is_empty() {
        return Err(invalid(SETTING, "no RS256 or ES256 key with a `kid`"));
    }
    Ok(keys)
}

/// The algorithm a JWK verifies, when it is one this server accepts.
fn jwk_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        _ => return None,
    };
    let declared_ok = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RS256) => alg == Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => alg == Algorithm::ES256,
        Some(_) => false,
    };
    declared_ok.then_some(alg)
}
