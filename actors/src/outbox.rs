//! The bounded queue of encoded items waiting to be written to one client.
//!
//! Producers (the Router fanning out publications, the session answering commands) push shared
//! [`Bytes`] items without a lock or an allocation of their own: a bounded tokio channel, plus an
//! atomic count of queued bytes. A push that would pass either bound fails, and the producer
//! treats the client as slow (disconnect 3008), so one stalled reader never holds more than
//! `queue_max_messages` items or `queue_max_size` bytes, and never slows anyone else.
//!
//! The consumer, [`OutboxStream`], drains everything queued at once into one frame: JSON lines
//! joined by `\n`, or concatenated length-prefixed Protobuf messages. It numbers the items it
//! drains (the message ids of `session.status` and of resume) and, for a resumable session, keeps
//! the most recent ones in a bounded [`Journal`] so they can be written again to a client that
//! lost them with its connection.
//!
//! A resumable session outlives its connection: the queue and its consumer move to the Registry
//! while the session is parked (the Router keeps queueing into it) and on to the connection that
//! resumes it. [`SharedOutboxStream`] is the handle the connection's actor polls meanwhile.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use rpc_crypto_proto::codec::{append_item, Format};
use tokio::sync::mpsc;

/// The most items coalesced into one frame; the rest go in the next. A frame is never larger
/// than the queue's byte bound plus one `\n` per item.
const MAX_ITEMS_PER_FRAME: usize = 1024;

/// Why an item could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("the client's queue is full")]
    Full,
    #[error("the client is gone")]
    Closed,
}

struct Shared {
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    closed: AtomicBool,
    /// A push found the queue full: an item was refused, so the stream has a gap.
    overflowed: AtomicBool,
}

/// The producer side; cheap to clone (two reference counts).
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Bytes>,
    shared: Arc<Shared>,
}

/// The consumer side: a stream of ready-to-write frames.
pub struct OutboxStream {
    rx: mpsc::Receiver<Bytes>,
    shared: Arc<Shared>,
    format: Format,
    drained: Vec<Bytes>,
    /// Items drained so far: the id of the last one.
    sent: u64,
    journal: Option<Journal>,
}

/// The most recent items drained, by id, within a count and a byte bound.
///
/// After a resume it keeps more: a resumed connection is written the replay and everything queued
/// while the session was parked at once, and may drop before the client reads any of it. So from
/// the resume's `last_received` on, items the client has not acknowledged (by a pong, or by the
/// `last_received` of its next resume) are kept past the journal's own bounds, up to those plus
/// the queue's: a connection that drops again, however often, is still resumed whole as long as
/// what the client has not read fits in them.
#[derive(Debug)]
pub struct Journal {
    items: VecDeque<(u64, Bytes)>,
    bytes: usize,
    max_items: usize,
    max_bytes: usize,
    /// The bounds for items after `unacknowledged_after`.
    hard_max_items: usize,
    hard_max_bytes: usize,
    /// Set by a resume: the client has acknowledged items up to this id and no further.
    unacknowledged_after: Option<u64>,
}

/// Why a replay cannot give a client exactly what it missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("messages after the client's last received one are no longer held")]
    Gap,
    #[error("the client claims a message that was never sent")]
    Ahead,
}

impl Journal {
    fn new(
        max_items: usize,
        max_bytes: usize,
        hard_max_items: usize,
        hard_max_bytes: usize,
    ) -> Journal {
        Journal {
            items: VecDeque::new(),
            bytes: 0,
            max_items,
            max_bytes,
            hard_max_items: hard_max_items.max(max_items),
            hard_max_bytes: hard_max_bytes.max(max_bytes),
            unacknowledged_after: None,
        }
    }

    fn record(&mut self, id: u64, item: &Bytes) {
        self.items.push_back((id, item.clone()));
        self.bytes += item.len();
        self.trim();
    }

    /// Drops the oldest items while over the bounds: the journal's own for items the client
    /// acknowledged, the hard ones for the others.
    fn trim(&mut self) {
        while let Some((oldest, item)) = self.items.front() {
            let acknowledged = self
                .unacknowledged_after
                .map_or(true, |after| *oldest <= after);
            let over = if acknowledged {
                self.items.len() > self.max_items || self.bytes > self.max_bytes
            } else {
                self.items.len() > self.hard_max_items || self.bytes > self.hard_max_bytes
            };
            if !over {
                break;
            }
            self.bytes -= item.len();
            self.items.pop_front();
        }
    }

    /// The client has received every item up to `id`.
    fn acknowledge(&mut self, id: u64) {
        if let Some(after) = self.unacknowledged_after.as_mut() {
            *after = (*after).max(id);
        }
        self.trim();
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// One frame to write, made of `items` wire messages.
#[derive(Debug)]
pub struct OutboundFrame {
    pub bytes: Bytes,
    pub items: u64,
    /// The id of the frame's first item; the others follow one by one.
    pub first: u64,
}

/// A queue bounded at `max_messages` items and `max_bytes` bytes.
pub fn outbox(format: Format, max_messages: usize, max_bytes: usize) -> (Outbox, OutboxStream) {
    let (tx, rx) = mpsc::channel(max_messages.max(1));
    let shared = Arc::new(Shared {
        queued_bytes: AtomicUsize::new(0),
        max_bytes,
        closed: AtomicBool::new(false),
        overflowed: AtomicBool::new(false),
    });
    (
        Outbox {
            tx,
            shared: shared.clone(),
        },
        OutboxStream {
            rx,
            shared,
            format,
            drained: Vec::new(),
            sent: 0,
            journal: None,
        },
    )
}

impl Outbox {
    /// Queues one encoded item.
    pub fn push(&self, item: Bytes) -> Result<(), PushError> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(PushError::Closed);
        }
        let len = item.len();
        let before = self.shared.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if before + len > self.shared.max_bytes {
            self.shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.shared.overflowed.store(true, Ordering::Relaxed);
            return Err(PushError::Full);
        }
        self.tx.try_send(item).map_err(|e| {
            self.shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            match e {
                mpsc::error::TrySendError::Full(_) => {
                    self.shared.overflowed.store(true, Ordering::Relaxed);
                    PushError::Full
                }
                mpsc::error::TrySendError::Closed(_) => PushError::Closed,
            }
        })
    }

    /// Whether an item was ever refused because the queue was full.
    pub fn overflowed(&self) -> bool {
        self.shared.overflowed.load(Ordering::Relaxed)
    }

    /// Stops taking items; the stream ends once what is queued has been drained.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Relaxed);
    }

    /// Bytes queued and not yet drained.
    /// Items queued and not yet drained.
    pub fn queued_items(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    pub fn queued_bytes(&self) -> usize {
        self.shared.queued_bytes.load(Ordering::Relaxed)
    }
}

impl OutboxStream {
    /// Keeps the last `max_items` items drained (at most `max_bytes`) for [`Self::replay`]; after
    /// a resume, up to `hard_max_items` and `hard_max_bytes` that the client has not acknowledged
    /// ([`Journal`]).
    pub fn keep_journal(
        &mut self,
        max_items: usize,
        max_bytes: usize,
        hard_max_items: usize,
        hard_max_bytes: usize,
    ) {
        if self.journal.is_none() {
            self.journal = Some(Journal::new(
                max_items,
                max_bytes,
                hard_max_items,
                hard_max_bytes,
            ));
        }
    }

    /// A resume from `last_received`: what comes after it stays in the journal until the client
    /// acknowledges it ([`Self::acknowledge`]) or its next resume says how far it got.
    pub fn resumed_from(&mut self, last_received: u64) {
        if let Some(journal) = self.journal.as_mut() {
            journal.unacknowledged_after = Some(last_received);
            journal.trim();
        }
    }

    /// The client has received every item up to `id` (it answered a ping written after it).
    pub fn acknowledge(&mut self, id: u64) {
        if let Some(journal) = self.journal.as_mut() {
            journal.acknowledge(id);
        }
    }

    /// Numbers the items of a stream that has drained nothing yet from `last + 1`, so that a
    /// client that saw ids up to `last` under an earlier session never sees them reused.
    pub fn start_after(&mut self, last: u64) {
        if self.sent == 0 {
            self.sent = last;
        }
    }

    /// The id of the last item drained (items are numbered from 1).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Bytes held by the journal.
    pub fn journal_bytes(&self) -> usize {
        self.journal.as_ref().map_or(0, Journal::bytes)
    }

    /// The items drained after `last_received`, for a client that received everything up to it:
    /// one frame, or `None` when it missed nothing. Items still queued follow in later frames.
    pub fn replay(&self, last_received: u64) -> Result<Option<Bytes>, ReplayError> {
        if last_received > self.sent {
            return Err(ReplayError::Ahead);
        }
        if last_received == self.sent {
            return Ok(None);
        }
        let journal = self.journal.as_ref().ok_or(ReplayError::Gap)?;
        let first = journal.items.front().map_or(u64::MAX, |(id, _)| *id);
        if first > last_received + 1 {
            return Err(ReplayError::Gap);
        }
        let skip = (last_received + 1 - first) as usize;
        let mut frame = BytesMut::new();
        for (_, item) in journal.items.iter().skip(skip) {
            append_item(self.format, &mut frame, item);
        }
        Ok(Some(frame.freeze()))
    }
}

/// An [`OutboxStream`] that a connection's actor polls while another owner can take it back
/// (to park the session) when the connection ends. Actors run on one thread, hence `Rc`.
#[derive(Clone)]
pub struct SharedOutboxStream(Rc<RefCell<Option<OutboxStream>>>);

impl SharedOutboxStream {
    pub fn new(stream: OutboxStream) -> Self {
        SharedOutboxStream(Rc::new(RefCell::new(Some(stream))))
    }

    /// Takes the stream out; the handle then stays pending forever.
    pub fn take(&self) -> Option<OutboxStream> {
        self.0.borrow_mut().take()
    }

    /// Puts a stream in (the one of a resumed session).
    pub fn put(&self, stream: OutboxStream) {
        *self.0.borrow_mut() = Some(stream);
    }

    /// Runs `f` on the stream, if it is still here.
    pub fn with<T>(&self, f: impl FnOnce(&mut OutboxStream) -> T) -> Option<T> {
        self.0.borrow_mut().as_mut().map(f)
    }
}

impl Stream for SharedOutboxStream {
    type Item = OutboundFrame;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<OutboundFrame>> {
        match self.0.borrow_mut().as_mut() {
            Some(stream) => Pin::new(stream).poll_next(cx),
            None => Poll::Pending,
        }
    }
}

impl Stream for OutboxStream {
    type Item = OutboundFrame;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<OutboundFrame>> {
        let this = self.get_mut();
        this.drained.clear();
        match this
            .rx
            .poll_recv_many(cx, &mut this.drained, MAX_ITEMS_PER_FRAME)
        {
            Poll::Ready(0) => return Poll::Ready(None),
            Poll::Ready(_) => {}
            Poll::Pending => {
                // Closing: end the stream once nothing is left.
                return if this.shared.closed.load(Ordering::Relaxed) {
                    Poll::Ready(None)
                } else {
                    Poll::Pending
                };
            }
        }
        let total: usize = this.drained.iter().map(Bytes::len).sum();
        this.shared.queued_bytes.fetch_sub(total, Ordering::Relaxed);
        if let Some(journal) = this.journal.as_mut() {
            for (n, item) in this.drained.iter().enumerate() {
                journal.record(this.sent + 1 + n as u64, item);
            }
        }
        let first = this.sent + 1;
        this.sent += this.drained.len() as u64;
        if this.drained.len() == 1 {
            let bytes = this.drained.pop().expect("one item");
            return Poll::Ready(Some(OutboundFrame {
                bytes,
                items: 1,
                first,
            }));
        }
        let mut frame = BytesMut::with_capacity(total + this.drained.len());
        let items = this.drained.len() as u64;
        for item in this.drained.drain(..) {
            append_item(this.format, &mut frame, &item);
        }
        Poll::Ready(Some(OutboundFrame {
            bytes: frame.freeze(),
            items,
            first,
        }))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[tokio::test]
    async fn coalesces_everything_queued_into_one_frame() {
        let (outbox, mut stream) = outbox(Format::Json, 8, 1024);
        outbox.push(Bytes::from_static(b"{\"id\":1}")).unwrap();
        outbox.push(Bytes::from_static(b"{}")).unwrap();
        let frame = stream.next().await.unwrap();
        assert_eq!(&frame.bytes[..], b"{\"id\":1}\n{}");
        assert_eq!(frame.items, 2);
        assert_eq!(outbox.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn bounded_by_messages_and_by_bytes() {
        let (outbox_a, _keep_a) = outbox(Format::Protobuf, 2, 1024);
        outbox_a.push(Bytes::from_static(&[0])).unwrap();
        outbox_a.push(Bytes::from_static(&[0])).unwrap();
        assert_eq!(
            outbox_a.push(Bytes::from_static(&[0])),
            Err(PushError::Full)
        );

        let (outbox_b, _keep_b) = outbox(Format::Protobuf, 100, 10);
        outbox_b.push(Bytes::from(vec![0; 8])).unwrap();
        assert_eq!(outbox_b.push(Bytes::from(vec![0; 3])), Err(PushError::Full));
        assert_eq!(outbox_b.queued_bytes(), 8);
        outbox_b.push(Bytes::from(vec![0; 2])).unwrap();
    }

    #[tokio::test]
    async fn close_drains_then_ends() {
        let (outbox, mut stream) = outbox(Format::Json, 8, 1024);
        outbox.push(Bytes::from_static(b"{}")).unwrap();
        outbox.close();
        assert_eq!(
            outbox.push(Bytes::from_static(b"{}")),
            Err(PushError::Closed)
        );
        assert_eq!(stream.next().await.unwrap().items, 1);
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn after_a_resume_the_journal_keeps_what_the_client_has_not_acknowledged() {
        let (outbox, mut stream) = outbox(Format::Json, 16, 1024);
        stream.keep_journal(2, 1024, 6, 1024);
        let mut next = 0;
        let mut write = |outbox: &Outbox, n: usize| {
            for _ in 0..n {
                next += 1;
                outbox.push(Bytes::from(format!("{next}"))).unwrap();
            }
        };
        write(&outbox, 3);
        assert_eq!(stream.next().await.unwrap().items, 3);
        // Before any resume: the journal's own bound, the last 2.
        assert_eq!(stream.replay(0), Err(ReplayError::Gap));
        assert!(stream.replay(1).is_ok());
        // Resumed from 1: what comes after it is kept past 2 items, up to 6.
        stream.resumed_from(1);
        write(&outbox, 4);
        assert_eq!(stream.next().await.unwrap().items, 4);
        assert_eq!(&stream.replay(1).unwrap().unwrap()[..], b"2\n3\n4\n5\n6\n7");
        // Past the hard bound the oldest unacknowledged item goes: a resume from 1 is a gap.
        write(&outbox, 1);
        stream.next().await.unwrap();
        assert_eq!(stream.replay(1), Err(ReplayError::Gap));
        assert!(stream.replay(2).is_ok());
        // A pong acknowledging 7: the journal's own bound applies to everything up to it.
        stream.acknowledge(7);
        assert_eq!(stream.replay(5), Err(ReplayError::Gap));
        assert_eq!(&stream.replay(6).unwrap().unwrap()[..], b"7\n8");
    }

    #[tokio::test]
    async fn the_journal_replays_exactly_what_follows_the_last_received_id() {
        let (outbox, mut stream) = outbox(Format::Json, 16, 1024);
        stream.keep_journal(3, 1024, 3, 1024);
        for item in ["{\"a\":1}", "{\"a\":2}", "{\"a\":3}", "{\"a\":4}"] {
            outbox.push(Bytes::from(item)).unwrap();
        }
        assert_eq!(stream.next().await.unwrap().items, 4);
        assert_eq!(stream.sent(), 4);
        assert_eq!(stream.replay(4), Ok(None));
        let frame = stream.replay(2).unwrap().unwrap();
        assert_eq!(&frame[..], b"{\"a\":3}\n{\"a\":4}");
        assert_eq!(
            &stream.replay(1).unwrap().unwrap()[..],
            b"{\"a\":2}\n{\"a\":3}\n{\"a\":4}"
        );
        // Only three are kept.
        assert_eq!(stream.replay(0), Err(ReplayError::Gap));
        assert_eq!(stream.replay(5), Err(ReplayError::Ahead));
    }

    #[tokio::test]
    async fn a_refused_push_marks_the_queue_as_overflowed() {
        let (outbox, _stream) = outbox(Format::Json, 1, 1024);
        outbox.push(Bytes::from_static(b"{}")).unwrap();
        assert!(!outbox.overflowed());
        assert_eq!(outbox.push(Bytes::from_static(b"{}")), Err(PushError::Full));
        assert!(outbox.overflowed());
    }

    #[tokio::test]
    async fn gone_consumer_is_closed() {
        let (outbox, stream) = outbox(Format::Json, 8, 1024);
        drop(stream);
        assert_eq!(
            outbox.push(Bytes::from_static(b"{}")),
            Err(PushError::Closed)
        );
    }
}
