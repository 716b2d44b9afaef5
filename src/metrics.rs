//! `GET /metrics`: the Prometheus exposition of the broker's metrics (counted by
//! `rpc_crypto_actors::metrics` where things happen), on the main listener.
//!
//! On by default, on the main listener: it is what a container's one port and Centrifugo's
//! habits lead operators to scrape, and it says nothing a client could not learn by itself beyond
//! totals (no user, no channel name but the exchanges' symbols, no secret). Where the broker's port
//! faces the internet and traffic totals should stay private, `[metrics] enabled = false` removes
//! the route (404), or a proxy keeps `/metrics` inside.
//!
//! A scrape asks the Registry and the Router for their counts (sessions, users, channels,
//! subscriptions, history), each within `DEADLINE`; the other series are kept up to date where
//! they are counted. A core actor that does not answer leaves its gauges at their last values and
//! `/health` says why.

use std::time::Duration;

use actix::prelude::*;
use actix_web::{web, HttpResponse};
use rpc_crypto_actors::metrics::{metrics, CONTENT_TYPE};
use rpc_crypto_actors::registry::{GetRegistryInfo, Registry};
use rpc_crypto_actors::router::{GetRouterInfo, Router};
use serde::{Deserialize, Serialize};

/// How long a scrape waits for each core actor's counts.
const DEADLINE: Duration = Duration::from_secs(2);

/// The `[metrics]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `GET /metrics` on the listener.
    pub enabled: bool,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings { enabled: true }
    }
}

/// What the handler asks.
pub struct MetricsSources {
    pub registry: Addr<Registry>,
    pub router: Addr<Router>,
}

/// `GET /metrics`.
pub async fn exposition(sources: web::Data<MetricsSources>) -> HttpResponse {
    let (registry, router) = tokio::join!(
        tokio::time::timeout(DEADLINE, sources.registry.send(GetRegistryInfo)),
        tokio::time::timeout(DEADLINE, sources.router.send(GetRouterInfo)),
    );
    let metrics = metrics();
    if let Ok(Ok(info)) = registry {
        metrics.set_registry_figures(&info);
    }
    if let Ok(Ok(info)) = router {
        metrics.set_router_figures(&info);
    }
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(metrics.encode())
}
