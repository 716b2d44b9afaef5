//! A minimal XDR (RFC 4506) reader and writer: just what the secure transport uses.
//!
//! Big-endian throughout. `int`/`uint`/`enum` take 4 bytes, `hyper` and `double` 8; variable-length
//! `opaque` (`bytes`) and `string` are a `uint` length, the data, then zero padding up to a
//! multiple of 4. Python's `xdrlib`, which the real client uses, writes exactly this.
//!
//! Every read is bounds-checked and returns an error instead of panicking; a declared length is
//! compared with the bytes that remain (and with a maximum) before anything is sliced, and opaque
//! fields are returned borrowed, so a hostile length never causes an allocation.

use std::fmt;

/// The largest `opaque`/`string` field a [`Reader`] accepts or a [`Writer`] emits by default
/// (16 MiB). Far above any JSON message; a WebSocket frame limit will normally bite first.
pub const MAX_OPAQUE_LEN: usize = 16 * 1024 * 1024;

/// Why XDR could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdrError {
    /// The input ended inside a field.
    Truncated,
    /// A declared length is above the maximum for that field.
    TooLong,
    /// A fixed-length field has another length.
    WrongLength,
    /// Padding bytes after an opaque field are not zero.
    NonZeroPadding,
    /// A string is not valid UTF-8 (or, where ASCII is required, not ASCII).
    BadString,
    /// Input remains after the last field.
    TrailingBytes,
    /// An enum or discriminant has a value outside its range.
    BadValue,
}

impl fmt::Display for XdrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XdrError::Truncated => "xdr: input ends inside a field",
            XdrError::TooLong => "xdr: declared length above the maximum",
            XdrError::WrongLength => "xdr: fixed-length field has another length",
            XdrError::NonZeroPadding => "xdr: non-zero padding",
            XdrError::BadString => "xdr: string is not valid text",
            XdrError::TrailingBytes => "xdr: bytes after the last field",
            XdrError::BadValue => "xdr: value out of range",
        })
    }
}

impl std::error::Error for XdrError {}

/// The zero padding that follows `len` bytes of opaque data.
const fn padding(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Reads XDR fields, in order, from a borrowed buffer.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
    max_opaque: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf` that refuses opaque fields above [`MAX_OPAQUE_LEN`].
    pub fn new(buf: &'a [u8]) -> Self {
        Self::with_max_opaque(buf, MAX_OPAQUE_LEN)
    }

    /// A reader over `buf` that refuses opaque fields above `max_opaque` bytes.
    pub fn with_max_opaque(buf: &'a [u8], max_opaque: usize) -> Self {
        Reader {
            rest: buf,
            max_opaque,
        }
    }

    /// The bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Succeeds only when everything has been read.
    pub fn finish(&self) -> Result<(), XdrError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(XdrError::TrailingBytes)
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], XdrError> {
        if n > self.rest.len() {
            return Err(XdrError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], XdrError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// An unsigned 32-bit integer.
    pub fn uint(&mut self) -> Result<u32, XdrError> {
        self.array().map(u32::from_be_bytes)
    }

    /// A signed 32-bit integer (also an `enum`).
    pub fn int(&mut self) -> Result<i32, XdrError> {
        self.array().map(i32::from_be_bytes)
    }

    /// A signed 64-bit integer.
    pub fn hyper(&mut self) -> Result<i64, XdrError> {
        self.array().map(i64::from_be_bytes)
    }

    /// An unsigned 64-bit integer.
    pub fn uhyper(&mut self) -> Result<u64, XdrError> {
        self.array().map(u64::from_be_bytes)
    }

    /// An IEEE 754 double.
    pub fn double(&mut self) -> Result<f64, XdrError> {
        self.array().map(|b| f64::from_bits(u64::from_be_bytes(b)))
    }

    /// Variable-length opaque data of at most the reader's maximum.
    pub fn opaque(&mut self) -> Result<&'a [u8], XdrError> {
        self.opaque_max(self.max_opaque)
    }

    /// Variable-length opaque data of at most `max` bytes (and at most the reader's maximum).
    pub fn opaque_max(&mut self, max: usize) -> Result<&'a [u8], XdrError> {
        let declared = self.uint()?;
        let len = usize::try_from(declared).map_err(|_| XdrError::TooLong)?;
        if len > max.min(self.max_opaque) {
            return Err(XdrError::TooLong);
        }
        let pad = padding(len);
        // Compare before slicing: `len + pad` cannot overflow, `len` being at most u32::MAX.
        if len + pad > self.rest.len() {
            return Err(XdrError::Truncated);
        }
        let data = self.take(len)?;
        if self.take(pad)?.iter().any(|&b| b != 0) {
            return Err(XdrError::NonZeroPadding);
        }
        Ok(data)
    }

    /// Variable-length opaque data that must be exactly `N` bytes long.
    pub fn opaque_exact<const N: usize>(&mut self) -> Result<[u8; N], XdrError> {
        let data = self.opaque_max(N)?;
        <[u8; N]>::try_from(data).map_err(|_| XdrError::WrongLength)
    }

    /// A string of valid UTF-8.
    pub fn string(&mut self) -> Result<&'a str, XdrError> {
        std::str::from_utf8(self.opaque()?).map_err(|_| XdrError::BadString)
    }
}

/// Writes XDR fields, in order, into a growing buffer.
#[derive(Debug, Clone)]
pub struct Writer {
    buf: Vec<u8>,
    max_opaque: usize,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Writer {
    /// An empty writer that refuses opaque fields above [`MAX_OPAQUE_LEN`].
    pub fn new() -> Self {
        Self::with_capacity(64)
    }

    /// An empty writer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(capacity),
            max_opaque: MAX_OPAQUE_LEN,
        }
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// The bytes written so far, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// An unsigned 32-bit integer.
    pub fn uint(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A signed 32-bit integer (also an `enum`).
    pub fn int(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A signed 64-bit integer.
    pub fn hyper(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// An unsigned 64-bit integer.
    pub fn uhyper(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// An IEEE 754 double.
    pub fn double(&mut self, v: f64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_bits().to_be_bytes());
        self
    }

    /// Variable-length opaque data (also a `string`): length, data, zero padding.
    pub fn opaque(&mut self, data: &[u8]) -> Result<&mut Self, XdrError> {
        if data.len() > self.max_opaque {
            return Err(XdrError::TooLong);
        }
        let len = u32::try_from(data.len()).map_err(|_| XdrError::TooLong)?;
        self.buf.reserve(4 + data.len() + 3);
        self.uint(len);
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(&[0u8; 3][..padding(data.len())]);
        Ok(self)
    }

    /// A string.
    pub fn string(&mut self, s: &str) -> Result<&mut Self, XdrError> {
        self.opaque(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_xdr_round_trips_every_type() {
        let mut w = Writer::new();
        w.uint(7).int(-2).hyper(-3).uhyper(u64::MAX).double(1.5);
        w.opaque(b"abcde").unwrap().string("héllo").unwrap();
        w.opaque(b"").unwrap();
        let bytes = w.into_bytes();
        assert_eq!(bytes.len() % 4, 0);
        let mut r = Reader::new(&bytes);
        assert_eq!(r.uint(), Ok(7));
        assert_eq!(r.int(), Ok(-2));
        assert_eq!(r.hyper(), Ok(-3));
        assert_eq!(r.uhyper(), Ok(u64::MAX));
        assert_eq!(r.double(), Ok(1.5));
        assert_eq!(r.opaque(), Ok(&b"abcde"[..]));
        assert_eq!(r.string(), Ok("héllo"));
        assert_eq!(r.opaque(), Ok(&b""[..]));
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn secure_xdr_matches_python_xdrlib() {
        // xdrlib.Packer(): pack_bytes(b"ab"); pack_hyper(1); pack_uint(5)
        let mut w = Writer::new();
        w.opaque(b"ab").unwrap().hyper(1).uint(5);
        assert_eq!(
            w.as_bytes(),
            b"\0\0\0\x02ab\0\0\0\0\0\0\0\0\0\x01\0\0\0\x05"
        );
    }

    #[test]
    fn secure_xdr_huge_lengths_are_refused_before_allocating() {
        // A 4 GiB length with nothing behind it: refused on the maximum, not by reading.
        let bytes = [0xff, 0xff, 0xff, 0xff];
        assert_eq!(Reader::new(&bytes).opaque(), Err(XdrError::TooLong));
        // Under the maximum but beyond the input: truncated, nothing allocated or sliced.
        let bytes = [0x00, 0x10, 0x00, 0x00, 1, 2, 3, 4];
        assert_eq!(Reader::new(&bytes).opaque(), Err(XdrError::Truncated));
        // A per-field maximum.
        let mut w = Writer::new();
        w.opaque(&[1u8; 33]).unwrap();
        let bytes = w.into_bytes();
        assert_eq!(Reader::new(&bytes).opaque_max(32), Err(XdrError::TooLong));
        assert_eq!(
            Reader::new(&bytes).opaque_exact::<32>(),
            Err(XdrError::TooLong)
        );
        let mut w = Writer::new();
        w.opaque(&[1u8; 31]).unwrap();
        let bytes = w.into_bytes();
        assert_eq!(
            Reader::new(&bytes).opaque_exact::<32>(),
            Err(XdrError::WrongLength)
        );
        // The writer keeps to the same maximum.
        let big = vec![0u8; MAX_OPAQUE_LEN + 1];
        assert_eq!(Writer::new().opaque(&big).err(), Some(XdrError::TooLong));
    }

    #[test]
    fn secure_xdr_truncation_padding_and_trailing_bytes() {
        assert_eq!(Reader::new(&[0, 0, 0]).uint(), Err(XdrError::Truncated));
        assert_eq!(Reader::new(&[0; 7]).hyper(), Err(XdrError::Truncated));
        assert_eq!(Reader::new(&[0; 7]).double(), Err(XdrError::Truncated));
        // Length 1, data, padding missing.
        assert_eq!(
            Reader::new(&[0, 0, 0, 1, b'a']).opaque(),
            Err(XdrError::Truncated)
        );
        assert_eq!(
            Reader::new(&[0, 0, 0, 1, b'a', 0, 1, 0]).opaque(),
            Err(XdrError::NonZeroPadding)
        );
        assert_eq!(
            Reader::new(&[0, 0, 0, 2, 0xff, 0xfe, 0, 0]).string(),
            Err(XdrError::BadString)
        );
        let mut r = Reader::new(&[0, 0, 0, 1, 9]);
        assert_eq!(r.uint(), Ok(1));
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.finish(), Err(XdrError::TrailingBytes));
    }
}
