//! The container image as a user builds and runs it: `scripts/image` (the static musl binary on
//! `scratch`), then `podman run -d -p 127.0.0.1:PORT:8000`. A WebSocket client gets a sim ticker
//! through the published port; the container runs as 65534:65534; its HEALTHCHECK (the binary's
//! `health`) passes; an `RPC_CRYPTO_*` variable and a mounted config file each take effect;
//! `podman stop` gives the client 3001 and the container exits 0; the image is at most 25 MB.
//! And deploy/compose.yaml, as `docker-compose config` reads it, has the image's port, paths,
//! command and stop signal.
//!
//! Slow: on a cold target dir, scripts/image builds the release binary for musl (minutes). The
//! image is built once per run of this file and shared by its tests. It needs podman and runc
//! (with deploy/podman/containers.conf), docker-compose (or a podman-compose with `config`) and
//! python3's yaml module, which both bring: without them these tests fail, they do not skip
//! (.ci/run installs them).

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use common::{connect, error_code, subscribe, Client, WAIT};
use rpc_crypto_proto::codec::Format;
use serde_json::Value;

/// The tag the tests build (not `rpc-crypto:latest`, which is the user's).
const TAG: &str = "localhost/rpc-crypto:container-test";
const MAX_IMAGE_BYTES: u64 = 25_000_000;
/// Where the README and deploy/compose.yaml mount a config file.
const CONFIG_IN_IMAGE: &str = "/etc/rpc-crypto/rpc-crypto.toml";
/// The port the image listens on.
const PORT_IN_IMAGE: u16 = 8000;
const NEEDS: &str = "tests/container.rs needs podman and runc (Debian: apt-get install podman \
                     runc) and docker-compose (apt-get install docker-compose); .ci/run installs \
                     them";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// podman with the repository's containers.conf, as scripts/image runs it, unless the
/// environment names another.
fn podman() -> Command {
    let mut command = Command::new("podman");
    if std::env::var_os("CONTAINERS_CONF").is_none() {
        command.env(
            "CONTAINERS_CONF",
            repo().join("deploy/podman/containers.conf"),
        );
    }
    command
}

fn output(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}. {NEEDS}"))
}

/// Runs the command; its stdout, or a panic with everything it printed unless it succeeded.
fn ok(command: &mut Command) -> String {
    let out = output(command);
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn inspect(what: &str, id: &str) -> Value {
    let text = ok(podman().args([what, "inspect", id]));
    let mut all: Vec<Value> = serde_json::from_str(&text).expect("podman inspect prints JSON");
    assert_eq!(all.len(), 1, "{text}");
    all.remove(0)
}

struct Image {
    id: String,
    /// `podman image inspect`.
    config: Value,
}

/// The image, built by scripts/image the first time a test asks for it.
fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(build_image)
}

fn build_image() -> Image {
    ok(podman().arg("--version"));
    let tagged = |tag| {
        let out = output(podman().args(["image", "inspect", "--format", "{{.Id}}", tag]));
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let previous = tagged(TAG);
    let started = Instant::now();
    let mut script = Command::new(repo().join("scripts/image"));
    script.current_dir(repo()).env("IMAGE", TAG);
    // What cargo sets for this test, not for a build: ring's build script tracks
    // CARGO_PKG_NAME, CARGO_MANIFEST_DIR and the like, and would rebuild the release binary
    // (minutes) every time they differ from a build run from a shell.
    for (name, _) in std::env::vars() {
        let set_for_the_test = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CFG_"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
            || [
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "OUT_DIR",
            ]
            .contains(&name.as_str());
        if set_for_the_test {
            script.env_remove(name);
        }
    }
    let printed = ok(&mut script);
    let summary = printed.lines().last().unwrap_or_default().to_owned();
    println!("{summary} (scripts/image took {:.1?})", started.elapsed());
    let id = tagged(TAG).expect("scripts/image tagged the image");
    assert!(summary.contains(&id), "{summary}");
    if let Some(previous) = previous.filter(|previous| *previous != id) {
        // The last run's image, untagged now; one still in use stays.
        let _ = output(podman().args(["rmi", &previous]));
    }
    let config = inspect("image", &id);
    Image { id, config }
}

/// A container of the image, published on 127.0.0.1; removed on drop, after printing its log if
/// the test failed.
struct Container {
    id: String,
    port: u16,
}

impl Container {
    /// `podman run -d -p 127.0.0.1:PORT:8000 OPTIONS IMAGE ARGS`, once the broker listens.
    fn run(options: &[&str], args: &[&str]) -> Container {
        let image = image();
        let port = common::free_port();
        let id = ok(podman()
            .args([
                "run",
                "-d",
                "-p",
                &format!("127.0.0.1:{port}:{PORT_IN_IMAGE}"),
            ])
            .args(options)
            .arg(&image.id)
            .args(args))
        .trim()
        .to_owned();
        let container = Container { id, port };
        container.await_listening();
        container
    }

    /// Follows the log until the broker prints where it listens.
    fn await_listening(&self) {
        let mut follow = podman()
            .args(["logs", "-f", &self.id])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("podman logs starts");
        let stdout = follow.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let listening = BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find(|line| line.starts_with("rpc-crypto listening on "));
            let _ = tx.send(listening);
        });
        let listening = rx.recv_timeout(WAIT);
        let _ = follow.kill();
        let _ = follow.wait();
        match listening {
            Ok(Some(line)) => assert_eq!(
                line,
                format!(
                    "rpc-crypto listening on ws://0.0.0.0:{PORT_IN_IMAGE}/connection/websocket"
                )
            ),
            Ok(None) => panic!("the container ended before listening:\n{}", self.log()),
            Err(_) => panic!(
                "the container did not listen within {WAIT:?}:\n{}",
                self.log()
            ),
        }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/connection/websocket", self.port)
    }

    fn state(&self) -> Value {
        inspect("container", &self.id)
    }

    fn log(&self) -> String {
        let out = output(podman().args(["logs", &self.id]));
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// `podman healthcheck run`: the image's HEALTHCHECK, once, now.
    fn assert_healthy(&self) {
        let out = output(podman().args(["healthcheck", "run", &self.id]));
        assert!(
            out.status.success(),
            "the healthcheck failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- container {} log ---\n{}", self.id, self.log());
        }
        let _ = output(podman().args(["rm", "-f", "--time", "0", &self.id]));
    }
}

/// A file in the temp dir, readable by the container's user; removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "rpc-crypto-container-{}-{name}",
            std::process::id()
        ));
        std::fs::File::create(&path)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .unwrap();
        #[cfg(unix)]
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Connects a JSON client; returns it and the connect result's `ping` (seconds).
async fn connect_to(container: &Container) -> (Client, u32) {
    let mut client = Client::open(&container.url(), Format::Json).await;
    let reply = client.call(connect(1)).await;
    let ping = reply
        .connect
        .as_ref()
        .unwrap_or_else(|| panic!("connect failed: {reply:?}"))
        .ping;
    (client, ping)
}

#[test]
fn the_image_is_small_and_says_what_it_is() {
    let image = image();
    let size = image.config["Size"].as_u64().expect("a size");
    println!(
        "image size: {size} bytes ({:.1} MB; at most {} MB)",
        size as f64 / 1e6,
        MAX_IMAGE_BYTES / 1_000_000
    );
    assert!(size <= MAX_IMAGE_BYTES, "the image has {size} bytes");

    let config = &image.config["Config"];
    assert_eq!(config["User"], "65534:65534");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/rpc-crypto"]));
    assert_eq!(config["Cmd"], serde_json::json!(["serve"]));
    assert_eq!(config["StopSignal"], "SIGTERM");
    let exposed: Vec<&String> = config["ExposedPorts"].as_object().unwrap().keys().collect();
    assert_eq!(exposed, [&format!("{PORT_IN_IMAGE}/tcp")]);
    assert!(
        config["Env"]
            .as_array()
            .unwrap()
            .contains(&Value::from(format!(
                "RPC_CRYPTO_LISTEN=0.0.0.0:{PORT_IN_IMAGE}"
            ))),
        "{config}"
    );
    // The HEALTHCHECK survives only in the docker format.
    let test = &image.config["Healthcheck"]["Test"];
    assert_eq!(test[0], "CMD", "{}", image.config);
    assert_eq!(test[1], "/rpc-crypto");
    assert_eq!(test[2], "health");

    let labels = &config["Labels"];
    let label = |name: &str| {
        labels[format!("org.opencontainers.image.{name}")]
            .as_str()
            .unwrap_or_else(|| panic!("no label {name}: {labels}"))
            .to_owned()
    };
    assert_eq!(label("title"), "rpc-crypto");
    assert_eq!(label("licenses"), "MIT");
    assert_eq!(label("version"), env!("CARGO_PKG_VERSION"));
    assert_eq!(label("description"), env!("CARGO_PKG_DESCRIPTION"));
    let created = label("created");
    assert!(
        created.len() == 20 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "created: {created}"
    );
    let revision = label("revision");
    assert!(
        revision == "unknown"
            || (revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())),
        "revision: {revision}"
    );
}

#[tokio::test]
async fn the_container_serves_market_data_as_nobody_and_stops_with_3001() {
    let container = Container::run(&["-e", "RPC_CRYPTO_CLIENT__PING_INTERVAL=7s"], &[]);
    let (mut client, ping) = connect_to(&container).await;
    assert_eq!(ping, 7, "the environment variable's ping interval");

    let channel = "ticker:sim:BTC/USDT";
    let reply = client.call(subscribe(2, channel)).await;
    assert_eq!(error_code(&reply), 0, "{reply:?}");
    let ticker = loop {
        let item = client.next_item().await;
        if item.push.as_ref().is_some_and(|push| push.r#pub.is_some()) {
            break common::publication(&item);
        }
    };
    assert_eq!(ticker.0, channel);
    assert_eq!(ticker.1["symbol"], "BTC/USDT", "{}", ticker.1);
    // The embedded default's namespaces: the mounted config's one is not there.
    let reply = client.call(subscribe(3, "mounted:news")).await;
    assert_eq!(error_code(&reply), 102, "{reply:?}");

    let state = container.state();
    assert_eq!(state["Config"]["User"], "65534:65534");
    container.assert_healthy();

    let id = container.id.clone();
    let stop = tokio::task::spawn_blocking(move || ok(podman().args(["stop", &id])));
    let closed = client.closed().await;
    assert_eq!(closed.code, 3001, "{closed:?}");
    stop.await.unwrap();
    let state = container.state();
    assert_eq!(state["State"]["Status"], "exited", "{}", state["State"]);
    assert_eq!(state["State"]["ExitCode"], 0, "{}", state["State"]);
}

#[tokio::test]
async fn a_mounted_config_file_takes_effect() {
    let file = TempFile::new(
        "rpc-crypto.toml",
        "# Only this file has the `mounted` namespace (and no market namespaces).\n\
         namespaces = [{ name = \"mounted\", allow_subscribe_for_client = true, \
         allow_subscribe_for_anonymous = true }]\n\
         [client]\n\
         ping_interval = \"9s\"\n",
    );
    let volume = format!("{}:{CONFIG_IN_IMAGE}:ro", file.0.display());
    let container = Container::run(&["-v", &volume], &["serve", "--config", CONFIG_IN_IMAGE]);
    let (mut client, ping) = connect_to(&container).await;
    assert_eq!(ping, 9, "the file's ping interval");
    let reply = client.call(subscribe(2, "mounted:news")).await;
    assert_eq!(error_code(&reply), 0, "{reply:?}");
    let reply = client.call(subscribe(3, "ticker:sim:BTC/USDT")).await;
    assert_eq!(error_code(&reply), 102, "{reply:?}");
    // The healthcheck finds the listener from the image's RPC_CRYPTO_LISTEN, config file or not.
    container.assert_healthy();
}

/// YAML as JSON, through python3's yaml module (which docker-compose and podman-compose are
/// written with).
fn yaml_to_json(yaml: &str) -> Value {
    let mut python = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run python3: {error}. {NEEDS}"));
    python
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 yaml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// deploy/compose.yaml as a compose tool reads it (relative paths made absolute): docker-compose
/// 1.29, or a podman-compose that has `config` (1.0.3, Debian 12's, does not).
fn compose_config() -> Value {
    let file = repo().join("deploy/compose.yaml");
    let mut tried = Vec::new();
    for tool in ["docker-compose", "podman-compose"] {
        let Ok(out) = Command::new(tool)
            .arg("-f")
            .arg(&file)
            .arg("config")
            .output()
        else {
            tried.push(format!("{tool}: not installed"));
            continue;
        };
        if out.status.success() {
            return yaml_to_json(&String::from_utf8(out.stdout).unwrap());
        }
        tried.push(format!(
            "{tool}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    panic!("no compose tool read deploy/compose.yaml: {tried:?}. {NEEDS}");
}

/// `SOURCE:TARGET[:MODE]` of a compose volume.
fn mount(volume: &Value) -> (PathBuf, String) {
    let text = volume.as_str().expect("a short-form volume");
    let mut parts = text.split(':');
    let (source, target) = (parts.next().unwrap(), parts.next().expect("a target"));
    (PathBuf::from(source), target.to_owned())
}

/// The container port of a compose `HOST_IP:HOST_PORT:CONTAINER_PORT[/tcp]`; the host part on
/// loopback.
fn container_port(port: &Value) -> u16 {
    let text = port.as_str().expect("a short-form port");
    assert!(
        text.starts_with("127.0.0.1:"),
        "published beyond loopback: {text}"
    );
    let container = text.rsplit(':').next().unwrap();
    container.trim_end_matches("/tcp").parse().expect("a port")
}

#[test]
fn the_compose_file_matches_the_image() {
    let compose = compose_config();
    let image = &image().config;
    let services = compose["services"].as_object().expect("services");
    assert_eq!(
        services.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from(["broker", "prometheus"])
    );

    let broker = &compose["services"]["broker"];
    // The tag scripts/image builds by default.
    assert_eq!(broker["image"], "rpc-crypto:latest");
    let exposed: Vec<u16> = image["Config"]["ExposedPorts"]
        .as_object()
        .unwrap()
        .keys()
        .map(|port| port.trim_end_matches("/tcp").parse().unwrap())
        .collect();
    let ports: Vec<u16> = broker["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(container_port)
        .collect();
    assert_eq!(ports, exposed, "the broker's published ports");
    assert_eq!(ports, [PORT_IN_IMAGE]);

    let volumes = broker["volumes"].as_array().expect("the broker's volumes");
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    let (source, target) = mount(&volumes[0]);
    assert_eq!(source, repo().join("deploy/rpc-crypto.toml"));
    assert_eq!(target, CONFIG_IN_IMAGE);
    assert_eq!(
        broker["command"],
        serde_json::json!(["serve", "--config", CONFIG_IN_IMAGE])
    );
    // The mounted file is a config the binary accepts.
    let mut checkconfig = Command::new(common::binary());
    checkconfig.args(["checkconfig", "--config"]).arg(&source);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("RPC_CRYPTO_")) {
        checkconfig.env_remove(name);
    }
    let check = ok(&mut checkconfig);
    assert_eq!(check, "config ok\n");
    assert_eq!(broker["stop_signal"], image["Config"]["StopSignal"]);
    // No healthcheck of its own: the image's applies (podman-compose 1.0.3 would run one through
    // /bin/sh, which the image does not have).
    assert!(broker.get("healthcheck").is_none(), "{broker}");
    assert!(image["Healthcheck"]["Test"].is_array());

    let prometheus = &compose["services"]["prometheus"];
    let (source, target) = mount(&prometheus["volumes"][0]);
    assert_eq!(source, repo().join("deploy/prometheus/prometheus.yml"));
    let config_flag = format!("--config.file={target}");
    assert!(
        prometheus["command"]
            .as_array()
            .unwrap()
            .contains(&Value::from(config_flag.clone())),
        "{prometheus}"
    );
    let scrape = yaml_to_json(&std::fs::read_to_string(&source).unwrap());
    let jobs = scrape["scrape_configs"].as_array().expect("scrape_configs");
    assert_eq!(jobs.len(), 1, "{scrape}");
    assert_eq!(jobs[0]["metrics_path"], "/metrics");
    assert_eq!(
        jobs[0]["static_configs"][0]["targets"],
        serde_json::json!([format!("broker:{PORT_IN_IMAGE}")])
    );
    // The alerting rules: mounted where prometheus.yml's `rule_files` (relative to its own
    // directory) finds them.
    let (rules_source, rules_target) = mount(&prometheus["volumes"][1]);
    assert_eq!(rules_source, repo().join("deploy/prometheus/alerts.yml"));
    let config_dir = Path::new(&target).parent().unwrap();
    let rule_files: Vec<PathBuf> = scrape["rule_files"]
        .as_array()
        .expect("rule_files")
        .iter()
        .map(|file| config_dir.join(file.as_str().unwrap()))
        .collect();
    assert_eq!(rule_files, [PathBuf::from(rules_target)]);
}
