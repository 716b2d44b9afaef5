//! RSA-2048 keys for the tests, generated once per test binary.

use std::sync::OnceLock;

use super::keys::PrivateKey;

fn generate() -> PrivateKey {
    PrivateKey::generate(&mut rand::thread_rng(), 2048).expect("RSA-2048 key generation")
}

/// The server's key pair.
pub(crate) fn server_key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(generate)
}

/// A client's key pair.
pub(crate) fn client_key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(generate)
}
