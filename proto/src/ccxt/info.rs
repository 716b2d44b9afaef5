//! `info`: the exchange's own message, kept verbatim beside the unified fields.
//!
//! ccxt keeps the raw response in every structure so that users can reach fields the unified
//! model lacks. It is held as raw JSON text rather than a parsed `serde_json::Value`: the adapter
//! already has the text, and serializing embeds it as is, with no tree to build or walk.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The exchange's raw message as embedded JSON; `null` when there is none.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Info(Option<Box<RawValue>>);

impl Info {
    /// No raw message: serialized as `null`.
    pub const NONE: Self = Self(None);

    /// Checks that `json` is one JSON value and keeps its text. The text `null` is [`Info::NONE`].
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        let raw = RawValue::from_string(json.to_owned())?;
        Ok(Self::from(raw))
    }

    /// The text of a parsed value (for adapters that built or edited a `serde_json::Value`).
    pub fn from_value(value: &serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self::from)
    }

    /// The raw JSON, if any.
    pub fn as_raw(&self) -> Option<&RawValue> {
        self.0.as_deref()
    }

    /// The raw JSON text, if any.
    pub fn as_str(&self) -> Option<&str> {
        self.0.as_deref().map(RawValue::get)
    }

    /// Whether there is no raw message.
    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }
}

impl From<Box<RawValue>> for Info {
    fn from(raw: Box<RawValue>) -> Self {
        // One spelling for "no message", so that equality and `is_none` do not depend on it.
        if raw.get() == "null" {
            Self(None)
        } else {
            Self(Some(raw))
        }
    }
}

impl From<&RawValue> for Info {
    fn from(raw: &RawValue) -> Self {
        Self::from(raw.to_owned())
    }
}

impl PartialEq for Info {
    /// Equal when the JSON text is byte for byte the same (no reformatting is attempted).
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Info {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(text) => write!(f, "Info({text})"),
            None => f.write_str("Info(null)"),
        }
    }
}
