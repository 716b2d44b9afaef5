//! Publication data as it enters (a client's publish, the API, an adapter): `JsonText::parse`.
//!
//! What it accepts is valid UTF-8 on one line, the same JSON value as the input (raw newlines
//! only ever separate tokens), a value a strict reader (serde_json's `Value`) reads, nested at
//! most `MAX_DEPTH` deep, and accepted again unchanged. What it refuses is refused for the reason
//! it gives: not JSON is what a strict reader refuses too, or an object with serde_json's own
//! key.

use bytes::Bytes;
use rpc_crypto_proto::json::{DataError, JsonText, MAX_DEPTH};
use serde_json::Value;

use super::support::depth;

pub fn run(data: &[u8]) {
    match JsonText::parse(Bytes::copy_from_slice(data)) {
        Ok(text) => {
            let bytes = text.bytes();
            let line = std::str::from_utf8(bytes).expect("accepted data is UTF-8");
            assert!(!line.contains('\n'), "accepted data is one line");
            assert_eq!(bytes.len(), data.len(), "only newlines are replaced");
            let value: Value = serde_json::from_str(line).expect("a strict reader reads it");
            let input: Value = serde_json::from_slice(data).expect("and read the input");
            assert_eq!(value, input, "the same value");
            assert!(depth(&value) <= MAX_DEPTH);
            let again = JsonText::parse(bytes.clone()).expect("accepted again");
            assert_eq!(again, text);
        }
        Err(DataError::Empty) => assert!(data.iter().all(u8::is_ascii_whitespace)),
        Err(DataError::NotUtf8) => assert!(std::str::from_utf8(data).is_err()),
        // serde_json reads its reserved key (`json::RAW_VALUE_KEY`) as something else, maybe.
        Err(DataError::NotJson(e)) if e.to_string().contains("is reserved") => {}
        Err(DataError::NotJson(_)) => {
            assert!(serde_json::from_slice::<Value>(data).is_err());
        }
        Err(DataError::TooDeep) => {
            assert!(std::str::from_utf8(data).is_ok(), "UTF-8 is checked first");
            // serde_json reads a Value at most 128 deep: deeper, or not JSON, it refuses.
            if let Ok(value) = serde_json::from_slice::<Value>(data) {
                assert!(depth(&value) > MAX_DEPTH);
            }
        }
    }
}
