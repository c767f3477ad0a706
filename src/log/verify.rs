//! Offline verification of a log directory (`millpond verify`).
//!
//! Reads every segment completely, checks every frame's CRC and offset, the headers,
//! trailers, segment continuity, both index files of sealed segments (they must equal what a
//! rebuild would produce, or be absent) and the checkpoint. Never modifies anything and takes
//! no lock, so it can run against a live log (the active tail may then look torn).

use std::collections::BTreeSet;
use std::path::Path;

use super::checkpoint;
use super::error::LogError;
use super::index;
use super::segment;

/// Findings of [`verify_dir`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub segments: usize,
    pub sealed_segments: usize,
    /// Sealed segments whose records were all dropped (counted in `sealed_segments` too).
    pub hollow_segments: usize,
    pub records: u64,
    pub start_offset: u64,
    pub next_offset: u64,
    pub bytes: u64,
    /// `upto` of a valid checkpoint.
    pub checkpoint_upto: Option<u64>,
    /// Bytes after the last valid record of the active segment (recovery would cut them).
    pub torn_tail_bytes: u64,
    /// Missing index files (recovery would rebuild them); not corruption.
    pub missing_indexes: usize,
    /// Corruption found, each naming the file and byte offset. Empty means the log is sound.
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// True if no problems were found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} segments ({} sealed, {} hollow), {} records, offsets {}..{}, {} bytes",
            self.segments,
            self.sealed_segments,
            self.hollow_segments,
            self.records,
            self.start_offset,
            self.next_offset,
            self.bytes
        )?;
        if let Some(u) = self.checkpoint_upto {
            write!(f, ", checkpoint upto {u}")?;
        }
        if self.torn_tail_bytes > 0 {
            write!(
                f,
                ", {} torn tail bytes (recovery cuts them)",
                self.torn_tail_bytes
            )?;
        }
        if self.missing_indexes > 0 {
            write!(
                f,
                ", {} missing index files (recovery rebuilds them)",
                self.missing_indexes
            )?;
        }
        if self.problems.is_empty() {
            write!(f, ": OK")
        } else {
            write!(f, ": {} PROBLEMS", self.problems.len())?;
            for p in &self.problems {
                write!(f, "\n  {p}")?;
            }
            Ok(())
        }
    }
}

/// Checks a log directory without modifying it. `Err` only if the directory cannot be read;
/// corruption is reported in [`VerifyReport::problems`].
pub fn verify_dir(dir: &Path) -> Result<VerifyReport, LogError> {
    let mut r = VerifyReport::default();
    let mut bases = BTreeSet::new();
    for ent in std::fs::read_dir(dir).map_err(|e| LogError::io(dir, e))? {
        let ent = ent.map_err(|e| LogError::io(dir, e))?;
        if let Some(b) = ent
            .file_name()
            .to_str()
            .and_then(|n| segment::parse_name(n, "seg"))
        {
            bases.insert(b);
        }
    }
    let n = bases.len();
    let mut prev_next: Option<u64> = None;
    for (i, &base) in bases.iter().enumerate() {
        r.segments += 1;
        let path = dir.join(segment::seg_name(base));
        let data = std::fs::read(&path).map_err(|e| LogError::io(&path, e))?;
        r.bytes += data.len() as u64;
        if i == 0 {
            r.start_offset = base;
        }
        let hdr = match segment::parse_header(&path, &data) {
            Ok(h) => h,
            Err(e) => {
                r.problems.push(e.to_string());
                prev_next = None;
                continue;
            }
        };
        if hdr.base != base {
            r.problems.push(format!(
                "{}: header base {} does not match the name",
                path.display(),
                hdr.base
            ));
        }
        if let Some(p) = prev_next {
            if p != base {
                r.problems.push(format!(
                    "{}: starts at {base} but previous segment ends at {p}",
                    path.display()
                ));
            }
        }
        let len = data.len() as u64;
        if hdr.sealed {
            r.sealed_segments += 1;
            let tpos = len.saturating_sub(segment::TRAILER_LEN) as usize;
            let trailer = data.get(tpos..).unwrap_or(&[]);
            let t = match segment::parse_trailer(&path, trailer, len, base, hdr.hollow) {
                Ok(t) => t,
                Err(e) => {
                    r.problems.push(e.to_string());
                    prev_next = None;
                    continue;
                }
            };
            if hdr.hollow {
                // No records to check; index files a crash left behind are recovery's to
                // remove, not corruption.
                r.hollow_segments += 1;
                prev_next = Some(t.next);
                r.next_offset = t.next;
                continue;
            }
            let scan = match segment::scan_frames(&path, &data, base, t.data_end, u32::MAX) {
                Ok(s) => s,
                Err(e) => {
                    r.problems.push(e.to_string());
                    prev_next = Some(t.next);
                    continue;
                }
            };
            if scan.stopped.is_some()
                || scan.builder.pos != t.data_end
                || scan.builder.next != t.next
            {
                let why = scan
                    .stopped
                    .map_or_else(|| "record count mismatch".into(), |e| e.describe());
                r.problems.push(format!(
                    "{}: corrupt sealed segment at byte {}: {why}",
                    path.display(),
                    scan.builder.pos
                ));
            } else if scan.builder.min_ts.is_some_and(|m| m != t.min_ts)
                || scan.builder.max_ts.is_some_and(|m| m != t.max_ts)
            {
                r.problems.push(format!(
                    "{}: trailer timestamps do not match records",
                    path.display()
                ));
            }
            r.records += scan.builder.records();
            for (name, kind) in [
                (segment::idx_name(base), index::IndexKind::Offset),
                (segment::tix_name(base), index::IndexKind::Time),
            ] {
                let ip = dir.join(&name);
                match std::fs::read(&ip) {
                    Ok(b) => {
                        if let Err(why) =
                            index::validate(kind, &b, base, t.data_end, t.next - t.base)
                        {
                            r.problems.push(format!("{}: {why}", ip.display()));
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => r.missing_indexes += 1,
                    Err(e) => return Err(LogError::io(&ip, e)),
                }
            }
            prev_next = Some(t.next);
        } else {
            if i + 1 != n {
                r.problems.push(format!(
                    "{}: unsealed segment is not the newest",
                    path.display()
                ));
            }
            match segment::scan_frames(&path, &data, base, len, u32::MAX) {
                Ok(s) => {
                    r.torn_tail_bytes +=
                        segment::torn_end(&data, s.builder.pos, hdr.recycled) - s.builder.pos;
                    r.records += s.builder.records();
                    prev_next = Some(s.builder.next);
                }
                Err(e) => {
                    r.problems.push(e.to_string());
                    prev_next = None;
                }
            }
        }
        if let Some(p) = prev_next {
            r.next_offset = p;
        }
    }
    match checkpoint::read(dir) {
        Ok(c) => r.checkpoint_upto = c.map(|(u, _)| u),
        Err(e) => r.problems.push(e.to_string()),
    }
    Ok(r)
}

/// Every log directory at or below `root`: those holding a segment or a checkpoint. For
/// `millpond verify`, which checks a whole data directory without knowing its services.
pub fn find_log_dirs(root: &Path) -> Result<Vec<std::path::PathBuf>, LogError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut is_log = false;
        for ent in std::fs::read_dir(&dir).map_err(|e| LogError::io(&dir, e))? {
            let ent = ent.map_err(|e| LogError::io(&dir, e))?;
            let name = ent.file_name();
            let name = name.to_str().unwrap_or("");
            let ft = ent.file_type().map_err(|e| LogError::io(&dir, e))?;
            if ft.is_dir() {
                // A directory caught mid-removal by a crash (`remove_dir`): no longer a log.
                if !name.ends_with(super::fsutil::DELETING_SUFFIX) {
                    stack.push(ent.path());
                }
            } else if name == crate::log::CHECKPOINT_FILE
                || segment::parse_name(name, "seg").is_some()
            {
                is_log = true;
            }
        }
        if is_log {
            out.push(dir);
        }
    }
    out.sort();
    Ok(out)
}
