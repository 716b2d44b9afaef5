//! The recording reader: a recording (`rpc-crypto record`'s, or a cryptofeed capture) and one
//! more HTTP capture, as `Recording::load` reads them from files, then what the replay server
//! does with it: each connection's messages in order, and the recorded answer to each GET.
//!
//! The input is the recording, then, after a NUL byte, the HTTP capture; it is read with the
//! exchange its header names, and as a Kraken recording. Nothing may panic; what parses holds
//! every received message of the recording, in order, and every HTTP record of both files, each
//! `http(s)://` one found again by the request target an adapter sends for its URL.

use rpc_crypto_actors::adapters::capture::{self, Record};
use rpc_crypto_actors::adapters::replay::{Recording, EXCHANGES};

pub fn run(data: &[u8]) {
    // Files are read as UTF-8 (`read_to_string`): other bytes never get this far.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (main, http) = text.split_once('\0').unwrap_or((text, ""));
    for exchange in ["", "kraken"] {
        let files = vec![("http".to_owned(), http.to_owned())];
        let Ok(recording) = Recording::parse(("main".to_owned(), main.to_owned()), files, exchange)
        else {
            continue;
        };
        check(&recording, main, http);
    }
}

fn check(recording: &Recording, main: &str, http: &str) {
    assert!(EXCHANGES.contains(&recording.exchange()));
    let span = recording.span();
    assert!(span.is_finite() && span >= 0.0);
    recording.summary();
    // A last line without its newline is left out (with a warning).
    let complete = |text: &str| -> String {
        let mut text = text.to_owned();
        if !text.is_empty() && !text.ends_with('\n') {
            text.truncate(text.rfind('\n').map_or(0, |at| at + 1));
        }
        text
    };
    let (main, http) = (complete(main), complete(http));
    let received: Vec<&str> = capture::records(&main)
        .filter_map(
            |r| match r.expect("a recording that parsed has only records") {
                Record::Received { message, .. } => Some(message),
                _ => None,
            },
        )
        .collect();
    assert!(recording.messages().eq(received.iter().copied()));
    let mut answers = 0;
    for text in [&main, &http] {
        for record in capture::records(text) {
            let Ok(Record::Http { url, at, .. }) = record else {
                continue;
            };
            answers += 1;
            let fetchable = url.starts_with("http://") || url.starts_with("https://");
            let target = request_target(url);
            // The HTTP client sends only such targets (no space, no control character).
            if !fetchable || !target.bytes().all(|b| b.is_ascii_graphic()) {
                continue;
            }
            assert!(
                recording.answer(&target, at).is_some(),
                "{url} is answered when asked for {target}"
            );
        }
    }
    assert_eq!(recording.answers(), answers);
}

/// What an HTTP client puts in its request line for `url`: the path and query, from `/`.
fn request_target(url: &str) -> String {
    let url = url.split('#').next().unwrap_or_default();
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    match rest.find(['/', '?']) {
        Some(at) if rest.as_bytes()[at] == b'?' => format!("/{}", &rest[at..]),
        Some(at) => rest[at..].to_owned(),
        None => "/".to_owned(),
    }
}
