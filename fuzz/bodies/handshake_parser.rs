//! Parses arbitrary bytes as handshake input: the plaintext of message 1 (client hello, as the
//! server reads it after RSA-OAEP decryption), the plaintext of message 2 (server hello, as the
//! client reads it), and message 3 (a signature over the server's challenge, to verify). The
//! first byte picks which. Nothing may panic; what decodes must survive a re-encode/decode round
//! trip; a fuzzer-made signature must never verify.
//!
//! RSA-OAEP decryption of arbitrary ciphertexts is left to the unit tests: under libFuzzer its
//! big-integer arithmetic only adds slow, data-dependent coverage noise.

use rpc_crypto_proto::secure::{verify_challenge, ClientHello, ServerHello};

use super::support::client_key;

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(hello) = ClientHello::decode(rest) {
                let bytes = hello.encode().expect("re-encode");
                assert_eq!(ClientHello::decode(&bytes), Ok(hello));
            }
        }
        1 => {
            if let Ok(hello) = ServerHello::decode(rest) {
                let bytes = hello.encode().expect("re-encode");
                assert_eq!(ServerHello::decode(&bytes), Ok(hello));
            }
        }
        _ => {
            let challenge = [0x42u8; 32];
            assert!(verify_challenge(client_key(), &challenge, rest).is_err());
        }
    }
}
