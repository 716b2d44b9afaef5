//! The configuration: a TOML file, every option overridable by an environment variable.
//!
//! `RPC_CRYPTO_<KEY>` sets a top-level key and `RPC_CRYPTO_<TABLE>__<KEY>` one inside a table
//! (`RPC_CRYPTO_CLIENT__PING_INTERVAL=10s`). A value is read as TOML (`25`, `true`,
//! `[{name = "chat"}]`) unless the option is a string, and as plain text when it is not TOML.
//! With neither file nor variables, [`Config::default`] is the embedded default: it serves on
//! 127.0.0.1:8000 and lets anonymous clients read the market channels.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use rpc_crypto_actors::adapters::binance::BinanceSettings;
use rpc_crypto_actors::adapters::coinbase::adapter::CoinbaseSettings;
use rpc_crypto_actors::adapters::kraken::KrakenSettings;
use rpc_crypto_actors::adapters::rates::RatesSettings;
use rpc_crypto_actors::adapters::replay::ReplaySettings;
use rpc_crypto_actors::adapters::sim::exchange::SimSettings;
use rpc_crypto_actors::auth::TokenSettings;
use rpc_crypto_actors::channel::{ChannelOptions, ChannelRules, Namespace};
use rpc_crypto_actors::secure_keys::{KeyStore, KeyStoreError};
use rpc_crypto_actors::settings::{
    duration, ClientSettings, HistorySettings, SecureSettings, SessionLimits, SessionSettings,
};
use serde::{Deserialize, Serialize};

use crate::health::HealthSettings;
use crate::logs::LogSettings;
use crate::metrics::MetricsSettings;
use crate::tls::TlsSettings;

/// The prefix of the environment variables that override options.
pub const ENV_PREFIX: &str = "RPC_CRYPTO_";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// HTTP worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// How long shutdown waits for sessions to flush their queues before it stops anyway.
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
    /// How long an exchange keeps streaming a channel after its last subscriber left.
    #[serde(with = "duration")]
    pub upstream_linger: Duration,
    pub client: ClientSettings,
    pub limits: SessionLimits,
    /// Sessions that outlive their connection (resume).
    pub session: SessionSettings,
    /// Channel history in all.
    pub history: HistorySettings,
    /// The options of channels with no namespace (no `:` in their name).
    pub channel: ChannelOptions,
    pub namespaces: Vec<Namespace>,
    /// How connection and subscription tokens are verified.
    pub token: TokenSettings,
    /// The server HTTP API.
    pub api: ApiSettings,
    /// TLS for the listener.
    pub tls: TlsSettings,
    /// The secure transport (`/connection/secure`, the cryptology client's protocol): its keys
    /// and handshake limits.
    pub secure: SecureSettings,
    /// The built-in paper-trading exchange.
    pub sim: SimSettings,
    /// Fiat exchange rates (`rates:ecb:EUR/USD`).
    pub rates: RatesSettings,
    /// Real exchanges (off by default: the embedded default works offline).
    pub exchanges: ExchangesSettings,
    /// One exchange played from a recording (`rpc-crypto record`) instead of its network.
    pub replay: ReplaySettings,
    /// Liveness checks of the core actors, and what a failed one does.
    pub health: HealthSettings,
    /// The log's format (its level is `RUST_LOG`'s).
    pub log: LogSettings,
    /// `GET /metrics` (Prometheus).
    pub metrics: MetricsSettings,
}

/// The `[exchanges.*]` tables: one per real exchange adapter.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExchangesSettings {
    pub binance: BinanceSettings,
    pub coinbase: CoinbaseSettings,
    pub kraken: KrakenSettings,
}

impl ExchangesSettings {
    /// Each exchange's own check, but those `skip` names.
    fn check(&self, skip: impl Fn(&str) -> bool) -> Result<(), ConfigError> {
        for (name, check) in [
            ("binance", self.binance.check()),
            ("coinbase", self.coinbase.check()),
            ("kraken", self.kraken.check()),
        ] {
            if !skip(name) {
                check
                    .map_err(|error| ConfigError::Invalid(format!("exchanges.{name}: {error}")))?;
            }
        }
        Ok(())
    }
}

/// The `[api]` table: the server HTTP API (`POST /api/<method>`). `Debug` hides the key.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// The key every request carries in `X-API-Key` (at least [`MIN_API_KEY_LEN`] bytes); empty
    /// turns the API off (every request gets 401).
    pub key: String,
}

/// The shortest API key accepted: the key is the whole of the API's authentication, so it is
/// held to the token secret's length.
pub const MIN_API_KEY_LEN: usize = rpc_crypto_actors::auth::MIN_HMAC_SECRET_LEN;

impl std::fmt::Debug for ApiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiSettings")
            .field("key", &rpc_crypto_actors::auth::redacted(&self.key))
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        // Market channels keep five minutes of history (at most 100 publications each), so a
        // client that reconnects within that window recovers what it missed.
        let read_only = ChannelOptions {
            allow_subscribe_for_client: true,
            allow_subscribe_for_anonymous: true,
            history_size: 100,
            history_ttl: Duration::from_secs(300),
            force_recovery: true,
            allow_history_for_subscriber: true,
            allow_history_for_anonymous: true,
            ..ChannelOptions::default()
        };
        let market = ["ticker", "trades", "book", "ohlcv", "rates"].map(|name| Namespace {
            name: name.to_owned(),
            options: read_only.clone(),
        });
        // A user's private streams of the sim exchange (`orders:sim#alice`): users only, each
        // in the channels named for them, with the same recovery as market data.
        let private = ["orders", "balance", "mytrades"].map(|name| Namespace {
            name: name.to_owned(),
            options: ChannelOptions {
                allow_subscribe_for_anonymous: false,
                allow_history_for_anonymous: false,
                ..read_only.clone()
            },
        });
        // The server's own figures (`$sys:stats`): private, for those the backend grants them.
        let sys = Namespace {
            name: "sys".to_owned(),
            options: ChannelOptions::default(),
        };
        // Anything beyond reading market data needs a user (a token): the sandbox is for them.
        let sandbox = Namespace {
            name: "sandbox".to_owned(),
            options: ChannelOptions {
                allow_subscribe_for_anonymous: false,
                allow_publish_for_subscriber: true,
                allow_history_for_anonymous: false,
                presence: true,
                join_leave: true,
                allow_presence_for_subscriber: true,
                ..read_only.clone()
            },
        };
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            workers: 0,
            shutdown_timeout: Duration::from_secs(10),
            health: HealthSettings::default(),
            log: LogSettings::default(),
            metrics: MetricsSettings::default(),
            upstream_linger: rpc_crypto_actors::router::DEFAULT_LINGER,
            client: ClientSettings::default(),
            limits: SessionLimits::default(),
            session: SessionSettings::default(),
            history: HistorySettings::default(),
            channel: ChannelOptions::default(),
            namespaces: market
                .into_iter()
                .chain(private)
                .chain([sys, sandbox])
                .collect(),
            token: TokenSettings::default(),
            api: ApiSettings::default(),
            tls: TlsSettings::default(),
            secure: SecureSettings::default(),
            sim: SimSettings::default(),
            rates: RatesSettings::default(),
            exchanges: ExchangesSettings::default(),
            replay: ReplaySettings::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(#[from] toml::de::Error),
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Reads the file (if any), applies `RPC_CRYPTO_` variables from `env`, and checks the result.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                toml::from_str::<toml::Table>(&text)?
            }
            None => toml::Table::new(),
        };
        let defaults = toml::Table::try_from(Config::default()).expect("defaults serialize");
        for (name, value) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = key.to_lowercase().split("__").map(str::to_owned).collect();
            let is_string = lookup(&defaults, &path).is_some_and(toml::Value::is_str);
            set(&mut table, &path, env_value(&value, is_string))
                .map_err(|e| ConfigError::Invalid(format!("{name}: {e}")))?;
        }
        let config: Config = toml::Value::Table(table).try_into()?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        let c = &self.client;
        if c.ping_interval.subsec_nanos() != 0 {
            return invalid(
                "client.ping_interval must be whole seconds (clients are told it in seconds)",
            );
        }
        if !c.ping_interval.is_zero() && c.pong_timeout.is_zero() {
            return invalid("client.pong_timeout must be above zero when pings are on");
        }
        if c.max_frame_size < 1024 {
            return invalid("client.max_frame_size must be at least 1024 bytes");
        }
        if c.queue_max_messages == 0 || c.queue_max_size < c.max_frame_size {
            return invalid("client.queue_max_messages must be above zero and client.queue_max_size at least client.max_frame_size");
        }
        let s = &self.session;
        if !s.resume_grace.is_zero() && (s.journal_max_messages == 0 || s.journal_max_size == 0) {
            return invalid("session.journal_max_messages and session.journal_max_size must be above zero when resume is on");
        }
        self.channel
            .check()
            .map_err(|e| ConfigError::Invalid(format!("channel: {e}")))?;
        for ns in &self.namespaces {
            ns.options
                .check()
                .map_err(|e| ConfigError::Invalid(format!("namespace `{}`: {e}", ns.name)))?;
        }
        self.token.check().map_err(ConfigError::Invalid)?;
        if !self.api.key.is_empty() && self.api.key.len() < MIN_API_KEY_LEN {
            return Err(ConfigError::Invalid(format!(
                "api.key must be at least {MIN_API_KEY_LEN} bytes (it has {})",
                self.api.key.len()
            )));
        }
        self.secure.check().map_err(ConfigError::Invalid)?;
        self.sim.check().map_err(ConfigError::Invalid)?;
        // An exchange that may be replayed is checked with the replay's URLs in place, once the
        // recording is read ([`Config::replayed_exchanges`]).
        let r = &self.replay;
        self.exchanges
            .check(|name| r.enabled && (r.exchange.is_empty() || r.exchange == name))?;
        self.replay.check().map_err(ConfigError::Invalid)?;
        let mut names = std::collections::HashSet::new();
        for ns in &self.namespaces {
            if ns.name.is_empty() || ns.name.contains([':', '$', '#']) || !names.insert(&ns.name) {
                return Err(ConfigError::Invalid(format!(
                    "namespace `{}`: names must be unique, non-empty, without `:`, `$` or `#`",
                    ns.name
                )));
            }
        }
        Ok(())
    }

    /// What clients may do without a token, and how they get more: the start-up log line.
    pub fn access_summary(&self) -> String {
        let all = || {
            std::iter::once(("(no namespace)", &self.channel)).chain(
                self.namespaces
                    .iter()
                    .map(|n| (n.name.as_str(), &n.options)),
            )
        };
        let names = |pick: fn(&ChannelOptions) -> bool| {
            let names: Vec<&str> = all().filter(|(_, o)| pick(o)).map(|(n, _)| n).collect();
            if names.is_empty() {
                "nowhere".to_owned()
            } else {
                names.join(", ")
            }
        };
        let anonymous = if self.client.allow_anonymous {
            format!(
                "anonymous clients may read {} and publish {}",
                names(|o| o.allow_subscribe_for_client && o.allow_subscribe_for_anonymous),
                names(
                    |o| (o.allow_publish_for_client || o.allow_publish_for_subscriber)
                        && o.allow_publish_for_anonymous
                ),
            )
        } else {
            "anonymous clients may not connect".to_owned()
        };
        let t = &self.token;
        let keys: Vec<&str> = [
            (!t.hmac_secret.is_empty(), "HS256"),
            (!t.rsa_public_key.is_empty(), "RS256"),
            (!t.ecdsa_public_key.is_empty(), "ES256"),
            (!t.jwks_file.is_empty(), "JWKS"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        let tokens = if keys.is_empty() {
            "no token key is configured, so every token is refused".to_owned()
        } else {
            format!("anything more needs a token ({})", keys.join(", "))
        };
        let api = if self.api.key.is_empty() {
            "server API off"
        } else {
            "server API on"
        };
        format!("{anonymous}; {tokens}; {api}")
    }

    /// The secure transport's keys, read and checked: `None` when `secure.enabled` is off. Call
    /// it before any actor starts, so that a bad key stops the start (like the TLS and token
    /// keys).
    pub fn secure_keys(&self) -> Result<Option<KeyStore>, KeyStoreError> {
        if !self.secure.enabled {
            return Ok(None);
        }
        KeyStore::load(&self.secure).map(Some)
    }

    /// The exchanges' settings with `exchange` (the one `[replay]` plays) enabled and pointed at
    /// the replay's URLs, all checked.
    pub fn replayed_exchanges(
        &self,
        exchange: &str,
        ws_url: String,
        rest_url: String,
    ) -> Result<ExchangesSettings, ConfigError> {
        let mut e = self.exchanges.clone();
        match exchange {
            "binance" => {
                (e.binance.enabled, e.binance.ws_url, e.binance.rest_url) = (true, ws_url, rest_url)
            }
            "coinbase" => {
                (e.coinbase.enabled, e.coinbase.ws_url, e.coinbase.rest_url) =
                    (true, ws_url, rest_url)
            }
            "kraken" => {
                (e.kraken.enabled, e.kraken.ws_url, e.kraken.rest_url) = (true, ws_url, rest_url)
            }
            other => {
                return Err(ConfigError::Invalid(format!(
                    "replay: no exchange {other:?}"
                )))
            }
        }
        e.check(|_| false)?;
        Ok(e)
    }

    /// The channel rules the sessions enforce.
    pub fn channel_rules(&self) -> ChannelRules {
        ChannelRules::new(
            self.channel.clone(),
            &self.namespaces,
            self.client.channel_max_length,
        )
        .insecure(self.client.insecure)
    }
}

fn lookup<'a>(table: &'a toml::Table, path: &[String]) -> Option<&'a toml::Value> {
    let (last, parents) = path.split_last()?;
    let mut table = table;
    for key in parents {
        table = table.get(key)?.as_table()?;
    }
    table.get(last)
}

fn set(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut table = table;
    for key in parents {
        table = table
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("`{key}` is not a table"))?;
    }
    table.insert(last.clone(), value);
    Ok(())
}

fn env_value(text: &str, is_string: bool) -> toml::Value {
    if !is_string {
        if let Ok(mut parsed) = toml::from_str::<toml::Table>(&format!("v = {text}")) {
            if let Some(value) = parsed.remove("v") {
                return value;
            }
        }
    }
    toml::Value::String(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_short_api_key_is_refused_and_debug_shows_no_secret() {
        let short = Config::load(None, env(&[("RPC_CRYPTO_API__KEY", "0123456789")]));
        let error = short.unwrap_err().to_string();
        assert!(
            error.contains("api.key must be at least 32 bytes"),
            "{error}"
        );
        let api_key = "api-key-that-is-long-enough-0123456789";
        let hmac_secret = "hmac-secret-that-is-long-enough-0123456789";
        let config = Config::load(
            None,
            env(&[
                ("RPC_CRYPTO_API__KEY", api_key),
                ("RPC_CRYPTO_TOKEN__HMAC_SECRET", hmac_secret),
            ]),
        )
        .unwrap();
        let debug = format!("{config:?}");
        assert!(
            !debug.contains(api_key) && !debug.contains(hmac_secret),
            "{debug}"
        );
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn defaults_without_file_or_env() {
        let config = Config::load(None, env(&[("HOME", "/root")])).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(config.client.ping_interval, Duration::from_secs(25));
        assert!(config.namespaces.iter().any(|n| n.name == "ticker"));
    }

    #[test]
    fn env_overrides_nested_and_typed() {
        let config = Config::load(
            None,
            env(&[
                ("RPC_CRYPTO_LISTEN", "0.0.0.0:9000"),
                ("RPC_CRYPTO_CLIENT__PING_INTERVAL", "3s"),
                ("RPC_CRYPTO_CLIENT__MAX_FRAME_SIZE", "2048"),
                ("RPC_CRYPTO_LIMITS__MAX_SESSIONS", "5"),
                (
                    "RPC_CRYPTO_NAMESPACES",
                    "[{name = \"chat\", allow_publish_for_client = true}]",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(config.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(config.client.ping_interval, Duration::from_secs(3));
        assert_eq!(config.client.max_frame_size, 2048);
        assert_eq!(config.limits.max_sessions, 5);
        assert_eq!(config.namespaces.len(), 1);
        assert!(config.namespaces[0].options.allow_publish_for_client);
    }

    #[test]
    fn the_log_format_is_text_or_json() {
        use crate::logs::LogFormat;
        assert_eq!(Config::default().log.format, LogFormat::Text);
        let json = Config::load(None, env(&[("RPC_CRYPTO_LOG__FORMAT", "json")])).unwrap();
        assert_eq!(json.log.format, LogFormat::Json);
        let error = Config::load(None, env(&[("RPC_CRYPTO_LOG__FORMAT", "yaml")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown variant `yaml`"), "{error}");
    }

    #[test]
    fn unknown_and_invalid_options_are_errors() {
        assert!(Config::load(None, env(&[("RPC_CRYPTO_NOPE", "1")])).is_err());
        assert!(
            Config::load(None, env(&[("RPC_CRYPTO_CLIENT__PING_INTERVAL", "1500ms")])).is_err()
        );
        assert!(Config::load(
            None,
            env(&[("RPC_CRYPTO_NAMESPACES", "[{name = \"a:b\"}]")])
        )
        .is_err());
    }

    #[test]
    fn the_default_lets_anonymous_clients_read_market_channels_only() {
        assert_eq!(
            Config::default().access_summary(),
            "anonymous clients may read ticker, trades, book, ohlcv, rates and publish nowhere; \
             no token key is configured, so every token is refused; server API off"
        );
    }

    #[test]
    fn secure_is_off_by_default_and_needs_a_server_key_when_on() {
        let config = Config::load(None, Vec::new()).unwrap();
        assert!(!config.secure.enabled);
        assert!(config.secure_keys().unwrap().is_none());
        assert_eq!(config.secure.reload_interval, Duration::from_secs(10));

        let error = Config::load(None, env(&[("RPC_CRYPTO_SECURE__ENABLED", "true")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("secure.server_key_file"), "{error}");

        // Set, but the file does not exist: the settings pass, loading the keys does not.
        let config = Config::load(
            None,
            env(&[
                ("RPC_CRYPTO_SECURE__ENABLED", "true"),
                (
                    "RPC_CRYPTO_SECURE__SERVER_KEY_FILE",
                    "/nonexistent/server.pem",
                ),
                ("RPC_CRYPTO_SECURE__RELOAD_INTERVAL", "0s"),
            ]),
        )
        .unwrap();
        assert_eq!(
            config.secure.server_key_file.as_deref(),
            Some(Path::new("/nonexistent/server.pem"))
        );
        assert!(config.secure.reload_interval.is_zero());
        let error = config.secure_keys().unwrap_err().to_string();
        assert!(
            error.starts_with("secure.server_key_file /nonexistent/server.pem: "),
            "{error}"
        );
    }

    #[test]
    fn secure_settings_are_checked() {
        let load = |text: &str| {
            let table: toml::Table = toml::from_str(text).unwrap();
            let config: Config = toml::Value::Table(table).try_into()?;
            config.validate()?;
            Ok::<Config, ConfigError>(config)
        };
        let config = load(
            "[secure]\nhandshakes_per_address = 60\nhandshakes_per_address_burst = 1\n\
             handshakes_per_client = 0\nhandshakes_per_client_burst = 0\n\
             [secure.clients]\n\"alice.1\" = \"-----BEGIN PUBLIC KEY-----\"\n",
        )
        .unwrap();
        assert_eq!(config.secure.handshakes_per_address, 60);
        assert_eq!(config.secure.clients.len(), 1);

        for (text, expected) in [
            (
                "[secure]\nhandshakes_per_client_burst = 0\n",
                "secure.handshakes_per_client_burst",
            ),
            (
                "[secure]\nhandshakes_per_address_burst = 0\n",
                "secure.handshakes_per_address_burst",
            ),
            ("[secure]\nreload_interval = \"500ms\"\n", "reload_interval"),
            ("[secure.clients]\n\"a/b\" = \"\"\n", "not a client id"),
            ("[secure.clients]\n\"a b\" = \"\"\n", "not a client id"),
            ("[secure.clients]\n\"\" = \"\"\n", "not a client id"),
            ("[secure]\nheartbeat = 1\n", "unknown field"),
        ] {
            let error = match load(text) {
                Ok(_) => panic!("accepted: {text}"),
                Err(error) => error.to_string(),
            };
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn secure_summary_names_files_not_keys() {
        let mut secure = SecureSettings::default();
        assert_eq!(secure.summary(), "secure transport off");
        secure.enabled = true;
        secure.server_key_file = Some("/etc/rpc-crypto/server.key.pem".into());
        secure.clients.insert(
            "alice".to_owned(),
            "-----BEGIN PUBLIC KEY-----\nAAAA\n".to_owned(),
        );
        let summary = secure.summary();
        assert_eq!(
            summary,
            "secure transport on: server key /etc/rpc-crypto/server.key.pem, no clients_dir, \
             1 inline client key(s), reloaded on change (checked every 10s) and on SIGHUP; \
             handshakes per address 30/min burst 10, failed per client 12/min burst 5, 4 at once"
        );
    }

    #[test]
    fn the_example_config_is_the_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/rpc-crypto.toml");
        let example = Config::load(Some(&path), Vec::new()).unwrap();
        let as_toml = |c: &Config| toml::to_string(c).unwrap();
        assert_eq!(as_toml(&example), as_toml(&Config::default()));
    }
}
