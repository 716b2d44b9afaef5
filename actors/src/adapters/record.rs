//! Recording what the adapters receive, for `rpc-crypto record`: a process-wide sink that the
//! [`upstream`](super::upstream) connection and the [`http`](super::http) client tell about
//! every connection opened, message sent, text message received and successful GET, each with
//! its receive time. The file is the cryptofeed line format of [`capture`](super::capture), with
//! a [`Header`] line first and a [`Footer`] line last, so that one reader (and the `replay`
//! adapter) reads both.
//!
//! At most one [`Recorder`] is [`install`]ed in a process, once; with none, each hook costs one
//! atomic load. A hook never blocks its adapter: records go through a bounded queue to a writer
//! thread, and a record that finds the queue full is dropped and counted (the footer says how
//! many, so that a replay knows the recording has holes). [`finish`] stops the recording,
//! writes the footer and flushes.
//!
//! A record is one line: a CR or LF in a message or body is written as a space (which changes
//! nothing in JSON, where raw line breaks can only be whitespace), and a space in a URL as
//! `%20`. Only plain public GETs ([`http::get`](super::http::get)) are recorded: signed
//! requests, which carry keys, never are.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::capture::{Footer, Header};

/// Records queued for the writer at most, by default.
pub const DEFAULT_QUEUE: usize = 65_536;

/// How often the writer flushes while records keep coming (and when they stop).
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

static RECORDER: OnceLock<Recorder> = OnceLock::new();

/// What a recording wrote, from [`Recorder::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Records written (header and footer not counted).
    pub records: u64,
    /// Bytes written, header and footer included.
    pub bytes: u64,
    /// Records lost because the queue was full.
    pub dropped: u64,
}

enum Item {
    Line(String),
    /// Write the footer, flush and stop.
    Finish,
}

/// A recording under way: the queue to its writer thread.
pub struct Recorder {
    queue: SyncSender<Item>,
    /// Shared with the writer, for the footer.
    dropped: Arc<AtomicU64>,
    finished: AtomicBool,
    writer: Mutex<Option<JoinHandle<io::Result<Summary>>>>,
}

/// Unix time now, in seconds.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Text on one line: CR and LF become spaces.
fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(['\r', '\n']) {
        text.replace(['\r', '\n'], " ").into()
    } else {
        text.into()
    }
}

/// A URL as one word: spaces (and other whitespace) percent-encoded.
fn one_word(url: &str) -> std::borrow::Cow<'_, str> {
    if url.contains(char::is_whitespace) {
        url.chars()
            .map(|c| {
                if c.is_whitespace() {
                    format!("%{:02X}", u32::from(c) & 0xff)
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
            .into()
    } else {
        url.into()
    }
}

impl Recorder {
    /// Creates `path` (an existing file is overwritten) and starts recording `exchange` into it.
    pub fn create(path: &Path, exchange: &str, queue: usize) -> io::Result<Recorder> {
        let file = File::create(path)?;
        Recorder::to_writer(Box::new(file), exchange, queue)
    }

    /// Starts recording `exchange` into `out`, with at most `queue` records waiting for it.
    pub fn to_writer(
        out: Box<dyn Write + Send>,
        exchange: &str,
        queue: usize,
    ) -> io::Result<Recorder> {
        let (sender, receiver) = mpsc::sync_channel(queue.max(1));
        let header = Header::line(exchange, now());
        let dropped = Arc::new(AtomicU64::new(0));
        let counted = dropped.clone();
        let writer = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || write_all(out, header, receiver, &counted))?;
        Ok(Recorder {
            queue: sender,
            dropped,
            finished: AtomicBool::new(false),
            writer: Mutex::new(Some(writer)),
        })
    }

    fn push(&self, line: String) {
        if self.finished.load(Ordering::Relaxed) {
            return;
        }
        match self.queue.try_send(Item::Line(line)) {
            Ok(()) => {}
            // Full, or the writer stopped on an error (reported by `finish`).
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A connection to `url` opened.
    pub fn connected(&self, url: &str) {
        self.push(format!("{} <-> {:.6}", one_word(url), now()));
    }

    /// `message` sent on the connection to `url`.
    pub fn sent(&self, url: &str, message: &str) {
        self.push(format!(
            "{} <- {:.6}: {}",
            one_word(url),
            now(),
            one_line(message)
        ));
    }

    /// `message` received on the connection opened last.
    pub fn received(&self, message: &str) {
        self.push(format!("{:.6}: {}", now(), one_line(message)));
    }

    /// A GET of `url` answered with `body`.
    pub fn http_get(&self, url: &str, body: &[u8]) {
        let body = String::from_utf8_lossy(body);
        self.push(format!(
            "{} -> {:.6}: {}",
            one_word(url),
            now(),
            one_line(&body)
        ));
    }

    /// Records lost so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Stops recording: later records are ignored; what is queued is written, then the footer,
    /// and the file is flushed. The second call is an error.
    pub fn finish(&self) -> io::Result<Summary> {
        self.finished.store(true, Ordering::Relaxed);
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| io::Error::other("the recording is finished already"))?;
        // Blocks while the queue is full: the writer is draining it. Fails only if the writer
        // stopped on an error, which joining reports.
        let _ = self.queue.send(Item::Finish);
        let mut summary = writer
            .join()
            .map_err(|_| io::Error::other("the recording's writer panicked"))??;
        summary.dropped = summary.dropped.max(self.dropped());
        Ok(summary)
    }
}

/// The writer thread: the header, every queued record, the footer.
fn write_all(
    out: Box<dyn Write + Send>,
    header: String,
    queue: Receiver<Item>,
    dropped: &AtomicU64,
) -> io::Result<Summary> {
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let mut summary = Summary {
        records: 0,
        bytes: 0,
        dropped: 0,
    };
    let line = |out: &mut BufWriter<_>, text: &str, summary: &mut Summary| {
        out.write_all(text.as_bytes())?;
        out.write_all(b"\n")?;
        summary.bytes += text.len() as u64 + 1;
        Ok::<(), io::Error>(())
    };
    line(&mut out, &header, &mut summary)?;
    let mut flushed = Instant::now();
    loop {
        match queue.recv_timeout(FLUSH_INTERVAL) {
            Ok(Item::Line(text)) => {
                line(&mut out, &text, &mut summary)?;
                summary.records += 1;
                if flushed.elapsed() >= FLUSH_INTERVAL {
                    out.flush()?;
                    flushed = Instant::now();
                }
            }
            Ok(Item::Finish) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                out.flush()?;
                flushed = Instant::now();
            }
        }
    }
    // Nothing is queued after `Finish`: the count is final.
    let dropped = dropped.load(Ordering::Relaxed);
    summary.dropped = dropped;
    let footer = Footer {
        records: summary.records,
        dropped,
        ended: now(),
    }
    .line();
    line(&mut out, &footer, &mut summary)?;
    out.flush()?;
    Ok(summary)
}

/// Installs `recorder` as the process's; `Err` gives it back if one was installed before.
pub fn install(recorder: Recorder) -> Result<(), Recorder> {
    RECORDER.set(recorder)
}

/// Whether a recording is under way.
pub fn active() -> bool {
    RECORDER
        .get()
        .is_some_and(|r| !r.finished.load(Ordering::Relaxed))
}

/// Finishes the installed recording ([`Recorder::finish`]).
pub fn finish() -> io::Result<Summary> {
    RECORDER
        .get()
        .ok_or_else(|| io::Error::other("no recording was started"))?
        .finish()
}

/// Hook: a connection to `url` opened.
#[inline]
pub fn connected(url: &str) {
    if let Some(recorder) = RECORDER.get() {
        recorder.connected(url);
    }
}

/// Hook: `message` sent to `url`.
#[inline]
pub fn sent(url: &str, message: &str) {
    if let Some(recorder) = RECORDER.get() {
        recorder.sent(url, message);
    }
}

/// Hook: a text `message` received.
#[inline]
pub fn received(message: &str) {
    if let Some(recorder) = RECORDER.get() {
        recorder.received(message);
    }
}

/// Hook: a GET of `url` answered `body`.
#[inline]
pub fn http_get(url: &str, body: &[u8]) {
    if let Some(recorder) = RECORDER.get() {
        recorder.http_get(url, body);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Condvar};

    use super::*;
    use crate::adapters::capture::{footer, header, records, Record};

    /// A `Write` into shared memory, that can be held shut until opened.
    #[derive(Clone)]
    struct Shared {
        bytes: Arc<Mutex<Vec<u8>>>,
        open: Arc<(Mutex<bool>, Condvar)>,
    }

    impl Shared {
        fn new(open: bool) -> Shared {
            Shared {
                bytes: Arc::default(),
                open: Arc::new((Mutex::new(open), Condvar::new())),
            }
        }
        fn open(&self) {
            *self.open.0.lock().unwrap() = true;
            self.open.1.notify_all();
        }
        fn text(&self) -> String {
            String::from_utf8(self.bytes.lock().unwrap().clone()).unwrap()
        }
    }

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut open = self.open.0.lock().unwrap();
            while !*open {
                open = self.open.1.wait(open).unwrap();
            }
            self.bytes.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn records_are_written_in_the_capture_format_between_header_and_footer() {
        let out = Shared::new(true);
        let recorder = Recorder::to_writer(Box::new(out.clone()), "binance", 16).unwrap();
        recorder.connected("wss://stream.binance.com:9443/stream?streams=a b");
        recorder.sent("wss://x", "{\"method\":\"SUBSCRIBE\"}");
        recorder.received("{\"a\":\n1}");
        recorder.http_get(
            "https://api.binance.com/api/v3/depth?symbol=X",
            b"{\"b\":2}\r\n",
        );
        let summary = recorder.finish().unwrap();
        assert_eq!(summary.records, 4);
        assert_eq!(summary.dropped, 0);
        let text = out.text();
        assert_eq!(summary.bytes, text.len() as u64);
        assert_eq!(header(&text).unwrap().unwrap().exchange, "binance");
        let footer = footer(&text).unwrap();
        assert_eq!((footer.records, footer.dropped), (4, 0));
        let all: Vec<Record> = records(&text).map(Result::unwrap).collect();
        assert!(matches!(
            all[0],
            Record::Connected {
                url: "wss://stream.binance.com:9443/stream?streams=a%20b",
                ..
            }
        ));
        assert!(matches!(
            all[1],
            Record::Sent {
                url: "wss://x",
                message: "{\"method\":\"SUBSCRIBE\"}",
                ..
            }
        ));
        assert!(matches!(
            all[2],
            Record::Received {
                message: "{\"a\": 1}",
                ..
            }
        ));
        assert!(matches!(
            all[3],
            Record::Http {
                body: "{\"b\":2}  ",
                ..
            }
        ));
        // Receive times are now, in order.
        assert!(all.windows(2).all(|w| w[0].at() <= w[1].at()));
        assert!((all[0].at() - now()).abs() < 60.0);
        // Finished: later records are ignored, and finishing again is an error.
        recorder.received("late");
        assert!(recorder.finish().is_err());
    }

    #[test]
    fn a_full_queue_drops_records_counts_them_and_says_so_in_the_footer() {
        // The writer is held at the header: the queue (2) fills, the rest is dropped.
        let out = Shared::new(false);
        let recorder = Recorder::to_writer(Box::new(out.clone()), "kraken", 2).unwrap();
        for i in 0..10 {
            recorder.received(&format!("{{\"n\":{i}}}"));
        }
        assert_eq!(recorder.dropped(), 8);
        out.open();
        let summary = recorder.finish().unwrap();
        assert_eq!((summary.records, summary.dropped), (2, 8));
        let text = out.text();
        let footer_line = text.lines().last().unwrap();
        assert!(footer_line.contains("dropped=8"), "{footer_line}");
        assert!(footer_line.contains("holes"), "{footer_line}");
        // The records kept are the first ones, in order.
        let kept: Vec<String> = records(&text)
            .map(|r| match r.unwrap() {
                Record::Received { message, .. } => message.to_owned(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(kept, ["{\"n\":0}", "{\"n\":1}"]);
    }

    #[test]
    fn without_a_recorder_the_hooks_do_nothing() {
        // No test in this binary installs one.
        assert!(!active());
        connected("wss://a");
        sent("wss://a", "x");
        received("x");
        http_get("https://a", b"x");
        assert!(finish().is_err());
    }
}
