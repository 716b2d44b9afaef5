//! The Session actor: one per WebSocket connection. It owns everything about its client: the
//! session id, the wire format, the counters of messages sent and received, the subscriptions,
//! the heartbeat, and the producer side of its bounded [`Outbox`].
//!
//! Inbound: WebSocket frame → [`Session::handle_frame`] → [`rpc_crypto_proto::codec`] decodes the
//! commands → [`commands::dispatch`] → one file per command, which answers into the outbox or
//! forwards to the Router. Outbound: the outbox's stream yields one coalesced frame per write,
//! which [`Session`]'s `StreamHandler<OutboundFrame>` writes.
//!
//! A resumable session (connect data `"resumable": true`) outlives its connection: when the
//! connection ends without the session being closed, [`Session::stopped`] parks what the
//! session owns ([`ParkedSession`]) with the Registry; a connection that resumes it takes it
//! back, writes what the client missed, and carries on (`commands/connect.rs`).

mod commands;
mod control;
mod exchange;
mod identity;
mod methods;
mod rate;
mod secure;

pub use secure::SecureEndpoint;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use actix::prelude::*;
use actix_web_actors::ws;
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use rand::Rng;
use rpc_crypto_proto::codec::{decode_commands, ping_item};
use rpc_crypto_proto::protocol::{Command, Reply};
use rpc_crypto_proto::{Disconnect, ErrorReply, Format};

use crate::adapters::contract::{Credentials, Exchanges};
use crate::adapters::rates::FetchRate;
use crate::auth::TokenVerifier;
use crate::channel::ChannelRules;
use crate::encode;
use crate::metrics::{metrics, OpenConnection};
use crate::outbox::{
    outbox, OutboundFrame, Outbox, OutboxStream, PushError, ReplayError, SharedOutboxStream,
};
use crate::registry::{
    CloseSession, ParkSession, Register, Registered, Registry, SessionKey, Unregister,
};
use crate::router::{
    Answer, ChannelRequest, Detach, Park, Router, SessionInfo, SessionRecipients, Subscribe,
    SubscriptionRefused,
};
use crate::settings::{ClientSettings, SessionSettings};

/// The server version sent in every connect result.
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What every session of a server shares: settings and channel rules.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub client: ClientSettings,
    pub session: SessionSettings,
    pub rules: Arc<ChannelRules>,
    pub tokens: Arc<TokenVerifier>,
    /// The exchanges this server runs, for `exchange.*` calls.
    pub exchanges: Exchanges,
    /// The fiat rates adapter, for `rates.fetch` (none when rates are off).
    pub rates: Option<Recipient<FetchRate>>,
}

/// Everything a resumable session owns while it has no connection: held by the Registry, and
/// handed to the connection that resumes it.
pub struct ParkedSession {
    registration: Registered,
    secret: String,
    user: String,
    conn_info: Option<Bytes>,
    expires_at: Option<u64>,
    created: bool,
    protocol_version: u32,
    format: Format,
    subscriptions: HashSet<String>,
    subscription_expiry: HashMap<String, u64>,
    logins: HashMap<String, Credentials>,
    received: u64,
    /// The inbound SEQUENCE of a secure-transport session.
    secure_sequence: Option<Arc<AtomicI64>>,
    outbox: Outbox,
    stream: OutboxStream,
}

impl ParkedSession {
    /// Whether the session still holds every message after `last_received`.
    pub fn can_replay(&self, last_received: u64) -> Result<(), ReplayError> {
        if self.outbox.overflowed() {
            return Err(ReplayError::Gap);
        }
        self.stream.replay(last_received).map(|_| ())
    }

    /// A parked session with nothing queued, for tests of the Registry.
    #[cfg(test)]
    pub(crate) fn for_test(registration: Registered, user: &str, format: Format) -> Self {
        let (outbox, mut stream) = outbox(format, 8, 1024);
        stream.keep_journal(8, 1024, 16, 2048);
        ParkedSession {
            registration,
            secret: "secret".into(),
            user: user.into(),
            conn_info: None,
            expires_at: None,
            created: false,
            protocol_version: 1,
            format,
            subscriptions: HashSet::new(),
            subscription_expiry: HashMap::new(),
            logins: HashMap::new(),
            received: 0,
            secure_sequence: None,
            outbox,
            stream,
        }
    }

    /// The session's key.
    pub fn key(&self) -> SessionKey {
        self.registration.key
    }

    /// The wire format its messages are encoded in.
    pub fn format(&self) -> Format {
        self.format
    }
}

/// What the HTTP layer knows of a connection before its first frame.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    pub address: Option<IpAddr>,
    /// The user named by the client's verified certificate (mutual TLS), if it presented one.
    pub certificate_user: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Open, waiting for connect.
    Fresh,
    /// A connect is waiting for the Registry (a resume, the user's session limit, a session a
    /// backend created); commands that follow it wait too.
    Waiting,
    Connected,
    /// A close is under way; further input is ignored.
    Closing,
}

/// A message reassembled from WebSocket continuation frames.
struct Fragments {
    binary: bool,
    data: BytesMut,
}

pub struct Session {
    config: Arc<SessionConfig>,
    registry: Addr<Registry>,
    router: Addr<Router>,
    format: Format,
    peer: Peer,
    /// Set when the connection must be refused as soon as it opens.
    reject: Option<Disconnect>,

    outbox: Outbox,
    /// The consumer side of the outbox, polled by this actor's context; taken back to park.
    stream: SharedOutboxStream,
    registration: Option<Registered>,
    state: State,
    /// The disconnect to send once the outbox has drained (a flushing close).
    closing: Option<Disconnect>,

    /// The session's owner; empty for an anonymous client.
    user: String,
    /// The token's `info`, shown to other clients in presence, join and leave.
    conn_info: Option<Bytes>,
    /// When the session ends unless refreshed (unix seconds): the token's `exp`, or the
    /// lifetime a backend gave it.
    expires_at: Option<u64>,
    /// Created by a backend: its lifetime is fixed, `refresh` does not move it.
    created: bool,
    expiry_timer: Option<SpawnHandle>,
    protocol_version: u32,
    subscriptions: HashSet<String>,
    /// When subscriptions made with a subscription token end (unix seconds).
    subscription_expiry: HashMap<String, u64>,
    subscription_timers: HashMap<String, SpawnHandle>,
    /// Credentials from `exchange.login`, by exchange. Never logged.
    logins: HashMap<String, Credentials>,
    rate: rate::CommandRate,
    /// Commands read so far: the id of the last message received.
    received: u64,
    /// The key that resumes this session, if it is resumable.
    secret: Option<String>,
    /// Whether the session outlives this connection when it ends: set while connected and
    /// resumable, cleared by every ending that means the session is over.
    park_on_stop: bool,
    /// Commands that arrived behind a resuming connect, run once it is answered.
    deferred: Vec<Command>,

    awaiting_pong: bool,
    /// The id of the last item written before the ping that awaits its pong.
    pinged_after: u64,
    /// Calls waiting on another actor (bounded by `methods::MAX_CALLS_IN_FLIGHT`).
    calls_in_flight: usize,
    stale_timer: Option<SpawnHandle>,
    fragments: Option<Fragments>,
    /// The secure transport (`/connection/secure`): keys, SEQUENCE, handshake.
    secure: Option<Box<secure::SecureLink>>,
    /// Commands read and not yet answered, with their method, for `rpc_crypto_commands_total`
    /// (bounded: the oldest goes uncounted past [`MAX_UNANSWERED`]).
    unanswered: Vec<(u32, &'static str)>,
    /// Counts the connection in `rpc_crypto_connections` while the actor lives.
    open_connection: Option<OpenConnection>,
}

/// More commands than can wait at once (`MAX_CALLS_IN_FLIGHT` of each kind, answered in turn).
const MAX_UNANSWERED: usize = 64;

impl Session {
    pub fn new(
        config: Arc<SessionConfig>,
        registry: Addr<Registry>,
        router: Addr<Router>,
        format: Format,
        peer: Peer,
        reject: Option<Disconnect>,
    ) -> Self {
        let (outbox, outbox_stream) = outbox(
            format,
            config.client.queue_max_messages,
            config.client.queue_max_size,
        );
        let rate = rate::CommandRate::new(
            config.client.command_rate,
            config.client.command_burst,
            std::time::Instant::now(),
        );
        Session {
            rate,
            config,
            registry,
            router,
            format,
            peer,
            reject,
            outbox,
            stream: SharedOutboxStream::new(outbox_stream),
            registration: None,
            state: State::Fresh,
            closing: None,
            user: String::new(),
            conn_info: None,
            expires_at: None,
            created: false,
            expiry_timer: None,
            protocol_version: 0,
            subscriptions: HashSet::new(),
            subscription_expiry: HashMap::new(),
            subscription_timers: HashMap::new(),
            logins: HashMap::new(),
            received: 0,
            secret: None,
            park_on_stop: false,
            deferred: Vec::new(),
            awaiting_pong: false,
            pinged_after: 0,
            calls_in_flight: 0,
            stale_timer: None,
            fragments: None,
            secure: None,
            unanswered: Vec::new(),
            open_connection: None,
        }
    }

    /// A session on the secure transport: JSON commands inside encrypted frames, connected by
    /// the RSA handshake instead of a connect command.
    pub fn secure(
        config: Arc<SessionConfig>,
        registry: Addr<Registry>,
        router: Addr<Router>,
        peer: Peer,
        endpoint: SecureEndpoint,
    ) -> Self {
        let mut session = Session::new(config, registry, router, Format::Json, peer, None);
        session.secure = Some(Box::new(secure::SecureLink::new(endpoint)));
        session
    }

    fn registered(&self) -> &Registered {
        self.registration
            .as_ref()
            .expect("commands are read only after registration")
    }

    fn key(&self) -> SessionKey {
        self.registered().key
    }

    /// The session id for the `session` field of its log lines; empty (left out) before the
    /// Registry gave it one.
    fn log_id(&self) -> &str {
        self.registration.as_ref().map_or("", |r| r.id.as_str())
    }

    /// Who this session is, for presence.
    fn info(&self) -> SessionInfo {
        SessionInfo {
            user: self.user.clone(),
            client: self.registered().id.to_string(),
            conn_info: self.conn_info.clone(),
        }
    }

    /// The Router message that subscribes this session to `channels`, answered with `answer`.
    fn subscribe_message(
        &self,
        ctx: &mut ws::WebsocketContext<Self>,
        channels: Vec<ChannelRequest>,
        answer: Answer,
    ) -> Subscribe {
        Subscribe {
            key: self.key(),
            client: self.info(),
            format: self.format,
            outbox: self.outbox.clone(),
            notify: Session::recipients(ctx),
            channels,
            answer,
        }
    }

    /// How the Router reaches this actor.
    fn recipients(ctx: &mut ws::WebsocketContext<Self>) -> SessionRecipients {
        SessionRecipients {
            close: ctx.address().recipient(),
            refused: ctx.address().recipient(),
        }
    }

    /// Keeps a journal of what is written, for a resume ([`crate::outbox::Journal`]): within
    /// `session.journal_max_*`, and after a resume what the client has not acknowledged within
    /// those plus `client.queue_max_*`.
    fn keep_journal(&mut self) {
        let (session, client) = (&self.config.session, &self.config.client);
        let bounds = (
            session.journal_max_messages,
            session.journal_max_size,
            session.journal_max_messages + client.queue_max_messages,
            session.journal_max_size + client.queue_max_size,
        );
        self.stream
            .with(|s| s.keep_journal(bounds.0, bounds.1, bounds.2, bounds.3));
    }

    /// The id of the last message written to the client.
    fn sent(&self) -> u64 {
        self.stream.with(|s| s.sent()).unwrap_or(0)
    }

    /// Writes a frame straight to the socket, outside the queue and its numbering: pings, the
    /// answer to a resuming connect, and the replay that follows it.
    fn write_direct(&mut self, ctx: &mut ws::WebsocketContext<Self>, frame: Bytes) {
        self.write_frame(ctx, frame);
    }

    /// Writes one frame to the socket. A JSON frame goes in a text frame, which must be UTF-8:
    /// every item in it was built from checked data ([`rpc_crypto_proto::json::JsonText`],
    /// serde_json's output), so the check here never fails unless something upstream is wrong,
    /// and then the session ends with 3004 instead of sending what a client would drop with 1007.
    fn write_frame(&mut self, ctx: &mut ws::WebsocketContext<Self>, frame: Bytes) {
        match self.format {
            Format::Json => match ByteString::try_from(frame) {
                Ok(text) => ctx.write_raw(ws::Message::Text(text)),
                Err(_) => {
                    log::error!(
                        session = self.log_id(), user = self.user.as_str();
                        "a JSON frame is not UTF-8; closing the session with 3004"
                    );
                    self.close(ctx, Disconnect::SERVER_ERROR, false);
                }
            },
            Format::Protobuf => ctx.binary(frame),
        }
    }

    /// Packs what the session owns for the Registry, leaving this actor with nothing to write.
    fn take_parked(&mut self) -> Option<ParkedSession> {
        let stream = self.stream.take()?;
        Some(ParkedSession {
            registration: self.registration.clone()?,
            secret: self.secret.clone()?,
            user: std::mem::take(&mut self.user),
            conn_info: self.conn_info.take(),
            expires_at: self.expires_at,
            created: self.created,
            protocol_version: self.protocol_version,
            format: self.format,
            subscriptions: std::mem::take(&mut self.subscriptions),
            subscription_expiry: std::mem::take(&mut self.subscription_expiry),
            logins: std::mem::take(&mut self.logins),
            received: self.received,
            secure_sequence: self.secure.as_ref().map(|link| link.sequence()),
            outbox: self.outbox.clone(),
            stream,
        })
    }

    /// Takes over a session handed over by the Registry: what it owns replaces what this
    /// connection had (nothing had been written yet). Its timers are armed by the caller.
    fn adopt(&mut self, parked: ParkedSession) {
        self.registration = Some(parked.registration);
        self.secret = Some(parked.secret);
        self.user = parked.user;
        self.conn_info = parked.conn_info;
        self.expires_at = parked.expires_at;
        self.created = parked.created;
        self.protocol_version = parked.protocol_version;
        self.subscriptions = parked.subscriptions;
        self.subscription_expiry = parked.subscription_expiry;
        self.logins = parked.logins;
        self.received = parked.received;
        if let (Some(link), Some(sequence)) = (self.secure.as_mut(), parked.secure_sequence) {
            link.adopt_sequence(sequence);
        }
        self.outbox = parked.outbox;
        self.stream.put(parked.stream);
    }

    /// Queues an encoded item for the client.
    fn push_item(&mut self, item: Bytes) -> Result<(), Disconnect> {
        match self.outbox.push(item) {
            Ok(()) | Err(PushError::Closed) => Ok(()),
            Err(PushError::Full) => Err(Disconnect::SLOW),
        }
    }

    /// A command `id` of `method` was read; its reply will be counted under it.
    fn awaiting_reply(&mut self, id: u32, method: &'static str) {
        if self.unanswered.len() >= MAX_UNANSWERED {
            self.unanswered.remove(0);
        }
        self.unanswered.push((id, method));
    }

    fn reply(&mut self, mut reply: Reply) -> Result<(), Disconnect> {
        if let Some(at) = self.unanswered.iter().position(|(id, _)| *id == reply.id) {
            let (_, method) = self.unanswered.swap_remove(at);
            let code = reply.error.as_ref().map_or(0, |e| e.code);
            metrics().command(method, code);
        }
        // The answer to an RPC_REQUEST of the secure transport goes back by its request id.
        if let Some(request_id) = self.secure.as_mut().and_then(|l| l.answered(reply.id)) {
            reply.id = 0;
            let json = encode::reply(Format::Json, &reply);
            return self.push_item(secure::rpc_item(request_id, &json));
        }
        let item = encode::reply(self.format, &reply);
        self.push_item(item)
    }

    /// One item of a streamed answer to the command `id`.
    fn push_stream_item(&mut self, id: u32, seq: u32, payload: &[u8]) -> Result<(), Disconnect> {
        let item = match self.secure.as_ref().and_then(|l| l.pending(id)) {
            Some(request_id) => secure::rpc_stream_item(request_id, seq, payload),
            None => match rpc_crypto_proto::rpc::stream_item(self.format, id, seq, payload) {
                Ok(item) => item,
                Err(error) => {
                    log::error!("item {seq} of the answer to command {id} dropped: {error}");
                    return Ok(());
                }
            },
        };
        self.push_item(item)
    }

    fn reply_error(&mut self, id: u32, error: ErrorReply) -> Result<(), Disconnect> {
        self.reply(Reply {
            id,
            error: Some(error.to_proto()),
            ..Reply::default()
        })
    }

    /// Ends the session. With `flush`, what is already queued is written before the close frame.
    fn close(&mut self, ctx: &mut ws::WebsocketContext<Self>, disconnect: Disconnect, flush: bool) {
        if self.state == State::Closing {
            return;
        }
        self.state = State::Closing;
        metrics().disconnect(disconnect.code);
        log::debug!(
            session = self.log_id(), user = self.user.as_str();
            "session {} closing: {disconnect}",
            self.registration.as_ref().map_or("-", |r| r.id.as_str())
        );
        // A resumable session outlives a close that asks the client to come back, and a takeover
        // (it moves to the other connection); flushing closes and terminal codes end it.
        let hand_over = disconnect == Disconnect::SESSION_RESUMED_ELSEWHERE;
        self.park_on_stop &=
            hand_over || (disconnect.reconnect() && !flush && disconnect != Disconnect::SLOW);
        if flush {
            self.closing = Some(disconnect);
            self.outbox.close();
            // Makes the context poll the outbox stream again, so it sees the close and ends.
            ctx.spawn(fut::ready(()));
        } else {
            if !self.park_on_stop {
                self.outbox.close();
            }
            let wire = secure::closing(self, ctx, &disconnect);
            ctx.close(Some(close_reason(&wire)));
            ctx.stop();
        }
    }

    /// Reads every command of one inbound WebSocket message.
    fn handle_frame(&mut self, ctx: &mut ws::WebsocketContext<Self>, frame: &[u8]) {
        for decoded in decode_commands(self.format, frame) {
            if self.state == State::Closing {
                return;
            }
            let command = match decoded {
                Ok(command) => command,
                Err(error) => {
                    log::debug!(
                        session = self.log_id(), user = self.user.as_str();
                        "bad frame: {error}"
                    );
                    self.close(ctx, Disconnect::BAD_REQUEST, true);
                    return;
                }
            };
            if self.state == State::Waiting {
                self.deferred.push(command);
                continue;
            }
            self.run_command(ctx, command);
        }
    }

    fn run_command(&mut self, ctx: &mut ws::WebsocketContext<Self>, command: Command) {
        // A connect that resumes a session, and a pong, are not session messages.
        if command != Command::default() && !commands::resumes(&command) {
            self.received += 1;
        }
        // Pongs answer the server, and connect comes once: neither counts against the rate.
        if command != Command::default() && command.connect.is_none() && self.state != State::Fresh
        {
            match self.rate.check(std::time::Instant::now()) {
                rate::Verdict::Run => {}
                rate::Verdict::Refuse => {
                    secure::throttled(self, ctx);
                    // A `send` has no reply to carry the error: it is dropped, as it says.
                    let outcome = match command.id {
                        0 => commands::report_send_error(self, ErrorReply::TOO_MANY_REQUESTS),
                        id => self.reply_error(id, ErrorReply::TOO_MANY_REQUESTS),
                    };
                    if let Err(disconnect) = outcome {
                        self.close(ctx, disconnect, false);
                    }
                    return;
                }
                rate::Verdict::Disconnect => {
                    return self.close(ctx, Disconnect::TOO_MANY_REQUESTS, false);
                }
            }
        }
        if let Err(disconnect) = commands::dispatch(self, ctx, command) {
            let flush = disconnect != Disconnect::SLOW;
            self.close(ctx, disconnect, flush);
        }
    }

    /// Runs the commands that waited behind a resuming connect.
    fn run_deferred(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        for command in std::mem::take(&mut self.deferred) {
            if self.state == State::Closing {
                return;
            }
            self.run_command(ctx, command);
        }
    }

    /// Starts the heartbeat: the first ping at a random point in [interval/2, interval].
    fn start_heartbeat(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.secure.as_ref().is_some_and(|l| l.version() == 1) {
            return secure::v1_heartbeat(self, ctx);
        }
        let interval = self.config.client.ping_interval;
        if interval.is_zero() {
            return;
        }
        let first = rand::thread_rng().gen_range(interval / 2..=interval);
        ctx.run_later(first, |act, ctx| act.ping(ctx));
    }

    /// The pong to the last ping: the client read everything written before the ping.
    fn ponged(&mut self) {
        self.awaiting_pong = false;
        let acknowledged = self.pinged_after;
        self.stream.with(|s| s.acknowledge(acknowledged));
    }

    fn ping(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.state != State::Connected {
            return;
        }
        // Heartbeats are not session messages: written straight to this connection, never
        // numbered, journaled or replayed (a replayed ping would draw a pong nobody asked for).
        // The secure transport uses the WebSocket's own ping.
        if self.secure.is_some() {
            ctx.ping(b"");
        } else {
            self.write_direct(ctx, ping_item(self.format));
        }
        self.awaiting_pong = true;
        self.pinged_after = self.sent();
        ctx.run_later(self.config.client.pong_timeout, |act, ctx| {
            if act.awaiting_pong {
                act.close(ctx, Disconnect::NO_PONG, false);
            }
        });
        ctx.run_later(self.config.client.ping_interval, |act, ctx| act.ping(ctx));
    }

    /// Handles one message reassembled from continuation frames, within the frame size limit.
    fn continuation(&mut self, ctx: &mut ws::WebsocketContext<Self>, item: actix_http::ws::Item) {
        let max = self.config.client.max_frame_size;
        let (start, data, last) = match item {
            actix_http::ws::Item::FirstText(data) => (Some(false), data, false),
            actix_http::ws::Item::FirstBinary(data) => (Some(true), data, false),
            actix_http::ws::Item::Continue(data) => (None, data, false),
            actix_http::ws::Item::Last(data) => (None, data, true),
        };
        match (start, self.fragments.as_mut()) {
            (Some(binary), None) => {
                self.fragments = Some(Fragments {
                    binary,
                    data: BytesMut::from(&data[..]),
                })
            }
            (None, Some(fragments)) => fragments.data.extend_from_slice(&data),
            _ => {
                let d = Disconnect::BAD_REQUEST.with_reason("unexpected continuation frame");
                return self.close(ctx, d, true);
            }
        }
        if self.fragments.as_ref().is_some_and(|f| f.data.len() > max) {
            let d = Disconnect::BAD_REQUEST.with_reason("message too large");
            return self.close(ctx, d, true);
        }
        if last {
            let Fragments { binary, data } = self.fragments.take().expect("started above");
            if binary {
                self.on_binary(ctx, &data);
            } else if std::str::from_utf8(&data).is_err() {
                let d = Disconnect::BAD_REQUEST.with_reason("text frame is not UTF-8");
                self.close(ctx, d, true);
            } else {
                self.on_text(ctx, &data);
            }
        }
    }

    fn on_text(&mut self, ctx: &mut ws::WebsocketContext<Self>, data: &[u8]) {
        if self.secure.is_some() {
            return self.close(ctx, Disconnect::BINARY_ONLY, false);
        }
        match self.format {
            Format::Json => self.handle_frame(ctx, data),
            Format::Protobuf => self.close(ctx, Disconnect::INAPPROPRIATE_PROTOCOL, true),
        }
    }

    fn on_binary(&mut self, ctx: &mut ws::WebsocketContext<Self>, data: &[u8]) {
        if self.secure.is_some() {
            return secure::on_frame(self, ctx, data);
        }
        match self.format {
            Format::Protobuf => self.handle_frame(ctx, data),
            Format::Json => self.close(ctx, Disconnect::INAPPROPRIATE_PROTOCOL, true),
        }
    }
}

fn close_reason(disconnect: &Disconnect) -> ws::CloseReason {
    ws::CloseReason {
        code: ws::CloseCode::Other(disconnect.code),
        description: Some(disconnect.reason.clone().into_owned()),
    }
}

impl Actor for Session {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let transport = if self.secure.is_some() {
            "secure"
        } else {
            "websocket"
        };
        let format = match self.format {
            Format::Json => "json",
            Format::Protobuf => "protobuf",
        };
        self.open_connection = Some(OpenConnection::new(transport, format));
        ctx.add_stream(self.stream.clone());
        if let Some(reject) = self.reject.take() {
            return self.close(ctx, reject, false);
        }
        // Limits are checked before any command is read (seed 001).
        let register = Register {
            peer: self.peer.address,
            close: ctx.address().recipient(),
            control: ctx.address().recipient(),
        };
        let registering = self
            .registry
            .send(register)
            .into_actor(self)
            .map(|result, act, ctx| match result {
                Ok(Ok(registered)) => {
                    act.registration = Some(registered);
                    let delay = act.config.client.stale_close_delay;
                    act.stale_timer = Some(ctx.run_later(delay, |act, ctx| {
                        if act.state == State::Fresh {
                            act.close(ctx, Disconnect::STALE, false);
                        }
                    }));
                }
                Ok(Err(reason)) => act.close(ctx, reason.disconnect(), false),
                Err(_) => act.close(ctx, Disconnect::SERVER_ERROR, false),
            });
        ctx.wait(registering);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        let Some(key) = self.registration.as_ref().map(|r| r.key) else {
            return;
        };
        if self.park_on_stop {
            if let Some(state) = self.take_parked() {
                self.registration = None;
                self.router.do_send(Park { key });
                self.registry.do_send(ParkSession { key, state });
                return;
            }
        }
        self.registration = None;
        self.router.do_send(Detach { key });
        self.registry.do_send(Unregister { key });
    }
}

/// The last guard: a session dropped without `stopped` having run still leaves the Router and the
/// Registry, so its subscriptions go and its slot counts against no limit. (When a handler panics,
/// actix stops the actor as its context is dropped, so `stopped` usually runs first and this
/// finds nothing to do; tests/hardening.rs checks what is left after a Session's panic.)
impl Drop for Session {
    fn drop(&mut self) {
        let Some(registration) = self.registration.take() else {
            return;
        };
        let key = registration.key;
        let (session, user) = (registration.id.as_str(), self.user.as_str());
        if std::thread::panicking() {
            log::error!(
                session, user;
                "session {session} panicked: its connection is closed, the others go on"
            );
        } else {
            log::debug!(session, user; "session {session} dropped without stopping");
        }
        self.router.do_send(Detach { key });
        self.registry.do_send(Unregister { key });
    }
}

/// Frames from the client.
impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Session {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        if self.state == State::Closing {
            return;
        }
        match msg {
            Ok(ws::Message::Text(text)) => self.on_text(ctx, text.as_bytes()),
            Ok(ws::Message::Binary(data)) => self.on_binary(ctx, &data),
            Ok(ws::Message::Continuation(item)) => self.continuation(ctx, item),
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Pong(_)) if self.secure.is_some() => self.ponged(),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Close(reason)) => {
                // SessionClose from the client: answer the close and end.
                self.state = State::Closing;
                self.park_on_stop = false;
                ctx.close(reason);
                ctx.stop();
            }
            // actix-web-actors reports a text frame that is not UTF-8 as an I/O error too; only
            // its message tells it from a lost connection.
            Err(ws::ProtocolError::Io(error)) if error.to_string().contains("utf-8") => {
                let d = Disconnect::BAD_REQUEST.with_reason("text frame is not UTF-8");
                self.close(ctx, d, true);
            }
            Err(ws::ProtocolError::Io(error)) => {
                // The connection is gone (EOF or a reset): nothing more can be written, and a
                // resumable session waits for its client.
                log::debug!(
                    session = self.log_id(), user = self.user.as_str();
                    "connection lost: {error}"
                );
                self.state = State::Closing;
                ctx.stop();
            }
            Err(ws::ProtocolError::Overflow) => {
                let d = Disconnect::BAD_REQUEST.with_reason("message too large");
                self.close(ctx, d, true);
            }
            // actix-http checks fragment order itself before `continuation` sees a frame.
            Err(
                ws::ProtocolError::ContinuationNotStarted
                | ws::ProtocolError::ContinuationStarted
                | ws::ProtocolError::ContinuationFragment(_),
            ) => {
                let d = Disconnect::BAD_REQUEST.with_reason("unexpected continuation frame");
                self.close(ctx, d, true);
            }
            Err(error) => {
                let d = Disconnect::BAD_REQUEST.with_reason(error.to_string());
                self.close(ctx, d, true);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Frames to the client, coalesced by the outbox.
impl StreamHandler<OutboundFrame> for Session {
    fn handle(&mut self, frame: OutboundFrame, ctx: &mut Self::Context) {
        if self.secure.is_some() {
            return secure::write_items(self, ctx, frame.first, &frame.bytes);
        }
        self.write_frame(ctx, frame.bytes);
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        let disconnect = self.closing.take().unwrap_or(Disconnect::CONNECTION_CLOSED);
        let wire = secure::closing(self, ctx, &disconnect);
        ctx.close(Some(close_reason(&wire)));
        ctx.stop();
    }
}

/// A close asked for by the Registry (shutdown, takeover) or the Router (slow consumer).
impl Handler<CloseSession> for Session {
    type Result = ();

    fn handle(&mut self, msg: CloseSession, ctx: &mut Self::Context) {
        self.close(ctx, msg.disconnect, msg.flush);
    }
}

/// A subscription the Router refused (error 112, already answered): the session is not in it.
impl Handler<SubscriptionRefused> for Session {
    type Result = ();

    fn handle(&mut self, msg: SubscriptionRefused, _: &mut Self::Context) {
        self.subscriptions.remove(&msg.channel);
    }
}
