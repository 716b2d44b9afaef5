//! serde helpers for Centrifuge's JSON wire.
//!
//! In JSON, a `bytes` field (`data`, `info`, ...) holds the JSON document itself, embedded as is,
//! where Protobuf carries the same document as bytes. Both wires therefore share one set of
//! generated types whose `bytes` fields always hold JSON text.

/// `skip_serializing_if` for scalars: Centrifuge leaves fields at their default value out.
pub fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// (De)serializes a `bytes` field as embedded raw JSON.
pub mod raw {
    use bytes::Bytes;
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::value::RawValue;

    /// A raw newline, only ever white space between tokens, is written as a space: embedded as
    /// is, it would split the JSON line the message is.
    pub fn serialize<S: Serializer>(value: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
        let text = std::str::from_utf8(value).map_err(S::Error::custom)?;
        let raw = RawValue::from_string(text.replace('\n', " ")).map_err(S::Error::custom)?;
        serde::Serialize::serialize(&raw, serializer)
    }

    /// JSON `null` reads as "no data", the same as a missing field.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer).map_err(D::Error::custom)?;
        if raw.get() == "null" {
            return Ok(Bytes::new());
        }
        Ok(Bytes::from(String::from(Box::<str>::from(raw))))
    }
}

use bytes::Bytes;

/// How deeply publication data may nest arrays and objects. Deeper data is refused where it
/// enters (error 107, API 400): some clients parse JSON recursively, and one deep document in
/// history would disconnect each of them again at every recovery.
pub const MAX_DEPTH: usize = 64;

/// Why bytes are not acceptable publication data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("data required")]
    Empty,
    #[error("publication data must be UTF-8")]
    NotUtf8,
    #[error("publication data must be JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("publication data nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// One JSON value that is safe to put into a JSON text frame as it is: valid UTF-8, valid JSON,
/// on one line (no raw newline), nested at most [`MAX_DEPTH`] deep.
///
/// The only ways to make one are [`JsonText::parse`] (bytes from outside, checked once where they
/// enter) and [`JsonText::serialize`] (the server's own values, written by serde_json), so code
/// that holds a `JsonText` never checks again, and never has to trust bytes it did not check.
#[derive(Clone, PartialEq, Eq)]
pub struct JsonText(Bytes);

impl JsonText {
    /// Checks bytes from a client, the API or an upstream. Raw newlines (white space between
    /// tokens: inside strings they cannot occur in valid JSON) become spaces, so the value fits
    /// one JSON line.
    pub fn parse(data: Bytes) -> Result<JsonText, DataError> {
        if data.iter().all(u8::is_ascii_whitespace) {
            return Err(DataError::Empty);
        }
        // UTF-8 first: serde_json skips over string contents it is not asked to keep without
        // checking them.
        let text = std::str::from_utf8(&data).map_err(|_| DataError::NotUtf8)?;
        // Depth before parsing: the parse below recurses once per level.
        if nesting_depth(&data) > MAX_DEPTH {
            return Err(DataError::TooDeep);
        }
        serde_json::from_str::<Checked>(text).map_err(DataError::NotJson)?;
        if !data.contains(&b'\n') {
            return Ok(JsonText(data));
        }
        let spaced: Vec<u8> = data
            .iter()
            .map(|&b| if b == b'\n' { b' ' } else { b })
            .collect();
        Ok(JsonText(Bytes::from(spaced)))
    }

    /// The server's own value, as serde_json writes it (compact: one line, UTF-8). Its depth
    /// is checked: a value may embed an exchange's message (`ccxt::Info`, itself at most
    /// [`MAX_DEPTH`] deep), and the structure around it adds levels.
    pub fn serialize<T: serde::Serialize + ?Sized>(
        value: &T,
    ) -> Result<JsonText, serde_json::Error> {
        let bytes = serde_json::to_vec(value)?;
        if nesting_depth(&bytes) > MAX_DEPTH {
            return Err(serde::ser::Error::custom(DataError::TooDeep));
        }
        Ok(JsonText(Bytes::from(bytes)))
    }

    /// The JSON text.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The JSON text as bytes, where a `&[u8]` is wanted.
impl std::ops::Deref for JsonText {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for JsonText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JsonText({} bytes)", self.0.len())
    }
}

/// A JSON value read through and dropped, its strings decoded: unlike `IgnoredAny`, which skips
/// string contents, this refuses what a strict reader would (an escaped lone surrogate such as
/// `"\ud800"`, a number out of a float's range such as `1e999`), so every subscriber's parser
/// can read what was accepted. Borrowed strings
/// without escapes are not copied.
struct Checked;

impl<'de> serde::Deserialize<'de> for Checked {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> serde::de::Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<CheckedKey, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

/// The key serde_json, with its `raw_value` feature (on in this workspace), takes for its own
/// `RawValue`: an object with it does not read as a `Value` (`serde_json::to_value` of a
/// structure embedding it fails, or makes another value of it), so no data may hold it.
const RAW_VALUE_KEY: &str = "$serde_json::private::RawValue";

/// An object key, checked not to be [`RAW_VALUE_KEY`].
struct CheckedKey;

impl<'de> serde::Deserialize<'de> for CheckedKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(CheckedKeyVisitor)
    }
}

struct CheckedKeyVisitor;

impl serde::de::Visitor<'_> for CheckedKeyVisitor {
    type Value = CheckedKey;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<CheckedKey, E> {
        if key == RAW_VALUE_KEY {
            return Err(E::custom(format_args!(
                "the key {RAW_VALUE_KEY:?} is reserved"
            )));
        }
        Ok(CheckedKey)
    }
}

/// The deepest nesting of arrays and objects in valid JSON text (strings skipped).
fn nesting_depth(json: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &[u8]) -> Result<JsonText, DataError> {
        JsonText::parse(Bytes::copy_from_slice(text))
    }

    #[test]
    fn invalid_utf8_inside_a_string_is_refused() {
        assert!(matches!(parse(b"\"\xff\xfe\""), Err(DataError::NotUtf8)));
        assert!(matches!(
            parse(b"{\"a\":\"\xc3\"}"),
            Err(DataError::NotUtf8)
        ));
        assert_eq!(
            parse("\"é\"".as_bytes()).unwrap().bytes(),
            "\"é\"".as_bytes()
        );
    }

    #[test]
    fn depth_is_bounded_and_strings_do_not_count() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(deep(MAX_DEPTH).as_bytes()).is_ok());
        assert!(matches!(
            parse(deep(MAX_DEPTH + 1).as_bytes()),
            Err(DataError::TooDeep)
        ));
        assert!(matches!(
            parse(deep(5000).as_bytes()),
            Err(DataError::TooDeep)
        ));
        let brackets_in_a_string = format!("[\"{}\\\"{}\"]", "[".repeat(100), "{".repeat(100));
        assert!(parse(brackets_in_a_string.as_bytes()).is_ok());
    }

    #[test]
    fn strings_are_decoded_so_lone_surrogates_are_refused() {
        assert!(matches!(parse(b"\"\\ud800\""), Err(DataError::NotJson(_))));
        assert!(matches!(
            parse(b"{\"\\udc00\":1}"),
            Err(DataError::NotJson(_))
        ));
        assert!(parse(b"\"\\ud83d\\ude00 \\u0000\"").is_ok());
        // A number no 64-bit float holds is refused too: strict readers refuse it.
        assert!(matches!(parse(b"1e999"), Err(DataError::NotJson(_))));
        // serde_json's own key, however written (fuzz/regressions/json_text/).
        for reserved in [
            &b"{\"$serde_json::private::RawValue\":1.5}"[..],
            b"[{\"a\":{\"\\u0024serde_json::private::RawValue\":\"1\"}}]",
        ] {
            assert!(matches!(parse(reserved), Err(DataError::NotJson(_))));
        }
        assert!(parse(b"{\"$serde_json::private::RawValue \":1}").is_ok());
        assert!(parse(b"[1e300, -0, {\"a\": null}]").is_ok());
    }

    /// Found by hand after the commands_protobuf fuzz target's property: a Protobuf client's
    /// data written into a JSON message (fuzz/regressions/commands_protobuf/).
    #[test]
    fn embedded_json_is_written_on_one_line() {
        let command = crate::protocol::Command {
            id: 1,
            publish: Some(crate::protocol::PublishRequest {
                channel: "c".into(),
                data: Bytes::from_static(b"[1,\n2]"),
            }),
            ..Default::default()
        };
        let frame = crate::codec::encode_commands(crate::Format::Json, &[command]).unwrap();
        assert_eq!(
            &frame[..],
            br#"{"id":1,"publish":{"channel":"c","data":[1, 2]}}"#
        );
    }

    #[test]
    fn newlines_become_spaces_and_junk_is_refused() {
        assert_eq!(parse(b"{\"a\":\n1}").unwrap().bytes(), &b"{\"a\": 1}"[..]);
        assert!(matches!(parse(b""), Err(DataError::Empty)));
        assert!(matches!(parse(b" \n"), Err(DataError::Empty)));
        assert!(matches!(parse(b"{\"a\":"), Err(DataError::NotJson(_))));
        assert!(matches!(parse(b"1 2"), Err(DataError::NotJson(_))));
    }
}
