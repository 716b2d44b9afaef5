//! Fuzz target `http_response`: the body is `bodies::http_response::run` (see its module doc),
//! shared with the stable replay of the corpora in `tests/fuzz_corpora.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../bodies/mod.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::http_response::run(data));
