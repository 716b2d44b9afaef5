//! The fuzz targets' bodies, one module per decoder of network bytes: `run(data)` is what a
//! target does with one input. The fuzz binaries (`fuzz_targets/`) and the root package's stable
//! test `tests/fuzz_corpora.rs` include this module by path, so the committed corpora and
//! regressions are replayed through the very code the fuzzer ran.

pub mod binance;
pub mod coinbase;
pub mod commands;
pub mod ecb_rates;
pub mod frame_decoder;
pub mod handshake_parser;
pub mod http_response;
pub mod json_text;
pub mod kraken;
pub mod recording;
mod support;

/// What a target does with one input.
pub type Body = fn(&[u8]);

/// Every target: its name (its `fuzz_targets/` file and corpus directory) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("binance", binance::run),
    ("coinbase", coinbase::run),
    ("commands_json", commands::run_json),
    ("commands_protobuf", commands::run_protobuf),
    ("ecb_rates", ecb_rates::run),
    ("frame_decoder", frame_decoder::run),
    ("handshake_parser", handshake_parser::run),
    ("http_response", http_response::run),
    ("json_text", json_text::run),
    ("kraken_v1", kraken::run_v1),
    ("kraken_v2", kraken::run_v2),
    ("recording", recording::run),
];
