//! Liveness and readiness: `GET /health` and `GET /ready`, and the watchdog that ends the process
//! when a core actor stops answering.
//!
//! The Registry and the Router are single actors every session depends on, and each exchange
//! adapter (and the rates adapter) is the only source of its channels. A panic in one of them (or
//! a handler that never returns) leaves a process that accepts connections and serves nothing, or
//! serves an exchange that never publishes, so the broker does not run on without it: the
//! watchdog looks every `health.check_interval`, and when one has stopped (or the Registry or the
//! Router does not answer within `health.deadline`), it logs why and exits with status 70, for
//! the container runtime or the service manager to restart it (in-memory state is lost either
//! way; docs/OPERATIONS.md). With `health.exit_on_failure = false` the process stays and
//! `/health` answers 503, for an orchestrator whose liveness probe restarts it. A Session's panic
//! ends only that session (its `Drop` leaves the Router and the Registry); the others go on.
//!
//! - `/health` (liveness): 200 `{"status":"ok"}` when the Registry and the Router each answered
//!   within the deadline and every adapter runs; 503 `{"status":"failing","failing":[...]}`
//!   otherwise (`registry`, `router`, `adapter <name>`).
//! - `/ready` (readiness): 200 when live and not shutting down; 503 otherwise. The body lists each
//!   adapter's last upstream status (`up`, `down`, `resyncing`), which does not decide readiness:
//!   an upstream outage is the exchange's, and every node would share it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::{web, HttpResponse};
use rpc_crypto_actors::adapters::contract::Exchanges;
use rpc_crypto_actors::adapters::rates::FetchRate;
use rpc_crypto_actors::registry::{CountSessions, Registry};
use rpc_crypto_actors::router::{GetRouterInfo, Router, RouterInfo};
use serde::{Deserialize, Serialize};
use serde_json::json;

use rpc_crypto_actors::settings::duration;

/// The exit status when a core actor has failed (EX_SOFTWARE).
pub const FAILED_EXIT_STATUS: i32 = 70;

/// The `[health]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthSettings {
    /// End the process (status 70) when the Registry or the Router stops answering; off: keep
    /// running and answer 503 on `/health`.
    pub exit_on_failure: bool,
    /// How often the watchdog asks the Registry and the Router.
    #[serde(with = "duration")]
    pub check_interval: Duration,
    /// How long each may take to answer.
    #[serde(with = "duration")]
    pub deadline: Duration,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            exit_on_failure: true,
            check_interval: Duration::from_millis(500),
            deadline: Duration::from_secs(1),
        }
    }
}

/// What the endpoints and the watchdog look at.
#[derive(Clone)]
pub struct Health {
    registry: Addr<Registry>,
    router: Addr<Router>,
    exchanges: Exchanges,
    rates: Option<Recipient<FetchRate>>,
    deadline: Duration,
    shutting_down: Arc<AtomicBool>,
}

/// One look at the actors.
struct Check {
    failing: Vec<String>,
    router: Option<RouterInfo>,
}

impl Health {
    pub fn new(
        registry: Addr<Registry>,
        router: Addr<Router>,
        exchanges: Exchanges,
        rates: Option<Recipient<FetchRate>>,
        settings: &HealthSettings,
    ) -> Health {
        Health {
            registry,
            router,
            exchanges,
            rates,
            deadline: settings.deadline,
            shutting_down: Arc::new(AtomicBool::new(false)),
        }
    }

    /// From now on the server is going away: not ready, and the watchdog stands down (the actors
    /// stop on purpose).
    pub fn shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    async fn check(&self) -> Check {
        let registry = tokio::time::timeout(self.deadline, self.registry.send(CountSessions));
        let router = tokio::time::timeout(self.deadline, self.router.send(GetRouterInfo));
        let (registry, router) = tokio::join!(registry, router);
        let mut failing = Vec::new();
        if !matches!(registry, Ok(Ok(_))) {
            failing.push("registry".to_owned());
        }
        let router = match router {
            Ok(Ok(info)) => Some(info),
            _ => {
                failing.push("router".to_owned());
                None
            }
        };
        // An adapter's mailbox closes when its actor stops (it only stops by panicking).
        failing.extend(
            self.exchanges
                .stopped()
                .map(|name| format!("adapter {name}")),
        );
        if self.rates.as_ref().is_some_and(|rates| !rates.connected()) {
            failing.push("adapter rates".to_owned());
        }
        Check { failing, router }
    }

    /// Runs the watchdog on the current arbiter until shutdown.
    pub fn spawn_watchdog(&self, settings: &HealthSettings) {
        let health = self.clone();
        let (interval, exit) = (settings.check_interval, settings.exit_on_failure);
        actix_rt::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut reported = false;
            loop {
                ticks.tick().await;
                let check = health.check().await;
                if health.shutting_down.load(Ordering::Relaxed) {
                    return;
                }
                if check.failing.is_empty() {
                    reported = false;
                    continue;
                }
                if exit {
                    log::error!(
                        "{} stopped answering (a panic or a stall): exiting with status {FAILED_EXIT_STATUS} to be restarted",
                        check.failing.join(" and ")
                    );
                    std::process::exit(FAILED_EXIT_STATUS);
                }
                if !reported {
                    log::error!(
                        "{} stopped answering: /health answers 503 (health.exit_on_failure is off)",
                        check.failing.join(" and ")
                    );
                    reported = true;
                }
            }
        });
    }
}

/// `GET /health`.
pub async fn health(health: web::Data<Health>) -> HttpResponse {
    let check = health.check().await;
    if check.failing.is_empty() {
        HttpResponse::Ok().json(json!({"status": "ok"}))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(json!({"status": "failing", "failing": check.failing}))
    }
}

/// `GET /ready`.
pub async fn ready(health: web::Data<Health>) -> HttpResponse {
    let check = health.check().await;
    let shutting_down = health.shutting_down.load(Ordering::Relaxed);
    let upstream = check
        .router
        .map(|info| {
            info.adapters
                .into_iter()
                .map(|(name, notice)| (name, notice.get("status").cloned().unwrap_or_default()))
                .collect::<serde_json::Map<_, _>>()
        })
        .unwrap_or_default();
    let ready = check.failing.is_empty() && !shutting_down;
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "failing": check.failing,
        "shutting_down": shutting_down,
        "upstream": upstream,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
