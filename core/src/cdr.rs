//! CDR little-endian, the way ROS 2 puts messages on the wire.
//!
//! A payload is the 4-byte encapsulation header `00 01 00 00` (CDR_LE) followed by the
//! fields in declaration order. Every primitive is aligned to its own size, counted from
//! the first byte *after* the header; strings are a `u32` length that includes the
//! terminating NUL, then the bytes and the NUL; sequences are a `u32` count then the
//! elements. This is XCDR1 "plain" encoding, what rmw_fastrtps and rmw_cyclonedds send.

use thiserror::Error;

/// The encapsulation header for little-endian plain CDR.
pub const CDR_LE_HEADER: [u8; 4] = [0x00, 0x01, 0x00, 0x00];

/// Why bytes could not be decoded. Decoding never panics; every failure is one of these.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CdrError {
    #[error("payload is {0} bytes, shorter than the 4-byte encapsulation header")]
    NoHeader(usize),
    #[error("encapsulation {0:02x} {1:02x} is not little-endian plain CDR (00 01)")]
    Encapsulation(u8, u8),
    #[error("truncated: needed {needed} bytes at offset {offset}, {left} left")]
    Truncated {
        offset: usize,
        needed: usize,
        left: usize,
    },
    #[error("string at offset {0} has no terminating NUL")]
    NoNul(usize),
    #[error("string at offset {0} is not UTF-8")]
    Utf8(usize),
    #[error("{what} is {value}, which is not allowed")]
    Invalid { what: &'static str, value: String },
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
}

/// Where a [`Writer`] puts bytes: a growing `Vec`, or memory of a fixed size ([`Fixed`]).
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);
    /// Bytes put so far.
    fn pos(&self) -> usize;
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes)
    }
    fn pos(&self) -> usize {
        self.len()
    }
}

/// Fixed memory written from its start: a frame encoded straight into a shared-memory
/// slot. Whatever would run past its end is not written, and [`Fixed::fits`] says so.
pub struct Fixed<'a> {
    mem: &'a mut [u8],
    len: usize,
    fits: bool,
}

impl<'a> Fixed<'a> {
    pub fn new(mem: &'a mut [u8]) -> Self {
        Self {
            mem,
            len: 0,
            fits: true,
        }
    }
    /// The bytes written, if everything fitted.
    pub fn fits(&self) -> Option<usize> {
        self.fits.then_some(self.len)
    }
}

impl Sink for Fixed<'_> {
    fn put(&mut self, bytes: &[u8]) {
        match self.mem.get_mut(self.len..self.len + bytes.len()) {
            Some(to) if self.fits => {
                to.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            _ => self.fits = false,
        }
    }
    fn pos(&self) -> usize {
        self.len
    }
}

/// Serialises fields into a CDR payload.
pub struct Writer<S: Sink = Vec<u8>> {
    buf: S,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Writer {
    pub fn new() -> Self {
        Self::with_capacity(64)
    }

    pub fn with_capacity(n: usize) -> Self {
        Self::to(Vec::with_capacity(n + 4))
    }
}

impl<S: Sink> Writer<S> {
    /// A writer putting the encapsulation header and then the fields into `buf`.
    pub fn to(mut buf: S) -> Self {
        buf.put(&CDR_LE_HEADER);
        Self { buf }
    }

    fn align(&mut self, n: usize) {
        let pos = self.buf.pos() - 4;
        let pad = (n - pos % n) % n;
        self.buf.put(&[0; 8][..pad]);
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.put(&[v]);
    }
    pub fn bool(&mut self, v: bool) {
        self.buf.put(&[v as u8]);
    }
    pub fn i8(&mut self, v: i8) {
        self.buf.put(&[v as u8]);
    }
    pub fn u16(&mut self, v: u16) {
        self.align(2);
        self.buf.put(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.put(&v.to_le_bytes());
    }
    pub fn i32(&mut self, v: i32) {
        self.align(4);
        self.buf.put(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.align(8);
        self.buf.put(&v.to_le_bytes());
    }
    pub fn f32(&mut self, v: f32) {
        self.align(4);
        self.buf.put(&v.to_le_bytes());
    }
    pub fn f64(&mut self, v: f64) {
        self.align(8);
        self.buf.put(&v.to_le_bytes());
    }
    pub fn string(&mut self, s: &str) {
        self.u32(s.len() as u32 + 1);
        self.buf.put(s.as_bytes());
        self.buf.put(&[0]);
    }
    /// Sequence length prefix; the caller writes the elements.
    pub fn len(&mut self, n: usize) {
        self.u32(n as u32);
    }
    /// `sequence<uint8>`: the length then the raw bytes (no per-element alignment).
    pub fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.buf.put(b);
    }
    pub fn finish(self) -> S {
        self.buf
    }
}

/// Reads fields back from a CDR payload, checking every length against what is left.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Checks the encapsulation header and positions after it.
    pub fn new(payload: &'a [u8]) -> Result<Self, CdrError> {
        if payload.len() < 4 {
            return Err(CdrError::NoHeader(payload.len()));
        }
        if payload[0] != 0 || payload[1] != 1 {
            return Err(CdrError::Encapsulation(payload[0], payload[1]));
        }
        Ok(Self {
            buf: &payload[4..],
            pos: 0,
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CdrError> {
        let left = self.buf.len() - self.pos;
        if n > left {
            return Err(CdrError::Truncated {
                offset: self.pos + 4,
                needed: n,
                left,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn align(&mut self, n: usize) -> Result<(), CdrError> {
        let pad = (n - self.pos % n) % n;
        self.take(pad).map(|_| ())
    }

    fn arr<const N: usize>(&mut self) -> Result<[u8; N], CdrError> {
        self.align(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, CdrError> {
        Ok(self.take(1)?[0])
    }
    pub fn bool(&mut self) -> Result<bool, CdrError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(CdrError::Invalid {
                what: "bool",
                value: v.to_string(),
            }),
        }
    }
    pub fn i8(&mut self) -> Result<i8, CdrError> {
        Ok(self.u8()? as i8)
    }
    pub fn u16(&mut self) -> Result<u16, CdrError> {
        Ok(u16::from_le_bytes(self.arr()?))
    }
    pub fn u32(&mut self) -> Result<u32, CdrError> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    pub fn i32(&mut self) -> Result<i32, CdrError> {
        Ok(i32::from_le_bytes(self.arr()?))
    }
    pub fn u64(&mut self) -> Result<u64, CdrError> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    pub fn f32(&mut self) -> Result<f32, CdrError> {
        Ok(f32::from_le_bytes(self.arr()?))
    }
    pub fn f64(&mut self) -> Result<f64, CdrError> {
        Ok(f64::from_le_bytes(self.arr()?))
    }
    pub fn string(&mut self) -> Result<String, CdrError> {
        let at = self.pos + 4;
        let n = self.u32()? as usize;
        if n == 0 {
            // Some writers send an empty string as length 0; accept it.
            return Ok(String::new());
        }
        let raw = self.take(n)?;
        let (last, body) = raw.split_last().ok_or(CdrError::NoNul(at))?;
        if *last != 0 {
            return Err(CdrError::NoNul(at));
        }
        String::from_utf8(body.to_vec()).map_err(|_| CdrError::Utf8(at))
    }
    /// A sequence length, checked against the bytes left assuming each element takes
    /// at least `min_elem` bytes, so a garbage count cannot make us allocate gigabytes.
    pub fn len(&mut self, min_elem: usize) -> Result<usize, CdrError> {
        let n = self.u32()? as usize;
        let left = self.buf.len() - self.pos;
        if n.saturating_mul(min_elem.max(1)) > left {
            return Err(CdrError::Truncated {
                offset: self.pos + 4,
                needed: n.saturating_mul(min_elem.max(1)),
                left,
            });
        }
        Ok(n)
    }
    pub fn bytes(&mut self) -> Result<Vec<u8>, CdrError> {
        let n = self.len(1)?;
        Ok(self.take(n)?.to_vec())
    }
    /// Ends decoding. Up to 3 bytes of trailing padding are tolerated, as some writers
    /// pad the payload to a multiple of 4.
    pub fn finish(self) -> Result<(), CdrError> {
        let left = self.buf.len() - self.pos;
        if left > 3 {
            return Err(CdrError::Trailing(left));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_counts_from_after_the_header() {
        let mut w = Writer::new();
        w.u8(7);
        w.f64(1.0);
        let b = w.finish();
        // header(4) + u8(1) + pad(7) + f64(8)
        assert_eq!(b.len(), 20);
        assert_eq!(&b[5..12], &[0; 7]);
        let mut r = Reader::new(&b).unwrap();
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.f64().unwrap(), 1.0);
        r.finish().unwrap();
    }

    #[test]
    fn huge_sequence_count_is_an_error_not_an_allocation() {
        let mut w = Writer::new();
        w.u32(u32::MAX);
        let b = w.finish();
        let mut r = Reader::new(&b).unwrap();
        assert!(matches!(r.bytes(), Err(CdrError::Truncated { .. })));
    }

    #[test]
    fn string_without_nul_is_an_error() {
        let b = [0, 1, 0, 0, 2, 0, 0, 0, b'h', b'i'];
        let mut r = Reader::new(&b).unwrap();
        assert_eq!(r.string(), Err(CdrError::NoNul(4)));
    }
}
