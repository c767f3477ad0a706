//! Segment files: `<base offset, 20 digits>.seg`.
//!
//! A segment is a 48-byte header, a run of record frames with dense offsets starting at the
//! base offset, and — once sealed — a 64-byte trailer. The header ends with a *seal word*
//! that is 0 while the segment is active and [`SEAL_WORD_SEALED`] once the trailer, the
//! index files and the data are durable. The seal word lives in the header (not in
//! appended bytes) so that no record payload can ever masquerade as a seal.
//!
//! Invariants:
//! * Only the newest segment of a log may be unsealed. Sealed segments are immutable.
//! * Segment `i+1` starts at the offset where segment `i` ends (no gaps, no overlaps).
//! * Readers map sealed segments with mmap (the file never changes while mapped: unlink
//!   keeps a mapping valid, and the file of a dropped segment is only recycled once no
//!   reader holds it, `spare.rs`). The active segment is read with `pread`, bounded by the
//!   length that has been published to readers, so no mapping can ever extend past EOF (no
//!   SIGBUS).
//!
//! * A *hollow* segment (header flag [`FLAG_HOLLOW`]) is a sealed segment whose records were
//!   all dropped because the service no longer needs any of them: header and trailer only,
//!   keeping the offset range so the chain of segments stays gap-free. It has no index
//!   files, and reads of its offsets find nothing.
//!
//! * A *recycled* segment (header flag [`FLAG_RECYCLED`]) was made from the file of a dropped
//!   one: after its records come zeros to the next page boundary, then possibly bytes of
//!   that earlier segment, whose offsets are all below its base.
//!
//! Crash behaviour: a crash while appending leaves a torn tail in the active segment (cut by
//! recovery); a crash while sealing leaves an unsealed newest segment with garbage (the
//! trailer) after its last record, which recovery cuts like any torn tail.

use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use parking_lot::RwLock;

use super::error::LogError;
use super::fsutil::SegmentFile;
use super::index::{self, IdxEntry, IndexBuilder, TixEntry};
use super::record::{self, FrameError, FrameHeader, RECORD_HEADER_LEN};
use super::SegmentInfo;

/// Magic opening every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"MPONDSEG";
/// The only segment format version this build understands.
pub const SEGMENT_VERSION: u32 = 1;
/// Length of the segment header; the first record starts here.
pub const SEGMENT_HEADER_LEN: u64 = 48;
/// Header field: format version (u32).
pub const HDR_OFF_VERSION: usize = 8;
/// Header field: flags (u32; [`FLAG_HOLLOW`] and [`FLAG_RECYCLED`], other bits must be 0).
pub const HDR_OFF_FLAGS: usize = 12;
/// Header flag: the segment is hollow (sealed, no records; see the module doc). A reader
/// that predates it rejects the unknown flag instead of misreading the segment.
pub const FLAG_HOLLOW: u32 = 1;
/// Header flag: the segment was made from the file of a dropped segment (`spare.rs`), so
/// bytes after its records may be left from that segment. Its writer keeps zeros from the
/// end of every write to the next page boundary after it, and recovery reports a torn tail
/// only from the bytes before that boundary ([`torn_end`]).
pub const FLAG_RECYCLED: u32 = 2;
/// Header field: base offset (u64).
pub const HDR_OFF_BASE: usize = 16;
/// Header field: creation time, ms since epoch (u64); drives `segment_age` rolls.
pub const HDR_OFF_CREATED: usize = 24;
/// Header field: CRC32 over header bytes [0, 32).
pub const HDR_OFF_CRC: usize = 32;
/// Header field: seal word (u64), outside the header CRC because it is rewritten on seal.
pub const HDR_OFF_SEAL: usize = 40;
/// Seal word value of an active segment.
pub const SEAL_WORD_ACTIVE: u64 = 0;
/// Seal word value of a sealed segment ("SEALED!\0" little-endian).
pub const SEAL_WORD_SEALED: u64 = u64::from_le_bytes(*b"SEALED!\0");

/// Magic opening the trailer of a sealed segment.
pub const TRAILER_MAGIC: [u8; 8] = *b"MPONDEND";
/// Length of the trailer; it occupies the last bytes of a sealed segment.
pub const TRAILER_LEN: u64 = 64;
/// Trailer field: version (u32).
pub const TRL_OFF_VERSION: usize = 8;
/// Trailer field: base offset (u64).
pub const TRL_OFF_BASE: usize = 16;
/// Trailer field: next offset = last offset + 1 (u64).
pub const TRL_OFF_NEXT: usize = 24;
/// Trailer field: data end = position of the trailer (u64).
pub const TRL_OFF_DATA_END: usize = 32;
/// Trailer field: minimum record timestamp (u64).
pub const TRL_OFF_MIN_TS: usize = 40;
/// Trailer field: maximum record timestamp (u64).
pub const TRL_OFF_MAX_TS: usize = 48;
/// Trailer field: CRC32 over trailer bytes [0, 60).
pub const TRL_OFF_CRC: usize = 60;

/// File name of the segment with base offset `base`.
pub fn seg_name(base: u64) -> String {
    format!("{base:020}.seg")
}
/// File name of the offset index of segment `base`.
pub fn idx_name(base: u64) -> String {
    format!("{base:020}.idx")
}
/// File name of the time index of segment `base`.
pub fn tix_name(base: u64) -> String {
    format!("{base:020}.tix")
}

/// Parses `<20 digits>.<ext>` file names.
pub fn parse_name(name: &str, ext: &str) -> Option<u64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegHeader {
    pub base: u64,
    pub created_ms: u64,
    pub sealed: bool,
    /// The seal word is a partial write of the sealed value (the seal was interrupted).
    pub torn_seal: bool,
    /// [`FLAG_HOLLOW`] is set (always together with a complete seal word).
    pub hollow: bool,
    /// [`FLAG_RECYCLED`] is set.
    pub recycled: bool,
}

pub(crate) fn encode_header(base: u64, created_ms: u64) -> Vec<u8> {
    header_bytes(base, created_ms, 0, SEAL_WORD_ACTIVE)
}

/// Header of an active segment made from a dropped segment's file ([`FLAG_RECYCLED`]).
pub(crate) fn encode_recycled_header(base: u64, created_ms: u64) -> Vec<u8> {
    header_bytes(base, created_ms, FLAG_RECYCLED, SEAL_WORD_ACTIVE)
}

fn header_bytes(base: u64, created_ms: u64, flags: u32, seal: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(SEGMENT_HEADER_LEN as usize);
    h.extend_from_slice(&SEGMENT_MAGIC);
    h.extend_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h.extend_from_slice(&flags.to_le_bytes());
    h.extend_from_slice(&base.to_le_bytes());
    h.extend_from_slice(&created_ms.to_le_bytes());
    let crc = crc32fast::hash(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&seal.to_le_bytes());
    h
}

/// The whole file of a hollow segment standing in for a sealed one with trailer `t`: its
/// header (flagged hollow, sealed) and a trailer with the same offsets and timestamps whose
/// data end is the end of the header.
pub(crate) fn encode_hollow(created_ms: u64, t: &Trailer) -> Vec<u8> {
    let mut b = header_bytes(t.base, created_ms, FLAG_HOLLOW, SEAL_WORD_SEALED);
    b.extend_from_slice(&encode_trailer(&Trailer {
        data_end: SEGMENT_HEADER_LEN,
        ..*t
    }));
    b
}

/// Creation time recorded in a header already checked by [`parse_header`].
pub(crate) fn header_created_ms(b: &[u8]) -> u64 {
    le_u64(b, HDR_OFF_CREATED)
}

pub(crate) fn parse_header(path: &Path, b: &[u8]) -> Result<SegHeader, LogError> {
    if b.len() < SEGMENT_HEADER_LEN as usize {
        return Err(LogError::corrupt(
            path,
            0,
            "segment shorter than its header",
        ));
    }
    if b[..8] != SEGMENT_MAGIC {
        return Err(LogError::corrupt(path, 0, "bad segment magic"));
    }
    if crc32fast::hash(&b[..HDR_OFF_CRC]) != le_u32(b, HDR_OFF_CRC) {
        return Err(LogError::corrupt(path, 0, "segment header CRC mismatch"));
    }
    let version = le_u32(b, HDR_OFF_VERSION);
    if version != SEGMENT_VERSION {
        return Err(LogError::UnsupportedVersion {
            path: path.into(),
            offset: HDR_OFF_VERSION as u64,
            found: version,
        });
    }
    let flags = le_u32(b, HDR_OFF_FLAGS);
    if flags & !(FLAG_HOLLOW | FLAG_RECYCLED) != 0 {
        return Err(LogError::corrupt(
            path,
            HDR_OFF_FLAGS as u64,
            "unknown segment flags",
        ));
    }
    let hollow = flags & FLAG_HOLLOW != 0;
    let word = le_u64(b, HDR_OFF_SEAL);
    let (sealed, torn_seal) = match word {
        SEAL_WORD_ACTIVE => (false, false),
        SEAL_WORD_SEALED => (true, false),
        // An interrupted seal-word write: every byte is either still 0 or already its sealed
        // value. The seal never completed, so the segment is still the active one.
        w if (0..8).all(|i| {
            let (a, s) = ((w >> (8 * i)) as u8, (SEAL_WORD_SEALED >> (8 * i)) as u8);
            a == 0 || a == s
        }) =>
        {
            (false, true)
        }
        _ => {
            return Err(LogError::corrupt(
                path,
                HDR_OFF_SEAL as u64,
                "bad seal word",
            ))
        }
    };
    // Hollow segments are written whole (temporary file, rename), never sealed in place.
    if hollow && !sealed {
        return Err(LogError::corrupt(
            path,
            HDR_OFF_SEAL as u64,
            "hollow segment is not sealed",
        ));
    }
    Ok(SegHeader {
        base: le_u64(b, HDR_OFF_BASE),
        created_ms: le_u64(b, HDR_OFF_CREATED),
        sealed,
        torn_seal,
        hollow,
        recycled: flags & FLAG_RECYCLED != 0,
    })
}

/// Decoded trailer of a sealed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Trailer {
    pub base: u64,
    pub next: u64,
    pub data_end: u64,
    pub min_ts: u64,
    pub max_ts: u64,
}

pub(crate) fn encode_trailer(t: &Trailer) -> Vec<u8> {
    let mut b = Vec::with_capacity(TRAILER_LEN as usize);
    b.extend_from_slice(&TRAILER_MAGIC);
    b.extend_from_slice(&SEGMENT_VERSION.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    for v in [t.base, t.next, t.data_end, t.min_ts, t.max_ts] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&0u32.to_le_bytes());
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// Parses and checks the trailer of a sealed segment of `file_len` bytes (a hollow one if
/// `hollow`: then it must directly follow the header).
pub(crate) fn parse_trailer(
    path: &Path,
    b: &[u8],
    file_len: u64,
    base: u64,
    hollow: bool,
) -> Result<Trailer, LogError> {
    let at = file_len.saturating_sub(TRAILER_LEN);
    let bad = |why: &str| {
        Err(LogError::corrupt(
            path,
            at,
            format!("sealed segment trailer: {why}"),
        ))
    };
    if b.len() != TRAILER_LEN as usize || file_len < SEGMENT_HEADER_LEN + TRAILER_LEN {
        return bad("missing");
    }
    if b[..8] != TRAILER_MAGIC {
        return bad("bad magic");
    }
    if crc32fast::hash(&b[..TRL_OFF_CRC]) != le_u32(b, TRL_OFF_CRC) {
        return bad("CRC mismatch");
    }
    let version = le_u32(b, TRL_OFF_VERSION);
    if version != SEGMENT_VERSION {
        return Err(LogError::UnsupportedVersion {
            path: path.into(),
            offset: at + TRL_OFF_VERSION as u64,
            found: version,
        });
    }
    let t = Trailer {
        base: le_u64(b, TRL_OFF_BASE),
        next: le_u64(b, TRL_OFF_NEXT),
        data_end: le_u64(b, TRL_OFF_DATA_END),
        min_ts: le_u64(b, TRL_OFF_MIN_TS),
        max_ts: le_u64(b, TRL_OFF_MAX_TS),
    };
    if t.base != base || t.next <= t.base || t.data_end != at || t.min_ts > t.max_ts {
        return bad("inconsistent fields");
    }
    if hollow {
        if t.data_end != SEGMENT_HEADER_LEN {
            return bad("hollow segment holds data");
        }
        return Ok(t);
    }
    // Each record needs at least RECORD_OVERHEAD bytes; also keeps rel offsets within u32.
    if (t.next - t.base).saturating_mul(record::RECORD_OVERHEAD as u64)
        > t.data_end - SEGMENT_HEADER_LEN
    {
        return bad("record count does not fit the data");
    }
    Ok(t)
}

/// Result of scanning frames from the start of a segment's data.
#[derive(Debug)]
pub(crate) struct ScanResult {
    pub builder: IndexBuilder,
    pub idx: Vec<IdxEntry>,
    pub tix: Vec<TixEntry>,
    /// Why the scan stopped before `limit` (position is `builder.pos`), if it did.
    pub stopped: Option<FrameError>,
}

/// End of what recovery counts as a torn write after the last good record at `good` of an
/// active segment whose bytes are `data`: the last non-zero byte, or `good` if there is
/// none. Zeros after the records are space allocated ahead of the data (storage-format.md
/// §7), not a torn write. In a recycled segment ([`FLAG_RECYCLED`]) only the bytes before
/// the next page boundary after `good` count: the writer keeps those zero, and what lies
/// beyond may be left from the file's earlier segment.
pub(crate) fn torn_end(data: &[u8], good: u64, recycled: bool) -> u64 {
    let len = data.len() as u64;
    let from = good.min(len);
    let to = if recycled {
        (good / PAGE + 1).saturating_mul(PAGE).min(len)
    } else {
        len
    };
    data[from as usize..to as usize]
        .iter()
        .rposition(|&x| x != 0)
        .map_or(good, |i| from + i as u64 + 1)
}

/// Page size the recycled-segment rule ([`FLAG_RECYCLED`]) and the writer's page-cache
/// arithmetic count in (a smaller real page size only drops less cache).
pub const PAGE: u64 = 4096;

/// Scans and verifies frames in `data[SEGMENT_HEADER_LEN..limit]`, expecting dense offsets
/// from `base`. Stops at the first invalid frame. `UnsupportedVersion` on a CRC-valid frame
/// is returned as an error because that data must not be discarded.
pub(crate) fn scan_frames(
    path: &Path,
    data: &[u8],
    base: u64,
    limit: u64,
    interval: u32,
) -> Result<ScanResult, LogError> {
    let mut b = IndexBuilder::new(base, interval);
    let mut idx = Vec::new();
    let mut tix = Vec::new();
    let limit = limit.min(data.len() as u64);
    let mut stopped = None;
    while b.pos < limit {
        let buf = &data[b.pos as usize..limit as usize];
        match record::decode(buf) {
            Ok((h, _)) if h.offset == b.next => {
                b.push(h.frame_len(), h.timestamp_ms, &mut idx, &mut tix);
            }
            Ok(_) => {
                stopped = Some(FrameError::BadMagic);
                break;
            }
            Err(FrameError::UnsupportedVersion(v)) => {
                return Err(LogError::UnsupportedVersion {
                    path: path.into(),
                    offset: b.pos,
                    found: v as u32,
                })
            }
            Err(e) => {
                stopped = Some(e);
                break;
            }
        }
    }
    Ok(ScanResult {
        builder: b,
        idx,
        tix,
        stopped,
    })
}

/// Persisted index files of a sealed segment, mapped read-only.
pub(crate) struct SealedIndex {
    pub map: Mmap,
    pub count: usize,
    pub bytes: u64,
}

/// A sealed (immutable) segment.
pub(crate) struct Sealed {
    pub map: Mmap,
    pub trailer: Trailer,
    pub file_len: u64,
    pub idx: SealedIndex,
    pub tix: SealedIndex,
    /// The segment as it was while active, sealed by this process: readers that took it
    /// then still read the same file through it (`spare.rs` must not recycle the file
    /// while any do). Empty for a segment found sealed at open.
    pub was_active: std::sync::Weak<Segment>,
}

/// A hollow segment: only its offset range and timestamps remain.
pub(crate) struct Hollow {
    pub trailer: Trailer,
    pub file_len: u64,
}

/// What readers see of the active segment; updated by the writer after each durable batch.
#[derive(Debug, Default, Clone)]
pub(crate) struct ActiveState {
    /// Bytes of the file readers may read (header + published frames).
    pub len: u64,
    pub next: u64,
    pub min_ts: Option<u64>,
    pub max_ts: Option<u64>,
    pub idx: Vec<IdxEntry>,
    pub tix: Vec<TixEntry>,
}

/// The active (appendable) segment.
pub(crate) struct Active {
    pub file: Arc<dyn SegmentFile>,
    pub st: RwLock<ActiveState>,
}

pub(crate) enum Body {
    Sealed(Sealed),
    Hollow(Hollow),
    Active(Active),
}

/// One segment as seen by readers.
pub(crate) struct Segment {
    pub base: u64,
    pub path: PathBuf,
    pub body: Body,
}

/// Read-ahead buffer for the active segment (read with `pread`): one system call covers the
/// short forward walk of a lookup, or many frames of a scan. Unused for mapped segments.
pub(crate) struct Window {
    start: u64,
    buf: Vec<u8>,
    cap: usize,
}

impl Window {
    /// Window for point lookups (covers a default index interval plus a few frames).
    pub const LOOKUP: usize = 8 << 10;
    /// Window for sequential scans.
    pub const SCAN: usize = 256 << 10;

    pub fn new(cap: usize) -> Self {
        Window {
            start: 0,
            buf: Vec::new(),
            cap,
        }
    }

    fn get(&self, pos: u64, len: u64) -> Option<&[u8]> {
        let from = pos.checked_sub(self.start)? as usize;
        let to = from.checked_add(len as usize)?;
        self.buf.get(from..to)
    }
}

/// Where a lookup starts scanning: position, offset of the frame there, and read limit.
struct Start {
    pos: u64,
    offset: u64,
    limit: u64,
}

impl Segment {
    pub fn next(&self) -> u64 {
        match &self.body {
            Body::Sealed(s) => s.trailer.next,
            Body::Hollow(h) => h.trailer.next,
            Body::Active(a) => a.st.read().next,
        }
    }

    /// Immutable: sealed with its records, or hollow.
    pub fn is_sealed(&self) -> bool {
        !matches!(self.body, Body::Active(_))
    }

    pub fn is_hollow(&self) -> bool {
        matches!(self.body, Body::Hollow(_))
    }

    /// Whether a reader other than the caller's one reference may still read this segment's
    /// file: through this segment, or through the active segment it was before its seal.
    pub fn is_shared(self: &Arc<Self>) -> bool {
        Arc::strong_count(self) > 1
            || matches!(&self.body, Body::Sealed(s) if s.was_active.strong_count() > 0)
    }

    /// Drops this process's mapping of a sealed segment's pages after a full read (a replay
    /// or a scan): they stay in the page cache for the kernel to keep or reclaim, but stop
    /// counting towards the broker's resident memory. The next read faults them back in.
    pub fn release_pages(&self) {
        if let Body::Sealed(s) = &self.body {
            // SAFETY: a read-only shared mapping of a file that never changes once sealed:
            // MADV_DONTNEED only unmaps its pages, and a later access reads the same bytes
            // back from the file. Failure is harmless (the pages stay mapped).
            let _ = unsafe { s.map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }

    /// Bytes on disk attributable to this segment (data plus index files).
    pub fn bytes(&self) -> u64 {
        match &self.body {
            Body::Sealed(s) => s.file_len + s.idx.bytes + s.tix.bytes,
            Body::Hollow(h) => h.file_len,
            Body::Active(a) => a.st.read().len,
        }
    }

    pub fn info(&self) -> SegmentInfo {
        match &self.body {
            Body::Sealed(s) => SegmentInfo {
                base_offset: self.base,
                next_offset: s.trailer.next,
                bytes: self.bytes(),
                min_timestamp_ms: Some(s.trailer.min_ts),
                max_timestamp_ms: Some(s.trailer.max_ts),
                sealed: true,
                hollow: false,
                path: self.path.clone(),
            },
            Body::Hollow(h) => SegmentInfo {
                base_offset: self.base,
                next_offset: h.trailer.next,
                bytes: h.file_len,
                min_timestamp_ms: Some(h.trailer.min_ts),
                max_timestamp_ms: Some(h.trailer.max_ts),
                sealed: true,
                hollow: true,
                path: self.path.clone(),
            },
            Body::Active(a) => {
                let st = a.st.read();
                SegmentInfo {
                    base_offset: self.base,
                    next_offset: st.next,
                    bytes: st.len,
                    min_timestamp_ms: st.min_ts,
                    max_timestamp_ms: st.max_ts,
                    sealed: false,
                    hollow: false,
                    path: self.path.clone(),
                }
            }
        }
    }

    /// Newest timestamp in the segment (None if empty); for a hollow segment, that of the
    /// records it held, so age-based retention still drops it in turn.
    pub fn max_ts(&self) -> Option<u64> {
        match &self.body {
            Body::Sealed(s) => Some(s.trailer.max_ts),
            Body::Hollow(h) => Some(h.trailer.max_ts),
            Body::Active(a) => a.st.read().max_ts,
        }
    }

    fn corrupt(&self, pos: u64, why: impl Into<String>) -> LogError {
        LogError::corrupt(&self.path, pos, why)
    }

    /// Index-assisted start point for reaching `offset` (which must be < next()).
    fn start_for(&self, offset: u64) -> Start {
        let rel = (offset - self.base) as u32;
        match &self.body {
            Body::Sealed(s) => {
                let m = &s.idx.map[..];
                let e = index::floor_offset(s.idx.count, |i| index::idx_entry(m, i), rel);
                let (r, p) = e.unwrap_or((0, SEGMENT_HEADER_LEN as u32));
                Start {
                    pos: p as u64,
                    offset: self.base + r as u64,
                    limit: s.trailer.data_end,
                }
            }
            // `find` answers for hollow segments before asking for a start.
            Body::Hollow(_) => Start {
                pos: SEGMENT_HEADER_LEN,
                offset: self.base,
                limit: SEGMENT_HEADER_LEN,
            },
            Body::Active(a) => {
                let st = a.st.read();
                let e = index::floor_offset(st.idx.len(), |i| st.idx[i], rel);
                let (r, p) = e.unwrap_or((0, SEGMENT_HEADER_LEN as u32));
                Start {
                    pos: p as u64,
                    offset: self.base + r as u64,
                    limit: st.len,
                }
            }
        }
    }

    /// Bytes `[pos, pos+len)`, borrowed from the map for sealed segments.
    fn bytes_at(&self, pos: u64, len: u64, limit: u64) -> Result<Cow<'_, [u8]>, LogError> {
        let end = pos.checked_add(len).filter(|&e| e <= limit);
        let Some(end) = end else {
            return Err(self.corrupt(pos, "record extends past the end of the segment data"));
        };
        match &self.body {
            Body::Sealed(s) => Ok(Cow::Borrowed(&s.map[pos as usize..end as usize])),
            Body::Hollow(_) => Err(self.corrupt(pos, "read inside a hollow segment")),
            Body::Active(a) => {
                let mut buf = vec![0u8; len as usize];
                a.file
                    .read_at(&mut buf, pos)
                    .map_err(|e| LogError::io(&self.path, e))?;
                Ok(Cow::Owned(buf))
            }
        }
    }

    /// Fills `win` from `pos` (active segment only).
    fn fill(&self, win: &mut Window, pos: u64, limit: u64) -> Result<(), LogError> {
        if let Body::Active(a) = &self.body {
            let n = (limit.saturating_sub(pos)).min(win.cap as u64) as usize;
            win.buf.resize(n, 0);
            win.start = pos;
            if let Err(e) = a.file.read_at(&mut win.buf, pos) {
                win.buf.clear();
                return Err(LogError::io(&self.path, e));
            }
        }
        Ok(())
    }

    fn header_at(&self, pos: u64, limit: u64, win: &mut Window) -> Result<FrameHeader, LogError> {
        let hl = RECORD_HEADER_LEN as u64;
        if matches!(self.body, Body::Active(_)) && pos + hl <= limit {
            if win.get(pos, hl).is_none() {
                self.fill(win, pos, limit)?;
            }
            if let Some(b) = win.get(pos, hl) {
                return record::parse_header(b).map_err(|e| self.corrupt(pos, e.describe()));
            }
        }
        let b = self.bytes_at(pos, hl, limit)?;
        record::parse_header(&b).map_err(|e| self.corrupt(pos, e.describe()))
    }

    /// Position of the frame holding `offset`, or None if not (yet) in this segment.
    /// Returns the position and the read limit.
    pub fn find(&self, offset: u64, win: &mut Window) -> Result<Option<(u64, u64)>, LogError> {
        if offset < self.base || offset >= self.next() || self.is_hollow() {
            return Ok(None);
        }
        let Start {
            mut pos,
            offset: mut cur,
            limit,
        } = self.start_for(offset);
        while cur < offset {
            let h = self.header_at(pos, limit, win)?;
            if h.offset != cur {
                return Err(self.corrupt(pos, format!("expected offset {cur}, found {}", h.offset)));
            }
            pos += h.frame_len();
            cur += 1;
        }
        Ok(Some((pos, limit)))
    }

    /// Reads and verifies the frame at `pos`, which must hold `offset`.
    pub fn frame_at(
        &self,
        pos: u64,
        limit: u64,
        offset: u64,
        win: &mut Window,
    ) -> Result<(FrameHeader, Cow<'_, [u8]>), LogError> {
        let h = self.header_at(pos, limit, win)?;
        let frame = match win.get(pos, h.frame_len()) {
            Some(b) if matches!(self.body, Body::Active(_)) && pos + h.frame_len() <= limit => {
                Cow::Owned(b.to_vec())
            }
            _ => self.bytes_at(pos, h.frame_len(), limit)?,
        };
        let (h, _) = record::decode(&frame).map_err(|e| self.corrupt(pos, e.describe()))?;
        if h.offset != offset {
            return Err(self.corrupt(pos, format!("expected offset {offset}, found {}", h.offset)));
        }
        let payload = match frame {
            Cow::Borrowed(b) => {
                Cow::Borrowed(&b[RECORD_HEADER_LEN..b.len() - record::RECORD_CRC_LEN])
            }
            Cow::Owned(mut v) => {
                v.truncate(v.len() - record::RECORD_CRC_LEN);
                v.drain(..RECORD_HEADER_LEN);
                Cow::Owned(v)
            }
        };
        Ok((h, payload))
    }

    /// First offset in this segment whose timestamp is >= `ts`, if any.
    pub fn offset_for_timestamp(&self, ts: u64) -> Result<Option<u64>, LogError> {
        let (start_rel, next) = match &self.body {
            Body::Sealed(s) => {
                let m = &s.tix.map[..];
                let e = index::last_below(s.tix.count, |i| index::tix_entry(m, i), ts);
                (e.map_or(0, |(_, r)| r as u64 + 1), s.trailer.next)
            }
            Body::Hollow(_) => return Ok(None),
            Body::Active(a) => {
                let st = a.st.read();
                let e = index::last_below(st.tix.len(), |i| st.tix[i], ts);
                (e.map_or(0, |(_, r)| r as u64 + 1), st.next)
            }
        };
        let mut off = self.base + start_rel;
        let mut win = Window::new(Window::LOOKUP);
        let Some((mut pos, limit)) = self.find(off, &mut win)? else {
            return Ok(None);
        };
        while off < next {
            let h = self.header_at(pos, limit, &mut win)?;
            if h.offset != off {
                return Err(self.corrupt(pos, format!("expected offset {off}, found {}", h.offset)));
            }
            if h.timestamp_ms >= ts {
                return Ok(Some(off));
            }
            pos += h.frame_len();
            off += 1;
        }
        Ok(None)
    }
}

/// Maps a whole file read-only. Returns None for empty files (mmap of length 0 fails).
pub(crate) fn map_file(path: &Path) -> Result<Option<(Mmap, u64)>, LogError> {
    let f = File::open(path).map_err(|e| LogError::io(path, e))?;
    let len = f.metadata().map_err(|e| LogError::io(path, e))?.len();
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: the mapping covers exactly the current file length. Files mapped by the log are
    // either immutable (sealed segments and their indexes, only ever unlinked, which keeps the
    // pages valid) or the active segment during recovery, when the directory lock guarantees
    // no one else is writing and we do not truncate while the map is alive.
    let map = unsafe { Mmap::map(&f) }.map_err(|e| LogError::io(path, e))?;
    if map.len() as u64 != len {
        return Err(LogError::corrupt(
            path,
            0,
            "file changed size while mapping",
        ));
    }
    Ok(Some((map, len)))
}
