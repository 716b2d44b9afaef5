//! The official Centrifuge JavaScript SDK (npm `centrifuge`, with `ws`) against the real server,
//! in both wire formats: tests/node/sdk.test.js. Needs Node.js and `npm ci --prefix tests/node`
//! (scripts/test does it).

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;

/// Runs a node test file against `server`; returns its output, or fails with everything known.
fn run_node_test(server: &Server, file: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    assert!(
        dir.join("node_modules/centrifuge").is_dir(),
        "the SDK is not installed: run `npm ci --prefix tests/node` (scripts/test does)"
    );
    let output = Command::new("node")
        .args(["--test", "--test-reporter=spec", file])
        .current_dir(&dir)
        .env("RPC_CRYPTO_URL", &server.url)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{file} failed:\n{stdout}\n{stderr}\n--- server log ---\n{}",
        server.log()
    );
    server.assert_no_panic();
    stdout
}

#[test]
fn the_official_js_sdk_connects_subscribes_publishes_and_calls_rpc() {
    let server = Server::start(&[]);
    let stdout = run_node_test(&server, "sdk.test.js");
    // Both formats ran.
    assert!(stdout.contains("official SDK over json"), "{stdout}");
    assert!(stdout.contains("official SDK over protobuf"), "{stdout}");
}

/// A `recover` namespace with history and forced recovery, for tests/node/recovery.test.js.
const RECOVERY_NAMESPACES: &str = "[{name = \"recover\", allow_subscribe_for_client = true, allow_subscribe_for_anonymous = true, allow_publish_for_client = true, allow_publish_for_anonymous = true, history_size = 100, history_ttl = \"60s\", force_recovery = true}]";

#[test]
fn the_official_js_sdk_recovers_missed_publications_after_a_reconnect() {
    let server = Server::start(&[("RPC_CRYPTO_NAMESPACES", RECOVERY_NAMESPACES)]);
    let stdout = run_node_test(&server, "recovery.test.js");
    assert!(stdout.contains("SDK recovery over json"), "{stdout}");
    assert!(stdout.contains("SDK recovery over protobuf"), "{stdout}");
}

/// The HS256 secret tests/node/token.test.js signs its tokens with.
const TOKEN_SECRET: &str = "sdk-token-test-secret-of-at-least-32-bytes";

#[test]
fn the_official_js_sdk_refreshes_its_token_without_losing_subscriptions() {
    // A session not refreshed by `exp` plus 1s would be closed with 3005.
    let server = Server::start(&[
        ("RPC_CRYPTO_TOKEN__HMAC_SECRET", TOKEN_SECRET),
        ("RPC_CRYPTO_CLIENT__EXPIRED_CLOSE_DELAY", "1s"),
    ]);
    let stdout = run_node_test(&server, "token.test.js");
    for format in ["json", "protobuf"] {
        assert!(
            stdout.contains(&format!("SDK token refresh over {format}")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("SDK expired token over {format}")),
            "{stdout}"
        );
        assert!(stdout.contains(&format!("{format}: ")), "{stdout}");
    }
}
