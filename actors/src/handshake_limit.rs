//! Limits on the secure transport's handshakes: per remote address, per client id, and on the
//! RSA private-key operations running at once.
//!
//! Every handshake costs the server an RSA private-key operation, and the `rsa` crate's are not
//! constant time (RUSTSEC-2023-0071, "Marvin"): an attacker who can time many decryptions could
//! recover the server key. Limiting how often one address may try bounds that, and bounds the
//! CPU an attacker can burn:
//! - [`HandshakeLimiter::admit_address`] before decrypting handshake message 1 (it counts the
//!   attempt);
//! - [`HandshakeLimiter::rsa_slot`] next, still before any RSA work: at most
//!   `max_concurrent_handshakes` decryptions run at once, whatever the number of addresses (they
//!   run on the blocking pool, which would otherwise grow to 512 threads);
//! - [`HandshakeLimiter::client_may_try`] once message 1's client id is known: whether the id's
//!   budget still holds a token, **without spending one**;
//! - [`HandshakeLimiter::failed_proof`] when message 3's signature is wrong: that spends one.
//!
//! The per-client budget is spent only by failed proofs because message 1 proves nothing: it is
//! sealed to the server's *public* key, so anyone who knows a client id could otherwise spend
//! that client's budget and lock it out. A successful handshake spends nothing.
//!
//! Each rate is a token bucket: `burst` tokens at once, refilled at `rate` per minute. An
//! IPv6 address counts by its /64 network (one host usually holds a whole /64), an IPv4-mapped
//! IPv6 address as its IPv4 address.
//!
//! # Memory
//! Each table holds at most [`DEFAULT_MAX_ENTRIES`] keys. A bucket that has refilled completely
//! holds nothing a new bucket would not, so it is dropped by a sweep that runs whenever the
//! table has doubled since the last one (amortised O(1) per handshake), and at most once a second
//! while the table is full. When the table is still full, a key without a bucket is refused:
//! **the limiter fails closed**. Under a flood of distinct addresses, new addresses are refused
//! until buckets refill, while addresses already tracked keep their own budget. A client id gets
//! a bucket only from a failed proof, which only a client id with a key can reach, so that table
//! is bounded by the configured clients.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::settings::SecureSettings;

/// The most keys each table holds.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// The smallest table size at which a sweep runs.
const MIN_SWEEP_AT: usize = 1024;

/// How often a full table may be swept again.
const FULL_SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Debug builds only: a hello from the client id this variable names keeps its [`RsaSlot`]
/// until message 3 (or the connection's end), so that a test can hold the only slot for as long
/// as it needs (`tests/secure.rs`). Not `RPC_CRYPTO_`: that prefix is the config's.
#[cfg(debug_assertions)]
pub const TEST_HOLD_SLOT_ENV: &str = "TEST_RPC_CRYPTO_HOLD_RSA_SLOT";

/// Handshake limits, shared by every secure connection; cheap to clone. Its lock is taken
/// at most three times per handshake, never per frame.
#[derive(Clone)]
pub struct HandshakeLimiter {
    inner: Arc<Mutex<Tables>>,
    rsa_slots: Arc<Semaphore>,
    #[cfg(debug_assertions)]
    hold_slot_for: Option<Arc<str>>,
}

struct Tables {
    addresses: Buckets<IpAddr>,
    clients: Buckets<String>,
}

/// The right to run one RSA private-key operation; given back when dropped.
#[derive(Debug)]
pub struct RsaSlot {
    _permit: OwnedSemaphorePermit,
}

impl HandshakeLimiter {
    /// The limits of `settings` (`handshakes_per_address[_burst]`,
    /// `handshakes_per_client[_burst]`, per minute, a rate of 0 is no limit;
    /// `max_concurrent_handshakes`), with [`DEFAULT_MAX_ENTRIES`] keys per table.
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
            // The config check keeps it in 1..=512; 0 here would refuse every handshake.
            rsa_slots: Arc::new(Semaphore::new(settings.max_concurrent_handshakes)),
            #[cfg(debug_assertions)]
            hold_slot_for: std::env::var(TEST_HOLD_SLOT_ENV).ok().map(Arc::from),
        }
    }

    /// Whether a handshake from `ip` may go on now (and if so, counts it).
    pub fn admit_address(&self, ip: IpAddr, now: Instant) -> bool {
        self.lock().addresses.admit(address_key(ip), now)
    }

    /// A slot for one RSA private-key operation, if fewer than `max_concurrent_handshakes` are
    /// running. Never waits.
    pub fn rsa_slot(&self) -> Option<RsaSlot> {
        Arc::clone(&self.rsa_slots)
            .try_acquire_owned()
            .ok()
            .map(|permit| RsaSlot { _permit: permit })
    }

    /// Whether `client_id`'s budget holds a token now. Spends nothing: only
    /// [`HandshakeLimiter::failed_proof`] does.
    pub fn client_may_try(&self, client_id: &str, now: Instant) -> bool {
        self.lock().clients.has_token(client_id, now)
    }

    /// Spends a token of `client_id`'s budget: its handshake's message 3 was not signed by its
    /// key.
    pub fn failed_proof(&self, client_id: &str, now: Instant) {
        // An empty bucket stays empty; a full table drops the count, and then
        // `client_may_try` refuses the id anyway (it fails closed).
        self.lock().clients.admit(client_id.to_owned(), now);
    }

    /// Debug builds: whether a hello from `client_id` keeps its RSA slot until its handshake
    /// ends (`TEST_RPC_CRYPTO_HOLD_RSA_SLOT`). Release builds: never.
    pub fn holds_slot_for_test(&self, client_id: &str) -> bool {
        #[cfg(debug_assertions)]
        {
            self.hold_slot_for.as_deref() == Some(client_id)
        }
        #[cfg(not(debug_assertions))]
        {
            let _ = client_id;
            false
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keys tracked (addresses, client ids), for tests and figures.
    pub fn tracked(&self) -> (usize, usize) {
        let tables = self.lock();
        (tables.addresses.map.len(), tables.clients.map.len())
    }

    /// RSA slots free now, for tests and figures.
    pub fn free_rsa_slots(&self) -> usize {
        self.rsa_slots.available_permits()
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

    /// Whether `key` may take a token now, without taking it. A key without a bucket has a
    /// full one, unless the table is full (even after a sweep): then it fails closed, as
    /// [`Buckets::admit`] would.
    fn has_token<Q>(&mut self, key: &Q, now: Instant) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.per_second == 0.0 {
            return true;
        }
        if let Some(bucket) = self.map.get_mut(key) {
            bucket.refill(self.per_second, self.burst, now);
            return bucket.tokens >= 1.0;
        }
        if self.map.len() >= self.max_entries {
            self.sweep(now);
        }
        self.map.len() < self.max_entries
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
    fn handshake_limit_per_client_is_spent_by_failed_proofs_only() {
        let limiter = HandshakeLimiter::new(&settings((0, 0), (12, 5)));
        let t0 = Instant::now();
        // Asking spends nothing, and tracks nothing.
        for _ in 0..100 {
            assert!(limiter.client_may_try("alice", t0));
        }
        assert_eq!(limiter.tracked(), (0, 0));
        for _ in 0..5 {
            assert!(limiter.client_may_try("alice", t0));
            limiter.failed_proof("alice", t0);
        }
        assert!(!limiter.client_may_try("alice", t0));
        // A further failure does not push the bucket below empty.
        limiter.failed_proof("alice", t0);
        assert!(limiter.client_may_try("bob", t0));
        // 12 per minute: one every 5 s.
        assert!(limiter.client_may_try("alice", t0 + Duration::from_secs(5)));
        limiter.failed_proof("alice", t0 + Duration::from_secs(5));
        assert!(!limiter.client_may_try("alice", t0 + Duration::from_secs(6)));
        // Addresses unlimited and untracked.
        for _ in 0..1000 {
            assert!(limiter.admit_address(v4(1), t0));
        }
        assert_eq!(limiter.tracked(), (0, 1));
    }

    #[test]
    fn handshake_limit_full_client_table_fails_closed_for_untracked_ids() {
        let limiter = HandshakeLimiter::with_max_entries(&settings((0, 0), (60, 2)), 2);
        let t0 = Instant::now();
        limiter.failed_proof("a", t0);
        limiter.failed_proof("b", t0);
        // Full, and neither bucket is full again yet: an id without a bucket cannot be counted.
        assert!(!limiter.client_may_try("c", t0));
        limiter.failed_proof("c", t0);
        assert_eq!(limiter.tracked(), (0, 2));
        // Tracked ids keep their own budget.
        assert!(limiter.client_may_try("a", t0));
        // Two seconds on, both buckets are full again: swept, and "c" may try.
        assert!(limiter.client_may_try("c", t0 + Duration::from_secs(2)));
        assert_eq!(limiter.tracked(), (0, 0));
    }

    #[test]
    fn handshake_limit_rsa_slots_are_capped_and_given_back() {
        let limiter = HandshakeLimiter::new(&SecureSettings {
            max_concurrent_handshakes: 2,
            ..SecureSettings::default()
        });
        let first = limiter.rsa_slot().expect("a first slot");
        let second = limiter
            .clone()
            .rsa_slot()
            .expect("a second slot, from a clone");
        assert!(limiter.rsa_slot().is_none(), "a third while two run");
        assert_eq!(limiter.free_rsa_slots(), 0);
        drop(first);
        let third = limiter.rsa_slot().expect("a slot given back");
        drop((second, third));
        assert_eq!(limiter.free_rsa_slots(), 2);
    }

    #[test]
    fn handshake_limit_zero_rate_is_no_limit() {
        let limiter = HandshakeLimiter::new(&settings((0, 0), (0, 0)));
        let t0 = Instant::now();
        for _ in 0..10_000 {
            assert!(limiter.admit_address(v4(1), t0));
            limiter.failed_proof("alice", t0);
            assert!(limiter.client_may_try("alice", t0));
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
