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

/// Parses one line (without its newline).
pub fn parse_line(line: &str) -> Result<Record<'_>, &'static str> {
    // A received message starts with its timestamp; every other record with a URL.
    if line.starts_with(|c: char| c.is_ascii_digit()) {
        let (at, message) = line.split_once(": ").ok_or("no `: ` after the timestamp")?;
        let at = timestamp(at).ok_or("bad timestamp")?;
        return Ok(Record::Received { at, message });
    }
    if let Some((url, at)) = line.split_once(" <-> ") {
        let at = timestamp(at).ok_or("bad timestamp")?;
        return Ok(Record::Connected { url, at });
    }
    if let Some((url, rest)) = line.split_once(" <- ") {
        let (at, message) = rest.split_once(": ").ok_or("no `: ` after the timestamp")?;
        let at = timestamp(at).ok_or("bad timestamp")?;
        return Ok(Record::Sent { url, at, message });
    }
    if let Some((url, rest)) = line.split_once(" -> ") {
        let (at, body) = rest.split_once(": ").ok_or("no `: ` after the timestamp")?;
        let at = timestamp(at).ok_or("bad timestamp")?;
        return Ok(Record::Http { url, at, body });
    }
    Err("not a capture record")
}

/// Every record of a capture, in order; empty lines are skipped.
pub fn records(text: &str) -> impl Iterator<Item = Result<Record<'_>, CaptureError>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            parse_line(line).map_err(|reason| CaptureError {
                line: i + 1,
                reason,
            })
        })
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
    fn the_real_captures_parse_completely() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/exchanges");
        for name in [
            "BINANCE.ws.1.0",
            "BINANCE.http.0.0",
            "COINBASE.ws.28.0",
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
