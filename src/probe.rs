//! `rpc-crypto health`: one `GET /health` to a running broker, for a container's `HEALTHCHECK`
//! (a `scratch` image has no `curl`) or a service manager.
//!
//! A plain HTTP/1.1 request over a std `TcpStream` with `Connection: close`: one GET to our own
//! listener does not need an HTTP client crate, and a blocking socket with time-outs needs no
//! runtime. Only `http://`: a TLS listener is probed with the orchestrator's own HTTPS check.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs as _};
use std::time::{Duration, Instant};

/// The most of an answer that is read: `/health` answers a few hundred bytes.
const MAX_ANSWER: u64 = 64 * 1024;

/// Where `/health` is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host[:port]` as given, for the `Host` header and the messages.
    pub authority: String,
    pub host: String,
    pub port: u16,
    pub path: String,
}

/// Why the probe did not get a 200.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}")]
    Url(String),
    #[error("cannot resolve {authority}: {error}")]
    Resolve {
        authority: String,
        error: std::io::Error,
    },
    #[error("cannot connect to {authority}: {error}")]
    Connect {
        authority: String,
        error: std::io::Error,
    },
    #[error("{authority} did not answer within {timeout:?}")]
    Timeout {
        authority: String,
        timeout: Duration,
    },
    #[error("{authority}: {error}")]
    Io {
        authority: String,
        error: std::io::Error,
    },
    #[error("{authority} answered no HTTP status line: {head:?}")]
    Malformed { authority: String, head: String },
    #[error("{authority}{path} answered {status}: {body}")]
    Unhealthy {
        authority: String,
        path: String,
        status: String,
        body: String,
    },
}

impl Target {
    /// Parses `http://host[:port][/path]` (port 80 and path `/health` when left out); IPv6
    /// hosts in brackets.
    pub fn parse(url: &str) -> Result<Target, ProbeError> {
        let bad = |why: &str| ProbeError::Url(format!("--url {url}: {why}"));
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(bad(if url.starts_with("https://") {
                "https is not supported (the probe speaks plain HTTP to a local listener)"
            } else {
                "must start with http://"
            }));
        };
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/health"),
        };
        let (host, port) = match authority.strip_prefix('[') {
            Some(bracketed) => {
                let (host, after) = bracketed
                    .split_once(']')
                    .ok_or_else(|| bad("an IPv6 host needs its closing `]`"))?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => 80,
            Some(port) => port.parse().map_err(|_| bad("the port is not a number"))?,
        };
        Ok(Target {
            authority: authority.to_owned(),
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    /// `/health` of a listener bound to `listen`; an unspecified address (`0.0.0.0`, `[::]`)
    /// is asked on loopback.
    pub fn of_listener(listen: SocketAddr) -> Target {
        let ip = match listen.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let addr = SocketAddr::new(ip, listen.port());
        Target {
            authority: addr.to_string(),
            host: ip.to_string(),
            port: addr.port(),
            path: "/health".to_owned(),
        }
    }

    /// `http://authority/path`.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.authority, self.path)
    }
}

/// What a healthy broker answered.
#[derive(Debug)]
pub struct Healthy {
    pub status: String,
    pub body: String,
}

/// GETs the target within `timeout` (connect, write and read together); `Ok` on a 200 only.
pub fn check(target: &Target, timeout: Duration) -> Result<Healthy, ProbeError> {
    let deadline = Instant::now() + timeout;
    let io = |error: std::io::Error| {
        let authority = target.authority.clone();
        // A socket time-out reads as EAGAIN ("Resource temporarily unavailable").
        if matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            ProbeError::Timeout { authority, timeout }
        } else {
            ProbeError::Io { authority, error }
        }
    };
    let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|error| ProbeError::Resolve {
            authority: target.authority.clone(),
            error,
        })?
        .collect();
    let mut last_error = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    let mut connected = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, remaining(deadline)) {
            Ok(stream) => {
                connected = Some(stream);
                break;
            }
            Err(error) => last_error = error,
        }
    }
    let mut stream = connected.ok_or_else(|| ProbeError::Connect {
        authority: target.authority.clone(),
        error: last_error,
    })?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: rpc-crypto-health\r\n\
         Accept: application/json\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    stream
        .set_write_timeout(Some(remaining(deadline)))
        .map_err(io)?;
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while (answer.len() as u64) < MAX_ANSWER {
        // The deadline covers the whole answer, not each read.
        stream
            .set_read_timeout(Some(remaining(deadline)))
            .map_err(io)?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(io(error)),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..))
        .filter(|status| status.get(..3).is_some_and(is_status_code))
        .ok_or_else(|| ProbeError::Malformed {
            authority: target.authority.clone(),
            head: status_line.chars().take(80).collect(),
        })?;
    let body = body.trim().to_owned();
    if status.starts_with("200") {
        Ok(Healthy {
            status: status.to_owned(),
            body,
        })
    } else {
        Err(ProbeError::Unhealthy {
            authority: target.authority.clone(),
            path: target.path.clone(),
            status: status.to_owned(),
            body: if body.is_empty() {
                "(no body)".to_owned()
            } else {
                body
            },
        })
    }
}

fn is_status_code(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit())
}

/// What is left until `deadline`, never zero (a zero time-out is refused by the socket calls,
/// and an elapsed deadline then fails as a time-out on the next call).
fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let target = Target::parse("http://127.0.0.1:8000/health").unwrap();
        assert_eq!(
            target,
            Target {
                authority: "127.0.0.1:8000".into(),
                host: "127.0.0.1".into(),
                port: 8000,
                path: "/health".into(),
            }
        );
        let target = Target::parse("http://localhost").unwrap();
        assert_eq!((target.port, target.path.as_str()), (80, "/health"));
        let target = Target::parse("http://[::1]:9000/ready").unwrap();
        assert_eq!(
            (target.host.as_str(), target.port, target.path.as_str()),
            ("::1", 9000, "/ready")
        );
        for bad in [
            "https://127.0.0.1/health",
            "127.0.0.1:8000",
            "http://:8000/",
            "http://[::1/health",
            "http://host:port/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_unspecified_listener_is_asked_on_loopback() {
        let target = Target::of_listener("0.0.0.0:8000".parse().unwrap());
        assert_eq!(target.url(), "http://127.0.0.1:8000/health");
        let target = Target::of_listener("[::]:8001".parse().unwrap());
        assert_eq!(target.url(), "http://[::1]:8001/health");
        let target = Target::of_listener("10.0.0.5:8000".parse().unwrap());
        assert_eq!(target.url(), "http://10.0.0.5:8000/health");
    }
}
