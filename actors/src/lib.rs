//! rpc-crypto-actors: the actors of the broker.
//!
//! # Layout
//! - [`registry`]: the Registry actor. Allocates session ids, enforces session limits, and
//!   closes every session on shutdown.
//! - [`session`]: the Session actor, one per WebSocket connection, with one file per client
//!   command (`session/commands/`) and the RPC methods (`session/methods.rs`).
//! - [`router`]: the Router actor. Owns the channel table and fans publications out, encoded once
//!   per wire format.
//! - [`outbox`]: the bounded per-session queue between the Router and a Session.
//! - [`channel`]: channel names, namespaces and their permissions and options; user names.
//! - [`encode`]: replies and pushes as outbox items; one that cannot be encoded becomes error 100,
//!   never a panic.
//! - [`history`]: a channel's recent publications at their stream positions (offset, epoch).
//! - [`stats`]: the server's own figures on `$sys:stats`.
//! - [`adapters`]: the exchange adapters (`sim`, fiat `rates`) and the contract they answer.
//! - [`auth`]: connection and subscription tokens (JWT).
//! - [`settings`]: the settings the actors run with (the `[client]` and `[limits]` config tables).
//! - [`secure_keys`]: the secure transport's RSA keys (server key, client public keys), shared by
//!   its sessions and reloaded when the key files change or on SIGHUP.
//! - [`handshake_limit`]: the secure transport's handshake rate limits, per address and per client.
//! - `fault` (debug builds only): fault injection for the supervision tests (`debug.panic`).
//! - [`capacity`]: shrinking the tables a crowd of sessions or channels left behind.
//! - [`metrics`]: the Prometheus metrics, counted where things happen, served at `/metrics`.
//!
//! A message's path: socket → `Session` (`StreamHandler<ws::Message>`) → `commands::dispatch` →
//! e.g. `commands/publish.rs` → `Router` (`Handler<Publish>`) → each subscriber's `Outbox` →
//! that `Session` (`StreamHandler<OutboundFrame>`) → socket.

pub mod adapters;
pub mod auth;
pub mod capacity;
pub mod channel;
pub mod encode;
#[cfg(debug_assertions)]
pub mod fault;
pub mod handshake_limit;
pub mod history;
pub mod metrics;
pub mod outbox;
pub mod registry;
pub mod router;
pub mod secure_keys;
pub mod session;
pub mod settings;
pub mod stats;
