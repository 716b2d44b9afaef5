//! Inter-process messages: the server's own figures, published every second on `$sys:stats`
//! (sessions, users, channels, messages in and out per second, and each exchange adapter's last
//! announced status). `$sys:` channels are private: an
//! admin reads them with a subscription token (or a connection token that lists the channel),
//! which the application's backend gives only to its admins.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use rpc_crypto_proto::json::JsonText;

use crate::registry::{GetRegistryInfo, Registry};
use crate::router::{GetRouterInfo, Publish, Router};

/// The channel the figures go to.
pub const SYS_STATS: &str = "$sys:stats";

/// Publishes the server's figures every `interval`.
pub struct SysStats {
    registry: Addr<Registry>,
    router: Addr<Router>,
    interval: Duration,
    started: Instant,
    /// The Router's counters at the last publication, and when.
    last: Option<(Instant, u64, u64)>,
}

impl SysStats {
    pub fn new(registry: Addr<Registry>, router: Addr<Router>, interval: Duration) -> Self {
        SysStats {
            registry,
            router,
            interval,
            started: Instant::now(),
            last: None,
        }
    }
}

impl Actor for SysStats {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |stats, ctx| {
            let (registry, router) = (stats.registry.clone(), stats.router.clone());
            let ask = async move {
                (
                    registry.send(GetRegistryInfo).await,
                    router.send(GetRouterInfo).await,
                )
            };
            // One at a time: a slow answer delays the next figures rather than piling up asks.
            ctx.wait(ask.into_actor(stats).map(|answers, stats, _| {
                let (Ok(sessions), Ok(channels)) = answers else {
                    return;
                };
                let now = Instant::now();
                let rate = |count: u64, before: u64, since: Instant| {
                    let seconds = now.duration_since(since).as_secs_f64();
                    if seconds > 0.0 {
                        (count.saturating_sub(before)) as f64 / seconds
                    } else {
                        0.0
                    }
                };
                let (messages_in, messages_out) = match stats.last {
                    Some((since, published, delivered)) => (
                        rate(channels.published, published, since),
                        rate(channels.delivered, delivered, since),
                    ),
                    None => (0.0, 0.0),
                };
                stats.last = Some((now, channels.published, channels.delivered));
                let timestamp = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let figures = serde_json::json!({
                    "timestamp": timestamp,
                    "uptime_seconds": stats.started.elapsed().as_secs(),
                    "sessions": sessions.sessions,
                    "parked": sessions.parked,
                    "users": sessions.users,
                    "channels": channels.channels,
                    "subscriptions": channels.subscriptions,
                    "messages_in_per_second": messages_in.round(),
                    "messages_out_per_second": messages_out.round(),
                    "messages_in": channels.published,
                    "messages_out": channels.delivered,
                    "adapters": channels.adapters.iter()
                        .map(|(name, notice)| (name.clone(), notice.get("status").cloned().unwrap_or_default()))
                        .collect::<serde_json::Map<_, _>>(),
                });
                if let Ok(data) = JsonText::serialize(&figures) {
                    stats.router.do_send(Publish::new(SYS_STATS.to_owned(), data));
                }
            }));
        });
    }
}
