//! `loadgen`: one benchmark run per invocation, its result as one JSON line on stdout.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use rpc_crypto_bench::scenario::{self, Fanout};
use rpc_crypto_bench::secure::SecureSubscribers;
use rpc_crypto_bench::target::Target;

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Load generator for rpc-crypto, NATS and Mosquitto over WebSocket"
)]
struct Cli {
    /// The server under test.
    #[arg(long, value_enum)]
    target: Target,
    /// Its WebSocket URL.
    #[arg(long)]
    url: String,
    /// Its process id, to read its CPU time and RSS from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// rpc-secure: the secure transport's URL, where the subscribers connect (default: `--url`
    /// with `/connection/websocket` replaced by `/connection/secure`; the publishers use `--url`).
    #[arg(long)]
    secure_url: Option<String>,
    /// rpc-secure: the server's RSA public key, PEM.
    #[arg(long)]
    server_public_key: Option<PathBuf>,
    /// rpc-secure: the RSA private key, PEM, that every subscriber's client id shares.
    #[arg(long)]
    client_key: Option<PathBuf>,
    /// rpc-secure: subscriber n's client id is `<prefix><n>`.
    #[arg(long, default_value = "sub")]
    client_prefix: String,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Subscribers on one channel, publishers at an open-loop rate.
    Fanout {
        #[arg(long, default_value_t = 100)]
        subscribers: usize,
        #[arg(long, default_value_t = 1)]
        publishers: usize,
        /// Messages per second, all publishers together.
        #[arg(long)]
        rate: u64,
        /// Payload bytes.
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Seconds of warm-up, measurement, and drain.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        #[arg(long, default_value_t = 2.0)]
        drain: f64,
    },
    /// Idle subscribed connections: the server's RSS per connection.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
    },
    /// Sessions established and subscribed per second.
    Connects {
        #[arg(long, default_value_t = 5_000)]
        sessions: usize,
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
    },
}

/// The secure transport's settings for target rpc-secure (its fan-out only), `None` for others.
fn secure_subscribers(cli: &Cli) -> anyhow::Result<Option<Arc<SecureSubscribers>>> {
    if cli.target != Target::RpcSecure {
        return Ok(None);
    }
    anyhow::ensure!(
        matches!(cli.scenario, Scenario::Fanout { .. }),
        "target rpc-secure runs only the fanout scenario"
    );
    let url = match &cli.secure_url {
        Some(url) => url.clone(),
        None if cli.url.contains("/connection/websocket") => {
            cli.url
                .replacen("/connection/websocket", "/connection/secure", 1)
        }
        None => {
            anyhow::bail!("--url has no /connection/websocket to derive it from: give --secure-url")
        }
    };
    let server_public_key = cli
        .server_public_key
        .as_deref()
        .context("target rpc-secure needs --server-public-key")?;
    let client_key = cli
        .client_key
        .as_deref()
        .context("target rpc-secure needs --client-key")?;
    let secure = SecureSubscribers::load(
        url,
        server_public_key,
        client_key,
        cli.client_prefix.clone(),
    )?;
    Ok(Some(Arc::new(secure)))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let secure = secure_subscribers(&cli)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let line = runtime.block_on(async {
        anyhow::Ok(match cli.scenario {
            Scenario::Fanout {
                subscribers,
                publishers,
                rate,
                size,
                warmup,
                duration,
                drain,
            } => {
                let report = scenario::fanout(Fanout {
                    target: cli.target,
                    url: cli.url,
                    subscribers,
                    publishers,
                    rate,
                    size,
                    warmup: Duration::from_secs_f64(warmup),
                    duration: Duration::from_secs_f64(duration),
                    drain: Duration::from_secs_f64(drain),
                    server_pid: cli.server_pid,
                    secure,
                })
                .await?;
                eprintln!(
                    "{} {}x{}/s {}B: delivered {}/{} ({:.0}/s), p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, server CPU {:?} s, generator {:.0}%",
                    report.target.name(),
                    report.subscribers,
                    report.rate,
                    report.size,
                    report.delivered,
                    report.expected,
                    report.delivered_per_sec,
                    report.p50_ms,
                    report.p99_ms,
                    report.max_ms,
                    report.server_cpu_s,
                    report.generator_cpu * 100.0,
                );
                serde_json::to_string(&report)?
            }
            Scenario::Idle { connections } => {
                let pid = cli.server_pid.ok_or_else(|| anyhow::anyhow!("idle needs --server-pid"))?;
                let report = scenario::idle(cli.target, &cli.url, connections, pid).await?;
                eprintln!(
                    "{}: {} idle connections, {:.1} KiB each",
                    report.target.name(),
                    report.connections,
                    report.kib_per_connection
                );
                serde_json::to_string(&report)?
            }
            Scenario::Connects {
                sessions,
                concurrency,
            } => {
                let report = scenario::connects(cli.target, &cli.url, sessions, concurrency).await?;
                eprintln!(
                    "{}: {} sessions in {:.2} s, {:.0}/s (generator {:.0}%)",
                    report.target.name(),
                    report.sessions,
                    report.seconds,
                    report.sessions_per_sec,
                    report.generator_cpu * 100.0
                );
                serde_json::to_string(&report)?
            }
        })
    })?;
    println!("{line}");
    Ok(())
}
