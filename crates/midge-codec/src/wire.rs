//! The data representations of §1.5: integers, Variable Byte Integers, UTF-8 Encoded Strings,
//! Binary Data. A [`Reader`] takes them out of one packet's bytes; a [`Sink`] puts them back.
//!
//! The reader never copies: strings and binary fields come back as `Bytes` slices of the packet.
//! Every read is bounds-checked and names the field it was reading, so a short packet is a typed
//! error and never a panic. A packet's layout is written once, generic over [`Sink`]: run with a
//! [`Counter`] it measures the packet, run with `BytesMut` it writes it.

use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;

/// The largest value of a Variable Byte Integer (§1.5.5), and so the largest Remaining Length.
pub const VARINT_MAX: u32 = 268_435_455;

/// The result of looking for a Variable Byte Integer at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum VarInt {
    /// The value and how many bytes it took.
    Complete(u32, usize),
    /// The buffer ends before the integer does.
    Incomplete,
}

/// Reads a Variable Byte Integer from the front of `bytes` [MQTT-1.5.5-1].
pub(crate) fn read_varint(bytes: &[u8]) -> Result<VarInt, DecodeError> {
    let mut value: u32 = 0;
    for (index, byte) in bytes.iter().copied().enumerate().take(4) {
        value |= u32::from(byte & 0x7F) << (7 * index);
        if byte & 0x80 == 0 {
            if byte == 0 && index > 0 {
                return Err(DecodeError::VarIntNotMinimal);
            }
            return Ok(VarInt::Complete(value, index + 1));
        }
    }
    if bytes.len() >= 4 {
        Err(DecodeError::VarIntTooLong)
    } else {
        Ok(VarInt::Incomplete)
    }
}

/// How many bytes `value` takes as a Variable Byte Integer.
#[inline]
pub(crate) fn varint_len(value: u32) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// `value` as a Variable Byte Integer (callers keep it within [`VARINT_MAX`]), computed in a
/// register: the encoded bytes in little-endian order (first on the wire in the lowest byte,
/// zeros above the last), and how many there are. No loop, and no byte-by-byte stores to read
/// back as a word.
#[inline]
pub(crate) fn encode_varint(value: u32) -> (u32, usize) {
    // Most Remaining and Property Lengths of small packets fit one byte, the value itself.
    if value < 128 {
        return (value, 1);
    }
    // And most others two: a packet of up to 16 KB.
    if value < 16_384 {
        return ((value & 0x7F) | 0x80 | (value >> 7) << 8, 2);
    }
    let len = varint_len(value);
    let groups =
        (value & 0x7F) | ((value << 1) & 0x7F00) | ((value << 2) & 0x7F_0000) | ((value << 3) & 0x7F00_0000);
    // The continuation bit on every byte but the last.
    let continuation = 0x0080_8080 & ((1u32 << (8 * (len - 1))) - 1);
    (groups | continuation, len)
}

/// A cursor over the bytes of one packet (after its fixed header).
///
/// It consumes its `Bytes` from the front: fixed-size fields advance a pointer, variable ones
/// split off a shared slice (one reference-count increment each), and [`Reader::rest`] hands over
/// what is left without touching the count at all.
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        Self { buf }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next `N` bytes, consumed.
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let array = self
            .buf
            .first_chunk::<N>()
            .copied()
            .ok_or(DecodeError::Truncated { field })?;
        self.buf.advance(N);
        Ok(array)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        let [byte] = self.array::<1>(field)?;
        Ok(byte)
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.array(field).map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.array(field).map(u32::from_be_bytes)
    }

    pub(crate) fn varint(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        match read_varint(&self.buf)? {
            VarInt::Complete(value, len) => {
                self.buf.advance(len);
                Ok(value)
            }
            VarInt::Incomplete => Err(DecodeError::Truncated { field }),
        }
    }

    /// `len` bytes as a shared slice of the packet: no copy.
    pub(crate) fn bytes(&mut self, len: usize, field: &'static str) -> Result<Bytes, DecodeError> {
        if len > self.buf.len() {
            return Err(DecodeError::Truncated { field });
        }
        Ok(self.buf.split_to(len))
    }

    /// Binary Data (§1.5.6): a two-byte length and that many bytes.
    pub(crate) fn binary(&mut self, field: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.u16(field)?;
        self.bytes(usize::from(len), field)
    }

    /// A UTF-8 Encoded String (§1.5.4), checked for well-formedness and U+0000
    /// [MQTT-1.5.4-1] [MQTT-1.5.4-2].
    pub(crate) fn string(&mut self, field: &'static str) -> Result<ByteString, DecodeError> {
        let raw = self.binary(field)?;
        to_mqtt_string(raw, field)
    }

    /// Everything left, handed over whole: no reference-count traffic.
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// A reader over the next `len` bytes, which this reader skips.
    pub(crate) fn sub_reader(&mut self, len: usize, field: &'static str) -> Result<Self, DecodeError> {
        Ok(Self::new(self.bytes(len, field)?))
    }

    /// Ends a packet: anything left over is malformed.
    pub(crate) fn finish(&self, packet: PacketType) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes { packet, extra }),
        }
    }
}

/// Validates bytes as an MQTT UTF-8 Encoded String [MQTT-1.5.4-1] [MQTT-1.5.4-2]. Rust's UTF-8
/// check already refuses encoded surrogates and overlong forms.
pub(crate) fn to_mqtt_string(raw: Bytes, field: &'static str) -> Result<ByteString, DecodeError> {
    if raw.contains(&0) {
        return Err(DecodeError::NullCharacter { field });
    }
    ByteString::try_from(raw).map_err(|_| DecodeError::InvalidUtf8 { field })
}

/// Where encoded bytes go: a real buffer, or a [`Counter`] that only measures.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);

    fn put_u8(&mut self, value: u8) {
        self.put(&[value]);
    }

    fn put_u16(&mut self, value: u16) {
        self.put(&value.to_be_bytes());
    }

    /// A Variable Byte Integer; callers keep `value` within [`VARINT_MAX`].
    fn put_varint(&mut self, value: u32) {
        let (bytes, len) = encode_varint(value);
        self.put(bytes.to_le_bytes().get(..len).unwrap_or_default());
    }

    /// Binary Data with its two-byte length.
    fn put_binary(&mut self, field: &'static str, bytes: &[u8]) -> Result<(), EncodeError> {
        let len = u16::try_from(bytes.len()).map_err(|_| EncodeError::FieldTooLong {
            field,
            len: bytes.len(),
        })?;
        self.put_u16(len);
        self.put(bytes);
        Ok(())
    }

    /// A one-byte tag (a property identifier), then Binary Data or a string with its two-byte
    /// length: the tag and the length go out in one write.
    fn put_tagged_binary(&mut self, tag: u8, field: &'static str, bytes: &[u8]) -> Result<(), EncodeError> {
        let len = u16::try_from(bytes.len()).map_err(|_| EncodeError::FieldTooLong {
            field,
            len: bytes.len(),
        })?;
        let [hi, lo] = len.to_be_bytes();
        self.put(&[tag, hi, lo]);
        self.put(bytes);
        Ok(())
    }

    /// A UTF-8 Encoded String with its two-byte length.
    fn put_str(&mut self, field: &'static str, text: &str) -> Result<(), EncodeError> {
        self.put_binary(field, text.as_bytes())
    }
}

impl Sink for BytesMut {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A [`Sink`] over bytes already in place: a measured stretch of a buffer, zeroed, which the
/// writes fill in from the start. Appending to a `BytesMut` checks its capacity and stores its
/// length on every write; this keeps its place in a register, and copies short strings with
/// two fixed-size copies each instead of a call to `memcpy`, around which everything else was
/// saved and reloaded.
///
/// Only for bytes measured first with a [`Counter`], which is where string lengths are checked:
/// a filler trusts them. A write past the end is dropped (the measurement was wrong, a bug):
/// [`finish`](Self::finish) says whether the stretch was filled exactly.
#[derive(Debug)]
pub(crate) struct Filler<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl<'a> Filler<'a> {
    pub(crate) fn new(out: &'a mut [u8]) -> Self {
        Self { out, at: 0 }
    }

    /// True when the writes filled the stretch exactly.
    pub(crate) fn finish(self) -> bool {
        self.at == self.out.len()
    }

    /// How many bytes have been put.
    pub(crate) fn written(&self) -> usize {
        self.at
    }

    /// Puts `bytes`, of any length: without a call for up to 64 bytes.
    #[inline(always)]
    pub(crate) fn put_any(&mut self, bytes: &[u8]) {
        let end = self.at + bytes.len();
        if let Some(out) = self.out.get_mut(self.at..end) {
            copy_any(out, bytes);
        }
        self.at = end;
    }

    /// Puts the low `len` bytes of `word` (at most 8), lowest first, as one 8-byte store: the
    /// bytes past `len` are zeros, for the next write to overwrite. Needs 8 bytes of room.
    #[inline(always)]
    pub(crate) fn put_word(&mut self, word: u64, len: usize) {
        if let Some(out) = self
            .out
            .get_mut(self.at..)
            .and_then(|out| out.first_chunk_mut::<8>())
        {
            *out = word.to_le_bytes();
        }
        self.at += len;
    }
}

impl Sink for Filler<'_> {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        let end = self.at + bytes.len();
        if let Some(out) = self.out.get_mut(self.at..end) {
            copy_short(out, bytes);
        }
        self.at = end;
    }

    // The lengths were checked when the bytes were measured, before there was a stretch to
    // fill: they are not checked again.
    #[inline(always)]
    fn put_binary(&mut self, _: &'static str, bytes: &[u8]) -> Result<(), EncodeError> {
        debug_assert!(bytes.len() <= usize::from(u16::MAX));
        self.put(&(bytes.len() as u16).to_be_bytes());
        self.put(bytes);
        Ok(())
    }

    #[inline(always)]
    fn put_tagged_binary(&mut self, tag: u8, _: &'static str, bytes: &[u8]) -> Result<(), EncodeError> {
        debug_assert!(bytes.len() <= usize::from(u16::MAX));
        let [hi, lo] = (bytes.len() as u16).to_be_bytes();
        self.put(&[tag, hi, lo]);
        self.put(bytes);
        Ok(())
    }
}

/// Copies `src` (`N` to `2 * N` bytes) into `out`, of the same length, as two overlapping
/// `N`-byte pieces, the first and the last; false if the lengths do not fit.
#[inline(always)]
fn two<const N: usize>(out: &mut [u8], src: &[u8]) -> bool {
    match (
        src.first_chunk::<N>(),
        src.last_chunk::<N>(),
        out.len() == src.len(),
    ) {
        (Some(first), Some(last), true) => {
            if let Some(head) = out.first_chunk_mut::<N>() {
                *head = *first;
            }
            if let Some(tail) = out.last_chunk_mut::<N>() {
                *tail = *last;
            }
            true
        }
        _ => false,
    }
}

/// `out.copy_from_slice(src)`, with the lengths a property's string usually has (4 to 32
/// bytes) copied as two overlapping fixed-size pieces, the first and the last, without a call to
/// `memcpy`.
#[inline(always)]
fn copy_short(out: &mut [u8], src: &[u8]) {
    let done = match src.len() {
        4..=7 => two::<4>(out, src),
        8..=16 => two::<8>(out, src),
        17..=32 => two::<16>(out, src),
        _ => false,
    };
    if !done {
        out.copy_from_slice(src);
    }
}

/// [`copy_short`] for any length up to 64 bytes (most topics and small payloads), and the
/// shortest: no call to `memcpy`.
#[inline(always)]
fn copy_any(out: &mut [u8], src: &[u8]) {
    /// One to three bytes: the first, the middle and the last (some of them the same).
    fn three(out: &mut [u8], src: &[u8]) -> bool {
        let len = src.len();
        if out.len() != len || len == 0 {
            return false;
        }
        for at in [0, len / 2, len - 1] {
            if let (Some(out), Some(&byte)) = (out.get_mut(at), src.get(at)) {
                *out = byte;
            }
        }
        true
    }
    let done = match src.len() {
        0 => true,
        1..=3 => three(out, src),
        4..=7 => two::<4>(out, src),
        8..=16 => two::<8>(out, src),
        17..=32 => two::<16>(out, src),
        33..=64 => two::<32>(out, src),
        _ => false,
    };
    if !done {
        out.copy_from_slice(src);
    }
}

/// A [`Sink`] that counts the bytes it would have written.
#[derive(Debug, Default)]
pub(crate) struct Counter(pub(crate) usize);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }

    fn put_u8(&mut self, _: u8) {
        self.0 += 1;
    }

    fn put_u16(&mut self, _: u16) {
        self.0 += 2;
    }

    fn put_varint(&mut self, value: u32) {
        self.0 += varint_len(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_boundaries_of_table_1_1() {
        let cases: [(u32, &[u8]); 8] = [
            (0, &[0x00]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ];
        for (value, encoded) in cases {
            let mut buf = BytesMut::new();
            buf.put_varint(value);
            assert_eq!(&buf[..], encoded, "encoding {value}");
            assert_eq!(varint_len(value), encoded.len());
            assert_eq!(read_varint(encoded), Ok(VarInt::Complete(value, encoded.len())));
        }
    }

    /// Every length around the fixed-size pieces, at every offset: the same bytes as a plain
    /// copy, nothing written outside the stretch.
    #[test]
    fn filler_writes_what_a_buffer_would() {
        let source: Vec<u8> = (1..=80).collect();
        for len in 0..=40 {
            for at in 0..3 {
                let prefix = &source[40..40 + at];
                let bytes = &source[..len];
                let mut expected = BytesMut::new();
                expected.put(prefix);
                expected.put_tagged_binary(0x26, "t", bytes).unwrap();
                expected.put(bytes);
                let mut out = vec![0; expected.len() + 1];
                let mut filler = Filler::new(&mut out[..expected.len()]);
                filler.put(prefix);
                filler.put_tagged_binary(0x26, "t", bytes).unwrap();
                filler.put(bytes);
                assert!(filler.finish());
                assert_eq!(&out[..expected.len()], &expected[..], "len {len} at {at}");
                assert_eq!(out[expected.len()], 0);
            }
        }
        // Any length, with `put_any`.
        for len in 0..=80 {
            let mut out = vec![0; len + 2];
            let mut filler = Filler::new(&mut out[1..=len]);
            filler.put_any(&source[..len]);
            assert!(filler.finish());
            assert_eq!(&out[1..=len], &source[..len], "put_any {len}");
            assert_eq!((out[0], out[len + 1]), (0, 0));
        }
        // Too much for the stretch: dropped, and said so.
        let mut out = [0; 4];
        let mut filler = Filler::new(&mut out);
        filler.put(b"abcdef");
        assert!(!filler.finish());
        assert_eq!(out, [0; 4]);
    }

    #[test]
    fn varint_errors() {
        assert_eq!(read_varint(&[0x80]), Ok(VarInt::Incomplete));
        assert_eq!(read_varint(&[]), Ok(VarInt::Incomplete));
        assert_eq!(
            read_varint(&[0x80, 0x80, 0x80, 0x80]),
            Err(DecodeError::VarIntTooLong)
        );
        assert_eq!(read_varint(&[0x80, 0x00]), Err(DecodeError::VarIntNotMinimal));
    }

    #[test]
    fn strings_refuse_nul_and_bad_utf8() {
        assert_eq!(
            to_mqtt_string(Bytes::from_static(b"a\0b"), "t"),
            Err(DecodeError::NullCharacter { field: "t" })
        );
        // U+D800 encoded as if it were a character.
        assert_eq!(
            to_mqtt_string(Bytes::from_static(b"\xED\xA0\x80"), "t"),
            Err(DecodeError::InvalidUtf8 { field: "t" })
        );
        assert_eq!(
            to_mqtt_string(Bytes::from_static("é".as_bytes()), "t").as_deref(),
            Ok("é")
        );
    }
}
