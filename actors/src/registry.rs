//! The Registry: allocates session ids, knows every live and parked session, and enforces the
//! session limits (seed 001's "no server sessions available"). On shutdown it closes every
//! session with 3001 and answers once the last one is gone.
//!
//! A resumable session whose connection ends is parked here ([`ParkSession`]) with everything it
//! owns (its queue keeps filling meanwhile) until its client resumes it ([`ResumeSession`]) or the
//! grace period ends. Resuming a session that is still on a connection takes it over: that
//! connection is closed with 4505 and hands the session back first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use actix::prelude::*;
use rand::RngCore;
use rpc_crypto_proto::codec::Format;
use rpc_crypto_proto::handshake::RejectReason;
use rpc_crypto_proto::{Disconnect, ErrorReply};
use tokio::sync::oneshot;

use crate::outbox::ReplayError;
use crate::router::Detach;
use crate::session::ParkedSession;
use crate::settings::{SessionLimits, SessionSettings};

/// A session's key inside this process (cheap to hash); the public id is [`SessionId`].
pub type SessionKey = u64;

/// A session's public id: 128 random bits from the OS-seeded CSPRNG, as 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    pub fn random() -> Self {
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

impl CloseSession {
    /// The close of a subscriber whose queue overflowed: 3008, without flushing.
    pub fn slow() -> Self {
        CloseSession {
            disconnect: Disconnect::SLOW,
            flush: false,
        }
    }
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

/// A connected session asked to be resumable: it may be resumed by whoever presents its id and
/// `secret` as `user`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MakeResumable {
    pub key: SessionKey,
    pub id: SessionId,
    pub secret: String,
    pub user: String,
}

/// A resumable session lost its connection: the Registry keeps it for the grace period.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ParkSession {
    pub key: SessionKey,
    pub state: ParkedSession,
}

/// A new connection (registered as `key`) asks for the session `session`, proving it with
/// `secret`. On success the session continues under its own key on that connection, and the
/// connection's own registration is given up.
#[derive(Message)]
#[rtype(result = "Result<ParkedSession, ErrorReply>")]
pub struct ResumeSession {
    pub key: SessionKey,
    pub session: String,
    pub secret: String,
    /// The id of the last message the client received: the session must still hold every later one.
    pub last_received: u64,
    pub user: String,
    /// The connection's wire format: the session's queued messages are encoded in its own.
    pub format: Format,
    pub close: Recipient<CloseSession>,
}

/// Close every session with 3001 (after flushing what is queued); resolves when none is left.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// How many sessions are on a connection, and how many are parked.
#[derive(Message)]
#[rtype(result = "(usize, usize)")]
pub struct CountSessions;

/// Who may resume a session.
struct Ticket {
    secret: String,
    user: String,
    id: SessionId,
}

enum Slot {
    /// On a connection.
    Live {
        peer: Option<IpAddr>,
        close: Option<Recipient<CloseSession>>,
    },
    /// Waiting for its client.
    Parked {
        state: Box<ParkedSession>,
        since: Instant,
    },
    /// Its connection is being closed so that `waiter` can take it over.
    HandingOver { waiter: Waiter },
}

struct Waiter {
    key: SessionKey,
    last_received: u64,
    format: Option<Format>,
    close: Option<Recipient<CloseSession>>,
    reply: oneshot::Sender<Result<ParkedSession, ErrorReply>>,
}

struct Entry {
    slot: Slot,
    ticket: Option<Ticket>,
    /// Bumped on every park, so that an expiry timer of an earlier park does nothing.
    generation: u64,
}

/// How long a resume waits for the connection it takes over to let go of the session.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Registry {
    limits: SessionLimits,
    settings: SessionSettings,
    /// Told when a parked session ends, so that it leaves its channels.
    detach: Recipient<Detach>,
    sessions: HashMap<SessionKey, Entry>,
    by_id: HashMap<String, SessionKey>,
    per_address: HashMap<IpAddr, usize>,
    live: usize,
    parked: usize,
    next_key: SessionKey,
    shutting_down: bool,
    drained: Vec<oneshot::Sender<()>>,
}

impl Registry {
    pub fn new(
        limits: SessionLimits,
        settings: SessionSettings,
        detach: Recipient<Detach>,
    ) -> Self {
        Registry {
            limits,
            settings,
            detach,
            sessions: HashMap::new(),
            by_id: HashMap::new(),
            per_address: HashMap::new(),
            live: 0,
            parked: 0,
            next_key: 1,
            shutting_down: false,
            drained: Vec::new(),
        }
    }

    /// Counts a slot in (`add`) or out of the totals.
    fn account(&mut self, slot: &Slot, add: bool) {
        match slot {
            Slot::Live { peer, .. } => {
                if add {
                    self.live += 1;
                    if let Some(ip) = peer {
                        *self.per_address.entry(*ip).or_default() += 1;
                    }
                } else {
                    self.live -= 1;
                    if let Some(ip) = peer {
                        if let Some(count) = self.per_address.get_mut(ip) {
                            *count -= 1;
                            if *count == 0 {
                                self.per_address.remove(ip);
                            }
                        }
                    }
                }
            }
            Slot::Parked { .. } if add => self.parked += 1,
            Slot::Parked { .. } => self.parked -= 1,
            Slot::HandingOver { .. } => {}
        }
    }

    /// Puts a session in a new slot; returns the old one.
    fn set_slot(&mut self, key: SessionKey, slot: Slot) -> Option<Slot> {
        if !self.sessions.contains_key(&key) {
            return None;
        }
        self.account(&slot, true);
        let entry = self.sessions.get_mut(&key).expect("checked above");
        let old = std::mem::replace(&mut entry.slot, slot);
        self.account(&old, false);
        Some(old)
    }

    /// Forgets a session entirely; a parked one also leaves its channels.
    fn remove(&mut self, key: SessionKey) {
        let Some(entry) = self.sessions.remove(&key) else {
            return;
        };
        log::debug!(
            "session {key} removed ({})",
            match entry.slot {
                Slot::Live { .. } => "live",
                Slot::Parked { .. } => "parked",
                Slot::HandingOver { .. } => "handing over",
            }
        );
        self.account(&entry.slot, false);
        if let Some(ticket) = &entry.ticket {
            self.by_id.remove(ticket.id.as_str());
        }
        match entry.slot {
            Slot::Live { .. } => {}
            Slot::Parked { .. } => self.detach.do_send(Detach { key }),
            Slot::HandingOver { waiter } => {
                let _ = waiter.reply.send(Err(ErrorReply::SESSION_NOT_FOUND));
            }
        }
        if self.live == 0 {
            for waiter in self.drained.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    /// Keeps a session for its client, for the grace period.
    fn park(&mut self, ctx: &mut Context<Self>, key: SessionKey, state: ParkedSession) {
        let max = self.settings.max_parked;
        if self.shutting_down || max == 0 || self.settings.resume_grace.is_zero() {
            self.detach.do_send(Detach { key });
            self.set_slot(
                key,
                Slot::HandingOver {
                    waiter: Waiter::none(),
                },
            );
            return self.remove(key);
        }
        while self.parked >= max {
            self.evict_oldest_parked();
        }
        let parked = Slot::Parked {
            state: Box::new(state),
            since: Instant::now(),
        };
        if self.set_slot(key, parked).is_none() {
            return;
        }
        let entry = self.sessions.get_mut(&key).expect("just parked");
        entry.generation += 1;
        let generation = entry.generation;
        ctx.run_later(self.settings.resume_grace, move |registry, _| {
            let expired = registry.sessions.get(&key).is_some_and(|e| {
                e.generation == generation && matches!(e.slot, Slot::Parked { .. })
            });
            if expired {
                log::debug!("parked session {key}: grace period over");
                registry.remove(key);
            }
        });
    }

    /// Ends the session parked longest, to make room.
    fn evict_oldest_parked(&mut self) {
        let oldest = self
            .sessions
            .iter()
            .filter_map(|(key, e)| match &e.slot {
                Slot::Parked { since, .. } => Some((*since, *key)),
                _ => None,
            })
            .min();
        match oldest {
            Some((_, key)) => {
                log::debug!("parked session {key} ended to make room");
                self.remove(key);
            }
            None => self.parked = 0,
        }
    }

    /// Gives a session to the connection registered as `waiter.key`.
    fn hand_to(
        &mut self,
        ctx: &mut Context<Self>,
        key: SessionKey,
        state: ParkedSession,
        waiter: Waiter,
    ) {
        let peer = match self.sessions.get(&waiter.key).map(|e| &e.slot) {
            Some(Slot::Live { peer, .. }) => *peer,
            // The resuming connection is gone already: the session waits again.
            _ => {
                log::debug!(
                    "session {key}: the resuming connection {} is gone",
                    waiter.key
                );
                return self.park(ctx, key, state);
            }
        };
        if waiter.format != Some(state.format()) {
            let error = ErrorReply::BAD_REQUEST
                .with_message("resume with the wire format the session was created with");
            let _ = waiter.reply.send(Err(error));
            return self.park(ctx, key, state);
        }
        match state.can_replay(waiter.last_received) {
            Ok(()) => {}
            Err(ReplayError::Gap) => {
                let _ = waiter.reply.send(Err(ErrorReply::SESSION_GAP));
                self.detach.do_send(Detach { key });
                return self.remove(key);
            }
            Err(ReplayError::Ahead) => {
                let error = ErrorReply::BAD_REQUEST
                    .with_message("last_received is past the session's last message");
                let _ = waiter.reply.send(Err(error));
                return self.park(ctx, key, state);
            }
        }
        match waiter.reply.send(Ok(state)) {
            Ok(()) => {
                // The connection gives up its own registration and carries on as `key`.
                self.remove(waiter.key);
                let close = waiter.close;
                self.set_slot(key, Slot::Live { peer, close });
            }
            Err(Ok(state)) => self.park(ctx, key, state),
            Err(Err(_)) => unreachable!("only Ok was sent"),
        }
    }
}

impl Waiter {
    /// A waiter nobody waits on: a slot placeholder for a session about to be removed.
    fn none() -> Waiter {
        let (reply, _) = oneshot::channel();
        Waiter {
            key: 0,
            last_received: 0,
            format: None,
            close: None,
            reply,
        }
    }
}

/// Constant-time equality, so that the time a wrong secret takes says nothing of the right one.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Actor for Registry {
    type Context = Context<Self>;
}

impl Handler<Register> for Registry {
    type Result = Result<Registered, RejectReason>;

    fn handle(&mut self, msg: Register, _: &mut Context<Self>) -> Self::Result {
        let full = |limit: usize, count: usize| limit != 0 && count >= limit;
        if self.shutting_down || full(self.limits.max_sessions, self.live) {
            return Err(RejectReason::NoServerSessionsAvailable);
        }
        if let Some(ip) = msg.peer {
            let count = self.per_address.get(&ip).copied().unwrap_or(0);
            if full(self.limits.max_sessions_per_address, count) {
                return Err(RejectReason::NoServerSessionsAvailable);
            }
        }
        let key = self.next_key;
        self.next_key += 1;
        let slot = Slot::Live {
            peer: msg.peer,
            close: Some(msg.close),
        };
        self.account(&slot, true);
        self.sessions.insert(
            key,
            Entry {
                slot,
                ticket: None,
                generation: 0,
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
        self.remove(msg.key);
    }
}

impl Handler<MakeResumable> for Registry {
    type Result = ();

    fn handle(&mut self, msg: MakeResumable, _: &mut Context<Self>) {
        let Some(entry) = self.sessions.get_mut(&msg.key) else {
            return;
        };
        let id = msg.id;
        self.by_id.insert(id.as_str().to_owned(), msg.key);
        entry.ticket = Some(Ticket {
            secret: msg.secret,
            user: msg.user,
            id,
        });
    }
}

impl Handler<ParkSession> for Registry {
    type Result = ();

    fn handle(&mut self, msg: ParkSession, ctx: &mut Context<Self>) {
        let handing_over = match self.sessions.get_mut(&msg.key) {
            None => return,
            Some(entry) if entry.ticket.is_none() => {
                return self.remove(msg.key);
            }
            Some(entry) => match &mut entry.slot {
                Slot::HandingOver { waiter } => Some(std::mem::replace(waiter, Waiter::none())),
                _ => None,
            },
        };
        match handing_over {
            Some(waiter) => self.hand_to(ctx, msg.key, msg.state, waiter),
            None => self.park(ctx, msg.key, msg.state),
        }
    }
}

impl Handler<ResumeSession> for Registry {
    type Result = ResponseFuture<Result<ParkedSession, ErrorReply>>;

    fn handle(&mut self, msg: ResumeSession, ctx: &mut Context<Self>) -> Self::Result {
        let found = self.by_id.get(&msg.session).copied().filter(|key| {
            self.sessions[key]
                .ticket
                .as_ref()
                .is_some_and(|t| same_secret(&t.secret, &msg.secret) && t.user == msg.user)
                && *key != msg.key
        });
        let Some(key) = found else {
            return Box::pin(async { Err(ErrorReply::SESSION_NOT_FOUND) });
        };
        let (reply, answer) = oneshot::channel();
        let waiter = Waiter {
            key: msg.key,
            last_received: msg.last_received,
            format: Some(msg.format),
            close: Some(msg.close),
            reply,
        };
        let entry = self.sessions.get_mut(&key).expect("found by id");
        match &mut entry.slot {
            Slot::HandingOver { .. } => return Box::pin(async { Err(ErrorReply::SESSION_BUSY) }),
            Slot::Live { close, .. } => {
                // Its connection is closed and hands the session back with ParkSession.
                if let Some(close) = close {
                    close.do_send(CloseSession {
                        disconnect: Disconnect::SESSION_RESUMED_ELSEWHERE,
                        flush: false,
                    });
                }
                self.set_slot(key, Slot::HandingOver { waiter });
            }
            Slot::Parked { .. } => {
                let Some(Slot::Parked { state, .. }) = self.set_slot(
                    key,
                    Slot::HandingOver {
                        waiter: Waiter::none(),
                    },
                ) else {
                    unreachable!("it was parked");
                };
                self.hand_to(ctx, key, *state, waiter);
            }
        }
        Box::pin(async move {
            match tokio::time::timeout(HANDOVER_TIMEOUT, answer).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(ErrorReply::SESSION_NOT_FOUND),
                Err(_) => Err(ErrorReply::SESSION_BUSY),
            }
        })
    }
}

impl Handler<Shutdown> for Registry {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> Self::Result {
        self.shutting_down = true;
        let parked: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, e)| matches!(e.slot, Slot::Parked { .. }))
            .map(|(key, _)| *key)
            .collect();
        for key in parked {
            self.remove(key);
        }
        for entry in self.sessions.values() {
            if let Slot::Live {
                close: Some(close), ..
            } = &entry.slot
            {
                close.do_send(CloseSession {
                    disconnect: Disconnect::SHUTDOWN,
                    flush: true,
                });
            }
        }
        if self.live == 0 {
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
    type Result = MessageResult<CountSessions>;

    fn handle(&mut self, _: CountSessions, _: &mut Context<Self>) -> Self::Result {
        MessageResult((self.live, self.parked))
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
    impl Handler<Detach> for Sink {
        type Result = ();
        fn handle(&mut self, _: Detach, _: &mut Context<Self>) {}
    }

    fn registry(max_sessions: usize, per_address: usize) -> Addr<Registry> {
        let limits = SessionLimits {
            max_sessions,
            max_sessions_per_address: per_address,
        };
        Registry::new(limits, SessionSettings::default(), Sink.start().recipient()).start()
    }

    #[actix::test]
    async fn limits_and_release() {
        let registry = registry(3, 2);
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
        assert_eq!(registry.send(CountSessions).await.unwrap(), (3, 0));
    }

    /// A registered, resumable session of `user`, parked.
    async fn parked_session(registry: &Addr<Registry>, user: &str) -> Registered {
        let close = Sink.start().recipient();
        let register = Register { peer: None, close };
        let registered = registry.send(register).await.unwrap().unwrap();
        let resumable = MakeResumable {
            key: registered.key,
            id: registered.id.clone(),
            secret: "secret".into(),
            user: user.into(),
        };
        registry.send(resumable).await.unwrap();
        let state = ParkedSession::for_test(registered.clone(), user, Format::Json);
        let park = ParkSession {
            key: registered.key,
            state,
        };
        registry.send(park).await.unwrap();
        registered
    }

    fn resume(key: SessionKey, id: &SessionId, secret: &str, user: &str) -> ResumeSession {
        ResumeSession {
            key,
            session: id.to_string(),
            secret: secret.into(),
            last_received: 0,
            user: user.into(),
            format: Format::Json,
            close: Sink.start().recipient(),
        }
    }

    #[actix::test]
    async fn a_session_resumes_only_with_its_key_and_for_its_user() {
        let registry = registry(0, 0);
        let alice = parked_session(&registry, "alice").await;
        assert_eq!(registry.send(CountSessions).await.unwrap(), (0, 1));
        let close = Sink.start().recipient();
        let bob = registry
            .send(Register { peer: None, close })
            .await
            .unwrap()
            .unwrap();
        let not_found = Err(ErrorReply::SESSION_NOT_FOUND.code);
        let code = |r: Result<ParkedSession, ErrorReply>| r.map(|_| ()).map_err(|e| e.code);
        let as_bob = resume(bob.key, &alice.id, "secret", "bob");
        assert_eq!(code(registry.send(as_bob).await.unwrap()), not_found);
        let wrong_key = resume(bob.key, &alice.id, "secreT", "alice");
        assert_eq!(code(registry.send(wrong_key).await.unwrap()), not_found);
        let unknown = resume(bob.key, &SessionId::random(), "secret", "alice");
        assert_eq!(code(registry.send(unknown).await.unwrap()), not_found);
        let right = resume(bob.key, &alice.id, "secret", "alice");
        let state = registry.send(right).await.unwrap().unwrap();
        assert_eq!(state.key(), alice.key);
        // The connection carries on as alice's session: one live session, none parked.
        assert_eq!(registry.send(CountSessions).await.unwrap(), (1, 0));
    }

    #[actix::test]
    async fn a_second_resume_during_a_takeover_is_told_busy() {
        let registry = registry(0, 0);
        let alice = parked_session(&registry, "").await;
        let mut keys = Vec::new();
        for _ in 0..3 {
            let close = Sink.start().recipient();
            let r = registry.send(Register { peer: None, close }).await.unwrap();
            keys.push(r.unwrap().key);
        }
        // The first takes it from the Registry; the second takes it over from the first, whose
        // connection (a sink here) never hands it back; the third finds it being handed over.
        let first = resume(keys[0], &alice.id, "secret", "");
        registry.send(first).await.unwrap().unwrap();
        let second = registry.send(resume(keys[1], &alice.id, "secret", ""));
        let third = resume(keys[2], &alice.id, "secret", "");
        let third = registry.send(third).await.unwrap();
        assert_eq!(
            third.map(|_| ()).unwrap_err().code,
            ErrorReply::SESSION_BUSY.code
        );
        drop(second);
    }
}
