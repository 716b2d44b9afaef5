//! The `rpc-crypto` command line.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use rpc_crypto::config::Config;
use rpc_crypto::logs::{self, LogSettings};
use rpc_crypto::probe::{self, Target};
use rpc_crypto::server::{self, WEBSOCKET_PATH};
use rpc_crypto_actors::auth::{generate_secret, sign_hs256, TokenVerifier};

#[derive(Parser)]
#[command(name = "rpc-crypto", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker (the default when no command is given).
    Serve {
        /// A TOML config file; without one, the embedded default is used.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print an HS256 token signed with the config's `token.hmac_secret`, for development and
    /// tests; in production the application's backend signs tokens.
    Gentoken {
        /// A TOML config file; `RPC_CRYPTO_TOKEN__HMAC_SECRET` works as well.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The user (`sub`); may be empty.
        #[arg(long, short)]
        user: String,
        /// Lifetime in seconds (`exp` = now + ttl); 0 = no expiry.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// `info`: a JSON value shown to other clients (presence, join and leave).
        #[arg(long)]
        info: Option<String>,
        /// `channels`, comma-separated: subscribed server-side at connect.
        #[arg(long, value_delimiter = ',', conflicts_with = "channel")]
        channels: Vec<String>,
        /// Make a subscription token for this channel instead of a connection token.
        #[arg(long)]
        channel: Option<String>,
    },
    /// Write the example config with freshly generated `token.hmac_secret` and `api.key`.
    Genconfig {
        /// Where to write it; without it, stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Overwrite the output file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Load and check a config, keys included; prints `config ok` or the problem.
    Checkconfig {
        /// A TOML config file; without one, the embedded default (plus `RPC_CRYPTO_` variables).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Record what a real exchange adapter receives, raw with receive times, to a file that
    /// `[replay]` plays back; nothing is served meanwhile.
    Record {
        /// The exchange: its adapter runs with the config's options and URLs, enabled or not.
        #[arg(long, value_parser = ["binance", "coinbase", "kraken"])]
        exchange: String,
        /// A channel to ask the adapter for, e.g. book:binance:BTC/USDT; repeat for more.
        #[arg(long = "channel", required = true)]
        channels: Vec<String>,
        /// How long to record ("60s", "10m", "1h"); without it, until Ctrl-C (SIGINT) or SIGTERM.
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// The file to write.
        #[arg(long, short)]
        out: PathBuf,
        /// Overwrite the file if it exists.
        #[arg(long)]
        force: bool,
        /// A TOML config file; without one, the embedded default (plus `RPC_CRYPTO_` variables).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Ask a running broker's `GET /health` (a container's HEALTHCHECK): exit status 0 when it
    /// answers 200, 1 with the reason on stderr otherwise (503, refused, no answer in time).
    Health {
        /// The URL to ask (plain `http://`); without it, `/health` on the config's `listen`
        /// address (an unspecified `0.0.0.0` on 127.0.0.1).
        #[arg(long)]
        url: Option<String>,
        /// A TOML config file for `listen`; without one, the embedded default (plus
        /// `RPC_CRYPTO_` variables, `RPC_CRYPTO_LISTEN` included).
        #[arg(long, short, conflicts_with = "url")]
        config: Option<PathBuf>,
        /// How long connecting and the answer may take in all ("2s", "500ms").
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Write a new RSA key pair for the secure transport ([secure]): `PREFIX.key.pem`, the
    /// private key (PKCS#8, readable by its owner only), and `PREFIX.pub.pem`, the public key
    /// (SPKI).
    Keygen {
        /// Path and name of the files without the suffixes: `--out keys/server` writes
        /// `keys/server.key.pem` and `keys/server.pub.pem`.
        #[arg(long, short)]
        out: PathBuf,
        /// Key size in bits: 2048, 3072 or 4096.
        #[arg(long, default_value_t = 2048, value_parser = parse_bits)]
        bits: usize,
        /// Overwrite the files if they exist.
        #[arg(long)]
        force: bool,
    },
}

/// The commented example config; `genconfig` fills in its empty secrets.
const EXAMPLE_CONFIG: &str = include_str!("../deploy/rpc-crypto.toml");

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve { config: None }) {
        Command::Serve { config } => serve(config),
        Command::Gentoken {
            config,
            user,
            ttl,
            info,
            channels,
            channel,
        } => gentoken(config, user, ttl, info, channels, channel),
        Command::Genconfig { output, force } => {
            logs::init(&LogSettings::default());
            genconfig(output, force)
        }
        Command::Checkconfig { config } => checkconfig(config),
        Command::Keygen { out, bits, force } => {
            logs::init(&LogSettings::default());
            keygen(&out, bits, force)
        }
        Command::Health {
            url,
            config,
            timeout,
        } => health(url, config, timeout),
        Command::Record {
            exchange,
            channels,
            duration,
            out,
            force,
            config,
        } => record(config, &exchange, &channels, duration, &out, force),
    }
}

/// Loads the config (the file, or the embedded default, and `RPC_CRYPTO_` variables) and starts
/// logging in its `[log] format`. Nothing is logged before; a config that does not load is the
/// command's error, written as text.
fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let config = Config::load(path, std::env::vars()).context("invalid config")?;
    logs::init(&config.log);
    Ok(config)
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = rpc_crypto_actors::settings::duration::parse(text)?;
    if duration.is_zero() {
        return Err("must be above zero".into());
    }
    Ok(duration)
}

fn record(
    path: Option<PathBuf>,
    exchange: &str,
    channels: &[String],
    duration: Option<Duration>,
    out: &Path,
    force: bool,
) -> anyhow::Result<()> {
    let config = load_config(path.as_deref())?;
    let plan = rpc_crypto::record::Plan {
        exchange,
        channels,
        duration,
        out,
        force,
    };
    let recorded = rpc_crypto::record::run(&config, &plan)?;
    let summary = recorded.summary;
    println!(
        "wrote {}: {} records, {} bytes, {} dropped",
        out.display(),
        summary.records,
        summary.bytes,
        summary.dropped
    );
    if summary.dropped > 0 {
        eprintln!(
            "warning: {} records were dropped (the writer fell behind): the recording has holes",
            summary.dropped
        );
    }
    let data: u64 = recorded
        .publications
        .iter()
        .filter(|(channel, _)| channel.as_str() != rpc_crypto_actors::channel::NOTIFICATIONS)
        .map(|(_, count)| count)
        .sum();
    println!("the {exchange} adapter published {data} messages meanwhile");
    for (channel, count) in &recorded.publications {
        println!("  {channel}: {count}");
    }
    if data == 0 {
        eprintln!(
            "warning: the adapter published nothing: check the channels, the exchange's URLs and \
             the log above"
        );
    }
    println!(
        "replay it: RPC_CRYPTO_REPLAY__ENABLED=true RPC_CRYPTO_REPLAY__FILE={} rpc-crypto serve",
        out.display()
    );
    Ok(())
}

fn serve(path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = load_config(path.as_deref())?;
    actix_rt::System::new().block_on(async move {
        let running =
            server::start(&config).with_context(|| format!("cannot start on {}", config.listen))?;
        for addr in &running.addrs {
            // On stdout, so that scripts and tests can read the bound port.
            let scheme = if running.tls { "wss" } else { "ws" };
            println!("rpc-crypto listening on {scheme}://{addr}{WEBSOCKET_PATH}");
        }
        if config.client.insecure {
            log::warn!(
                "INSECURE MODE (client.insecure = true): every client may subscribe, publish \
                 and read on every channel, private and user-limited ones included, without a \
                 token. For development only."
            );
        } else {
            log::info!("access: {}", config.access_summary());
        }
        if config.secure.enabled {
            log::info!("{} ({})", config.secure.summary(), server::SECURE_PATH);
            if !running.tls {
                log::warn!(
                    "the secure transport runs without TLS: its frames carry no MAC and its                      handshake does not authenticate the server; serve it over wss://"
                );
            }
        }
        running.run_until_signal().await?;
        log::info!("stopped");
        Ok(())
    })
}

fn gentoken(
    path: Option<PathBuf>,
    user: String,
    ttl: u64,
    info: Option<String>,
    channels: Vec<String>,
    channel: Option<String>,
) -> anyhow::Result<()> {
    let config = load_config(path.as_deref())?;
    let secret = &config.token.hmac_secret;
    if secret.is_empty() {
        bail!(
            "no token.hmac_secret configured: set it in the config file or in \
             RPC_CRYPTO_TOKEN__HMAC_SECRET (`rpc-crypto genconfig` makes one)"
        );
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs();
    let mut claims = serde_json::json!({ "sub": user, "iat": now });
    if ttl > 0 {
        let exp = now.checked_add(ttl).context("--ttl is too large")?;
        claims["exp"] = exp.into();
    }
    if let Some(info) = info {
        claims["info"] = serde_json::from_str(&info).context("--info is not valid JSON")?;
    }
    match channel {
        Some(channel) => claims["channel"] = channel.into(),
        None if !channels.is_empty() => claims["channels"] = channels.into(),
        None => {}
    }
    // Only the token on stdout, so that `$(rpc-crypto gentoken ...)` works.
    println!("{}", sign_hs256(secret.as_bytes(), &claims));
    Ok(())
}

fn genconfig(output: Option<PathBuf>, force: bool) -> anyhow::Result<()> {
    let text = example_config_with_secrets(&generate_secret(), &generate_secret())?;
    match output {
        None => std::io::stdout()
            .write_all(text.as_bytes())
            .context("cannot write to stdout"),
        Some(path) => {
            write_file(&path, &text, force, Readers::Owner)?;
            eprintln!("wrote {}", path.display());
            Ok(())
        }
    }
}

/// The example config with `hmac_secret` and `api.key` set. Fails if the template no longer has
/// the empty lines to fill in, rather than writing a config without secrets.
fn example_config_with_secrets(hmac_secret: &str, api_key: &str) -> anyhow::Result<String> {
    let fills = [
        (
            "hmac_secret = \"\"",
            format!("hmac_secret = \"{hmac_secret}\""),
        ),
        ("key = \"\"", format!("key = \"{api_key}\"")),
    ];
    let mut found = [0; 2];
    let mut text = String::with_capacity(EXAMPLE_CONFIG.len() + 200);
    for line in EXAMPLE_CONFIG.lines() {
        match fills.iter().position(|(empty, _)| line == *empty) {
            Some(i) => {
                found[i] += 1;
                text.push_str(&fills[i].1);
            }
            None => text.push_str(line),
        }
        text.push('\n');
    }
    for ((empty, _), count) in fills.iter().zip(found) {
        if count != 1 {
            bail!("the embedded example config has {count} lines `{empty}`, expected one");
        }
    }
    Ok(text)
}

/// Who may read a file `write_file` writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Readers {
    /// Only its owner: it holds secrets.
    Owner,
    Anyone,
}

/// Writes `path`; an existing file only with `force`. An owner-only file is made so before
/// anything is written to it, an overwritten one included.
fn write_file(path: &Path, text: &str, force: bool, readers: Readers) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        // Checked and created in one step, so nothing can appear in between.
        options.create_new(true);
    }
    #[cfg(unix)]
    if readers == Readers::Owner {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!("{} exists; add --force to overwrite it", path.display())
        } else {
            anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
        }
    })?;
    // `mode` above applies only to a new file; one overwritten with --force may be readable by
    // others.
    #[cfg(unix)]
    if readers == Readers::Owner {
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .with_context(|| format!("cannot make {} owner-only", path.display()))?;
    }
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn checkconfig(path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = load_config(path.as_deref())?;
    TokenVerifier::from_settings(&config.token).context("invalid config")?;
    rpc_crypto::tls::server_config(&config.tls).context("invalid config")?;
    config.secure_keys().context("invalid config")?;
    if config.replay.enabled {
        let recording = rpc_crypto_actors::adapters::replay::Recording::load(&config.replay)
            .context("invalid config")?;
        let local = |scheme| format!("{scheme}://127.0.0.1:1");
        config
            .replayed_exchanges(recording.exchange(), local("ws"), local("http"))
            .context("invalid config")?;
    }
    println!("config ok");
    Ok(())
}

fn health(url: Option<String>, path: Option<PathBuf>, timeout: Duration) -> anyhow::Result<()> {
    let target = match url {
        Some(url) => Target::parse(&url)?,
        None => {
            let config =
                Config::load(path.as_deref(), std::env::vars()).context("invalid config")?;
            if config.tls.cert.is_some() {
                bail!(
                    "the listener speaks TLS (tls.cert is set) and `rpc-crypto health` plain \
                     HTTP only: give --url of a plain listener, or probe over HTTPS"
                );
            }
            Target::of_listener(config.listen)
        }
    };
    let healthy = probe::check(&target, timeout).context("unhealthy")?;
    println!("{}: {} {}", target.url(), healthy.status, healthy.body);
    Ok(())
}

/// The RSA key sizes `keygen` makes.
const KEY_BITS: [usize; 3] = [2048, 3072, 4096];

fn parse_bits(text: &str) -> Result<usize, String> {
    text.parse()
        .ok()
        .filter(|bits| KEY_BITS.contains(bits))
        .ok_or_else(|| "must be 2048, 3072 or 4096".to_owned())
}

/// `PREFIX.key.pem` and `PREFIX.pub.pem`.
fn key_pair_paths(prefix: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let Some(name) = prefix.file_name().and_then(|name| name.to_str()) else {
        bail!(
            "--out {} must end in a file name (e.g. --out keys/server writes \
             keys/server.key.pem and keys/server.pub.pem)",
            prefix.display()
        );
    };
    if prefix.is_dir() {
        bail!(
            "--out {} is a directory; give a name in it, e.g. --out {}",
            prefix.display(),
            prefix.join("server").display()
        );
    }
    Ok((
        prefix.with_file_name(format!("{name}.key.pem")),
        prefix.with_file_name(format!("{name}.pub.pem")),
    ))
}

/// Writes a new key pair; prints the paths, never the private key.
fn keygen(prefix: &Path, bits: usize, force: bool) -> anyhow::Result<()> {
    let (private_path, public_path) = key_pair_paths(prefix)?;
    if !force {
        // Checked before the (slow) generation; the writes check again.
        for path in [&private_path, &public_path] {
            if path.exists() {
                bail!("{} exists; add --force to overwrite it", path.display());
            }
        }
    }
    let key =
        rpc_crypto_actors::secure_keys::generate_key(bits).context("cannot generate an RSA key")?;
    write_file(&private_path, &key.to_pkcs8_pem(), force, Readers::Owner)?;
    if let Err(error) = write_file(
        &public_path,
        &key.public_key().to_pem(),
        force,
        Readers::Anyone,
    ) {
        // Not half a pair: the private key just written goes again.
        let _ = std::fs::remove_file(&private_path);
        return Err(error);
    }
    let (private, public) = (private_path.display(), public_path.display());
    println!("wrote {private} (private key, PKCS#8; keep it secret)");
    println!("wrote {public} (public key, SPKI)");
    println!(
        "For the server: [secure] server_key_file = \"{private}\", and give {public} to the \
         clients."
    );
    println!(
        "For a client: copy {public} into [secure] clients_dir as <client id>.pem (or paste it \
         into [secure.clients]); the client keeps {private}."
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_fill_the_template() {
        let text = example_config_with_secrets("aa", "bb").unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(table["token"]["hmac_secret"].as_str(), Some("aa"));
        assert_eq!(table["api"]["key"].as_str(), Some("bb"));
        // Nothing else changed.
        assert_eq!(text.lines().count(), EXAMPLE_CONFIG.lines().count());
    }

    #[test]
    fn keygen_paths_and_bits() {
        let (private, public) = key_pair_paths(Path::new("keys/alice")).unwrap();
        assert_eq!(private, Path::new("keys/alice.key.pem"));
        assert_eq!(public, Path::new("keys/alice.pub.pem"));
        assert!(key_pair_paths(Path::new(".")).is_err());
        assert!(key_pair_paths(&std::env::temp_dir()).is_err());
        assert_eq!(parse_bits("3072"), Ok(3072));
        assert!(parse_bits("1024").is_err());
        assert!(parse_bits("2048x").is_err());
    }
}
