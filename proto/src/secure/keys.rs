//! Keys: RSA public and private keys from PEM, and the session's AES-256 keys.
//!
//! The RSA operations of the protocol live here: RSA-OAEP with SHA-1 (MGF1-SHA-1, no label) for
//! handshake messages 1 and 2, RSA-PSS with SHA-512 (MGF1-SHA-512, maximum salt length) for
//! message 3 and for the signed client frames of versions 1–2.

use std::fmt;

use rand::{CryptoRng, RngCore};
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, Pss, RsaPrivateKey, RsaPublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{Detail, EncodeError, SecureError};

/// The length of an AES-256 key.
pub const AES_KEY_LEN: usize = 32;
/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus accepted, in bits (the `rsa` crate's own limit).
pub const MAX_RSA_BITS: usize = 4096;
/// The largest RSA signature or ciphertext, in bytes.
pub const MAX_RSA_LEN: usize = MAX_RSA_BITS / 8;

/// A key that could not be loaded. Keys come from configuration, not from peers, so this error
/// says what is wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("not a PEM RSA key: {0}")]
    Pem(String),
    #[error("encrypted private keys are not supported; decrypt it first")]
    Encrypted,
    #[error("RSA key of {0} bits; between {MIN_RSA_BITS} and {MAX_RSA_BITS} are accepted")]
    Size(usize),
    #[error("invalid RSA key: {0}")]
    Invalid(String),
}

/// The label of the first PEM block (`PUBLIC KEY`, `RSA PRIVATE KEY`, ...).
fn pem_label(pem: &str) -> Option<&str> {
    let start = pem.find("-----BEGIN ")? + "-----BEGIN ".len();
    let len = pem[start..].find("-----")?;
    Some(&pem[start..start + len])
}

fn check_size(bits: usize) -> Result<(), KeyError> {
    if (MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(KeyError::Size(bits))
    }
}

/// The PSS salt length OpenSSL's `PSS.MAX_LENGTH` gives for a key: `emLen - hLen - 2`, where
/// `emLen = ceil((modBits - 1) / 8)` and `hLen = 64` (SHA-512).
fn max_pss_salt_len(modulus_bits: usize) -> usize {
    let em_len = modulus_bits.saturating_sub(1).div_ceil(8);
    em_len.saturating_sub(64 + 2)
}

/// An RSA public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: RsaPublicKey,
}

impl PublicKey {
    /// Parses a PEM public key: SPKI (`PUBLIC KEY`) or PKCS#1 (`RSA PUBLIC KEY`).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let key = match pem_label(pem) {
            Some("PUBLIC KEY") => RsaPublicKey::from_public_key_pem(pem.trim())
                .map_err(|e| KeyError::Pem(e.to_string()))?,
            Some("RSA PUBLIC KEY") => RsaPublicKey::from_pkcs1_pem(pem.trim())
                .map_err(|e| KeyError::Pem(e.to_string()))?,
            Some(other) => return Err(KeyError::Pem(format!("unexpected PEM label {other:?}"))),
            None => return Err(KeyError::Pem("no PEM block".into())),
        };
        Self::from_rsa(key)
    }

    /// Wraps an `rsa` public key of an accepted size.
    pub fn from_rsa(key: RsaPublicKey) -> Result<Self, KeyError> {
        check_size(key.n().bits())?;
        Ok(PublicKey { key })
    }

    /// The key as SPKI PEM (`PUBLIC KEY`).
    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .expect("an RSA public key always encodes")
    }

    /// The modulus size in bits.
    pub fn bits(&self) -> usize {
        self.key.n().bits()
    }

    /// The modulus size in bytes: the length of every ciphertext and signature of this key.
    pub fn size(&self) -> usize {
        self.key.size()
    }

    /// RSA-OAEP (SHA-1, MGF1-SHA-1, no label) encryption to this key.
    pub fn encrypt_oaep<R: CryptoRng + RngCore>(
        &self,
        rng: &mut R,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, EncodeError> {
        Ok(self.key.encrypt(rng, Oaep::new::<Sha1>(), plaintext)?)
    }

    /// Verifies an RSA-PSS signature (SHA-512, MGF1-SHA-512, maximum salt length) of `data`.
    pub fn verify_pss(&self, data: &[u8], signature: &[u8]) -> Result<(), SecureError> {
        if signature.len() != self.size() {
            return Err(SecureError::new(Detail::Signature));
        }
        let hashed = Sha512::digest(data);
        let scheme = Pss::new_with_salt::<Sha512>(max_pss_salt_len(self.bits()));
        self.key
            .verify(scheme, &hashed, signature)
            .map_err(|_| SecureError::new(Detail::Signature))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("bits", &self.bits())
            .finish_non_exhaustive()
    }
}

/// An RSA private key. Its secret parts are wiped on drop (by the `rsa` crate's own `Drop`);
/// `Debug` shows only the size.
#[derive(Clone)]
pub struct PrivateKey {
    key: RsaPrivateKey,
}

impl ZeroizeOnDrop for PrivateKey {}

impl PrivateKey {
    /// Parses a PEM private key: PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`).
    /// Encrypted PKCS#8 is refused. The caller should wipe `pem` afterwards.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let key = match pem_label(pem) {
            Some("PRIVATE KEY") => RsaPrivateKey::from_pkcs8_pem(pem.trim())
                .map_err(|e| KeyError::Pem(e.to_string()))?,
            Some("RSA PRIVATE KEY") => RsaPrivateKey::from_pkcs1_pem(pem.trim())
                .map_err(|e| KeyError::Pem(e.to_string()))?,
            Some("ENCRYPTED PRIVATE KEY") => return Err(KeyError::Encrypted),
            Some(other) => return Err(KeyError::Pem(format!("unexpected PEM label {other:?}"))),
            None => return Err(KeyError::Pem("no PEM block".into())),
        };
        Self::from_rsa(key)
    }

    /// Wraps an `rsa` private key of an accepted size, after checking it is consistent.
    pub fn from_rsa(key: RsaPrivateKey) -> Result<Self, KeyError> {
        check_size(key.n().bits())?;
        key.validate()
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        Ok(PrivateKey { key })
    }

    /// A fresh key of `bits` bits (tests, tools; slow without optimisation).
    pub fn generate<R: CryptoRng + RngCore>(rng: &mut R, bits: usize) -> Result<Self, KeyError> {
        check_size(bits)?;
        let key = RsaPrivateKey::new(rng, bits).map_err(|e| KeyError::Invalid(e.to_string()))?;
        Ok(PrivateKey { key })
    }

    /// The key as PKCS#8 PEM (`PRIVATE KEY`), in a buffer wiped on drop.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        let pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .expect("an RSA private key always encodes");
        Zeroizing::new(pem.as_str().to_owned())
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key: self.key.to_public_key(),
        }
    }

    /// The modulus size in bits.
    pub fn bits(&self) -> usize {
        self.key.n().bits()
    }

    /// RSA-OAEP (SHA-1, MGF1-SHA-1, no label) decryption, blinded with `rng` (see the module
    /// notes on RUSTSEC-2023-0071). The plaintext is wiped on drop.
    pub fn decrypt_oaep<R: CryptoRng + RngCore>(
        &self,
        rng: &mut R,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SecureError> {
        if ciphertext.len() != self.key.size() {
            return Err(SecureError::new(Detail::RsaDecrypt));
        }
        self.key
            .decrypt_blinded(rng, Oaep::new::<Sha1>(), ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| SecureError::new(Detail::RsaDecrypt))
    }

    /// An RSA-PSS signature (SHA-512, MGF1-SHA-512, maximum salt length) of `data`, as the
    /// Python client's `cryptography` makes it.
    pub fn sign_pss<R: CryptoRng + RngCore>(
        &self,
        rng: &mut R,
        data: &[u8],
    ) -> Result<Vec<u8>, EncodeError> {
        let hashed = Sha512::digest(data);
        let scheme = Pss::new_with_salt::<Sha512>(max_pss_salt_len(self.bits()));
        Ok(self.key.sign_with_rng(rng, scheme, &hashed)?)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("bits", &self.bits())
            .finish_non_exhaustive()
    }
}

/// An AES-256 session key. Wiped on drop; `Debug` never shows it; `==` runs in constant time.
#[derive(Clone)]
pub struct AesKey([u8; AES_KEY_LEN]);

impl AesKey {
    /// A fresh random key.
    pub fn random<R: CryptoRng + RngCore>(rng: &mut R) -> Self {
        let mut key = AesKey([0u8; AES_KEY_LEN]);
        rng.fill_bytes(&mut key.0);
        key
    }

    /// The key from exactly 32 bytes.
    pub fn from_bytes(bytes: [u8; AES_KEY_LEN]) -> Self {
        AesKey(bytes)
    }

    /// The key from a slice, which must be 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, SecureError> {
        let mut key = AesKey([0u8; AES_KEY_LEN]);
        if bytes.len() != AES_KEY_LEN {
            return Err(SecureError::new(Detail::KeyLength));
        }
        key.0.copy_from_slice(bytes);
        Ok(key)
    }

    /// The key bytes. Only for the cipher and for encoding the handshake; do not log or store.
    pub fn expose_secret(&self) -> &[u8; AES_KEY_LEN] {
        &self.0
    }
}

impl Zeroize for AesKey {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

impl Drop for AesKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for AesKey {}

impl ConstantTimeEq for AesKey {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

impl PartialEq for AesKey {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for AesKey {}

impl fmt::Debug for AesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AesKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secure::test_keys::{client_key, server_key};

    #[test]
    fn secure_keys_pem_round_trip_spki_pkcs1_pkcs8() {
        let private = client_key();
        let pem = private.to_pkcs8_pem();
        let again = PrivateKey::from_pem(&pem).unwrap();
        assert_eq!(again.public_key(), private.public_key());

        let pkcs1 = {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            private.key.to_pkcs1_pem(LineEnding::LF).unwrap()
        };
        assert_eq!(
            PrivateKey::from_pem(&pkcs1).unwrap().public_key(),
            private.public_key()
        );

        let public = private.public_key();
        assert_eq!(PublicKey::from_pem(&public.to_pem()).unwrap(), public);
        let pkcs1_public = {
            use rsa::pkcs1::EncodeRsaPublicKey;
            public.key.to_pkcs1_pem(LineEnding::LF).unwrap()
        };
        assert!(pkcs1_public.contains("BEGIN RSA PUBLIC KEY"));
        assert_eq!(PublicKey::from_pem(&pkcs1_public).unwrap(), public);
    }

    #[test]
    fn secure_keys_bad_pem_is_refused() {
        assert!(matches!(
            PublicKey::from_pem("nothing"),
            Err(KeyError::Pem(_))
        ));
        assert!(matches!(
            PublicKey::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            Err(KeyError::Pem(_))
        ));
        assert!(matches!(
            PrivateKey::from_pem("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n"),
            Err(KeyError::Pem(_))
        ));
        assert_eq!(
            PrivateKey::from_pem(
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
            )
            .unwrap_err(),
            KeyError::Encrypted
        );
        // A private key where a public one is expected.
        assert!(PublicKey::from_pem(&server_key().to_pkcs8_pem()).is_err());
    }

    #[test]
    fn secure_keys_small_keys_are_refused() {
        let small = RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
        assert_eq!(
            PublicKey::from_rsa(small.to_public_key()).unwrap_err(),
            KeyError::Size(1024)
        );
        assert_eq!(
            PrivateKey::from_rsa(small).unwrap_err(),
            KeyError::Size(1024)
        );
    }

    #[test]
    fn secure_keys_debug_never_prints_key_material() {
        let key = AesKey::from_bytes([0xab; 32]);
        let debug = format!("{key:?}");
        assert!(!debug.to_lowercase().contains("ab, ") && !debug.contains("171"));
        assert_eq!(debug, "AesKey(<redacted>)");
        let private = format!("{:?}", client_key());
        assert_eq!(private, "PrivateKey { bits: 2048, .. }");
    }

    #[test]
    fn secure_keys_aes_key_compares_in_constant_time_and_checks_length() {
        let a = AesKey::from_bytes([1; 32]);
        assert_eq!(a, AesKey::from_slice(&[1; 32]).unwrap());
        assert_ne!(a, AesKey::from_bytes([2; 32]));
        assert!(bool::from(a.ct_eq(&a.clone())));
        assert!(AesKey::from_slice(&[1; 31]).is_err());
        assert!(AesKey::from_slice(&[1; 33]).is_err());
    }

    #[test]
    fn secure_keys_aes_key_zeroize_wipes_the_bytes() {
        let mut key = AesKey::from_bytes([7; 32]);
        key.zeroize();
        assert_eq!(key.expose_secret(), &[0u8; 32]);
    }

    #[test]
    fn secure_keys_pss_salt_is_openssl_max_length() {
        assert_eq!(max_pss_salt_len(2048), 190);
        assert_eq!(max_pss_salt_len(4096), 446);
        // 2049-bit modulus: emBits = 2048, emLen = 256.
        assert_eq!(max_pss_salt_len(2049), 190);
        assert_eq!(max_pss_salt_len(2050), 191);
    }

    #[test]
    fn secure_keys_oaep_and_pss_round_trip() {
        let mut rng = rand::thread_rng();
        let key = server_key();
        let ct = key.public_key().encrypt_oaep(&mut rng, b"hello").unwrap();
        assert_eq!(ct.len(), 256);
        assert_eq!(&key.decrypt_oaep(&mut rng, &ct).unwrap()[..], b"hello");
        let sig = key.sign_pss(&mut rng, b"data").unwrap();
        key.public_key().verify_pss(b"data", &sig).unwrap();
        assert!(key.public_key().verify_pss(b"datb", &sig).is_err());
        assert!(client_key().public_key().verify_pss(b"data", &sig).is_err());
        assert!(client_key().decrypt_oaep(&mut rng, &ct).is_err());
    }
}
