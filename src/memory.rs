//! Giving freed memory back to the system after a crowd of clients left.
//!
//! glibc's malloc keeps what the program frees and gives back to the system only the free top of
//! each heap. A connection storm fills the worker threads' arenas with what each connection holds
//! (actix-http's read and write buffers, 16 KiB each, the WebSocket and the Session state); once
//! the clients leave those chunks are free, but a few live ones above them pin the heaps, so RSS
//! stays at the storm's peak, and each later storm touches more of the free pages. Measured with
//! 2,000 clients: RSS 10 → 43 MB, still 43 MB after they left with 2.7 MB in use; six storms 43,
//! 53, 57, 58, 58.5, 58.8 MB. glibc's trim threshold does not help: it only concerns the top.
//! `malloc_trim(0)` gives back every whole free page of every arena: 43 → 12 MB, in 3 ms.
//!
//! It walks every arena under its lock, so it runs only after a fall: when what holds memory —
//! open HTTP connections and parked sessions — is at most half of its high mark since the last
//! trim and at least [`MIN_FALL`] fewer, looked at every [`CHECK_INTERVAL`]: after a storm, not on
//! ordinary churn. Connections are counted rather than sessions because a connection outlives
//! its session (by up to actix-web's 1 s client disconnect timeout when the client closed), and
//! its buffers go only with it. Between two trims the free memory held is then at most about
//! what the connections still open use, or [`MIN_FALL`] connections' worth. Elsewhere than on
//! glibc it does nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use rpc_crypto_actors::registry::{CountSessions, Registry};

/// How often the connections and parked sessions are counted.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The fewest connections or parked sessions gone (about 17 KB of RSS each) worth a trim.
pub const MIN_FALL: usize = 256;

/// Counts the open HTTP connections: each holds actix-http's buffers until it is dropped, which
/// is after its session ended.
#[derive(Clone, Default)]
pub struct Connections(Arc<Counts>);

#[derive(Default)]
struct Counts {
    open: AtomicUsize,
    /// The most open at once since [`Connections::take_high`] last looked.
    high: AtomicUsize,
}

/// One open connection, counted until it is dropped (kept in the connection's extensions).
pub struct OpenConnection(Arc<Counts>);

impl Connections {
    /// Counts a connection that just opened.
    pub fn opened(&self) -> OpenConnection {
        let open = self.0.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.0.high.fetch_max(open, Ordering::Relaxed);
        OpenConnection(self.0.clone())
    }

    /// The connections open now.
    pub fn open(&self) -> usize {
        self.0.open.load(Ordering::Relaxed)
    }

    /// The most connections open at once since the last call, and starts again from now.
    fn take_high(&self) -> usize {
        let open = self.open();
        self.0.high.swap(open, Ordering::Relaxed).max(open)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether what holds memory (connections, parked sessions) fell enough since the last trim that
/// the memory it left is worth giving back.
#[derive(Debug, Default)]
pub struct Fall {
    /// The most seen since the last trim.
    high: usize,
}

impl Fall {
    /// Notes the most seen since the last note (`peak`) and the count now; true when the count has
    /// fallen to at most half of the high mark and by at least [`MIN_FALL`] (the high mark then
    /// starts again from here).
    pub fn note(&mut self, peak: usize, now: usize) -> bool {
        self.high = self.high.max(peak).max(now);
        let fell = self.high - now >= MIN_FALL && now <= self.high / 2;
        if fell {
            self.high = now;
        }
        fell
    }
}

/// Every [`CHECK_INTERVAL`], looks at the connections and the parked sessions (asking the
/// Registry) and trims after a fall.
pub struct MemoryReleaser {
    connections: Connections,
    registry: Addr<Registry>,
    fall: Fall,
}

impl MemoryReleaser {
    pub fn new(connections: Connections, registry: Addr<Registry>) -> Self {
        MemoryReleaser {
            connections,
            registry,
            fall: Fall::default(),
        }
    }
}

impl Actor for MemoryReleaser {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if !TRIMS {
            return;
        }
        ctx.run_interval(CHECK_INTERVAL, |releaser, ctx| {
            let ask = releaser.registry.send(CountSessions);
            ctx.wait(ask.into_actor(releaser).map(|answer, releaser, _| {
                let Ok((_, parked)) = answer else {
                    return;
                };
                let peak = releaser.connections.take_high() + parked;
                let now = releaser.connections.open() + parked;
                let high = releaser.fall.high.max(peak);
                if releaser.fall.note(peak, now) {
                    // Off the actor threads: the walk holds each arena's lock while it runs.
                    actix_web::rt::task::spawn_blocking(move || trim(high, now));
                }
            }));
        });
    }
}

/// Whether this build can give memory back.
const TRIMS: bool = cfg!(all(target_os = "linux", target_env = "gnu"));

fn trim(high: usize, now: usize) {
    let before = resident_kib();
    let started = Instant::now();
    release_free_pages();
    log::info!(
        "connections and parked sessions fell from {high} to {now}: free memory given back, \
         RSS {} → {} KiB in {} ms",
        before.unwrap_or(0),
        resident_kib().unwrap_or(0),
        started.elapsed().as_millis()
    );
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_pages() {
    // SAFETY: malloc_trim only reads and updates the allocator's own state, under its locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_pages() {}

/// This process's resident memory, for the log line.
fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storm_that_leaves_is_a_fall() {
        let mut fall = Fall::default();
        assert!(!fall.note(10, 10));
        assert!(!fall.note(2010, 2010));
        assert!(!fall.note(2010, 1500), "a quarter gone is churn");
        assert!(fall.note(1500, 10));
        assert!(!fall.note(10, 10), "once per fall");
    }

    #[test]
    fn a_storm_between_two_looks_counts() {
        let mut fall = Fall::default();
        assert!(!fall.note(5, 5));
        assert!(
            fall.note(2005, 5),
            "2,000 came and went within one interval"
        );
    }

    #[test]
    fn a_small_fall_is_not_worth_a_trim() {
        let mut fall = Fall::default();
        fall.note(300, 300);
        assert!(!fall.note(300, 100), "200 gone");
        assert!(fall.note(400, 100), "300 gone, three quarters");
    }

    #[test]
    fn the_high_mark_starts_again_after_a_trim() {
        let mut fall = Fall::default();
        assert!(fall.note(5000, 1000));
        assert!(!fall.note(1000, 600), "from 1000, not from 5000");
        assert!(fall.note(3000, 1400));
    }

    #[test]
    fn connections_are_counted_until_dropped() {
        let connections = Connections::default();
        let held: Vec<OpenConnection> = (0..3).map(|_| connections.opened()).collect();
        assert_eq!(connections.open(), 3);
        drop(held);
        assert_eq!(connections.open(), 0);
        assert_eq!(
            connections.take_high(),
            3,
            "the most at once since the last look"
        );
        assert_eq!(connections.take_high(), 0);
    }
}
