//! The bounded queue of encoded items waiting to be written to one client.
//!
//! Producers (the Router fanning out publications, the session answering commands) push shared
//! [`Bytes`] items without a lock or an allocation of their own: a bounded tokio channel, plus an
//! atomic count of queued bytes. A push that would pass either bound fails, and the producer
//! treats the client as slow (disconnect 3008), so one stalled reader never holds more than
//! `queue_max_messages` items or `queue_max_size` bytes, and never slows anyone else.
//!
//! The consumer, [`OutboxStream`], drains everything queued at once into one frame: JSON lines
//! joined by `\n`, or concatenated length-prefixed Protobuf messages.

use std::pin::Pin;
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
}

/// One frame to write, made of `items` wire messages.
#[derive(Debug)]
pub struct OutboundFrame {
    pub bytes: Bytes,
    pub items: u64,
}

/// A queue bounded at `max_messages` items and `max_bytes` bytes.
pub fn outbox(format: Format, max_messages: usize, max_bytes: usize) -> (Outbox, OutboxStream) {
    let (tx, rx) = mpsc::channel(max_messages.max(1));
    let shared = Arc::new(Shared {
        queued_bytes: AtomicUsize::new(0),
        max_bytes,
        closed: AtomicBool::new(false),
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
            return Err(PushError::Full);
        }
        self.tx.try_send(item).map_err(|e| {
            self.shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            match e {
                mpsc::error::TrySendError::Full(_) => PushError::Full,
                mpsc::error::TrySendError::Closed(_) => PushError::Closed,
            }
        })
    }

    /// Stops taking items; the stream ends once what is queued has been drained.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Relaxed);
    }

    /// Bytes queued and not yet drained.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued_bytes.load(Ordering::Relaxed)
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
        if this.drained.len() == 1 {
            let bytes = this.drained.pop().expect("one item");
            return Poll::Ready(Some(OutboundFrame { bytes, items: 1 }));
        }
        let mut frame = BytesMut::with_capacity(total + this.drained.len());
        let items = this.drained.len() as u64;
        for item in this.drained.drain(..) {
            append_item(this.format, &mut frame, &item);
        }
        Poll::Ready(Some(OutboundFrame {
            bytes: frame.freeze(),
            items,
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
    async fn gone_consumer_is_closed() {
        let (outbox, stream) = outbox(Format::Json, 8, 1024);
        drop(stream);
        assert_eq!(
            outbox.push(Bytes::from_static(b"{}")),
            Err(PushError::Closed)
        );
    }
}
