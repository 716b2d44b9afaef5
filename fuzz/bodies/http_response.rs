//! HTTP responses as the adapters' HTTP client reads them (the ECB file, exchange REST answers):
//! `ResponseReader`, fed the bytes as they arrive, then told the connection closed.
//!
//! The first byte sets the body limit (16 B to 2 KiB, so that the limits are reached), whether
//! only a 200 is wanted (as `get` wants), and the size of the pieces the rest arrives in.
//! Nothing may panic; at the end of the stream the reader has an answer or an error, never
//! "more to come"; an answer has a final status (a 200 when only that is wanted) and a body
//! within the limit; and an answer read whole is the same answer read in pieces.

use rpc_crypto_actors::adapters::http::{HttpError, Response, ResponseReader};

use super::support;

pub fn run(data: &[u8]) {
    let Some((settings, response)) = support::mode(data) else {
        return;
    };
    let max_body = 16 << (settings & 7);
    let only_ok = settings & 8 != 0;
    let step = usize::from(settings >> 4) + 1;
    let whole = read(response, response.len(), max_body, only_ok);
    let pieces = read(response, step, max_body, only_ok);
    for answer in [&whole, &pieces].into_iter().flatten() {
        assert!((200..600).contains(&answer.status));
        assert!(!only_ok || answer.status == 200);
        assert!(answer.body.len() <= max_body);
    }
    if let Ok(answer) = &whole {
        assert_eq!(
            pieces.as_ref().ok(),
            Some(answer),
            "read in pieces of {step}"
        );
    }
}

/// As the client reads a connection: each piece as it arrives, then the end of the stream.
fn read(
    response: &[u8],
    step: usize,
    max_body: usize,
    only_ok: bool,
) -> Result<Response, HttpError> {
    let mut reader = ResponseReader::new(max_body, only_ok);
    let mut buf = Vec::new();
    for piece in response.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        if let Some(answer) = reader.advance(&mut buf, false)? {
            return Ok(answer);
        }
    }
    Ok(reader
        .advance(&mut buf, true)?
        .expect("at the end of the stream, an answer or an error"))
}
