//! The `gentoken`, `genconfig`, `checkconfig`, `keygen` and `health` commands, run as the built
//! binary.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

const SECRET: &str = "cli-test-secret-0123456789abcdef0123456789";

/// The binary with no `RPC_CRYPTO_` variables from the environment the tests run in.
fn rpc_crypto() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rpc-crypto"));
    for (name, _) in std::env::vars() {
        if name.starts_with("RPC_CRYPTO_") {
            command.env_remove(name);
        }
    }
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run rpc-crypto")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A path in the temp dir that no other test (or test run) uses; removed on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> Self {
        let unique = format!(
            "rpc-crypto-cli-{}-{}-{name}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        TempPath(std::env::temp_dir().join(unique))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn gentoken_signs_with_the_secret_from_the_environment() {
    let before = now();
    let output = run(rpc_crypto()
        .args(["gentoken", "--user", "alice", "--ttl", "3600"])
        .args(["--info", r#"{"name":"Alice"}"#, "--channels", "a,b"])
        .env("RPC_CRYPTO_TOKEN__HMAC_SECRET", SECRET));
    assert!(output.status.success(), "{}", stderr(&output));
    let token = stdout(&output);
    assert_eq!(token.lines().count(), 1, "only the token on stdout");

    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        token.trim(),
        &DecodingKey::from_secret(SECRET.as_bytes()),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sub"], "alice");
    let exp = claims["exp"].as_u64().unwrap();
    assert!((before + 3600..=now() + 3600).contains(&exp), "{claims}");
    assert_eq!(claims["info"]["name"], "Alice");
    assert_eq!(claims["channels"], serde_json::json!(["a", "b"]));
    assert!(claims.get("channel").is_none());
}

#[test]
fn gentoken_subscription_token_without_expiry() {
    let output = run(rpc_crypto()
        .args([
            "gentoken",
            "--user",
            "bob",
            "--ttl",
            "0",
            "--channel",
            "$private",
        ])
        .env("RPC_CRYPTO_TOKEN__HMAC_SECRET", SECRET));
    assert!(output.status.success(), "{}", stderr(&output));
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims::<&str>(&[]);
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        stdout(&output).trim(),
        &DecodingKey::from_secret(SECRET.as_bytes()),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["channel"], "$private");
    assert!(claims.get("exp").is_none(), "{claims}");
}

#[test]
fn gentoken_without_a_secret_fails() {
    let output = run(rpc_crypto().args(["gentoken", "--user", "alice"]));
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).is_empty());
    assert!(
        stderr(&output).contains("hmac_secret"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn genconfig_writes_a_config_that_checks() {
    let path = TempPath::new("genconfig.toml");
    let output = run(rpc_crypto().arg("genconfig").arg("--output").arg(&path.0));
    assert!(output.status.success(), "{}", stderr(&output));

    let text = std::fs::read_to_string(&path.0).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    for secret in [&table["token"]["hmac_secret"], &table["api"]["key"]] {
        let secret = secret.as_str().unwrap();
        assert_eq!(secret.len(), 64);
        assert!(secret.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    let output = run(rpc_crypto().arg("checkconfig").arg("--config").arg(&path.0));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "config ok\n");
}

#[test]
fn genconfig_makes_fresh_secrets_each_time() {
    let secrets = || {
        let output = run(rpc_crypto().arg("genconfig"));
        assert!(output.status.success(), "{}", stderr(&output));
        let table: toml::Table = toml::from_str(&stdout(&output)).unwrap();
        (
            table["token"]["hmac_secret"].as_str().unwrap().to_owned(),
            table["api"]["key"].as_str().unwrap().to_owned(),
        )
    };
    let (first, second) = (secrets(), secrets());
    assert_ne!(first.0, second.0);
    assert_ne!(first.1, second.1);
    assert_ne!(first.0, first.1);
}

#[test]
fn genconfig_does_not_overwrite_without_force() {
    let path = TempPath::new("existing.toml");
    std::fs::write(&path.0, "listen = \"127.0.0.1:1\"\n").unwrap();
    let output = run(rpc_crypto().arg("genconfig").arg("--output").arg(&path.0));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("--force"), "{}", stderr(&output));
    assert_eq!(
        std::fs::read_to_string(&path.0).unwrap(),
        "listen = \"127.0.0.1:1\"\n"
    );

    let output = run(rpc_crypto()
        .arg("genconfig")
        .arg("--force")
        .arg("--output")
        .arg(&path.0));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(std::fs::read_to_string(&path.0)
        .unwrap()
        .contains("[token]"));
}

#[test]
fn checkconfig_reports_a_broken_config() {
    let path = TempPath::new("broken.toml");
    std::fs::write(&path.0, "listen = \"nowhere\"\n").unwrap();
    let output = run(rpc_crypto().arg("checkconfig").arg("--config").arg(&path.0));
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).is_empty());
    assert!(
        stderr(&output).contains("invalid config"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn checkconfig_reports_an_unreadable_key() {
    let output = run(rpc_crypto()
        .arg("checkconfig")
        .env("RPC_CRYPTO_TOKEN__RSA_PUBLIC_KEY", "/nonexistent/key.pem"));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("token.rsa_public_key"),
        "{}",
        stderr(&output)
    );
}

/// A directory in the temp dir that no other test (or test run) uses; removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = TempDir(TempPath::new(name).0.clone());
        std::fs::create_dir_all(&dir.0).unwrap();
        dir
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn keygen(prefix: &std::path::Path, extra: &[&str]) -> Output {
    run(rpc_crypto()
        .arg("keygen")
        .arg("--out")
        .arg(prefix)
        .args(extra))
}

#[test]
fn keygen_writes_a_matching_key_pair_and_does_not_overwrite_without_force() {
    use rpc_crypto_proto::secure::{PrivateKey, PublicKey};

    let dir = TempDir::new("keygen");
    let prefix = dir.0.join("server");
    let (private_path, public_path) = (dir.0.join("server.key.pem"), dir.0.join("server.pub.pem"));
    let output = keygen(&prefix, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = format!("{}{}", stdout(&output), stderr(&output));
    assert!(
        printed.contains(&private_path.display().to_string()),
        "{printed}"
    );
    assert!(
        printed.contains(&public_path.display().to_string()),
        "{printed}"
    );
    assert!(printed.contains("server_key_file"), "{printed}");

    let private_pem = std::fs::read_to_string(&private_path).unwrap();
    let public_pem = std::fs::read_to_string(&public_path).unwrap();
    assert!(private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    // Never the private key on the terminal.
    let body = private_pem.lines().nth(1).unwrap();
    assert!(!printed.contains(body) && !printed.contains("PRIVATE KEY-----"));
    let private = PrivateKey::from_pem(&private_pem).unwrap();
    let public = PublicKey::from_pem(&public_pem).unwrap();
    assert_eq!(private.public_key(), public);
    assert_eq!(public.bits(), 2048);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&private_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    // Again without --force: refused before generating, files untouched.
    let output = keygen(&prefix, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("--force"), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(&private_path).unwrap(), private_pem);
    assert_eq!(std::fs::read_to_string(&public_path).unwrap(), public_pem);

    // Only the public file exists: still refused, and the private one is not created.
    let other = dir.0.join("other");
    std::fs::write(dir.0.join("other.pub.pem"), "keep me").unwrap();
    let output = keygen(&other, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(!dir.0.join("other.key.pem").exists());
    assert_eq!(
        std::fs::read_to_string(dir.0.join("other.pub.pem")).unwrap(),
        "keep me"
    );

    // With --force: a new pair.
    let output = keygen(&prefix, &["--force"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let new_private = PrivateKey::from_pem(&std::fs::read_to_string(&private_path).unwrap());
    let new_public = PublicKey::from_pem(&std::fs::read_to_string(&public_path).unwrap()).unwrap();
    assert_eq!(new_private.unwrap().public_key(), new_public);
    assert_ne!(new_public, public);

    // Bad sizes are refused by the command line.
    let output = keygen(&dir.0.join("small"), &["--bits", "1024"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(!dir.0.join("small.key.pem").exists());
}

#[test]
fn checkconfig_loads_the_secure_keys() {
    let dir = TempDir::new("secure-config");
    let output = keygen(&dir.0.join("server"), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let clients = dir.0.join("clients");
    std::fs::create_dir(&clients).unwrap();
    std::fs::copy(dir.0.join("server.pub.pem"), clients.join("alice.pem")).unwrap();
    let checkconfig = || {
        run(rpc_crypto()
            .arg("checkconfig")
            .env("RPC_CRYPTO_SECURE__ENABLED", "true")
            .env(
                "RPC_CRYPTO_SECURE__SERVER_KEY_FILE",
                dir.0.join("server.key.pem"),
            )
            .env("RPC_CRYPTO_SECURE__CLIENTS_DIR", &clients))
    };
    let output = checkconfig();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "config ok\n");

    std::fs::write(clients.join("bob.pem"), "-----BEGIN PUBLIC KEY-----\n").unwrap();
    let output = checkconfig();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("secure.clients_dir") && stderr(&output).contains("bob.pem"),
        "{}",
        stderr(&output)
    );
}

/// `host:port` of a test server's listener.
fn listen_address(server: &common::Server) -> String {
    let rest = server
        .url
        .strip_prefix("ws://")
        .expect("a plain ws:// listener");
    rest.split('/').next().unwrap().to_owned()
}

#[test]
fn health_passes_against_a_running_server() {
    let server = common::Server::start(&[]);
    let addr = listen_address(&server);
    let output = run(rpc_crypto()
        .args(["health", "--url"])
        .arg(format!("http://{addr}/health")));
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    assert!(printed.contains("200 OK"), "{printed}");
    assert!(printed.contains(r#""status":"ok""#), "{printed}");

    // Without --url, from `listen` as the container's HEALTHCHECK finds it.
    let output = run(rpc_crypto().arg("health").env("RPC_CRYPTO_LISTEN", &addr));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains(&format!("http://{addr}/health")));

    // Any answer but 200 fails, with the status on stderr.
    let output = run(rpc_crypto()
        .args(["health", "--url"])
        .arg(format!("http://{addr}/no-such-path")));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("404"), "{}", stderr(&output));
    server.assert_no_panic();
}

#[test]
fn health_fails_when_nothing_listens() {
    // A port that was free a moment ago and is closed now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = run(rpc_crypto()
        .args(["health", "--url"])
        .arg(format!("http://127.0.0.1:{port}/health")));
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).is_empty());
    assert!(
        stderr(&output).contains("cannot connect to 127.0.0.1:"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn health_fails_when_the_listener_does_not_answer_in_time() {
    // Accepts (the kernel's backlog does) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let started = std::time::Instant::now();
    let output = run(rpc_crypto()
        .args(["health", "--timeout", "300ms", "--url"])
        .arg(format!("http://{addr}/health")));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        stderr(&output).contains("did not answer within 300ms"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn health_refuses_a_url_it_cannot_ask() {
    let output = run(rpc_crypto().args(["health", "--url", "https://127.0.0.1:8000/health"]));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("https"), "{}", stderr(&output));

    // A TLS listener, from the config: refused before anything is sent, with the reason.
    let output = run(rpc_crypto()
        .arg("health")
        .env("RPC_CRYPTO_TLS__CERT", "/etc/rpc-crypto/cert.pem")
        .env("RPC_CRYPTO_TLS__KEY", "/etc/rpc-crypto/key.pem"));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("speaks TLS"),
        "{}",
        stderr(&output)
    );
}
