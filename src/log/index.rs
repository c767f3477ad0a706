//! Sparse per-segment indexes: the offset index (`.idx`, offset → file position) and the
//! time index (`.tix`, max-timestamp-so-far → offset).
//!
//! Index points: before appending a record, if at least `index_interval_bytes` of frames were
//! appended to the segment since the previous index point (and the segment is not empty), an
//! index point is taken:
//! * `.idx` gets `(rel_offset(record), position(record))`;
//! * `.tix` gets `(M, rel_offset(record) - 1)` where `M` is the maximum timestamp of all
//!   earlier records of the segment. If `M` equals the timestamp of the last `.tix` entry,
//!   that entry's offset is moved forward instead ("upsert"), so `.tix` timestamps are strictly
//!   increasing. Sealing adds a final point `(segment max, last rel_offset)`.
//!
//! Invariant relied on by lookups: for a `.tix` entry `(T, o)`, every record with relative
//! offset ≤ `o` has timestamp ≤ `T`; consecutive points are at most one index interval (plus
//! one record) apart, so every lookup scans at most about one interval of frames.
//!
//! Only sealed segments have persisted index files; they are written whole and atomically at
//! seal time and never modified. The active segment's index lives in memory and is rebuilt by
//! the recovery scan. A crash can leave a missing index (rename not yet durable), which
//! recovery rebuilds from the sealed segment.

use super::segment::SEGMENT_HEADER_LEN;

/// Magic of an offset index file.
pub const IDX_MAGIC: [u8; 4] = *b"MPIX";
/// Magic of a time index file.
pub const TIX_MAGIC: [u8; 4] = *b"MPTX";
/// Version of both index file formats.
pub const INDEX_VERSION: u8 = 1;
/// Length of the index file header.
pub const INDEX_HEADER_LEN: usize = 32;
/// Length of one `.idx` entry: rel_offset u32, position u32.
pub const IDX_ENTRY_LEN: usize = 8;
/// Length of one `.tix` entry: max timestamp u64, rel_offset u32.
pub const TIX_ENTRY_LEN: usize = 12;

/// Header field: base offset of the segment.
pub const IX_OFF_BASE: usize = 8;
/// Header field: data end (trailer position) of the segment the index describes.
pub const IX_OFF_DATA_END: usize = 16;
/// Header field: number of entries.
pub const IX_OFF_COUNT: usize = 24;
/// Header field: CRC32 over header bytes [0, 28) followed by all entries.
pub const IX_OFF_CRC: usize = 28;

/// `(rel_offset, position)`
pub(crate) type IdxEntry = (u32, u32);
/// `(max_timestamp_so_far, rel_offset)`
pub(crate) type TixEntry = (u64, u32);

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

fn encode_file(magic: [u8; 4], base: u64, data_end: u64, count: usize, entries: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(INDEX_HEADER_LEN + entries.len());
    out.extend_from_slice(&magic);
    out.push(INDEX_VERSION);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&base.to_le_bytes());
    out.extend_from_slice(&data_end.to_le_bytes());
    out.extend_from_slice(&(count as u32).to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&out[..IX_OFF_CRC]);
    h.update(entries);
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(entries);
    out
}

/// Serialises a complete `.idx` file.
pub(crate) fn encode_idx(base: u64, data_end: u64, entries: &[IdxEntry]) -> Vec<u8> {
    let mut e = Vec::with_capacity(entries.len() * IDX_ENTRY_LEN);
    for (r, p) in entries {
        e.extend_from_slice(&r.to_le_bytes());
        e.extend_from_slice(&p.to_le_bytes());
    }
    encode_file(IDX_MAGIC, base, data_end, entries.len(), &e)
}

/// Serialises a complete `.tix` file.
pub(crate) fn encode_tix(base: u64, data_end: u64, entries: &[TixEntry]) -> Vec<u8> {
    let mut e = Vec::with_capacity(entries.len() * TIX_ENTRY_LEN);
    for (t, r) in entries {
        e.extend_from_slice(&t.to_le_bytes());
        e.extend_from_slice(&r.to_le_bytes());
    }
    encode_file(TIX_MAGIC, base, data_end, entries.len(), &e)
}

/// Which of the two index files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexKind {
    Offset,
    Time,
}

impl IndexKind {
    fn magic(self) -> [u8; 4] {
        match self {
            IndexKind::Offset => IDX_MAGIC,
            IndexKind::Time => TIX_MAGIC,
        }
    }
    pub fn entry_len(self) -> usize {
        match self {
            IndexKind::Offset => IDX_ENTRY_LEN,
            IndexKind::Time => TIX_ENTRY_LEN,
        }
    }
}

/// Reads entry `i` of a validated `.idx` byte image.
pub(crate) fn idx_entry(file: &[u8], i: usize) -> IdxEntry {
    let at = INDEX_HEADER_LEN + i * IDX_ENTRY_LEN;
    (le_u32(file, at), le_u32(file, at + 4))
}

/// Reads entry `i` of a validated `.tix` byte image.
pub(crate) fn tix_entry(file: &[u8], i: usize) -> TixEntry {
    let at = INDEX_HEADER_LEN + i * TIX_ENTRY_LEN;
    (le_u64(file, at), le_u32(file, at + 8))
}

/// Checks an index file image against the segment it claims to describe; returns the entry
/// count. Any error means "rebuild it". Entries are checked for monotonicity and bounds so
/// that lookups on a validated index can never point outside the segment's data.
pub(crate) fn validate(
    kind: IndexKind,
    file: &[u8],
    base: u64,
    data_end: u64,
    record_count: u64,
) -> Result<usize, String> {
    if file.len() < INDEX_HEADER_LEN {
        return Err("index shorter than its header".into());
    }
    if file[..4] != kind.magic() {
        return Err("bad index magic".into());
    }
    if file[4] != INDEX_VERSION {
        return Err(format!("unsupported index version {}", file[4]));
    }
    if le_u64(file, IX_OFF_BASE) != base || le_u64(file, IX_OFF_DATA_END) != data_end {
        return Err("index describes a different segment".into());
    }
    let count = le_u32(file, IX_OFF_COUNT) as usize;
    let body = &file[INDEX_HEADER_LEN..];
    if body.len() != count.saturating_mul(kind.entry_len()) {
        return Err("index length does not match its entry count".into());
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&file[..IX_OFF_CRC]);
    h.update(body);
    if h.finalize() != le_u32(file, IX_OFF_CRC) {
        return Err("index CRC mismatch".into());
    }
    match kind {
        IndexKind::Offset => {
            let mut prev: Option<IdxEntry> = None;
            for i in 0..count {
                let (r, p) = idx_entry(file, i);
                if (r as u64) >= record_count
                    || (p as u64) < SEGMENT_HEADER_LEN
                    || (p as u64) >= data_end
                    || prev.is_some_and(|(pr, pp)| r <= pr || p <= pp)
                {
                    return Err(format!("offset index entry {i} out of order or bounds"));
                }
                prev = Some((r, p));
            }
        }
        IndexKind::Time => {
            let mut prev: Option<TixEntry> = None;
            for i in 0..count {
                let (t, r) = tix_entry(file, i);
                if (r as u64) >= record_count || prev.is_some_and(|(pt, pr)| t <= pt || r < pr) {
                    return Err(format!("time index entry {i} out of order or bounds"));
                }
                prev = Some((t, r));
            }
        }
    }
    Ok(count)
}

/// Number of entries `i` in `0..n` for which `pred(i)` holds, assuming `pred` is true for a
/// prefix (binary search).
pub(crate) fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Last offset-index entry with `rel <= target`.
pub(crate) fn floor_offset(
    n: usize,
    get: impl Fn(usize) -> IdxEntry,
    target: u32,
) -> Option<IdxEntry> {
    let k = partition_point(n, |i| get(i).0 <= target);
    (k > 0).then(|| get(k - 1))
}

/// Last time-index entry with `T < ts` (records up to its offset are all older than `ts`).
pub(crate) fn last_below(n: usize, get: impl Fn(usize) -> TixEntry, ts: u64) -> Option<TixEntry> {
    let k = partition_point(n, |i| get(i).0 < ts);
    (k > 0).then(|| get(k - 1))
}

/// Inserts a time-index point, moving the last entry forward if it has the same timestamp.
pub(crate) fn upsert_tix(v: &mut Vec<TixEntry>, e: TixEntry) {
    if let Some(last) = v.last_mut() {
        if last.0 >= e.0 {
            last.1 = last.1.max(e.1);
            return;
        }
    }
    v.push(e);
}

/// Running state of one segment's index construction; shared by the appender, the recovery
/// scan and index rebuilds so that all three produce identical indexes.
#[derive(Debug, Clone)]
pub(crate) struct IndexBuilder {
    pub base: u64,
    pub interval: u64,
    /// End of the data written so far (next frame position).
    pub pos: u64,
    /// Offset the next record gets.
    pub next: u64,
    since: u64,
    pub min_ts: Option<u64>,
    pub max_ts: Option<u64>,
}

impl IndexBuilder {
    pub fn new(base: u64, interval: u32) -> Self {
        IndexBuilder {
            base,
            interval: interval as u64,
            pos: SEGMENT_HEADER_LEN,
            next: base,
            since: 0,
            min_ts: None,
            max_ts: None,
        }
    }

    pub fn records(&self) -> u64 {
        self.next - self.base
    }

    /// Accounts for one frame appended at `self.pos`, emitting index points into the vectors.
    pub fn push(
        &mut self,
        frame_len: u64,
        ts: u64,
        idx: &mut Vec<IdxEntry>,
        tix: &mut Vec<TixEntry>,
    ) {
        if self.next > self.base && self.since >= self.interval {
            let rel = (self.next - self.base) as u32;
            idx.push((rel, self.pos as u32));
            upsert_tix(tix, (self.max_ts.unwrap_or(0), rel - 1));
            self.since = 0;
        }
        self.since += frame_len;
        self.min_ts = Some(self.min_ts.map_or(ts, |m| m.min(ts)));
        self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
        self.next += 1;
        self.pos += frame_len;
    }

    /// The final time-index point written at seal time.
    pub fn final_tix(&self) -> Option<TixEntry> {
        let m = self.max_ts?;
        Some((m, (self.next - self.base - 1) as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_validate_roundtrip_and_reject_tampering() {
        let idx = vec![(3u32, 100u32), (7, 300)];
        let f = encode_idx(10, 500, &idx);
        assert_eq!(validate(IndexKind::Offset, &f, 10, 500, 9), Ok(2));
        assert_eq!(idx_entry(&f, 1), (7, 300));
        assert!(validate(IndexKind::Offset, &f, 11, 500, 9).is_err());
        assert!(validate(IndexKind::Time, &f, 10, 500, 9).is_err());
        for i in 0..f.len() {
            let mut g = f.clone();
            g[i] ^= 0x10;
            assert!(
                validate(IndexKind::Offset, &g, 10, 500, 9).is_err(),
                "byte {i}"
            );
        }
        assert!(validate(IndexKind::Offset, &f[..f.len() - 1], 10, 500, 9).is_err());
        let t = encode_tix(10, 500, &[(5, 1), (9, 4)]);
        assert_eq!(validate(IndexKind::Time, &t, 10, 500, 9), Ok(2));
        assert_eq!(last_below(2, |i| tix_entry(&t, i), 9), Some((5, 1)));
        assert_eq!(last_below(2, |i| tix_entry(&t, i), 5), None);
        assert_eq!(floor_offset(2, |i| idx_entry(&f, i), 6), Some((3, 100)));
        assert_eq!(floor_offset(2, |i| idx_entry(&f, i), 2), None);
    }
}
