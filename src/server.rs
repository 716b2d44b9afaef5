//! The HTTP side: the actix-web app, its WebSocket endpoint, and graceful shutdown.
//!
//! `GET /connection/websocket` upgrades to WebSocket and starts one Session actor; the wire
//! format is chosen here (subprotocol `centrifuge-protobuf` or `?cf_protocol=`).
//! `GET /connection/secure` (when `[secure]` is enabled) starts a Session on the secure
//! transport instead. `GET /health` and `GET /ready` tell orchestrators whether the core actors
//! answer and whether it takes traffic ([`crate::health`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use actix::prelude::*;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actix_web_actors::ws;
use rpc_crypto_actors::adapters::binance::BinanceAdapter;
use rpc_crypto_actors::adapters::coinbase::adapter::CoinbaseAdapter;
use rpc_crypto_actors::adapters::contract::{ExchangeCall, Exchanges};
use rpc_crypto_actors::adapters::kraken::KrakenAdapter;
use rpc_crypto_actors::adapters::rates::{self, RatesAdapter, RatesSource};
use rpc_crypto_actors::adapters::replay::{Recording, ReplayServer};
use rpc_crypto_actors::adapters::sim::exchange::{self as sim, SimExchange};
use rpc_crypto_actors::auth::TokenVerifier;
use rpc_crypto_actors::channel::NOTIFICATIONS;
use rpc_crypto_actors::handshake_limit::HandshakeLimiter;
use rpc_crypto_actors::registry::{Registry, Shutdown};
use rpc_crypto_actors::router::{Demand, Publish, RegisterAdapter, Router};
use rpc_crypto_actors::secure_keys::spawn_reloader;
use rpc_crypto_actors::session::{Peer, SecureEndpoint, Session, SessionConfig};
use rpc_crypto_actors::stats::SysStats;
use rpc_crypto_proto::handshake::RejectReason;
use rpc_crypto_proto::json::JsonText;
use rpc_crypto_proto::{Disconnect, Format};

use crate::api::{self, ApiState};
use crate::config::{Config, ExchangesSettings};
use crate::health::Health;
use crate::memory::{Connections, MemoryReleaser};
use crate::metrics::MetricsSources;
use crate::tls::{CertificateUser, ClientAuth};

/// How often the server's figures go to `$sys:stats`.
const SYS_STATS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The path every Centrifuge SDK connects to.
pub const WEBSOCKET_PATH: &str = "/connection/websocket";

/// The path of the secure transport (seed 002).
pub const SECURE_PATH: &str = "/connection/secure";

struct AppState {
    sessions: Arc<SessionConfig>,
    registry: Addr<Registry>,
    router: Addr<Router>,
    /// Mutual TLS is required: a certificate that names no user is refused (3507).
    certificate_required: bool,
    /// The secure transport's keys and limits, when it is on.
    secure: Option<SecureEndpoint>,
}

/// A started server.
pub struct RunningServer {
    pub addrs: Vec<SocketAddr>,
    /// Whether the listener speaks TLS (`wss://`).
    pub tls: bool,
    server: actix_web::dev::Server,
    registry: Addr<Registry>,
    router: Addr<Router>,
    shutdown_timeout: std::time::Duration,
    health: Health,
}

/// Binds and starts the server inside the current actix system.
pub fn start(config: &Config) -> std::io::Result<RunningServer> {
    // Everything that can refuse the config comes before any actor starts.
    let tls_config = crate::tls::server_config(&config.tls)
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
    let tokens = TokenVerifier::from_settings(&config.token)
        .map(Arc::new)
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
    let secure_keys = config
        .secure_keys()
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
    // A recording is read and checked, and its replay listening, before any actor starts too.
    let exchanges = replayed(config)?;
    // Bound before any actor starts: an actor dropped on the way out of a failed start panics.
    let listener = listen(config.listen)?;
    let rules = Arc::new(config.channel_rules());
    let router = Router::new(rules.clone(), config.history.max_size)
        .with_linger(config.upstream_linger)
        .with_max_channels(config.limits.max_channels)
        .start();
    let registry = Registry::new(
        config.limits.clone(),
        config.session.clone(),
        router.clone().recipient(),
    )
    .start();
    let mut adapters = BTreeMap::new();
    if config.sim.enabled {
        let sim = SimExchange::new(config.sim.clone(), router.clone().recipient())
            .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?
            .start();
        register(
            &router,
            &mut adapters,
            sim::NAME,
            sim.clone().recipient(),
            sim.recipient(),
        );
    }
    let real = &exchanges;
    if real.binance.enabled {
        let adapter = BinanceAdapter::new(real.binance.clone(), router.clone().recipient()).start();
        register(
            &router,
            &mut adapters,
            "binance",
            adapter.clone().recipient(),
            adapter.recipient(),
        );
    }
    if real.coinbase.enabled {
        let adapter =
            CoinbaseAdapter::new(real.coinbase.clone(), router.clone().recipient()).start();
        register(
            &router,
            &mut adapters,
            "coinbase",
            adapter.clone().recipient(),
            adapter.recipient(),
        );
    }
    if real.kraken.enabled {
        let adapter = KrakenAdapter::new(real.kraken.clone(), router.clone().recipient()).start();
        register(
            &router,
            &mut adapters,
            "kraken",
            adapter.clone().recipient(),
            adapter.recipient(),
        );
    }
    let exchanges = Exchanges::new(adapters);
    SysStats::new(registry.clone(), router.clone(), SYS_STATS_INTERVAL).start();
    let connections = Connections::default();
    MemoryReleaser::new(connections.clone(), registry.clone()).start();
    let rates = (config.rates.source != RatesSource::Off).then(|| {
        let adapter = RatesAdapter::new(config.rates.clone(), router.clone().recipient()).start();
        router.do_send(RegisterAdapter {
            exchange: rates::EXCHANGE.to_owned(),
            demand: adapter.clone().recipient(),
        });
        adapter.recipient()
    });
    let health = Health::new(
        registry.clone(),
        router.clone(),
        exchanges.clone(),
        rates.clone(),
        &config.health,
    );
    health.spawn_watchdog(&config.health);
    let health_endpoints = web::Data::new(health.clone());
    let metrics_sources = web::Data::new(MetricsSources {
        registry: registry.clone(),
        router: router.clone(),
    });
    let metrics_enabled = config.metrics.enabled;
    let api = web::Data::new(ApiState {
        key: config.api.key.clone(),
        registry: registry.clone(),
        router: router.clone(),
        rules: rules.clone(),
        started: std::time::Instant::now(),
    });
    let state = web::Data::new(AppState {
        sessions: Arc::new(SessionConfig {
            client: config.client.clone(),
            session: config.session.clone(),
            rules,
            tokens,
            exchanges,
            rates,
        }),
        registry: registry.clone(),
        router: router.clone(),
        certificate_required: config.tls.client_auth == ClientAuth::Required,
        secure: secure_keys.map(|keys| {
            spawn_reloader(keys.clone(), config.secure.reload_interval);
            SecureEndpoint {
                keys,
                limiter: HandshakeLimiter::new(&config.secure),
            }
        }),
    });
    let write_timeout = config.client.write_timeout;
    let http = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(api.clone())
            .app_data(health_endpoints.clone())
            .configure(api::routes)
            .route(WEBSOCKET_PATH, web::get().to(websocket))
            .route(SECURE_PATH, web::get().to(secure_websocket))
            .route("/health", web::get().to(crate::health::health))
            .route("/ready", web::get().to(crate::health::ready))
            .configure(|cfg| {
                if metrics_enabled {
                    cfg.app_data(metrics_sources.clone())
                        .route("/metrics", web::get().to(crate::metrics::exposition));
                }
            })
    })
    .on_connect(move |connection, extensions| {
        tune_socket(connection, write_timeout);
        extensions.insert(connections.opened());
        if let Some(user) = crate::tls::certificate_user(connection) {
            extensions.insert(user);
        }
    })
    .disable_signals()
    .shutdown_timeout(1);
    let tls = tls_config.is_some();
    let mut http = match tls_config {
        Some(tls_config) => http.listen_rustls_0_23(listener, tls_config)?,
        None => http.listen(listener)?,
    };
    if config.workers > 0 {
        http = http.workers(config.workers);
    }
    let addrs = http.addrs();
    Ok(RunningServer {
        addrs,
        tls,
        server: http.run(),
        registry,
        router,
        shutdown_timeout: config.shutdown_timeout,
        health,
    })
}

impl RunningServer {
    /// Serves until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) -> std::io::Result<()> {
        let RunningServer {
            server,
            registry,
            router,
            shutdown_timeout,
            health,
            ..
        } = self;
        let handle = server.handle();
        actix_rt::spawn(async move {
            wait_for_signal().await;
            log::info!("shutting down: closing every session with 3001");
            health.shutting_down();
            shutdown(&registry, &router, shutdown_timeout).await;
            handle.stop(true).await;
        });
        server.await
    }
}

/// The listening socket, as actix-web's own `bind` makes it: SO_REUSEADDR (a restart does not wait
/// out the old connections' TIME_WAIT) and a backlog of 1024.
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// The exchanges' settings, with the one `[replay]` plays (if on) enabled and pointed at the
/// replay of its recording, which starts listening here.
fn replayed(config: &Config) -> std::io::Result<ExchangesSettings> {
    let settings = &config.replay;
    if !settings.enabled {
        return Ok(config.exchanges.clone());
    }
    let invalid = |error: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, error);
    let recording = Recording::load(settings).map_err(|e| invalid(e.to_string()))?;
    for warning in &recording.warnings {
        log::warn!("replay: {warning}");
    }
    let (exchange, summary) = (recording.exchange().to_owned(), recording.summary());
    let replay = ReplayServer::start(Arc::new(recording), settings.speed, settings.repeat)?;
    let exchanges = config
        .replayed_exchanges(&exchange, replay.ws_url(), replay.http_url())
        .map_err(|e| invalid(e.to_string()))?;
    log::info!(
        "replay: {exchange} is played from {} ({summary}) at speed {}{}, not from its network",
        settings.file,
        settings.speed,
        if settings.repeat { ", in a loop" } else { "" }
    );
    Ok(exchanges)
}

/// Makes an exchange adapter hear the demand for its channels and answer `exchange.*` calls.
fn register(
    router: &Addr<Router>,
    adapters: &mut BTreeMap<String, Recipient<ExchangeCall>>,
    exchange: &str,
    demand: Recipient<Demand>,
    calls: Recipient<ExchangeCall>,
) {
    router.do_send(RegisterAdapter {
        exchange: exchange.to_owned(),
        demand,
    });
    adapters.insert(exchange.to_owned(), calls);
}

/// Sets up each accepted connection:
/// - TCP_NODELAY: frames are already coalesced by the outbox, and Nagle's algorithm meeting the
///   client's delayed ACK would hold small pushes back by up to 40 ms.
/// - TCP_USER_TIMEOUT (`write_timeout`): a client that stops reading stalls its session actor
///   (it runs only as its socket drains), so only the kernel can end such a connection; this
///   frees its session slot, its queue and its socket buffers.
fn tune_socket(connection: &dyn std::any::Any, write_timeout: std::time::Duration) {
    if let Some(tcp) = crate::tls::tcp_stream(connection) {
        if let Err(error) = tcp.set_nodelay(true) {
            log::warn!("cannot set TCP_NODELAY: {error}");
        }
        if let Err(error) = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(write_timeout)) {
            log::warn!("cannot set TCP_USER_TIMEOUT: {error}");
        }
    }
}

/// Tells subscribers of `notifications`, closes every session with 3001 after its queue is
/// flushed, and waits for them (at most `timeout`).
async fn shutdown(registry: &Addr<Registry>, router: &Addr<Router>, timeout: std::time::Duration) {
    if let Ok(data) =
        JsonText::serialize(&serde_json::json!({"type": "shutdown", "reconnect": true}))
    {
        let notice = Publish::new(NOTIFICATIONS.to_owned(), data);
        let _ = router.send(notice).await;
    }
    if tokio::time::timeout(timeout, registry.send(Shutdown))
        .await
        .is_err()
    {
        log::warn!("sessions still open after {timeout:?}; stopping anyway");
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// The wire format a connection asked for, or the reason to refuse it. A `centrifuge-protobuf`
/// or `centrifuge-json` subprotocol decides (the first offered, as a WebSocket server picks);
/// without one, `?cf_protocol=json|protobuf`; without either, JSON.
fn requested_format(req: &HttpRequest) -> Result<Format, RejectReason> {
    let offered = req
        .headers()
        .get_all("sec-websocket-protocol")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(str::trim));
    for protocol in offered {
        match protocol {
            Format::PROTOBUF_SUBPROTOCOL => return Ok(Format::Protobuf),
            Format::JSON_SUBPROTOCOL => return Ok(Format::Json),
            _ => {}
        }
    }
    let query =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .map(|q| q.into_inner())
            .unwrap_or_default();
    match query.get("cf_protocol") {
        None => Ok(Format::Json),
        Some(value) => Format::from_query_value(value).ok_or(RejectReason::ProtocolNotSupported),
    }
}

/// The subprotocol that names `format`, echoed when the client offered it.
/// `GET /connection/secure`: a Session on the secure transport, or 404 when it is off.
async fn secure_websocket(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let Some(endpoint) = state.secure.clone() else {
        return Ok(HttpResponse::NotFound().body("the secure transport is off ([secure] enabled)"));
    };
    let certificate_user = req
        .conn_data::<CertificateUser>()
        .map(|user| user.0.clone());
    let session = Session::secure(
        state.sessions.clone(),
        state.registry.clone(),
        state.router.clone(),
        Peer {
            address: req.peer_addr().map(|a| a.ip()),
            certificate_user,
        },
        endpoint,
    );
    ws::WsResponseBuilder::new(session, &req, payload)
        .frame_size(state.sessions.client.max_frame_size)
        .start()
}

fn subprotocol(format: Format) -> &'static str {
    match format {
        Format::Json => Format::JSON_SUBPROTOCOL,
        Format::Protobuf => Format::PROTOBUF_SUBPROTOCOL,
    }
}

async fn websocket(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let (format, mut reject) = match requested_format(&req) {
        Ok(format) => (format, None),
        Err(reason) => (Format::Json, Some(reason.disconnect())),
    };
    let certificate_user = req
        .conn_data::<CertificateUser>()
        .map(|user| user.0.clone());
    // The handshake checked the certificate; without a name in it, it identifies nobody.
    if state.certificate_required && certificate_user.is_none() {
        reject =
            Some(Disconnect::PERMISSION_DENIED.with_reason("the client certificate names no user"));
    }
    let session = Session::new(
        state.sessions.clone(),
        state.registry.clone(),
        state.router.clone(),
        format,
        Peer {
            address: req.peer_addr().map(|a| a.ip()),
            certificate_user,
        },
        reject,
    );
    ws::WsResponseBuilder::new(session, &req, payload)
        .frame_size(state.sessions.client.max_frame_size)
        .protocols(&[subprotocol(format)])
        .start()
}
