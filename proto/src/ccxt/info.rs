//! `info`: the exchange's own message, kept verbatim beside the unified fields.
//!
//! ccxt keeps the raw response in every structure so that users can reach fields the unified
//! model lacks. It is held as raw JSON text rather than a parsed `serde_json::Value`: the adapter
//! already has the text, and serializing embeds it as is, with no tree to build or walk.
//!
//! Embedded as is, the text must be what a publication may hold ([`JsonText`]): strict JSON (every
//! number an `f64`, no lone surrogate escape), on one line, at most [`MAX_DEPTH`] deep. An
//! exchange's text is checked so when it is kept: serde_json's `RawValue` takes `1e999`, which
//! `serde_json::to_value` then fails on (the adapters answer calls through it) and strict
//! clients refuse.
//!
//! [`MAX_DEPTH`]: crate::json::MAX_DEPTH

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::json::{DataError, JsonText};

/// The exchange's raw message as embedded JSON; `null` when there is none, or when the text is
/// not what a publication may hold (see the module doc).
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Info(Option<Box<RawValue>>);

impl Info {
    /// No raw message: serialized as `null`.
    pub const NONE: Self = Self(None);

    /// Checks that `json` is one JSON value a publication may hold and keeps its text (raw
    /// newlines made spaces). The text `null` is [`Info::NONE`].
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        let text = publishable(json).map_err(serde::de::Error::custom)?;
        Ok(Self::checked(RawValue::from_string(text)?))
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

    /// Checked text, kept.
    fn checked(raw: Box<RawValue>) -> Self {
        // One spelling for "no message", so that equality and `is_none` do not depend on it.
        if raw.get() == "null" {
            Self(None)
        } else {
            Self(Some(raw))
        }
    }
}

/// `json` as a [`JsonText`] holds it, or why a publication may not hold it.
fn publishable(json: &str) -> Result<String, DataError> {
    let text = JsonText::parse(Bytes::copy_from_slice(json.as_bytes()))?;
    // A JsonText is UTF-8.
    Ok(String::from_utf8_lossy(text.bytes()).into_owned())
}

impl From<Box<RawValue>> for Info {
    /// Text a publication may not hold (see the module doc) is left out: [`Info::NONE`].
    fn from(raw: Box<RawValue>) -> Self {
        match publishable(raw.get()) {
            Ok(text) if text == raw.get() => Self::checked(raw),
            Ok(text) => RawValue::from_string(text).map_or(Self::NONE, Self::checked),
            Err(_) => Self::NONE,
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
