//! Fuzz target `commands_protobuf`: the body is `bodies::commands::run_protobuf` (see
//! its module doc), shared with the stable replay of the corpora in `tests/fuzz_corpora.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../bodies/mod.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::commands::run_protobuf(data));
