//! The three-message handshake, both sides.
//!
//! Server side: [`ClientHello::open`] (message 1), [`ServerHello::generate`] and
//! [`ServerHello::seal`] (message 2), [`verify_challenge`] (message 3).
//! Client side: [`ClientHello::generate`] and [`ClientHello::seal`], [`ServerHello::open`],
//! [`sign_challenge`].
//!
//! Every refusal of a peer's message is the one [`SecureError`]; see the module notes on
//! RUSTSEC-2023-0071 for what the server must add around [`ClientHello::open`].

use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use super::keys::{AesKey, PrivateKey, PublicKey, AES_KEY_LEN, MAX_RSA_LEN};
use super::xdr::{Reader, Writer};
use super::{Detail, EncodeError, SecureError};

/// The newest protocol version this implementation speaks (the real client's, 0.6.2).
pub const PROTOCOL_VERSION: u32 = 5;
/// The longest client id accepted, in bytes.
pub const MAX_CLIENT_ID_LEN: usize = 128;
/// The length of the `data_to_sign` the server generates.
pub const DATA_TO_SIGN_LEN: usize = 32;
/// The longest `data_to_sign` a client accepts from a server.
pub const MAX_DATA_TO_SIGN_LEN: usize = 1024;

/// The version a session runs at: the client's, capped at ours.
pub fn negotiate_version(client_version: u32) -> u32 {
    client_version.min(PROTOCOL_VERSION)
}

/// A client id is 1 to [`MAX_CLIENT_ID_LEN`] bytes of printable ASCII (no spaces or controls,
/// so it is safe to log and to use as a map key).
fn valid_client_id(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_CLIENT_ID_LEN && id.iter().all(u8::is_ascii_graphic)
}

/// Handshake message 1, client → server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// Who the client says it is; the server looks its public key up by this.
    pub client_id: String,
    /// The last ORDER the client processed; the server resends only newer outbox messages.
    pub last_seen_order: i64,
    /// The key the client encrypts its frames with.
    pub client_key: AesKey,
    /// The client's protocol version (1 when the field is absent).
    pub version: u32,
}

impl ClientHello {
    /// A hello with a fresh random AES key (client side).
    pub fn generate<R: CryptoRng + RngCore>(
        rng: &mut R,
        client_id: impl Into<String>,
        last_seen_order: i64,
        version: u32,
    ) -> Self {
        ClientHello {
            client_id: client_id.into(),
            last_seen_order,
            client_key: AesKey::random(rng),
            version,
        }
    }

    /// The XDR plaintext. Version 1 omits the version field, as the seed's client did.
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, EncodeError> {
        let mut w = Writer::with_capacity(64 + self.client_id.len());
        w.opaque(self.client_id.as_bytes())?
            .hyper(self.last_seen_order)
            .opaque(self.client_key.expose_secret())?;
        if self.version != 1 {
            w.uint(self.version);
        }
        Ok(Zeroizing::new(w.into_bytes()))
    }

    /// Reads the XDR plaintext (after RSA decryption). Strict: a bounded printable-ASCII client
    /// id, a key of exactly 32 bytes, an optional non-zero version, nothing after it.
    pub fn decode(plaintext: &[u8]) -> Result<Self, SecureError> {
        let mut r = Reader::with_max_opaque(plaintext, MAX_CLIENT_ID_LEN);
        let client_id = r.opaque_max(MAX_CLIENT_ID_LEN)?;
        if !valid_client_id(client_id) {
            return Err(SecureError::new(Detail::ClientId));
        }
        let last_seen_order = r.hyper()?;
        let key = Zeroizing::new(r.opaque_exact::<AES_KEY_LEN>()?);
        let version = if r.is_empty() { 1 } else { r.uint()? };
        r.finish()?;
        if version == 0 {
            return Err(SecureError::new(Detail::Version));
        }
        Ok(ClientHello {
            // Checked ASCII above, so this cannot fail.
            client_id: String::from_utf8(client_id.to_vec())
                .map_err(|_| SecureError::new(Detail::ClientId))?,
            last_seen_order,
            client_key: AesKey::from_bytes(*key),
            version,
        })
    }

    /// Message 1 as sent: RSA-OAEP encrypted to the server's key (client side).
    pub fn seal<R: CryptoRng + RngCore>(
        &self,
        server_key: &PublicKey,
        rng: &mut R,
    ) -> Result<Vec<u8>, EncodeError> {
        server_key.encrypt_oaep(rng, &self.encode()?)
    }

    /// Reads message 1 as received: decrypts it with the server's key, then decodes it (server
    /// side). The server must rate-limit calls per address and per client id (RUSTSEC-2023-0071).
    pub fn open<R: CryptoRng + RngCore>(
        server_key: &PrivateKey,
        message: &[u8],
        rng: &mut R,
    ) -> Result<Self, SecureError> {
        let plaintext = server_key.decrypt_oaep(rng, message)?;
        Self::decode(&plaintext)
    }
}

/// Handshake message 2, server → client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHello {
    /// The challenge the client signs in message 3 (32 random bytes from this server).
    pub data_to_sign: Vec<u8>,
    /// The last client SEQUENCE the server saw; the client continues with the next.
    pub last_seen_sequence: i64,
    /// The key the server encrypts its frames with.
    pub server_key: AesKey,
    /// The session's protocol version (1 when the field is absent).
    pub server_version: u32,
}

impl ServerHello {
    /// A hello with a fresh random challenge and AES key (server side). `server_version` is
    /// normally [`negotiate_version`] of the client's.
    pub fn generate<R: CryptoRng + RngCore>(
        rng: &mut R,
        last_seen_sequence: i64,
        server_version: u32,
    ) -> Self {
        let mut data_to_sign = vec![0u8; DATA_TO_SIGN_LEN];
        rng.fill_bytes(&mut data_to_sign);
        ServerHello {
            data_to_sign,
            last_seen_sequence,
            server_key: AesKey::random(rng),
            server_version,
        }
    }

    /// The XDR plaintext. Version 1 omits the version field, as the seed's server did.
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, EncodeError> {
        let mut w = Writer::with_capacity(96);
        w.opaque(&self.data_to_sign)?
            .hyper(self.last_seen_sequence)
            .opaque(self.server_key.expose_secret())?;
        if self.server_version != 1 {
            w.uint(self.server_version);
        }
        Ok(Zeroizing::new(w.into_bytes()))
    }

    /// Reads the XDR plaintext (after RSA decryption; client side). Strict like
    /// [`ClientHello::decode`]; `data_to_sign` must be 1 to [`MAX_DATA_TO_SIGN_LEN`] bytes.
    pub fn decode(plaintext: &[u8]) -> Result<Self, SecureError> {
        let mut r = Reader::with_max_opaque(plaintext, MAX_DATA_TO_SIGN_LEN);
        let data_to_sign = r.opaque()?;
        if data_to_sign.is_empty() {
            return Err(SecureError::new(Detail::Xdr(
                super::xdr::XdrError::WrongLength,
            )));
        }
        let last_seen_sequence = r.hyper()?;
        let key = Zeroizing::new(r.opaque_exact::<AES_KEY_LEN>()?);
        let server_version = if r.is_empty() { 1 } else { r.uint()? };
        r.finish()?;
        if server_version == 0 {
            return Err(SecureError::new(Detail::Version));
        }
        Ok(ServerHello {
            data_to_sign: data_to_sign.to_vec(),
            last_seen_sequence,
            server_key: AesKey::from_bytes(*key),
            server_version,
        })
    }

    /// Message 2 as sent: RSA-OAEP encrypted to the client's key (server side).
    pub fn seal<R: CryptoRng + RngCore>(
        &self,
        client_key: &PublicKey,
        rng: &mut R,
    ) -> Result<Vec<u8>, EncodeError> {
        client_key.encrypt_oaep(rng, &self.encode()?)
    }

    /// Reads message 2 as received: decrypts it with the client's key, then decodes it (client
    /// side).
    pub fn open<R: CryptoRng + RngCore>(
        client_key: &PrivateKey,
        message: &[u8],
        rng: &mut R,
    ) -> Result<Self, SecureError> {
        let plaintext = client_key.decrypt_oaep(rng, message)?;
        Self::decode(&plaintext)
    }
}

/// Message 3 (client side): the raw RSA-PSS signature (SHA-512, MGF1-SHA-512, maximum salt
/// length) of `data_to_sign`.
pub fn sign_challenge<R: CryptoRng + RngCore>(
    client_key: &PrivateKey,
    data_to_sign: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, EncodeError> {
    client_key.sign_pss(rng, data_to_sign)
}

/// Checks message 3 (server side): `signature` must be the client key's RSA-PSS signature of the
/// `data_to_sign` this server sent. A failure ends the connection.
pub fn verify_challenge(
    client_key: &PublicKey,
    data_to_sign: &[u8],
    signature: &[u8],
) -> Result<(), SecureError> {
    if signature.len() > MAX_RSA_LEN {
        return Err(SecureError::new(Detail::Signature));
    }
    client_key.verify_pss(data_to_sign, signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secure::test_keys::{client_key, server_key};
    use crate::secure::xdr::XdrError;

    /// The whole handshake, both sides, at one client version; returns both sides' views.
    fn round_trip(client_version: u32) -> (ClientHello, ServerHello, ClientHello, ServerHello) {
        let mut rng = rand::thread_rng();
        let server_private = server_key();
        let client_private = client_key();

        // 1. Client → server.
        let hello = ClientHello::generate(&mut rng, "robot-gambler", 41, client_version);
        let msg1 = hello.seal(&server_private.public_key(), &mut rng).unwrap();
        assert_eq!(msg1.len(), 256);
        let received = ClientHello::open(server_private, &msg1, &mut rng).unwrap();
        assert_eq!(received, hello);

        // 2. Server → client (the server looked the client's public key up by id).
        let version = negotiate_version(received.version);
        let challenge = ServerHello::generate(&mut rng, 17, version);
        assert_eq!(challenge.data_to_sign.len(), DATA_TO_SIGN_LEN);
        let msg2 = challenge
            .seal(&client_private.public_key(), &mut rng)
            .unwrap();
        let answer = ServerHello::open(client_private, &msg2, &mut rng).unwrap();
        assert_eq!(answer, challenge);

        // 3. Client → server.
        let msg3 = sign_challenge(client_private, &answer.data_to_sign, &mut rng).unwrap();
        assert_eq!(msg3.len(), 256);
        verify_challenge(&client_private.public_key(), &challenge.data_to_sign, &msg3).unwrap();
        (hello, challenge, received, answer)
    }

    #[test]
    fn secure_handshake_round_trip_version_1() {
        let (hello, challenge, _, answer) = round_trip(1);
        assert_eq!(hello.version, 1);
        // Version 1: no version fields on the wire.
        assert_eq!(hello.encode().unwrap().len(), 4 + 16 + 8 + 4 + 32);
        assert_eq!(challenge.encode().unwrap().len(), 4 + 32 + 8 + 4 + 32);
        assert_eq!(answer.server_version, 1);
    }

    #[test]
    fn secure_handshake_round_trip_version_2() {
        let (hello, _, received, answer) = round_trip(2);
        assert_eq!(hello.encode().unwrap().len(), 4 + 16 + 8 + 4 + 32 + 4);
        assert_eq!(received.version, 2);
        assert_eq!(answer.server_version, 2);
    }

    #[test]
    fn secure_handshake_round_trip_version_5() {
        let (_, _, received, answer) = round_trip(5);
        assert_eq!(received.version, 5);
        assert_eq!(answer.server_version, 5);
    }

    #[test]
    fn secure_handshake_newer_client_is_capped() {
        assert_eq!(negotiate_version(9), PROTOCOL_VERSION);
        assert_eq!(negotiate_version(3), 3);
    }

    #[test]
    fn secure_handshake_message_1_layout_matches_xdrlib() {
        // packer.pack_bytes(b"ab"); pack_hyper(-1); pack_bytes(key); pack_uint(2)
        let hello = ClientHello {
            client_id: "ab".into(),
            last_seen_order: -1,
            client_key: AesKey::from_bytes([9; 32]),
            version: 2,
        };
        let mut expected = b"\0\0\0\x02ab\0\0".to_vec();
        expected.extend_from_slice(&[0xff; 8]);
        expected.extend_from_slice(&[0, 0, 0, 32]);
        expected.extend_from_slice(&[9; 32]);
        expected.extend_from_slice(&[0, 0, 0, 2]);
        assert_eq!(&hello.encode().unwrap()[..], &expected[..]);
        assert_eq!(ClientHello::decode(&expected).unwrap(), hello);
    }

    fn hello_bytes(id: &[u8], key: &[u8], tail: &[u8]) -> Vec<u8> {
        let mut w = Writer::new();
        w.opaque(id).unwrap().hyper(0).opaque(key).unwrap();
        let mut bytes = w.into_bytes();
        bytes.extend_from_slice(tail);
        bytes
    }

    #[test]
    fn secure_handshake_message_1_is_strict() {
        let generic = SecureError::new(Detail::Padding);
        assert!(ClientHello::decode(&hello_bytes(b"id", &[1; 32], &[])).is_ok());
        for bad in [
            hello_bytes(b"", &[1; 32], &[]),
            hello_bytes(&[b'a'; MAX_CLIENT_ID_LEN + 1], &[1; 32], &[]),
            hello_bytes(b"with space", &[1; 32], &[]),
            hello_bytes(b"bell\x07", &[1; 32], &[]),
            hello_bytes("é".as_bytes(), &[1; 32], &[]),
            hello_bytes(b"id", &[1; 31], &[]),
            hello_bytes(b"id", &[1; 33], &[]),
            hello_bytes(b"id", &[1; 16], &[]),
            hello_bytes(b"id", &[1; 32], &[0, 0, 0, 0]),
            hello_bytes(b"id", &[1; 32], &[0, 0, 0]),
            hello_bytes(b"id", &[1; 32], &[0, 0, 0, 2, 0]),
            vec![],
            vec![0xff; 64],
        ] {
            assert_eq!(ClientHello::decode(&bad).unwrap_err(), generic);
        }
        // The maximum id length fits a 2048-bit OAEP block.
        let hello = ClientHello::generate(
            &mut rand::thread_rng(),
            "a".repeat(MAX_CLIENT_ID_LEN),
            0,
            PROTOCOL_VERSION,
        );
        assert!(hello.encode().unwrap().len() <= 256 - 2 * 20 - 2);
    }

    #[test]
    fn secure_handshake_message_2_is_strict() {
        let mut w = Writer::new();
        w.opaque(&[]).unwrap().hyper(0).opaque(&[0; 32]).unwrap();
        assert_eq!(
            ServerHello::decode(w.as_bytes())
                .unwrap_err()
                .detail_for_logs(),
            XdrError::WrongLength.to_string()
        );
        let mut w = Writer::new();
        w.opaque(&[1; MAX_DATA_TO_SIGN_LEN + 1])
            .unwrap()
            .hyper(0)
            .opaque(&[0; 32])
            .unwrap();
        assert!(ServerHello::decode(w.as_bytes()).is_err());
        let mut w = Writer::new();
        w.opaque(&[1; 32])
            .unwrap()
            .hyper(0)
            .opaque(&[0; 32])
            .unwrap();
        assert_eq!(ServerHello::decode(w.as_bytes()).unwrap().server_version, 1);
        w.uint(0);
        assert!(ServerHello::decode(w.as_bytes()).is_err());
    }

    #[test]
    fn secure_handshake_failures_are_the_one_generic_error() {
        let mut rng = rand::thread_rng();
        let hello = ClientHello::generate(&mut rng, "c", 0, 5);
        // Encrypted to the wrong key.
        let wrong = hello.seal(&client_key().public_key(), &mut rng).unwrap();
        let e1 = ClientHello::open(server_key(), &wrong, &mut rng).unwrap_err();
        // Tampered.
        let mut tampered = hello.seal(&server_key().public_key(), &mut rng).unwrap();
        tampered[100] ^= 1;
        let e2 = ClientHello::open(server_key(), &tampered, &mut rng).unwrap_err();
        // Truncated, empty.
        let e3 = ClientHello::open(server_key(), &tampered[..255], &mut rng).unwrap_err();
        let e4 = ClientHello::open(server_key(), &[], &mut rng).unwrap_err();
        // Valid RSA, invalid plaintext.
        let junk = server_key()
            .public_key()
            .encrypt_oaep(&mut rng, b"junk")
            .unwrap();
        let e5 = ClientHello::open(server_key(), &junk, &mut rng).unwrap_err();
        // Message 3: wrong signature, signature by another key, wrong data, wrong length.
        let data = [5u8; DATA_TO_SIGN_LEN];
        let good = sign_challenge(client_key(), &data, &mut rng).unwrap();
        let mut bad = good.clone();
        bad[10] ^= 0x40;
        let public = client_key().public_key();
        let e6 = verify_challenge(&public, &data, &bad).unwrap_err();
        let other = sign_challenge(server_key(), &data, &mut rng).unwrap();
        let e7 = verify_challenge(&public, &data, &other).unwrap_err();
        let e8 = verify_challenge(&public, &[6u8; 32], &good).unwrap_err();
        let e9 = verify_challenge(&public, &data, &good[..255]).unwrap_err();
        let e10 = verify_challenge(&public, &data, &vec![0; 100_000]).unwrap_err();
        verify_challenge(&public, &data, &good).unwrap();

        let all = [e1, e2, e3, e4, e5, e6, e7, e8, e9, e10];
        for e in &all {
            assert_eq!(e.to_string(), "secure transport: message rejected");
            assert_eq!(format!("{e:?}"), "SecureError");
            assert_eq!(*e, all[0]);
        }
        // The private detail still tells the server's logs what happened.
        assert_eq!(all[0].detail_for_logs(), "RSA-OAEP decryption failed");
        assert_eq!(all[5].detail_for_logs(), "bad RSA-PSS signature");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Arbitrary RSA ciphertexts (the fuzz targets leave RSA decryption to this test).
        #[test]
        fn secure_handshake_opening_arbitrary_ciphertext_never_panics(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 256),
            cut in 0usize..300,
        ) {
            let mut rng = rand::thread_rng();
            proptest::prop_assert!(ClientHello::open(server_key(), &bytes, &mut rng).is_err());
            proptest::prop_assert!(ServerHello::open(client_key(), &bytes, &mut rng).is_err());
            let short = &bytes[..cut.min(bytes.len())];
            proptest::prop_assert!(ClientHello::open(server_key(), short, &mut rng).is_err());
        }
    }
}
