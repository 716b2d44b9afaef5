//! TLS end to end against the real binary: `wss://`, client certificates (required and
//! optional), refusals, and config errors. Every certificate is made here with rcgen, so the
//! tests need no fixtures and no network.

mod common;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{Server, WAIT};
use futures_util::{SinkExt, StreamExt};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{
    connect_async_tls_with_config, Connector, MaybeTlsStream, WebSocketStream,
};

/// The common name of the client certificate signed by the test CA.
const ALICE: &str = "alice";

/// A certificate authority that can sign certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key.
struct Leaf {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn sign(&self, common_name: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf { cert, key }
    }

    fn client(&self, common_name: &str) -> Leaf {
        self.sign(common_name, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// The test PKI: a CA, a server certificate for `localhost` and 127.0.0.1, a client certificate
/// for [`ALICE`], and a client certificate from another CA; PEM files in a temporary directory.
struct Pki {
    dir: PathBuf,
    ca: Ca,
    alice: Leaf,
    stranger: Leaf,
}

impl Pki {
    fn new() -> Pki {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("rpc-crypto-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = Ca::new("rpc-crypto test CA");
        let server = ca.sign(
            "rpc-crypto test server",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        std::fs::write(dir.join("ca.pem"), ca.issuer.pem()).unwrap();
        std::fs::write(dir.join("server.pem"), server.cert.pem()).unwrap();
        std::fs::write(dir.join("server.key"), server.key.serialize_pem()).unwrap();
        let alice = ca.client(ALICE);
        let stranger = Ca::new("another CA").client("mallory");
        Pki {
            dir,
            ca,
            alice,
            stranger,
        }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// Starts the server with this PKI's certificate and `client_auth`.
    fn server(&self, client_auth: &str) -> Server {
        let (cert, key, ca) = (
            self.path("server.pem"),
            self.path("server.key"),
            self.path("ca.pem"),
        );
        Server::start(&[
            ("RPC_CRYPTO_TLS__CERT", &cert),
            ("RPC_CRYPTO_TLS__KEY", &key),
            ("RPC_CRYPTO_TLS__CLIENT_CA", &ca),
            ("RPC_CRYPTO_TLS__CLIENT_AUTH", client_auth),
        ])
    }

    /// A client config trusting the test CA, presenting `certificate` if given.
    fn client_config(&self, certificate: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.issuer.der().clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let config = match certificate {
            None => builder.with_no_client_auth(),
            Some(leaf) => {
                let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(leaf.key.serialize_der()));
                builder
                    .with_client_auth_cert(vec![leaf.cert.der().clone()], key)
                    .unwrap()
            }
        };
        Arc::new(config)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server's WebSocket URL with `scheme` and `host` (the server prints `wss://127.0.0.1:PORT/...`).
fn url(server: &Server, scheme: &str, host: &str) -> String {
    assert!(
        server.url.starts_with("wss://"),
        "a TLS server says wss://: {}",
        server.url
    );
    let authority = server
        .url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("unexpected url {:?}", server.url));
    let port = authority
        .rsplit(':')
        .next()
        .unwrap_or_else(|| panic!("no port in {:?}", server.url));
    format!("{scheme}://{host}:{port}/connection/websocket")
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket over TLS with `tls`.
async fn open_wss(url: &str, tls: Arc<rustls::ClientConfig>) -> Result<Ws, tungstenite::Error> {
    let connect = connect_async_tls_with_config(url, None, false, Some(Connector::Rustls(tls)));
    let (ws, _) = tokio::time::timeout(WAIT, connect)
        .await
        .expect("the handshake ends in time")?;
    Ok(ws)
}

/// A JSON-protocol client over any WebSocket.
struct JsonClient {
    ws: Ws,
    items: VecDeque<Value>,
}

impl JsonClient {
    fn new(ws: Ws) -> JsonClient {
        JsonClient {
            ws,
            items: VecDeque::new(),
        }
    }

    async fn send(&mut self, command: Value) {
        self.ws
            .send(Message::text(command.to_string()))
            .await
            .expect("send");
    }

    /// The next item that is not a ping (`{}`).
    async fn next(&mut self) -> Value {
        loop {
            if let Some(item) = self.items.pop_front() {
                if item != json!({}) {
                    return item;
                }
                continue;
            }
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("the server sends something in time");
            match message {
                Some(Ok(Message::Text(text))) => {
                    for line in text.as_str().split('\n') {
                        self.items
                            .push_back(serde_json::from_str(line).expect("JSON item"));
                    }
                }
                Some(Ok(Message::Close(frame))) => panic!("closed: {frame:?}"),
                Some(Ok(_)) => {}
                Some(Err(error)) => panic!("connection failed: {error}"),
                None => panic!("connection ended"),
            }
        }
    }

    /// Sends `command` and returns the reply with its id (anything before it is dropped).
    async fn call(&mut self, command: Value) -> Value {
        let id = command["id"].clone();
        self.send(command).await;
        loop {
            let item = self.next().await;
            if item["id"] == id && item.get("push").is_none() {
                return item;
            }
        }
    }

    /// Sends the connect command and checks its reply.
    async fn connect(&mut self) -> Value {
        let reply = self.call(json!({"id": 1, "connect": {}})).await;
        assert!(reply["connect"].is_object(), "connect failed: {reply}");
        reply
    }
}

/// Connects over wss with `tls` and checks the connect reply.
async fn connected(url: &str, tls: Arc<rustls::ClientConfig>) -> JsonClient {
    let ws = open_wss(url, tls)
        .await
        .expect("the wss handshake succeeds");
    let mut client = JsonClient::new(ws);
    client.connect().await;
    client
}

/// The close frame the server ends `ws` with (other frames before it are skipped).
async fn close_frame(ws: &mut Ws) -> tungstenite::protocol::CloseFrame {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a close in time")
        {
            Some(Ok(Message::Close(Some(frame)))) => return frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// Asserts that a connection attempt failed before any HTTP answer: the server must not even
/// have read the upgrade request.
fn assert_refused_before_http(result: Result<Ws, tungstenite::Error>, what: &str) {
    match result {
        Ok(_) => panic!("{what}: the WebSocket opened"),
        Err(tungstenite::Error::Http(response)) => {
            panic!("{what}: the server answered the upgrade: {response:?}")
        }
        Err(error) => eprintln!("{what}: refused as expected: {error}"),
    }
}

#[tokio::test]
async fn wss_end_to_end() {
    let pki = Pki::new();
    let server = pki.server("none");
    let mut client = connected(&url(&server, "wss", "localhost"), pki.client_config(None)).await;
    let reply = client
        .call(json!({"id": 2, "subscribe": {"channel": "chat:x"}}))
        .await;
    assert!(reply["subscribe"].is_object(), "{reply}");
    client
        .send(json!({"id": 3, "publish": {"channel": "chat:x", "data": {"a": 1}}}))
        .await;
    let (mut replied, mut pushed) = (false, false);
    while !(replied && pushed) {
        let item = client.next().await;
        if item.get("push").is_some() {
            assert_eq!(
                item,
                json!({"push": {"channel": "chat:x", "pub": {"data": {"a": 1}}}})
            );
            pushed = true;
        } else {
            assert_eq!(item, json!({"id": 3, "publish": {}}));
            replied = true;
        }
    }
    server.assert_no_panic();
}

#[tokio::test]
async fn mutual_tls_accepts_a_client_with_a_certificate_signed_by_the_ca() {
    let pki = Pki::new();
    let server = pki.server("required");
    // By IP, which the server certificate also names.
    let url = url(&server, "wss", "127.0.0.1");
    let mut client = connected(&url, pki.client_config(Some(&pki.alice))).await;
    let reply = client
        .call(json!({"id": 2, "rpc": {"method": "session.status", "data": {}}}))
        .await;
    assert_eq!(reply["rpc"]["data"]["user"], ALICE, "{reply}");
    server.assert_no_panic();
}

#[tokio::test]
async fn mutual_tls_refuses_a_certificate_that_names_no_user() {
    let pki = Pki::new();
    let server = pki.server("required");
    // Signed by the CA, but with no common name: it identifies nobody.
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &pki.ca.issuer).unwrap();
    let nameless = Leaf { cert, key };
    let url = url(&server, "wss", "localhost");
    let mut ws = open_wss(&url, pki.client_config(Some(&nameless)))
        .await
        .expect("the TLS handshake passes");
    let close = close_frame(&mut ws).await;
    assert_eq!(u16::from(close.code), 3507);
    assert_eq!(
        close.reason.as_str(),
        "the client certificate names no user"
    );
    server.assert_no_panic();
}

#[tokio::test]
async fn a_certificate_whose_name_crosses_the_user_boundary_is_refused_with_3507() {
    let pki = Pki::new();
    let server = pki.server("required");
    // `carol#alice` would be given `orders:sim#carol#alice`, which alice may read.
    let crossing = pki.ca.client("carol#alice");
    let url = url(&server, "wss", "localhost");
    let ws = open_wss(&url, pki.client_config(Some(&crossing)))
        .await
        .expect("the TLS handshake passes");
    let mut client = JsonClient::new(ws);
    client.send(json!({"id": 1, "connect": {}})).await;
    let close = close_frame(&mut client.ws).await;
    assert_eq!(u16::from(close.code), 3507);
    assert_eq!(
        close.reason.as_str(),
        "the client certificate's name contains `#` or `,`"
    );
    server.assert_no_panic();
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_a_certificate() {
    let pki = Pki::new();
    let server = pki.server("required");
    let result = open_wss(&url(&server, "wss", "localhost"), pki.client_config(None)).await;
    assert_refused_before_http(result, "no client certificate");
    // The server still serves clients that present one.
    connected(
        &url(&server, "wss", "localhost"),
        pki.client_config(Some(&pki.alice)),
    )
    .await;
    server.assert_no_panic();
}

#[tokio::test]
async fn mutual_tls_refuses_a_certificate_from_another_ca() {
    let pki = Pki::new();
    let server = pki.server("required");
    let tls = pki.client_config(Some(&pki.stranger));
    let result = open_wss(&url(&server, "wss", "localhost"), tls).await;
    assert_refused_before_http(result, "certificate from another CA");
    server.assert_no_panic();
}

#[tokio::test]
async fn optional_client_auth_accepts_without_certificate() {
    let pki = Pki::new();
    let server = pki.server("optional");
    let url = url(&server, "wss", "localhost");
    let mut anonymous = connected(&url, pki.client_config(None)).await;
    let reply = anonymous
        .call(json!({"id": 2, "rpc": {"method": "session.status", "data": {}}}))
        .await;
    assert!(reply["rpc"].is_object(), "{reply}");
    // A certificate is still verified when one is presented, and accepted when it is good.
    connected(&url, pki.client_config(Some(&pki.alice))).await;
    let result = open_wss(&url, pki.client_config(Some(&pki.stranger))).await;
    assert_refused_before_http(result, "optional, certificate from another CA");
    server.assert_no_panic();
}

#[tokio::test]
async fn plain_tcp_client_on_the_tls_port_is_refused() {
    let pki = Pki::new();
    let server = pki.server("none");
    let plain = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(url(&server, "ws", "127.0.0.1")),
    )
    .await
    .expect("the plain attempt ends in time")
    .map(|(ws, _)| ws);
    assert_refused_before_http(plain, "plain ws:// on the TLS port");
    connected(&url(&server, "wss", "localhost"), pki.client_config(None)).await;
    server.assert_no_panic();
}

/// Runs the binary with `env` on top of a TLS-less test config; it must exit non-zero. Returns
/// its stderr.
fn failed_start(env: &[(&str, &str)]) -> String {
    let mut process = Process::new(env!("CARGO_BIN_EXE_rpc-crypto"));
    process
        .arg("serve")
        .env("RUST_LOG", "warn")
        .env("RPC_CRYPTO_LISTEN", "127.0.0.1:0")
        .env("RPC_CRYPTO_WORKERS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        process.env(key, value);
    }
    let mut child = process.spawn().expect("the server binary starts");
    let deadline = std::time::Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not exit on a bad TLS config ({env:?})");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !status.success(),
        "the server accepted {env:?}:\n{stdout}\n{stderr}"
    );
    assert!(
        !stdout.contains("listening"),
        "the server listened with {env:?}: {stdout}"
    );
    stderr
}

#[test]
fn tls_config_errors_are_reported() {
    let pki = Pki::new();
    let missing = pki.path("nowhere/server.pem");
    let key = pki.path("server.key");
    let stderr = failed_start(&[
        ("RPC_CRYPTO_TLS__CERT", &missing),
        ("RPC_CRYPTO_TLS__KEY", &key),
    ]);
    assert!(
        stderr.contains(&missing),
        "the error names the missing file: {stderr}"
    );

    let stderr = failed_start(&[("RPC_CRYPTO_TLS__CERT", &pki.path("server.pem"))]);
    assert!(stderr.contains("tls.key"), "{stderr}");

    let stderr = failed_start(&[
        ("RPC_CRYPTO_TLS__CERT", &pki.path("server.pem")),
        ("RPC_CRYPTO_TLS__KEY", &key),
        ("RPC_CRYPTO_TLS__CLIENT_AUTH", "required"),
    ]);
    assert!(stderr.contains("tls.client_ca"), "{stderr}");

    // A key file that is not PEM: the error names it and quotes none of it.
    let garbage = pki.path("garbage.key");
    std::fs::write(&garbage, "-----BEGIN PRIVATE KEY-----\nc2VjcmV0IQ==\n").unwrap();
    let stderr = failed_start(&[
        ("RPC_CRYPTO_TLS__CERT", &pki.path("server.pem")),
        ("RPC_CRYPTO_TLS__KEY", &garbage),
    ]);
    assert!(stderr.contains(&garbage), "{stderr}");
    assert!(
        !stderr.contains("c2VjcmV0"),
        "key material leaked: {stderr}"
    );
}
