//! The record frame: the unit stored in segments and in the checkpoint file.
//!
//! Layout (little-endian, see `storage-format.md`):
//!
//! ```text
//! 0   4  magic "MPRC"
//! 4   1  version (1)
//! 5   1  kind (opaque to the log)
//! 6   2  reserved, must be 0
//! 8   4  payload length N
//! 12  8  offset
//! 20  8  timestamp (ms)
//! 28  N  payload
//! 28+N 4 CRC32 (crc32fast / IEEE) of bytes [0, 28+N)
//! ```
//!
//! Invariant: a frame is valid only if all of its bytes are present and the CRC holds, so a
//! torn write (any prefix of a frame, or a frame followed by garbage) is detectable from the
//! bytes alone. Decoding never panics and never allocates based on the length field.

/// Magic bytes opening every record frame.
pub const RECORD_MAGIC: [u8; 4] = *b"MPRC";
/// The only record frame version this build writes and reads.
pub const RECORD_VERSION: u8 = 1;
/// Length of the fixed header that precedes the payload.
pub const RECORD_HEADER_LEN: usize = 28;
/// Length of the CRC32 that follows the payload.
pub const RECORD_CRC_LEN: usize = 4;
/// Total fixed overhead of one frame.
pub const RECORD_OVERHEAD: usize = RECORD_HEADER_LEN + RECORD_CRC_LEN;
/// Largest payload the log accepts (1 GiB). Larger length fields are treated as corruption.
pub const MAX_PAYLOAD_LEN: u32 = 1 << 30;

/// Byte position of the version field.
pub const REC_OFF_VERSION: usize = 4;
/// Byte position of the kind field.
pub const REC_OFF_KIND: usize = 5;
/// Byte position of the reserved field.
pub const REC_OFF_RESERVED: usize = 6;
/// Byte position of the payload length field.
pub const REC_OFF_LEN: usize = 8;
/// Byte position of the offset field.
pub const REC_OFF_OFFSET: usize = 12;
/// Byte position of the timestamp field.
pub const REC_OFF_TIMESTAMP: usize = 20;

/// Decoded fixed header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub kind: u8,
    pub payload_len: u32,
    pub offset: u64,
    pub timestamp_ms: u64,
}

impl FrameHeader {
    /// Total length of the frame on disk.
    pub fn frame_len(&self) -> u64 {
        self.payload_len as u64 + RECORD_OVERHEAD as u64
    }
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Fewer bytes than the frame needs (torn write or end of data).
    Incomplete,
    BadMagic,
    TooLarge(u32),
    BadCrc,
    /// CRC holds but the version is unknown: written by a newer build, must not be discarded.
    UnsupportedVersion(u8),
    BadReserved,
}

impl FrameError {
    pub fn describe(&self) -> String {
        match self {
            FrameError::Incomplete => "incomplete record frame".into(),
            FrameError::BadMagic => "bad record magic".into(),
            FrameError::TooLarge(n) => format!("record payload length {n} exceeds maximum"),
            FrameError::BadCrc => "record CRC mismatch".into(),
            FrameError::UnsupportedVersion(v) => format!("unsupported record version {v}"),
            FrameError::BadReserved => "record reserved bits set".into(),
        }
    }
}

/// Length on disk of a frame carrying `payload_len` bytes.
pub(crate) fn frame_len(payload_len: usize) -> usize {
    payload_len + RECORD_OVERHEAD
}

/// Appends one encoded frame to `out`.
pub(crate) fn encode_into(
    out: &mut Vec<u8>,
    kind: u8,
    timestamp_ms: u64,
    offset: u64,
    payload: &[u8],
) {
    let (head, crc) = frame_parts(kind, timestamp_ms, offset, payload);
    out.reserve(frame_len(payload.len()));
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc);
}

/// The bytes that go before and after `payload` in its frame, for writers that write a large
/// payload from where it lies instead of copying it into a frame buffer.
pub(crate) fn frame_parts(
    kind: u8,
    timestamp_ms: u64,
    offset: u64,
    payload: &[u8],
) -> ([u8; RECORD_HEADER_LEN], [u8; RECORD_CRC_LEN]) {
    debug_assert!(payload.len() <= MAX_PAYLOAD_LEN as usize);
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[..4].copy_from_slice(&RECORD_MAGIC);
    h[4] = RECORD_VERSION;
    h[5] = kind;
    h[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[12..20].copy_from_slice(&offset.to_le_bytes());
    h[20..28].copy_from_slice(&timestamp_ms.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h);
    crc.update(payload);
    (h, crc.finalize().to_le_bytes())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Parses the fixed header only (no CRC check); used to skip forward over frames whose
/// content will not be returned. The caller verifies the CRC of any frame it returns.
pub(crate) fn parse_header(buf: &[u8]) -> Result<FrameHeader, FrameError> {
    if buf.len() < RECORD_HEADER_LEN {
        return Err(FrameError::Incomplete);
    }
    if buf[..4] != RECORD_MAGIC {
        return Err(FrameError::BadMagic);
    }
    let payload_len = u32_at(buf, REC_OFF_LEN);
    if payload_len > MAX_PAYLOAD_LEN {
        return Err(FrameError::TooLarge(payload_len));
    }
    if buf[REC_OFF_VERSION] != RECORD_VERSION {
        return Err(FrameError::UnsupportedVersion(buf[REC_OFF_VERSION]));
    }
    Ok(FrameHeader {
        kind: buf[REC_OFF_KIND],
        payload_len,
        offset: u64_at(buf, REC_OFF_OFFSET),
        timestamp_ms: u64_at(buf, REC_OFF_TIMESTAMP),
    })
}

/// Decodes and fully verifies the frame at the start of `buf` (trailing bytes are ignored).
/// Returns the header and the payload slice.
pub(crate) fn decode(buf: &[u8]) -> Result<(FrameHeader, &[u8]), FrameError> {
    if buf.len() < RECORD_HEADER_LEN {
        return Err(FrameError::Incomplete);
    }
    if buf[..4] != RECORD_MAGIC {
        return Err(FrameError::BadMagic);
    }
    let payload_len = u32_at(buf, REC_OFF_LEN);
    if payload_len > MAX_PAYLOAD_LEN {
        return Err(FrameError::TooLarge(payload_len));
    }
    let body_end = RECORD_HEADER_LEN + payload_len as usize;
    let total = body_end + RECORD_CRC_LEN;
    if buf.len() < total {
        return Err(FrameError::Incomplete);
    }
    let stored = u32_at(buf, body_end);
    if crc32fast::hash(&buf[..body_end]) != stored {
        return Err(FrameError::BadCrc);
    }
    // Version is checked after the CRC: a CRC-valid frame of an unknown version is a real
    // record from a newer build, which recovery must refuse to truncate.
    if buf[REC_OFF_VERSION] != RECORD_VERSION {
        return Err(FrameError::UnsupportedVersion(buf[REC_OFF_VERSION]));
    }
    if buf[REC_OFF_RESERVED] != 0 || buf[REC_OFF_RESERVED + 1] != 0 {
        return Err(FrameError::BadReserved);
    }
    let h = FrameHeader {
        kind: buf[REC_OFF_KIND],
        payload_len,
        offset: u64_at(buf, REC_OFF_OFFSET),
        timestamp_ms: u64_at(buf, REC_OFF_TIMESTAMP),
    };
    Ok((h, &buf[RECORD_HEADER_LEN..body_end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_every_prefix_is_incomplete() {
        let mut b = Vec::new();
        encode_into(&mut b, 7, 1234, 99, b"hello world");
        assert_eq!(b.len(), frame_len(11));
        let (h, p) = decode(&b).unwrap();
        assert_eq!(
            (h.kind, h.timestamp_ms, h.offset, p),
            (7, 1234, 99, &b"hello world"[..])
        );
        for cut in 0..b.len() {
            assert!(decode(&b[..cut]).is_err(), "prefix {cut} accepted");
        }
        for bit in 0..b.len() * 8 {
            let mut c = b.clone();
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&c).is_err(), "bit flip {bit} accepted");
        }
    }

    #[test]
    fn hostile_length_does_not_panic() {
        let mut b = Vec::new();
        encode_into(&mut b, 1, 1, 1, b"x");
        b[REC_OFF_LEN..REC_OFF_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&b), Err(FrameError::TooLarge(u32::MAX)));
        b[REC_OFF_LEN..REC_OFF_LEN + 4].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(decode(&b), Err(FrameError::Incomplete));
    }
}
