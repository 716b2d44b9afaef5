//! Exact decimal numbers for the Coinbase adapter: book price keys and ccxt's string arithmetic.
//!
//! Coinbase writes every price and size as decimal text (`"0.00001305"`). Two jobs need that
//! text read exactly rather than as `f64`:
//! - the order book is keyed by price, and a level must be found again by the price text of a
//!   later update (`"14.80"` and `"14.8"` are the same level, and no rounding may merge two);
//! - ccxt derives `change`, `percentage`, `average` and `cost` with its `Precise` string
//!   arithmetic (exact, division truncated to 18 decimals) and only then converts to a number;
//!   doing the same here gives bit-for-bit ccxt's values.
//!
//! A [`Decimal`] is `mantissa × 10^-scale` in `i128`, kept normalized (no trailing zero in the
//! mantissa), so derived equality and hashing are value equality. Every operation is checked:
//! what would overflow returns `None`, never panics.

use std::cmp::Ordering;
use std::fmt;

/// Most fraction digits kept; 10^38 still fits in an `i128`, which makes [`Ord`] overflow-free.
const MAX_SCALE: u32 = 38;
/// ccxt's `Precise.div` default precision (decimals kept by a division).
pub const DIV_PRECISION: u32 = 18;

/// An exact decimal number, normalized (`1.50` is stored as `15 × 10^-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    mantissa: i128,
    scale: u32,
}

fn pow10(exp: u32) -> Option<i128> {
    10i128.checked_pow(exp)
}

impl Decimal {
    /// Zero.
    pub const ZERO: Self = Self {
        mantissa: 0,
        scale: 0,
    };

    /// A whole number.
    pub const fn integer(value: i64) -> Self {
        Self {
            mantissa: value as i128,
            scale: 0,
        }
    }

    /// `mantissa × 10^-scale`, normalized; `None` when the scale is beyond what is kept.
    pub fn new(mantissa: i128, scale: u32) -> Option<Self> {
        let (mut mantissa, mut scale) = (mantissa, scale);
        while scale > 0 && mantissa % 10 == 0 {
            mantissa /= 10;
            scale -= 1;
        }
        (scale <= MAX_SCALE).then_some(Self { mantissa, scale })
    }

    /// Reads plain decimal text: an optional `-`, digits, an optional `.` and digits (at least
    /// one digit in all). No exponent, no `+`, no spaces: Coinbase never writes them, and
    /// accepting less keeps a malformed field from being read as some other number.
    pub fn parse(text: &str) -> Option<Self> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.len() + frac.len() == 0 || !all_digits(int) || !all_digits(frac) {
            return None;
        }
        // Trailing fraction zeros carry no value; dropping them first lets a long but exact
        // text ("1.000…0") through.
        let frac = frac.trim_end_matches('0');
        let scale = u32::try_from(frac.len()).ok()?;
        let mut mantissa: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            mantissa = mantissa
                .checked_mul(10)?
                .checked_add(i128::from(b - b'0'))?;
        }
        if negative {
            mantissa = -mantissa;
        }
        Self::new(mantissa, scale)
    }

    /// Whether the value is zero (ccxt's `omitZero` test).
    pub fn is_zero(self) -> bool {
        self.mantissa == 0
    }

    /// Whether the value is below zero.
    pub fn is_negative(self) -> bool {
        self.mantissa < 0
    }

    /// Both mantissas at the larger scale.
    fn aligned(self, other: Self) -> Option<(i128, i128, u32)> {
        let scale = self.scale.max(other.scale);
        let a = self.mantissa.checked_mul(pow10(scale - self.scale)?)?;
        let b = other.mantissa.checked_mul(pow10(scale - other.scale)?)?;
        Some((a, b, scale))
    }

    /// `self + other`, exact.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        let (a, b, scale) = self.aligned(other)?;
        Self::new(a.checked_add(b)?, scale)
    }

    /// `self - other`, exact.
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        let (a, b, scale) = self.aligned(other)?;
        Self::new(a.checked_sub(b)?, scale)
    }

    /// `self × other`, exact.
    pub fn checked_mul(self, other: Self) -> Option<Self> {
        Self::new(
            self.mantissa.checked_mul(other.mantissa)?,
            self.scale + other.scale,
        )
    }

    /// `self / other` with `precision` decimals, truncated toward zero: ccxt's `Precise.div`,
    /// step for step (it scales the numerator, flooring when it shrinks it, then truncates the
    /// quotient). `None` on division by zero, as ccxt's `Precise.stringDiv` gives `undefined`.
    pub fn checked_div(self, other: Self, precision: u32) -> Option<Self> {
        if other.is_zero() {
            return None;
        }
        let distance = i64::from(precision) - i64::from(self.scale) + i64::from(other.scale);
        let numerator = match distance.cmp(&0) {
            Ordering::Equal => self.mantissa,
            Ordering::Greater => self
                .mantissa
                .checked_mul(pow10(u32::try_from(distance).ok()?)?)?,
            // Python's `//`: floor division (div_euclid floors for a positive divisor).
            Ordering::Less => self
                .mantissa
                .div_euclid(pow10(u32::try_from(-distance).ok()?)?),
        };
        // Rust's `/` truncates toward zero, which is what ccxt's floor-then-correct computes.
        Self::new(numerator.checked_div(other.mantissa)?, precision)
    }

    /// The nearest `f64` (the text parsed by the standard library, correctly rounded, as
    /// ccxt's `parseNumber` does with `float(text)`).
    pub fn to_f64(self) -> f64 {
        // The text is always a valid number; NaN is unreachable but keeps this total.
        self.to_string().parse().unwrap_or(f64::NAN)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let digits = self.mantissa.unsigned_abs().to_string();
        let scale = self.scale as usize;
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        if digits.len() > scale {
            let (int, frac) = digits.split_at(digits.len() - scale);
            write!(f, "{sign}{int}.{frac}")
        } else {
            write!(f, "{sign}0.{:0>scale$}", digits)
        }
    }
}

impl Ord for Decimal {
    /// Numeric order. Never overflows: integer parts are compared first, and fractional parts
    /// (each below 10^scale, scale ≤ 38) are aligned to at most 38 digits.
    fn cmp(&self, other: &Self) -> Ordering {
        let int = |d: &Self| d.mantissa / 10i128.pow(d.scale);
        let frac =
            |d: &Self, scale: u32| (d.mantissa % 10i128.pow(d.scale)) * 10i128.pow(scale - d.scale);
        let scale = self.scale.max(other.scale);
        // Truncating division gives the integer and fraction parts the number's sign, so
        // comparing (int, frac) lexicographically is numeric order for any signs.
        int(self)
            .cmp(&int(other))
            .then_with(|| frac(self, scale).cmp(&frac(other, scale)))
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::parse(text).unwrap()
    }

    #[test]
    fn parsing_normalizes_and_refuses_what_is_not_plain_decimal() {
        assert_eq!(d("14.80"), d("14.8"));
        assert_eq!(d("0.0"), Decimal::ZERO);
        assert_eq!(d("-0"), Decimal::ZERO);
        assert_eq!(d("5."), d("5"));
        assert_eq!(d(".5"), d("0.5"));
        assert_eq!(d("0.00001305").to_string(), "0.00001305");
        assert_eq!(d("-12.3400").to_string(), "-12.34");
        assert_eq!(d("1000").to_string(), "1000");
        for bad in [
            "", ".", "-", "1e5", "+1", " 1", "1,5", "1.2.3", "0x10", "--1", "١",
        ] {
            assert_eq!(Decimal::parse(bad), None, "{bad:?}");
        }
        // Too many digits for i128: refused, not wrapped.
        assert_eq!(Decimal::parse(&"9".repeat(40)), None);
        assert!(Decimal::parse(&format!("1.{}", "0".repeat(100))).is_some());
    }

    #[test]
    fn order_is_numeric_across_scales_and_signs() {
        let mut values: Vec<Decimal> = ["0.5752", "-1", "14.8", "0.00001305", "-0.5", "0", "100"]
            .into_iter()
            .map(d)
            .collect();
        values.sort();
        let text: Vec<String> = values.iter().map(Decimal::to_string).collect();
        assert_eq!(
            text,
            ["-1", "-0.5", "0", "0.00001305", "0.5752", "14.8", "100"]
        );
        assert!(d("14.8024") < d("14.8069"));
        assert!(d("1.5") > d("1.49999999999999999999999999"));
        let tiny = Decimal::new(1, 38).unwrap();
        assert!(tiny > Decimal::ZERO && tiny < d("0.0000001"));
    }

    #[test]
    fn arithmetic_matches_ccxt_precise() {
        // Values checked against ccxt's Python Precise (ccxt 4.5.90).
        assert_eq!(d("14.7775").checked_sub(d("14.6647")), Some(d("0.1128")));
        assert_eq!(
            d("0.1128")
                .checked_div(d("14.6647"), DIV_PRECISION)
                .and_then(|x| x.checked_mul(d("100")))
                .map(|x| x.to_string()),
            Some("0.7691940510204777".to_owned())
        );
        assert_eq!(
            d("-1").checked_div(d("3"), 18).unwrap().to_string(),
            "-0.333333333333333333"
        );
        assert_eq!(d("0.00001305").checked_mul(d("985")), Some(d("0.01285425")));
        assert_eq!(d("1").checked_div(Decimal::ZERO, 18), None);
        assert_eq!(d("1.5").to_f64(), 1.5);
        // Overflow is None, not a panic.
        let big = d(&"9".repeat(30));
        assert_eq!(big.checked_mul(big), None);
    }
}
