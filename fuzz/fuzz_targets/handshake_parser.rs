//! Parses arbitrary bytes as handshake input: the plaintext of message 1 (client hello, as the
//! server reads it after RSA-OAEP decryption), the plaintext of message 2 (server hello, as the
//! client reads it), and message 3 (a signature over the server's challenge, to verify). The
//! first byte picks which. Nothing may panic; what decodes must survive a re-encode/decode round
//! trip; a fuzzer-made signature must never verify.
//!
//! RSA-OAEP decryption of arbitrary ciphertexts is left to the unit tests: under libFuzzer its
//! big-integer arithmetic only adds slow, data-dependent coverage noise.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rpc_crypto_proto::secure::{verify_challenge, ClientHello, PublicKey, ServerHello};

/// A fixed RSA-2048 client public key (the `secure` module's interop test key; public only).
/// Generating a key at startup instead takes seconds under the sanitizer.
const CLIENT_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAijwwpkt10PzeByDDU3bL
RnzXNcWFlclJUHy3C2thPJYumEKoE8gJEhGlmZUnyyM6En7fUaZmRvp/LrvKk/H7
L40dx/wV1G8Hr1qMQNBmTS+dL6Y+A0u50ZXMs6kA6bvHF38QMgD4t+zktdf58fS3
FKBbOquq4Oe8A60hF3gt/dL0ZpTeRx6STI6FeF/AEe29QS8Zj7hd4ffZbM4fnqer
/LlmVW37Gp5kRmTK5Ad0F2XNK6DAQbhVpOqZvJeVYin/WHFtyZ7dU8snREBCftgo
3MV9AjzYnt0ZkZDBwEP7N703g43dF9s5qPaY+npt9p/AlDBzN8uvYDI0B1IPfZJz
JQIDAQAB
-----END PUBLIC KEY-----
";

fn client_key() -> &'static PublicKey {
    static KEY: OnceLock<PublicKey> = OnceLock::new();
    KEY.get_or_init(|| PublicKey::from_pem(CLIENT_PUBLIC_PEM).expect("test key"))
}

fuzz_target!(|data: &[u8]| {
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
});
