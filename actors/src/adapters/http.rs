//! A small HTTP/1.1 client over tokio, shared by the adapters that need a REST call now and then
//! (the ECB rates file, Binance's depth snapshots and signed private calls, Kraken's and
//! Coinbase's market lists) rather than a full HTTP stack.
//!
//! - [`send`]: any [`Method`], request headers, an optional body; answers whatever status the
//!   server gave with its body (the caller decides what a 4xx means: exchanges explain their
//!   refusals in the body).
//! - [`get`]: a plain GET that wants a 200; any other status is [`HttpError::Status`].
//!
//! Plain `http://`, or `https://` through rustls on ring with Mozilla's roots from
//! `webpki-roots` (the configuration is built once). One request per connection
//! (`Connection: close`), so the body ends at `Content-Length`, at the end of a chunked body, or
//! at the end of the connection. Each call has a deadline for everything (connect, TLS, request,
//! the whole response) and a body limit, both from the caller; the response header is limited to
//! 64 KiB. Redirects are not followed, and responses are not compressed
//! (`Accept-Encoding: identity`; a compressed answer is malformed). Request headers are checked
//! before connecting: no control characters (so no CR/LF injection), and none of the headers
//! this client writes itself. Nothing the server sends can make it panic.

use std::fmt;
use std::fmt::Write as _;
use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest response header accepted.
const MAX_HEAD: usize = 64 * 1024;

/// How much to read at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Headers this client writes itself, which a [`Request`] may not carry: they frame the message
/// or the connection (a second `Content-Length` would be request smuggling), or promise what the
/// reader does not do (compression, upgrades).
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "accept-encoding",
];

/// Why a request failed. The text names no header value (they may be secrets).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("bad url: {0}")]
    Url(&'static str),
    #[error("bad request header {name:?}: {why}")]
    Header { name: String, why: &'static str },
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        host: String,
        port: u16,
        source: io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    #[error("malformed HTTP response: {0}")]
    Malformed(&'static str),
    /// From [`get`] only: a status other than 200.
    #[error("HTTP status {0}")]
    Status(u16),
}

/// A request method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Delete,
    Put,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Put => "PUT",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request for [`send`].
///
/// `Host`, `Connection: close`, `Accept-Encoding: identity` and, with a body, `Content-Type` and
/// `Content-Length` are written by the client; `User-Agent` and `Accept` too unless `headers`
/// has them. A `POST` or `PUT` without a body says `Content-Length: 0`.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub method: Method,
    /// `http://` or `https://`, with the query; the fragment is not sent.
    pub url: &'a str,
    /// Extra headers, name and value, in order.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body with its content type.
    pub body: Option<(&'a str, &'a [u8])>,
}

impl<'a> Request<'a> {
    /// A GET of `url` without extra headers.
    pub fn get(url: &'a str) -> Self {
        Request {
            method: Method::Get,
            url,
            headers: &[],
            body: None,
        }
    }
}

/// Header values (API keys) and the body stay out of logs: names and the body's size only.
impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| *name).collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &names)
            .field(
                "body",
                &self
                    .body
                    .map(|(kind, body)| (kind, format!("{} bytes", body.len()))),
            )
            .finish()
    }
}

/// A response: its status (never 1xx) and its whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends `request` and returns the response, whatever its status, all within `timeout`; a body
/// over `max_body` bytes is [`HttpError::TooLarge`].
pub async fn send(
    request: &Request<'_>,
    timeout: Duration,
    max_body: usize,
) -> Result<Response, HttpError> {
    perform(request, timeout, max_body, false).await
}

/// GETs `url` and returns the body of a 200 answer (any other status is
/// [`HttpError::Status`]), all within `timeout`; a body over `max_body` bytes is
/// [`HttpError::TooLarge`].
pub async fn get(url: &str, timeout: Duration, max_body: usize) -> Result<Vec<u8>, HttpError> {
    let body = perform(&Request::get(url), timeout, max_body, true)
        .await?
        .body;
    // `rpc-crypto record`: public GETs only (signed requests go through `send`).
    super::record::http_get(url, &body);
    Ok(body)
}

async fn perform(
    request: &Request<'_>,
    timeout: Duration,
    max_body: usize,
    only_ok: bool,
) -> Result<Response, HttpError> {
    let url = Url::parse(request.url)?;
    // Checked before connecting: a bad header never reaches the network.
    let bytes = request_bytes(&url, request)?;
    let reader = ResponseReader::new(max_body, only_ok);
    let exchange = async {
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|source| HttpError::Connect {
                host: url.host.clone(),
                port: url.port,
                source,
            })?;
        if url.tls {
            let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                .map_err(|_| HttpError::Url("bad host for TLS"))?;
            let tls = tokio_rustls::TlsConnector::from(tls_config()?)
                .connect(name, tcp)
                .await
                .map_err(|e| HttpError::Tls(e.to_string()))?;
            exchange(tls, &bytes, reader).await
        } else {
            exchange(tcp, &bytes, reader).await
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| HttpError::Timeout(timeout))?
}

/// An `http://` or `https://` URL, split for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Url {
    tls: bool,
    /// Without brackets for an IPv6 address.
    host: String,
    port: u16,
    /// The path with its query, starting with `/`.
    target: String,
}

impl Url {
    fn parse(url: &str) -> Result<Url, HttpError> {
        let (tls, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "https://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(url, "http://") {
            (false, rest)
        } else {
            return Err(HttpError::Url("only http:// and https:// are supported"));
        };
        // The fragment is the client's own; it is never sent.
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, target) = match rest.find(['/', '?']) {
            Some(at) if rest.as_bytes()[at] == b'?' => (&rest[..at], format!("/{}", &rest[at..])),
            Some(at) => (&rest[..at], rest[at..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        // Control characters and spaces would break the request line (or inject headers).
        if !target.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(HttpError::Url(
                "the path must be printable ASCII without spaces",
            ));
        }
        if authority.contains('@') {
            return Err(HttpError::Url("credentials in the URL are not supported"));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or(HttpError::Url("unclosed [ in the host"))?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or(HttpError::Url("junk after the IPv6 address"))?,
                ),
            };
            (host, port)
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = match port {
            None | Some("") => default_port,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or(HttpError::Url("bad port"))?,
        };
        let host_ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':');
        if host.is_empty() || !host.bytes().all(host_ok) {
            return Err(HttpError::Url("bad host"));
        }
        Ok(Url {
            tls,
            host: host.to_owned(),
            port,
            target,
        })
    }

    /// The `Host` header's value: the port only when not the scheme's default.
    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// A header name is a token (RFC 9110 §5.1).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header value has no control characters but tabs (RFC 9110 §5.5): no CR or LF to end the
/// line early, no NUL.
fn valid_value(value: &str) -> bool {
    value.chars().all(|c| c == '\t' || !c.is_control())
}

fn check_header(name: &str, value: &str) -> Result<(), HttpError> {
    let bad = |why| HttpError::Header {
        name: name.to_owned(),
        why,
    };
    if !valid_name(name) {
        return Err(bad("not a valid header name"));
    }
    if !valid_value(value) {
        return Err(bad("control characters in the value"));
    }
    Ok(())
}

/// The whole request, checked: head and body.
fn request_bytes(url: &Url, request: &Request<'_>) -> Result<Vec<u8>, HttpError> {
    let has = |name: &str| {
        request
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    for &(name, value) in request.headers {
        check_header(name, value)?;
        let reserved = RESERVED.iter().any(|r| name.eq_ignore_ascii_case(r))
            || (request.body.is_some() && name.eq_ignore_ascii_case("content-type"));
        if reserved {
            return Err(HttpError::Header {
                name: name.to_owned(),
                why: "written by the client itself",
            });
        }
    }
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\n",
        request.method,
        url.target,
        url.host_header()
    );
    if !has("user-agent") {
        head.push_str(concat!(
            "User-Agent: rpc-crypto/",
            env!("CARGO_PKG_VERSION"),
            "\r\n"
        ));
    }
    if !has("accept") {
        head.push_str("Accept: */*\r\n");
    }
    head.push_str("Accept-Encoding: identity\r\nConnection: close\r\n");
    for (name, value) in request.headers {
        // Writing to a String cannot fail.
        let _ = write!(head, "{name}: {value}\r\n");
    }
    let body: &[u8] = match request.body {
        Some((content_type, body)) => {
            check_header("Content-Type", content_type)?;
            let _ = write!(
                head,
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                body.len()
            );
            body
        }
        None => {
            // Servers may refuse a POST or PUT without a length (411).
            if matches!(request.method, Method::Post | Method::Put) {
                head.push_str("Content-Length: 0\r\n");
            }
            &[]
        }
    };
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    Ok(bytes)
}

/// The TLS client configuration, built once: ring (as the server's TLS), Mozilla's roots.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, HttpError> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let roots: rustls::RootCertStore = webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect();
    // An explicit provider: the process-wide default may be unset, or set by someone else.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(CONFIG.get_or_init(|| Arc::new(config)).clone())
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// Sends `request` and reads the response with `reader`.
async fn exchange<S>(
    mut stream: S,
    request: &[u8],
    mut reader: ResponseReader,
) -> Result<Response, HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_all(request).await?;
    stream.flush().await?;
    let mut buf = Vec::new();
    loop {
        buf.reserve(READ_CHUNK);
        let eof = stream.read_buf(&mut buf).await? == 0;
        if let Some(response) = reader.advance(&mut buf, eof)? {
            return Ok(response);
        }
        if eof {
            // `advance` either finishes or fails at the end of the stream; not reached.
            return Err(HttpError::Malformed("truncated response"));
        }
    }
}

/// Reads a response as it arrives, without rescanning what was already seen (a server sending
/// a byte at a time must not cost quadratic time). Public so that the fuzz target feeds it as
/// [`send`] does.
#[derive(Debug)]
pub struct ResponseReader {
    /// The largest body accepted.
    max_body: usize,
    /// Fail with [`HttpError::Status`] on any final status but 200, without reading the body.
    only_ok: bool,
    /// Where the search for the header's end resumes.
    scanned: usize,
    /// The status, where the body starts and how it ends, once the header is read.
    head: Option<(u16, usize, Framing)>,
}

impl ResponseReader {
    /// A reader of one response whose body may have at most `max_body` bytes; with `only_ok`,
    /// any final status but 200 is [`HttpError::Status`] (as [`get`] wants).
    pub fn new(max_body: usize, only_ok: bool) -> Self {
        ResponseReader {
            max_body,
            only_ok,
            scanned: 0,
            head: None,
        }
    }

    /// The largest chunked body, with its framing: framing may double a body of tiny chunks.
    fn max_chunked(&self) -> usize {
        self.max_body.saturating_mul(2).saturating_add(MAX_HEAD)
    }

    /// Looks at everything received so far (`buf`; `eof`: the server closed the connection), and
    /// returns the response once complete. Informational (1xx) answers are dropped from `buf`.
    pub fn advance(&mut self, buf: &mut Vec<u8>, eof: bool) -> Result<Option<Response>, HttpError> {
        let (status, start, framing) = loop {
            if let Some(head) = self.head {
                break head;
            }
            let from = self.scanned.saturating_sub(3);
            let Some(at) = find(&buf[from..], b"\r\n\r\n") else {
                self.scanned = buf.len();
                if buf.len() > MAX_HEAD {
                    return Err(HttpError::TooLarge(MAX_HEAD));
                }
                if eof {
                    return Err(HttpError::Malformed("the response ends inside its header"));
                }
                return Ok(None);
            };
            let end = from + at + 4;
            if end > MAX_HEAD {
                return Err(HttpError::TooLarge(MAX_HEAD));
            }
            let (status, framing) = parse_head(&buf[..end - 4])?;
            if (100..200).contains(&status) {
                // 100 Continue and the like: the real answer follows.
                buf.drain(..end);
                self.scanned = 0;
                continue;
            }
            if self.only_ok && status != 200 {
                return Err(HttpError::Status(status));
            }
            // These never have a body, whatever their header says (RFC 9112 §6.3).
            let framing = if matches!(status, 204 | 304) {
                Framing::Length(0)
            } else {
                framing
            };
            self.head = Some((status, end, framing));
        };
        let body = &buf[start..];
        let done = |body: Vec<u8>| Ok(Some(Response { status, body }));
        match framing {
            Framing::Length(len) => {
                if len > self.max_body {
                    return Err(HttpError::TooLarge(self.max_body));
                }
                if body.len() >= len {
                    return done(body[..len].to_vec());
                }
                if eof {
                    return Err(HttpError::Malformed(
                        "the body is shorter than Content-Length",
                    ));
                }
            }
            Framing::Chunked => {
                if body.len() > self.max_chunked() {
                    return Err(HttpError::TooLarge(self.max_body));
                }
                // The last chunk without trailers ends so; checking only then keeps it linear.
                if eof || body.ends_with(b"0\r\n\r\n") {
                    if let Some(decoded) = decode_chunked(body, self.max_body)? {
                        return done(decoded);
                    }
                    if eof {
                        return Err(HttpError::Malformed("truncated chunked body"));
                    }
                }
            }
            Framing::UntilClose => {
                if body.len() > self.max_body {
                    return Err(HttpError::TooLarge(self.max_body));
                }
                if eof {
                    return done(body.to_vec());
                }
            }
        }
        Ok(None)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The status and body framing of a response header (without its final blank line).
fn parse_head(head: &[u8]) -> Result<(u16, Framing), HttpError> {
    let head = std::str::from_utf8(head).map_err(|_| HttpError::Malformed("header not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Err(HttpError::Malformed("not an HTTP/1.x status line"));
    }
    let code = parts.next().unwrap_or_default();
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|s| code.len() == 3 && (100..600).contains(s))
        .ok_or(HttpError::Malformed("bad status code"))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or(HttpError::Malformed("header line without a colon"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let parsed = value
                .parse::<usize>()
                .ok()
                .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                .ok_or(HttpError::Malformed("bad Content-Length"))?;
            if length.is_some_and(|l| l != parsed) {
                return Err(HttpError::Malformed("conflicting Content-Length"));
            }
            length = Some(parsed);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only chunked is understood; other codings (gzip) were not asked for.
            let last = value.rsplit(',').next().unwrap_or_default().trim();
            if last.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if !last.eq_ignore_ascii_case("identity") {
                return Err(HttpError::Malformed("unsupported Transfer-Encoding"));
            }
        } else if name.eq_ignore_ascii_case("content-encoding")
            && !value.eq_ignore_ascii_case("identity")
        {
            return Err(HttpError::Malformed("unsupported Content-Encoding"));
        }
    }
    // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3).
    let framing = match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(len)) => Framing::Length(len),
        (false, None) => Framing::UntilClose,
    };
    Ok((status, framing))
}

/// A whole chunked body decoded, at most `max_body` bytes; `None` while incomplete.
fn decode_chunked(mut data: &[u8], max_body: usize) -> Result<Option<Vec<u8>>, HttpError> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(data, b"\r\n") else {
            return Ok(None);
        };
        let line = &data[..line_end];
        // Chunk extensions (`;name=value`) are allowed and ignored.
        let size = line.split(|&b| b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size)
            .ok()
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 8)
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or(HttpError::Malformed("bad chunk size"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            // Trailer fields until a blank line; their content is not needed.
            loop {
                let Some(end) = find(data, b"\r\n") else {
                    return Ok(None);
                };
                if end == 0 {
                    return Ok(Some(body));
                }
                data = &data[end + 2..];
            }
        }
        if body.len().saturating_add(size) > max_body {
            return Err(HttpError::TooLarge(max_body));
        }
        if data.len() < size.saturating_add(2) {
            return Ok(None);
        }
        if &data[size..size + 2] != b"\r\n" {
            return Err(HttpError::Malformed("chunk not followed by CRLF"));
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;

    use super::*;

    /// The body limit of the reader tests.
    const MAX_BODY: usize = 1024 * 1024;

    const TIMEOUT: Duration = Duration::from_secs(10);

    #[test]
    fn http_urls() {
        let u =
            Url::parse("https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml").unwrap();
        assert_eq!(
            u,
            Url {
                tls: true,
                host: "www.ecb.europa.eu".into(),
                port: 443,
                target: "/stats/eurofxref/eurofxref-daily.xml".into(),
            }
        );
        assert_eq!(u.host_header(), "www.ecb.europa.eu");
        let u = Url::parse("HTTP://127.0.0.1:8080?x=1#frag").unwrap();
        assert_eq!((u.tls, u.port, u.target.as_str()), (false, 8080, "/?x=1"));
        assert_eq!(u.host_header(), "127.0.0.1:8080");
        let u = Url::parse("http://[::1]:9/a").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        assert_eq!(u.host_header(), "[::1]:9");
        assert_eq!(Url::parse("http://h").unwrap().target, "/");
        assert_eq!(Url::parse("http://h:80/").unwrap().host_header(), "h");
        assert_eq!(Url::parse("https://h:80/").unwrap().host_header(), "h:80");
        let url = Url::parse("http://h:81/r.xml").unwrap();
        let request = request_bytes(&url, &Request::get("http://h:81/r.xml")).unwrap();
        let request = String::from_utf8(request).unwrap();
        assert!(request.starts_with("GET /r.xml HTTP/1.1\r\nHost: h:81\r\n"));
        assert!(request.contains("\r\nConnection: close\r\n"));
        assert!(request.contains("\r\nAccept-Encoding: identity\r\n"));
        assert!(!request.contains("Content-Length"));
        assert!(request.ends_with("\r\n\r\n"));
        for bad in [
            "ftp://h/x",
            "h/x",
            "http://",
            "http://:80/",
            "http://h:0/",
            "http://h:99999/",
            "http://h:x/",
            "http://u:p@h/",
            "http://h/a b",
            "http://h/a\r\nX: y",
            "http://[::1/",
            "http://[::1]x/",
            "http://h\r\n/",
            "http://é/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn http_request_headers() {
        let url = Url::parse("https://api.example.com/v1/x?a=1").unwrap();
        let text =
            |request: &Request| String::from_utf8(request_bytes(&url, request).unwrap()).unwrap();
        // Defaults give way to the caller's User-Agent and Accept.
        let headers = [("user-agent", "me/1"), ("Accept", "application/json")];
        let request = text(&Request {
            method: Method::Delete,
            url: "",
            headers: &headers,
            body: None,
        });
        assert_eq!(
            request,
            "DELETE /v1/x?a=1 HTTP/1.1\r\nHost: api.example.com\r\n\
             Accept-Encoding: identity\r\nConnection: close\r\n\
             user-agent: me/1\r\nAccept: application/json\r\n\r\n"
        );
        // A POST or PUT without a body still says its length.
        for method in [Method::Post, Method::Put] {
            let request = text(&Request {
                method,
                url: "",
                headers: &[],
                body: None,
            });
            assert!(request.starts_with(&format!("{method} /v1/x?a=1 HTTP/1.1\r\n")));
            assert!(
                request.ends_with("\r\nContent-Length: 0\r\n\r\n"),
                "{request}"
            );
        }
        // Tabs and non-ASCII text are fine in a value.
        check_header("X-Note", "a\tb é").unwrap();

        let refused = |headers: &[(&str, &str)], body: Option<(&str, &[u8])>| {
            let request = Request {
                method: Method::Post,
                url: "",
                headers,
                body,
            };
            match request_bytes(&url, &request) {
                Err(e @ HttpError::Header { .. }) => e,
                other => panic!("{headers:?} {body:?}: {other:?}"),
            }
        };
        for (name, value) in [
            ("X-MBX-APIKEY", "key\r\nX-Evil: 1"),
            ("X-MBX-APIKEY", "key\n"),
            ("X-MBX-APIKEY", "key\r"),
            ("X-A", "nul\0"),
            ("X-A", "del\x7f"),
            ("X-A", "c1\u{85}"),
            ("X-A\r\nX-Evil", "1"),
            ("X A", "1"),
            ("X:A", "1"),
            ("", "1"),
            ("Host", "elsewhere"),
            ("content-length", "5"),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "keep-alive"),
            ("Accept-Encoding", "gzip"),
        ] {
            let e = refused(&[("X-Fine", "ok"), (name, value)], None);
            // The value may be a secret: never in the error.
            assert!(!e.to_string().contains(value), "{e}");
        }
        refused(
            &[("Content-Type", "text/plain")],
            Some(("text/plain", b"x")),
        );
        refused(&[], Some(("text/plain\r\nX-Evil: 1", b"x")));
        // Without a body, a Content-Type is the caller's business.
        request_bytes(
            &url,
            &Request {
                method: Method::Get,
                url: "",
                headers: &[("Content-Type", "application/json")],
                body: None,
            },
        )
        .unwrap();
    }

    #[test]
    fn http_request_debug_hides_secrets() {
        let request = Request {
            method: Method::Post,
            url: "https://h/x",
            headers: &[("X-MBX-APIKEY", "s3cret")],
            body: Some(("text/plain", b"password=hunter2")),
        };
        let shown = format!("{request:?}");
        assert!(
            shown.contains("X-MBX-APIKEY") && shown.contains("16 bytes"),
            "{shown}"
        );
        assert!(
            !shown.contains("s3cret") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    /// Feeds `response` to a reader `step` bytes at a time, then closes.
    fn read_with(
        response: &[u8],
        step: usize,
        max_body: usize,
        only_ok: bool,
    ) -> Result<Response, HttpError> {
        let mut reader = ResponseReader::new(max_body, only_ok);
        let mut buf = Vec::new();
        for piece in response.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            if let Some(response) = reader.advance(&mut buf, false)? {
                return Ok(response);
            }
        }
        match reader.advance(&mut buf, true)? {
            Some(response) => Ok(response),
            None => Err(HttpError::Malformed("no body")),
        }
    }

    /// As [`get`] reads: the body of a 200.
    fn read_in_steps(response: &[u8], step: usize) -> Result<Vec<u8>, HttpError> {
        read_with(response, step, MAX_BODY, true).map(|r| r.body)
    }

    #[test]
    fn http_responses() {
        let ok = |response: &str| {
            for step in [1, 2, 7, 1000] {
                let body = read_in_steps(response.as_bytes(), step)
                    .unwrap_or_else(|e| panic!("{response:?} by {step}: {e}"));
                assert_eq!(body, b"hello world", "{response:?} by {step}");
            }
        };
        ok("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world");
        // Bytes past Content-Length are not body.
        ok("HTTP/1.1 200 OK\r\ncontent-length:11\r\n\r\nhello worldEXTRA");
        ok("HTTP/1.0 200 OK\r\n\r\nhello world");
        ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n");
        ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nb\r\nhello world\r\n0\r\nX-T: 1\r\n\r\n");
        ok("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world");

        let err = |response: &[u8]| {
            for step in [1, 3, 100_000] {
                assert!(
                    read_in_steps(response, step).is_err(),
                    "{:?}",
                    String::from_utf8_lossy(response)
                );
            }
        };
        err(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n");
        err(b"HTTP/1.1 301 Moved\r\nLocation: /x\r\n\r\n");
        err(b"");
        err(b"garbage\r\n\r\n");
        err(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nshort");
        err(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n");
        err(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab");
        err(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n");
        err(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\nxx");
        err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx");
        err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
        err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n");
        err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n");
        err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFF\r\nx\r\n0\r\n\r\n");
        err(b"HTTP/1.1 2000 OK\r\n\r\n");
        err(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n");
        err(b"HTTP/1.1 200 OK\r\n\xff: x\r\n\r\n");
        err(b"HTTP/1.1 200 OK\r\nX: y");
    }

    #[test]
    fn http_responses_any_status() {
        let any = |response: &[u8]| {
            let mut seen = Vec::new();
            for step in [1, 4, 100_000] {
                let r = read_with(response, step, MAX_BODY, false)
                    .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(response)));
                seen.push((r.status, String::from_utf8(r.body).unwrap()));
            }
            assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
            seen.swap_remove(0)
        };
        assert_eq!(
            any(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops"),
            (500, "oops".into())
        );
        assert_eq!(
            any(b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"c\r\n4\r\node\"\r\n0\r\n\r\n"),
            (400, "{\"code\"".into())
        );
        assert_eq!(
            any(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 301 Moved\r\nLocation: /x\r\n\r\nsee /x"),
            (301, "see /x".into())
        );
        // 204 and 304 have no body, whatever they say.
        assert_eq!(
            any(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"),
            (204, String::new())
        );
        assert_eq!(
            any(b"HTTP/1.1 304 Not Modified\r\n\r\n"),
            (304, String::new())
        );
        // Still HTTP, still limited.
        assert!(read_with(b"garbage\r\n\r\n", 5, MAX_BODY, false).is_err());
        assert!(matches!(
            read_with(
                b"HTTP/1.1 418 x\r\nContent-Length: 11\r\n\r\n",
                5,
                10,
                false
            ),
            Err(HttpError::TooLarge(10))
        ));
        assert!(matches!(
            read_in_steps(b"HTTP/1.1 418 x\r\nContent-Length: 1\r\n\r\nx", 3),
            Err(HttpError::Status(418))
        ));
    }

    #[test]
    fn http_size_limits() {
        let big = MAX_BODY + 1;
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {big}\r\n\r\n");
        assert!(matches!(
            read_in_steps(head.as_bytes(), 1000),
            Err(HttpError::TooLarge(_))
        ));
        let mut until_close = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        until_close.resize(until_close.len() + big, b'x');
        assert!(matches!(
            read_in_steps(&until_close, 65536),
            Err(HttpError::TooLarge(_))
        ));
        let mut endless_head = b"HTTP/1.1 200 OK\r\n".to_vec();
        endless_head.resize(MAX_HEAD + 10, b'x');
        assert!(matches!(
            read_in_steps(&endless_head, 4096),
            Err(HttpError::TooLarge(_))
        ));
        let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..(MAX_BODY / 65536 + 1) {
            chunked.extend_from_slice(b"10000\r\n");
            chunked.resize(chunked.len() + 65536, b'x');
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        assert!(matches!(
            read_in_steps(&chunked, 65536),
            Err(HttpError::TooLarge(_))
        ));
        // Exactly the limit passes.
        let mut full =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {MAX_BODY}\r\n\r\n").into_bytes();
        full.resize(full.len() + MAX_BODY, b'x');
        assert_eq!(read_in_steps(&full, 65536).unwrap().len(), MAX_BODY);
        // The caller's limit, whatever it is.
        let small = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        assert_eq!(read_with(small, 7, 11, true).unwrap().body, b"hello world");
        assert!(matches!(
            read_with(small, 7, 10, true),
            Err(HttpError::TooLarge(10))
        ));
        assert!(matches!(
            read_with(b"HTTP/1.1 200 OK\r\n\r\nhello", 2, 4, true),
            Err(HttpError::TooLarge(4))
        ));
        assert!(read_with(b"HTTP/1.1 200 OK\r\n\r\n", 2, 0, true)
            .unwrap()
            .body
            .is_empty());
        // No overflow with the largest limit.
        assert_eq!(
            read_with(small, 3, usize::MAX, true).unwrap().body,
            b"hello world"
        );
    }

    #[test]
    fn http_never_panics() {
        let base = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        for i in 0..base.len() {
            for b in [0u8, b'\r', b'\n', b':', b' ', b'0', b'f', b';', 0xff] {
                let mut m = base.to_vec();
                m[i] = b;
                for step in [1, 5, 1000] {
                    for only_ok in [true, false] {
                        let _ = read_with(&m, step, MAX_BODY, only_ok);
                        let _ = read_with(&m[..i], step, MAX_BODY, only_ok);
                    }
                }
            }
        }
    }

    // ---- Against a local server.

    /// A server answering one connection with `response`; its base URL and the request it got
    /// (the head, then as much body as its `Content-Length` says).
    async fn serve_once(response: Vec<u8>) -> (String, oneshot::Receiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            let complete = |request: &[u8]| {
                let Some(end) = find(request, b"\r\n\r\n") else {
                    return false;
                };
                let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
                let length = head
                    .split("\r\n")
                    .find_map(|line| line.strip_prefix("content-length: "))
                    .map_or(0, |l| l.parse::<usize>().unwrap());
                request.len() >= end + 4 + length
            };
            while !complete(&request) {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = tx.send(request);
            let _ = socket.write_all(&response).await;
            let _ = socket.shutdown().await;
        });
        (format!("http://127.0.0.1:{port}"), rx)
    }

    #[tokio::test]
    async fn http_post_with_body_and_header() {
        let (base, got) = serve_once(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"orderId\":1}"
                .to_vec(),
        )
        .await;
        let url = format!("{base}/api/v3/order?symbol=BTCUSDT");
        let body = b"side=BUY&type=MARKET&quantity=0.5&signature=abc";
        let response = send(
            &Request {
                method: Method::Post,
                url: &url,
                headers: &[("X-MBX-APIKEY", "my-api-key")],
                body: Some(("application/x-www-form-urlencoded", body)),
            },
            TIMEOUT,
            1024,
        )
        .await
        .unwrap();
        assert_eq!(
            response,
            Response {
                status: 200,
                body: b"{\"orderId\":1}".to_vec()
            }
        );
        let port = base.rsplit(':').next().unwrap();
        let expected = format!(
            "POST /api/v3/order?symbol=BTCUSDT HTTP/1.1\r\n\
             Host: 127.0.0.1:{port}\r\n\
             User-Agent: rpc-crypto/{}\r\n\
             Accept: */*\r\n\
             Accept-Encoding: identity\r\n\
             Connection: close\r\n\
             X-MBX-APIKEY: my-api-key\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\
             \r\n\
             side=BUY&type=MARKET&quantity=0.5&signature=abc",
            env!("CARGO_PKG_VERSION"),
            body.len(),
        );
        let got = got.await.unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), expected);
    }

    #[tokio::test]
    async fn http_send_returns_any_status() {
        let error = br#"{"code":-2010,"msg":"Account has insufficient balance."}"#;
        let mut answer = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\n\r\n",
            error.len()
        )
        .into_bytes();
        answer.extend_from_slice(error);

        let (base, got) = serve_once(answer.clone()).await;
        let url = format!("{base}/api/v3/order?orderId=1");
        let request = Request {
            method: Method::Delete,
            url: &url,
            headers: &[("X-MBX-APIKEY", "k")],
            body: None,
        };
        let response = send(&request, TIMEOUT, 1024).await.unwrap();
        assert_eq!(response.status, 400);
        assert_eq!(response.body, error);
        let got = String::from_utf8(got.await.unwrap()).unwrap();
        assert!(
            got.starts_with("DELETE /api/v3/order?orderId=1 HTTP/1.1\r\n"),
            "{got}"
        );
        assert!(!got.contains("Content-Length"), "{got}");

        // `get` wants a 200.
        let (base, _got) = serve_once(answer).await;
        let e = get(&format!("{base}/x"), TIMEOUT, 1024).await.unwrap_err();
        assert!(matches!(e, HttpError::Status(400)), "{e}");
        assert_eq!(e.to_string(), "HTTP status 400");

        // The caller's limit holds for an error body too.
        let (base, _got) =
            serve_once(b"HTTP/1.1 503 Busy\r\n\r\nmore than ten bytes of apology".to_vec()).await;
        let e = send(&Request::get(&base), TIMEOUT, 10).await.unwrap_err();
        assert!(matches!(e, HttpError::TooLarge(10)), "{e}");
    }

    #[tokio::test]
    async fn http_get_reads_a_body() {
        let (base, got) = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                .to_vec(),
        )
        .await;
        let body = get(&format!("{base}/a?b=c#frag"), TIMEOUT, 100)
            .await
            .unwrap();
        assert_eq!(body, b"hello world");
        let got = String::from_utf8(got.await.unwrap()).unwrap();
        assert!(
            got.starts_with("GET /a?b=c HTTP/1.1\r\nHost: 127.0.0.1:"),
            "{got}"
        );
        assert!(got.ends_with("\r\nConnection: close\r\n\r\n"), "{got}");
    }

    #[tokio::test]
    async fn http_header_injection_refused() {
        // A server that would record whatever reached it.
        let (base, mut got) =
            serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec()).await;
        let url = format!("{base}/api/v3/account");
        for headers in [
            &[("X-MBX-APIKEY", "key\r\nX-Injected: 1")][..],
            &[("X-MBX-APIKEY\r\nX-Injected", "1")][..],
        ] {
            let request = Request {
                method: Method::Get,
                url: &url,
                headers,
                body: None,
            };
            let e = send(&request, TIMEOUT, 1024).await.unwrap_err();
            assert!(matches!(e, HttpError::Header { .. }), "{e}");
        }
        let request = Request {
            method: Method::Post,
            url: &url,
            headers: &[],
            body: Some(("text/plain\r\nX-Injected: 1", b"x")),
        };
        let e = send(&request, TIMEOUT, 1024).await.unwrap_err();
        assert!(matches!(e, HttpError::Header { .. }), "{e}");
        // Refused before connecting: the server saw nothing, and still waits.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(got.try_recv(), Err(oneshot::error::TryRecvError::Empty));
    }
}
