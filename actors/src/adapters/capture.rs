//! Recorded exchange traffic, in the line format of cryptofeed's captures (the real exchange
//! recordings under `fixtures/exchanges/`), which the adapters' tests feed through the real
//! adapter code.
//!
//! One record per line:
//! - `URL <-> TS` — a connection opened at unix time TS (seconds, fractional)
//! - `URL <- TS: MSG` — a message the client sent
//! - `TS: MSG` — a message received
//! - `URL -> TS: BODY` — an HTTP GET of URL and its response body
//!
//! Lines starting with `#` are comments, and a `configuration: JSON` line (cryptofeed's own
//! settings, in its `*.0` files) is no record either. A recording made by `rpc-crypto record` is this format
//! with a [`Header`] line first (`# rpc-crypto recording v1 exchange=binance started=TS`) and a
//! [`Footer`] line last (`# rpc-crypto recording end records=N dropped=M ended=TS`); a capture
//! of cryptofeed's has neither. [`records`] skips comments; [`header`] and [`footer`] read them.
//!
//! Pure: parses text, never panics; a line that fits none of these is reported, not skipped.

/// One record of a capture.
#[derive(Debug, Clone, PartialEq)]
pub enum Record<'a> {
    /// A WebSocket connection opened.
    Connected { url: &'a str, at: f64 },
    /// A message the client sent.
    Sent {
        url: &'a str,
        at: f64,
        message: &'a str,
    },
    /// A message received on the connection opened last.
    Received { at: f64, message: &'a str },
    /// An HTTP GET and its response body.
    Http {
        url: &'a str,
        at: f64,
        body: &'a str,
    },
}

impl Record<'_> {
    /// When it happened, in unix seconds.
    pub fn at(&self) -> f64 {
        match self {
            Record::Connected { at, .. }
            | Record::Sent { at, .. }
            | Record::Received { at, .. }
            | Record::Http { at, .. } => *at,
        }
    }
}

/// A line that is no record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("capture line {line}: {reason}")]
pub struct CaptureError {
    /// 1-based.
    pub line: usize,
    pub reason: &'static str,
}

fn timestamp(text: &str) -> Option<f64> {
    let at: f64 = text.trim().parse().ok()?;
    (at.is_finite() && at >= 0.0).then_some(at)
}

/// Parses one line (without its newline). A comment (`#`) is no record.
pub fn parse_line(line: &str) -> Result<Record<'_>, &'static str> {
    // A received message starts with its timestamp; every other record with a URL.
    if line.starts_with(|c: char| c.is_ascii_digit()) {
        let (at, message) = line.split_once(": ").ok_or("no `: ` after the timestamp")?;
        let at = timestamp(at).ok_or("bad timestamp")?;
        return Ok(Record::Received { at, message });
    }
    if is_comment(line) {
        return Err("a comment, not a record");
    }
    // A URL has no space: the first one ends it, whatever the message after it holds.
    let (url, rest) = line.split_once(' ').ok_or("not a capture record")?;
    if url.is_empty() {
        return Err("not a capture record");
    }
    if let Some(at) = rest.strip_prefix("<-> ") {
        let at = timestamp(at).ok_or("bad timestamp")?;
        return Ok(Record::Connected { url, at });
    }
    if let Some(rest) = rest.strip_prefix("<- ") {
        let (at, message) = rest.split_once(": ").ok_or("no `: ` after the timestamp")?;
        let at = timestamp(at).ok_or("bad timestamp")?;
        return Ok(Record::Sent { url, at, message });
    }
    if let Some(rest) = rest.strip_prefix("-> ") {
        let (at, body) = rest.split_once(": ").ok_or("no `: ` after the timestamp")?;
        let at = timestamp(at).ok_or("bad timestamp")?;
        return Ok(Record::Http { url, at, body });
    }
    Err("not a capture record")
}

/// A comment, or cryptofeed's `configuration:` line.
fn is_comment(line: &str) -> bool {
    line.starts_with('#') || line.starts_with("configuration: ")
}

/// Every record of a capture, in order; empty lines and comments are skipped.
pub fn records(text: &str) -> impl Iterator<Item = Result<Record<'_>, CaptureError>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !is_comment(line))
        .map(|(i, line)| {
            parse_line(line).map_err(|reason| CaptureError {
                line: i + 1,
                reason,
            })
        })
}

/// The start of a recording's first line.
const HEADER_START: &str = "# rpc-crypto recording v";
/// The start of a recording's last line.
const FOOTER_START: &str = "# rpc-crypto recording end";
/// The version of the recording format this code writes and reads.
pub const RECORDING_VERSION: u32 = 1;

/// The first line of a recording made by `rpc-crypto record`.
#[derive(Debug, Clone, PartialEq)]
pub struct Header<'a> {
    pub version: u32,
    /// The exchange recorded (`binance`).
    pub exchange: &'a str,
    /// When the recording started, in unix seconds.
    pub started: f64,
}

impl<'a> Header<'a> {
    /// The header line (without its newline).
    pub fn line(exchange: &str, started: f64) -> String {
        format!("{HEADER_START}{RECORDING_VERSION} exchange={exchange} started={started:.6}")
    }

    /// `None` when `line` is no header; the header, or why it is a broken one.
    pub fn parse(line: &'a str) -> Option<Result<Header<'a>, &'static str>> {
        let rest = line.strip_prefix(HEADER_START)?;
        let mut words = rest.split_whitespace();
        let parse = || {
            let version: u32 = words
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or("bad recording version")?;
            if version != RECORDING_VERSION {
                return Err("a recording version this build does not read (it reads v1)");
            }
            let (mut exchange, mut started) = (None, None);
            for word in words {
                match word.split_once('=') {
                    Some(("exchange", name)) if !name.is_empty() => exchange = Some(name),
                    Some(("started", at)) => started = timestamp(at),
                    // Later versions may say more.
                    _ => {}
                }
            }
            Ok(Header {
                version,
                exchange: exchange.ok_or("no exchange= in the recording header")?,
                started: started.ok_or("no started= in the recording header")?,
            })
        };
        Some(parse())
    }
}

/// The last line of a recording that was ended properly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Footer {
    /// Records written.
    pub records: u64,
    /// Records lost because the writer fell behind: the recording has holes where they were.
    pub dropped: u64,
    /// When the recording ended, in unix seconds.
    pub ended: f64,
}

impl Footer {
    /// The footer line (without its newline).
    pub fn line(&self) -> String {
        let mut line = format!(
            "{FOOTER_START} records={} dropped={} ended={:.6}",
            self.records, self.dropped, self.ended
        );
        if self.dropped > 0 {
            line.push_str(&format!(
                " (the recording has holes: {} records were lost)",
                self.dropped
            ));
        }
        line
    }

    /// `None` when `line` is no footer (or a broken one).
    pub fn parse(line: &str) -> Option<Footer> {
        let rest = line.strip_prefix(FOOTER_START)?;
        let (mut records, mut dropped, mut ended) = (None, None, None);
        for word in rest.split_whitespace() {
            match word.split_once('=') {
                Some(("records", n)) => records = n.parse().ok(),
                Some(("dropped", n)) => dropped = n.parse().ok(),
                Some(("ended", at)) => ended = timestamp(at),
                _ => {}
            }
        }
        Some(Footer {
            records: records?,
            dropped: dropped?,
            ended: ended?,
        })
    }
}

/// The header of a recording made by `rpc-crypto record` (its first non-empty line), `None` for
/// a capture without one (cryptofeed's); an error for a broken header.
pub fn header(text: &str) -> Result<Option<Header<'_>>, CaptureError> {
    let Some((i, first)) = text
        .lines()
        .enumerate()
        .find(|(_, line)| !line.trim().is_empty())
    else {
        return Ok(None);
    };
    match Header::parse(first) {
        None => Ok(None),
        Some(Ok(header)) => Ok(Some(header)),
        Some(Err(reason)) => Err(CaptureError {
            line: i + 1,
            reason,
        }),
    }
}

/// The footer of a recording that was ended properly (its last footer line), if any.
pub fn footer(text: &str) -> Option<Footer> {
    text.lines()
        .rev()
        .filter(|line| line.starts_with('#'))
        .find_map(Footer::parse)
}

/// The number of the last line when the text does not end with a newline: a recording cut
/// short (its writer killed mid-line) ends so, and that line may be incomplete.
pub fn unterminated_last_line(text: &str) -> Option<usize> {
    (!text.is_empty() && !text.ends_with('\n')).then(|| text.lines().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_record() {
        let connected = parse_line("wss://ws.kraken.com <-> 1618678132.3858151").unwrap();
        assert_eq!(
            connected,
            Record::Connected {
                url: "wss://ws.kraken.com",
                at: 1618678132.3858151
            }
        );
        let sent = parse_line("wss://ws.kraken.com <- 1618678132.8: {\"event\":\"subscribe\"}");
        assert!(matches!(
            sent,
            Ok(Record::Sent {
                message: "{\"event\":\"subscribe\"}",
                ..
            })
        ));
        let received = parse_line("1618678132.82: {\"a\": 1}").unwrap();
        assert_eq!(
            received,
            Record::Received {
                at: 1618678132.82,
                message: "{\"a\": 1}"
            }
        );
        let http =
            parse_line("https://api.binance.com/api/v3/depth?x=1 -> 1633998512.3: {}").unwrap();
        assert!(matches!(
            http,
            Record::Http {
                url: "https://api.binance.com/api/v3/depth?x=1",
                body: "{}",
                ..
            }
        ));
        assert_eq!(http.at(), 1633998512.3);
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        assert!(parse_line("garbage").is_err());
        assert!(parse_line("12x: {}").is_err());
        assert!(parse_line("wss://a <-> soon").is_err());
        let errors: Vec<CaptureError> = records("1.0: {}\n\nnope\n")
            .filter_map(Result::err)
            .collect();
        assert_eq!(
            errors,
            [CaptureError {
                line: 3,
                reason: "not a capture record"
            }]
        );
    }

    #[test]
    fn a_message_holding_a_separator_is_read_by_the_url_it_follows() {
        let sent = parse_line("wss://a <- 1.5: {\"note\":\"x <-> 2\"}").unwrap();
        assert_eq!(
            sent,
            Record::Sent {
                url: "wss://a",
                at: 1.5,
                message: "{\"note\":\"x <-> 2\"}"
            }
        );
        let http = parse_line("https://a/b -> 3: {\"n\":\"c <- d: e\"}").unwrap();
        assert!(matches!(
            http,
            Record::Http {
                url: "https://a/b",
                body: "{\"n\":\"c <- d: e\"}",
                ..
            }
        ));
        assert!(parse_line(" <-> 1").is_err());
    }

    #[test]
    fn header_and_footer() {
        let header_line = Header::line("binance", 1700000000.25);
        assert_eq!(
            header_line,
            "# rpc-crypto recording v1 exchange=binance started=1700000000.250000"
        );
        let footer_line = Footer {
            records: 12,
            dropped: 3,
            ended: 1700000060.5,
        }
        .line();
        let text = format!("{header_line}\n1.0: {{}}\n# a note\n{footer_line}\n");
        assert_eq!(
            header(&text).unwrap(),
            Some(Header {
                version: 1,
                exchange: "binance",
                started: 1700000000.25
            })
        );
        assert_eq!(
            footer(&text),
            Some(Footer {
                records: 12,
                dropped: 3,
                ended: 1700000060.5
            })
        );
        assert!(footer_line.contains("holes"), "{footer_line}");
        // Comments are no records.
        let all: Vec<_> = records(&text).collect();
        assert_eq!(
            all,
            [Ok(Record::Received {
                at: 1.0,
                message: "{}"
            })]
        );
        assert_eq!(unterminated_last_line(&text), None);
        assert_eq!(unterminated_last_line("1.0: {}\n2.0: {\"a"), Some(2));
        // A cryptofeed capture has neither.
        assert_eq!(header("wss://a <-> 1\n"), Ok(None));
        assert_eq!(footer("wss://a <-> 1\n"), None);
        // A broken or unknown header is an error naming its line.
        for bad in [
            "# rpc-crypto recording v2 exchange=binance started=1",
            "# rpc-crypto recording vx exchange=binance started=1",
            "# rpc-crypto recording v1 started=1",
            "# rpc-crypto recording v1 exchange=binance started=soon",
        ] {
            let error = header(&format!("\n{bad}\n")).unwrap_err();
            assert_eq!(error.line, 2, "{bad}");
        }
    }

    #[test]
    fn never_panics() {
        let sample = format!(
            "{}\nwss://a/b <-> 1.5\nwss://a/b <- 1.6: {{\"x\":1}}\n1.7: [1,2]\nhttp://h/p?q=1 -> 1.8: {{}}\n{}\n",
            Header::line("kraken", 1.0),
            Footer { records: 4, dropped: 0, ended: 2.0 }.line()
        );
        let bytes = sample.as_bytes();
        for i in 0..bytes.len() {
            for b in [b' ', b'#', b':', b'-', b'<', b'>', b'\n', b'0', b'.', b'='] {
                let mut m = bytes.to_vec();
                m[i] = b;
                let Ok(text) = std::str::from_utf8(&m) else {
                    continue;
                };
                let _ = records(text).count();
                let _ = header(text);
                let _ = footer(text);
                let _ = unterminated_last_line(&text[..i]);
            }
        }
    }

    #[test]
    fn the_real_captures_parse_completely() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/exchanges");
        for name in [
            "BINANCE.0",
            "BINANCE.ws.1.0",
            "BINANCE.http.0.0",
            "COINBASE.0",
            "COINBASE.ws.28.0",
            "KRAKEN.0",
            "KRAKEN.ws.50.0",
        ] {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            let all: Vec<_> = records(&text).collect();
            assert!(!all.is_empty(), "{name}");
            assert!(
                all.iter().all(Result::is_ok),
                "{name}: {:?}",
                all.iter().find(|r| r.is_err())
            );
        }
    }
}
