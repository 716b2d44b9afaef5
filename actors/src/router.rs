//! The Router: owns the channel table. A publication is appended to its channel's history (which
//! gives it its offset), encoded once per wire format, and the same bytes are queued to every
//! subscriber. It also answers what needs the table: recovery on subscribe, `history`,
//! `presence`, `presence_stats`, and join/leave pushes.
//!
//! Sessions reach it with [`Subscribe`], [`Unsubscribe`], [`Publish`], [`Detach`], and, for a
//! session that outlives its connection, [`Park`] and [`Reattach`]; the server publishes through
//! [`Publish`] too (notifications). A subscriber whose queue is full is detached from every
//! channel and told to close with 3008; nobody else waits for it.
//!
//! Upstream follows demand: an exchange adapter registers with [`RegisterAdapter`], and the
//! Router tells it ([`Demand`]) when a channel of its exchange (`<kind>:<exchange>:...`) gains its
//! first subscriber, and when it has had none for the linger.
//!
//! History memory is bounded twice: per channel by its namespace (`history_size`, `history_ttl`)
//! and in all by `[history] max_size`, past which the oldest publications of any channel go first.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use rpc_crypto_proto::codec::{encode_publication, Format};
use rpc_crypto_proto::json::JsonText;
use rpc_crypto_proto::protocol::{
    ClientInfo, ConnectResult, HistoryResult, Join, Leave, PresenceResult, PresenceStatsResult,
    Publication, Push, Reply, Subscribe as PushSubscribe, SubscribeResult,
};
use rpc_crypto_proto::ErrorReply;

use crate::capacity::shrink_sparse;
use crate::channel::{is_listable, ChannelOptions, ChannelRules, NOTIFICATIONS};
use crate::encode;
use crate::history::{Entry, Query, Stream, ENTRY_OVERHEAD};
use crate::metrics::{metrics, Queued};
use crate::outbox::{Outbox, PushError};
use crate::registry::{CloseSession, SessionKey};

/// How many messages may wait in the Router's mailbox before publishers get error 111.
pub const MAILBOX_CAPACITY: usize = 65_536;
/// How often history is trimmed by ttl and idle stream positions are forgotten.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// What a session asks for one channel.
#[derive(Debug, Clone, Default)]
pub struct ChannelRequest {
    pub channel: String,
    /// Recover from this position (offset, epoch): the client's `recover`.
    pub recover: Option<(u64, String)>,
    /// The client asks for a recoverable subscription.
    pub recoverable: bool,
    /// The client asks for a positioned subscription.
    pub positioned: bool,
    /// The client wants join and leave pushes.
    pub join_leave: bool,
    /// Answer error 112 rather than `recovered: false` (subscribe flag 2).
    pub strict: bool,
    /// A subscription token's lifetime left, in seconds: the result says `expires` and `ttl`.
    pub expires_in: Option<u32>,
}

/// How the Router answers a [`Subscribe`].
#[derive(Debug)]
pub enum Answer {
    /// A `subscribe` reply with this id, for the one channel requested.
    Subscribe(u32),
    /// A `connect` reply with this id: the result, with `subs` filled in for every channel.
    Connect(u32, Box<ConnectResult>),
    /// A server-side subscription (the server API's `subscribe`): a `subscribe` push.
    Push,
}

/// Adds a session to channels. The Router queues the answer (with any recovered publications)
/// before any later publication of those channels, so the client always sees the result first.
/// The session's rights were checked by the session; a channel refused here (error 112) is
/// reported back with [`SubscriptionRefused`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    pub key: SessionKey,
    pub client: SessionInfo,
    pub format: Format,
    pub outbox: Outbox,
    pub notify: SessionRecipients,
    pub channels: Vec<ChannelRequest>,
    pub answer: Answer,
}

/// Who a session is, for presence and join/leave.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub user: String,
    /// The session id.
    pub client: String,
    /// The connection token's `info`.
    pub conn_info: Option<Bytes>,
}

/// How the Router reaches a session's actor.
#[derive(Clone)]
pub struct SessionRecipients {
    pub close: Recipient<CloseSession>,
    pub refused: Recipient<SubscriptionRefused>,
}

/// A subscription the Router did not make (its answer, an error reply, is already queued).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SubscriptionRefused {
    pub channel: String,
}

/// Removes a session from a channel, then queues `reply` (the encoded unsubscribe result).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub key: SessionKey,
    pub channel: String,
    pub reply: Bytes,
}

/// Removes a session from every channel: it has ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach {
    pub key: SessionKey,
}

/// A session lost its connection but lives on (parked): its subscriptions stay, and publications
/// keep being queued for it, but it leaves presence.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Park {
    pub key: SessionKey,
}

/// A parked session is back on a new connection: it is present again, reached at `notify`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reattach {
    pub key: SessionKey,
    pub notify: SessionRecipients,
}

/// Publishes `data` on a channel.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish {
    pub channel: String,
    pub data: JsonText,
    /// Counts it in `rpc_crypto_router_mailbox_publications` until the Router is done with it.
    pub queued: Queued,
}

impl Publish {
    pub fn new(channel: String, data: JsonText) -> Self {
        Publish {
            channel,
            data,
            queued: Queued::new(),
        }
    }
}

/// A `history` query on a channel that keeps history.
#[derive(Message)]
#[rtype(result = "Result<HistoryResult, ErrorReply>")]
pub struct History {
    pub channel: String,
    pub query: Query,
}

/// Who is subscribed to a channel: client id → user and client id.
#[derive(Message)]
#[rtype(result = "PresenceResult")]
pub struct Presence {
    pub channel: String,
}

/// How many clients, and distinct users, are subscribed to a channel.
#[derive(Message)]
#[rtype(result = "PresenceStatsResult")]
pub struct PresenceStats {
    pub channel: String,
}

/// The channels that have subscribers and may be shown to any client, sorted.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct ListChannels;

struct Subscriber {
    key: SessionKey,
    format: Format,
    outbox: Outbox,
    wants_join_leave: bool,
}

struct Channel {
    subscribers: Vec<Subscriber>,
    stream: Option<Stream>,
    options: ChannelOptions,
}

struct SessionChannels {
    notify: SessionRecipients,
    info: SessionInfo,
    channels: HashSet<Arc<str>>,
    /// On a connection (not parked): counts in presence.
    attached: bool,
    /// The session's queue, for the depth sampled each sweep.
    outbox: Outbox,
}

/// The process's fan-out counters (`metrics.rs`), held by the Router that alone adds to them.
struct FanOutCounters {
    publications: Counter,
    publication_bytes: Counter,
    deliveries: Counter,
    delivery_bytes: Counter,
}

impl Default for FanOutCounters {
    fn default() -> Self {
        let m = metrics();
        FanOutCounters {
            publications: m.publications.clone(),
            publication_bytes: m.publication_bytes.clone(),
            deliveries: m.deliveries.clone(),
            delivery_bytes: m.delivery_bytes.clone(),
        }
    }
}

/// The global history byte budget: every kept publication in the order it was published.
#[derive(Default)]
struct Budget {
    max_bytes: usize,
    used: usize,
    /// (channel, offset) of kept publications, oldest first; entries already trimmed by their
    /// channel's own bounds are skipped when met, and compacted away when they pile up.
    order: VecDeque<(Arc<str>, u64)>,
    kept: usize,
}

pub struct Router {
    rules: Arc<ChannelRules>,
    channels: HashMap<Arc<str>, Channel>,
    /// The most channels `channels` holds (`limits.max_channels`).
    max_channels: usize,
    sessions: HashMap<SessionKey, SessionChannels>,
    budget: Budget,
    /// Exchange adapters by exchange name.
    adapters: HashMap<String, Recipient<Demand>>,
    /// Channels an adapter was told to start, with when they were last seen without subscribers.
    demanded: HashMap<Arc<str>, Option<Instant>>,
    /// How long a channel stays started after its last subscriber left.
    linger: Duration,
    /// Publications received and items queued to subscribers, since the start.
    published: u64,
    delivered: u64,
    /// The same in the Prometheus counters, with their bytes.
    counters: FanOutCounters,
    /// The last status each adapter announced on `notifications` (`{"type":"adapter",...}`).
    adapter_health: BTreeMap<String, serde_json::Value>,
}

/// The Router's word to an exchange adapter about one of its channels.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum Demand {
    /// The channel has its first subscriber: start its upstream stream.
    Start { channel: String },
    /// It has had no subscriber for the linger: stop it.
    Stop { channel: String },
}

/// An exchange adapter asks to hear the demand for channels of `exchange`
/// (`<kind>:<exchange>:<symbol>[:<arg>]`). Channels already subscribed get their Start at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterAdapter {
    pub exchange: String,
    pub demand: Recipient<Demand>,
}

/// The most channels held unless set otherwise (`limits.max_channels`).
pub const DEFAULT_MAX_CHANNELS: usize = 100_000;

/// How long an upstream stream outlives its last subscriber unless set otherwise: a client that
/// reconnects or resubscribes within it finds the stream warm.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(30);

/// The exchange a market channel belongs to: the second part of `<kind>:<exchange>:<rest>`.
fn exchange_of(channel: &str) -> Option<&str> {
    let mut parts = channel.splitn(3, ':');
    let (_kind, exchange, _rest) = (parts.next()?, parts.next()?, parts.next()?);
    (!exchange.is_empty() && !channel.starts_with('$') && !channel.contains('#'))
        .then_some(exchange)
}

impl Router {
    /// A router for channels under `rules`, keeping at most `history_max_bytes` of history.
    pub fn new(rules: Arc<ChannelRules>, history_max_bytes: usize) -> Self {
        Router {
            rules,
            channels: HashMap::new(),
            max_channels: DEFAULT_MAX_CHANNELS,
            sessions: HashMap::new(),
            budget: Budget {
                max_bytes: history_max_bytes,
                ..Budget::default()
            },
            adapters: HashMap::new(),
            demanded: HashMap::new(),
            linger: DEFAULT_LINGER,
            published: 0,
            delivered: 0,
            counters: FanOutCounters::default(),
            adapter_health: BTreeMap::new(),
        }
    }

    /// Sets how many channels it holds at most (`limits.max_channels`; at least 1).
    pub fn with_max_channels(mut self, max_channels: usize) -> Self {
        self.max_channels = max_channels.max(1);
        self
    }

    /// Sets how long an upstream stream outlives its last subscriber.
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Keeps an adapter's status announcement (notifications are the adapters' health bus) for
    /// `$sys:stats`.
    fn note_adapter_health(&mut self, data: &[u8]) {
        let Ok(serde_json::Value::Object(notice)) = serde_json::from_slice(data) else {
            return;
        };
        if notice.get("type").and_then(|t| t.as_str()) != Some("adapter") {
            return;
        }
        // The adapter's own health; a notice about one channel (a refused subscription, an
        // unknown symbol) says nothing of it.
        let status = notice.get("status").and_then(|s| s.as_str());
        if !matches!(status, Some("up" | "down" | "resyncing")) {
            return;
        }
        if let Some(exchange) = notice.get("exchange").and_then(|e| e.as_str()) {
            metrics().adapter_status(exchange, status.unwrap_or_default());
            // Bounded by the adapters there are: only they announce themselves.
            let exchange = exchange.to_owned();
            self.adapter_health
                .insert(exchange, serde_json::Value::Object(notice));
        }
    }

    /// Tells the channel's adapter to start it, if it has one and was not told already.
    fn demand(&mut self, channel: &Arc<str>) {
        if let Some(idle) = self.demanded.get_mut(channel) {
            *idle = None;
            return;
        }
        let Some(exchange) = exchange_of(channel).filter(|e| self.adapters.contains_key(*e)) else {
            return;
        };
        if self.demanded.len() >= self.max_channels {
            // Channels started and left within the linger, under a flood of new names: stop
            // the idle ones now rather than let the table grow.
            self.release_idle(Instant::now(), Duration::ZERO);
        }
        if let Some(adapter) = self.adapters.get(exchange) {
            adapter.do_send(Demand::Start {
                channel: channel.to_string(),
            });
        }
        self.demanded.insert(channel.clone(), None);
    }

    /// Stops the channels that have had no subscriber for the linger.
    fn release_idle(&mut self, now: Instant, linger: Duration) {
        let (channels, adapters) = (&self.channels, &self.adapters);
        self.demanded.retain(|name, idle| {
            if channels
                .get(name)
                .is_some_and(|c| !c.subscribers.is_empty())
            {
                *idle = None;
                return true;
            }
            let since = *idle.get_or_insert(now);
            if now.duration_since(since) < linger {
                return true;
            }
            if let Some(adapter) = exchange_of(name).and_then(|e| adapters.get(e)) {
                adapter.do_send(Demand::Stop {
                    channel: name.to_string(),
                });
            }
            false
        });
    }

    /// The channel's entry, created with its namespace's options. Refused: a namespace the rules
    /// do not know (102), or a full table of channels that all have subscribers (1104).
    fn channel_entry(&mut self, name: &str) -> Result<(Arc<str>, &mut Channel), ErrorReply> {
        if !self.channels.contains_key(name) {
            let options = self
                .rules
                .policy(name)
                .map_err(|_| ErrorReply::UNKNOWN_CHANNEL)?
                .options
                .clone();
            if !self.make_room() {
                return Err(ErrorReply::TOO_MANY_CHANNELS);
            }
            self.channels.insert(
                Arc::from(name),
                Channel {
                    subscribers: Vec::new(),
                    stream: None,
                    options,
                },
            );
        }
        let key = self
            .channels
            .get_key_value(name)
            .ok_or(ErrorReply::UNKNOWN_CHANNEL)?
            .0
            .clone();
        let channel = self
            .channels
            .get_mut(name)
            .ok_or(ErrorReply::UNKNOWN_CHANNEL)?;
        Ok((key, channel))
    }

    /// Room for one more channel: when the table is full, forgets the channels without
    /// subscribers that were used longest ago (a tenth of the table at once, so that the scan is
    /// paid once per many new channels). Their history goes with them: a client that recovers
    /// from a position in one is told it was not recovered. False when every channel has
    /// subscribers.
    fn make_room(&mut self) -> bool {
        if self.channels.len() < self.max_channels {
            return true;
        }
        let mut idle: Vec<(Option<Instant>, Arc<str>)> = self
            .channels
            .iter()
            .filter(|(_, c)| c.subscribers.is_empty())
            .map(|(name, c)| (c.stream.as_ref().map(|s| s.touched), name.clone()))
            .collect();
        if idle.is_empty() {
            return false;
        }
        let count = (self.max_channels / 10).clamp(1, idle.len());
        // Channels without a stream (None) sort first: they hold nothing to lose.
        idle.select_nth_unstable(count - 1);
        for (_, name) in idle.into_iter().take(count) {
            if let Some(mut stream) = self.channels.remove(&name).and_then(|c| c.stream) {
                let (freed, kept) = stream.clear();
                self.budget.used -= freed;
                self.budget.kept -= kept;
            }
        }
        log::warn!(
            "{count} channels without subscribers forgotten: the server holds limits.max_channels ({}) channels",
            self.max_channels
        );
        true
    }

    fn remove_subscriber(&mut self, channel: &str, key: SessionKey) {
        let Some(entry) = self.channels.get_mut(channel) else {
            return;
        };
        if let Some(at) = entry.subscribers.iter().position(|s| s.key == key) {
            entry.subscribers.swap_remove(at);
            shrink_sparse(&mut entry.subscribers);
        }
        if entry.subscribers.is_empty() && entry.stream.is_none() {
            self.channels.remove(channel);
        }
    }

    fn detach(&mut self, key: SessionKey) -> Option<SessionRecipients> {
        let session = self.sessions.remove(&key)?;
        // The room a crowd of sessions needed is given back once most of it is gone.
        shrink_sparse(&mut self.sessions);
        for channel in &session.channels {
            self.remove_subscriber(channel, key);
            if session.attached {
                self.push_join_leave(channel, key, &session.info, false);
            }
        }
        Some(session.notify)
    }

    /// Detaches a session that can take no more: one whose queue overflowed is told to close
    /// with 3008; one that is already closing is only forgotten.
    fn drop_subscriber(&mut self, key: SessionKey, error: PushError) {
        let Some(notify) = self.detach(key) else {
            return;
        };
        if error == PushError::Full {
            notify.close.do_send(CloseSession::slow());
        }
    }

    /// Queues a join (or leave) of `info` to the channel's other subscribers that want it.
    fn push_join_leave(&mut self, channel: &str, key: SessionKey, info: &SessionInfo, join: bool) {
        let Some(entry) = self.channels.get(channel) else {
            return;
        };
        if !entry.options.join_leave {
            return;
        }
        let force = entry.options.force_push_join_leave;
        let client = ClientInfo {
            user: info.user.clone(),
            client: info.client.clone(),
            conn_info: info.conn_info.clone().unwrap_or_default(),
            ..ClientInfo::default()
        };
        let push = |format| {
            let mut push = Push {
                channel: channel.to_owned(),
                ..Push::default()
            };
            if join {
                push.join = Some(Join {
                    info: Some(client.clone()),
                });
            } else {
                push.leave = Some(Leave {
                    info: Some(client.clone()),
                });
            }
            encode::push(format, push)
        };
        let (mut json, mut protobuf) = (None, None);
        let mut failed = Vec::new();
        for subscriber in &entry.subscribers {
            if subscriber.key == key || !(force || subscriber.wants_join_leave) {
                continue;
            }
            // A parked session gets them too (queued), so that it misses nothing.
            let item = match subscriber.format {
                Format::Json => json.get_or_insert_with(|| push(Format::Json)),
                Format::Protobuf => protobuf.get_or_insert_with(|| push(Format::Protobuf)),
            };
            if let Err(error) = subscriber.outbox.push(item.clone()) {
                failed.push((subscriber.key, error));
            }
        }
        for (key, error) in failed {
            self.drop_subscriber(key, error);
        }
    }

    /// Subscribes to one channel and says how, with what was recovered.
    fn subscribe_one(
        &mut self,
        request: &ChannelRequest,
        now: Instant,
    ) -> Result<SubscribeResult, ErrorReply> {
        let (_, channel) = self.channel_entry(&request.channel)?;
        let mut result = SubscribeResult::default();
        if let Some(ttl) = request.expires_in {
            result.expires = true;
            result.ttl = ttl;
        }
        if channel.options.history().is_some() {
            let recoverable = channel.options.force_recovery || request.recoverable;
            let positioned = recoverable || channel.options.force_positioning || request.positioned;
            if positioned {
                let stream = channel.stream.get_or_insert_with(|| Stream::new(now));
                stream.touched = now;
                result.positioned = true;
                result.recoverable = recoverable;
                result.epoch = stream.epoch().to_owned();
                result.offset = stream.top();
                if let (true, Some((offset, epoch))) = (recoverable, &request.recover) {
                    let recovery = stream.recover(*offset, epoch);
                    if !recovery.recovered && request.strict {
                        return Err(ErrorReply::UNRECOVERABLE_POSITION);
                    }
                    result.was_recovering = true;
                    result.recovered = recovery.recovered;
                    result.publications =
                        recovery.publications.into_iter().map(publication).collect();
                }
            }
        }
        Ok(result)
    }
}

fn publication(entry: &Entry) -> Publication {
    Publication {
        data: entry.data.bytes().clone(),
        offset: entry.offset,
        ..Publication::default()
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        ctx.run_interval(SWEEP_INTERVAL, |router, _| {
            let now = Instant::now();
            router.sweep(now);
            router.release_idle(now, router.linger);
            router.sample_queue_depths();
        });
    }
}

impl Router {
    /// One observation of each subscribed session's queue depth: sampled, not counted per push,
    /// so that the fan-out never takes the histogram's lock.
    fn sample_queue_depths(&self) {
        let histogram = &metrics().session_queue_depth;
        for session in self.sessions.values() {
            histogram.observe(session.outbox.queued_items() as f64);
        }
    }

    /// Trims history by ttl and forgets stream positions idle past their meta ttl.
    fn sweep(&mut self, now: Instant) {
        let mut freed = 0;
        let mut kept = 0;
        self.channels.retain(|_, channel| {
            if let (Some(stream), Some(bounds)) =
                (channel.stream.as_mut(), channel.options.history())
            {
                let before = stream.len();
                freed += stream.expire(now, bounds.ttl);
                kept += before - stream.len();
                // A position is worth keeping for a while after the last subscriber left only if
                // something was ever published at it: a stream that never had a publication
                // (made by a subscribe or a history query) tells a recovering client nothing it
                // would miss.
                let idle = stream.top() == 0
                    || now.duration_since(stream.touched) >= channel.options.history_meta_ttl;
                if stream.is_empty() && idle && channel.subscribers.is_empty() {
                    channel.stream = None;
                }
            }
            !(channel.subscribers.is_empty() && channel.stream.is_none())
        });
        shrink_sparse(&mut self.channels);
        self.budget.used -= freed;
        self.budget.kept -= kept;
        self.compact_budget();
    }

    /// Drops index entries of publications that are gone, once they are the majority.
    fn compact_budget(&mut self) {
        if self.budget.order.len() <= 2 * self.budget.kept + 1024 {
            return;
        }
        let channels = &self.channels;
        self.budget.order.retain(|(name, offset)| {
            channels
                .get(name)
                .and_then(|c| c.stream.as_ref())
                .and_then(Stream::oldest)
                .is_some_and(|oldest| *offset >= oldest)
        });
    }

    /// Evicts the oldest publications of any channel until history fits its byte budget.
    fn enforce_budget(&mut self) {
        while self.budget.used > self.budget.max_bytes {
            let Some((name, offset)) = self.budget.order.pop_front() else {
                break;
            };
            let Some(stream) = self.channels.get_mut(&name).and_then(|c| c.stream.as_mut()) else {
                continue;
            };
            if stream.oldest() == Some(offset) {
                let entry = stream.pop_oldest().expect("it has an oldest entry");
                self.budget.used -= entry.cost();
                self.budget.kept -= 1;
            }
        }
    }
}

impl Handler<Subscribe> for Router {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        let now = Instant::now();
        let mut results = Vec::with_capacity(msg.channels.len());
        for request in &msg.channels {
            match self.subscribe_one(request, now) {
                Ok(result) => results.push(result),
                Err(error) => {
                    // Only a single `subscribe` can be refused (connect subs never are strict).
                    let Answer::Subscribe(id) = msg.answer else {
                        results.push(SubscribeResult::default());
                        continue;
                    };
                    let reply = Reply {
                        id,
                        error: Some(error.to_proto()),
                        ..Reply::default()
                    };
                    if msg.outbox.push(encode::reply(msg.format, &reply)).is_ok() {
                        msg.notify.refused.do_send(SubscriptionRefused {
                            channel: request.channel.clone(),
                        });
                    } else {
                        msg.notify.close.do_send(CloseSession::slow());
                    }
                    return;
                }
            }
        }
        let reply = match msg.answer {
            Answer::Subscribe(id) => Reply {
                id,
                subscribe: results.pop(),
                ..Reply::default()
            },
            Answer::Connect(id, mut result) => {
                result.subs = msg
                    .channels
                    .iter()
                    .map(|r| r.channel.clone())
                    .zip(results)
                    .collect();
                Reply {
                    id,
                    connect: Some(*result),
                    ..Reply::default()
                }
            }
            Answer::Push => {
                let result = results.pop().unwrap_or_default();
                Reply {
                    push: Some(Push {
                        channel: msg.channels[0].channel.clone(),
                        subscribe: Some(PushSubscribe {
                            recoverable: result.recoverable,
                            epoch: result.epoch,
                            offset: result.offset,
                            positioned: result.positioned,
                            data: Default::default(),
                        }),
                        ..Push::default()
                    }),
                    ..Reply::default()
                }
            }
        };
        if let Err(error) = msg.outbox.push(encode::reply(msg.format, &reply)) {
            // The session may have no subscription yet, so it is told directly.
            self.detach(msg.key);
            if error == PushError::Full {
                msg.notify.close.do_send(CloseSession::slow());
            }
            return;
        }
        self.sessions
            .entry(msg.key)
            .or_insert_with(|| SessionChannels {
                notify: msg.notify.clone(),
                info: msg.client.clone(),
                channels: HashSet::new(),
                attached: true,
                outbox: msg.outbox.clone(),
            });
        let mut joined = Vec::new();
        for request in &msg.channels {
            let Ok((name, _)) = self.channel_entry(&request.channel) else {
                continue;
            };
            let session = self.sessions.get_mut(&msg.key).expect("inserted above");
            if !session.channels.insert(name.clone()) {
                continue;
            }
            let channel = self.channels.get_mut(&name).expect("just made");
            channel.subscribers.push(Subscriber {
                key: msg.key,
                format: msg.format,
                outbox: msg.outbox.clone(),
                wants_join_leave: request.join_leave,
            });
            self.demand(&name);
            joined.push(name);
        }
        for name in joined {
            self.push_join_leave(&name, msg.key, &msg.client, true);
        }
    }
}

impl Handler<RegisterAdapter> for Router {
    type Result = ();

    fn handle(&mut self, msg: RegisterAdapter, _: &mut Context<Self>) {
        self.adapters.insert(msg.exchange.clone(), msg.demand);
        let subscribed: Vec<Arc<str>> = self
            .channels
            .iter()
            .filter(|(name, c)| {
                !c.subscribers.is_empty() && exchange_of(name) == Some(msg.exchange.as_str())
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in subscribed {
            self.demanded.remove(&name);
            self.demand(&name);
        }
    }
}

impl Handler<Unsubscribe> for Router {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Context<Self>) {
        let Some(session) = self.sessions.get_mut(&msg.key) else {
            return;
        };
        if !session.channels.remove(msg.channel.as_str()) {
            return;
        }
        let info = session.info.clone();
        let attached = session.attached;
        // The outbox is taken from the subscription being removed.
        let outbox = self.channels.get(msg.channel.as_str()).and_then(|c| {
            c.subscribers
                .iter()
                .find(|s| s.key == msg.key)
                .map(|s| s.outbox.clone())
        });
        self.remove_subscriber(&msg.channel, msg.key);
        if attached {
            self.push_join_leave(&msg.channel, msg.key, &info, false);
        }
        if let Some(Err(error)) = outbox.map(|outbox| outbox.push(msg.reply)) {
            self.drop_subscriber(msg.key, error);
        }
    }
}

impl Handler<Detach> for Router {
    type Result = ();

    fn handle(&mut self, msg: Detach, _: &mut Context<Self>) {
        self.detach(msg.key);
    }
}

impl Handler<Park> for Router {
    type Result = ();

    fn handle(&mut self, msg: Park, _: &mut Context<Self>) {
        let Some(session) = self.sessions.get_mut(&msg.key) else {
            return;
        };
        if !std::mem::replace(&mut session.attached, false) {
            return;
        }
        let info = session.info.clone();
        let channels: Vec<Arc<str>> = session.channels.iter().cloned().collect();
        for channel in channels {
            self.push_join_leave(&channel, msg.key, &info, false);
        }
    }
}

impl Handler<Reattach> for Router {
    type Result = ();

    fn handle(&mut self, msg: Reattach, _: &mut Context<Self>) {
        let Some(session) = self.sessions.get_mut(&msg.key) else {
            return;
        };
        session.notify = msg.notify;
        if std::mem::replace(&mut session.attached, true) {
            return;
        }
        let info = session.info.clone();
        let channels: Vec<Arc<str>> = session.channels.iter().cloned().collect();
        for channel in channels {
            self.push_join_leave(&channel, msg.key, &info, true);
        }
    }
}

impl Handler<Publish> for Router {
    type Result = ();

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
        let now = Instant::now();
        // The server's own figures are not traffic they should count.
        let counted = !msg.channel.starts_with("$sys:");
        self.published += u64::from(counted);
        if counted {
            self.counters.publications.inc();
            self.counters
                .publication_bytes
                .inc_by(msg.data.len() as u64);
        }
        if msg.channel == NOTIFICATIONS {
            self.note_adapter_health(msg.data.bytes());
        }
        let keeps_history = match self.channels.get(msg.channel.as_str()) {
            Some(channel) => channel.options.history().is_some(),
            // No subscriber and no stream: only a channel with history has anything to do.
            None => self
                .rules
                .policy(&msg.channel)
                .is_ok_and(|p| p.options.history().is_some()),
        };
        let mut offset = 0;
        let entry = match keeps_history {
            true => self.channel_entry(&msg.channel).map(Some),
            false => Ok(None),
        };
        if let Err(error) = &entry {
            // Only a channel nobody is subscribed to can be refused, so nobody misses it now;
            // a later `history` of it finds nothing, as after an eviction.
            log::debug!(
                "publication on {} not kept in history: {error}",
                msg.channel
            );
        }
        if let Ok(Some((name, channel))) = entry {
            let Some(bounds) = channel.options.history() else {
                return;
            };
            let stream = channel.stream.get_or_insert_with(|| Stream::new(now));
            let before = stream.len();
            let (top, freed) = stream.append(msg.data.clone(), now, bounds);
            let evicted = before + 1 - stream.len();
            offset = top;
            self.budget.used = self.budget.used + msg.data.len() + ENTRY_OVERHEAD - freed;
            self.budget.kept = self.budget.kept + 1 - evicted;
            self.budget.order.push_back((name, top));
            self.enforce_budget();
            self.compact_budget();
        }
        let Some(channel) = self.channels.get(msg.channel.as_str()) else {
            return;
        };
        let mut json = None;
        let mut protobuf = None;
        let mut failed = Vec::new();
        // Bytes queued, added to the counter once the fan-out is done.
        let mut bytes = 0;
        for subscriber in &channel.subscribers {
            let item = match subscriber.format {
                Format::Json => json.get_or_insert_with(|| {
                    encode_publication(Format::Json, &msg.channel, &msg.data, offset)
                }),
                Format::Protobuf => protobuf.get_or_insert_with(|| {
                    encode_publication(Format::Protobuf, &msg.channel, &msg.data, offset)
                }),
            };
            match subscriber.outbox.push(item.clone()) {
                Ok(()) => bytes += item.len(),
                Err(error) => failed.push((subscriber.key, error)),
            }
        }
        if counted {
            let delivered = (channel.subscribers.len() - failed.len()) as u64;
            self.delivered += delivered;
            self.counters.deliveries.inc_by(delivered);
            self.counters.delivery_bytes.inc_by(bytes as u64);
        }
        for (key, error) in failed {
            self.drop_subscriber(key, error);
        }
    }
}

impl Handler<History> for Router {
    type Result = Result<HistoryResult, ErrorReply>;

    fn handle(&mut self, msg: History, _: &mut Context<Self>) -> Self::Result {
        let now = Instant::now();
        let (_, channel) = self.channel_entry(&msg.channel)?;
        if channel.options.history().is_none() {
            return Err(ErrorReply::NOT_AVAILABLE.with_message("the channel keeps no history"));
        }
        let stream = channel.stream.get_or_insert_with(|| Stream::new(now));
        let publications = stream
            .query(&msg.query)
            .map_err(|_| ErrorReply::UNRECOVERABLE_POSITION)?
            .into_iter()
            .map(publication)
            .collect();
        Ok(HistoryResult {
            publications,
            epoch: stream.epoch().to_owned(),
            offset: stream.top(),
        })
    }
}

/// The server API's `history_remove`: drops a channel's publications, keeping its position.
#[derive(Message)]
#[rtype(result = "Result<(), ErrorReply>")]
pub struct RemoveHistory {
    pub channel: String,
}

impl Handler<RemoveHistory> for Router {
    type Result = Result<(), ErrorReply>;

    fn handle(&mut self, msg: RemoveHistory, _: &mut Context<Self>) -> Self::Result {
        let (_, channel) = self.channel_entry(&msg.channel)?;
        if channel.options.history().is_none() {
            return Err(ErrorReply::NOT_AVAILABLE.with_message("the channel keeps no history"));
        }
        if let Some(stream) = channel.stream.as_mut() {
            let (freed, count) = stream.clear();
            self.budget.used -= freed;
            self.budget.kept -= count;
            self.compact_budget();
        }
        Ok(())
    }
}

/// Every channel with subscribers, private and user-limited ones included, with how many
/// clients each has: the server API's `channels`, sorted by name.
#[derive(Message)]
#[rtype(result = "Vec<(String, usize)>")]
pub struct ListAllChannels;

impl Handler<ListAllChannels> for Router {
    type Result = MessageResult<ListAllChannels>;

    fn handle(&mut self, _: ListAllChannels, _: &mut Context<Self>) -> Self::Result {
        let mut channels: Vec<(String, usize)> = self
            .channels
            .iter()
            .filter(|(_, c)| !c.subscribers.is_empty())
            .map(|(name, c)| (name.to_string(), c.subscribers.len()))
            .collect();
        channels.sort_unstable();
        MessageResult(channels)
    }
}

/// The Router's counts, for the server API's `info`.
#[derive(Message)]
#[rtype(result = "RouterInfo")]
pub struct GetRouterInfo;

#[derive(Debug, Clone, serde::Serialize, MessageResponse)]
pub struct RouterInfo {
    /// Channels with a subscriber or a kept stream position.
    pub channels: usize,
    /// Subscriptions over all channels.
    pub subscriptions: usize,
    /// Publications kept in history, and their bytes (as counted against `[history] max_size`).
    pub history_publications: usize,
    pub history_bytes: usize,
    /// Channels with a history stream.
    pub history_streams: usize,
    /// Publications received since the start (messages in).
    pub published: u64,
    /// Publications queued to subscribers since the start (messages out).
    pub delivered: u64,
    /// Each adapter's last status announcement, by exchange.
    pub adapters: BTreeMap<String, serde_json::Value>,
}

#[cfg(debug_assertions)]
impl Handler<crate::fault::InjectPanic> for Router {
    type Result = ();

    fn handle(&mut self, _: crate::fault::InjectPanic, _: &mut Context<Self>) {
        panic!("injected panic in the Router (TEST_RPC_CRYPTO_FAULT_INJECTION)");
    }
}

impl Handler<GetRouterInfo> for Router {
    type Result = RouterInfo;

    fn handle(&mut self, _: GetRouterInfo, _: &mut Context<Self>) -> RouterInfo {
        RouterInfo {
            channels: self.channels.len(),
            subscriptions: self.channels.values().map(|c| c.subscribers.len()).sum(),
            history_publications: self.budget.kept,
            history_bytes: self.budget.used,
            history_streams: self
                .channels
                .values()
                .filter(|c| c.stream.is_some())
                .count(),
            published: self.published,
            delivered: self.delivered,
            adapters: self.adapter_health.clone(),
        }
    }
}

impl Router {
    fn present(&self, channel: &str) -> impl Iterator<Item = &SessionInfo> {
        self.channels
            .get(channel)
            .into_iter()
            .flat_map(|c| c.subscribers.iter())
            .filter_map(|s| self.sessions.get(&s.key))
            .filter(|s| s.attached)
            .map(|s| &s.info)
    }
}

impl Handler<Presence> for Router {
    type Result = MessageResult<Presence>;

    fn handle(&mut self, msg: Presence, _: &mut Context<Self>) -> Self::Result {
        let presence = self
            .present(&msg.channel)
            .map(|info| {
                let client = ClientInfo {
                    user: info.user.clone(),
                    client: info.client.clone(),
                    conn_info: info.conn_info.clone().unwrap_or_default(),
                    ..ClientInfo::default()
                };
                (info.client.clone(), client)
            })
            .collect();
        MessageResult(PresenceResult { presence })
    }
}

impl Handler<PresenceStats> for Router {
    type Result = MessageResult<PresenceStats>;

    fn handle(&mut self, msg: PresenceStats, _: &mut Context<Self>) -> Self::Result {
        let mut clients = 0;
        let mut users = HashSet::new();
        for info in self.present(&msg.channel) {
            clients += 1;
            users.insert(info.user.as_str());
        }
        MessageResult(PresenceStatsResult {
            num_clients: clients,
            num_users: users.len() as u32,
        })
    }
}

impl Handler<ListChannels> for Router {
    type Result = MessageResult<ListChannels>;

    fn handle(&mut self, _: ListChannels, _: &mut Context<Self>) -> Self::Result {
        let mut names: Vec<String> = self
            .channels
            .iter()
            .filter(|(name, c)| !c.subscribers.is_empty() && is_listable(name))
            .map(|(name, _)| name.to_string())
            .collect();
        names.sort_unstable();
        MessageResult(names)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::channel::{ChannelOptions, Namespace};
    use crate::outbox::outbox;

    /// Records what the Router tells a session.
    struct Notes(Arc<Mutex<Vec<String>>>);
    impl Actor for Notes {
        type Context = Context<Self>;
    }
    impl Handler<CloseSession> for Notes {
        type Result = ();
        fn handle(&mut self, msg: CloseSession, _: &mut Context<Self>) {
            self.0
                .lock()
                .unwrap()
                .push(format!("close {}", msg.disconnect.code));
        }
    }
    impl Handler<SubscriptionRefused> for Notes {
        type Result = ();
        fn handle(&mut self, msg: SubscriptionRefused, _: &mut Context<Self>) {
            self.0
                .lock()
                .unwrap()
                .push(format!("refused {}", msg.channel));
        }
    }

    fn rules() -> Arc<ChannelRules> {
        let options = ChannelOptions {
            allow_subscribe_for_client: true,
            allow_subscribe_for_anonymous: true,
            history_size: 10,
            history_ttl: Duration::from_secs(60),
            force_recovery: true,
            ..ChannelOptions::default()
        };
        let ns = Namespace {
            name: "h".into(),
            options,
        };
        Arc::new(ChannelRules::new(ChannelOptions::default(), &[ns], 255))
    }

    async fn notes_after(notes: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
        for _ in 0..100 {
            if !notes.lock().unwrap().is_empty() {
                break;
            }
            actix::clock::sleep(Duration::from_millis(5)).await;
        }
        notes.lock().unwrap().clone()
    }

    fn subscribe(queue: Outbox, notify: SessionRecipients, request: ChannelRequest) -> Subscribe {
        Subscribe {
            key: 7,
            client: SessionInfo {
                conn_info: None,
                user: String::new(),
                client: "c7".into(),
            },
            format: Format::Json,
            outbox: queue,
            notify,
            channels: vec![request],
            answer: Answer::Subscribe(2),
        }
    }

    #[actix::test]
    async fn a_first_subscribe_into_a_full_queue_closes_the_session_as_slow() {
        let notes = Arc::new(Mutex::new(Vec::new()));
        let addr = Notes(notes.clone()).start();
        let notify = SessionRecipients {
            close: addr.clone().recipient(),
            refused: addr.recipient(),
        };
        let router = Router::new(rules(), 1 << 20).start();
        let (queue, _stream) = outbox(Format::Json, 1, 1024);
        queue.push(Bytes::from_static(b"{}")).unwrap();
        let request = ChannelRequest {
            channel: "h:c".into(),
            ..ChannelRequest::default()
        };
        router
            .send(subscribe(queue, notify, request))
            .await
            .unwrap();
        assert!(router.send(ListChannels).await.unwrap().is_empty());
        assert_eq!(notes_after(&notes).await, vec!["close 3008"]);
    }

    #[actix::test]
    async fn a_strict_recovery_of_a_lost_position_is_refused_with_112() {
        let notes = Arc::new(Mutex::new(Vec::new()));
        let addr = Notes(notes.clone()).start();
        let notify = SessionRecipients {
            close: addr.clone().recipient(),
            refused: addr.recipient(),
        };
        let router = Router::new(rules(), 1 << 20).start();
        let (queue, mut stream) = outbox(Format::Json, 8, 4096);
        let request = ChannelRequest {
            channel: "h:c".into(),
            recover: Some((3, "no-such-epoch".into())),
            strict: true,
            expires_in: None,
            ..ChannelRequest::default()
        };
        router
            .send(subscribe(queue, notify, request))
            .await
            .unwrap();
        assert_eq!(notes_after(&notes).await, vec!["refused h:c"]);
        let frame = futures_util::StreamExt::next(&mut stream).await.unwrap();
        assert_eq!(
            std::str::from_utf8(&frame.bytes).unwrap(),
            "{\"id\":2,\"error\":{\"code\":112,\"message\":\"unrecoverable position\"}}"
        );
    }

    #[actix::test]
    async fn the_history_budget_evicts_the_oldest_publications_of_any_channel() {
        let router = Router::new(rules(), 3 * (4 + ENTRY_OVERHEAD)).start();
        for channel in ["h:a", "h:b", "h:a", "h:b"] {
            router
                .send(Publish::new(
                    channel.into(),
                    JsonText::serialize(&1234).unwrap(),
                ))
                .await
                .unwrap();
        }
        let offsets = |channel: &str| {
            let router = router.clone();
            let channel = channel.to_owned();
            async move {
                let result = router
                    .send(History {
                        channel,
                        query: Query::default(),
                    })
                    .await
                    .unwrap()
                    .unwrap();
                result
                    .publications
                    .iter()
                    .map(|p| p.offset)
                    .collect::<Vec<_>>()
            }
        };
        // Four publications, room for three: the first one of `h:a` went.
        assert_eq!(offsets("h:a").await, vec![2]);
        assert_eq!(offsets("h:b").await, vec![1, 2]);
    }

    impl Handler<Demand> for Notes {
        type Result = ();
        fn handle(&mut self, msg: Demand, _: &mut Context<Self>) {
            self.0.lock().unwrap().push(format!("{msg:?}"));
        }
    }

    #[test]
    fn market_channels_name_their_exchange() {
        assert_eq!(exchange_of("ticker:sim:BTC/USDT"), Some("sim"));
        assert_eq!(exchange_of("ohlcv:binance:BTC/USDT:1m"), Some("binance"));
        assert_eq!(exchange_of("orders:sim#alice"), None);
        assert_eq!(exchange_of("$book:sim:BTC/USDT"), None);
        assert_eq!(exchange_of("chat:room"), None);
        assert_eq!(exchange_of("notifications"), None);
    }

    #[actix::test]
    async fn upstream_starts_with_the_first_subscriber_and_stops_after_the_linger() {
        let notes = Arc::new(Mutex::new(Vec::new()));
        let adapter = Notes(notes.clone()).start();
        let sessions = Notes(Arc::new(Mutex::new(Vec::new()))).start();
        let notify = SessionRecipients {
            close: sessions.clone().recipient(),
            refused: sessions.recipient(),
        };
        let linger = Duration::from_millis(1500);
        let router = Router::new(rules(), 1 << 20).with_linger(linger).start();
        let register = RegisterAdapter {
            exchange: "sim".into(),
            demand: adapter.recipient(),
        };
        router.send(register).await.unwrap();
        let (queue, _stream) = outbox(Format::Json, 64, 1 << 16);
        let request = ChannelRequest {
            channel: "h:sim:BTC/USDT".into(),
            ..ChannelRequest::default()
        };
        router
            .send(subscribe(queue.clone(), notify.clone(), request.clone()))
            .await
            .unwrap();
        let start = r#"Start { channel: "h:sim:BTC/USDT" }"#.to_owned();
        assert_eq!(notes_after(&notes).await, vec![start.clone()]);
        // A second subscriber, or one that comes back within the linger, starts nothing more.
        let unsubscribe = || Unsubscribe {
            key: 7,
            channel: "h:sim:BTC/USDT".into(),
            reply: Bytes::from_static(b"{}"),
        };
        router.send(unsubscribe()).await.unwrap();
        actix::clock::sleep(Duration::from_millis(500)).await;
        router
            .send(subscribe(queue.clone(), notify.clone(), request))
            .await
            .unwrap();
        router.send(unsubscribe()).await.unwrap();
        let left = Instant::now();
        actix::clock::sleep(linger / 2).await;
        assert_eq!(notes.lock().unwrap().clone(), vec![start.clone()]);
        // The sweep runs each second: the stop comes within the linger and one sweep.
        while notes.lock().unwrap().len() < 2 {
            assert!(
                left.elapsed() < linger + SWEEP_INTERVAL * 2,
                "no stop in time"
            );
            actix::clock::sleep(Duration::from_millis(20)).await;
        }
        assert!(left.elapsed() >= linger);
        let stop = r#"Stop { channel: "h:sim:BTC/USDT" }"#.to_owned();
        assert_eq!(notes.lock().unwrap().clone(), vec![start, stop]);
    }
}
