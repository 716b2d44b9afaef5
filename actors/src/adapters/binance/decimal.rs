//! Exact decimal numbers as Binance writes them (`"0.35130000"`).
//!
//! Two needs, two types:
//! - [`DecimalText`] keeps the exchange's text and orders by value. It keys the order book's
//!   price levels: comparing the digits is exact for any length, where `f64` keys would merge
//!   or misorder prices that differ beyond 15–17 significant digits, and `NaN` could not be
//!   ordered at all.
//! - [`Dec`] is a small fixed-point number (`i128` mantissa and a decimal scale) for the few
//!   figures ccxt derives with its string arithmetic (`Precise`): a trade's cost, a ticker's
//!   average, a balance's total, an order's remaining amount and average price. Doing the same
//!   exact arithmetic before converting to `f64` gives the very `f64` ccxt gives, not one an
//!   ulp away.
//!
//! Both refuse anything that is not plain decimal notation, so hostile text never reaches the
//! book, and both are bounded in length.

use std::cmp::Ordering;
use std::fmt;

/// Longest number accepted. Binance writes at most about 30 characters.
pub const MAX_LEN: usize = 64;

/// A non-negative decimal number kept as written, compared by value: `"0.3513"` and
/// `"0.35130000"` are equal, `"9.1"` < `"10"`.
#[derive(Clone)]
pub struct DecimalText {
    text: Box<str>,
    /// Start of the integer digits once leading zeros are skipped.
    int_start: u8,
    /// Position of the `.`, or the length when there is none.
    dot: u8,
    /// End of the fraction digits once trailing zeros are cut.
    frac_end: u8,
}

impl DecimalText {
    /// Parses `digits[.digits]`; `None` for anything else (signs, exponents, empty parts,
    /// more than [`MAX_LEN`] bytes).
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_LEN {
            return None;
        }
        let dot = bytes.iter().position(|b| *b == b'.').unwrap_or(bytes.len());
        let (int, frac) = (&bytes[..dot], bytes.get(dot + 1..).unwrap_or_default());
        let digits = |part: &[u8]| !part.is_empty() && part.iter().all(u8::is_ascii_digit);
        if !digits(int) || (dot < bytes.len() && !digits(frac)) {
            return None;
        }
        let int_start = int.iter().position(|b| *b != b'0').unwrap_or(int.len());
        let frac_len = frac.iter().rposition(|b| *b != b'0').map_or(0, |i| i + 1);
        let frac_end = if frac_len == 0 {
            dot
        } else {
            dot + 1 + frac_len
        };
        // Every index is below MAX_LEN (64), so the casts cannot truncate.
        Some(Self {
            text: text.into(),
            int_start: int_start as u8,
            dot: dot as u8,
            frac_end: frac_end as u8,
        })
    }

    /// The text as the exchange wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the value is zero (`"0"`, `"0.00000000"`): Binance's "remove this level".
    pub fn is_zero(&self) -> bool {
        self.int_digits().is_empty() && self.frac_digits().is_empty()
    }

    /// The nearest `f64`, as `float(text)` gives in Python (so as ccxt's `parse_number`).
    pub fn to_f64(&self) -> f64 {
        // Validated digits always parse; NaN only keeps this free of a panic path.
        self.text.parse().unwrap_or(f64::NAN)
    }

    /// Number of decimals once trailing zeros are cut (`"0.00010000"` → 4): ccxt's
    /// `precisionFromString` of a tick size.
    pub fn decimals(&self) -> u32 {
        self.frac_digits().len() as u32
    }

    fn int_digits(&self) -> &[u8] {
        &self.text.as_bytes()[usize::from(self.int_start)..usize::from(self.dot)]
    }

    fn frac_digits(&self) -> &[u8] {
        let (dot, end) = (usize::from(self.dot), usize::from(self.frac_end));
        if end > dot {
            &self.text.as_bytes()[dot + 1..end]
        } else {
            &[]
        }
    }
}

impl Ord for DecimalText {
    fn cmp(&self, other: &Self) -> Ordering {
        // Without leading zeros, more integer digits means larger; then digit by digit.
        // Without trailing zeros, fractions compare lexicographically ("35" < "351").
        self.int_digits()
            .len()
            .cmp(&other.int_digits().len())
            .then_with(|| self.int_digits().cmp(other.int_digits()))
            .then_with(|| self.frac_digits().cmp(other.frac_digits()))
    }
}

impl PartialOrd for DecimalText {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for DecimalText {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for DecimalText {}

impl fmt::Debug for DecimalText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl fmt::Display for DecimalText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A signed decimal `mantissa × 10^-scale`, for ccxt's `Precise` arithmetic. Operations return
/// `None` on overflow; callers then fall back to `f64`, which real Binance figures never need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dec {
    mantissa: i128,
    scale: u32,
}

/// Powers of ten up to 10^38, the largest an `i128` holds.
fn pow10(exp: u32) -> Option<i128> {
    10i128.checked_pow(exp)
}

impl Dec {
    /// Zero.
    pub const ZERO: Self = Self {
        mantissa: 0,
        scale: 0,
    };

    /// Parses `[-+]digits[.digits]` (at most 38 significant digits).
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() > MAX_LEN {
            return None;
        }
        let (negative, unsigned) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let number = DecimalText::parse(unsigned)?;
        let mut mantissa: i128 = 0;
        for digit in number.int_digits().iter().chain(number.frac_digits()) {
            mantissa = mantissa
                .checked_mul(10)?
                .checked_add(i128::from(digit - b'0'))?;
        }
        Some(Self {
            mantissa: if negative { -mantissa } else { mantissa },
            scale: number.decimals(),
        })
    }

    /// Whether the value is zero.
    pub fn is_zero(self) -> bool {
        self.mantissa == 0
    }

    /// Whether the value is above zero.
    pub fn is_positive(self) -> bool {
        self.mantissa > 0
    }

    /// Both at the larger scale.
    fn aligned(self, other: Self) -> Option<(i128, i128, u32)> {
        let scale = self.scale.max(other.scale);
        let a = self.mantissa.checked_mul(pow10(scale - self.scale)?)?;
        let b = other.mantissa.checked_mul(pow10(scale - other.scale)?)?;
        Some((a, b, scale))
    }

    /// `self + other`.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Self {
            mantissa: a.checked_add(b)?,
            scale,
        })
    }

    /// `self - other`.
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Self {
            mantissa: a.checked_sub(b)?,
            scale,
        })
    }

    /// `self × other`.
    pub fn checked_mul(self, other: Self) -> Option<Self> {
        let product = Self {
            mantissa: self.mantissa.checked_mul(other.mantissa)?,
            scale: self.scale.checked_add(other.scale)?,
        };
        Some(product.reduced())
    }

    /// `self / other` with `precision` decimals, truncated toward zero: ccxt's
    /// `Precise.stringDiv(a, b, precision)`. `None` when dividing by zero.
    pub fn checked_div(self, other: Self, precision: u32) -> Option<Self> {
        if other.mantissa == 0 {
            return None;
        }
        // result = (a / 10^sa) / (b / 10^sb), scaled by 10^precision.
        let distance = i64::from(precision) - i64::from(self.scale) + i64::from(other.scale);
        let numerator = if distance >= 0 {
            self.mantissa
                .checked_mul(pow10(u32::try_from(distance).ok()?)?)?
        } else {
            self.mantissa / pow10(u32::try_from(-distance).ok()?)?
        };
        Some(
            Self {
                mantissa: numerator.checked_div(other.mantissa)?,
                scale: precision,
            }
            .reduced(),
        )
    }

    /// Without trailing zeros, so later products stay small.
    fn reduced(mut self) -> Self {
        while self.scale > 0 && self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.scale -= 1;
        }
        self
    }

    /// The nearest `f64` (the decimal text parsed, as ccxt's `parse_number` does).
    pub fn to_f64(self) -> f64 {
        self.to_string().parse().unwrap_or(f64::NAN)
    }
}

impl fmt::Display for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let scale = self.scale as usize;
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        if digits.len() > scale {
            let (int, frac) = digits.split_at(digits.len() - scale);
            write!(f, "{sign}{int}.{frac}")
        } else {
            write!(f, "{sign}0.{digits:0>scale$}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> DecimalText {
        DecimalText::parse(s).unwrap()
    }

    #[test]
    fn orders_by_value_not_by_text() {
        assert!(text("9.1") < text("10"));
        assert!(text("0.35") < text("0.351"));
        assert!(text("0.3") < text("0.35"));
        assert_eq!(text("0.35130000"), text("0.3513"));
        assert_eq!(text("007"), text("7.000"));
        assert!(text("0.00000001") > text("0"));
        // Beyond f64's 17 significant digits the text still orders.
        assert!(text("1.000000000000000000001") > text("1.0000000000000000000001"));
        assert_eq!(
            "1.000000000000000000001".parse::<f64>(),
            "1.0000000000000000000001".parse::<f64>()
        );
    }

    #[test]
    fn zero_and_decimals() {
        assert!(text("0.00000000").is_zero());
        assert!(text("0").is_zero());
        assert!(!text("0.00000001").is_zero());
        assert_eq!(text("0.00010000").decimals(), 4);
        assert_eq!(text("1.00000000").decimals(), 0);
        assert_eq!(text("0.35130000").to_f64(), 0.3513);
    }

    #[test]
    fn refuses_what_is_not_plain_decimal() {
        for bad in [
            "", ".", "1.", ".5", "-1", "+1", "1e5", "0x10", "1.2.3", " 1", "NaN", "inf", "１",
        ] {
            assert!(DecimalText::parse(bad).is_none(), "{bad:?}");
        }
        assert!(DecimalText::parse(&"1".repeat(MAX_LEN + 1)).is_none());
    }

    #[test]
    fn arithmetic_as_ccxt_precise() {
        let d = |s: &str| Dec::parse(s).unwrap();
        // 0.1 × 3 in f64 is 0.30000000000000004; ccxt's Precise gives 0.3.
        assert_ne!(0.1 * 3.0, 0.3);
        assert_eq!(
            d("0.10000000")
                .checked_mul(d("3.00000000"))
                .unwrap()
                .to_f64(),
            0.3
        );
        assert_eq!(
            d("0.35280000")
                .checked_mul(d("58.00000000"))
                .unwrap()
                .to_string(),
            "20.4624"
        );
        assert_eq!(
            d("0.01916500")
                .checked_add(d("0.01912500"))
                .unwrap()
                .to_string(),
            "0.038290"
        );
        assert_eq!(d("1.0").checked_sub(d("0.3")).unwrap().to_f64(), 0.7);
        assert_eq!(d("-0.00004000").to_f64(), -0.00004);
        // Truncated, not rounded.
        assert_eq!(d("2").checked_div(d("3"), 4).unwrap().to_string(), "0.6666");
        assert_eq!(
            d("0.00350").checked_div(d("2"), 6).unwrap().to_f64(),
            0.00175
        );
        assert_eq!(d("1").checked_div(d("0"), 4), None);
        assert_eq!(Dec::parse(&"9".repeat(39)), None);
        assert_eq!(d("0.5").to_string(), "0.5");
        assert_eq!(d("0.005").to_string(), "0.005");
    }

    proptest::proptest! {
        /// The text order is the numeric order (checked by exact subtraction), and any text
        /// at all parses or is refused without a panic.
        #[test]
        fn text_order_is_value_order(
            a in "[0-9]{1,12}(\\.[0-9]{1,12})?",
            b in "[0-9]{1,12}(\\.[0-9]{1,12})?",
            junk in "\\PC{0,80}",
        ) {
            let (x, y) = (text(&a), text(&b));
            let difference = Dec::parse(&a).unwrap().checked_sub(Dec::parse(&b).unwrap()).unwrap();
            let by_value = if difference.is_zero() {
                Ordering::Equal
            } else if difference.is_positive() {
                Ordering::Greater
            } else {
                Ordering::Less
            };
            proptest::prop_assert_eq!(x.cmp(&y), by_value);
            let _ = (DecimalText::parse(&junk), Dec::parse(&junk));
        }
    }
}
