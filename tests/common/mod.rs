//! Test harness: runs the real `rpc-crypto` binary on 127.0.0.1:0 and drives it with
//! tokio-tungstenite clients speaking either wire format.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command as Process, Stdio};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use rpc_crypto_proto::codec::{encode_commands, Format};
use rpc_crypto_proto::protocol::{
    Command, ConnectRequest, PublishRequest, Reply, RpcRequest, SubscribeRequest,
    UnsubscribeRequest,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for any one thing the server should send.
pub const WAIT: Duration = Duration::from_secs(10);

/// Namespaces of the test config: `chat` (subscribers publish), `open` (anyone publishes),
/// `ticker` (read only).
pub const TEST_NAMESPACES: &str = "[{name = \"chat\", allow_subscribe_for_client = true, allow_subscribe_for_anonymous = true, allow_publish_for_subscriber = true, allow_publish_for_anonymous = true}, {name = \"open\", allow_subscribe_for_client = true, allow_subscribe_for_anonymous = true, allow_publish_for_client = true, allow_publish_for_anonymous = true}, {name = \"ticker\", allow_subscribe_for_client = true, allow_subscribe_for_anonymous = true}]";

/// The server binary the tests run: cargo's, or `TEST_RPC_CRYPTO_BINARY` (to run a test against
/// another build, e.g. to see a regression test fail on the commit before its fix).
pub fn binary() -> String {
    std::env::var("TEST_RPC_CRYPTO_BINARY")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_rpc-crypto").to_owned())
}

/// A running server process; killed on drop.
pub struct Server {
    child: Child,
    pub url: String,
    log: std::path::PathBuf,
}

impl Server {
    /// Starts the server with the test namespaces and `env` on top.
    pub fn start(env: &[(&str, &str)]) -> Server {
        Self::spawn(env, Some(TEST_NAMESPACES))
    }

    /// Starts the server with the embedded default's namespaces (the market channels, the
    /// private `orders`/`balance`/`mytrades`, `sandbox`) and `env` on top.
    pub fn start_default(env: &[(&str, &str)]) -> Server {
        Self::spawn(env, None)
    }

    fn spawn(env: &[(&str, &str)], namespaces: Option<&str>) -> Server {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log =
            std::env::temp_dir().join(format!("rpc-crypto-test-{}-{n}.log", std::process::id()));
        let stderr = std::fs::File::create(&log).expect("a log file for the server");
        let mut process = Process::new(binary());
        process
            .arg("serve")
            .env("RUST_LOG", "warn")
            .env("RPC_CRYPTO_LISTEN", "127.0.0.1:0")
            .env("RPC_CRYPTO_WORKERS", "2")
            // Test publishers send as fast as they can; tests/auth.rs sets its own rate.
            .env("RPC_CRYPTO_CLIENT__COMMAND_RATE", "0")
            .stdout(Stdio::piped())
            .stderr(stderr);
        if let Some(namespaces) = namespaces {
            process.env("RPC_CRYPTO_NAMESPACES", namespaces);
        }
        for (key, value) in env {
            process.env(key, value);
        }
        let mut child = process.spawn().expect("the server binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the server prints where it listens");
        let url = line
            .trim()
            .strip_prefix("rpc-crypto listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        Server { child, url, log }
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails the test if the server panicked anywhere.
    pub fn assert_no_panic(&self) {
        let log = self.log();
        assert!(!log.contains("panicked"), "the server panicked:\n{log}");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Sends SIGTERM, as `docker stop` does.
    pub fn terminate(&self) {
        let status = Process::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The exit status, if the process has ended.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits for the process to end after a signal.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- server log ---\n{}", self.log());
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// What the server ended a connection with.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
}

/// A raw WebSocket client of one wire format.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub format: Format,
    items: VecDeque<Reply>,
    /// Items (replies and pushes) received so far, pings (empty replies) not counted: the id of
    /// the last session message received.
    pub received: u64,
    /// Commands sent so far.
    pub sent: u64,
}

impl Client {
    /// Opens the WebSocket; Protobuf is asked for with the `centrifuge-protobuf` subprotocol.
    pub async fn open(url: &str, format: Format) -> Client {
        let mut request = url.into_client_request().unwrap();
        if format == Format::Protobuf {
            request.headers_mut().insert(
                "sec-websocket-protocol",
                Format::PROTOBUF_SUBPROTOCOL.parse().unwrap(),
            );
        }
        let config = WebSocketConfig::default().read_buffer_size(4096);
        let (ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), false)
            .await
            .expect("websocket opens");
        Client {
            ws,
            format,
            items: VecDeque::new(),
            received: 0,
            sent: 0,
        }
    }

    /// Opens and connects; returns the client and the connect reply.
    pub async fn connect(server: &Server, format: Format) -> (Client, Reply) {
        let mut client = Client::open(&server.url, format).await;
        let reply = client.call(connect(1)).await;
        assert!(reply.error.is_none(), "connect failed: {reply:?}");
        (client, reply)
    }

    /// Connects as soon as the server has a session slot free, retrying a refused (4102)
    /// connection every 100 ms for at most `within`; `None` if no slot came free in time.
    pub async fn connect_when_free(
        server: &Server,
        format: Format,
        within: Duration,
    ) -> Option<Client> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mut client = Client::open(&server.url, format).await;
            client.send(&[connect(1)]).await;
            let reply = client.try_next_item(Duration::from_secs(1)).await;
            if reply.is_some_and(|r| r.connect.is_some()) {
                return Some(client);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends commands in one frame.
    pub async fn send(&mut self, commands: &[Command]) {
        self.sent += commands.len() as u64;
        let frame = encode_commands(self.format, commands).expect("test commands encode");
        let message = match self.format {
            Format::Json => {
                Message::text(String::from_utf8(frame.to_vec()).expect("JSON is UTF-8"))
            }
            Format::Protobuf => Message::binary(frame),
        };
        self.ws.send(message).await.expect("send");
    }

    pub async fn send_message(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    /// Sends one command and returns the reply with its id (pushes before it stay queued).
    pub async fn call(&mut self, command: Command) -> Reply {
        let id = command.id;
        self.send(&[command]).await;
        self.reply_to(id).await
    }

    /// The next item (reply or push), however it was framed.
    pub async fn next_item(&mut self) -> Reply {
        match self.next_item_or_close().await {
            Ok(item) => item,
            Err(closed) => panic!("connection closed while waiting for an item: {closed:?}"),
        }
    }

    /// The next item, or how the connection ended.
    pub async fn next_item_or_close(&mut self) -> Result<Reply, Closed> {
        loop {
            if let Some(item) = self.items.pop_front() {
                return Ok(item);
            }
            let frame = self.next_message().await?;
            self.split(frame);
        }
    }

    /// Items already received but not yet taken.
    pub fn take_buffered(&mut self) -> Vec<Reply> {
        self.items.drain(..).collect()
    }

    /// The next item within `wait`; `None` on time-out or close.
    pub async fn try_next_item(&mut self, wait: Duration) -> Option<Reply> {
        tokio::time::timeout(wait, self.next_item_or_close())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// The reply to command `id`; pushes and other replies before it are kept in order.
    pub async fn reply_to(&mut self, id: u32) -> Reply {
        let mut skipped = VecDeque::new();
        let reply = loop {
            let item = self.next_item().await;
            if item.id == id && item.push.is_none() {
                break item;
            }
            skipped.push_back(item);
        };
        skipped.extend(self.items.drain(..));
        self.items = skipped;
        reply
    }

    /// Reads until the server closes; returns the close code and reason.
    pub async fn closed(&mut self) -> Closed {
        loop {
            if let Err(closed) = self.next_message().await {
                return closed;
            }
        }
    }

    /// The next data frame exactly as the server wrote it.
    pub async fn next_frame(&mut self) -> Bytes {
        assert!(
            self.items.is_empty(),
            "items already split from earlier frames"
        );
        self.next_message().await.expect("a frame, not a close")
    }

    /// The next data frame's payload, or how the connection ended.
    async fn next_message(&mut self) -> Result<Bytes, Closed> {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("the server sends something in time");
            match message {
                Some(Ok(Message::Text(text))) => {
                    assert_eq!(
                        self.format,
                        Format::Json,
                        "text frame on a Protobuf connection"
                    );
                    return Ok(Bytes::copy_from_slice(text.as_bytes()));
                }
                Some(Ok(Message::Binary(data))) => {
                    assert_eq!(
                        self.format,
                        Format::Protobuf,
                        "binary frame on a JSON connection"
                    );
                    return Ok(data);
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(frame.map_or(
                        Closed {
                            code: 1005,
                            reason: String::new(),
                        },
                        |f| Closed {
                            code: u16::from(f.code),
                            reason: f.reason.to_string(),
                        },
                    ))
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => {
                    return Err(Closed {
                        code: 1006,
                        reason: "connection dropped without a close frame".into(),
                    })
                }
            }
        }
    }

    fn split(&mut self, frame: Bytes) {
        match self.format {
            Format::Json => {
                for line in frame.split(|&b| b == b'\n') {
                    let item: Reply = serde_json::from_slice(line).expect("JSON reply");
                    self.received += u64::from(item != Reply::default());
                    self.items.push_back(item);
                }
            }
            Format::Protobuf => {
                let mut buf = &frame[..];
                while !buf.is_empty() {
                    let item = Reply::decode_length_delimited(&mut buf).expect("Protobuf reply");
                    self.received += u64::from(item != Reply::default());
                    self.items.push_back(item);
                }
            }
        }
    }
}

pub fn connect(id: u32) -> Command {
    Command {
        id,
        connect: Some(ConnectRequest::default()),
        ..Command::default()
    }
}

/// A connect with a connection token (a JWT or a backend session's key).
pub fn connect_with_token(id: u32, token: &str) -> Command {
    Command {
        id,
        connect: Some(ConnectRequest {
            token: token.to_owned(),
            ..ConnectRequest::default()
        }),
        ..Command::default()
    }
}

/// Now in unix seconds, as tokens count time.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn connect_with_data(id: u32, data: &str) -> Command {
    Command {
        id,
        connect: Some(ConnectRequest {
            data: Bytes::from(data.to_owned()),
            ..ConnectRequest::default()
        }),
        ..Command::default()
    }
}

pub fn subscribe(id: u32, channel: &str) -> Command {
    Command {
        id,
        subscribe: Some(SubscribeRequest {
            channel: channel.into(),
            ..SubscribeRequest::default()
        }),
        ..Command::default()
    }
}

pub fn unsubscribe(id: u32, channel: &str) -> Command {
    Command {
        id,
        unsubscribe: Some(UnsubscribeRequest {
            channel: channel.into(),
        }),
        ..Command::default()
    }
}

pub fn publish(id: u32, channel: &str, data: &str) -> Command {
    Command {
        id,
        publish: Some(PublishRequest {
            channel: channel.into(),
            data: Bytes::from(data.to_owned()),
        }),
        ..Command::default()
    }
}

pub fn ping(id: u32) -> Command {
    Command {
        id,
        ping: Some(rpc_crypto_proto::protocol::PingRequest {}),
        ..Command::default()
    }
}

pub fn rpc(id: u32, method: &str, data: &str) -> Command {
    Command {
        id,
        rpc: Some(RpcRequest {
            method: method.into(),
            data: Bytes::from(data.to_owned()),
        }),
        ..Command::default()
    }
}

/// The code of a reply's error, or 0.
pub fn error_code(reply: &Reply) -> u32 {
    reply.error.as_ref().map_or(0, |e| e.code)
}

/// A reply's rpc result data as JSON.
pub fn rpc_data(reply: &Reply) -> serde_json::Value {
    let result = reply
        .rpc
        .as_ref()
        .unwrap_or_else(|| panic!("not an rpc result: {reply:?}"));
    serde_json::from_slice(&result.data).unwrap()
}

/// A publication push's channel and data as JSON.
pub fn publication(item: &Reply) -> (String, serde_json::Value) {
    let push = item
        .push
        .as_ref()
        .unwrap_or_else(|| panic!("not a push: {item:?}"));
    let publication = push.r#pub.as_ref().expect("a publication push");
    (
        push.channel.clone(),
        serde_json::from_slice(&publication.data).unwrap(),
    )
}

pub const BOTH: [Format; 2] = [Format::Json, Format::Protobuf];

/// A port that was free a moment ago, for a program that cannot be given port 0.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP answer: status and JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

/// A minimal HTTP/1.1 client for the API.
pub struct Http {
    /// host:port
    addr: String,
    /// The `X-API-Key` of [`Http::api`].
    key: String,
}

impl Http {
    /// A client of `server`'s HTTP side; `key` is the API key its API calls send.
    pub fn new(server: &Server, key: &str) -> Http {
        let rest = server
            .url
            .strip_prefix("ws://")
            .expect("a plain ws:// server");
        let addr = rest.split('/').next().unwrap().to_owned();
        Http {
            addr,
            key: key.to_owned(),
        }
    }

    /// Sends one request and reads the whole answer (the connection is closed after it).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let mut stream = TcpStream::connect(&self.addr).await.expect("connects");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        // The server may answer (413) before reading everything; the answer is what matters.
        let _ = stream.write_all(&request).await;
        let mut raw = Vec::new();
        let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut raw)).await;
        assert!(read.is_ok(), "the server answers in time");
        parse_response(&raw)
    }

    /// A client of any HTTP server at `addr` (host:port).
    pub fn at(addr: &str, key: &str) -> Http {
        Http {
            addr: addr.to_owned(),
            key: key.to_owned(),
        }
    }

    /// host:port.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `GET path`, answered in text: status, `Content-Type` and body.
    pub async fn get_text(&self, path: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(&self.addr).await.expect("connects");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        stream.write_all(request.as_bytes()).await.expect("sends");
        let mut raw = Vec::new();
        let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut raw)).await;
        assert!(read.is_ok(), "the server answers in time");
        let (status, head, body) = split_response(&raw);
        let content_type = head
            .lines()
            .find_map(|line| line.strip_prefix("content-type:"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        (
            status,
            content_type,
            String::from_utf8(body).expect("a UTF-8 body"),
        )
    }

    /// `POST /api/<method>` with the right key.
    pub async fn api(&self, method: &str, body: Value) -> Answer {
        let body = body.to_string();
        self.request(
            "POST",
            &format!("/api/{method}"),
            &[("X-API-Key", &self.key)],
            body.as_bytes(),
        )
        .await
    }

    /// A successful call's `result`.
    pub async fn result(&self, method: &str, body: Value) -> Value {
        let answer = self.api(method, body).await;
        assert_eq!(answer.status, 200, "{method}: {answer:?}");
        assert!(
            answer.body.get("error").is_none(),
            "{method} failed: {answer:?}"
        );
        answer.body["result"].clone()
    }

    /// A call the method refuses (HTTP 200): its error code.
    pub async fn error(&self, method: &str, body: Value) -> u64 {
        let answer = self.api(method, body).await;
        assert_eq!(answer.status, 200, "{method}: {answer:?}");
        answer.body["error"]["code"]
            .as_u64()
            .unwrap_or_else(|| panic!("{method} did not fail: {answer:?}"))
    }
}

pub fn parse_response(raw: &[u8]) -> Answer {
    let (status, _, body) = split_response(raw);
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("a JSON body, not {:?}", String::from_utf8_lossy(&body)))
    };
    Answer { status, body }
}

/// An HTTP answer's status, head (lowercased) and body (de-chunked).
pub fn split_response(raw: &[u8]) -> (u16, String, Vec<u8>) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..end]).expect("an ASCII head");
    let mut body = raw[end + 4..].to_vec();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    if chunked {
        body = dechunk(&body);
    }
    (status, head.to_ascii_lowercase(), body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap(), 16).unwrap();
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
}
