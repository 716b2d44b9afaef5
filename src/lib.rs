//! rpc-crypto: a real-time broker for crypto-currency market data and trading that speaks the
//! Centrifuge v2 client protocol, plus the RPC-Crypto session messages.
//!
//! # Layout
//! - `proto/` (crate `rpc_crypto_proto`): wire formats as pure functions over bytes.
//! - `actors/` (crate `rpc_crypto_actors`): Registry, Session and Router actors.
//! - [`config`]: the TOML config and its `RPC_CRYPTO_` environment overrides.
//! - [`server`]: the actix-web app, the WebSocket endpoint and graceful shutdown.
//! - [`health`]: `/health`, `/ready`, and the watchdog that ends the process when a core actor
//!   fails.
//! - [`logs`]: the log on stderr, text or JSON lines (`[log] format`).
//! - [`memory`]: freed memory given back to the system after a crowd of clients left.
//! - [`probe`]: `rpc-crypto health`, one `GET /health` to a running broker.
//! - [`record`]: `rpc-crypto record`, one exchange adapter's traffic to a file.
//! - `main.rs`: the command line.
//!
//! Dependencies point one way: this crate → actors → proto.

pub mod api;
pub mod config;
pub mod health;
pub mod logs;
pub mod memory;
pub mod metrics;
pub mod probe;
pub mod record;
pub mod server;
pub mod tls;
