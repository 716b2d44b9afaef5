//! ccxt's OHLCV: one candle, written as the array `[timestamp, open, high, low, close, volume]`.
//!
//! ccxt uses a bare array (no keys) because candles come in long lists; a list is oldest first.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One candle. Serialized as `[timestamp, open, high, low, close, volume]`, `timestamp` being
/// the integer UTC milliseconds at which the candle opens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ohlcv {
    /// Opening time of the candle, UTC milliseconds.
    pub timestamp: i64,
    /// First trade price.
    pub open: f64,
    /// Highest trade price.
    pub high: f64,
    /// Lowest trade price.
    pub low: f64,
    /// Last trade price.
    pub close: f64,
    /// Traded amount in the base currency.
    pub volume: f64,
}

/// The wire form; a tuple is what serde writes as a JSON array of mixed types.
type Wire = (i64, f64, f64, f64, f64, f64);

impl Ohlcv {
    /// A candle opening at `timestamp` (UTC ms).
    pub const fn new(
        timestamp: i64,
        open: f64,
        high: f64,
        low: f64,
        close: f64,
        volume: f64,
    ) -> Self {
        Self {
            timestamp,
            open,
            high,
            low,
            close,
            volume,
        }
    }
}

impl Serialize for Ohlcv {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let wire: Wire = (
            self.timestamp,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
        );
        wire.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Ohlcv {
    /// Exactly six elements; anything else is an error (serde checks the tuple's length).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (timestamp, open, high, low, close, volume) = Wire::deserialize(deserializer)?;
        Ok(Self::new(timestamp, open, high, low, close, volume))
    }
}
