//! The official Centrifuge JavaScript SDK (npm `centrifuge`, with `ws`) against the real server,
//! in both wire formats: tests/node/sdk.test.js. Needs Node.js and `npm ci --prefix tests/node`
//! (scripts/test does it).

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;

#[test]
fn the_official_js_sdk_connects_subscribes_publishes_and_calls_rpc() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    assert!(
        dir.join("node_modules/centrifuge").is_dir(),
        "the SDK is not installed: run `npm ci --prefix tests/node` (scripts/test does)"
    );
    let server = Server::start(&[]);
    let output = Command::new("node")
        .args(["--test", "--test-reporter=spec", "sdk.test.js"])
        .current_dir(&dir)
        .env("RPC_CRYPTO_URL", &server.url)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK test failed:\n{stdout}\n{stderr}\n--- server log ---\n{}",
        server.log()
    );
    // Both formats ran.
    assert!(stdout.contains("official SDK over json"), "{stdout}");
    assert!(stdout.contains("official SDK over protobuf"), "{stdout}");
    server.assert_no_panic();
}
