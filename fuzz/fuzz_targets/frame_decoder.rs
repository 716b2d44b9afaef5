//! Fuzz target `frame_decoder`: the body is `bodies::frame_decoder::run` (see its module doc),
//! shared with the stable replay of the corpora in `tests/fuzz_corpora.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../bodies/mod.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::frame_decoder::run(data));
