use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use rsa::traits::PublicKeyParts as _;
use serde_json::{json, Value};

use super::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const NOW: u64 = 1_700_000_000;

struct RsaKeys {
    private_pem: String,
    public_pem: String,
    n: String,
    e: String,
}

struct EcKeys {
    private_pem: String,
    public_pem: String,
    x: String,
    y: String,
}

// Generated once: RSA key generation is the slow part of these tests.
fn rsa_keys() -> &'static RsaKeys {
    static KEYS: OnceLock<RsaKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let public = private.to_public_key();
        RsaKeys {
            private_pem: private.to_pkcs1_pem(LineEnding::LF).unwrap().to_string(),
            public_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
            n: URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            e: URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        }
    })
}

fn ec_keys() -> &'static EcKeys {
    static KEYS: OnceLock<EcKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let private = p256::SecretKey::random(&mut rand::thread_rng());
        let public = private.public_key();
        let point = public.to_encoded_point(false);
        EcKeys {
            private_pem: private.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
            public_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
            x: URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            y: URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        }
    })
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn sign_rs256(kid: Option<&str>, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(rsa_keys().private_pem.as_bytes()).unwrap();
    sign(Algorithm::RS256, kid, &key, claims)
}

fn sign_es256(kid: Option<&str>, claims: &Value) -> String {
    let key = EncodingKey::from_ec_pem(ec_keys().private_pem.as_bytes()).unwrap();
    sign(Algorithm::ES256, kid, &key, claims)
}

/// A token with an arbitrary header and signature, which jsonwebtoken would not produce.
fn forged(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!(
        "{}.{}.{}",
        part(header),
        part(claims),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

fn hmac_verifier() -> TokenVerifier {
    TokenVerifier::from_settings(&TokenSettings {
        hmac_secret: SECRET.to_owned(),
        ..TokenSettings::default()
    })
    .unwrap()
}

fn rsa_verifier() -> TokenVerifier {
    TokenVerifier::from_settings(&TokenSettings {
        rsa_public_key: rsa_keys().public_pem.clone(),
        ..TokenSettings::default()
    })
    .unwrap()
}

fn temp_file(name: &str, content: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "rpc-crypto-auth-{}-{name}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::write(&path, content).unwrap();
    path
}

const INVALID_SIG: TokenError = TokenError::Invalid("bad signature");
const NOT_ALLOWED: TokenError = TokenError::Invalid("algorithm not allowed");

#[test]
fn hs256_connection_token() {
    let token = sign_hs256(
        SECRET.as_bytes(),
        &json!({"sub": "alice", "exp": NOW + 60, "channels": ["sandbox:a", "ticker:btc"]}),
    );
    let claims = hmac_verifier().connection(&token, NOW).unwrap();
    assert_eq!(
        claims,
        ConnectionClaims {
            user: "alice".to_owned(),
            expires_at: Some(NOW + 60),
            info: None,
            channels: vec!["sandbox:a".to_owned(), "ticker:btc".to_owned()],
        }
    );
}

#[test]
fn no_sub_and_no_exp() {
    let token = sign_hs256(SECRET.as_bytes(), &json!({}));
    let claims = hmac_verifier().connection(&token, NOW).unwrap();
    assert_eq!(claims.user, "");
    assert_eq!(claims.expires_at, None);
    assert!(claims.channels.is_empty());
}

#[test]
fn rs256_and_es256() {
    let claims = json!({"sub": "bob", "exp": NOW + 1});
    let user = rsa_verifier()
        .connection(&sign_rs256(None, &claims), NOW)
        .unwrap()
        .user;
    assert_eq!(user, "bob");

    let ec = TokenVerifier::from_settings(&TokenSettings {
        ecdsa_public_key: ec_keys().public_pem.clone(),
        ..TokenSettings::default()
    })
    .unwrap();
    let user = ec.connection(&sign_es256(None, &claims), NOW).unwrap().user;
    assert_eq!(user, "bob");
    // Each verifier takes only its own algorithm.
    assert_eq!(
        ec.connection(&sign_rs256(None, &claims), NOW),
        Err(NOT_ALLOWED)
    );
}

#[test]
fn public_keys_from_files() {
    let rsa_path = temp_file("rsa.pem", &rsa_keys().public_pem);
    let ec_path = temp_file("ec.pem", &ec_keys().public_pem);
    let verifier = TokenVerifier::from_settings(&TokenSettings {
        rsa_public_key: rsa_path.display().to_string(),
        ecdsa_public_key: ec_path.display().to_string(),
        ..TokenSettings::default()
    })
    .unwrap();
    let claims = json!({"sub": "carol"});
    assert!(verifier.connection(&sign_rs256(None, &claims), NOW).is_ok());
    assert!(verifier.connection(&sign_es256(None, &claims), NOW).is_ok());
    assert_eq!(
        format!("{verifier:?}"),
        "TokenVerifier { algorithms: [\"RS256\", \"ES256\"], .. }"
    );
    std::fs::remove_file(rsa_path).unwrap();
    std::fs::remove_file(ec_path).unwrap();
}

#[test]
fn jwks_picks_the_key_by_kid() {
    let (rsa, ec) = (rsa_keys(), ec_keys());
    let jwks = json!({"keys": [
        {"kty": "RSA", "kid": "r1", "use": "sig", "alg": "RS256", "n": rsa.n, "e": rsa.e},
        {"kty": "EC", "kid": "e1", "crv": "P-256", "x": ec.x, "y": ec.y},
        // Skipped: an encryption key, and a key without kid.
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": rsa.n, "e": rsa.e},
        {"kty": "RSA", "n": rsa.n, "e": rsa.e},
    ]});
    let path = temp_file("jwks.json", &jwks.to_string());
    let verifier = TokenVerifier::from_settings(&TokenSettings {
        jwks_file: path.display().to_string(),
        ..TokenSettings::default()
    })
    .unwrap();
    std::fs::remove_file(path).unwrap();
    let claims = json!({"sub": "dave", "exp": NOW + 10});

    assert!(verifier
        .connection(&sign_rs256(Some("r1"), &claims), NOW)
        .is_ok());
    assert!(verifier
        .connection(&sign_es256(Some("e1"), &claims), NOW)
        .is_ok());
    let unknown = TokenError::Invalid("unknown key id");
    assert_eq!(
        verifier.connection(&sign_rs256(Some("nope"), &claims), NOW),
        Err(unknown.clone())
    );
    assert_eq!(
        verifier.connection(&sign_rs256(None, &claims), NOW),
        Err(unknown)
    );
    assert_eq!(
        verifier.connection(&sign_rs256(Some("enc"), &claims), NOW),
        Err(TokenError::Invalid("unknown key id"))
    );
    // A kid naming a key of the other algorithm.
    assert_eq!(
        verifier.connection(&sign_es256(Some("r1"), &claims), NOW),
        Err(NOT_ALLOWED)
    );
    // No HMAC secret, so no HS256, whatever the kid.
    let hs = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("r1".to_owned());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(b"x")).unwrap()
    };
    assert_eq!(verifier.connection(&hs, NOW), Err(NOT_ALLOWED));
}

#[test]
fn expiry_and_not_before_with_zero_leeway() {
    let v = hmac_verifier();
    let token = |claims: Value| sign_hs256(SECRET.as_bytes(), &claims);
    assert_eq!(
        v.connection(&token(json!({"exp": NOW})), NOW),
        Err(TokenError::Expired)
    );
    assert_eq!(
        v.subscription(&token(json!({"exp": NOW - 1, "channel": "$a"})), NOW),
        Err(TokenError::Expired)
    );
    assert!(v.connection(&token(json!({"exp": NOW + 1})), NOW).is_ok());
    assert_eq!(
        v.connection(&token(json!({"nbf": NOW + 1})), NOW),
        Err(TokenError::NotYetValid)
    );
    assert!(v.connection(&token(json!({"nbf": NOW})), NOW).is_ok());
    // Fractional dates round to the stricter side.
    assert_eq!(
        v.connection(&token(json!({"exp": NOW as f64 + 0.5})), NOW),
        Err(TokenError::Expired)
    );
    assert_eq!(
        v.connection(&token(json!({"exp": "tomorrow"})), NOW),
        Err(TokenError::Invalid("malformed"))
    );
}

#[test]
fn wrong_signature() {
    let token = sign_hs256(
        b"another secret, also 32 bytes long",
        &json!({"sub": "eve"}),
    );
    assert_eq!(hmac_verifier().connection(&token, NOW), Err(INVALID_SIG));

    // A valid token with its payload swapped.
    let good = sign_hs256(SECRET.as_bytes(), &json!({"sub": "eve"}));
    let mut parts: Vec<&str> = good.split('.').collect();
    let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"admin"}"#);
    parts[1] = &payload;
    assert_eq!(
        hmac_verifier().connection(&parts.join("."), NOW),
        Err(INVALID_SIG)
    );
}

#[test]
fn alg_none_and_other_algorithms_are_refused() {
    let claims = json!({"sub": "eve"});
    let none = forged(&json!({"alg": "none", "typ": "JWT"}), &claims, b"");
    assert_eq!(hmac_verifier().connection(&none, NOW), Err(NOT_ALLOWED));

    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(hmac_verifier().connection(&hs512, NOW), Err(NOT_ALLOWED));
}

#[test]
fn rs256_token_against_an_hmac_only_verifier() {
    let token = sign_rs256(None, &json!({"sub": "eve"}));
    assert_eq!(hmac_verifier().connection(&token, NOW), Err(NOT_ALLOWED));
}

#[test]
fn hs256_forged_with_the_rsa_public_key() {
    // The classic confusion attack: the public key's PEM used as an HMAC secret.
    let pem = &rsa_keys().public_pem;
    let token = sign_hs256(pem.as_bytes(), &json!({"sub": "admin"}));
    assert_eq!(rsa_verifier().connection(&token, NOW), Err(NOT_ALLOWED));
}

#[test]
fn no_key_refuses_everything() {
    let verifier = TokenVerifier::from_settings(&TokenSettings::default()).unwrap();
    assert!(!verifier.is_configured());
    let token = sign_hs256(SECRET.as_bytes(), &json!({"sub": "alice"}));
    assert_eq!(
        verifier.connection(&token, NOW),
        Err(TokenError::Invalid("no key configured"))
    );
    assert!(hmac_verifier().is_configured());
}

#[test]
fn subscription_token_needs_a_channel() {
    let v = hmac_verifier();
    let token = sign_hs256(
        SECRET.as_bytes(),
        &json!({"sub": "alice", "channel": "$private", "exp": NOW + 5, "info": {"role": "vip"}}),
    );
    assert_eq!(
        v.subscription(&token, NOW).unwrap(),
        SubscriptionClaims {
            user: "alice".to_owned(),
            channel: "$private".to_owned(),
            expires_at: Some(NOW + 5),
            info: Some(Bytes::from_static(br#"{"role":"vip"}"#)),
        }
    );
    let missing = TokenError::Invalid("missing channel");
    let connection_token = sign_hs256(SECRET.as_bytes(), &json!({"sub": "alice"}));
    assert_eq!(v.subscription(&connection_token, NOW), Err(missing.clone()));
    let empty = sign_hs256(SECRET.as_bytes(), &json!({"sub": "alice", "channel": ""}));
    assert_eq!(v.subscription(&empty, NOW), Err(missing));
}

#[test]
fn a_channel_claim_makes_it_no_connection_token() {
    let token = sign_hs256(
        SECRET.as_bytes(),
        &json!({"sub": "alice", "channel": "$private"}),
    );
    assert_eq!(
        hmac_verifier().connection(&token, NOW),
        Err(TokenError::Invalid(
            "a subscription token is not a connection token"
        ))
    );
}

#[test]
fn info_is_kept_as_raw_json() {
    let v = hmac_verifier();
    // Signed over exact text, so the raw JSON is known byte for byte.
    for info in [r#"{"b": 1,  "a":[true]}"#, r#""text""#, "42.50", "[]"] {
        let payload = format!(r#"{{"sub":"alice","info":{info}}}"#);
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let message = format!("{header}.{}", URL_SAFE_NO_PAD.encode(&payload));
        let signature = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
            Algorithm::HS256,
        )
        .unwrap();
        let claims = v
            .connection(&format!("{message}.{signature}"), NOW)
            .unwrap();
        assert_eq!(claims.info.as_deref(), Some(info.as_bytes()));
    }
}

#[test]
fn audience_and_issuer_when_configured() {
    let v = TokenVerifier::from_settings(&TokenSettings {
        hmac_secret: SECRET.to_owned(),
        audience: "rpc-crypto".to_owned(),
        issuer: "https://auth.example".to_owned(),
        ..TokenSettings::default()
    })
    .unwrap();
    let token = |claims: Value| sign_hs256(SECRET.as_bytes(), &claims);
    let iss = "https://auth.example";
    assert!(v
        .connection(&token(json!({"aud": "rpc-crypto", "iss": iss})), NOW)
        .is_ok());
    assert!(v
        .connection(
            &token(json!({"aud": ["other", "rpc-crypto"], "iss": iss})),
            NOW
        )
        .is_ok());
    let wrong_aud = TokenError::Invalid("wrong audience");
    assert_eq!(
        v.connection(&token(json!({"aud": "other", "iss": iss})), NOW),
        Err(wrong_aud.clone())
    );
    assert_eq!(
        v.connection(&token(json!({"iss": iss})), NOW),
        Err(wrong_aud)
    );
    let wrong_iss = TokenError::Invalid("wrong issuer");
    assert_eq!(
        v.connection(&token(json!({"aud": "rpc-crypto", "iss": "evil"})), NOW),
        Err(wrong_iss.clone())
    );
    assert_eq!(
        v.connection(&token(json!({"aud": "rpc-crypto"})), NOW),
        Err(wrong_iss)
    );
    // Not configured: neither is checked.
    assert!(hmac_verifier()
        .connection(&token(json!({"aud": "x", "iss": "y"})), NOW)
        .is_ok());
}

#[test]
fn malformed_tokens() {
    let v = hmac_verifier();
    for token in ["", "abc", "a.b", "a.b.c.d", "!!.e30.", "e30.e30.AA"] {
        assert_eq!(
            v.connection(token, NOW),
            Err(TokenError::Invalid("malformed")),
            "{token}"
        );
    }
}

#[test]
fn key_errors_name_the_setting_not_the_key() {
    let err = |settings: TokenSettings| {
        TokenVerifier::from_settings(&settings)
            .unwrap_err()
            .to_string()
    };
    let garbage = "-----BEGIN PUBLIC KEY-----\nc2VjcmV0LWlzaA==\n-----END PUBLIC KEY-----\n";
    let message = err(TokenSettings {
        rsa_public_key: garbage.to_owned(),
        ..TokenSettings::default()
    });
    assert!(message.starts_with("token.rsa_public_key: "), "{message}");
    assert!(!message.contains("c2VjcmV0"), "{message}");

    // An RSA key where an EC key belongs.
    let message = err(TokenSettings {
        ecdsa_public_key: rsa_keys().public_pem.clone(),
        ..TokenSettings::default()
    });
    assert!(message.starts_with("token.ecdsa_public_key: "), "{message}");

    // A key pasted without its armour is not echoed as a path.
    let pasted = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA".repeat(10);
    let message = err(TokenSettings {
        rsa_public_key: pasted.clone(),
        ..TokenSettings::default()
    });
    assert!(
        message.starts_with("token.rsa_public_key: cannot read"),
        "{message}"
    );
    assert!(!message.contains(&pasted[..40]), "{message}");

    let message = err(TokenSettings {
        jwks_file: "/nonexistent/jwks.json".to_owned(),
        ..TokenSettings::default()
    });
    assert!(message.starts_with("token.jwks_file: cannot read `/nonexistent/jwks.json`"));

    let path = temp_file(
        "empty-jwks.json",
        r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#,
    );
    let message = err(TokenSettings {
        jwks_file: path.display().to_string(),
        ..TokenSettings::default()
    });
    std::fs::remove_file(path).unwrap();
    assert_eq!(
        message,
        "token.jwks_file: no RS256 or ES256 key with a `kid`"
    );
}

#[test]
fn debug_shows_no_secret() {
    let debug = format!("{:?}", hmac_verifier());
    assert_eq!(debug, "TokenVerifier { algorithms: [\"HS256\"], .. }");
}

#[test]
fn check_wants_a_long_hmac_secret() {
    assert!(TokenSettings::default().check().is_ok());
    let short = TokenSettings {
        hmac_secret: "short".to_owned(),
        ..TokenSettings::default()
    };
    let message = short.check().unwrap_err();
    assert!(message.contains("token.hmac_secret") && !message.contains("short"));
    let long = TokenSettings {
        hmac_secret: SECRET.to_owned(),
        ..TokenSettings::default()
    };
    assert!(long.check().is_ok());
}

#[test]
fn generated_secrets_are_fresh_hex() {
    let (a, b) = (generate_secret(), generate_secret());
    assert_eq!(a.len(), 64);
    assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
}
