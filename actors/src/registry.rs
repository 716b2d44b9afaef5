//! The Registry: allocates session ids, knows every live and parked session, and enforces the
//! session limits (seed 001's "no server sessions available"). On shutdown it closes every
//! session with 3001 and answers once the last one is gone.
//!
//! A resumable session whose connection ends is parked here ([`ParkSession`]) with everything it
//! owns (its queue keeps filling meanwhile) until its client resumes it ([`ResumeSession`]) or the
//! grace period ends. Resuming a session that is still on a connection takes it over: that
//! connection is closed with 4505 and hands the session back first.
//!
//! It also knows each session's user (once its connect authenticated it), enforces the
//! sessions-per-user limit, passes the server API's orders to a user's sessions ([`Control`]),
//! and keeps the sessions a backend created ([`CreateSession`]) until a client claims them with
//! their key ([`ClaimSession`]) or their lifetime ends.
//!
//! A session of the secure transport is its client id's: at most one per id. [`PeekSecure`]
//! tells a handshake where the client's session left off, and [`ClaimSecure`] gives it that
//! session once the client proved its key (taking it over from another connection, which is
//! closed with 4000) or registers a new one.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use rand::RngCore;
use rpc_crypto_proto::codec::Format;
use rpc_crypto_proto::handshake::RejectReason;
use rpc_crypto_proto::{Disconnect, ErrorReply};
use tokio::sync::oneshot;

use crate::capacity::shrink_sparse;
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

/// An order from the server API to a live session.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum Control {
    /// Subscribe the session to a channel (a server-side subscription: a `subscribe` push).
    Subscribe { channel: String },
    /// Unsubscribe it (an `unsubscribe` push with code 2000).
    Unsubscribe { channel: String },
    /// End it, after what is queued is written.
    Disconnect(Disconnect),
}

/// A new connection asks for a session.
#[derive(Message)]
#[rtype(result = "Result<Registered, RejectReason>")]
pub struct Register {
    pub peer: Option<IpAddr>,
    pub close: Recipient<CloseSession>,
    pub control: Recipient<Control>,
}

/// A connect authenticated its user: the session counts against the user's limit
/// (`max_sessions_per_user`, past it 3504) and receives the orders addressed to the user.
#[derive(Message)]
#[rtype(result = "Result<(), Disconnect>")]
pub struct BindUser {
    pub key: SessionKey,
    pub user: String,
}

/// A backend creates a session for `owner` that lasts `lifetime` (seed 004 SessionCreate).
#[derive(Message)]
#[rtype(result = "Result<CreatedSession, ErrorReply>")]
pub struct CreateSession {
    pub owner: String,
    pub lifetime: Duration,
}

/// What [`CreateSession`] gives the backend, to hand to its client. `Debug` leaves the key out.
#[derive(Clone)]
pub struct CreatedSession {
    pub id: SessionId,
    /// The credential the client presents as its connect token: bound to this session and owner.
    pub key: String,
    /// When the session ends, in unix seconds.
    pub expires_at: u64,
}

impl std::fmt::Debug for CreatedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedSession")
            .field("id", &self.id)
            .field("key", &crate::auth::redacted(&self.key))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A connection (registered as `key`) presents the key of a session a backend created; it
/// carries on as that session, and a connection that had it before is closed with 4505.
#[derive(Message)]
#[rtype(result = "Result<Claimed, Disconnect>")]
pub struct ClaimSession {
    pub key: SessionKey,
    pub credential: String,
}

/// A claimed session: its id, owner and end.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: SessionId,
    pub user: String,
    pub expires_at: u64,
}

/// Passes `control` to the live sessions of `user` (all of them) or of `client` (that one);
/// answers how many got it. A disconnect also ends matching parked sessions.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ControlSessions {
    pub user: Option<String>,
    pub client: Option<String>,
    pub control: Control,
}

/// The Registry's counts, for the server API's `info`.
#[derive(Message)]
#[rtype(result = "RegistryInfo")]
pub struct GetRegistryInfo;

#[derive(Debug, Clone, Copy, serde::Serialize, MessageResponse)]
pub struct RegistryInfo {
    /// Sessions on a connection.
    pub sessions: usize,
    /// Sessions waiting for their client to resume them.
    pub parked: usize,
    /// Distinct users with a session.
    pub users: usize,
    /// Sessions created by a backend and not yet ended.
    pub created: usize,
}

/// The prefix of the keys of backend-created sessions, which tells them from JWTs.
pub const CREATED_SESSION_KEY_PREFIX: &str = "rcs_";

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
    pub control: Recipient<Control>,
}

/// Where the secure-transport client `client_id` left off: the last SEQUENCE its session read,
/// or 0 when it has no session that still holds every message after `last_seen_order` (the
/// handshake then starts a new one).
#[derive(Message)]
#[rtype(result = "i64")]
pub struct PeekSecure {
    pub client_id: String,
    pub last_seen_order: u64,
}

/// A secure-transport connection (registered as `key`) whose client proved its key asks for the
/// client's session: `Ok(Some)` hands it over (taken from the connection that had it, which is
/// closed with 4000 [`Disconnect::SESSION_RESUMED_ELSEWHERE`]), `Ok(None)` makes `key` the
/// client's session, with `sequence` as its inbound SEQUENCE. `Err(1102)`: the session no
/// longer holds everything after `last_seen_order` and has ended.
#[derive(Message)]
#[rtype(result = "Result<Option<ParkedSession>, ErrorReply>")]
pub struct ClaimSecure {
    pub key: SessionKey,
    pub client_id: String,
    pub last_seen_order: u64,
    pub sequence: Arc<AtomicI64>,
    pub close: Recipient<CloseSession>,
    pub control: Recipient<Control>,
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
}

enum Slot {
    /// On a connection.
    Live {
        peer: Option<IpAddr>,
        close: Option<Recipient<CloseSession>>,
        control: Option<Recipient<Control>>,
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
    control: Option<Recipient<Control>>,
    reply: oneshot::Sender<Result<ParkedSession, ErrorReply>>,
}

struct Entry {
    id: SessionId,
    /// Empty until a connect authenticates a user.
    user: String,
    slot: Slot,
    ticket: Option<Ticket>,
    /// Bumped on every park, so that an expiry timer of an earlier park does nothing.
    generation: u64,
}

/// A session a backend created, until its lifetime ends.
struct Created {
    owner: String,
    secret: String,
    expires_at: u64,
    /// The connection that has it now.
    holder: Option<SessionKey>,
}

/// The session of a secure-transport client.
struct SecureEntry {
    key: SessionKey,
    /// The last SEQUENCE the session read, written by the session as it reads.
    sequence: Arc<AtomicI64>,
}

/// How long a resume waits for the connection it takes over to let go of the session.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Registry {
    limits: SessionLimits,
    settings: SessionSettings,
    /// Told when a parked session ends, so that it leaves its channels.
    detach: Recipient<Detach>,
    sessions: HashMap<SessionKey, Entry>,
    /// Every session by its public id.
    by_id: HashMap<String, SessionKey>,
    per_address: HashMap<IpAddr, usize>,
    /// The sessions of each user.
    users: HashMap<String, HashSet<SessionKey>>,
    /// Sessions created by a backend, by id.
    created: HashMap<String, Created>,
    /// Secure-transport sessions, by client id.
    secure: HashMap<String, SecureEntry>,
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
            users: HashMap::new(),
            created: HashMap::new(),
            secure: HashMap::new(),
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
        if self.by_id.get(entry.id.as_str()) == Some(&key) {
            self.by_id.remove(entry.id.as_str());
        }
        self.unbind_user(key, &entry.user);
        if self.secure.get(&entry.user).is_some_and(|s| s.key == key) {
            self.secure.remove(&entry.user);
        }
        if let Some(created) = self.created.get_mut(entry.id.as_str()) {
            if created.holder == Some(key) {
                created.holder = None;
            }
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
        // The room a crowd of sessions needed is given back once most of it is gone.
        shrink_sparse(&mut self.sessions);
        shrink_sparse(&mut self.by_id);
        shrink_sparse(&mut self.per_address);
        shrink_sparse(&mut self.users);
    }

    fn unbind_user(&mut self, key: SessionKey, user: &str) {
        if user.is_empty() {
            return;
        }
        if let Some(keys) = self.users.get_mut(user) {
            keys.remove(&key);
            if keys.is_empty() {
                self.users.remove(user);
            }
        }
    }

    /// Counts `key` as one of `user`'s sessions, within the per-user limit. `replacing` is a
    /// session of the same user that this one supersedes (it does not count).
    fn bind_user(
        &mut self,
        key: SessionKey,
        user: &str,
        replacing: Option<SessionKey>,
    ) -> Result<(), Disconnect> {
        let Some(entry) = self.sessions.get(&key) else {
            return Err(Disconnect::CONNECTION_CLOSED);
        };
        if entry.user == user || user.is_empty() {
            return Ok(());
        }
        let limit = self.limits.max_sessions_per_user;
        let keys = self.users.get(user);
        let count = keys.map_or(0, |k| {
            k.len() - usize::from(replacing.is_some_and(|r| k.contains(&r)))
        });
        if limit != 0 && count >= limit {
            return Err(Disconnect::CONNECTION_LIMIT.with_reason("too many sessions of this user"));
        }
        let old = std::mem::replace(
            &mut self.sessions.get_mut(&key).expect("checked above").user,
            user.to_owned(),
        );
        self.unbind_user(key, &old);
        self.users.entry(user.to_owned()).or_default().insert(key);
        Ok(())
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

    /// Starts handing the session `key` to `waiter`: at once if it is parked, else once its
    /// connection, closed now with 4505, has handed it back. False if it is being handed over
    /// already.
    fn take_over(&mut self, ctx: &mut Context<Self>, key: SessionKey, waiter: Waiter) -> bool {
        let Some(entry) = self.sessions.get_mut(&key) else {
            return false;
        };
        match &mut entry.slot {
            Slot::HandingOver { .. } => return false,
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
        true
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
                let (close, control) = (waiter.close, waiter.control);
                self.set_slot(
                    key,
                    Slot::Live {
                        peer,
                        close,
                        control,
                    },
                );
            }
            Err(Ok(state)) => self.park(ctx, key, state),
            Err(Err(_)) => unreachable!("only Ok was sent"),
        }
    }
}

/// The session a [`Waiter`] is handed, once the Registry sends it: 1101 if it ended meanwhile,
/// 1103 if its connection did not let go of it in time.
async fn handed_over(
    answer: oneshot::Receiver<Result<ParkedSession, ErrorReply>>,
) -> Result<ParkedSession, ErrorReply> {
    match tokio::time::timeout(HANDOVER_TIMEOUT, answer).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(ErrorReply::SESSION_NOT_FOUND),
        Err(_) => Err(ErrorReply::SESSION_BUSY),
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
            control: None,
            reply,
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_hex(bytes: usize) -> String {
    let mut bits = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut bits);
    bits.iter().map(|b| format!("{b:02x}")).collect()
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
            control: Some(msg.control),
        };
        self.account(&slot, true);
        let id = SessionId::random();
        self.by_id.insert(id.as_str().to_owned(), key);
        self.sessions.insert(
            key,
            Entry {
                id: id.clone(),
                user: String::new(),
                slot,
                ticket: None,
                generation: 0,
            },
        );
        Ok(Registered { key, id })
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
        entry.ticket = Some(Ticket {
            secret: msg.secret,
            user: msg.user,
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
            control: Some(msg.control),
            reply,
        };
        if !self.take_over(ctx, key, waiter) {
            return Box::pin(async { Err(ErrorReply::SESSION_BUSY) });
        }
        Box::pin(handed_over(answer))
    }
}

impl Handler<PeekSecure> for Registry {
    type Result = i64;

    fn handle(&mut self, msg: PeekSecure, _: &mut Context<Self>) -> i64 {
        let Some(secure) = self.secure.get(&msg.client_id) else {
            return 0;
        };
        match self.sessions.get(&secure.key).map(|e| &e.slot) {
            Some(Slot::Parked { state, .. }) if state.can_replay(msg.last_seen_order).is_err() => 0,
            Some(_) => secure.sequence.load(Ordering::Relaxed),
            None => 0,
        }
    }
}

impl Handler<ClaimSecure> for Registry {
    type Result = ResponseFuture<Result<Option<ParkedSession>, ErrorReply>>;

    fn handle(&mut self, msg: ClaimSecure, ctx: &mut Context<Self>) -> Self::Result {
        let existing = self
            .secure
            .get(&msg.client_id)
            .map(|s| s.key)
            .filter(|key| *key != msg.key && self.sessions.contains_key(key));
        // A parked session that no longer holds what the client missed ends here, and the
        // client gets a new one (its handshake was told so by PeekSecure).
        let existing = existing.filter(|key| match &self.sessions[key].slot {
            Slot::Parked { state, .. } => state.can_replay(msg.last_seen_order).is_ok(),
            _ => true,
        });
        if let Some(stale) = self.secure.get(&msg.client_id).map(|s| s.key) {
            if existing.is_none() && stale != msg.key {
                self.remove(stale);
            }
        }
        let Some(key) = existing else {
            // The client's first session (or its last one ended): this connection's.
            if let Err(disconnect) = self.bind_user(msg.key, &msg.client_id, None) {
                let error = ErrorReply::LIMIT_EXCEEDED.with_message(disconnect.reason);
                return Box::pin(async { Err(error) });
            }
            let Some(entry) = self.sessions.get_mut(&msg.key) else {
                return Box::pin(async { Err(ErrorReply::SESSION_NOT_FOUND) });
            };
            // Parked when its connection ends; only a handshake with the client's key takes it
            // back, so the ticket's secret is never told to anyone.
            entry.ticket = Some(Ticket {
                secret: random_hex(32),
                user: msg.client_id.clone(),
            });
            let secure = SecureEntry {
                key: msg.key,
                sequence: msg.sequence,
            };
            self.secure.insert(msg.client_id, secure);
            return Box::pin(async { Ok(None) });
        };
        let (reply, answer) = oneshot::channel();
        let waiter = Waiter {
            key: msg.key,
            last_received: msg.last_seen_order,
            format: Some(Format::Json),
            close: Some(msg.close),
            control: Some(msg.control),
            reply,
        };
        if !self.take_over(ctx, key, waiter) {
            return Box::pin(async { Err(ErrorReply::SESSION_BUSY) });
        }
        Box::pin(async move { handed_over(answer).await.map(Some) })
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

impl Handler<BindUser> for Registry {
    type Result = Result<(), Disconnect>;

    fn handle(&mut self, msg: BindUser, _: &mut Context<Self>) -> Self::Result {
        self.bind_user(msg.key, &msg.user, None)
    }
}

/// The longest lifetime a backend may give a session.
const MAX_CREATED_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

impl Handler<CreateSession> for Registry {
    type Result = Result<CreatedSession, ErrorReply>;

    fn handle(&mut self, msg: CreateSession, ctx: &mut Context<Self>) -> Self::Result {
        if msg.owner.is_empty() {
            return Err(ErrorReply::BAD_REQUEST.with_message("owner required"));
        }
        if msg.lifetime.is_zero() || msg.lifetime > MAX_CREATED_LIFETIME {
            return Err(ErrorReply::BAD_REQUEST
                .with_message("lifetime must be between 1 second and 30 days"));
        }
        if self.shutting_down {
            return Err(ErrorReply::NOT_AVAILABLE);
        }
        // Each waits for its client for up to its lifetime: bounded like sessions are.
        let limit = self.limits.max_sessions;
        if limit != 0 && self.created.len() >= limit {
            return Err(ErrorReply::LIMIT_EXCEEDED
                .with_message("as many created sessions as limits.max_sessions wait already"));
        }
        let id = SessionId::random();
        let secret = random_hex(32);
        let expires_at = unix_now() + msg.lifetime.as_secs();
        let key = format!("{CREATED_SESSION_KEY_PREFIX}{id}_{secret}");
        self.created.insert(
            id.as_str().to_owned(),
            Created {
                owner: msg.owner,
                secret,
                expires_at,
                holder: None,
            },
        );
        // The connection that holds it then ends by its own expiry timer (3005).
        let expiring = id.clone();
        ctx.run_later(msg.lifetime, move |registry, _| {
            registry.created.remove(expiring.as_str());
        });
        Ok(CreatedSession {
            id,
            key,
            expires_at,
        })
    }
}

impl Handler<ClaimSession> for Registry {
    type Result = Result<Claimed, Disconnect>;

    fn handle(&mut self, msg: ClaimSession, _: &mut Context<Self>) -> Self::Result {
        // One answer for every failure, so that nothing about other sessions leaks.
        let refused = || Disconnect::INVALID_TOKEN.with_reason("unknown or ended session");
        let (id, secret) = msg
            .credential
            .strip_prefix(CREATED_SESSION_KEY_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .ok_or_else(refused)?;
        let created = self.created.get(id).ok_or_else(refused)?;
        if !same_secret(&created.secret, secret) || created.expires_at <= unix_now() {
            return Err(refused());
        }
        let (owner, expires_at, previous) =
            (created.owner.clone(), created.expires_at, created.holder);
        let previous = previous.filter(|p| *p != msg.key);
        self.bind_user(msg.key, &owner, previous)?;
        if let Some(previous) = previous {
            match self.sessions.get(&previous).map(|e| &e.slot) {
                Some(Slot::Live {
                    close: Some(close), ..
                }) => close.do_send(CloseSession {
                    disconnect: Disconnect::SESSION_RESUMED_ELSEWHERE,
                    flush: false,
                }),
                // Parked for a resume: the session goes on here instead.
                Some(Slot::Parked { .. }) => self.remove(previous),
                _ => {}
            }
            // Its id moves to the new connection now; the old one only ends (it is not parked
            // for a resume: the session goes on here).
            if let Some(entry) = self.sessions.get_mut(&previous) {
                entry.ticket = None;
                entry.id = SessionId::random();
                self.by_id.insert(entry.id.as_str().to_owned(), previous);
            }
        }
        let entry = self.sessions.get_mut(&msg.key).ok_or_else(refused)?;
        let old_id = std::mem::replace(&mut entry.id, SessionId(id.to_owned()));
        self.by_id.remove(old_id.as_str());
        self.by_id.insert(id.to_owned(), msg.key);
        if let Some(created) = self.created.get_mut(id) {
            created.holder = Some(msg.key);
        }
        Ok(Claimed {
            id: SessionId(id.to_owned()),
            user: owner,
            expires_at,
        })
    }
}

impl Handler<ControlSessions> for Registry {
    type Result = usize;

    fn handle(&mut self, msg: ControlSessions, _: &mut Context<Self>) -> usize {
        let mut keys: Vec<SessionKey> = Vec::new();
        if let Some(user) = &msg.user {
            keys.extend(self.users.get(user).into_iter().flatten().copied());
        }
        if let Some(client) = &msg.client {
            let key = self.by_id.get(client).copied();
            match &msg.user {
                Some(_) => keys.retain(|k| Some(*k) == key),
                None => keys.extend(key),
            }
        }
        let mut reached = 0;
        for key in keys {
            match self.sessions.get(&key).map(|e| &e.slot) {
                Some(Slot::Live {
                    control: Some(control),
                    ..
                }) => {
                    control.do_send(msg.control.clone());
                    reached += 1;
                }
                Some(Slot::Parked { .. }) if matches!(msg.control, Control::Disconnect(_)) => {
                    self.remove(key);
                    reached += 1;
                }
                _ => {}
            }
        }
        reached
    }
}

#[cfg(debug_assertions)]
impl Handler<crate::fault::InjectPanic> for Registry {
    type Result = ();

    fn handle(&mut self, _: crate::fault::InjectPanic, _: &mut Context<Self>) {
        panic!("injected panic in the Registry (TEST_RPC_CRYPTO_FAULT_INJECTION)");
    }
}

impl Handler<GetRegistryInfo> for Registry {
    type Result = RegistryInfo;

    fn handle(&mut self, _: GetRegistryInfo, _: &mut Context<Self>) -> RegistryInfo {
        RegistryInfo {
            sessions: self.live,
            parked: self.parked,
            users: self.users.len(),
            created: self.created.len(),
        }
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
    impl Handler<Control> for Sink {
        type Result = ();
        fn handle(&mut self, _: Control, _: &mut Context<Self>) {}
    }

    fn register(peer: Option<IpAddr>) -> Register {
        let sink = Sink.start();
        Register {
            peer,
            close: sink.clone().recipient(),
            control: sink.recipient(),
        }
    }

    fn registry(max_sessions: usize, per_address: usize) -> Addr<Registry> {
        let limits = SessionLimits {
            max_sessions,
            max_sessions_per_address: per_address,
            max_sessions_per_user: 2,
            ..SessionLimits::default()
        };
        Registry::new(limits, SessionSettings::default(), Sink.start().recipient()).start()
    }

    #[actix::test]
    async fn limits_and_release() {
        let registry = registry(3, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let reg = |peer| register(Some(peer));
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
        let registered = registry.send(register(None)).await.unwrap().unwrap();
        let resumable = MakeResumable {
            key: registered.key,
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
            control: Sink.start().recipient(),
        }
    }

    #[actix::test]
    async fn a_session_resumes_only_with_its_key_and_for_its_user() {
        let registry = registry(0, 0);
        let alice = parked_session(&registry, "alice").await;
        assert_eq!(registry.send(CountSessions).await.unwrap(), (0, 1));
        let bob = registry.send(register(None)).await.unwrap().unwrap();
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
            let r = registry.send(register(None)).await.unwrap();
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

    #[actix::test]
    async fn a_user_has_at_most_max_sessions_per_user() {
        let registry = registry(0, 0);
        let mut keys = Vec::new();
        for _ in 0..4 {
            keys.push(registry.send(register(None)).await.unwrap().unwrap().key);
        }
        let bind = |key, user: &str| BindUser {
            key,
            user: user.into(),
        };
        registry
            .send(bind(keys[0], "alice"))
            .await
            .unwrap()
            .unwrap();
        registry
            .send(bind(keys[1], "alice"))
            .await
            .unwrap()
            .unwrap();
        let third = registry.send(bind(keys[2], "alice")).await.unwrap();
        assert_eq!(third.unwrap_err().code, Disconnect::CONNECTION_LIMIT.code);
        registry.send(bind(keys[3], "bob")).await.unwrap().unwrap();
        registry.send(Unregister { key: keys[0] }).await.unwrap();
        registry
            .send(bind(keys[2], "alice"))
            .await
            .unwrap()
            .unwrap();
        let info = registry.send(GetRegistryInfo).await.unwrap();
        assert_eq!((info.sessions, info.users), (3, 2));
    }

    #[actix::test]
    async fn a_created_session_is_claimed_with_its_key_only_within_its_lifetime() {
        let registry = registry(0, 0);
        let create = CreateSession {
            owner: "alice".into(),
            lifetime: Duration::from_secs(60),
        };
        let created = registry.send(create).await.unwrap().unwrap();
        assert!(created.key.starts_with(CREATED_SESSION_KEY_PREFIX));
        let first = registry.send(register(None)).await.unwrap().unwrap();
        let claim = |key, credential: String| ClaimSession { key, credential };
        let wrong = created
            .key
            .replace(&created.key[created.key.len() - 4..], "0000");
        let refused = registry.send(claim(first.key, wrong)).await.unwrap();
        assert_eq!(refused.unwrap_err().code, Disconnect::INVALID_TOKEN.code);
        let claimed = registry
            .send(claim(first.key, created.key.clone()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (claimed.id.as_str(), claimed.user.as_str()),
            (created.id.as_str(), "alice")
        );
        // Claimed again from another connection: that one has it now, the first is told 4505.
        let second = registry.send(register(None)).await.unwrap().unwrap();
        let again = registry
            .send(claim(second.key, created.key.clone()))
            .await
            .unwrap();
        assert_eq!(again.unwrap().id, created.id);
        // Orders for the session's id reach only the connection that holds it.
        let reached = registry
            .send(ControlSessions {
                user: None,
                client: Some(created.id.to_string()),
                control: Control::Unsubscribe {
                    channel: "chat:x".into(),
                },
            })
            .await
            .unwrap();
        assert_eq!(reached, 1);

        let short = CreateSession {
            owner: "bob".into(),
            lifetime: Duration::from_secs(1),
        };
        let short = registry.send(short).await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let third = registry.send(register(None)).await.unwrap().unwrap();
        let late = registry.send(claim(third.key, short.key)).await.unwrap();
        assert_eq!(late.unwrap_err().code, Disconnect::INVALID_TOKEN.code);
        let invalid = CreateSession {
            owner: String::new(),
            lifetime: Duration::from_secs(1),
        };
        assert_eq!(registry.send(invalid).await.unwrap().unwrap_err().code, 107);
    }
}
