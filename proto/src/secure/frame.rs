//! Frames after the handshake: `IV(16) || AES-256-CBC(PKCS7(plaintext))`, and the XDR messages
//! inside them.
//!
//! Client plaintext: `enum type (1 INBOX, 2 RPC_REQUEST), hyper sequence_or_request_id,
//! bytes json`; for versions 1–2 wrapped as `bytes rsa_pss_signature(buf), bytes buf`
//! ([`ClientLayout::Signed`]). Server plaintext: `enum type` then the fields of the
//! [`ServerMessage`] variant.
//!
//! Opening a peer's frame fails only with the one [`SecureError`]; the PKCS#7 check runs in
//! constant time. There is no MAC: integrity comes from TLS (see the module notes).

use aes::cipher::block_padding::{NoPadding, Pkcs7};
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use rand::{CryptoRng, RngCore};
use subtle::{ConstantTimeEq, ConstantTimeGreater};

use super::keys::{AesKey, PrivateKey, PublicKey, MAX_RSA_LEN};
use super::xdr::{Reader, Writer};
use super::{Detail, EncodeError, SecureError};

type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

/// The AES block size, also the IV length.
pub const BLOCK_LEN: usize = 16;
/// The shortest frame: an IV and one block.
pub const MIN_FRAME_LEN: usize = 2 * BLOCK_LEN;

/// Encrypts `plaintext` under `key` with a fresh random IV: `IV || AES-256-CBC(PKCS7(plaintext))`.
pub fn seal<R: CryptoRng + RngCore>(key: &AesKey, rng: &mut R, plaintext: &[u8]) -> Vec<u8> {
    let mut iv = [0u8; BLOCK_LEN];
    rng.fill_bytes(&mut iv);
    let padded = (plaintext.len() / BLOCK_LEN + 1) * BLOCK_LEN;
    let mut out = vec![0u8; BLOCK_LEN + padded];
    out[..BLOCK_LEN].copy_from_slice(&iv);
    out[BLOCK_LEN..BLOCK_LEN + plaintext.len()].copy_from_slice(plaintext);
    Encryptor::new(key.expose_secret().into(), &iv.into())
        .encrypt_padded_mut::<Pkcs7>(&mut out[BLOCK_LEN..], plaintext.len())
        .expect("the buffer has room for the padding");
    out
}

/// Seals the server messages of one session. The AES key schedule is expanded once (and wiped
/// when the sealer is dropped), and the frequent messages are written straight into their frame:
/// one allocation per message, no intermediate plaintext, the bytes of [`seal_server_frame`].
pub struct FrameSealer {
    cipher: aes::Aes256,
}

impl FrameSealer {
    pub fn new(key: &AesKey) -> Self {
        use aes::cipher::KeyInit;
        FrameSealer {
            cipher: aes::Aes256::new(key.expose_secret().into()),
        }
    }

    /// An OUTBOX message: `order`, `timestamp` (Unix seconds) and `json`.
    pub fn outbox<R: CryptoRng + RngCore>(
        &self,
        rng: &mut R,
        order: i64,
        timestamp: f64,
        json: &[u8],
    ) -> Vec<u8> {
        let mut frame = self.start(4 + 8 + 8 + xdr_opaque_len(json.len()));
        frame.extend_from_slice(&(ServerMessageType::Outbox as i32).to_be_bytes());
        frame.extend_from_slice(&order.to_be_bytes());
        frame.extend_from_slice(&timestamp.to_bits().to_be_bytes());
        put_xdr_opaque(&mut frame, json);
        self.finish(rng, frame)
    }

    /// An RPC_RESPONSE to `request_id`.
    pub fn rpc_response<R: CryptoRng + RngCore>(
        &self,
        rng: &mut R,
        request_id: i64,
        json: &[u8],
    ) -> Vec<u8> {
        let mut frame = self.start(4 + 8 + xdr_opaque_len(json.len()));
        frame.extend_from_slice(&(ServerMessageType::RpcResponse as i32).to_be_bytes());
        frame.extend_from_slice(&request_id.to_be_bytes());
        put_xdr_opaque(&mut frame, json);
        self.finish(rng, frame)
    }

    /// A BROADCAST message.
    pub fn broadcast<R: CryptoRng + RngCore>(&self, rng: &mut R, json: &[u8]) -> Vec<u8> {
        let mut frame = self.start(4 + xdr_opaque_len(json.len()));
        frame.extend_from_slice(&(ServerMessageType::Broadcast as i32).to_be_bytes());
        put_xdr_opaque(&mut frame, json);
        self.finish(rng, frame)
    }

    /// Any server message (the rare ones: ERROR, THROTTLING).
    pub fn message<R: CryptoRng + RngCore>(
        &self,
        rng: &mut R,
        message: &ServerMessage,
    ) -> Result<Vec<u8>, EncodeError> {
        let plaintext = message.encode()?;
        let mut frame = self.start(plaintext.len());
        frame.extend_from_slice(&plaintext);
        Ok(self.finish(rng, frame))
    }

    /// A frame with room for a plaintext of `len` bytes and its padding; the IV is written
    /// by [`Self::finish`].
    fn start(&self, len: usize) -> Vec<u8> {
        let padded = (len / BLOCK_LEN + 1) * BLOCK_LEN;
        let mut frame = Vec::with_capacity(BLOCK_LEN + padded);
        frame.extend_from_slice(&[0u8; BLOCK_LEN]);
        frame
    }

    /// Pads and encrypts the plaintext after the IV, in place, under a fresh random IV.
    fn finish<R: CryptoRng + RngCore>(&self, rng: &mut R, mut frame: Vec<u8>) -> Vec<u8> {
        use aes::cipher::InnerIvInit;
        let len = frame.len() - BLOCK_LEN;
        let padded = (len / BLOCK_LEN + 1) * BLOCK_LEN;
        frame.resize(BLOCK_LEN + padded, 0);
        let mut iv = [0u8; BLOCK_LEN];
        rng.fill_bytes(&mut iv);
        frame[..BLOCK_LEN].copy_from_slice(&iv);
        Encryptor::inner_iv_init(self.cipher.clone(), &iv.into())
            .encrypt_padded_mut::<Pkcs7>(&mut frame[BLOCK_LEN..], len)
            .expect("the buffer has room for the padding");
        frame
    }
}

/// The bytes of an XDR opaque/string of `len` bytes: its length, the bytes, zero padding to 4.
fn xdr_opaque_len(len: usize) -> usize {
    4 + len.div_ceil(4) * 4
}

fn put_xdr_opaque(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
    out.resize(out.len() + (4 - bytes.len() % 4) % 4, 0);
}

/// Decrypts a frame made by [`seal`]. The length must be at least 32 and a multiple of 16; the
/// padding is checked in constant time. Every failure is the same [`SecureError`].
pub fn open(key: &AesKey, frame: &[u8]) -> Result<Vec<u8>, SecureError> {
    FrameOpener::new(key).open(frame)
}

/// Opens the frames of one peer, like [`open`], with the AES key schedule expanded once (and
/// wiped when the opener is dropped).
pub struct FrameOpener {
    cipher: aes::Aes256,
}

impl FrameOpener {
    pub fn new(key: &AesKey) -> Self {
        use aes::cipher::KeyInit;
        FrameOpener {
            cipher: aes::Aes256::new(key.expose_secret().into()),
        }
    }

    /// The plaintext of a frame; every failure is the same [`SecureError`].
    pub fn open(&self, frame: &[u8]) -> Result<Vec<u8>, SecureError> {
        use aes::cipher::InnerIvInit;
        if frame.len() < MIN_FRAME_LEN || frame.len() % BLOCK_LEN != 0 {
            return Err(SecureError::new(Detail::FrameLength));
        }
        let (iv, ciphertext) = frame.split_at(BLOCK_LEN);
        let mut buf = ciphertext.to_vec();
        Decryptor::inner_iv_init(self.cipher.clone(), iv.into())
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map_err(|_| SecureError::new(Detail::FrameLength))?;
        let len = unpad_pkcs7(&buf)?;
        buf.truncate(len);
        Ok(buf)
    }
}

/// The unpadded length of a PKCS#7-padded buffer (non-empty, whole blocks), found in constant
/// time: the padding value is 1 to 16 and the last that many bytes all equal it.
fn unpad_pkcs7(buf: &[u8]) -> Result<usize, SecureError> {
    let n = buf.len();
    if n < BLOCK_LEN || n % BLOCK_LEN != 0 {
        return Err(SecureError::new(Detail::FrameLength));
    }
    let pad = buf[n - 1];
    let mut ok = !pad.ct_eq(&0) & !pad.ct_gt(&(BLOCK_LEN as u8));
    for i in 0..BLOCK_LEN {
        let in_padding = pad.ct_gt(&(i as u8));
        ok &= !in_padding | buf[n - 1 - i].ct_eq(&pad);
    }
    if bool::from(ok) {
        Ok(n - usize::from(pad))
    } else {
        Err(SecureError::new(Detail::Padding))
    }
}

/// The client message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientMessageType {
    /// A message to the client's inbox, numbered by SEQUENCE.
    Inbox = 1,
    /// An RPC request, numbered by request id.
    RpcRequest = 2,
}

impl ClientMessageType {
    fn from_wire(v: i32) -> Result<Self, SecureError> {
        match v {
            1 => Ok(ClientMessageType::Inbox),
            2 => Ok(ClientMessageType::RpcRequest),
            _ => Err(SecureError::new(Detail::MessageType)),
        }
    }
}

/// How a client frame's plaintext is laid out, by protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientLayout {
    /// Versions 1–2: `bytes rsa_pss_signature(buf), bytes buf`, every message signed.
    Signed,
    /// Version 3 on: the message itself.
    Plain,
}

impl ClientLayout {
    /// The layout of a session at `version` (see [`super::negotiate_version`]).
    pub fn for_version(version: u32) -> Self {
        if version <= 2 {
            ClientLayout::Signed
        } else {
            ClientLayout::Plain
        }
    }
}

/// A client message: an inbox message or an RPC request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMessage {
    pub kind: ClientMessageType,
    /// SEQUENCE for an inbox message, the request id for an RPC request.
    pub id: i64,
    /// The JSON body, as sent.
    pub json: Vec<u8>,
}

impl ClientMessage {
    /// An inbox message.
    pub fn inbox(sequence: i64, json: impl Into<Vec<u8>>) -> Self {
        ClientMessage {
            kind: ClientMessageType::Inbox,
            id: sequence,
            json: json.into(),
        }
    }

    /// An RPC request.
    pub fn rpc_request(request_id: i64, json: impl Into<Vec<u8>>) -> Self {
        ClientMessage {
            kind: ClientMessageType::RpcRequest,
            id: request_id,
            json: json.into(),
        }
    }

    /// The XDR of the message (the `buf` of the signed layout).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut w = Writer::with_capacity(20 + self.json.len());
        w.int(self.kind as i32).hyper(self.id).opaque(&self.json)?;
        Ok(w.into_bytes())
    }

    /// Reads the XDR of a message; nothing may follow it.
    pub fn decode(buf: &[u8]) -> Result<Self, SecureError> {
        let mut r = Reader::new(buf);
        let kind = ClientMessageType::from_wire(r.int()?)?;
        let id = r.hyper()?;
        let json = r.opaque()?;
        r.finish()?;
        Ok(ClientMessage {
            kind,
            id,
            json: json.to_vec(),
        })
    }
}

/// Encrypts a client message (client side). The signed layout signs with `client_key`.
pub fn seal_client_frame<R: CryptoRng + RngCore>(
    key: &AesKey,
    layout: ClientLayout,
    client_key: &PrivateKey,
    message: &ClientMessage,
    rng: &mut R,
) -> Result<Vec<u8>, EncodeError> {
    let buf = message.encode()?;
    let plaintext = match layout {
        ClientLayout::Plain => buf,
        ClientLayout::Signed => {
            let signature = client_key.sign_pss(rng, &buf)?;
            let mut w = Writer::with_capacity(8 + signature.len() + buf.len() + 3);
            w.opaque(&signature)?.opaque(&buf)?;
            w.into_bytes()
        }
    };
    Ok(seal(key, rng, &plaintext))
}

/// Decrypts and reads a client frame (server side): length, padding, XDR, and for the signed
/// layout the RSA-PSS signature by `client_key`. Every failure is the same [`SecureError`];
/// the server should log [`SecureError::detail_for_logs`] at debug level, then close.
pub fn open_client_frame(
    key: &AesKey,
    layout: ClientLayout,
    client_key: &PublicKey,
    frame: &[u8],
) -> Result<ClientMessage, SecureError> {
    let plaintext = open(key, frame)?;
    match layout {
        ClientLayout::Plain => ClientMessage::decode(&plaintext),
        ClientLayout::Signed => {
            let mut r = Reader::new(&plaintext);
            let signature = r.opaque_max(MAX_RSA_LEN)?;
            let buf = r.opaque()?;
            r.finish()?;
            client_key.verify_pss(buf, signature)?;
            ClientMessage::decode(buf)
        }
    }
}

/// The server message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerMessageType {
    Outbox = 1,
    RpcResponse = 2,
    Error = 3,
    Broadcast = 4,
    Throttling = 5,
}

/// A server message.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    /// An event for this client, numbered by ORDER (increasing, not necessarily by one).
    Outbox {
        order: i64,
        /// When the event happened, Unix seconds.
        timestamp: f64,
        json: String,
    },
    /// The answer to the RPC request with the same id.
    RpcResponse { request_id: i64, json: String },
    /// An error in the client's recent messages; the server disconnects after it.
    Error { error_type: i32, message: String },
    /// A message for every client.
    Broadcast { json: String },
    /// The client should slow down.
    Throttling {
        level: i32,
        sequence_id: i64,
        order_id: i64,
    },
}

impl ServerMessage {
    /// The message's type.
    pub fn message_type(&self) -> ServerMessageType {
        match self {
            ServerMessage::Outbox { .. } => ServerMessageType::Outbox,
            ServerMessage::RpcResponse { .. } => ServerMessageType::RpcResponse,
            ServerMessage::Error { .. } => ServerMessageType::Error,
            ServerMessage::Broadcast { .. } => ServerMessageType::Broadcast,
            ServerMessage::Throttling { .. } => ServerMessageType::Throttling,
        }
    }

    /// The XDR of the message: type, then its fields.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut w = Writer::with_capacity(32);
        w.int(self.message_type() as i32);
        match self {
            ServerMessage::Outbox {
                order,
                timestamp,
                json,
            } => {
                w.hyper(*order).double(*timestamp).string(json)?;
            }
            ServerMessage::RpcResponse { request_id, json } => {
                w.hyper(*request_id).string(json)?;
            }
            ServerMessage::Error {
                error_type,
                message,
            } => {
                w.int(*error_type).string(message)?;
            }
            ServerMessage::Broadcast { json } => {
                w.string(json)?;
            }
            ServerMessage::Throttling {
                level,
                sequence_id,
                order_id,
            } => {
                w.int(*level).hyper(*sequence_id).hyper(*order_id);
            }
        }
        Ok(w.into_bytes())
    }

    /// Reads the XDR of a message; nothing may follow it.
    pub fn decode(buf: &[u8]) -> Result<Self, SecureError> {
        let mut r = Reader::new(buf);
        let message = match r.int()? {
            1 => ServerMessage::Outbox {
                order: r.hyper()?,
                timestamp: r.double()?,
                json: r.string()?.to_owned(),
            },
            2 => ServerMessage::RpcResponse {
                request_id: r.hyper()?,
                json: r.string()?.to_owned(),
            },
            3 => ServerMessage::Error {
                error_type: r.int()?,
                message: r.string()?.to_owned(),
            },
            4 => ServerMessage::Broadcast {
                json: r.string()?.to_owned(),
            },
            5 => ServerMessage::Throttling {
                level: r.int()?,
                sequence_id: r.hyper()?,
                order_id: r.hyper()?,
            },
            _ => return Err(SecureError::new(Detail::MessageType)),
        };
        r.finish()?;
        Ok(message)
    }
}

/// Encrypts a server message (server side).
pub fn seal_server_frame<R: CryptoRng + RngCore>(
    key: &AesKey,
    message: &ServerMessage,
    rng: &mut R,
) -> Result<Vec<u8>, EncodeError> {
    Ok(seal(key, rng, &message.encode()?))
}

/// Decrypts and reads a server frame (client side).
pub fn open_server_frame(key: &AesKey, frame: &[u8]) -> Result<ServerMessage, SecureError> {
    ServerMessage::decode(&open(key, frame)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secure::test_keys::{client_key, server_key};
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(2)
    }

    fn key() -> AesKey {
        AesKey::from_bytes([0x11; 32])
    }

    fn generic() -> SecureError {
        SecureError::new(Detail::Padding)
    }

    fn all_server_messages() -> Vec<ServerMessage> {
        vec![
            ServerMessage::Outbox {
                order: 12,
                timestamp: 1_517_000_000.25,
                json: r#"{"@type":"BuyOrderPlaced","price":"1.5"}"#.into(),
            },
            ServerMessage::RpcResponse {
                request_id: -3,
                json: r#"{"result":"ok"}"#.into(),
            },
            ServerMessage::Error {
                error_type: 2,
                message: "TimeoutError()".into(),
            },
            ServerMessage::Broadcast {
                json: r#"{"@type":"OrderBookAgg"}"#.into(),
            },
            ServerMessage::Throttling {
                level: 3,
                sequence_id: i64::MAX,
                order_id: 0,
            },
            ServerMessage::Broadcast {
                json: String::new(),
            },
        ]
    }

    #[test]
    fn secure_frame_seal_open_round_trip_every_length() {
        let mut rng = rng();
        for len in 0..70 {
            let plain: Vec<u8> = (0..len as u8).collect();
            let frame = seal(&key(), &mut rng, &plain);
            assert_eq!(frame.len(), 16 + (len / 16 + 1) * 16);
            assert_eq!(open(&key(), &frame).unwrap(), plain);
        }
    }

    #[test]
    fn secure_frame_fresh_iv_every_time() {
        let mut rng = rand::thread_rng();
        let a = seal(&key(), &mut rng, b"same");
        let b = seal(&key(), &mut rng, b"same");
        assert_ne!(a[..16], b[..16]);
        assert_ne!(a, b);
    }

    #[test]
    fn secure_frame_server_messages_round_trip() {
        let mut rng = rng();
        for message in all_server_messages() {
            let frame = seal_server_frame(&key(), &message, &mut rng).unwrap();
            assert_eq!(open_server_frame(&key(), &frame).unwrap(), message);
        }
    }

    #[test]
    fn secure_frame_server_message_layouts_match_xdrlib() {
        let outbox = ServerMessage::Outbox {
            order: 1,
            timestamp: 0.5,
            json: "{}".into(),
        };
        let mut expected = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        expected.extend_from_slice(&0.5f64.to_be_bytes());
        expected.extend_from_slice(b"\0\0\0\x02{}\0\0");
        assert_eq!(outbox.encode().unwrap(), expected);
        let throttling = ServerMessage::Throttling {
            level: -1,
            sequence_id: 2,
            order_id: 3,
        };
        let mut expected = vec![0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff];
        expected.extend_from_slice(&2i64.to_be_bytes());
        expected.extend_from_slice(&3i64.to_be_bytes());
        assert_eq!(throttling.encode().unwrap(), expected);
    }

    #[test]
    fn secure_frame_client_messages_round_trip_both_layouts() {
        let mut rng = rng();
        let public = client_key().public_key();
        for version in [1, 2, 3, 5] {
            let layout = ClientLayout::for_version(version);
            assert_eq!(layout == ClientLayout::Signed, version <= 2);
            for message in [
                ClientMessage::inbox(42, &br#"{"@type":"PlaceBuyLimitOrder"}"#[..]),
                ClientMessage::rpc_request(7, &b"{}"[..]),
                ClientMessage::inbox(0, Vec::new()),
            ] {
                let frame =
                    seal_client_frame(&key(), layout, client_key(), &message, &mut rng).unwrap();
                assert_eq!(
                    open_client_frame(&key(), layout, &public, &frame).unwrap(),
                    message
                );
            }
        }
    }

    #[test]
    fn secure_frame_signed_layout_matches_python_encrypt_and_sign() {
        // crypto.encrypt_and_sign: pack_bytes(sign(buf)); pack_bytes(buf)
        let message = ClientMessage::inbox(1, &b"{}"[..]);
        let frame = seal_client_frame(
            &key(),
            ClientLayout::Signed,
            client_key(),
            &message,
            &mut rng(),
        )
        .unwrap();
        let plain = open(&key(), &frame).unwrap();
        let buf = message.encode().unwrap();
        assert_eq!(&plain[..4], &[0, 0, 1, 0]); // 256-byte signature
        assert_eq!(&plain[260..264], &(buf.len() as u32).to_be_bytes());
        assert_eq!(&plain[264..], &buf[..]);
        client_key()
            .public_key()
            .verify_pss(&buf, &plain[4..260])
            .unwrap();
    }

    #[test]
    fn secure_frame_tampered_ciphertext_is_the_generic_error() {
        let mut rng = rng();
        let public = client_key().public_key();
        let message = ClientMessage::inbox(5, vec![b'x'; 200]);
        for layout in [ClientLayout::Signed, ClientLayout::Plain] {
            let frame =
                seal_client_frame(&key(), layout, client_key(), &message, &mut rng).unwrap();
            // Break the padding: flip a high bit of the penultimate block's last byte, which
            // lands on the padding value.
            let mut bad = frame.clone();
            let at = bad.len() - 17;
            bad[at] ^= 0x80;
            assert_eq!(
                open_client_frame(&key(), layout, &public, &bad).unwrap_err(),
                generic()
            );
            // Break the message type (in the IV for the plain layout, the signature length for
            // the signed one).
            let mut bad = frame.clone();
            bad[2] ^= 0x40;
            assert_eq!(
                open_client_frame(&key(), layout, &public, &bad).unwrap_err(),
                generic()
            );
        }
        // Signed layout: a change inside the JSON keeps XDR valid but breaks the signature.
        let frame = seal_client_frame(
            &key(),
            ClientLayout::Signed,
            client_key(),
            &message,
            &mut rng,
        )
        .unwrap();
        let mut bad = frame.clone();
        bad[16 + 16 * 20] ^= 1; // ciphertext block 20: plaintext bytes 320..352, in the JSON
        let e = open_client_frame(&key(), ClientLayout::Signed, &public, &bad).unwrap_err();
        assert_eq!(e, generic());
        assert_eq!(e.detail_for_logs(), "bad RSA-PSS signature");
    }

    #[test]
    fn secure_frame_plain_layout_has_no_integrity_without_tls() {
        // Documented limitation: flipping a bit of the IV flips the same bit of the first
        // plaintext block, undetected. TLS must provide integrity.
        let message = ClientMessage::inbox(5, &b"{}"[..]);
        let frame = seal_client_frame(
            &key(),
            ClientLayout::Plain,
            client_key(),
            &message,
            &mut rng(),
        )
        .unwrap();
        let mut bad = frame;
        bad[11] ^= 1; // the low byte of the sequence
        let opened = open_client_frame(
            &key(),
            ClientLayout::Plain,
            &client_key().public_key(),
            &bad,
        )
        .unwrap();
        assert_eq!(opened.id, 4);
    }

    #[test]
    fn secure_frame_bad_lengths_wrong_key_wrong_signature_are_the_generic_error() {
        let mut rng = rng();
        let public = client_key().public_key();
        let message = ClientMessage::rpc_request(9, vec![b'{'; 40]);
        let frame = seal_client_frame(
            &key(),
            ClientLayout::Plain,
            client_key(),
            &message,
            &mut rng,
        )
        .unwrap();
        let mut errors = Vec::new();
        let mut try_open = |frame: &[u8], layout, key: &AesKey| {
            errors.push(open_client_frame(key, layout, &public, frame).unwrap_err());
        };
        // Truncated: a block short, a byte short, only the IV, nothing.
        try_open(&frame[..frame.len() - 16], ClientLayout::Plain, &key());
        try_open(&frame[..frame.len() - 1], ClientLayout::Plain, &key());
        try_open(&frame[..16], ClientLayout::Plain, &key());
        try_open(&frame[..31], ClientLayout::Plain, &key());
        try_open(&[], ClientLayout::Plain, &key());
        // Not a multiple of 16.
        let mut long = frame.clone();
        long.push(0);
        try_open(&long, ClientLayout::Plain, &key());
        // Wrong key.
        try_open(&frame, ClientLayout::Plain, &AesKey::from_bytes([0x12; 32]));
        // A plain frame read as signed.
        try_open(&frame, ClientLayout::Signed, &key());
        // Signed by another key.
        let signed = seal_client_frame(
            &key(),
            ClientLayout::Signed,
            server_key(),
            &message,
            &mut rng,
        )
        .unwrap();
        try_open(&signed, ClientLayout::Signed, &key());
        // A wrong (zeroed) signature.
        let mut w = Writer::new();
        w.opaque(&[0u8; 256])
            .unwrap()
            .opaque(&message.encode().unwrap())
            .unwrap();
        let forged = seal(&key(), &mut rng, w.as_bytes());
        try_open(&forged, ClientLayout::Signed, &key());

        assert_eq!(errors.len(), 10);
        for e in &errors {
            assert_eq!(*e, generic());
            assert_eq!(e.to_string(), "secure transport: message rejected");
            assert_eq!(format!("{e:?}"), "SecureError");
        }
        // Server frames: the same single error.
        assert_eq!(
            open_server_frame(&key(), &frame[..20]).unwrap_err(),
            generic()
        );
        let unknown = seal(&key(), &mut rng, &[0, 0, 0, 6]);
        assert_eq!(open_server_frame(&key(), &unknown).unwrap_err(), generic());
        let trailing = {
            let mut b = ServerMessage::Broadcast { json: "{}".into() }
                .encode()
                .unwrap();
            b.extend_from_slice(&[0, 0, 0, 0]);
            seal(&key(), &mut rng, &b)
        };
        assert_eq!(open_server_frame(&key(), &trailing).unwrap_err(), generic());
    }

    #[test]
    fn secure_frame_pkcs7_check() {
        let mut block = [7u8; 16];
        assert_eq!(unpad_pkcs7(&block).unwrap(), 9);
        block[15] = 16;
        assert!(unpad_pkcs7(&block).is_err());
        assert_eq!(unpad_pkcs7(&[16u8; 16]).unwrap(), 0);
        for bad in [0u8, 17, 255] {
            let mut block = [bad; 16];
            block[15] = bad;
            assert!(unpad_pkcs7(&block).is_err());
        }
        let mut block = [3u8; 16];
        block[13] = 2;
        assert!(unpad_pkcs7(&block).is_err());
        block[15] = 1;
        assert_eq!(unpad_pkcs7(&block).unwrap(), 15);
        assert!(unpad_pkcs7(&[]).is_err());
    }

    #[test]
    fn secure_frame_client_message_type_and_strictness() {
        let mut w = Writer::new();
        w.int(3).hyper(1).opaque(b"{}").unwrap();
        assert!(ClientMessage::decode(w.as_bytes()).is_err());
        let mut w = Writer::new();
        w.int(1).hyper(1).opaque(b"{}").unwrap().uint(0);
        assert!(ClientMessage::decode(w.as_bytes()).is_err());
        assert!(ClientMessage::decode(&[0, 0, 0, 1]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn secure_frame_decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let public = client_key().public_key();
            let _ = open_client_frame(&key(), ClientLayout::Plain, &public, &bytes);
            let _ = open_client_frame(&key(), ClientLayout::Signed, &public, &bytes);
            let _ = open_server_frame(&key(), &bytes);
            let _ = ClientMessage::decode(&bytes);
            let _ = ServerMessage::decode(&bytes);
            let _ = crate::secure::ClientHello::decode(&bytes);
            let _ = crate::secure::ServerHello::decode(&bytes);
            let _ = crate::secure::verify_challenge(&public, &[1; 32], &bytes);
            // The same bytes as a correctly encrypted plaintext reach every parser.
            let frame = seal(&key(), &mut rand::thread_rng(), &bytes);
            prop_assert_eq!(open(&key(), &frame).unwrap(), bytes.clone());
            let _ = open_client_frame(&key(), ClientLayout::Plain, &public, &frame);
            let _ = open_client_frame(&key(), ClientLayout::Signed, &public, &frame);
            let _ = open_server_frame(&key(), &frame);
        }

        #[test]
        fn secure_frame_structured_messages_round_trip(
            id in any::<i64>(),
            json in proptest::collection::vec(any::<u8>(), 0..100),
            order in any::<i64>(),
            text in ".{0,40}",
        ) {
            let mut rng = rand::thread_rng();
            let message = ClientMessage::inbox(id, json);
            let frame = seal_client_frame(&key(), ClientLayout::Plain, client_key(), &message, &mut rng).unwrap();
            prop_assert_eq!(open_client_frame(&key(), ClientLayout::Plain, &client_key().public_key(), &frame).unwrap(), message);
            let message = ServerMessage::Outbox { order, timestamp: id as f64, json: text };
            let frame = seal_server_frame(&key(), &message, &mut rng).unwrap();
            prop_assert_eq!(open_server_frame(&key(), &frame).unwrap(), message);
        }

        #[test]
        fn the_sealer_writes_what_seal_server_frame_writes(
            id in any::<i64>(),
            timestamp in any::<f64>().prop_filter("NaN never equals itself", |t| !t.is_nan()),
            text in ".{0,70}",
        ) {
            let mut rng = rand::thread_rng();
            let sealer = FrameSealer::new(&key());
            let messages = [
                (sealer.outbox(&mut rng, id, timestamp, text.as_bytes()),
                 ServerMessage::Outbox { order: id, timestamp, json: text.clone() }),
                (sealer.rpc_response(&mut rng, id, text.as_bytes()),
                 ServerMessage::RpcResponse { request_id: id, json: text.clone() }),
                (sealer.broadcast(&mut rng, text.as_bytes()),
                 ServerMessage::Broadcast { json: text.clone() }),
            ];
            for (frame, message) in messages {
                let plain = open(&key(), &frame).unwrap();
                prop_assert_eq!(&plain, &message.encode().unwrap());
                prop_assert_eq!(open_server_frame(&key(), &frame).unwrap(), message);
            }
            let error = ServerMessage::Error { error_type: id as i32, message: text };
            let frame = sealer.message(&mut rng, &error).unwrap();
            prop_assert_eq!(open_server_frame(&key(), &frame).unwrap(), error);
        }
    }
}
