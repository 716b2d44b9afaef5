//! Settings the actors run with, deserialized straight from the `[client]` and `[limits]` tables
//! of the config file. Option names follow Centrifugo's where it has one.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How each client connection behaves: heartbeats, sizes and queue bounds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientSettings {
    /// How often the server pings (an empty reply); whole seconds, `0s` turns pings off.
    #[serde(with = "duration")]
    pub ping_interval: Duration,
    /// How long the client has to answer a ping before disconnect 3012.
    #[serde(with = "duration")]
    pub pong_timeout: Duration,
    /// How long a connection may stay open without sending connect (then: disconnect 3502).
    #[serde(with = "duration")]
    pub stale_close_delay: Duration,
    /// The largest inbound WebSocket message, in bytes (larger: disconnect 3501).
    pub max_frame_size: usize,
    /// Messages queued for one client before it counts as slow (disconnect 3008).
    pub queue_max_messages: usize,
    /// Bytes queued for one client before it counts as slow (disconnect 3008).
    pub queue_max_size: usize,
    /// A connection whose sent data stays unacknowledged this long is dropped (TCP_USER_TIMEOUT).
    /// It frees what a client that stopped reading altogether holds, even after its session was
    /// ended: its session slot, its queue and its socket buffers.
    #[serde(with = "duration")]
    pub write_timeout: Duration,
    /// Subscriptions one client may hold (more: error 106).
    pub channel_limit: usize,
    /// The longest channel name, in bytes (longer: error 107).
    pub channel_max_length: usize,
    /// Clients may connect without a token, as anonymous users, and use what namespaces allow
    /// anonymous clients. Off: connect without credentials is refused with 3500.
    pub allow_anonymous: bool,
    /// DEVELOPMENT ONLY: every client may subscribe to, publish on and read every channel,
    /// private and user-limited ones included, and tokens are not required. Logs a warning.
    pub insecure: bool,
    /// Commands per second one connection may send, on average (0 = no limit). Past it each
    /// command is answered with error 111; a client that goes on is disconnected with 3013.
    pub command_rate: u32,
    /// Commands one connection may send at once above the rate.
    pub command_burst: u32,
    /// How long past its token's `exp` a session (or a subscription) may still refresh before
    /// it ends (disconnect 3005, or an `unsubscribe` push with 2501): the SDKs refresh at about
    /// `exp`, and this covers their round trip to the backend and clock skew.
    #[serde(with = "duration")]
    pub expired_close_delay: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(8),
            stale_close_delay: Duration::from_secs(10),
            max_frame_size: 64 * 1024,
            queue_max_messages: 4096,
            queue_max_size: 1024 * 1024,
            write_timeout: Duration::from_secs(30),
            channel_limit: 128,
            channel_max_length: 255,
            allow_anonymous: true,
            insecure: false,
            command_rate: 1000,
            command_burst: 2000,
            expired_close_delay: Duration::from_secs(25),
        }
    }
}

/// Limits on what clients can make the server hold: sessions (the Registry: seed 001's "no server
/// sessions available") and channels (the Router).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionLimits {
    /// Sessions in all; 0 means no limit.
    pub max_sessions: usize,
    /// Sessions from one IP address; 0 means no limit.
    pub max_sessions_per_address: usize,
    /// Sessions of one user (token `sub`) at once; 0 means no limit. More: disconnect 3504.
    pub max_sessions_per_user: usize,
    /// Channels the Router holds at most: channels with subscribers, and channels that keep
    /// history or a stream position. When full, the channels without subscribers that were used
    /// longest ago are forgotten first; a subscribe to a new channel when every one has
    /// subscribers gets error 1104.
    pub max_channels: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_sessions: 100_000,
            max_sessions_per_address: 1_000,
            max_sessions_per_user: 100,
            max_channels: 100_000,
        }
    }
}

/// Sessions that outlive their connection: a client that connects with `"resumable": true` can
/// come back within the grace period and get its subscriptions and every message it missed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// How long a resumable session waits for its client after the connection ends; `0s` turns
    /// resume off (`resumable` is then ignored).
    #[serde(with = "duration")]
    pub resume_grace: Duration,
    /// Sessions parked (waiting for their client) at most; when full, the one parked longest
    /// ends to make room.
    pub max_parked: usize,
    /// Messages a resumable session keeps after writing them, to write them again to a client
    /// that lost them with its connection.
    pub journal_max_messages: usize,
    /// Bytes of those messages kept at most.
    pub journal_max_size: usize,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            resume_grace: Duration::from_secs(60),
            max_parked: 1000,
            journal_max_messages: 1024,
            journal_max_size: 256 * 1024,
        }
    }
}

/// Channel history in all (each namespace bounds its own channels' history).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistorySettings {
    /// Bytes of history kept over all channels (publication data plus a fixed overhead each);
    /// past it the oldest publications of any channel are dropped first.
    pub max_size: usize,
}

impl Default for HistorySettings {
    fn default() -> Self {
        HistorySettings {
            max_size: 64 * 1024 * 1024,
        }
    }
}

/// The most `secure.max_concurrent_handshakes` may be: the threads of the blocking pool the
/// decryptions run on.
pub const MAX_CONCURRENT_HANDSHAKES_LIMIT: usize = 512;

/// The secure transport (seed 002, the cryptology client's protocol) on `/connection/secure`: an
/// RSA handshake, then AES frames. Keys are loaded by [`crate::secure_keys::KeyStore`] and
/// handshakes rate-limited by [`crate::handshake_limit::HandshakeLimiter`].
///
/// `Debug` lists the inline clients' ids, not their PEM text.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecureSettings {
    /// Serve the secure transport. Off by default: it needs a server key.
    pub enabled: bool,
    /// PEM file: the server's RSA private key (PKCS#8 `PRIVATE KEY` or PKCS#1
    /// `RSA PRIVATE KEY`, 2048 to 4096 bits, not encrypted). Required when `enabled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_key_file: Option<PathBuf>,
    /// A directory of client public keys, one PEM file per client named `<client id>.pem`
    /// (SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`). Other files are skipped with a warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clients_dir: Option<PathBuf>,
    /// How often the key files are checked for changes (and reloaded when they changed);
    /// `0s`: only on SIGHUP. SIGHUP always reloads.
    #[serde(with = "duration")]
    pub reload_interval: Duration,
    /// Handshakes one remote address may start per minute, on average (0 = no limit). An IPv6
    /// address counts by its /64 network.
    pub handshakes_per_address: u32,
    /// Handshakes one remote address may start at once above that rate.
    pub handshakes_per_address_burst: u32,
    /// Failed handshakes (message 3 not signed by the client's key) one client id may have per
    /// minute, on average (0 = no limit). Past it, the id's handshakes are refused until its
    /// budget refills; successful handshakes spend nothing.
    pub handshakes_per_client: u32,
    /// Failed handshakes one client id may have at once above that rate.
    pub handshakes_per_client_burst: u32,
    /// RSA private-key operations (handshake decryptions) running at once, over all
    /// connections; a handshake past it is refused with 4009 before any RSA work. 1 to
    /// [`MAX_CONCURRENT_HANDSHAKES_LIMIT`].
    pub max_concurrent_handshakes: usize,
    /// Client public keys in the config itself: client id → PEM text. An id may not also have a
    /// file in `clients_dir`.
    pub clients: BTreeMap<String, String>,
}

impl Default for SecureSettings {
    fn default() -> Self {
        SecureSettings {
            enabled: false,
            server_key_file: None,
            clients_dir: None,
            reload_interval: Duration::from_secs(10),
            handshakes_per_address: 30,
            handshakes_per_address_burst: 10,
            handshakes_per_client: 12,
            handshakes_per_client_burst: 5,
            max_concurrent_handshakes: 4,
            clients: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for SecureSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureSettings")
            .field("enabled", &self.enabled)
            .field("server_key_file", &self.server_key_file)
            .field("clients_dir", &self.clients_dir)
            .field("reload_interval", &self.reload_interval)
            .field("handshakes_per_address", &self.handshakes_per_address)
            .field(
                "handshakes_per_address_burst",
                &self.handshakes_per_address_burst,
            )
            .field("handshakes_per_client", &self.handshakes_per_client)
            .field(
                "handshakes_per_client_burst",
                &self.handshakes_per_client_burst,
            )
            .field("max_concurrent_handshakes", &self.max_concurrent_handshakes)
            .field("clients", &self.clients.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SecureSettings {
    /// Checks what can be checked without reading files: a server key file when enabled, valid
    /// inline client ids, a burst for every rate, a sensible reload interval. Reading and parsing
    /// the keys is [`crate::secure_keys::KeyStore::load`].
    pub fn check(&self) -> Result<(), String> {
        if self.enabled && self.server_key_file.is_none() {
            return Err(
                "secure.enabled needs secure.server_key_file (`rpc-crypto keygen` makes a key)"
                    .to_owned(),
            );
        }
        for id in self.clients.keys() {
            if !valid_client_id(id) {
                return Err(format!(
                    "secure.clients: `{}` is not a client id (1 to {} printable ASCII characters, \
                     no space, `/`, `#` or `,`)",
                    id.escape_debug(),
                    rpc_crypto_proto::secure::handshake::MAX_CLIENT_ID_LEN
                ));
            }
        }
        for (rate, burst, name) in [
            (
                self.handshakes_per_address,
                self.handshakes_per_address_burst,
                "handshakes_per_address",
            ),
            (
                self.handshakes_per_client,
                self.handshakes_per_client_burst,
                "handshakes_per_client",
            ),
        ] {
            if rate > 0 && burst == 0 {
                return Err(format!(
                    "secure.{name}_burst must be at least 1 when secure.{name} is above zero"
                ));
            }
        }
        if !(1..=MAX_CONCURRENT_HANDSHAKES_LIMIT).contains(&self.max_concurrent_handshakes) {
            return Err(format!(
                "secure.max_concurrent_handshakes must be 1 to {MAX_CONCURRENT_HANDSHAKES_LIMIT} \
                 (the blocking pool's size)"
            ));
        }
        if !self.reload_interval.is_zero() && self.reload_interval < Duration::from_secs(1) {
            return Err(
                "secure.reload_interval must be 0s (reload on SIGHUP only) or at least 1s"
                    .to_owned(),
            );
        }
        Ok(())
    }

    /// Where the keys come from and how handshakes are limited, for the start-up log line.
    /// Names files, never quotes them.
    pub fn summary(&self) -> String {
        if !self.enabled {
            return "secure transport off".to_owned();
        }
        let server = match &self.server_key_file {
            Some(path) => format!("server key {}", path.display()),
            None => "no server key".to_owned(),
        };
        let dir = match &self.clients_dir {
            Some(path) => format!("client keys in {}", path.display()),
            None => "no clients_dir".to_owned(),
        };
        let reload = if self.reload_interval.is_zero() {
            "reloaded on SIGHUP".to_owned()
        } else {
            format!(
                "reloaded on change (checked every {:?}) and on SIGHUP",
                self.reload_interval
            )
        };
        let rate = |per_minute: u32, burst: u32| {
            if per_minute == 0 {
                "unlimited".to_owned()
            } else {
                format!("{per_minute}/min burst {burst}")
            }
        };
        format!(
            "secure transport on: {server}, {dir}, {} inline client key(s), {reload}; \
             handshakes per address {}, failed per client {}, {} at once",
            self.clients.len(),
            rate(
                self.handshakes_per_address,
                self.handshakes_per_address_burst
            ),
            rate(self.handshakes_per_client, self.handshakes_per_client_burst),
            self.max_concurrent_handshakes,
        )
    }
}

/// A client id as the secure handshake accepts it (1 to
/// [`MAX_CLIENT_ID_LEN`](rpc_crypto_proto::secure::handshake::MAX_CLIENT_ID_LEN) bytes of
/// printable ASCII, no space), without `/` so that it can name a file, and a valid user name (no
/// `#` or `,`: the client id is its session's user, [`crate::channel::user_name_problem`]).
pub fn valid_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= rpc_crypto_proto::secure::handshake::MAX_CLIENT_ID_LEN
        && id.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
        && crate::channel::user_name_problem(id).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_max_concurrent_handshakes_is_1_to_512() {
        let with = |n| SecureSettings {
            max_concurrent_handshakes: n,
            ..SecureSettings::default()
        };
        assert_eq!(SecureSettings::default().max_concurrent_handshakes, 4);
        assert!(with(1).check().is_ok());
        assert!(with(MAX_CONCURRENT_HANDSHAKES_LIMIT).check().is_ok());
        for n in [0, MAX_CONCURRENT_HANDSHAKES_LIMIT + 1] {
            let error = with(n).check().unwrap_err();
            assert!(
                error.contains("secure.max_concurrent_handshakes"),
                "{error}"
            );
        }
    }
}

/// Durations in config: `"25s"`, `"500ms"`, `"2m"`, `"1h"`, or a bare number of seconds.
pub mod duration {
    use std::time::Duration;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        let ms = value.as_millis();
        if ms % 1000 == 0 {
            serializer.serialize_str(&format!("{}s", ms / 1000))
        } else {
            serializer.serialize_str(&format!("{ms}ms"))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Seconds(s) => Ok(Duration::from_secs(s)),
            Raw::Text(text) => parse(&text).map_err(D::Error::custom),
        }
    }

    /// Parses `"25s"`-style text.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a duration such as \"25s\" or \"500ms\""))?;
        let millis = match unit {
            "ms" => 1,
            "s" | "" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(format!("`{text}`: the unit must be ms, s, m or h")),
        };
        Ok(Duration::from_millis(number.saturating_mul(millis)))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn parses_units() {
            assert_eq!(parse("25s"), Ok(Duration::from_secs(25)));
            assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
            assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
            assert_eq!(parse("7"), Ok(Duration::from_secs(7)));
            assert!(parse("5 weeks").is_err());
            assert!(parse("s").is_err());
        }
    }
}
