//! The fuzz targets' corpora and regressions, replayed on the stable toolchain: every file of
//! `fuzz/corpus/<target>/` (the minimized corpus, committed) and of `fuzz/regressions/<target>/`
//! (each input that once failed) goes through the target's body, the very code the fuzzer runs
//! (`fuzz/bodies/`, included here by path). A body panics on a broken property, so a decoder that
//! regresses on any input the fuzzer kept fails here, without nightly or libFuzzer.

use std::path::{Path, PathBuf};

#[path = "../fuzz/bodies/mod.rs"]
mod bodies;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted; none when it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a readable directory").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every corpus and regression input of `target`.
fn replay(target: &str) {
    let (_, run) = bodies::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no body for {target}"));
    let corpus = inputs(&fuzz_dir().join("corpus").join(target));
    let regressions = inputs(&fuzz_dir().join("regressions").join(target));
    let failed: Vec<String> = corpus
        .iter()
        .chain(&regressions)
        .filter(|path| {
            let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            std::panic::catch_unwind(|| run(&data)).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: these inputs fail: {failed:#?}"
    );
    assert!(!corpus.is_empty(), "{target}: the corpus is committed");
}

macro_rules! replayed {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target));
            }
        )*

        /// Each target in `fuzz/fuzz_targets/` has a body and a test above.
        #[test]
        fn every_target_is_replayed() {
            let tested = [$(stringify!($target)),*];
            let mut targets: Vec<String> = inputs(&fuzz_dir().join("fuzz_targets"))
                .iter()
                .filter_map(|path| Some(path.file_stem()?.to_str()?.to_owned()))
                .collect();
            targets.sort();
            let mut bodies: Vec<&str> = bodies::TARGETS.iter().map(|(name, _)| *name).collect();
            bodies.sort_unstable();
            let mut tested = tested.to_vec();
            tested.sort_unstable();
            assert_eq!(targets, bodies);
            assert_eq!(bodies, tested);
        }
    };
}

replayed!(
    binance,
    coinbase,
    commands_json,
    commands_protobuf,
    ecb_rates,
    frame_decoder,
    handshake_parser,
    http_response,
    json_text,
    kraken_v1,
    kraken_v2,
    recording,
);
