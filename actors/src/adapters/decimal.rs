//! Exact decimal numbers for the exchange adapters: the prices and amounts exchanges write as
//! decimal text (`"0.35130000"`, `"14.80"`), read without ever going through `f64` first.
//!
//! Why not `f64`: a float cannot hold most decimals exactly. Keyed by float, an order book could
//! merge two prices that differ beyond 15–17 significant digits, and `NaN` has no order at all;
//! computed in floats, a derived figure (`0.1 × 3`) comes out an ulp away from the one ccxt
//! publishes; and read as a float, `"0.10000000"` is written back as `0.1`, which breaks Kraken's
//! book checksum. So two types, one per need:
//!
//! - [`DecimalText`] keeps the exchange's text exactly as written (inline, without allocating)
//!   and compares by value: `"0.3513"` equals `"0.35130000"`, `"9.1"` < `"10"`, for any number of
//!   digits. It keys order books (Binance, Kraken) and gives back the very text Kraken's checksum
//!   is computed over.
//! - [`Decimal`] is an exact signed value, `i128` mantissa × 10^-scale, for the figures ccxt
//!   derives with its string arithmetic (`Precise`) before one final conversion to a number: a
//!   trade's cost, a ticker's change, percentage and average, a balance's total, an order's
//!   remaining amount and average price. Doing the same exact arithmetic gives ccxt's `f64` bit
//!   for bit. It is kept normalized, so equality, hashing and order are by value, and it keys
//!   Coinbase's books.
//!
//! Both read plain decimal notation only (no exponent, no spaces, no `+`), so a malformed field
//! is refused rather than read as some other number, and nothing here panics or wraps: what
//! does not fit is `None`.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// Longest text a [`DecimalText`] keeps, in bytes. The exchanges write at most about 30.
pub const MAX_LEN: usize = 64;

/// Decimals ccxt's `Precise.div` keeps by default (a division is truncated to them).
pub const DIV_PRECISION: u32 = 18;

/// Most fraction digits a [`Decimal`] keeps; 10^38 still fits in an `i128`, which keeps its
/// [`Ord`] free of overflow.
const MAX_SCALE: u32 = 38;

/// A non-negative decimal number kept exactly as the exchange wrote it, compared by value:
/// `"0.3513"` and `"0.35130000"` are equal, `"9.1"` < `"10"`. Stored inline ([`MAX_LEN`]
/// bytes), so it is `Copy` and a book level costs no allocation.
#[derive(Clone, Copy)]
pub struct DecimalText {
    bytes: [u8; MAX_LEN],
    len: u8,
    /// Start of the integer digits once leading zeros are skipped.
    int_start: u8,
    /// Position of the `.`, or the length when there is none.
    dot: u8,
    /// End of the fraction digits once trailing zeros are cut.
    frac_end: u8,
}

impl DecimalText {
    /// Reads `digits[.digits]`; `None` for anything else (a sign, an exponent, an empty part
    /// such as `.5` or `5.`, more than [`MAX_LEN`] bytes).
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
        let mut kept = [0; MAX_LEN];
        kept[..bytes.len()].copy_from_slice(bytes);
        // Every index is at most MAX_LEN (64), so the casts cannot truncate.
        Some(Self {
            bytes: kept,
            len: bytes.len() as u8,
            int_start: int_start as u8,
            dot: dot as u8,
            frac_end: frac_end as u8,
        })
    }

    /// The text exactly as the exchange wrote it.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and `.` are ever stored, so this never falls back.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    /// Whether the value is zero (`"0"`, `"0.00000000"`): a book's "remove this level".
    pub fn is_zero(&self) -> bool {
        self.int_digits().is_empty() && self.frac_digits().is_empty()
    }

    /// The nearest `f64`, as `float(text)` gives it in Python (so as ccxt's `parseNumber`).
    pub fn to_f64(&self) -> f64 {
        // Validated digits always parse; NaN only keeps this free of a panic path.
        self.as_str().parse().unwrap_or(f64::NAN)
    }

    /// Number of decimals once trailing zeros are cut (`"0.00010000"` → 4): ccxt's
    /// `precisionFromString` of a tick size.
    pub fn decimals(&self) -> u32 {
        self.frac_digits().len() as u32
    }

    /// The integer digits without leading zeros.
    fn int_digits(&self) -> &[u8] {
        &self.bytes[usize::from(self.int_start)..usize::from(self.dot)]
    }

    /// The fraction digits without trailing zeros.
    fn frac_digits(&self) -> &[u8] {
        let (dot, end) = (usize::from(self.dot), usize::from(self.frac_end));
        if end > dot {
            &self.bytes[dot + 1..end]
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

impl Hash for DecimalText {
    /// By value, as equality: the significant digits only.
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.int_digits());
        state.write_u8(b'.');
        state.write(self.frac_digits());
    }
}

impl fmt::Debug for DecimalText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for DecimalText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An exact decimal number, `mantissa × 10^-scale`, kept normalized (`1.50` is stored as
/// `15 × 10^-1`), so derived equality and hashing are value equality. Every operation is
/// checked: what would overflow is `None`, and callers fall back to `f64`, which real exchange
/// figures never need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    mantissa: i128,
    scale: u32,
}

/// `10^exp`, if it fits.
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

    /// `mantissa × 10^-scale`, normalized; `None` when the scale is beyond what is kept (38).
    pub fn new(mantissa: i128, scale: u32) -> Option<Self> {
        let (mut mantissa, mut scale) = (mantissa, scale);
        while scale > 0 && mantissa % 10 == 0 {
            mantissa /= 10;
            scale -= 1;
        }
        (scale <= MAX_SCALE).then_some(Self { mantissa, scale })
    }

    /// Reads plain decimal text: an optional `-`, digits, an optional `.` and digits (at least
    /// one digit in all: `5.` and `.5` are read). No exponent, no `+`, no spaces: exchanges do
    /// not write them, and accepting less keeps a malformed field from being read as some other
    /// number. `None` as well beyond 38 significant digits.
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

    /// Whether the value is above zero.
    pub fn is_positive(self) -> bool {
        self.mantissa > 0
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

    /// `self / base × 100`, the quotient cut to [`DIV_PRECISION`] decimals: ccxt's `safeTicker`
    /// percentage, `Precise.stringMul(Precise.stringDiv(change, open), '100')`.
    pub fn percent_of(self, base: Self) -> Option<Self> {
        self.checked_div(base, DIV_PRECISION)?
            .checked_mul(Self::integer(100))
    }

    /// `(self + other) / 2` cut to `precision` decimals: a ticker's `average` of open and close
    /// (ccxt's `safeTicker` at [`DIV_PRECISION`]; some exchanges' parsers at the price's
    /// decimals).
    pub fn average(self, other: Self, precision: u32) -> Option<Self> {
        self.checked_add(other)?
            .checked_div(Self::integer(2), precision)
    }

    /// The nearest `f64`: the decimal text parsed by the standard library, correctly rounded,
    /// as ccxt's `parseNumber` does with `float(text)`.
    pub fn to_f64(self) -> f64 {
        // The text is always a valid number; NaN is unreachable but keeps this total.
        self.to_string().parse().unwrap_or(f64::NAN)
    }
}

/// ccxt's `omitZero`: a zero price means "none".
pub fn omit_zero(value: Option<Decimal>) -> Option<Decimal> {
    value.filter(|d| !d.is_zero())
}

impl fmt::Display for Decimal {
    /// Plain decimal text without trailing zeros (`-12.34`, `0.00001305`, `1000`), as ccxt's
    /// `Precise` writes it.
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
            write!(f, "{sign}0.{digits:0>scale$}")
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

    fn text(s: &str) -> DecimalText {
        DecimalText::parse(s).unwrap()
    }

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    // ------------------------------------------------------------ DecimalText

    #[test]
    fn text_orders_by_value_not_by_text() {
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
        // Equal values hash alike, whatever their text.
        let state = std::collections::hash_map::RandomState::new();
        let hash = |s: &str| std::hash::BuildHasher::hash_one(&state, text(s));
        assert_eq!(hash("14.80"), hash("14.8"));
        assert_eq!(hash("007"), hash("7.000"));
    }

    #[test]
    fn text_is_kept_as_written() {
        let n = text("0.10000000");
        assert_eq!(n.as_str(), "0.10000000");
        assert_eq!(n.to_string(), "0.10000000");
        assert_eq!(format!("{n:?}"), "\"0.10000000\"");
        assert_eq!(n.to_f64(), 0.1);
        assert_eq!(text("0.000022900").as_str(), "0.000022900");
        let longest = "1".repeat(MAX_LEN);
        assert_eq!(text(&longest).as_str(), longest);
    }

    #[test]
    fn text_zero_and_decimals() {
        assert!(text("0.00000000").is_zero());
        assert!(text("0").is_zero());
        assert!(!text("0.00000001").is_zero());
        assert_eq!(text("0.00010000").decimals(), 4);
        assert_eq!(text("1.00000000").decimals(), 0);
        assert_eq!(text("0.35130000").to_f64(), 0.3513);
    }

    #[test]
    fn text_refuses_what_is_not_plain_non_negative_decimal() {
        for bad in [
            "", ".", "1.", ".5", "-1", "+1", "1e5", "1e-8", "0x10", "1.2.3", " 1", "1 ", "NaN",
            "inf", "１",
        ] {
            assert!(DecimalText::parse(bad).is_none(), "{bad:?}");
        }
        assert!(DecimalText::parse(&"1".repeat(MAX_LEN + 1)).is_none());
    }

    // ------------------------------------------------------------ Decimal

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
        assert_eq!(d("0.5").to_string(), "0.5");
        assert_eq!(d("0.005").to_string(), "0.005");
        assert_eq!(d("0.10000000").to_f64(), 0.1);
        assert_eq!(d("-238.3").to_f64(), -238.3);
        assert_eq!(d("5").to_f64(), 5.0);
        assert_eq!(d("-0.00004000").to_f64(), -0.00004);
        for bad in [
            "", ".", "-", "1e5", "+1", " 1", "1,5", "1.2.3", "0x10", "--1", "١", "nan", "inf",
        ] {
            assert_eq!(Decimal::parse(bad), None, "{bad:?}");
        }
        // Too many digits for i128: refused, not wrapped.
        assert_eq!(Decimal::parse(&"9".repeat(39)), None);
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
        // 0.1 × 3 in f64 is 0.30000000000000004; ccxt's Precise gives 0.3.
        assert_ne!(0.1 * 3.0, 0.3);
        assert_eq!(d("0.10000000").checked_mul(d("3.00000000")), Some(d("0.3")));
        // 0.1 + 0.2 is 0.30000000000000004 in f64; exactly 0.3 here.
        assert_eq!(d("0.1").checked_add(d("0.2")).unwrap().to_f64(), 0.3);
        assert_eq!(
            d("0.35280000")
                .checked_mul(d("58.00000000"))
                .unwrap()
                .to_string(),
            "20.4624"
        );
        // Written reduced, as ccxt's `Precise.__str__` does.
        assert_eq!(
            d("0.01916500")
                .checked_add(d("0.01912500"))
                .unwrap()
                .to_string(),
            "0.03829"
        );
        assert_eq!(d("1.0").checked_sub(d("0.3")).unwrap().to_f64(), 0.7);
        assert_eq!(d("14.7775").checked_sub(d("14.6647")), Some(d("0.1128")));
        assert_eq!(
            d("5525.1").checked_sub(d("5763.40000")).unwrap().to_f64(),
            -238.3
        );
        assert_eq!(d("0.00001305").checked_mul(d("985")), Some(d("0.01285425")));
        assert_eq!(
            d("3591.17907851")
                .checked_mul(d("5653.78939"))
                .unwrap()
                .to_f64(),
            20303770.171669815
        );
        assert_eq!(
            d("0.1128")
                .checked_div(d("14.6647"), DIV_PRECISION)
                .and_then(|x| x.checked_mul(d("100")))
                .map(|x| x.to_string()),
            Some("0.7691940510204777".to_owned())
        );
        assert_eq!(
            d("0.1128").percent_of(d("14.6647")).unwrap().to_f64(),
            0.7691940510204777
        );
        assert_eq!(
            d("14.6647").average(d("14.7775"), DIV_PRECISION),
            Some(d("14.7211"))
        );
        assert_eq!(
            d("5763.4").average(d("5525.1"), 1).unwrap().to_f64(),
            5644.2
        );
        // Division truncated toward zero at the given precision, for both signs.
        assert_eq!(d("2").checked_div(d("3"), 4).unwrap().to_string(), "0.6666");
        assert_eq!(
            d("-1").checked_div(d("3"), 18).unwrap().to_string(),
            "-0.333333333333333333"
        );
        assert_eq!(
            d("11288.5").checked_div(d("2"), 1).unwrap().to_f64(),
            5644.2
        );
        assert_eq!(d("-7").checked_div(d("2"), 0).unwrap().to_f64(), -3.0);
        assert_eq!(
            d("0.00350").checked_div(d("2"), 6).unwrap().to_f64(),
            0.00175
        );
        assert_eq!(
            d("0.26").checked_div(d("100"), 18).unwrap().to_f64(),
            0.0026
        );
        assert_eq!(d("1").checked_div(Decimal::ZERO, 18), None);
        assert_eq!(d("1").checked_div(d("0.000"), 18), None);
        assert_eq!(d("1.5").to_f64(), 1.5);
        // Overflow is None, not a panic.
        let big = d(&"9".repeat(30));
        assert_eq!(big.checked_mul(big), None);
    }

    #[test]
    fn omit_zero_is_ccxts() {
        assert_eq!(omit_zero(Some(d("0.00"))), None);
        assert_eq!(omit_zero(Some(d("0.35"))), Some(d("0.35")));
        assert_eq!(omit_zero(None), None);
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
            let difference = d(&a).checked_sub(d(&b)).unwrap();
            let by_value = if difference.is_zero() {
                Ordering::Equal
            } else if difference.is_positive() {
                Ordering::Greater
            } else {
                Ordering::Less
            };
            proptest::prop_assert_eq!(x.cmp(&y), by_value);
            let _ = (DecimalText::parse(&junk), Decimal::parse(&junk));
        }

        /// Decimal order is the numeric order of the text.
        #[test]
        fn decimal_order_agrees_with_numbers(a in "-?[0-9]{1,6}(\\.[0-9]{1,6})?",
                                             b in "-?[0-9]{1,6}(\\.[0-9]{1,6})?") {
            let (x, y) = (d(&a), d(&b));
            let (fx, fy) = (a.parse::<f64>().unwrap(), b.parse::<f64>().unwrap());
            // 12 significant digits are exact in f64, so its order is the true order.
            // (`partial_cmp`, not `total_cmp`: "-0" and "0" are the same number.)
            proptest::prop_assert_eq!(Some(x.cmp(&y)), fx.partial_cmp(&fy));
            proptest::prop_assert_eq!(x == y, fx == fy);
        }
    }
}
