//! Rate limits on the secure transport's handshakes, per remote address and per client id.
//!
//! Every handshake costs the server an RSA private-key operation, and the `rsa` crate's are not
//! constant time (RUSTSEC-2023-0071, "Marvin"): an attacker who can time many decryptions could
//! recover the server key. Limiting how often one address, and one client id, may try bounds
//! that, and bounds the CPU an attacker can burn. Check [`HandshakeLimiter::admit_address`]
//! before decrypting handshake message 1, and [`HandshakeLimiter::admit_client`] once its client
//! id is known.
//!
//! Each limit is a token bucket: `burst` handshakes at once, refilled at `rate` per minute. An
//! IPv6 address counts by its /64 network (one host usually holds a whole /64), an IPv4-mapped
//! IPv6 address as its IPv4 address.
//!
//! # Memory
//! Each table holds at most [`DEFAULT_MAX_ENTRIES`] keys. A bucket that has refilled completely
//! holds nothing a new bucket would not, so it is dropped by a sweep that runs whenever the
//! table has doubled since the last one (amortised O(1) per handshake), and at most once a second
//! while the table is full. When the table is still full, a key without a bucket is refused:
//! **the limiter fails closed**. Under a flood of distinct addresses, new addresses are refused
//! until buckets refill, while addresses already tracked keep their own budget. Call
//! `admit_client` only for client ids that have a key (an unknown id is refused anyway), so
//! that table is bounded by the configured clients.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::settings::SecureSettings;

/// The most keys each table holds.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// The smallest table size at which a sweep runs.
const MIN_SWEEP_AT: usize = 1024;

/// How often a full table may be swept again.
const FULL_SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Handshake rate limits, shared by every secure connection; cheap to clone. Its lock is taken
/// once per check (twice per handshake), never per frame.
#[derive(Clone)]
pub struct HandshakeLimiter {
    inner: Arc<Mutex<Tables>>,
}

struct Tables {
    addresses: Buckets<IpAddr>,
    clients: Buckets<String>,
}

impl HandshakeLimiter {
    /// The limits of `settings` (`handshakes_per_address[_burst]`,
    /// `handshakes_per_client[_burst]`, per minute; a rate of 0 is no limit), with
    /// [`DEFAULT_MAX_ENTRIES`] keys per table.
    pub fn new(settings: &SecureSettings) -> Self {
        Self::with_max_entries(settings, DEFAULT_MAX_ENTRIES)
    }

    /// As [`HandshakeLimiter::new`], with at most `max_entries` keys per table.
    pub fn with_max_entries(settings: &SecureSettings, max_entries: usize) -> Self {
        HandshakeLimiter {
            inner: Arc::new(Mutex::new(Tables {
                addresses: Buckets::new(
                    settings.handshakes_per_address,
                    settings.handshakes_per_address_burst,
                    max_entries,
                ),
                clients: Buckets::new(
                    settings.handshakes_per_client,
                    settings.handshakes_per_client_burst,
                    max_entries,
                ),
            })),
        }
    }

    /// Whether a handshake from `ip` may go on now (and if so, counts it).
    pub fn admit_address(&self, ip: IpAddr, now: Instant) -> bool {
        self.lock().addresses.admit(address_key(ip), now)
    }

    /// Whether a handshake of `client_id` may go on now (and if so, counts it).
    pub fn admit_client(&self, client_id: &str, now: Instant) -> bool {
        let mut tables = self.lock();
        let clients = &mut tables.clients;
        if clients.per_second == 0.0 {
            return true;
        }
        // Looked up by `&str` first: no allocation for a client already tracked.
        if let Some(bucket) = clients.map.get_mut(client_id) {
            return bucket.take(clients.per_second, clients.burst, now);
        }
        clients.admit(client_id.to_owned(), now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keys tracked (addresses, client ids), for tests and figures.
    pub fn tracked(&self) -> (usize, usize) {
        let tables = self.lock();
        (tables.addresses.map.len(), tables.clients.map.len())
    }
}

impl std::fmt::Debug for HandshakeLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (addresses, clients) = self.tracked();
        f.debug_struct("HandshakeLimiter")
            .field("addresses", &addresses)
            .field("clients", &clients)
            .finish()
    }
}

/// The key an address is counted under: IPv4 as is, IPv4-mapped IPv6 as IPv4, other IPv6 by
/// /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(network))
            }
        },
    }
}

/// One table of token buckets.
struct Buckets<K> {
    /// Tokens added per second; 0 = no limit.
    per_second: f64,
    /// The bucket's size.
    burst: f64,
    max_entries: usize,
    map: HashMap<K, Bucket>,
    /// The table size at which the next sweep runs.
    sweep_at: usize,
    last_sweep: Option<Instant>,
}

/// A token bucket: `tokens` as of `updated`.
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    /// The tokens at `now`, at most `burst`.
    fn refill(&mut self, per_second: f64, burst: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(burst);
        // Never moves back: an earlier `now` does not refill twice.
        if now > self.updated {
            self.updated = now;
        }
    }

    /// Takes a token if there is one.
    fn take(&mut self, per_second: f64, burst: f64, now: Instant) -> bool {
        self.refill(per_second, burst, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Full at `now`: as good as no bucket.
    fn is_full(&self, per_second: f64, burst: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens + elapsed * per_second >= burst
    }
}

impl<K: Hash + Eq> Buckets<K> {
    fn new(per_minute: u32, burst: u32, max_entries: usize) -> Self {
        Buckets {
            per_second: f64::from(per_minute) / 60.0,
            // A rate with no burst would admit nothing; the config check refuses it anyway.
            burst: f64::from(burst.max(1)),
            max_entries,
            map: HashMap::new(),
            sweep_at: MIN_SWEEP_AT.min(max_entries),
            last_sweep: None,
        }
    }

    fn admit(&mut self, key: K, now: Instant) -> bool {
        if self.per_second == 0.0 {
            return true;
        }
        if let Some(bucket) = self.map.get_mut(&key) {
            return bucket.take(self.per_second, self.burst, now);
        }
        if self.map.len() >= self.sweep_at {
            self.sweep(now);
        }
        if self.map.len() >= self.max_entries {
            // Fail closed: no room to count this key.
            return false;
        }
        let mut bucket = Bucket {
            tokens: self.burst,
            updated: now,
        };
        let admitted = bucket.take(self.per_second, self.burst, now);
        self.map.insert(key, bucket);
        admitted
    }

    /// Drops full buckets: amortised when the table has doubled since the last sweep, at most
    /// once per [`FULL_SWEEP_EVERY`] when it is full.
    fn sweep(&mut self, now: Instant) {
        let full = self.map.len() >= self.max_entries;
        if full {
            if let Some(last) = self.last_sweep {
                if now.saturating_duration_since(last) < FULL_SWEEP_EVERY {
                    return;
                }
            }
        }
        let (per_second, burst) = (self.per_second, self.burst);
        self.map.retain(|_, b| !b.is_full(per_second, burst, now));
        self.last_sweep = Some(now);
        self.sweep_at = (self.map.len() * 2).max(MIN_SWEEP_AT).min(self.max_entries);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn settings(per_address: (u32, u32), per_client: (u32, u32)) -> SecureSettings {
        SecureSettings {
            handshakes_per_address: per_address.0,
            handshakes_per_address_burst: per_address.1,
            handshakes_per_client: per_client.0,
            handshakes_per_client_burst: per_client.1,
            ..SecureSettings::default()
        }
    }

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn handshake_limit_burst_then_rate_per_address() {
        // 30 per minute: one every 2 s, 10 at once.
        let limiter = HandshakeLimiter::new(&settings((30, 10), (0, 0)));
        let t0 = Instant::now();
        for i in 0..10 {
            assert!(limiter.admit_address(v4(1), t0), "burst {i}");
        }
        assert!(!limiter.admit_address(v4(1), t0));
        // Another address has its own bucket.
        assert!(limiter.admit_address(v4(2), t0));
        // 1.9 s later: not yet a token; 2 s: one.
        assert!(!limiter.admit_address(v4(1), t0 + Duration::from_millis(1900)));
        assert!(limiter.admit_address(v4(1), t0 + Duration::from_secs(2)));
        assert!(!limiter.admit_address(v4(1), t0 + Duration::from_secs(2)));
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..10 {
            assert!(limiter.admit_address(v4(1), later));
        }
        assert!(!limiter.admit_address(v4(1), later));
    }

    #[test]
    fn handshake_limit_per_client() {
        let limiter = HandshakeLimiter::new(&settings((0, 0), (12, 5)));
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(limiter.admit_client("alice", t0));
        }
        assert!(!limiter.admit_client("alice", t0));
        assert!(limiter.admit_client("bob", t0));
        // 12 per minute: one every 5 s.
        assert!(limiter.admit_client("alice", t0 + Duration::from_secs(5)));
        assert!(!limiter.admit_client("alice", t0 + Duration::from_secs(6)));
        // Addresses unlimited and untracked.
        for _ in 0..1000 {
            assert!(limiter.admit_address(v4(1), t0));
        }
        assert_eq!(limiter.tracked(), (0, 2));
    }

    #[test]
    fn handshake_limit_zero_rate_is_no_limit() {
        let limiter = HandshakeLimiter::new(&settings((0, 0), (0, 0)));
        let t0 = Instant::now();
        for _ in 0..10_000 {
            assert!(limiter.admit_address(v4(1), t0));
            assert!(limiter.admit_client("alice", t0));
        }
        assert_eq!(limiter.tracked(), (0, 0));
    }

    #[test]
    fn handshake_limit_ipv6_counts_by_64() {
        let limiter = HandshakeLimiter::new(&settings((60, 2), (0, 0)));
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(limiter.admit_address(a, t0));
        assert!(limiter.admit_address(b, t0));
        assert!(!limiter.admit_address(a, t0), "same /64");
        assert!(limiter.admit_address(other, t0));
        // IPv4-mapped: the IPv4 address's bucket.
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(limiter.admit_address(v4(1), t0));
        assert!(limiter.admit_address(mapped, t0));
        assert!(!limiter.admit_address(v4(1), t0));
    }

    #[test]
    fn handshake_limit_an_earlier_instant_does_not_refill() {
        let limiter = HandshakeLimiter::new(&settings((60, 1), (0, 0)));
        let t0 = Instant::now() + Duration::from_secs(10);
        assert!(limiter.admit_address(v4(1), t0));
        assert!(!limiter.admit_address(v4(1), t0 - Duration::from_secs(5)));
        assert!(!limiter.admit_address(v4(1), t0));
        assert!(limiter.admit_address(v4(1), t0 + Duration::from_secs(1)));
    }

    #[test]
    fn handshake_limit_full_table_prunes_full_buckets_then_fails_closed() {
        let max = 2000;
        let limiter = HandshakeLimiter::with_max_entries(&settings((60, 2), (0, 0)), max);
        let t0 = Instant::now();
        let addr = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        for i in 0..max as u32 {
            assert!(limiter.admit_address(addr(i), t0));
        }
        assert_eq!(limiter.tracked().0, max);
        // Full, and every bucket still has a token taken: a new address is refused.
        assert!(!limiter.admit_address(addr(max as u32), t0));
        assert!(!limiter.admit_address(addr(max as u32 + 1), t0 + Duration::from_secs(1) / 2));
        // Known addresses keep their own budget meanwhile.
        assert!(limiter.admit_address(addr(0), t0));
        // One second later the untouched buckets are full again: swept, room for new ones.
        let t1 = t0 + Duration::from_secs(1);
        assert!(limiter.admit_address(addr(max as u32), t1));
        // addr(0) was used twice, so it was not full and was kept; the rest went.
        assert_eq!(limiter.tracked().0, 2);
        assert!(limiter.admit_address(addr(0), t1));
        assert!(!limiter.admit_address(addr(0), t1));
    }

    #[test]
    fn handshake_limit_sweeps_as_the_table_grows() {
        let limiter = HandshakeLimiter::new(&settings((60, 5), (0, 0)));
        let t0 = Instant::now();
        // Distinct addresses, each once, a second apart in groups: old buckets refill and go.
        for i in 0..10_000u32 {
            let now = t0 + Duration::from_secs(u64::from(i / 100));
            assert!(limiter.admit_address(IpAddr::V4(Ipv4Addr::from(i)), now));
        }
        let tracked = limiter.tracked().0;
        assert!(tracked < 2 * MIN_SWEEP_AT + 100, "{tracked} tracked");
    }

    #[test]
    fn handshake_limit_clones_share_the_tables() {
        let limiter = HandshakeLimiter::new(&settings((60, 1), (0, 0)));
        let clone = limiter.clone();
        let t0 = Instant::now();
        assert!(limiter.admit_address(v4(1), t0));
        assert!(!clone.admit_address(v4(1), t0));
        assert_eq!(
            format!("{clone:?}"),
            "HandshakeLimiter { addresses: 1, clients: 0 }"
        );
    }
}
