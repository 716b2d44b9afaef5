//! The secure transport of a Session (seed 002, the cryptology client's protocol), on
//! `/connection/secure`: the three-message RSA handshake, then AES-256-CBC frames both ways.
//!
//! The Session stays what it is on the JSON wire: the same commands, channels, outbox and
//! resume machinery. This module only changes how its bytes travel:
//! - In: a binary frame → [`on_frame`]: during the handshake, one step of it; after it, the
//!   frame is decrypted ([`open_client_frame`]) into an INBOX message, whose SEQUENCE must be the
//!   last + 1 and whose JSON holds Centrifuge JSON commands run as on the JSON wire, or an
//!   RPC_REQUEST, whose request id must be above the last one of the connection and whose JSON
//!   is an rpc call (`{"method", "data"}`) answered by that id.
//! - Out: each item the outbox drains → [`write_items`]: an OUTBOX message whose ORDER is the
//!   item's id in the session's numbering (so the journal that replays a resumed session also
//!   replays by ORDER), an RPC_RESPONSE for the answer to an RPC_REQUEST, or a BROADCAST for a
//!   publication on `notifications`.
//! - Closing: an ERROR message, then the close frame, with the transport's codes (4000, 4001,
//!   4009, 1012; [`wire_disconnect`]).
//!
//! Each Session owns its AES keys, the inbound SEQUENCE (an atomic the Registry reads to tell a
//! reconnecting client where it left off) and, through its outbox, the outbound ORDER. A client
//! id has one session: the handshake asks the Registry for it ([`PeekSecure`], then
//! [`ClaimSecure`] once the client proved its key), so a client that reconnects with the last
//! ORDER it processed gets every later message exactly once, then live ones.
//!
//! Every failure of the peer's bytes ends the connection the same way
//! ([`Disconnect::MESSAGE_REJECTED`], after an ERROR message once keys are agreed); the reason
//! goes to the debug log only.
//!
//! Handshake limits ([`HandshakeLimiter`]): message 1 is refused with 4009 before any RSA work
//! when its address is past its rate or `max_concurrent_handshakes` decryptions are running; its
//! client id's budget is looked at (not spent) once decrypted; only a wrong signature in message
//! 3 spends it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use actix_web_actors::ws::WebsocketContext;
use bytes::Bytes;
use rpc_crypto_proto::codec::{decode_commands, Format};
use rpc_crypto_proto::protocol::{Command, RpcRequest};
use rpc_crypto_proto::rpc::stream_item_data;
use rpc_crypto_proto::secure::{
    negotiate_version, open_client_frame, verify_challenge, AesKey, ClientHello, ClientLayout,
    ClientMessageType, FrameSealer, PublicKey, SecureError, ServerHello, ServerMessage,
};
use rpc_crypto_proto::Disconnect;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Session, State};
use crate::handshake_limit::{HandshakeLimiter, RsaSlot};
use crate::metrics::metrics;
use crate::registry::{ClaimSecure, PeekSecure, SessionId};
use crate::secure_keys::KeyStore;

/// How often a version-1 session gets its heartbeat: one zero byte, as the seed's server sent.
pub const V1_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);

/// Command ids from here up are the session's own, for RPC_REQUESTs; INBOX commands stay below.
const RPC_COMMAND_IDS: u32 = 1 << 31;

/// Marks an outbox item that answers an RPC_REQUEST: `\x01<request id>\x01<json>`. JSON items
/// never start with it, and it holds no newline, so items still split on `\n`.
const RPC_TAG: u8 = 0x01;

/// The item prefix of a publication on `notifications`, which goes out as a BROADCAST.
const NOTIFICATION_PREFIX: &[u8] = b"{\"push\":{\"channel\":\"notifications\",";

/// ERROR messages carry this type when the close that follows is the generic rejection.
const ERROR_TYPE_REJECTED: i32 = 1008;

/// What every secure connection of a server shares: the keys and the handshake rate limits.
#[derive(Clone)]
pub struct SecureEndpoint {
    pub keys: KeyStore,
    pub limiter: HandshakeLimiter,
}

/// Where the handshake is.
enum Phase {
    /// Waiting for message 1, the client's hello.
    Hello,
    /// Message 2 went out; waiting for message 3, the signature of `data_to_sign`.
    Challenge {
        data_to_sign: Vec<u8>,
        server_aes: AesKey,
        client_aes: AesKey,
        last_seen_order: u64,
    },
    /// An RSA step or the Registry is being waited for; frames wait too.
    Busy,
    /// Keys agreed, the session is the client's: frames carry messages.
    Open {
        /// Boxed: the expanded key schedule is large, and the other phases are small.
        sealer: Box<FrameSealer>,
        client_aes: AesKey,
    },
}

/// A Session's secure transport state.
pub struct SecureLink {
    endpoint: SecureEndpoint,
    phase: Phase,
    client_id: String,
    client_key: Option<Arc<PublicKey>>,
    version: u32,
    /// The last SEQUENCE read; shared with the Registry, which reads it for a handshake.
    sequence: Arc<AtomicI64>,
    /// The last RPC_REQUEST id read on this connection: each must be above it, so a captured
    /// frame cannot be played again. Per connection, as the client's counter is.
    last_request_id: Option<i64>,
    /// The RSA slot of message 1, kept until message 3 only by the debug builds' test hook
    /// ([`HandshakeLimiter::holds_slot_for_test`]); otherwise given back once decrypted.
    held_rsa_slot: Option<RsaSlot>,
    next_rpc: u32,
    /// Command ids of RPC_REQUESTs still to be answered, with their request ids.
    pending_rpc: HashMap<u32, i64>,
}

impl SecureLink {
    pub fn new(endpoint: SecureEndpoint) -> Self {
        SecureLink {
            endpoint,
            phase: Phase::Hello,
            client_id: String::new(),
            client_key: None,
            version: 0,
            sequence: Arc::new(AtomicI64::new(0)),
            last_request_id: None,
            held_rsa_slot: None,
            next_rpc: RPC_COMMAND_IDS,
            pending_rpc: HashMap::new(),
        }
    }

    /// The protocol version agreed (0 before the hello).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// What a parked session keeps of its transport: the inbound SEQUENCE. Keys are per
    /// connection.
    pub fn sequence(&self) -> Arc<AtomicI64> {
        self.sequence.clone()
    }

    /// Carries on the SEQUENCE of a session this connection took over.
    pub fn adopt_sequence(&mut self, sequence: Arc<AtomicI64>) {
        self.sequence = sequence;
    }

    /// Takes the request id of an RPC_REQUEST whose answer this reply is, if it is one.
    pub fn answered(&mut self, command_id: u32) -> Option<i64> {
        if command_id < RPC_COMMAND_IDS {
            return None;
        }
        self.pending_rpc.remove(&command_id)
    }

    /// The request id of a pending RPC_REQUEST, left pending (for streamed items).
    pub fn pending(&self, command_id: u32) -> Option<i64> {
        self.pending_rpc.get(&command_id).copied()
    }
}

/// An outbox item that answers the RPC_REQUEST `request_id` with `json`.
pub fn rpc_item(request_id: i64, json: &[u8]) -> Bytes {
    let mut item = Vec::with_capacity(json.len() + 24);
    item.push(RPC_TAG);
    item.extend_from_slice(request_id.to_string().as_bytes());
    item.push(RPC_TAG);
    item.extend_from_slice(json);
    Bytes::from(item)
}

/// One item of a streamed answer to the RPC_REQUEST `request_id`.
pub fn rpc_stream_item(request_id: i64, seq: u32, payload: &[u8]) -> Bytes {
    rpc_item(request_id, &stream_item_data(request_id, seq, payload))
}

/// Splits an item made by [`rpc_item`].
fn split_rpc_item(item: &[u8]) -> Option<(i64, &[u8])> {
    let rest = item.strip_prefix(&[RPC_TAG])?;
    let end = rest.iter().position(|&b| b == RPC_TAG)?;
    let request_id = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    Some((request_id, &rest[end + 1..]))
}

/// The close a Centrifuge disconnect becomes on this transport.
pub fn wire_disconnect(disconnect: &Disconnect) -> Disconnect {
    match disconnect.code {
        4505 => Disconnect::CONCURRENT_CONNECTION,
        3013 => Disconnect::RATE_LIMIT,
        3001 => Disconnect::SERVICE_RESTART,
        _ => disconnect.clone(),
    }
}

/// Reads one binary frame from the client.
pub fn on_frame(session: &mut Session, ctx: &mut WebsocketContext<Session>, frame: &[u8]) {
    let Some(link) = session.secure.as_mut() else {
        return;
    };
    match std::mem::replace(&mut link.phase, Phase::Busy) {
        Phase::Hello => on_hello(session, ctx, frame),
        Phase::Challenge {
            data_to_sign,
            server_aes,
            client_aes,
            last_seen_order,
        } => on_signature(
            session,
            ctx,
            frame,
            &data_to_sign,
            server_aes,
            client_aes,
            last_seen_order,
        ),
        // Frames wait while the session waits (`ctx.wait`), so none arrives here.
        Phase::Busy => reject(session, ctx, "a frame during a handshake step"),
        open @ Phase::Open { .. } => {
            link.phase = open;
            on_message(session, ctx, frame);
        }
    }
}

/// Ends the connection for bytes it cannot accept, telling the peer nothing of why.
fn reject(session: &mut Session, ctx: &mut WebsocketContext<Session>, why: &str) {
    log::debug!(
        session = session.log_id(), user = session.user.as_str();
        "secure transport: {why}"
    );
    session.close(ctx, Disconnect::MESSAGE_REJECTED, false);
}

/// A handshake that failed (a bad hello, an unknown client, a failed proof): rejected as any bad
/// bytes are, and counted.
fn handshake_rejected(session: &mut Session, ctx: &mut WebsocketContext<Session>, why: &str) {
    metrics().secure_handshake("rejected");
    reject(session, ctx, why);
}

fn reject_error(session: &mut Session, ctx: &mut WebsocketContext<Session>, error: SecureError) {
    reject(session, ctx, &error.detail_for_logs());
}

/// Message 1: decrypts the hello off the actor's thread (RSA), finds the client's key and where
/// its session left off, and answers with message 2.
fn on_hello(session: &mut Session, ctx: &mut WebsocketContext<Session>, frame: &[u8]) {
    let link = session.secure.as_ref().expect("secure session");
    let limiter = link.endpoint.limiter.clone();
    // Before any RSA work (RUSTSEC-2023-0071): the address's attempts, then the decryptions
    // running over all connections. The address first, so that a flood it refuses never holds
    // a slot, not even for a moment.
    if let Some(address) = session.peer.address {
        if !limiter.admit_address(address, Instant::now()) {
            log::debug!("secure transport: handshake rate of {address} exceeded");
            metrics().secure_handshake("rate_limited");
            return session.close(ctx, Disconnect::RATE_LIMIT, false);
        }
    }
    let Some(slot) = limiter.rsa_slot() else {
        log::debug!("secure transport: max_concurrent_handshakes decryptions running");
        metrics().secure_handshake("rate_limited");
        return session.close(ctx, Disconnect::RATE_LIMIT, false);
    };
    let keys = link.endpoint.keys.current();
    let message = frame.to_vec();
    let opening = actix_web::rt::task::spawn_blocking(move || {
        let hello = ClientHello::open(keys.server_key(), &message, &mut rand::rngs::OsRng);
        // The slot goes back here, with the private-key operation done, unless the test hook
        // keeps it for this client id.
        let kept = hello
            .as_ref()
            .ok()
            .filter(|hello| limiter.holds_slot_for_test(&hello.client_id))
            .map(|_| slot);
        hello.map(|hello| {
            let client_key = keys.client_key(&hello.client_id);
            (hello, client_key, kept)
        })
    });
    let opened = opening
        .into_actor(session)
        .map(|result, act, ctx| match result {
            Err(_) => act.close(ctx, Disconnect::SERVER_ERROR, false),
            Ok(Err(error)) => handshake_rejected(act, ctx, &error.detail_for_logs()),
            Ok(Ok((_, None, _))) => handshake_rejected(act, ctx, "unknown client id"),
            Ok(Ok((hello, Some(client_key), kept))) => {
                let link = act.secure.as_mut().expect("secure session");
                link.held_rsa_slot = kept;
                hello_known(act, ctx, hello, client_key)
            }
        });
    ctx.wait(opened);
}

/// The hello of a known client: asks the Registry where its session left off, then writes
/// message 2.
fn hello_known(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    hello: ClientHello,
    client_key: Arc<PublicKey>,
) {
    if session.state == State::Closing {
        return;
    }
    let link = session.secure.as_mut().expect("secure session");
    // Looked at, not spent: message 1 proves nothing, anyone with the server's public key can
    // send it. Told apart from any other failure only in the log: the peer may be anyone.
    if !link
        .endpoint
        .limiter
        .client_may_try(&hello.client_id, Instant::now())
    {
        let why = format!(
            "client {:?} is past its failed-handshake rate",
            hello.client_id
        );
        return handshake_rejected(session, ctx, &why);
    }
    link.version = negotiate_version(hello.version);
    link.client_id = hello.client_id.clone();
    link.client_key = Some(client_key.clone());
    let last_seen_order = u64::try_from(hello.last_seen_order).unwrap_or(0);
    let peek = PeekSecure {
        client_id: hello.client_id.clone(),
        last_seen_order,
    };
    let client_aes = hello.client_key;
    let peeking = session
        .registry
        .send(peek)
        .into_actor(session)
        .map(move |answer, act, ctx| {
            if act.state == State::Closing {
                return;
            }
            let Ok(last_seen_sequence) = answer else {
                return act.close(ctx, Disconnect::SERVER_ERROR, false);
            };
            let link = act.secure.as_mut().expect("secure session");
            let server_hello =
                ServerHello::generate(&mut rand::thread_rng(), last_seen_sequence, link.version);
            let sealed = match server_hello.seal(&client_key, &mut rand::thread_rng()) {
                Ok(sealed) => sealed,
                Err(error) => {
                    log::warn!("secure transport: cannot seal the server hello: {error}");
                    return act.close(ctx, Disconnect::SERVER_ERROR, false);
                }
            };
            link.sequence.store(last_seen_sequence, Ordering::Relaxed);
            link.phase = Phase::Challenge {
                data_to_sign: server_hello.data_to_sign.clone(),
                server_aes: server_hello.server_key.clone(),
                client_aes,
                last_seen_order,
            };
            ctx.binary(sealed);
        });
    ctx.wait(peeking);
}

/// Message 3: the client's signature of the challenge proves its key; then the session is its.
fn on_signature(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    signature: &[u8],
    data_to_sign: &[u8],
    server_aes: AesKey,
    client_aes: AesKey,
    last_seen_order: u64,
) {
    let link = session.secure.as_mut().expect("secure session");
    link.held_rsa_slot = None;
    let client_key = link.client_key.clone().expect("known after the hello");
    if let Err(error) = verify_challenge(&client_key, data_to_sign, signature) {
        // The one step that spends the client id's budget: a proof that failed.
        link.endpoint
            .limiter
            .failed_proof(&link.client_id, Instant::now());
        return handshake_rejected(session, ctx, &error.detail_for_logs());
    }
    let (client_id, sequence) = (link.client_id.clone(), link.sequence.clone());
    let claim = ClaimSecure {
        key: session.key(),
        client_id,
        last_seen_order,
        sequence,
        close: ctx.address().recipient(),
        control: ctx.address().recipient(),
    };
    session.state = State::Waiting;
    let claiming = session
        .registry
        .send(claim)
        .into_actor(session)
        .map(move |answer, act, ctx| {
            let link = act.secure.as_mut().expect("secure session");
            link.phase = Phase::Open {
                sealer: Box::new(FrameSealer::new(&server_aes)),
                client_aes,
            };
            match answer {
                Ok(Ok(parked)) if act.state == State::Closing => {
                    // The connection closed meanwhile: the session goes back to wait.
                    if let Some(parked) = parked {
                        act.adopt(parked);
                    }
                    act.park_on_stop = true;
                }
                Ok(Ok(None)) => opened_new(act, ctx, last_seen_order),
                Ok(Ok(Some(parked))) => opened_taken_over(act, ctx, parked, last_seen_order),
                Ok(Err(error)) => {
                    log::debug!("secure transport: session not handed over: {error:?}");
                    act.state = State::Fresh;
                    act.close(ctx, Disconnect::SERVICE_RESTART, false);
                }
                Err(_) => act.close(ctx, Disconnect::SERVER_ERROR, false),
            }
        });
    ctx.wait(claiming);
}

/// The client had no session: this connection's becomes it, numbering its ORDER above what the
/// client saw before.
fn opened_new(session: &mut Session, ctx: &mut WebsocketContext<Session>, last_seen_order: u64) {
    metrics().secure_handshake("new");
    let link = session.secure.as_ref().expect("secure session");
    session.user = link.client_id.clone();
    session.protocol_version = 1;
    // Only a handshake with the client's key resumes it; the secret is never told.
    session.secret = Some(SessionId::random().to_string());
    session.park_on_stop = true;
    session.keep_journal();
    session.stream.with(|s| s.start_after(last_seen_order));
    session.state = State::Fresh;
    super::commands::connected(session, ctx);
}

/// The client's session, taken over from its parking or from another connection: what the
/// client missed after `last_seen_order` goes first, then the queue.
fn opened_taken_over(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    parked: super::ParkedSession,
    last_seen_order: u64,
) {
    metrics().secure_handshake("resumed");
    session.adopt(parked);
    session.park_on_stop = true;
    // The Registry checked that the journal holds all of it.
    if let Some(Ok(Some(replay))) = session.stream.with(|s| s.replay(last_seen_order)) {
        write_items(session, ctx, last_seen_order + 1, &replay);
    }
    session.state = State::Fresh;
    super::commands::reattached(session, ctx);
}

/// An rpc call as an RPC_REQUEST carries it.
#[derive(Deserialize)]
struct RpcCall<'a> {
    method: String,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

/// A frame after the handshake: an INBOX message or an RPC_REQUEST.
fn on_message(session: &mut Session, ctx: &mut WebsocketContext<Session>, frame: &[u8]) {
    let link = session.secure.as_mut().expect("secure session");
    let Phase::Open { client_aes, .. } = &link.phase else {
        return;
    };
    let layout = ClientLayout::for_version(link.version);
    let client_key = link.client_key.clone().expect("known after the hello");
    let message = match open_client_frame(client_aes, layout, &client_key, frame) {
        Ok(message) => message,
        Err(error) => return reject_error(session, ctx, error),
    };
    match message.kind {
        ClientMessageType::Inbox => {
            let expected = link.sequence.load(Ordering::Relaxed) + 1;
            if message.id != expected {
                log::debug!(
                    "secure transport: sequence {} where {expected} was due",
                    message.id
                );
                return session.close(ctx, Disconnect::INVALID_SEQUENCE, false);
            }
            link.sequence.store(message.id, Ordering::Relaxed);
            run_inbox(session, ctx, &message.json);
        }
        ClientMessageType::RpcRequest => {
            if link.last_request_id.is_some_and(|last| message.id <= last) {
                log::debug!(
                    "secure transport: request id {} after {:?}",
                    message.id,
                    link.last_request_id
                );
                return session.close(ctx, Disconnect::INVALID_SEQUENCE, false);
            }
            link.last_request_id = Some(message.id);
            let Ok(call) = serde_json::from_slice::<RpcCall>(&message.json) else {
                let d =
                    Disconnect::BAD_REQUEST.with_reason("an RPC_REQUEST is {\"method\", \"data\"}");
                return session.close(ctx, d, true);
            };
            let id = link.next_rpc;
            link.next_rpc = link.next_rpc.checked_add(1).unwrap_or(RPC_COMMAND_IDS);
            link.pending_rpc.insert(id, message.id);
            let command = Command {
                id,
                rpc: Some(RpcRequest {
                    method: call.method,
                    data: call
                        .data
                        .map(|raw| Bytes::copy_from_slice(raw.get().as_bytes()))
                        .unwrap_or_default(),
                }),
                ..Command::default()
            };
            session.run_command(ctx, command);
        }
    }
}

/// The Centrifuge JSON commands of an INBOX message, run as on the JSON wire.
fn run_inbox(session: &mut Session, ctx: &mut WebsocketContext<Session>, json: &[u8]) {
    for decoded in decode_commands(Format::Json, json) {
        if session.state == State::Closing {
            return;
        }
        let command = match decoded {
            Ok(command) => command,
            Err(error) => {
                log::debug!("secure transport: bad INBOX command: {error}");
                return session.close(ctx, Disconnect::BAD_REQUEST, true);
            }
        };
        if command.id >= RPC_COMMAND_IDS {
            let d = Disconnect::BAD_REQUEST.with_reason("command ids from 2^31 up are reserved");
            return session.close(ctx, d, true);
        }
        session.run_command(ctx, command);
    }
}

/// Writes items the outbox drained (`\n`-separated JSON, the first numbered `first`), each as
/// its own encrypted frame: the frames of one drain go out in one write.
pub fn write_items(
    session: &mut Session,
    ctx: &mut WebsocketContext<Session>,
    first: u64,
    items: &[u8],
) {
    let Some(link) = session.secure.as_ref() else {
        return;
    };
    let Phase::Open { sealer, .. } = &link.phase else {
        return;
    };
    let timestamp = unix_seconds();
    let mut rng = rand::thread_rng();
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', items).chain(std::iter::once(items.len()));
    for (n, end) in ends.enumerate() {
        let item = &items[start..end];
        start = end + 1;
        let frame = if let Some((request_id, json)) = split_rpc_item(item) {
            sealer.rpc_response(&mut rng, request_id, json)
        } else if item.starts_with(NOTIFICATION_PREFIX) {
            sealer.broadcast(&mut rng, item)
        } else {
            sealer.outbox(&mut rng, (first + n as u64) as i64, timestamp, item)
        };
        ctx.binary(frame);
    }
}

/// The THROTTLING message for a command refused by the rate limit.
pub fn throttled(session: &mut Session, ctx: &mut WebsocketContext<Session>) {
    let order = session.sent() as i64;
    let Some(link) = session.secure.as_ref() else {
        return;
    };
    let Phase::Open { sealer, .. } = &link.phase else {
        return;
    };
    let message = ServerMessage::Throttling {
        level: 1,
        sequence_id: link.sequence.load(Ordering::Relaxed),
        order_id: order,
    };
    seal_and_write(ctx, sealer, &message);
}

/// Before the close frame: the ERROR message (when keys are agreed) and the close this
/// transport sends for `disconnect`.
pub fn closing(
    session: &Session,
    ctx: &mut WebsocketContext<Session>,
    disconnect: &Disconnect,
) -> Disconnect {
    let Some(link) = session.secure.as_ref() else {
        return disconnect.clone();
    };
    let wire = wire_disconnect(disconnect);
    if let Phase::Open { sealer, .. } = &link.phase {
        let error_type = if wire == Disconnect::MESSAGE_REJECTED {
            ERROR_TYPE_REJECTED
        } else {
            i32::from(wire.code)
        };
        let message = ServerMessage::Error {
            error_type,
            message: wire.reason.clone().into_owned(),
        };
        seal_and_write(ctx, sealer, &message);
    }
    wire
}

/// The heartbeat of a version-1 session: a single zero byte, every 2 s, outside encryption.
pub fn v1_heartbeat(session: &mut Session, ctx: &mut WebsocketContext<Session>) {
    if session.state == State::Closing {
        return;
    }
    if session.state == State::Connected {
        ctx.binary(Bytes::from_static(&[0]));
    }
    ctx.run_later(V1_HEARTBEAT_INTERVAL, v1_heartbeat);
}

fn seal_and_write(
    ctx: &mut WebsocketContext<Session>,
    sealer: &FrameSealer,
    message: &ServerMessage,
) {
    match sealer.message(&mut rand::thread_rng(), message) {
        Ok(frame) => ctx.binary(frame),
        Err(error) => log::warn!("secure transport: a server message cannot be encoded: {error}"),
    }
}

fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
