//! Channel history: the recent publications of one channel, each at a stream position
//! (offset, epoch).
//!
//! Offsets count a channel's publications from 1. The epoch names one continuous run of the
//! stream: it is drawn at random when the stream is created, so it changes whenever continuity
//! is lost (for this in-memory history: at every restart, and when a stream idle past its
//! `history_meta_ttl` is forgotten). A position from another epoch can never be continued.
//!
//! [`Stream`] is a pure data structure; the Router owns one per channel with history and keeps
//! all of them within a global byte budget.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::RngCore;
use rpc_crypto_proto::json::JsonText;

/// What the Router accounts for a stream beyond its publications' data (the entry itself, the
/// channel's name and table slot), so that the byte budget bounds memory and not only payloads.
pub const ENTRY_OVERHEAD: usize = 48;

/// One publication kept in history.
#[derive(Debug, Clone)]
pub struct Entry {
    pub offset: u64,
    pub at: Instant,
    pub data: JsonText,
}

impl Entry {
    /// The bytes it counts against the history budget.
    pub fn cost(&self) -> usize {
        self.data.len() + ENTRY_OVERHEAD
    }
}

/// The bounds of one stream, from its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Publications kept.
    pub size: usize,
    /// How long each is kept.
    pub ttl: Duration,
}

/// What a recovery from a position finds.
#[derive(Debug)]
pub struct Recovery<'a> {
    /// The publications after the position that are still kept, oldest first.
    pub publications: Vec<&'a Entry>,
    /// Every publication after the position is among them (none was lost).
    pub recovered: bool,
}

/// A `history` query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Publications to return: `None` for all that are kept, `Some(0)` for only the position.
    pub limit: Option<usize>,
    /// Continue from this position (offset, epoch): publications after it, or before it when
    /// `reverse`.
    pub since: Option<(u64, String)>,
    /// Newest first.
    pub reverse: bool,
}

/// A position this stream cannot continue from: another epoch, or an offset it never reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unrecoverable position")]
pub struct Unrecoverable;

/// The history of one channel.
#[derive(Debug)]
pub struct Stream {
    epoch: String,
    /// The offset of the newest publication; 0 before the first.
    top: u64,
    entries: VecDeque<Entry>,
    /// When it was last published to or subscribed to.
    pub touched: Instant,
}

impl Stream {
    /// A new stream with a fresh random epoch.
    pub fn new(now: Instant) -> Stream {
        let mut bits = [0u8; 4];
        rand::thread_rng().fill_bytes(&mut bits);
        Stream {
            epoch: bits.iter().map(|b| format!("{b:02x}")).collect(),
            top: 0,
            entries: VecDeque::new(),
            touched: now,
        }
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The offset of the newest publication (0 before the first).
    pub fn top(&self) -> u64 {
        self.top
    }

    /// The offset of the oldest publication still kept.
    pub fn oldest(&self) -> Option<u64> {
        self.entries.front().map(|e| e.offset)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends a publication and returns its offset and the budget bytes that the size bound
    /// evicted (the new entry's own cost is the caller's to add).
    pub fn append(&mut self, data: JsonText, now: Instant, bounds: Bounds) -> (u64, usize) {
        self.top += 1;
        self.touched = now;
        self.entries.push_back(Entry {
            offset: self.top,
            at: now,
            data,
        });
        let mut freed = 0;
        while self.entries.len() > bounds.size {
            freed += self.pop_oldest().map_or(0, |e| e.cost());
        }
        (self.top, freed)
    }

    /// Drops publications older than the ttl; returns the budget bytes freed.
    pub fn expire(&mut self, now: Instant, ttl: Duration) -> usize {
        let mut freed = 0;
        while let Some(front) = self.entries.front() {
            if now.duration_since(front.at) < ttl {
                break;
            }
            freed += self.pop_oldest().map_or(0, |e| e.cost());
        }
        freed
    }

    /// Drops the oldest publication (the global budget's eviction).
    /// Drops every publication but keeps the position (epoch and top), so subscribers keep
    /// counting from where they are. Returns the cost and count freed.
    pub fn clear(&mut self) -> (usize, usize) {
        let freed = self.entries.iter().map(Entry::cost).sum();
        let count = self.entries.len();
        self.entries.clear();
        (freed, count)
    }

    pub fn pop_oldest(&mut self) -> Option<Entry> {
        self.entries.pop_front()
    }

    /// What a subscriber that last saw `offset` in `epoch` missed.
    pub fn recover(&self, offset: u64, epoch: &str) -> Recovery<'_> {
        if epoch != self.epoch || offset > self.top {
            return Recovery {
                publications: Vec::new(),
                recovered: false,
            };
        }
        let publications: Vec<&Entry> = self.after(offset).collect();
        let recovered = match publications.first() {
            Some(first) => first.offset == offset + 1,
            None => offset == self.top,
        };
        Recovery {
            publications,
            recovered,
        }
    }

    /// Answers a `history` query.
    pub fn query(&self, query: &Query) -> Result<Vec<&Entry>, Unrecoverable> {
        let limit = query.limit.unwrap_or(usize::MAX);
        let chosen: Vec<&Entry> = match (&query.since, query.reverse) {
            (None, false) => self.entries.iter().take(limit).collect(),
            (None, true) => self.entries.iter().rev().take(limit).collect(),
            (Some((offset, epoch)), reverse) => {
                if *epoch != self.epoch || *offset > self.top {
                    return Err(Unrecoverable);
                }
                if reverse {
                    self.entries
                        .iter()
                        .rev()
                        .skip_while(|e| e.offset >= *offset)
                        .take(limit)
                        .collect()
                } else {
                    self.after(*offset).take(limit).collect()
                }
            }
        };
        Ok(chosen)
    }

    /// Entries with an offset above `offset`, oldest first.
    fn after(&self, offset: u64) -> impl Iterator<Item = &Entry> {
        // Offsets are consecutive, so the first one after `offset` is found by arithmetic.
        let skip = match self.entries.front() {
            Some(front) if offset >= front.offset => (offset - front.offset + 1) as usize,
            _ => 0,
        };
        self.entries.iter().skip(skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds {
        size: 3,
        ttl: Duration::from_secs(10),
    };

    fn stream_with(n: u64) -> (Stream, Instant) {
        let now = Instant::now();
        let mut stream = Stream::new(now);
        for i in 1..=n {
            let data = JsonText::serialize(&i).unwrap();
            stream.append(data, now, BOUNDS);
        }
        (stream, now)
    }

    fn offsets(entries: &[&Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.offset).collect()
    }

    #[test]
    fn offsets_count_from_one_and_the_size_bound_evicts_the_oldest() {
        let (stream, _) = stream_with(5);
        assert_eq!(stream.top(), 5);
        assert_eq!(stream.oldest(), Some(3));
        assert_eq!(stream.epoch().len(), 8);
        assert_ne!(Stream::new(Instant::now()).epoch(), stream.epoch());
    }

    #[test]
    fn recovery_is_complete_only_without_a_gap() {
        let (stream, _) = stream_with(5);
        let epoch = stream.epoch().to_owned();
        let r = stream.recover(3, &epoch);
        assert!(r.recovered);
        assert_eq!(offsets(&r.publications), vec![4, 5]);
        let r = stream.recover(5, &epoch);
        assert!(r.recovered && r.publications.is_empty());
        // 2 is gone: what is kept comes back, but not as recovered.
        let r = stream.recover(1, &epoch);
        assert!(!r.recovered);
        assert_eq!(offsets(&r.publications), vec![3, 4, 5]);
        // Another epoch, or a position the stream never reached.
        assert!(!stream.recover(3, "other").recovered);
        let r = stream.recover(6, &epoch);
        assert!(!r.recovered && r.publications.is_empty());
    }

    #[test]
    fn queries_follow_limit_since_and_reverse() {
        let (stream, _) = stream_with(5);
        let epoch = stream.epoch().to_owned();
        let q = |limit, since: Option<u64>, reverse| Query {
            limit,
            since: since.map(|o| (o, epoch.clone())),
            reverse,
        };
        let run = |query: Query| offsets(&stream.query(&query).unwrap());
        assert_eq!(run(q(None, None, false)), vec![3, 4, 5]);
        assert_eq!(run(q(Some(2), None, false)), vec![3, 4]);
        assert_eq!(run(q(Some(2), None, true)), vec![5, 4]);
        assert_eq!(run(q(Some(0), None, false)), Vec::<u64>::new());
        assert_eq!(run(q(None, Some(3), false)), vec![4, 5]);
        assert_eq!(run(q(None, Some(5), true)), vec![4, 3]);
        assert_eq!(run(q(None, Some(0), false)), vec![3, 4, 5]);
        let future = q(None, Some(6), false);
        assert_eq!(stream.query(&future).unwrap_err(), Unrecoverable);
        let other_epoch = Query {
            since: Some((1, "nope".into())),
            ..Query::default()
        };
        assert_eq!(stream.query(&other_epoch).unwrap_err(), Unrecoverable);
    }

    #[test]
    fn the_ttl_expires_old_publications() {
        let (mut stream, now) = stream_with(2);
        assert_eq!(stream.expire(now + Duration::from_secs(1), BOUNDS.ttl), 0);
        let freed = stream.expire(now + BOUNDS.ttl, BOUNDS.ttl);
        assert_eq!(freed, 2 * (1 + ENTRY_OVERHEAD));
        assert!(stream.is_empty());
        // The position stays: the next publication continues it.
        assert_eq!(stream.top(), 2);
    }
}
