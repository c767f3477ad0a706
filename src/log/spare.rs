//! Segment file recycling: a log keeps the file of one segment it dropped (truncation,
//! retention, hollowing) as `<base>.spare` and makes its next segment out of it at a roll.
//!
//! Why: an fdatasync that extends a file also commits its new size and block allocation
//! (an inode and journal commit on ext4), a fixed cost per group commit. Writes that land
//! on blocks the file already has skip it. A queue that sends and deletes forever drops a
//! segment for every one it fills, so in steady state every segment it writes is a
//! recycled one. PostgreSQL recycles its WAL segment files for the same reason.
//!
//! What a recycled segment looks like and how recovery reads it: storage-format.md §3.5.
//! This module owns the `.spare` files and the one-slot pool; it never writes into a spare
//! (the roll in `group.rs` does, once [`Spares::take`] hands it over).
//!
//! Invariants:
//! * A file joins the pool only once its spare name is durable (the directory fsync after
//!   the drop), so no crash can bring back a segment name for a file a roll rewrote. It is
//!   handed out only when no reader holds the segment it was, sealed or still active (they
//!   would read the new bytes), and it has no other name (a crash while hollowing can leave
//!   the spare a second name of a live segment: that name is deleted, never reused).
//! * At most one spare per log, so a log uses at most one segment more disk than it holds.
//!
//! Crash behaviour: every step is a rename, a link or an unlink. A spare that was being
//! taken is a `*.tmp` file (deleted at open); a spare that was being made is either still
//! the segment or already the spare.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::error::LogError;
use super::fsutil;
use super::segment::Segment;

/// File name extension of a spare.
pub const SPARE_EXT: &str = "spare";

/// File name of the spare made from the segment with base offset `base`.
pub fn spare_name(base: u64) -> String {
    format!("{base:020}.{SPARE_EXT}")
}

struct Spare {
    path: PathBuf,
    /// The dropped segment, which readers of this process may still hold: the file is handed
    /// out only once nobody else does ([`Segment::is_shared`]). `None` for a spare found at
    /// open.
    seg: Option<Arc<Segment>>,
}

/// A log's pool of one spare file.
#[derive(Default)]
pub(crate) struct Spares(Mutex<Option<Spare>>);

impl Spares {
    /// At open: keeps the first of `found` (the `*.spare` files of the directory) that has no
    /// other name and deletes the rest. Returns the pool and whether the directory changed.
    pub fn recover(mut found: Vec<PathBuf>) -> (Spares, bool) {
        found.sort();
        let mut kept = None;
        let mut changed = false;
        for path in found {
            let single = std::fs::metadata(&path).is_ok_and(|m| m.nlink() == 1);
            if single && kept.is_none() {
                kept = Some(Spare { path, seg: None });
            } else {
                // Best effort: a name left behind is never handed out (`take` checks again).
                let _ = fsutil::remove_if_exists(&path);
                changed = true;
            }
        }
        (Spares(Mutex::new(kept)), changed)
    }

    /// First step of dropping `seg`, a sealed segment: renames its file to the spare's name
    /// instead of deleting it. Returns that name, for [`Spares::settle`]; `None` if the pool
    /// is full or the rename failed, and the caller deletes the file as before.
    pub fn rename(&self, dir: &Path, seg: &Segment) -> Option<PathBuf> {
        if self.0.lock().is_some() {
            return None;
        }
        let path = dir.join(spare_name(seg.base));
        std::fs::rename(&seg.path, &path).ok().map(|()| path)
    }

    /// First step of hollowing `seg`: gives its file a second name, the spare's, before the
    /// hollow image replaces it. Returns that name, for [`Spares::settle`]; `None` if the
    /// pool is full or the link failed (the segment is then hollowed without recycling).
    pub fn link(&self, dir: &Path, seg: &Segment) -> Option<PathBuf> {
        if self.0.lock().is_some() {
            return None;
        }
        let path = dir.join(spare_name(seg.base));
        // A leftover of an earlier failed attempt would make the link fail.
        let _ = fsutil::remove_if_exists(&path);
        std::fs::hard_link(&seg.path, &path).ok().map(|()| path)
    }

    /// Last step of a drop or a hollowing: the file at `path` (from [`Spares::rename`] or
    /// [`Spares::link`]) joins the pool if `durable`, the directory fsync after the drop
    /// having succeeded. Only then may a roll write to it: had the old name come back in a
    /// crash, it would name a file with another segment's header. Otherwise (or if the pool
    /// filled meanwhile) the file is deleted, as without recycling.
    pub fn settle(&self, path: PathBuf, seg: Arc<Segment>, durable: bool) -> Result<(), LogError> {
        let mut slot = self.0.lock();
        if !durable || slot.is_some() {
            return fsutil::remove_if_exists(&path);
        }
        *slot = Some(Spare {
            path,
            seg: Some(seg),
        });
        Ok(())
    }

    /// Hands the spare over for reuse: its path, if there is one that no reader holds and
    /// that has no other name. A spare still held stays for a later roll.
    pub fn take(&self) -> Option<PathBuf> {
        let mut slot = self.0.lock();
        let held = slot.as_ref()?.seg.as_ref().is_some_and(Segment::is_shared);
        if held {
            return None;
        }
        // Dropping our reference unmaps the old segment before anything writes to the file.
        let Spare { path, .. } = slot.take()?;
        match std::fs::metadata(&path) {
            Ok(m) if m.nlink() == 1 => Some(path),
            _ => {
                let _ = fsutil::remove_if_exists(&path);
                None
            }
        }
    }

    /// Deletes the spare (the log is being cleared). The caller fsyncs the directory.
    pub fn remove(&self) -> Result<(), LogError> {
        match self.0.lock().take() {
            Some(s) => fsutil::remove_if_exists(&s.path),
            None => Ok(()),
        }
    }
}
