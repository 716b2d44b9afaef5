//! `/metrics` scraped by a real Prometheus (the Debian package's `/usr/bin/prometheus`, which
//! `.ci/run` installs), with the repository's alerting rules loaded: the scrape is up, a known
//! load moves the counters by exactly what it was, `promtool check metrics` takes the exposition,
//! every expression of the Grafana dashboard runs, and every series the dashboard, the alerts
//! and docs/OPERATIONS.md name is one the broker exposes.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use common::{publish, subscribe, Client, Http, Server};
use rpc_crypto_proto::codec::Format;
use serde_json::{json, Value};

const API_KEY: &str = "prometheus-test-api-key-0123456789abcdef";
const CHANNEL: &str = "open:metrics";
/// Subscribers of each wire format, and publications by each path (API, client).
const SUBSCRIBERS_PER_FORMAT: usize = 3;
const PUBLICATIONS_PER_PATH: usize = 100;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A running Prometheus scraping one target every second; killed on drop.
struct Prometheus {
    child: Child,
    http: Http,
    dir: PathBuf,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let binary = std::env::var("TEST_PROMETHEUS").unwrap_or("/usr/bin/prometheus".into());
        assert!(
            Path::new(&binary).exists(),
            "{binary} is missing: .ci/run installs the Debian package `prometheus`"
        );
        let dir =
            std::env::temp_dir().join(format!("rpc-crypto-prometheus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let alerts = repo().join("deploy/prometheus/alerts.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: rpc-crypto\n    static_configs:\n      - targets: [\"{target}\"]\n",
            alerts.display()
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = common::free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Process::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        Prometheus {
            child,
            http: Http::at(&format!("127.0.0.1:{port}"), ""),
            dir,
        }
    }

    /// Waits for `/-/ready`.
    async fn await_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if tokio::net::TcpStream::connect(self.http.addr())
                .await
                .is_ok()
                && self.http.get_text("/-/ready").await.0 == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus is not ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/<path>`'s `data`, asserting `status: success`.
    async fn api(&self, path: &str) -> Value {
        let (status, _, body) = self.http.get_text(&format!("/api/v1/{path}")).await;
        let answer: Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: HTTP {status}: {body}"));
        assert_eq!(answer["status"], "success", "{path}: {answer}");
        answer["data"].clone()
    }

    /// An instant query's result vector.
    async fn query(&self, promql: &str) -> Vec<Value> {
        let data = self
            .api(&format!("query?query={}", url_encoded(promql)))
            .await;
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// The value of a query that gives one sample (`None` while it gives none).
    async fn value(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql).await;
        assert!(
            result.len() <= 1,
            "{promql}: more than one series: {result:?}"
        );
        result
            .first()
            .and_then(|sample| sample["value"][1].as_str()?.parse().ok())
    }

    /// Waits until `promql` gives `expected`; the last value seen otherwise.
    async fn await_value(&self, promql: &str, expected: f64) -> Option<f64> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.value(promql).await;
            if value == Some(expected) || Instant::now() > deadline {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("prometheus log:\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn url_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `promtool check metrics` of an exposition: its verdict and what it said.
fn promtool_check_metrics(exposition: &str) -> (bool, String) {
    let mut child = Process::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian package `prometheus`)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), said)
}

/// Every `expr` in the dashboard, with Grafana's interval variables given values.
fn dashboard_expressions() -> Vec<String> {
    fn collect(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", Value::String(expr)) => into.push(expr.clone()),
                        _ => collect(value, into),
                    }
                }
            }
            Value::Array(values) => values.iter().for_each(|v| collect(v, into)),
            _ => {}
        }
    }
    let path = repo().join("deploy/grafana/rpc-crypto.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("dashboard JSON");
    let mut exprs = Vec::new();
    collect(&dashboard, &mut exprs);
    exprs
        .into_iter()
        .map(|e| {
            e.replace("$__rate_interval", "1m")
                .replace("$__interval", "15s")
        })
        .collect()
}

/// The `rpc_crypto_*` metric names in a text, histogram suffixes taken off.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("rpc_crypto_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        names.insert(family.to_owned());
    }
    names
}

/// The families of an exposition, from its `# TYPE` lines.
fn exposed_families(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split(' ').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn prometheus_scrapes_the_broker_and_counts_a_known_load_exactly() {
    let server = Server::start(&[("RPC_CRYPTO_API__KEY", API_KEY)]);
    let broker = Http::new(&server, API_KEY);
    let target = broker.addr().to_owned();
    let prometheus = Prometheus::start(&target);
    prometheus.await_ready().await;

    // The scrape is up.
    let up = prometheus.await_value("up{job=\"rpc-crypto\"}", 1.0).await;
    assert_eq!(up, Some(1.0), "the scrape is not up:\n{}", prometheus.log());

    // M subscribers, of both formats.
    let mut subscribers = Vec::new();
    for format in [Format::Json, Format::Protobuf] {
        for _ in 0..SUBSCRIBERS_PER_FORMAT {
            let (mut client, _) = Client::connect(&server, format).await;
            let reply = client.call(subscribe(2, CHANNEL)).await;
            assert!(reply.error.is_none(), "subscribe: {reply:?}");
            subscribers.push(client);
        }
    }
    let m = subscribers.len();
    let (mut publisher, _) = Client::connect(&server, Format::Json).await;

    // Before the load, as Prometheus last saw it (once it has seen every subscriber).
    let subscriptions = prometheus
        .await_value("rpc_crypto_subscriptions", m as f64)
        .await;
    assert_eq!(subscriptions, Some(m as f64));
    let connected = prometheus
        .await_value(
            "sum(rpc_crypto_connections{transport=\"websocket\"})",
            m as f64 + 1.0,
        )
        .await;
    assert_eq!(connected, Some(m as f64 + 1.0), "connections by transport");
    let read = |promql: &'static str| {
        let prometheus = &prometheus;
        async move { prometheus.value(promql).await.unwrap_or(0.0) }
    };
    let deliveries = read("rpc_crypto_deliveries_total").await;
    let publications = read("rpc_crypto_publications_total").await;
    let api_publish =
        read("rpc_crypto_api_requests_total{method=\"publish\",status=\"200\"}").await;
    let client_publish = read("rpc_crypto_commands_total{method=\"publish\",code=\"0\"}").await;

    // N publications: half through the server API, half from a client.
    for n in 0..PUBLICATIONS_PER_PATH {
        broker
            .result("publish", json!({"channel": CHANNEL, "data": {"n": n}}))
            .await;
    }
    for n in 0..PUBLICATIONS_PER_PATH {
        let id = 10 + n as u32;
        let reply = publisher
            .call(publish(id, CHANNEL, &format!("{{\"n\":{n}}}")))
            .await;
        assert!(reply.error.is_none(), "publish: {reply:?}");
    }
    let n = 2 * PUBLICATIONS_PER_PATH;
    for subscriber in &mut subscribers {
        for _ in 0..n {
            let item = subscriber.next_item().await;
            assert!(item.push.is_some(), "a publication, not {item:?}");
        }
    }

    // The counters moved by exactly the load.
    let expect = |name: &str, got: Option<f64>, want: f64| {
        assert_eq!(got, Some(want), "{name}:\n{}", prometheus.log());
    };
    let want = deliveries + (n * m) as f64;
    let got = prometheus
        .await_value("rpc_crypto_deliveries_total", want)
        .await;
    expect("deliveries: N×M", got, want);
    let want = publications + n as f64;
    let got = prometheus
        .await_value("rpc_crypto_publications_total", want)
        .await;
    expect("publications: N", got, want);
    let promql = "rpc_crypto_api_requests_total{method=\"publish\",status=\"200\"}";
    let want = api_publish + PUBLICATIONS_PER_PATH as f64;
    expect(
        "API publish requests",
        prometheus.await_value(promql, want).await,
        want,
    );
    let promql = "rpc_crypto_commands_total{method=\"publish\",code=\"0\"}";
    let want = client_publish + PUBLICATIONS_PER_PATH as f64;
    expect(
        "client publish commands",
        prometheus.await_value(promql, want).await,
        want,
    );
    // Everything sent to the Router was handled; each session's queue was sampled.
    let mailbox = prometheus
        .await_value("rpc_crypto_router_mailbox_publications", 0.0)
        .await;
    expect("router mailbox after the load", mailbox, 0.0);
    let sampled = prometheus
        .value("rpc_crypto_session_queue_depth_count")
        .await
        .unwrap_or(0.0);
    assert!(sampled >= m as f64, "queue depths sampled: {sampled}");
    // Delivery bytes: at least the data of each delivery.
    let bytes = prometheus
        .value("rpc_crypto_delivery_bytes_total")
        .await
        .unwrap_or(0.0);
    assert!(
        bytes >= (n * m * "{\"n\":0}".len()) as f64,
        "delivery bytes: {bytes}"
    );

    // A client the server closes is counted by its code.
    let mut unwanted = Client::open(&server.url, Format::Json).await;
    unwanted
        .send_message(tokio_tungstenite::tungstenite::Message::text("not json"))
        .await;
    let closed = unwanted.closed().await;
    let promql = format!("rpc_crypto_disconnects_total{{code=\"{}\"}}", closed.code);
    let deadline = Instant::now() + Duration::from_secs(30);
    while prometheus.value(&promql).await.unwrap_or(0.0) < 1.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        prometheus.value(&promql).await.unwrap_or(0.0) >= 1.0,
        "{promql} after a close with {}",
        closed.code
    );

    // The exposition passes promtool, in the format Prometheus asked for.
    let (status, content_type, exposition) = broker.get_text("/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let (ok, said) = promtool_check_metrics(&exposition);
    assert!(ok, "promtool check metrics: {said}\n{exposition}");

    // Every dashboard expression runs against this Prometheus, and names only series that exist.
    let families = exposed_families(&exposition);
    let documented = metric_names(
        &std::fs::read_to_string(repo().join("docs/OPERATIONS.md")).expect("docs/OPERATIONS.md"),
    );
    let exprs = dashboard_expressions();
    assert!(
        exprs.len() >= 20,
        "the dashboard has {} expressions",
        exprs.len()
    );
    for expr in &exprs {
        prometheus.query(expr).await;
        for name in metric_names(expr) {
            assert!(
                documented.contains(&name),
                "the dashboard's {name} ({expr}) is not in docs/OPERATIONS.md"
            );
        }
    }
    // The alerting rules are loaded and each evaluates without error.
    let alerts = std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let rules = loop {
        let groups = prometheus.api("rules").await["groups"].clone();
        let rules: Vec<Value> = groups
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let evaluated = rules
            .iter()
            .all(|r| r["lastEvaluation"] != "0001-01-01T00:00:00Z");
        if (!rules.is_empty() && evaluated) || Instant::now() > deadline {
            break rules;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(rules.len() >= 6, "alert rules loaded: {rules:?}");
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "rule {}: {rule}", rule["name"]);
    }
    for name in metric_names(&alerts) {
        assert!(
            documented.contains(&name),
            "the alerts' {name} is not in docs/OPERATIONS.md"
        );
    }
    // Each exposed family is documented (actors/src/metrics.rs's unit test checks the list the
    // other way, with every family made to appear).
    for family in &families {
        assert!(
            documented.contains(family),
            "{family} is not in docs/OPERATIONS.md"
        );
    }
    server.assert_no_panic();
}

#[test]
fn the_alerting_rules_pass_promtool() {
    let output = Process::new("promtool")
        .args(["check", "rules"])
        .arg(repo().join("deploy/prometheus/alerts.yml"))
        .output()
        .expect("promtool runs (Debian package `prometheus`)");
    assert!(
        output.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
