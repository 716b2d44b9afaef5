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

    pub fn serialize<S: Serializer>(value: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
        let text = std::str::from_utf8(value).map_err(S::Error::custom)?;
        let raw = RawValue::from_string(text.to_owned()).map_err(S::Error::custom)?;
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
