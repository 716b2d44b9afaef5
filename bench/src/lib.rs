//! rpc-crypto-bench: a load generator for rpc-crypto and its peers.
//!
//! # Layout
//! - [`payload`]: timestamped payloads of exact size, and the scanner that finds them again in
//!   any protocol's byte stream.
//! - [`target`]: how to connect, subscribe and publish to each server under test.
//! - [`secure`]: subscribers on rpc-crypto's secure transport (target `rpc-secure`), and
//!   reading the publications out of its encrypted frames.
//! - [`scenario`]: fan-out at an open-loop rate (latency, loss, CPU), idle connections (RSS per
//!   connection), connects per second.
//! - [`proc`]: CPU time and RSS from /proc.
//!
//! It runs on one thread (pin it to its own core), so that its own CPU use is one number.

pub mod payload;
pub mod proc;
pub mod scenario;
pub mod secure;
pub mod target;
