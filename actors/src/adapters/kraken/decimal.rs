//! Exact decimal arithmetic on the exchange's number text, the way ccxt's `Precise` does it.
//!
//! ccxt derives a ticker's `quoteVolume`, `change`, `percentage` and `average`, a trade's `cost`
//! and a market's fee rates with `Precise` (integer mantissa and decimal scale) on the strings the
//! exchange sent, and only turns the result into a float at the end. Doing the same arithmetic
//! on `f64` values would round twice and differ from ccxt in the last digit now and then, so the
//! few derived values go through here. An `i128` mantissa holds 38 digits, far more than Kraken's
//! numbers need; anything larger is refused (`None`) rather than wrapped.

/// A decimal number: `int × 10^-scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decimal {
    int: i128,
    scale: u32,
}

/// `10^exp`, if it fits.
fn pow10(exp: u32) -> Option<i128> {
    10i128.checked_pow(exp)
}

impl Decimal {
    /// Plain decimal text: an optional `-`, digits, at most one `.` (ccxt's `Precise` also reads
    /// exponents, which Kraken never writes). `None` for anything else or more than 38 digits.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if whole.len() + fraction.len() == 0
            || whole.len() + fraction.len() > 38
            || !all_digits(whole)
            || !all_digits(fraction)
        {
            return None;
        }
        let mut int: i128 = 0;
        for b in whole.bytes().chain(fraction.bytes()) {
            int = int.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        }
        let scale = u32::try_from(fraction.len()).ok()?;
        Some(Self {
            int: if negative { -int } else { int },
            scale,
        })
    }

    /// Whether the value is zero (ccxt's `omitZero` drops such prices).
    pub(crate) fn is_zero(self) -> bool {
        self.int == 0
    }

    /// Both mantissas at the larger scale.
    fn aligned(self, other: Self) -> Option<(i128, i128, u32)> {
        let scale = self.scale.max(other.scale);
        let a = self.int.checked_mul(pow10(scale - self.scale)?)?;
        let b = other.int.checked_mul(pow10(scale - other.scale)?)?;
        Some((a, b, scale))
    }

    /// `self + other`, exact.
    pub(crate) fn add(self, other: Self) -> Option<Self> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Self {
            int: a.checked_add(b)?,
            scale,
        })
    }

    /// `self - other`, exact.
    pub(crate) fn sub(self, other: Self) -> Option<Self> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Self {
            int: a.checked_sub(b)?,
            scale,
        })
    }

    /// `self × other`, exact.
    pub(crate) fn mul(self, other: Self) -> Option<Self> {
        Some(Self {
            int: self.int.checked_mul(other.int)?,
            scale: self.scale.checked_add(other.scale)?,
        })
    }

    /// `self ÷ other` with `precision` decimals, truncated toward zero: `Precise.div`, whose
    /// default precision is 18. `None` when dividing by zero.
    pub(crate) fn div(self, other: Self, precision: u32) -> Option<Self> {
        if other.int == 0 {
            return None;
        }
        let distance = i64::from(precision) - i64::from(self.scale) + i64::from(other.scale);
        let numerator = if distance >= 0 {
            self.int
                .checked_mul(pow10(u32::try_from(distance).ok()?)?)?
        } else {
            // Python's `//` floors, and `Precise` uses it here.
            self.int.div_euclid(pow10(u32::try_from(-distance).ok()?)?)
        };
        // Rust's `/` truncates toward zero, which is what `Precise.div` ends up with after its
        // correction of Python's flooring.
        Some(Self {
            int: numerator / other.int,
            scale: precision,
        })
    }

    /// The nearest `f64`, as ccxt's `parseNumber` reads `Precise`'s text.
    pub(crate) fn to_f64(self) -> f64 {
        let digits = self.int.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let text = if scale == 0 {
            digits
        } else if digits.len() > scale {
            let (whole, fraction) = digits.split_at(digits.len() - scale);
            format!("{whole}.{fraction}")
        } else {
            format!("0.{}{digits}", "0".repeat(scale - digits.len()))
        };
        // The text is always a well-formed decimal, so the parse cannot fail; NaN keeps this
        // total anyway (serialized as `null`).
        let value: f64 = text.parse().unwrap_or(f64::NAN);
        if self.int < 0 {
            -value
        } else {
            value
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Decimal;

    fn d(text: &str) -> Decimal {
        Decimal::parse(text).unwrap()
    }

    #[test]
    fn parses_plain_decimals_only() {
        assert_eq!(d("0.10000000").to_f64(), 0.1);
        assert_eq!(d("-238.3").to_f64(), -238.3);
        assert_eq!(d("5").to_f64(), 5.0);
        for bad in ["", "-", ".", "1e5", "1.2.3", "+1", "nan", "inf", " 1"] {
            assert!(Decimal::parse(bad).is_none(), "{bad}");
        }
        assert!(Decimal::parse(&"9".repeat(39)).is_none());
    }

    #[test]
    fn arithmetic_is_exact_like_precise() {
        // 0.1 + 0.2 is 0.30000000000000004 in f64; exactly 0.3 here.
        assert_eq!(d("0.1").add(d("0.2")).unwrap().to_f64(), 0.3);
        assert_eq!(
            d("3591.17907851").mul(d("5653.78939")).unwrap().to_f64(),
            20303770.171669815
        );
        assert_eq!(d("5525.1").sub(d("5763.40000")).unwrap().to_f64(), -238.3);
        // Truncation toward zero at the given precision, for both signs.
        assert_eq!(d("11288.5").div(d("2"), 1).unwrap().to_f64(), 5644.2);
        assert_eq!(d("-7").div(d("2"), 0).unwrap().to_f64(), -3.0);
        assert_eq!(d("0.26").div(d("100"), 18).unwrap().to_f64(), 0.0026);
        assert!(d("1").div(d("0.000"), 18).is_none());
    }
}
