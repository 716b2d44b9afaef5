//! Fuzz target `kraken_v2`: the body is `bodies::kraken::run_v2` (see its module doc),
//! shared with the stable replay of the corpora in `tests/fuzz_corpora.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../bodies/mod.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::kraken::run_v2(data));
