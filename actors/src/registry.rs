//! The Registry: allocates session ids, knows every live session, and enforces the session limits
//! (seed 001's "no server sessions available"). On shutdown it closes every session with 3001 and
//! answers once the last one is gone.

use std::collections::HashMap;
use std::net::IpAddr;

use actix::prelude::*;
use rand::RngCore;
use rpc_crypto_proto::handshake::RejectReason;
use rpc_crypto_proto::Disconnect;
use tokio::sync::oneshot;

use crate::settings::SessionLimits;

/// A session's key inside this process (cheap to hash); the public id is [`SessionId`].
pub type SessionKey = u64;

/// A session's public id: 128 random bits from the OS-seeded CSPRNG, as 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    fn random() -> Self {
        let mut bits = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut bits);
        SessionId(bits.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Asks a session to end with a disconnect code.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct CloseSession {
    pub disconnect: Disconnect,
    /// Write everything already queued for the client before the close frame.
    pub flush: bool,
}

/// A new connection asks for a session.
#[derive(Message)]
#[rtype(result = "Result<Registered, RejectReason>")]
pub struct Register {
    pub peer: Option<IpAddr>,
    pub close: Recipient<CloseSession>,
}

/// What [`Register`] grants.
#[derive(Debug, Clone)]
pub struct Registered {
    pub key: SessionKey,
    pub id: SessionId,
}

/// A session has ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unregister {
    pub key: SessionKey,
}

/// Close every session with 3001 (after flushing what is queued); resolves when none is left.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// How many sessions are live.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountSessions;

struct Entry {
    peer: Option<IpAddr>,
    close: Recipient<CloseSession>,
}

pub struct Registry {
    limits: SessionLimits,
    sessions: HashMap<SessionKey, Entry>,
    per_address: HashMap<IpAddr, usize>,
    next_key: SessionKey,
    shutting_down: bool,
    drained: Vec<oneshot::Sender<()>>,
}

impl Registry {
    pub fn new(limits: SessionLimits) -> Self {
        Registry {
            limits,
            sessions: HashMap::new(),
            per_address: HashMap::new(),
            next_key: 1,
            shutting_down: false,
            drained: Vec::new(),
        }
    }
}

impl Actor for Registry {
    type Context = Context<Self>;
}

impl Handler<Register> for Registry {
    type Result = Result<Registered, RejectReason>;

    fn handle(&mut self, msg: Register, _: &mut Context<Self>) -> Self::Result {
        let full = |limit: usize, count: usize| limit != 0 && count >= limit;
        if self.shutting_down || full(self.limits.max_sessions, self.sessions.len()) {
            return Err(RejectReason::NoServerSessionsAvailable);
        }
        if let Some(ip) = msg.peer {
            let count = self.per_address.entry(ip).or_default();
            if full(self.limits.max_sessions_per_address, *count) {
                return Err(RejectReason::NoServerSessionsAvailable);
            }
            *count += 1;
        }
        let key = self.next_key;
        self.next_key += 1;
        self.sessions.insert(
            key,
            Entry {
                peer: msg.peer,
                close: msg.close,
            },
        );
        Ok(Registered {
            key,
            id: SessionId::random(),
        })
    }
}

impl Handler<Unregister> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Unregister, _: &mut Context<Self>) {
        let Some(entry) = self.sessions.remove(&msg.key) else {
            return;
        };
        if let Some(ip) = entry.peer {
            if let Some(count) = self.per_address.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    self.per_address.remove(&ip);
                }
            }
        }
        if self.sessions.is_empty() {
            for waiter in self.drained.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

impl Handler<Shutdown> for Registry {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> Self::Result {
        self.shutting_down = true;
        for entry in self.sessions.values() {
            entry.close.do_send(CloseSession {
                disconnect: Disconnect::SHUTDOWN,
                flush: true,
            });
        }
        if self.sessions.is_empty() {
            return Box::pin(async {});
        }
        let (tx, rx) = oneshot::channel();
        self.drained.push(tx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<CountSessions> for Registry {
    type Result = usize;

    fn handle(&mut self, _: CountSessions, _: &mut Context<Self>) -> usize {
        self.sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sink;
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<CloseSession> for Sink {
        type Result = ();
        fn handle(&mut self, _: CloseSession, _: &mut Context<Self>) {}
    }

    #[actix::test]
    async fn limits_and_release() {
        let registry = Registry::new(SessionLimits {
            max_sessions: 3,
            max_sessions_per_address: 2,
        })
        .start();
        let sink = Sink.start().recipient();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let reg = |peer| Register {
            peer: Some(peer),
            close: sink.clone(),
        };
        let first = registry.send(reg(a)).await.unwrap().unwrap();
        let second = registry.send(reg(a)).await.unwrap().unwrap();
        assert_ne!(first.id, second.id);
        assert_eq!(first.id.as_str().len(), 32);
        assert_eq!(
            registry.send(reg(a)).await.unwrap().unwrap_err(),
            RejectReason::NoServerSessionsAvailable
        );
        registry.send(reg(b)).await.unwrap().unwrap();
        assert_eq!(
            registry.send(reg(b)).await.unwrap().unwrap_err(),
            RejectReason::NoServerSessionsAvailable
        );
        registry.send(Unregister { key: first.key }).await.unwrap();
        registry.send(reg(a)).await.unwrap().unwrap();
        assert_eq!(registry.send(CountSessions).await.unwrap(), 3);
    }
}
