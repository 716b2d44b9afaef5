//! Time in ccxt form: integer UTC milliseconds, and the ISO 8601 text ccxt derives from them.
//!
//! ccxt writes every instant twice, `timestamp` (ms) and `datetime` (`2017-07-05T18:47:14.692Z`,
//! JavaScript's `Date.prototype.toISOString`). Here only the milliseconds are stored;
//! [`Timestamp`] and [`Expiry`] write both keys when serialized, so the pair can never disagree.
//! The calendar arithmetic is Howard Hinnant's `civil_from_days` (proleptic Gregorian, exact for
//! every `i64`), so no date crate is needed in this pure crate.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const MS_PER_DAY: i64 = 86_400_000;

/// The ISO 8601 text of `ms` milliseconds since 1970-01-01T00:00:00Z, as ccxt writes `datetime`:
/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
///
/// Years outside 0000–9999 take JavaScript's expanded form (`+275760-09-13T00:00:00.000Z`), so
/// the function is total: any `i64` gives a string, nothing panics.
pub fn iso8601(ms: i64) -> String {
    Iso8601(ms).to_string()
}

/// [`iso8601`] as a `Display` value, to write the text without allocating
/// (`serializer.collect_str(&Iso8601(ms))`, `write!(buf, "{}", Iso8601(ms))`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Iso8601(pub i64);

impl fmt::Display for Iso8601 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Euclidean division keeps the time of day positive before 1970.
        let days = self.0.div_euclid(MS_PER_DAY);
        let in_day = self.0.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let (hour, minute) = (in_day / 3_600_000, in_day / 60_000 % 60);
        let (second, milli) = (in_day / 1000 % 60, in_day % 1000);
        if (0..=9999).contains(&year) {
            write!(f, "{year:04}")?;
        } else {
            // JavaScript's expanded years: a sign and at least six digits.
            let sign = if year < 0 { '-' } else { '+' };
            write!(f, "{sign}{:06}", year.unsigned_abs())?;
        }
        write!(
            f,
            "-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z"
        )
    }
}

impl Serialize for Iso8601 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// (year, month 1–12, day 1–31) of the day `days` after 1970-01-01.
///
/// Hinnant's algorithm: shift to eras of 400 years starting on March 1st, so the leap day is the
/// last day of its year and each era has the same 146 097 days. In `i64` nothing overflows:
/// `|days|` is at most about 1.1e11 for millisecond inputs.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of [`civil_from_days`]).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400); // [0, 399]
    let month = i64::from(month);
    let mp = if month > 2 { month - 3 } else { month + 9 }; // [0, 11]
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// Whether `year` has a February 29th.
pub(crate) fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Defines an instant written as two ccxt keys: integer milliseconds and their ISO 8601 text.
macro_rules! instant {
    ($(#[$meta:meta])* $name:ident, $ms_key:literal, $iso_key:literal) => {
        $(#[$meta])*
        ///
        /// Embed it with `#[serde(flatten)]`: it writes both keys, `null` and `null` when unknown.
        /// Reading takes the milliseconds and ignores the text, which ccxt derives from them.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub Option<i64>);

        impl $name {
            /// Unknown: both keys are `null`.
            pub const NONE: Self = Self(None);
            /// The JSON key of the milliseconds.
            pub const MS_KEY: &'static str = $ms_key;
            /// The JSON key of the ISO 8601 text.
            pub const ISO_KEY: &'static str = $iso_key;

            /// At `ms` milliseconds since the Unix epoch (UTC).
            pub const fn ms(ms: i64) -> Self {
                Self(Some(ms))
            }

            /// The milliseconds, if known.
            pub const fn get(self) -> Option<i64> {
                self.0
            }

            /// The ISO 8601 text that is serialized beside the milliseconds.
            pub fn datetime(self) -> Option<String> {
                self.0.map(iso8601)
            }
        }

        impl From<i64> for $name {
            fn from(ms: i64) -> Self {
                Self(Some(ms))
            }
        }

        impl From<Option<i64>> for $name {
            fn from(ms: Option<i64>) -> Self {
                Self(ms)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut state = serializer.serialize_struct(stringify!($name), 2)?;
                state.serialize_field($ms_key, &self.0)?;
                state.serialize_field($iso_key, &self.0.map(Iso8601))?;
                state.end()
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer
                    .deserialize_map(InstantVisitor { ms_key: $ms_key })
                    .map(Self)
            }
        }
    };
}

instant!(
    /// ccxt's `timestamp` and `datetime`: when something happened, in UTC.
    Timestamp,
    "timestamp",
    "datetime"
);

instant!(
    /// ccxt's `expiry` and `expiryDatetime` of a [`Market`](super::Market): when a future or
    /// option settles.
    Expiry,
    "expiry",
    "expiryDatetime"
);

/// Reads the milliseconds out of a map that may hold other keys (under `flatten`, it receives
/// every key its parent struct does not know).
struct InstantVisitor {
    ms_key: &'static str,
}

impl<'de> Visitor<'de> for InstantVisitor {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a map with integer milliseconds or null under {:?}",
            self.ms_key
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut ms = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == self.ms_key {
                if ms.is_some() {
                    return Err(de::Error::duplicate_field(self.ms_key));
                }
                ms = Some(map.next_value::<Option<i64>>()?);
            } else {
                map.next_value::<de::IgnoredAny>()?;
            }
        }
        Ok(ms.flatten())
    }
}
