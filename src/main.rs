//! The `rpc-crypto` command line.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use rpc_crypto::config::Config;
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
}

/// The commented example config; `genconfig` fills in its empty secrets.
const EXAMPLE_CONFIG: &str = include_str!("../deploy/rpc-crypto.toml");

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
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
        Command::Genconfig { output, force } => genconfig(output, force),
        Command::Checkconfig { config } => checkconfig(config),
    }
}

fn serve(path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load(path.as_deref(), std::env::vars()).context("invalid config")?;
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
    let config = Config::load(path.as_deref(), std::env::vars()).context("invalid config")?;
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
            write_secret_file(&path, &text, force)?;
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

/// Writes a file only its owner can read (it holds secrets); an existing file only with `force`.
fn write_secret_file(path: &Path, text: &str, force: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        // Checked and created in one step, so nothing can appear in between.
        options.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!("{} exists; add --force to overwrite it", path.display())
        } else {
            anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
        }
    })?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn checkconfig(path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load(path.as_deref(), std::env::vars()).context("invalid config")?;
    TokenVerifier::from_settings(&config.token).context("invalid config")?;
    rpc_crypto::tls::server_config(&config.tls).context("invalid config")?;
    println!("config ok");
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
}
