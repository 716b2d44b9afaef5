//! What the bodies share: the recorded market lists the exchange parsers look symbols up in, the
//! fuzz input read as upstream messages, the checks of what an adapter would publish, and the
//! secure transport's client key.

use std::sync::OnceLock;

use rpc_crypto_actors::adapters::capture::{self, Record};
use rpc_crypto_proto::ccxt::OrderBook;
use rpc_crypto_proto::json::{JsonText, MAX_DEPTH};
use rpc_crypto_proto::secure::PublicKey;
use serde_json::Value;

/// cryptofeed's captures of the exchanges' market lists (the repository's fixtures).
pub const BINANCE_MARKETS: &str = include_str!("../../fixtures/exchanges/BINANCE.0");
pub const COINBASE_MARKETS: &str = include_str!("../../fixtures/exchanges/COINBASE.0");
pub const KRAKEN_MARKETS: &str = include_str!("../../fixtures/exchanges/KRAKEN.0");

/// The body of the first HTTP record of a capture whose URL ends with `url_end`.
pub fn recorded_body<'a>(capture: &'a str, url_end: &str) -> &'a str {
    capture::records(capture)
        .find_map(|record| match record {
            Ok(Record::Http { url, body, .. }) if url.ends_with(url_end) => Some(body),
            _ => None,
        })
        .unwrap_or_else(|| panic!("the fixture holds no answer to {url_end}"))
}

/// Between two upstream messages in an input: ASCII RS, which JSON text cannot hold outside
/// a string nor (unescaped) inside one, so a message may hold raw newlines, as a WebSocket
/// text frame may.
pub const SEPARATOR: char = '\u{1e}';

/// The input as the upstream messages of one connection (WebSocket text frames are UTF-8).
pub fn messages(data: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(data)
        .split(SEPARATOR)
        .map(str::to_owned)
        .collect()
}

/// The fuzz input's first byte picks a mode, the rest is the input proper.
pub fn mode(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(&mode, rest)| (mode, rest))
}

/// Serializes what an adapter publishes as the adapters do (`JsonText::serialize`), and checks
/// that it is what a `JsonText` promises the Router and every subscriber: data that
/// `JsonText::parse` accepts as it is (strict UTF-8 JSON, one line, at most `MAX_DEPTH` deep),
/// though it may embed an exchange's own message (`info`) as raw JSON. Refused, the adapter logs
/// it and publishes nothing: only a value too deep may be refused.
pub fn published(value: &impl serde::Serialize) {
    let data = match JsonText::serialize(value) {
        Ok(data) => data,
        Err(e) => {
            let text = serde_json::to_vec(value).expect("ccxt structures serialize");
            let tree: Value = serde_json::from_slice(&text).expect("what was refused is JSON");
            assert!(depth(&tree) > MAX_DEPTH, "refused, not too deep: {e}");
            return;
        }
    };
    match JsonText::parse(data.bytes().clone()) {
        Ok(parsed) => assert!(
            parsed == data,
            "an adapter would publish a raw newline: {}",
            String::from_utf8_lossy(data.bytes())
        ),
        Err(e) => panic!(
            "an adapter would publish data that is no JsonText ({e}): {}",
            String::from_utf8_lossy(data.bytes())
        ),
    }
}

/// Nesting of arrays and objects: a scalar is 0 deep, `[]` and `[1]` 1 deep.
pub fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// What the adapters make of a ccxt structure to publish it (Binance's `json_of`) or to answer
/// an exchange call with it (`load_markets`, `fetch_ticker`, `fetch_order_book`: Kraken's
/// `json_value`, Coinbase's markets): a `serde_json::Value`, which they `expect` to succeed; then
/// the value is checked as a publication.
pub fn as_value(value: &impl serde::Serialize) {
    let value = serde_json::to_value(value).expect("ccxt structures serialize");
    published(&value);
}

/// A published book is ordered best first, at most `depth` levels a side.
pub fn check_book(book: &OrderBook, depth: usize) {
    assert!(book.bids.len() <= depth && book.asks.len() <= depth);
    assert!(
        book.bids.windows(2).all(|w| w[0][0] >= w[1][0]),
        "bids best first: {:?}",
        book.bids
    );
    assert!(
        book.asks.windows(2).all(|w| w[0][0] <= w[1][0]),
        "asks best first: {:?}",
        book.asks
    );
    published(book);
}

/// A fixed RSA-2048 client public key (the `secure` module's interop test key; public only).
/// Generating a key at startup instead takes seconds under the sanitizer.
const CLIENT_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAijwwpkt10PzeByDDU3bL
RnzXNcWFlclJUHy3C2thPJYumEKoE8gJEhGlmZUnyyM6En7fUaZmRvp/LrvKk/H7
L40dx/wV1G8Hr1qMQNBmTS+dL6Y+A0u50ZXMs6kA6bvHF38QMgD4t+zktdf58fS3
FKBbOquq4Oe8A60hF3gt/dL0ZpTeRx6STI6FeF/AEe29QS8Zj7hd4ffZbM4fnqer
/LlmVW37Gp5kRmTK5Ad0F2XNK6DAQbhVpOqZvJeVYin/WHFtyZ7dU8snREBCftgo
3MV9AjzYnt0ZkZDBwEP7N703g43dF9s5qPaY+npt9p/AlDBzN8uvYDI0B1IPfZJz
JQIDAQAB
-----END PUBLIC KEY-----
";

pub fn client_key() -> &'static PublicKey {
    static KEY: OnceLock<PublicKey> = OnceLock::new();
    KEY.get_or_init(|| PublicKey::from_pem(CLIENT_PUBLIC_PEM).expect("test key"))
}
