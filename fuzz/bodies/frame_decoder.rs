//! Decrypts and decodes arbitrary bytes as secure-transport frames, with a fixed AES key.
//!
//! The first byte picks the path: even, the rest is a frame as received (length checks, AES-CBC,
//! constant-time PKCS#7, then the parsers); odd, the rest is sealed first with the fixed key, so
//! the parsers see fuzzer-chosen plaintext. Decoding must never panic, and whatever decodes must
//! re-encode to the same bytes (the decoders are strict, the encoding canonical).

use rand::rngs::StdRng;
use rand::SeedableRng;
use rpc_crypto_proto::secure::frame::{open, seal};
use rpc_crypto_proto::secure::{
    open_client_frame, open_server_frame, AesKey, ClientLayout, ClientMessage, ServerMessage,
};

use super::support::client_key;

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = AesKey::from_bytes([0x5a; 32]);
    let frame = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let frame = seal(&key, &mut StdRng::seed_from_u64(0), rest);
        assert_eq!(open(&key, &frame).expect("own frame opens"), rest);
        frame
    };

    if let Ok(message) = open_client_frame(&key, ClientLayout::Plain, client_key(), &frame) {
        let plaintext = open(&key, &frame).expect("opened once");
        assert_eq!(message.encode().expect("re-encode"), plaintext);
        assert_eq!(ClientMessage::decode(&plaintext), Ok(message));
    }
    // Reaching the signature check is enough: a forged signature must not verify.
    let _ = open_client_frame(&key, ClientLayout::Signed, client_key(), &frame);
    if let Ok(message) = open_server_frame(&key, &frame) {
        let plaintext = open(&key, &frame).expect("opened once");
        assert_eq!(message.encode().expect("re-encode"), plaintext);
        let again = ServerMessage::decode(&plaintext).expect("decodes again");
        assert_eq!(again.encode().expect("re-encode"), plaintext);
    }
}
