//! Opening a log directory: lock, clean up crash leftovers, load sealed segments without
//! scanning them, scan and cut the active segment's tail, rebuild missing indexes.
//!
//! Algorithm (see `storage-format.md`, "Recovery"):
//! 1. Delete `*.tmp` files (unfinished atomic writes / segment creations).
//! 2. List `*.seg` files in base-offset order. For each: check the header (magic, CRC,
//!    version, base offset matches the name) and that it starts where the previous one ended.
//! 3. Sealed segment: check the trailer; map data; map and validate `.idx`/`.tix` (CRC,
//!    bounds, monotonicity). If an index is missing or invalid, scan the segment (every CRC),
//!    require it to match the trailer exactly and rewrite both indexes.
//! 4. Unsealed segment: must be the newest (else corruption). Scan frames from the header
//!    and stop at the first frame that is incomplete, fails its CRC, or has an unexpected
//!    offset; truncate the file there, fdatasync, report and `warn!`.
//! 5. If the newest segment is sealed (crash during a roll) or there is none, create a new
//!    active segment at the next offset. Delete index files that belong to no sealed segment.
//!
//! Corruption in a sealed segment is never silently skipped: it surfaces as
//! `LogError::Corrupt` with the path and byte offset, at open (if an index must be rebuilt)
//! or at read time (every returned record's CRC is checked).

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;

use super::error::LogError;
use super::fsutil::{self, SegmentIo};
use super::group::{self, Writer};
use super::index::{self, IndexKind};
use super::segment::{self, Active, ActiveState, Body, Sealed, SealedIndex, Segment, Trailer};
use super::spare::{self, Spares};
use super::{LogOptions, RecoveryReport};

pub(crate) struct Opened {
    pub segs: Vec<Arc<Segment>>,
    pub writer: Writer,
    pub report: RecoveryReport,
    pub spares: Spares,
}

fn read_exact_at(f: &File, path: &Path, len: usize, pos: u64) -> Result<Vec<u8>, LogError> {
    let mut b = vec![0u8; len];
    f.read_exact_at(&mut b, pos)
        .map_err(|e| LogError::io(path, e))?;
    Ok(b)
}

fn try_load_index(path: &Path, kind: IndexKind, t: &Trailer) -> Option<SealedIndex> {
    let (map, bytes) = segment::map_file(path).ok()??;
    let count = index::validate(kind, &map, t.base, t.data_end, t.next - t.base).ok()?;
    Some(SealedIndex { map, count, bytes })
}

/// Loads a sealed segment, rebuilding its indexes if needed (`rebuilt` counts rebuilds).
#[allow(clippy::too_many_arguments)]
pub(crate) fn load_sealed(
    io: &dyn SegmentIo,
    dir: &Path,
    path: &Path,
    base: u64,
    trailer: Trailer,
    file_len: u64,
    interval: u32,
    rebuilt: &mut usize,
) -> Result<Segment, LogError> {
    let Some((map, len)) = segment::map_file(path)? else {
        return Err(LogError::corrupt(path, 0, "sealed segment is empty"));
    };
    if len != file_len {
        return Err(LogError::corrupt(path, 0, "sealed segment changed size"));
    }
    let idx_path = dir.join(segment::idx_name(base));
    let tix_path = dir.join(segment::tix_name(base));
    let loaded = (
        try_load_index(&idx_path, IndexKind::Offset, &trailer),
        try_load_index(&tix_path, IndexKind::Time, &trailer),
    );
    let (idx, tix) = match loaded {
        (Some(i), Some(t)) => (i, t),
        _ => {
            tracing::warn!(segment = %path.display(), "index missing or invalid; rebuilding from the segment");
            let scan = segment::scan_frames(path, &map, base, trailer.data_end, interval)?;
            if scan.stopped.is_some()
                || scan.builder.pos != trailer.data_end
                || scan.builder.next != trailer.next
            {
                let why = scan.stopped.map_or_else(
                    || "record count/length mismatch".to_string(),
                    |e| e.describe(),
                );
                return Err(LogError::corrupt(
                    path,
                    scan.builder.pos,
                    format!("sealed segment does not match its trailer: {why}"),
                ));
            }
            let mut tix = scan.tix;
            if let Some(f) = scan.builder.final_tix() {
                index::upsert_tix(&mut tix, f);
            }
            let idx_name = segment::idx_name(base);
            let tix_name = segment::tix_name(base);
            fsutil::atomic_write(
                io,
                dir,
                &idx_name,
                &index::encode_idx(base, trailer.data_end, &scan.idx),
                false,
            )?;
            fsutil::atomic_write(
                io,
                dir,
                &tix_name,
                &index::encode_tix(base, trailer.data_end, &tix),
                false,
            )?;
            fsutil::fsync_dir(dir)?;
            *rebuilt += 1;
            let i = try_load_index(&idx_path, IndexKind::Offset, &trailer).ok_or_else(|| {
                LogError::corrupt(&idx_path, 0, "rebuilt index does not validate")
            })?;
            let t = try_load_index(&tix_path, IndexKind::Time, &trailer).ok_or_else(|| {
                LogError::corrupt(&tix_path, 0, "rebuilt index does not validate")
            })?;
            (i, t)
        }
    };
    Ok(Segment {
        base,
        path: path.to_path_buf(),
        body: Body::Sealed(Sealed {
            map,
            trailer,
            file_len,
            idx,
            tix,
            was_active: std::sync::Weak::new(),
        }),
    })
}

pub(crate) fn recover(
    dir: &Path,
    opts: &LogOptions,
    io: &Arc<dyn SegmentIo>,
) -> Result<Opened, LogError> {
    let mut report = RecoveryReport::default();
    let mut bases = BTreeSet::new();
    let mut index_files = Vec::new();
    let mut spare_files = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| LogError::io(dir, e))?;
    let mut dir_dirty = false;
    for ent in rd {
        let ent = ent.map_err(|e| LogError::io(dir, e))?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(fsutil::TMP_SUFFIX) {
            fsutil::remove_if_exists(&ent.path())?;
            report.removed_temp_files += 1;
            dir_dirty = true;
        } else if let Some(b) = segment::parse_name(name, "seg") {
            bases.insert(b);
        } else if segment::parse_name(name, spare::SPARE_EXT).is_some() {
            spare_files.push(ent.path());
        } else if let Some(b) =
            segment::parse_name(name, "idx").or_else(|| segment::parse_name(name, "tix"))
        {
            index_files.push((b, ent.path()));
        }
    }

    let mut segs: Vec<Arc<Segment>> = Vec::new();
    let mut prev_next: Option<u64> = None;
    let mut writer = None;
    let n = bases.len();
    for (i, &base) in bases.iter().enumerate() {
        let path = dir.join(segment::seg_name(base));
        let f = File::open(&path).map_err(|e| LogError::io(&path, e))?;
        let len = f.metadata().map_err(|e| LogError::io(&path, e))?.len();
        let hlen = len.min(segment::SEGMENT_HEADER_LEN) as usize;
        let hb = read_exact_at(&f, &path, hlen, 0)?;
        let hdr = segment::parse_header(&path, &hb)?;
        if hdr.base != base {
            return Err(LogError::corrupt(
                &path,
                segment::HDR_OFF_BASE as u64,
                "base offset does not match file name",
            ));
        }
        if let Some(p) = prev_next {
            if p != base {
                return Err(LogError::corrupt(
                    &path,
                    0,
                    format!("segment starts at offset {base} but the previous one ends at {p}"),
                ));
            }
        }
        if hdr.sealed {
            let tpos = len.saturating_sub(segment::TRAILER_LEN);
            let tb = if len >= segment::SEGMENT_HEADER_LEN + segment::TRAILER_LEN {
                read_exact_at(&f, &path, segment::TRAILER_LEN as usize, tpos)?
            } else {
                Vec::new()
            };
            let trailer = segment::parse_trailer(&path, &tb, len, base, hdr.hollow)?;
            prev_next = Some(trailer.next);
            if hdr.hollow {
                segs.push(Arc::new(Segment {
                    base,
                    path,
                    body: Body::Hollow(segment::Hollow {
                        trailer,
                        file_len: len,
                    }),
                }));
                continue;
            }
            let seg = load_sealed(
                io.as_ref(),
                dir,
                &path,
                base,
                trailer,
                len,
                opts.index_interval_bytes,
                &mut report.rebuilt_indexes,
            )?;
            segs.push(Arc::new(seg));
        } else {
            if i + 1 != n {
                return Err(LogError::corrupt(
                    &path,
                    segment::HDR_OFF_SEAL as u64,
                    "unsealed segment is not the newest segment",
                ));
            }
            drop(f);
            if hdr.torn_seal {
                tracing::warn!(segment = %path.display(), "resetting an interrupted seal word");
                let file = io.open(&path, false).map_err(|e| LogError::io(&path, e))?;
                file.write_at(
                    &segment::SEAL_WORD_ACTIVE.to_le_bytes(),
                    segment::HDR_OFF_SEAL as u64,
                )
                .and_then(|()| file.sync_data())
                .map_err(|e| LogError::io(&path, e))?;
            }
            let (seg, w) = recover_active(&path, &hdr, opts, io, &mut report)?;
            prev_next = Some(w.cur.next);
            segs.push(seg);
            writer = Some(w);
        }
    }
    let writer = match writer {
        Some(w) => w,
        None => {
            let base = prev_next.unwrap_or(0);
            let (seg, file, created) = group::create_segment(dir, io.as_ref(), base)?;
            segs.push(seg.clone());
            report.created_segment = true;
            dir_dirty = true;
            Writer::new(
                seg,
                file,
                created,
                index::IndexBuilder::new(base, opts.index_interval_bytes),
            )
        }
    };
    // Index files belong to sealed segments with records; others' are leftovers (of a
    // crash while sealing, or while hollowing a segment).
    let sealed: BTreeSet<u64> = segs
        .iter()
        .filter(|s| matches!(s.body, Body::Sealed(_)))
        .map(|s| s.base)
        .collect();
    for (b, p) in index_files {
        if !sealed.contains(&b) {
            fsutil::remove_if_exists(&p)?;
            dir_dirty = true;
        }
    }
    let (spares, spares_changed) = Spares::recover(spare_files);
    if dir_dirty || spares_changed {
        fsutil::fsync_dir(dir)?;
    }
    report.segments = segs.len();
    report.start_offset = segs.first().map_or(0, |s| s.base);
    report.next_offset = writer.cur.next;
    Ok(Opened {
        segs,
        writer,
        report,
        spares,
    })
}

fn recover_active(
    path: &Path,
    hdr: &segment::SegHeader,
    opts: &LogOptions,
    io: &Arc<dyn SegmentIo>,
    report: &mut RecoveryReport,
) -> Result<(Arc<Segment>, Writer), LogError> {
    let base = hdr.base;
    let (scan, len, torn_end) = {
        let Some((map, len)) = segment::map_file(path)? else {
            return Err(LogError::corrupt(path, 0, "segment is empty"));
        };
        let scan = segment::scan_frames(path, &map, base, len, opts.index_interval_bytes)?;
        let torn_end = segment::torn_end(&map, scan.builder.pos, hdr.recycled);
        (scan, len, torn_end)
    };
    let good = scan.builder.pos;
    let file = io.open(path, false).map_err(|e| LogError::io(path, e))?;
    // Zeros after the last record are space the writer allocated ahead (storage-format.md
    // §7), not a torn write: they are kept for the appends to come, and not reported. In a
    // recycled segment, the bytes left from its earlier segment are cut without a report:
    // a torn write of an earlier life could otherwise pass for records when appends reuse
    // its offsets at the same positions.
    let torn = torn_end - good;
    let cut = (torn > 0 || hdr.recycled) && len > good;
    if cut {
        file.set_len(good)
            .and_then(|()| file.sync_data())
            .map_err(|e| LogError::io(path, e))?;
    }
    if torn > 0 {
        let why = scan
            .stopped
            .map_or_else(|| "garbage".to_string(), |e| e.describe());
        tracing::warn!(
            segment = %path.display(),
            at = good,
            dropped_bytes = torn,
            reason = %why,
            "cutting torn tail of the active segment"
        );
        report.truncated_bytes += torn;
        report.truncated_at = Some((path.to_path_buf(), good));
    }
    let b = scan.builder;
    let seg = Arc::new(Segment {
        base,
        path: path.to_path_buf(),
        body: Body::Active(Active {
            file: file.clone(),
            st: RwLock::new(ActiveState {
                len: good,
                next: b.next,
                min_ts: b.min_ts,
                max_ts: b.max_ts,
                idx: scan.idx,
                tix: scan.tix,
            }),
        }),
    });
    let mut w = Writer::new(seg.clone(), file, hdr.created_ms, b);
    w.recycled = hdr.recycled;
    if !cut {
        w.allocated = len;
    }
    Ok((seg, w))
}
