//! The Router: owns the channel table and fans each publication out to the channel's
//! subscribers, encoded once per wire format and shared by all of them.
//!
//! Sessions reach it with [`Subscribe`], [`Unsubscribe`], [`Publish`] and [`Detach`]; the server
//! publishes through [`Publish`] too (notifications). A subscriber whose outbox is full is
//! detached from every channel and told to close with 3008; nobody else waits for it.

use std::collections::{HashMap, HashSet};

use actix::prelude::*;
use bytes::Bytes;
use rpc_crypto_proto::codec::{encode_publication, Format};
use rpc_crypto_proto::protocol::Publication;
use rpc_crypto_proto::Disconnect;

use crate::channel::is_listable;
use crate::outbox::{Outbox, PushError};
use crate::registry::{CloseSession, SessionKey};

/// How many messages may wait in the Router's mailbox before publishers get error 111.
pub const MAILBOX_CAPACITY: usize = 65_536;

/// Adds a session to a channel. The Router queues `reply` (the encoded subscribe result) to the
/// session before any publication of the channel, so the client always sees the result first.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    pub key: SessionKey,
    pub channel: String,
    pub format: Format,
    pub outbox: Outbox,
    pub close: Recipient<CloseSession>,
    pub reply: Bytes,
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

/// Publishes `data` (JSON text) on a channel.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish {
    pub channel: String,
    pub data: Bytes,
}

/// The channels that have subscribers and may be shown to any client, sorted.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct ListChannels;

struct Subscriber {
    key: SessionKey,
    format: Format,
    outbox: Outbox,
}

struct SessionChannels {
    close: Recipient<CloseSession>,
    channels: HashSet<String>,
}

#[derive(Default)]
pub struct Router {
    channels: HashMap<String, Vec<Subscriber>>,
    sessions: HashMap<SessionKey, SessionChannels>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    fn remove_subscriber(&mut self, channel: &str, key: SessionKey) {
        if let Some(subscribers) = self.channels.get_mut(channel) {
            if let Some(at) = subscribers.iter().position(|s| s.key == key) {
                subscribers.swap_remove(at);
            }
            if subscribers.is_empty() {
                self.channels.remove(channel);
            }
        }
    }

    fn detach(&mut self, key: SessionKey) -> Option<Recipient<CloseSession>> {
        let session = self.sessions.remove(&key)?;
        for channel in &session.channels {
            self.remove_subscriber(channel, key);
        }
        Some(session.close)
    }

    /// Detaches a session that can take no more: one whose queue overflowed is told to close
    /// with 3008; one that is already closing is only forgotten.
    fn drop_subscriber(&mut self, key: SessionKey, error: PushError) {
        let Some(close) = self.detach(key) else {
            return;
        };
        if error == PushError::Full {
            close.do_send(CloseSession {
                disconnect: Disconnect::SLOW,
                flush: false,
            });
        }
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Handler<Subscribe> for Router {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        if let Err(error) = msg.outbox.push(msg.reply) {
            // The session may have no subscription yet, so it is told directly.
            self.detach(msg.key);
            if error == PushError::Full {
                msg.close.do_send(CloseSession {
                    disconnect: Disconnect::SLOW,
                    flush: false,
                });
            }
            return;
        }
        let session = self
            .sessions
            .entry(msg.key)
            .or_insert_with(|| SessionChannels {
                close: msg.close,
                channels: HashSet::new(),
            });
        if session.channels.insert(msg.channel.clone()) {
            self.channels
                .entry(msg.channel)
                .or_default()
                .push(Subscriber {
                    key: msg.key,
                    format: msg.format,
                    outbox: msg.outbox,
                });
        }
    }
}

impl Handler<Unsubscribe> for Router {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Context<Self>) {
        let Some(session) = self.sessions.get_mut(&msg.key) else {
            return;
        };
        if !session.channels.remove(&msg.channel) {
            return;
        }
        // The outbox is taken from the subscription being removed.
        let outbox = self.channels.get(&msg.channel).and_then(|subs| {
            subs.iter()
                .find(|s| s.key == msg.key)
                .map(|s| s.outbox.clone())
        });
        self.remove_subscriber(&msg.channel, msg.key);
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

impl Handler<Publish> for Router {
    type Result = ();

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
        let Some(subscribers) = self.channels.get(&msg.channel) else {
            return;
        };
        let publication = Publication {
            data: msg.data,
            ..Publication::default()
        };
        let mut json = None;
        let mut protobuf = None;
        let mut failed = Vec::new();
        for subscriber in subscribers {
            let item = match subscriber.format {
                Format::Json => json.get_or_insert_with(|| {
                    encode_publication(Format::Json, &msg.channel, &publication)
                }),
                Format::Protobuf => protobuf.get_or_insert_with(|| {
                    encode_publication(Format::Protobuf, &msg.channel, &publication)
                }),
            };
            if let Err(error) = subscriber.outbox.push(item.clone()) {
                failed.push((subscriber.key, error));
            }
        }
        for (key, error) in failed {
            self.drop_subscriber(key, error);
        }
    }
}

impl Handler<ListChannels> for Router {
    type Result = MessageResult<ListChannels>;

    fn handle(&mut self, _: ListChannels, _: &mut Context<Self>) -> Self::Result {
        let mut names: Vec<String> = self
            .channels
            .keys()
            .filter(|c| is_listable(c))
            .cloned()
            .collect();
        names.sort_unstable();
        MessageResult(names)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::outbox::outbox;

    /// Records the closes it is asked for.
    struct Closes(Arc<Mutex<Vec<Disconnect>>>);
    impl Actor for Closes {
        type Context = Context<Self>;
    }
    impl Handler<CloseSession> for Closes {
        type Result = ();
        fn handle(&mut self, msg: CloseSession, _: &mut Context<Self>) {
            self.0.lock().unwrap().push(msg.disconnect);
        }
    }

    #[actix::test]
    async fn a_first_subscribe_into_a_full_queue_closes_the_session_as_slow() {
        let closes = Arc::new(Mutex::new(Vec::new()));
        let close = Closes(closes.clone()).start().recipient();
        let router = Router::new().start();
        let (queue, _stream) = outbox(Format::Json, 1, 1024);
        queue.push(Bytes::from_static(b"{}")).unwrap();
        let subscribe = Subscribe {
            key: 7,
            channel: "c".into(),
            format: Format::Json,
            outbox: queue,
            close,
            reply: Bytes::from_static(b"{\"id\":2,\"subscribe\":{}}"),
        };
        router.send(subscribe).await.unwrap();
        assert!(router.send(ListChannels).await.unwrap().is_empty());
        // The close message is on its way to the session actor.
        for _ in 0..100 {
            if !closes.lock().unwrap().is_empty() {
                break;
            }
            actix::clock::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(*closes.lock().unwrap(), vec![Disconnect::SLOW]);
    }
}
