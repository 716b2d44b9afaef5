//! Benchmark payloads, and finding them again in whatever a server delivers.
//!
//! A payload is JSON of an exact size, `{"t":<ns>,"p":"xxx…"}`, where `t` is its send time in
//! nanoseconds since the run began. JSON so that every server can carry it unchanged (rpc-crypto
//! requires JSON data); padding of `x` so that the pattern `{"t":` can occur nowhere else. The
//! scanner therefore reads delivered bytes of any protocol without decoding it, and copes with
//! payloads split across frames (NATS does that).

/// The smallest payload: the header, a 20-digit time and the padding's quotes.
pub const MIN_SIZE: usize = 40;

const HEAD: &[u8] = b"{\"t\":";
/// The longest partial header a frame can end with: `{"t":` and 20 digits.
const MAX_PARTIAL: usize = 25;

/// Writes a payload of exactly `size` bytes (at least [`MIN_SIZE`]) sent at `t` ns.
pub fn make(t: u64, size: usize, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(HEAD);
    out.extend_from_slice(t.to_string().as_bytes());
    out.extend_from_slice(b",\"p\":\"");
    let used = out.len() - start + 2;
    out.resize(out.len() + size.saturating_sub(used), b'x');
    out.extend_from_slice(b"\"}");
}

/// The send time of one whole payload (as [`make`] wrote it), read from its header alone.
pub fn sent_at(payload: &[u8]) -> Option<u64> {
    let digits = payload.strip_prefix(HEAD)?;
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    if end == 0 || end > 20 || digits[end] != b',' {
        return None;
    }
    digits[..end].iter().try_fold(0u64, |t, &d| {
        t.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Finds payload send times in a byte stream that arrives in pieces.
#[derive(Default)]
pub struct Scanner {
    carry: Vec<u8>,
}

impl Scanner {
    /// Scans the next piece of the stream; calls `found` with each complete payload's time.
    pub fn scan(&mut self, piece: &[u8], mut found: impl FnMut(u64)) {
        if self.carry.is_empty() {
            let rest = scan_complete(piece, &mut found);
            self.keep_tail(&piece[rest..]);
        } else {
            self.carry.extend_from_slice(piece);
            let buf = std::mem::take(&mut self.carry);
            let rest = scan_complete(&buf, &mut found);
            self.keep_tail(&buf[rest..]);
        }
    }

    fn keep_tail(&mut self, tail: &[u8]) {
        let keep = tail.len().min(MAX_PARTIAL);
        self.carry.clear();
        self.carry.extend_from_slice(&tail[tail.len() - keep..]);
    }
}

/// Reports every complete header in `buf`; returns where the unscanned remainder starts.
fn scan_complete(buf: &[u8], found: &mut impl FnMut(u64)) -> usize {
    let mut at = 0;
    let mut done = 0;
    let finder = memchr::memmem::Finder::new(HEAD);
    while let Some(pos) = finder.find(&buf[at..]) {
        let digits_start = at + pos + HEAD.len();
        let mut end = digits_start;
        let mut t: u64 = 0;
        while end < buf.len() && buf[end].is_ascii_digit() {
            t = t * 10 + u64::from(buf[end] - b'0');
            end += 1;
        }
        if end == buf.len() || end == digits_start {
            // Cut off inside the header: the next piece completes it.
            return at + pos;
        }
        found(t);
        at = end;
        done = end;
    }
    done.max(buf.len().saturating_sub(HEAD.len() - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_exact_size_and_are_json() {
        for size in [MIN_SIZE, 64, 1024] {
            let mut out = Vec::new();
            make(12_345_678_901, size, &mut out);
            assert_eq!(out.len(), size);
            let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(value["t"], 12_345_678_901u64);
        }
    }

    #[test]
    fn sent_at_reads_the_header_of_a_whole_payload() {
        for (t, size) in [(0, MIN_SIZE), (12_345_678_901, 64), (u64::MAX, 1024)] {
            let mut out = Vec::new();
            make(t, size, &mut out);
            assert_eq!(sent_at(&out), Some(t));
        }
        for bad in [
            &b""[..],
            b"{\"t\":",
            b"{\"t\":12",
            b"{\"t\":,\"p\":\"x\"}",
            b"{\"t\":12x,\"p\":\"x\"}",
            b"{\"p\":\"x\",\"t\":12}",
            b"{\"t\":18446744073709551616,\"p\":\"x\"}",
        ] {
            assert_eq!(sent_at(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn finds_every_payload_however_the_stream_is_cut() {
        let mut stream = Vec::new();
        let times: Vec<u64> = (0..50).map(|i| 1_000_000_007 * i + 3).collect();
        for &t in &times {
            stream.extend_from_slice(b"MSG bench 1 64\r\n");
            make(t, 64, &mut stream);
            stream.extend_from_slice(b"\r\n");
        }
        for piece in [1, 2, 3, 7, 25, 26, 64, 100, stream.len()] {
            let mut scanner = Scanner::default();
            let mut seen = Vec::new();
            for chunk in stream.chunks(piece) {
                scanner.scan(chunk, |t| seen.push(t));
            }
            assert_eq!(seen, times, "pieces of {piece} bytes");
        }
    }
}
