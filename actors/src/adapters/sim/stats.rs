//! What a market's trades add up to: the 24-hour ticker statistics and OHLCV candles.
//!
//! Both are built from the trade tape alone, so the `sim` exchange's tickers and candles agree
//! with its trades exactly, as a real exchange's do. Pure: time comes in with each trade and
//! each query, in UTC milliseconds.

use std::collections::VecDeque;

/// The 24-hour window of ticker statistics.
pub const DAY_MS: i64 = 24 * 3600 * 1000;

/// One trade as the statistics see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tick {
    pub timestamp: i64,
    pub price: f64,
    pub amount: f64,
}

/// Rolling 24-hour statistics of one market, kept as one bucket per minute: bounded (1,440
/// buckets) however busy the market, exact to the minute at the window's far end.
#[derive(Debug, Default)]
pub struct DayStats {
    minutes: VecDeque<Minute>,
}

/// The trades of one minute.
#[derive(Debug, Clone, Copy)]
struct Minute {
    start: i64,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    base_volume: f64,
    quote_volume: f64,
}

const MINUTE_MS: i64 = 60_000;

/// The ccxt Ticker fields that come from trades.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DaySummary {
    pub open: f64,
    pub high: f64,
    pub low: f64,
    /// The last price (ccxt `close` and `last`).
    pub close: f64,
    /// The close before the window's first trade is unknown here: the window's open.
    pub base_volume: f64,
    pub quote_volume: f64,
    pub vwap: f64,
    /// close − open.
    pub change: f64,
    /// change / open × 100.
    pub percentage: f64,
    /// (open + close) / 2, as ccxt computes `average`.
    pub average: f64,
}

impl DayStats {
    pub fn new() -> Self {
        DayStats::default()
    }

    pub fn record(&mut self, tick: Tick) {
        let start = tick.timestamp - tick.timestamp.rem_euclid(MINUTE_MS);
        match self.minutes.back_mut() {
            Some(minute) if minute.start == start => {
                minute.high = minute.high.max(tick.price);
                minute.low = minute.low.min(tick.price);
                minute.close = tick.price;
                minute.base_volume += tick.amount;
                minute.quote_volume += tick.amount * tick.price;
            }
            // Out of order, before the current minute: too late to count.
            Some(minute) if minute.start > start => {}
            _ => self.minutes.push_back(Minute {
                start,
                open: tick.price,
                high: tick.price,
                low: tick.price,
                close: tick.price,
                base_volume: tick.amount,
                quote_volume: tick.amount * tick.price,
            }),
        }
        while self.minutes.len() > (DAY_MS / MINUTE_MS) as usize {
            self.minutes.pop_front();
        }
    }

    /// The statistics of the minutes of the 24 hours up to `now`; `None` without a trade in them.
    pub fn summary(&mut self, now: i64) -> Option<DaySummary> {
        while self
            .minutes
            .front()
            .is_some_and(|m| m.start + MINUTE_MS <= now - DAY_MS)
        {
            self.minutes.pop_front();
        }
        let first = self.minutes.front()?;
        let last = self.minutes.back()?;
        let (open, close) = (first.open, last.close);
        let mut high = f64::MIN;
        let mut low = f64::MAX;
        let (mut base_volume, mut quote_volume) = (0.0, 0.0);
        for m in &self.minutes {
            high = high.max(m.high);
            low = low.min(m.low);
            base_volume += m.base_volume;
            quote_volume += m.quote_volume;
        }
        let change = close - open;
        Some(DaySummary {
            open,
            high,
            low,
            close,
            base_volume,
            quote_volume,
            vwap: if base_volume > 0.0 {
                quote_volume / base_volume
            } else {
                close
            },
            change,
            percentage: if open != 0.0 {
                change / open * 100.0
            } else {
                0.0
            },
            average: (open + close) / 2.0,
        })
    }
}

/// A candle: `[timestamp, open, high, low, close, volume]` in ccxt's order, `timestamp` the
/// start of its period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candle {
    pub timestamp: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

impl Candle {
    pub fn as_array(&self) -> [f64; 6] {
        [
            self.timestamp as f64,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
        ]
    }
}

/// The candle periods the sim exchange builds, with ccxt's timeframe names.
pub const TIMEFRAMES: [(&str, i64); 3] = [("1m", 60_000), ("5m", 300_000), ("1h", 3_600_000)];

/// The period of a ccxt timeframe name this exchange builds.
pub fn timeframe_ms(name: &str) -> Option<i64> {
    TIMEFRAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, ms)| *ms)
}

/// The candles of one market and period, oldest first, at most `max_candles`. A period without
/// trades has no candle (as exchanges answer fetchOHLCV).
#[derive(Debug)]
pub struct Candles {
    period: i64,
    candles: VecDeque<Candle>,
    max_candles: usize,
}

impl Candles {
    pub fn new(period: i64, max_candles: usize) -> Self {
        Candles {
            period: period.max(1),
            candles: VecDeque::new(),
            max_candles: max_candles.max(1),
        }
    }

    /// Adds a trade; returns the candle it changed (the current one, or a new one). A trade older
    /// than the current candle's period (out of order) is folded into the current candle's
    /// volume only if it falls in it, and otherwise ignored.
    pub fn record(&mut self, tick: Tick) -> Option<Candle> {
        let start = tick.timestamp - tick.timestamp.rem_euclid(self.period);
        match self.candles.back_mut() {
            Some(current) if current.timestamp == start => {
                current.high = current.high.max(tick.price);
                current.low = current.low.min(tick.price);
                current.close = tick.price;
                current.volume += tick.amount;
                Some(*current)
            }
            Some(current) if current.timestamp > start => None,
            _ => {
                if self.candles.len() == self.max_candles {
                    self.candles.pop_front();
                }
                let candle = Candle {
                    timestamp: start,
                    open: tick.price,
                    high: tick.price,
                    low: tick.price,
                    close: tick.price,
                    volume: tick.amount,
                };
                self.candles.push_back(candle);
                Some(candle)
            }
        }
    }

    /// Candles starting at or after `since` (all without), oldest first, at most `limit`.
    pub fn query(&self, since: Option<i64>, limit: usize) -> Vec<Candle> {
        self.candles
            .iter()
            .filter(|c| since.map_or(true, |s| c.timestamp >= s))
            .take(limit)
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(timestamp: i64, price: f64, amount: f64) -> Tick {
        Tick {
            timestamp,
            price,
            amount,
        }
    }

    #[test]
    fn day_stats_follow_the_trades_of_the_last_24_hours() {
        let mut stats = DayStats::new();
        assert_eq!(stats.summary(0), None);
        let minute = 60_000;
        stats.record(tick(1_000, 100.0, 1.0));
        stats.record(tick(2_000, 110.0, 3.0));
        stats.record(tick(minute + 5_000, 90.0, 1.0));
        let s = stats.summary(minute + 5_000).unwrap();
        assert_eq!((s.open, s.high, s.low, s.close), (100.0, 110.0, 90.0, 90.0));
        assert_eq!((s.base_volume, s.quote_volume), (5.0, 520.0));
        assert_eq!(s.vwap, 104.0);
        assert_eq!((s.change, s.percentage, s.average), (-10.0, -10.0, 95.0));
        // A day after its minute ended, the first minute has left the window.
        let s = stats.summary(minute + DAY_MS).unwrap();
        assert_eq!((s.open, s.base_volume), (90.0, 1.0));
        assert_eq!(stats.summary(2 * minute + DAY_MS), None);
    }

    #[test]
    fn day_stats_hold_one_bucket_per_minute_at_most_a_day_of_them() {
        let mut stats = DayStats::new();
        // Two trades a second for two days.
        for i in 0..(2 * DAY_MS / 500) {
            stats.record(tick(i * 500, 1.0, 1.0));
        }
        assert_eq!(stats.minutes.len(), 1_440);
        let s = stats.summary(2 * DAY_MS).unwrap();
        assert_eq!(s.base_volume, 1_440.0 * 120.0);
    }

    #[test]
    fn candles_open_high_low_close_and_volume_per_period() {
        let mut candles = Candles::new(60_000, 10);
        candles.record(tick(60_500, 10.0, 1.0));
        candles.record(tick(61_000, 12.0, 2.0));
        candles.record(tick(119_999, 9.0, 0.5));
        let changed = candles.record(tick(120_000, 11.0, 1.0)).unwrap();
        assert_eq!(changed.timestamp, 120_000);
        let all = candles.query(None, 10);
        assert_eq!(
            all[0].as_array(),
            [60_000.0, 10.0, 12.0, 9.0, 9.0, 3.5],
            "{all:?}"
        );
        assert_eq!(all[1].as_array(), [120_000.0, 11.0, 11.0, 11.0, 11.0, 1.0]);
        // Out of order, before the current candle: ignored.
        assert_eq!(candles.record(tick(70_000, 50.0, 1.0)), None);
        assert_eq!(candles.query(Some(120_000), 10).len(), 1);
        assert_eq!(candles.query(None, 1).len(), 1);
    }

    #[test]
    fn candles_are_bounded_and_timeframes_named_as_ccxt() {
        let mut candles = Candles::new(1_000, 3);
        for i in 0..10 {
            candles.record(tick(i * 1_000, 1.0, 1.0));
        }
        let kept: Vec<i64> = candles
            .query(None, 10)
            .iter()
            .map(|c| c.timestamp)
            .collect();
        assert_eq!(kept, [7_000, 8_000, 9_000]);
        assert_eq!(timeframe_ms("5m"), Some(300_000));
        assert_eq!(timeframe_ms("2m"), None);
    }
}
