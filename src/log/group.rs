//! Group commit: the append queue, the single writer, segment rolling, the process-wide
//! committer of `Durability::Fsync` logs with the zeroer that writes their zeros ahead, and
//! the background syncer of `Durability::Interval`.
//!
//! Protocol (leader/follower):
//! 1. An appender encodes its frames into `Queue::pending` under the queue mutex. Offsets are
//!    assigned right there, so they are dense and in queue order.
//! 2. If no leader is active, that appender takes the leader role. Async appenders of an
//!    `Fsync` log hand it to the committer thread; everyone else leads in the calling
//!    thread. A leader repeatedly takes the whole pending batch, writes it with one `pwrite`
//!    per segment touched, issues one `fdatasync` (in `Fsync` mode), publishes the new end to
//!    readers, and resolves every waiter of that batch. It gives the role up when the queue
//!    is empty.
//! 3. The committer leads every log handed to it, in rounds: it takes the pending batch of
//!    each, writes them all and starts their writeback, then fdatasyncs, publishes and
//!    resolves them, with two helper threads syncing a share of the logs in parallel (or,
//!    for four or more logs of one filesystem, one `syncfs` for all: [`SharedSync`]). A log
//!    with appends pending by the end of a round is in the next one. So appends that fan
//!    out to many logs at once gather on each log while the others sync, and one fdatasync
//!    per log covers the whole round.
//! 4. Followers just wait on their completion channel. Several async waiters of a durable
//!    batch, or of a committer's whole round, are resolved by one task on their runtime, not
//!    by the committer ([`resolve_durable`]): the wakes are then local to a worker.
//! 5. Commit delay (Fsync mode, a leader serving one log only): if the previous batch had at
//!    least 4 groups and fewer than that many are pending, the leader waits — at most as
//!    long as the last fdatasync took, capped at 2 ms — for the released appenders to come
//!    back, so one fdatasync covers them all instead of alternating small and large batches.
//!
//! Invariants:
//! * Readers never see a record before it is durable per the durability mode
//!   (`Fsync`: after fdatasync or a shared syncfs; `Interval`/`None`: after the write).
//! * The writer's published state never runs ahead of the bytes in the file.
//! * On a write failure the unpublished bytes are cut with `set_len` and all queued appends
//!   fail; the queue's next offset is reset to the published end so offsets stay dense. If the
//!   cut, an fsync, or a roll fails, the log is poisoned.
//!
//! Crash behaviour: at most the bytes of the batch being written are torn; they are cut by
//! recovery. Acknowledged appends in `Fsync` mode were fdatasync'ed (or covered by a shared
//! `syncfs`) before acknowledgement.

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::error::LogError;
use super::fsutil::{self, SegmentFile, SegmentIo};
use super::index::{self, IdxEntry, IndexBuilder, TixEntry};
use super::recovery;
use super::segment::{self, Active, ActiveState, Body, Segment, Trailer, PAGE, SEGMENT_HEADER_LEN};
use super::{Durability, Inner};

/// Completion channel of one enqueued group.
pub(crate) enum Waiter {
    Async(oneshot::Sender<Result<u64, LogError>>),
    Blocking(std::sync::mpsc::SyncSender<Result<u64, LogError>>),
}

impl Waiter {
    fn send(self, r: Result<u64, LogError>) {
        // A dropped receiver means the caller gave up waiting; the record is still written.
        match self {
            Waiter::Async(tx) => {
                let _ = tx.send(r);
            }
            Waiter::Blocking(tx) => {
                let _ = tx.send(r);
            }
        }
    }
}

/// Per-record facts the writer needs for index building.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub len: u64,
    pub ts: u64,
}

/// Records of one append call (or a flush barrier when `count == 0`).
pub(crate) struct Group {
    pub first: u64,
    pub count: usize,
    pub byte_start: usize,
    pub byte_end: usize,
    pub meta_start: usize,
    pub waiter: Option<Waiter>,
}

#[derive(Default)]
pub(crate) struct Batch {
    pub frames: Vec<u8>,
    pub metas: Vec<Meta>,
    pub groups: Vec<Group>,
    /// A flush barrier is in the batch: fdatasync regardless of the durability mode.
    pub barrier: bool,
    /// The runtime of an async appender in the batch, to resolve the batch's waiters on.
    pub rt: Option<tokio::runtime::Handle>,
}

pub(crate) struct Queue {
    /// Offset the next enqueued record gets.
    pub next: u64,
    pub pending: Batch,
    pub leader: bool,
    /// Groups in the most recently taken batch: how many appenders are likely to come back.
    pub last_batch: usize,
    /// Duration of the most recent fdatasync.
    pub last_sync: Duration,
    /// A waiting leader wants to be woken when this many groups are pending (0 = nobody).
    pub want: usize,
    /// An emptied batch whose buffers the next leader reuses, so a leader that starts on a
    /// fresh thread does not grow its frame buffer from nothing (reallocations and fresh
    /// pages, ~4% of a SendMessageBatch).
    pub spare: Batch,
}

impl Queue {
    pub fn new(next: u64) -> Self {
        Queue {
            next,
            pending: Batch::default(),
            leader: false,
            last_batch: 0,
            last_sync: Duration::ZERO,
            want: 0,
            spare: Batch::default(),
        }
    }
}

/// `Interval`/`None` modes start writeback of every this many appended bytes.
const WRITEBACK_CHUNK: u64 = 1 << 20;

/// Longest a leader delays a commit to gather more appenders.
const MAX_COMMIT_DELAY: Duration = Duration::from_millis(2);
/// Below this many concurrent appenders, commits are never delayed.
const COMMIT_DELAY_MIN_BATCH: usize = 4;
/// Largest frame buffer a log keeps for its next batch: above a busy queue's batch (64
/// connections' SendMessageBatch of 10 × 256 B is ~256 KiB; a bound at that size dropped
/// and regrew the buffer every few batches), small enough that an idle log does not keep a
/// huge batch's buffer.
const MAX_SPARE_BYTES: usize = 1 << 20;

/// Durable bytes of an `Fsync` log's active segment that stay in the page cache behind its
/// data end (readers tailing the log find them there); the cache of older ones is dropped.
///
/// Why: a log that only grows would otherwise take a fresh page-cache page for every 4 KiB
/// it ever writes. In a VM that backs guest memory on first touch (as here), fresh pages are
/// the expensive part of a write: after ~1 GB the zeroer could no longer keep ahead and
/// appends waited on it for half the time (`cargo bench --bench log`, 256 appenders). Pages
/// dropped just before the next zeros are written are the ones those zeros then get.
pub(crate) const KEEP_CACHED: u64 = 4 << 20;

/// A log whose last batch was at least this big stops writing zeros ahead and appends.
///
/// Why: zeros save each fdatasync the inode and journal commit of a growing file, a fixed
/// cost per round that dominates small batches (1 and 16 appenders of 1 KiB: 1.5–1.7x the
/// records/s with zeros). But every zero is written to the disk once more, through fresh
/// page-cache pages, so for big batches the extra bytes cost more than the commit saves: 256
/// appenders (264 KiB batches) made 39.8x the raw fdatasync rate without zeros against 35.7x
/// with them, at three quarters of the CPU per record (10 alternating pairs, `cargo bench
/// --bench log`); 128 appenders (132 KiB) came out even, 28.4x against 28.3x.
const ZEROS_BELOW_BATCH: u64 = 128 << 10;

/// Page cache dropped by the thread leading the commit itself while no zeros are added
/// (the zeroer drops it before writing zeros): in steps of at least this much, so not one
/// `fadvise` per round.
const UNCACHE_INLINE_MIN: u64 = 1 << 20;

/// Why a batch failed, and whether the log must be poisoned.
pub(crate) struct Failure {
    pub err: LogError,
    pub poison: bool,
}

fn poisoning(err: LogError) -> Failure {
    Failure { err, poison: true }
}

/// The single writer. Lives in `Inner::writer`; whoever holds that mutex may write.
pub(crate) struct Writer {
    pub active: Arc<Segment>,
    pub file: Arc<dyn SegmentFile>,
    pub created_ms: u64,
    /// State including bytes written but not yet published.
    pub cur: IndexBuilder,
    /// State readers can see.
    pub published: IndexBuilder,
    pend_idx: Vec<IdxEntry>,
    pend_tix: Vec<TixEntry>,
    /// Written bytes that have not been fdatasync'ed.
    pub unsynced: bool,
    /// Start of the bytes whose writeback has not been started (`Interval`/`None` modes).
    hinted: u64,
    /// Duration of the last group-commit fdatasync.
    pub last_sync: Duration,
    /// Length of the active file: the data end plus zeros written ahead of it (`Fsync` mode),
    /// including zeros the zeroer thread is still writing.
    pub allocated: u64,
    /// The zeros the zeroer thread is writing ahead of this segment's data, if any.
    ahead: Arc<Ahead>,
    /// Where the durable bytes whose page cache has not been dropped start (`Fsync` mode,
    /// see [`Writer::preallocate`]).
    cached_from: u64,
    /// Bumped by every write to and every cut of the active segment: a `syncfs` covers a
    /// writer's unsynced bytes only if this did not change while it ran ([`SharedSync`]).
    generation: u64,
    /// Frame bytes of the last batch with records this log wrote, carried across rolls
    /// ([`ZEROS_BELOW_BATCH`]).
    last_batch_bytes: u64,
    /// The active segment is recycled ([`segment::FLAG_RECYCLED`]): every write is followed
    /// by zeros up to the next page boundary after its end.
    pub recycled: bool,
}

impl Writer {
    pub fn new(
        active: Arc<Segment>,
        file: Arc<dyn SegmentFile>,
        created_ms: u64,
        b: IndexBuilder,
    ) -> Self {
        Writer {
            active,
            file,
            created_ms,
            allocated: b.pos,
            cur: b.clone(),
            published: b,
            pend_idx: Vec::new(),
            pend_tix: Vec::new(),
            unsynced: false,
            hinted: SEGMENT_HEADER_LEN,
            last_sync: Duration::ZERO,
            ahead: Arc::default(),
            // The header's page stays: the seal rewrites a word of it, and a partial write
            // into a page that is not cached reads it from the disk first.
            cached_from: PAGE,
            generation: 0,
            last_batch_bytes: 0,
            recycled: false,
        }
    }

    /// Waits until the zeroer has no zeros of this segment in flight: before anything cuts,
    /// seals or drops the file, so no zeros land after it.
    pub fn wait_for_zeros(&self) {
        self.ahead.wait_clear_of(u64::MAX);
    }

    fn active_state(&self) -> Option<&Active> {
        match &self.active.body {
            Body::Active(a) => Some(a),
            Body::Sealed(_) | Body::Hollow(_) => None,
        }
    }

    fn must_roll(&self, inner: &Inner, b: &IndexBuilder, bytes: u64, now: u64) -> bool {
        b.records() > 0
            && (b.pos + bytes > inner.opts.segment_bytes
                || inner
                    .opts
                    .segment_age
                    .is_some_and(|a| now.saturating_sub(self.created_ms) >= a.as_millis() as u64))
    }

    /// Makes everything written visible to readers.
    fn publish(&mut self) {
        if let Some(a) = self.active_state() {
            let mut st = a.st.write();
            st.len = self.cur.pos;
            st.next = self.cur.next;
            st.min_ts = self.cur.min_ts;
            st.max_ts = self.cur.max_ts;
            st.idx.extend_from_slice(&self.pend_idx);
            for e in &self.pend_tix {
                index::upsert_tix(&mut st.tix, *e);
            }
        }
        self.pend_idx.clear();
        self.pend_tix.clear();
        self.published = self.cur.clone();
    }

    /// Forgets unpublished writes and cuts them from the file.
    fn rollback(&mut self) -> std::io::Result<()> {
        self.generation += 1;
        self.wait_for_zeros();
        self.cur = self.published.clone();
        self.pend_idx.clear();
        self.pend_tix.clear();
        self.allocated = self.published.pos;
        self.file.set_len(self.published.pos)
    }

    /// Writes zeros ahead of the data end (called in `Fsync` mode only), so that later appends overwrite
    /// allocated, initialized blocks and do not change the file size: their fdatasync then
    /// flushes data and the device cache without writing the inode (or committing a
    /// journal), ~1.5x the fdatasync rate of appending to the end on the ext4 here
    /// (storage-format.md §7). Recovery treats an all-zero tail of the active segment as
    /// free space, not as a torn write.
    ///
    /// The zeros grow with the segment (as much again as it holds, 64 KiB to 1 MiB at a time,
    /// never past the roll size), so a log with little data wastes little disk. The zeroer
    /// thread writes them (see [`Zeroer`]), one range per segment at a time. Failing to write
    /// them costs only speed: the error is dropped and appends extend the file as before;
    /// whatever zeros did land are harmless.
    ///
    /// After a batch of [`ZEROS_BELOW_BATCH`] or more, no zeros are added (those already
    /// written are still used): the next batches append, and only the page cache behind the
    /// data end is dropped.
    fn preallocate(&mut self, inner: &Inner) {
        const MIN: u64 = 64 << 10;
        const MAX: u64 = 1 << 20;
        let end = self.cur.pos;
        if self.last_batch_bytes >= ZEROS_BELOW_BATCH {
            if let Some((from, to)) = self.uncache_range(UNCACHE_INLINE_MIN) {
                let _ = self.file.drop_cached(from, to - from);
            }
            return;
        }
        let limit = inner.opts.segment_bytes;
        let grow = (end - SEGMENT_HEADER_LEN.min(end)).clamp(MIN, MAX);
        // A poisoned log may hold a segment a failed roll already sealed: no zeros after its
        // trailer.
        if end + grow / 2 <= self.allocated
            || end >= limit
            || self.ahead.busy()
            || inner.is_poisoned()
        {
            return;
        }
        let target = (end + grow).min(limit);
        let from = self.allocated.max(end);
        // The file may already reach past the roll size (reopened with a smaller one).
        if from >= target {
            return;
        }
        // Claimed before it is written: appends below `from` go on meanwhile, and one that
        // reaches it waits for the zeroer (`write_batch`). Counted as allocated at once so a
        // failed zero write is cut at the seal like written zeros.
        *self.ahead.range.lock() = Some((from, target));
        self.allocated = target;
        let job = ZeroJob {
            file: self.file.clone(),
            from,
            to: target,
            uncache: self.uncache_range(PAGE),
            ahead: self.ahead.clone(),
        };
        if let Err(job) = zero_ahead(job) {
            job.run();
        }
    }

    /// Claims the durable bytes whose page cache is to be dropped (all but the last
    /// [`KEEP_CACHED`] behind the published end), if they are at least `min` bytes.
    fn uncache_range(&mut self, min: u64) -> Option<(u64, u64)> {
        // Everything below `published` is durable, hence clean in the page cache.
        let uncache_to = self.published.pos.saturating_sub(KEEP_CACHED) / PAGE * PAGE;
        if uncache_to < self.cached_from.saturating_add(min) {
            return None;
        }
        let from = std::mem::replace(&mut self.cached_from, uncache_to);
        Some((from, uncache_to))
    }

    pub fn sync(&mut self) -> Result<(), LogError> {
        self.unsynced = false;
        self.file
            .sync_data()
            .map_err(|e| LogError::io(&self.active.path, e))
    }

    /// Writes a batch (rolling segments as needed) without the batch's own fdatasync and
    /// publication: [`Writer::commit_written`] does both, so the committer can write several
    /// logs' batches before it waits for any disk. A roll inside syncs and publishes the
    /// part of the batch before it, as every roll does.
    pub fn write_batch(&mut self, inner: &Inner, b: &Batch) -> Result<(), Failure> {
        if inner.is_poisoned() {
            return Err(Failure {
                err: LogError::Poisoned,
                poison: false,
            });
        }
        let now = fsutil::now_ms();
        let n = b.groups.len();
        let mut gi = 0;
        while gi < n {
            let g = &b.groups[gi];
            if g.count > 0
                && self.must_roll(inner, &self.cur, (g.byte_end - g.byte_start) as u64, now)
            {
                self.roll(inner)?;
            }
            if b.groups[gi].first != self.cur.next {
                return Err(poisoning(LogError::corrupt(
                    &self.active.path,
                    self.cur.pos,
                    format!(
                        "internal: batch starts at offset {} but the log ends at {}",
                        b.groups[gi].first, self.cur.next
                    ),
                )));
            }
            let byte_start = b.groups[gi].byte_start;
            let mut cur = self.cur.clone();
            let mut end = gi;
            let mut idx = Vec::new();
            let mut tix = Vec::new();
            while end < n {
                let g = &b.groups[end];
                if end > gi
                    && g.count > 0
                    && self.must_roll(inner, &cur, (g.byte_end - g.byte_start) as u64, now)
                {
                    break;
                }
                for m in &b.metas[g.meta_start..g.meta_start + g.count] {
                    cur.push(m.len, m.ts, &mut idx, &mut tix);
                }
                end += 1;
            }
            let byte_end = b.groups[end - 1].byte_end;
            let mut written_end = cur.pos;
            if byte_end > byte_start {
                // In a recycled file the bytes after the data are old ones: the zeros keep
                // recovery from reading them as a torn write, and fill the last page so the
                // kernel does not read it from the disk first (its cache was dropped).
                let pad = if self.recycled {
                    PAGE - cur.pos % PAGE
                } else {
                    0
                };
                written_end = cur.pos + pad;
                self.ahead.wait_clear_of(written_end);
                if let Err(e) = self.file.write_padded_at(
                    &b.frames[byte_start..byte_end],
                    pad as usize,
                    self.cur.pos,
                ) {
                    let err = LogError::io(&self.active.path, e);
                    tracing::warn!(error = %err, "log append failed; cutting the partial batch");
                    let poison = self.rollback().is_err();
                    return Err(Failure { err, poison });
                }
                self.unsynced = true;
                self.generation += 1;
            }
            self.cur = cur;
            self.allocated = self.allocated.max(written_end);
            self.pend_idx.extend_from_slice(&idx);
            for e in tix {
                index::upsert_tix(&mut self.pend_tix, e);
            }
            gi = end;
        }
        // A flush barrier alone writes nothing and says nothing of the batches to come.
        if !b.frames.is_empty() {
            self.last_batch_bytes = b.frames.len() as u64;
        }
        let fsync_mode = inner.opts.durability == Durability::Fsync;
        if !fsync_mode && self.cur.pos >= self.hinted + WRITEBACK_CHUNK {
            // Without this the kernel keeps everything dirty until its own thresholds (GBs),
            // and the fdatasync at the next roll or interval tick then stalls appends for the
            // whole backlog; starting writeback per chunk overlaps the disk with the appends.
            // A failure here says the same as a failed fdatasync would: poison.
            let len = self.cur.pos - self.hinted;
            self.file
                .start_writeback(self.hinted, len)
                .map_err(|e| poisoning(LogError::io(&self.active.path, e)))?;
            self.hinted = self.cur.pos;
        }
        Ok(())
    }

    /// Submits the written, unpublished bytes to the disk without waiting, so the disk
    /// works on several logs' batches at once and each log's fdatasync then mostly waits
    /// for writes already under way. A hint: an error here is left for the fdatasync to
    /// report.
    fn start_writeback_of_batch(&self) {
        if self.unsynced && self.cur.pos > self.published.pos {
            let _ = self
                .file
                .start_writeback(self.published.pos, self.cur.pos - self.published.pos);
        }
    }

    /// Second half of a batch after [`Writer::write_batch`]: the fdatasync its durability
    /// mode (or a flush barrier) asks for, then publication to readers.
    pub fn commit_written(&mut self, inner: &Inner, barrier: bool) -> Result<(), Failure> {
        // The writer lock was free since the write: a roll or clear in between may have
        // failed its fdatasync (and cleared `unsynced`), and a later fdatasync could then
        // report success for bytes that never reached the disk (fsyncgate).
        if inner.is_poisoned() {
            return Err(Failure {
                err: LogError::Poisoned,
                poison: false,
            });
        }
        let fsync_mode = inner.opts.durability == Durability::Fsync;
        if barrier || (fsync_mode && self.unsynced) {
            let t = Instant::now();
            self.sync().map_err(poisoning)?;
            self.last_sync = t.elapsed();
        }
        self.publish();
        Ok(())
    }

    /// Seals the active segment (if it has records) and starts a new one.
    /// A failure while writing the trailer or the index files (before the seal word) cuts the
    /// trailer again and leaves the segment active and the log usable (`poison == false`);
    /// any later failure leaves the on-disk state uncertain and poisons.
    pub fn roll(&mut self, inner: &Inner) -> Result<(), Failure> {
        if self.cur.records() == 0 {
            return Ok(());
        }
        if self.unsynced {
            self.sync().map_err(poisoning)?;
        }
        self.publish();
        let mut sealed = self.seal(inner)?;
        if let Body::Sealed(s) = &mut sealed.body {
            s.was_active = Arc::downgrade(&self.active);
        }
        let next = self.cur.next;
        let recycled = inner
            .spares
            .take()
            .and_then(|spare| recycle_segment(&inner.dir, inner.io.as_ref(), next, &spare));
        let ((seg, file, created), recycled_len) = match recycled {
            Some((new, len)) => (new, Some(len)),
            None => (
                create_segment(&inner.dir, inner.io.as_ref(), next).map_err(poisoning)?,
                None,
            ),
        };
        fsutil::fsync_dir(&inner.dir).map_err(poisoning)?;
        {
            let mut view = inner.view.write();
            if let Some(last) = view.last_mut() {
                if Arc::ptr_eq(last, &self.active) {
                    *last = Arc::new(sealed);
                }
            }
            view.push(seg.clone());
        }
        let interval = inner.opts.index_interval_bytes;
        let last_batch_bytes = self.last_batch_bytes;
        *self = Writer::new(seg, file, created, IndexBuilder::new(next, interval));
        self.last_batch_bytes = last_batch_bytes;
        if let Some(len) = recycled_len {
            self.recycled = true;
            self.allocated = len;
        }
        Ok(())
    }

    /// Writes trailer and index files, then flips the seal word. Data is durable before the
    /// seal word is written, and the seal word is durable before this returns.
    fn seal(&mut self, inner: &Inner) -> Result<Segment, Failure> {
        self.wait_for_zeros();
        let path = self.active.path.clone();
        let base = self.active.base;
        let st: ActiveState = match self.active_state() {
            Some(a) => a.st.read().clone(),
            None => {
                return Err(poisoning(LogError::corrupt(
                    &path,
                    0,
                    "internal: sealing a sealed segment",
                )))
            }
        };
        let (Some(min_ts), Some(max_ts)) = (st.min_ts, st.max_ts) else {
            return Err(poisoning(LogError::corrupt(
                &path,
                0,
                "internal: sealing an empty segment",
            )));
        };
        let trailer = Trailer {
            base,
            next: st.next,
            data_end: st.len,
            min_ts,
            max_ts,
        };
        let io = |e| LogError::io(&path, e);
        if let Err(err) = self.write_seal_files(inner, &st, &trailer) {
            // Nothing is sealed yet: cut the trailer (if any of it was written) so the next
            // append continues the segment, and report the error without poisoning. An index
            // file that did make it is orphaned until the next seal replaces it (or recovery
            // deletes it).
            tracing::warn!(error = %err, segment = %path.display(), "sealing failed; segment stays active");
            self.allocated = st.len;
            let poison = self.file.set_len(st.len).is_err();
            return Err(Failure { err, poison });
        }
        let seal = || -> Result<(), LogError> {
            self.file.sync_data().map_err(io)?;
            self.file
                .write_at(
                    &segment::SEAL_WORD_SEALED.to_le_bytes(),
                    segment::HDR_OFF_SEAL as u64,
                )
                .map_err(io)?;
            self.file.sync_data().map_err(io)
        };
        seal().map_err(poisoning)?;
        let file_len = st.len + segment::TRAILER_LEN;
        let mut rebuilt = 0;
        recovery::load_sealed(
            inner.io.as_ref(),
            &inner.dir,
            &path,
            base,
            trailer,
            file_len,
            inner.opts.index_interval_bytes,
            &mut rebuilt,
        )
        .map_err(poisoning)
    }

    /// The trailer and both index files of a seal, before the seal word.
    fn write_seal_files(
        &self,
        inner: &Inner,
        st: &ActiveState,
        trailer: &Trailer,
    ) -> Result<(), LogError> {
        let base = trailer.base;
        let sealed_len = st.len + segment::TRAILER_LEN;
        self.file
            .write_at(&segment::encode_trailer(trailer), st.len)
            .map_err(|e| LogError::io(&self.active.path, e))?;
        if self.allocated > sealed_len {
            // The zeros written ahead end with the segment: a sealed file ends at its trailer.
            self.file
                .set_len(sealed_len)
                .map_err(|e| LogError::io(&self.active.path, e))?;
        }
        let mut tix = st.tix.clone();
        if let Some(f) = self.cur.final_tix() {
            index::upsert_tix(&mut tix, f);
        }
        fsutil::atomic_write(
            inner.io.as_ref(),
            &inner.dir,
            &segment::idx_name(base),
            &index::encode_idx(base, st.len, &st.idx),
            false,
        )?;
        fsutil::atomic_write(
            inner.io.as_ref(),
            &inner.dir,
            &segment::tix_name(base),
            &index::encode_tix(base, st.len, &tix),
            false,
        )
    }
}

/// A freshly created active segment, its file, and its creation time.
pub(crate) type NewSegment = (Arc<Segment>, Arc<dyn SegmentFile>, u64);

/// Creates `<base>.seg` durably (temp file, header, fdatasync, rename). The caller fsyncs
/// the directory.
pub(crate) fn create_segment(
    dir: &Path,
    io: &dyn SegmentIo,
    base: u64,
) -> Result<NewSegment, LogError> {
    let path = dir.join(segment::seg_name(base));
    let tmp = dir.join(format!("{}{}", segment::seg_name(base), fsutil::TMP_SUFFIX));
    let created = fsutil::now_ms();
    let file = io.open(&tmp, true).map_err(|e| LogError::io(&tmp, e))?;
    file.write_at(&segment::encode_header(base, created), 0)
        .and_then(|()| file.sync_data())
        .map_err(|e| LogError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| LogError::io(&path, e))?;
    Ok((active_segment(base, path, file.clone()), file, created))
}

/// Makes `<base>.seg` out of the spare file at `spare` (`spare.rs`): renamed to a temporary
/// name, given a recycled header followed by zeros to the end of its first page, fdatasynced
/// and renamed into place. Returns the segment and the file's length, or `None` (after
/// deleting what is left of the spare) if any step fails: the caller then creates the
/// segment afresh, and a leftover temporary file is either overwritten by that or deleted by
/// recovery. The caller fsyncs the directory.
pub(crate) fn recycle_segment(
    dir: &Path,
    io: &dyn SegmentIo,
    base: u64,
    spare: &Path,
) -> Option<(NewSegment, u64)> {
    let path = dir.join(segment::seg_name(base));
    let tmp = dir.join(format!("{}{}", segment::seg_name(base), fsutil::TMP_SUFFIX));
    let created = fsutil::now_ms();
    let attempt = || -> std::io::Result<(Arc<dyn SegmentFile>, u64)> {
        std::fs::rename(spare, &tmp)?;
        let file = io.open(&tmp, false)?;
        let header = segment::encode_recycled_header(base, created);
        let pad = (PAGE - SEGMENT_HEADER_LEN) as usize;
        file.write_padded_at(&header, pad, 0)?;
        file.sync_data()?;
        let len = file.len()?;
        std::fs::rename(&tmp, &path)?;
        Ok((file, len))
    };
    match attempt() {
        Ok((file, len)) => Some((
            (active_segment(base, path, file.clone()), file, created),
            len,
        )),
        Err(e) => {
            tracing::warn!(error = %e, spare = %spare.display(), "could not recycle a spare segment file");
            let _ = fsutil::remove_if_exists(spare);
            None
        }
    }
}

fn active_segment(base: u64, path: std::path::PathBuf, file: Arc<dyn SegmentFile>) -> Arc<Segment> {
    Arc::new(Segment {
        base,
        path,
        body: Body::Active(Active {
            file,
            st: parking_lot::RwLock::new(ActiveState {
                len: SEGMENT_HEADER_LEN,
                next: base,
                ..Default::default()
            }),
        }),
    })
}

/// The waiters of one durable batch.
pub(crate) struct Durable {
    /// The runtime of its async appenders, if any.
    pub rt: Option<tokio::runtime::Handle>,
    pub groups: Vec<Group>,
    /// The published end that resolves them.
    pub committed: u64,
}

/// Resolves the waiters of durable batches (one log's, or a whole round's). Several async
/// waiters are resolved by one task on their runtime rather than from this (committer or
/// helper) thread: a wake from outside the runtime goes through its shared queue and may have
/// to wake a parked worker, once per waiter, on the committer's serial path; from a worker,
/// the wakes are local. A round's batches share the one task: an SNS publish to ten queues
/// otherwise cost ten hand-offs per round. If the task never runs (a runtime shutting down),
/// dropping it resolves them here.
pub(crate) fn resolve_durable(batches: Vec<Durable>) {
    struct Resolution(Vec<Durable>);
    impl Drop for Resolution {
        fn drop(&mut self) {
            for d in std::mem::take(&mut self.0) {
                resolve(d.groups, d.committed, None);
            }
        }
    }
    let waiters: usize = batches.iter().map(|b| b.groups.len()).sum();
    // Appenders of another runtime (rare: a second broker in one process) are woken from
    // this one's task all the same; only the wake is then remote.
    match batches.iter().find_map(|b| b.rt.clone()) {
        Some(rt) if waiters > 1 => {
            let r = Resolution(batches);
            drop(rt.spawn(async move { drop(r) }));
        }
        _ => drop(Resolution(batches)),
    }
}

/// Resolves the waiters of `groups` given the published end `committed`.
fn resolve(groups: Vec<Group>, committed: u64, err: Option<&LogError>) {
    for g in groups {
        let ok = match err {
            None => true,
            Some(_) => g.count > 0 && g.first + g.count as u64 <= committed,
        };
        if let Some(w) = g.waiter {
            w.send(match (ok, err) {
                (true, _) | (false, None) => Ok(g.first),
                (false, Some(e)) => Err(e.duplicate()),
            });
        }
    }
}

/// Takes the log's pending batch for a commit, or gives up the leader role (`None`) when
/// nothing is pending. `delay`: the leader serves only this log, so it may wait for the
/// appenders of the previous batch to come back.
fn take_batch(inner: &Inner, delay: bool) -> Option<Batch> {
    let mut q = inner.queue.lock();
    if q.pending.groups.is_empty() {
        q.leader = false;
        return None;
    }
    // Commit delay: the appenders released by the previous commit are about to come back.
    // Committing the few that already did would cost a whole fdatasync for them and split
    // the rest into another; waiting (at most one fdatasync time) lets one fdatasync cover
    // them all. Never applies to a lone appender.
    let expect = q.last_batch;
    if delay
        && inner.opts.durability == Durability::Fsync
        && expect >= COMMIT_DELAY_MIN_BATCH
        && q.pending.groups.len() < expect
        && !q.pending.barrier
    {
        let deadline = Instant::now() + q.last_sync.min(MAX_COMMIT_DELAY);
        q.want = expect;
        while q.pending.groups.len() < expect && !q.pending.barrier {
            if inner.more.wait_until(&mut q, deadline).timed_out() {
                break;
            }
        }
        q.want = 0;
    }
    q.last_batch = q.pending.groups.len();
    let spare = std::mem::take(&mut q.spare);
    Some(std::mem::replace(&mut q.pending, spare))
}

/// Writes a taken batch; no fdatasync yet.
fn write_taken(inner: &Inner, batch: &Batch) -> Result<(), Failure> {
    inner.writer.lock().write_batch(inner, batch)
}

/// Completes a written batch: its fdatasync and publication, and its appenders' results
/// (failures at once; successes into `durable`, for the caller to resolve with
/// [`resolve_durable`] and then to claim the next zeros with [`zeros_ahead`]); the emptied
/// batch becomes the log's spare. Whether the batch is durable.
fn finish(
    inner: &Inner,
    mut batch: Batch,
    written: Result<(), Failure>,
    durable: &mut Vec<Durable>,
) -> bool {
    let (committed, res, sync_time) = {
        let mut w = inner.writer.lock();
        let r = written.and_then(|()| w.commit_written(inner, batch.barrier));
        (w.published.next, r, w.last_sync)
    };
    let groups = std::mem::take(&mut batch.groups);
    let ok = res.is_ok();
    inner.tail.send_if_modified(|t| {
        let changed = *t != committed;
        *t = committed;
        changed
    });
    match res {
        Ok(()) => durable.push(Durable {
            rt: batch.rt.take(),
            groups,
            committed,
        }),
        Err(f) => {
            if f.poison {
                inner.poison(&f.err);
            }
            let drained = {
                let mut q = inner.queue.lock();
                q.next = committed;
                std::mem::take(&mut q.pending)
            };
            resolve(groups, committed, Some(&f.err));
            let later = if f.poison { LogError::Poisoned } else { f.err };
            resolve(drained.groups, committed, Some(&later));
        }
    }
    batch.frames.clear();
    batch.metas.clear();
    batch.barrier = false;
    batch.rt = None;
    let mut q = inner.queue.lock();
    q.last_sync = sync_time;
    let cap = batch.frames.capacity();
    if cap <= MAX_SPARE_BYTES && q.spare.frames.capacity() < cap {
        q.spare = batch;
    }
    ok
}

/// Claims the zeros ahead of a log whose batch just became durable (or, after a big batch,
/// drops the page cache behind its end: [`Writer::preallocate`]), once its appenders are
/// resolved: after them, not before, claiming (a lock and a hand-off to the zeroer thread,
/// which writes them) adds nothing to their latency.
fn zeros_ahead(inner: &Inner) {
    if inner.opts.durability == Durability::Fsync {
        inner.writer.lock().preallocate(inner);
    }
}

/// `f` (a log's [`finish`] or [`zeros_ahead`]) on a committer or helper thread; `None` if it
/// panicked. A panic there (a bug) must not take the thread down with the round half done,
/// which would leave every `Fsync` log without a leader: the log is poisoned instead (the
/// waiters of a batch not yet resolved see `Closed`, later appends `Poisoned`) and the
/// thread goes on.
fn guarded<T>(inner: &Inner, f: impl FnOnce() -> T) -> Option<T> {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    if r.is_err() {
        inner.poison(&LogError::corrupt(
            &inner.dir,
            0,
            "internal: the group commit panicked",
        ));
    }
    r.ok()
}

/// Runs the leader loop of one log in the calling thread until its queue is empty.
pub(crate) fn drive(inner: &Inner) {
    while let Some(batch) = take_batch(inner, true) {
        let written = write_taken(inner, &batch);
        let mut durable = Vec::with_capacity(1);
        let ok = finish(inner, batch, written, &mut durable);
        resolve_durable(durable);
        if ok {
            zeros_ahead(inner);
        }
    }
}

/// The process-wide committer of `Fsync` logs: one thread leads the group commit of every
/// log with pending appends, in rounds. A round takes each such log's whole pending batch,
/// writes them all, then fdatasyncs and resolves them (sharing the syncs with
/// [`SyncHelpers`]); a log that has more pending by then is in the next round too.
///
/// Why one thread for all logs: appends that fan out to many logs at once (an SNS publish
/// to ten queues) would otherwise get a leader per log, each syncing as soon as anything
/// is pending, so every log synced ~2 appends at a time (5.5 fdatasyncs per publish, and a
/// thread hand-off for each). In rounds, a log's appends gather while the others sync, and
/// one fdatasync per log covers every fan-out of the round. A single busy log is served
/// one batch after another, with the commit delay (which also holds up logs that become
/// ready meanwhile, for at most one fdatasync time).
///
/// A round ends when all its logs are synced, and its appenders are all resolved then, so
/// one fdatasync that hangs holds up every `Fsync` log of the process. Accepted: a broker's
/// logs share one data directory, and a hung flush there stalls the other logs' flushes as
/// well. Ending rounds early (each log re-queued as soon as its own sync is done) measured
/// ~15% fewer publishes/s.
struct Committer {
    ready: parking_lot::Mutex<Vec<Arc<Inner>>>,
    wake: parking_lot::Condvar,
}

static COMMITTER: Committer = Committer {
    ready: parking_lot::Mutex::new(Vec::new()),
    wake: parking_lot::Condvar::new(),
};
static COMMITTER_THREAD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Starts the process-wide thread `name` running `body` on first use; whether it runs.
fn started_once(thread: &'static std::sync::OnceLock<bool>, name: &str, body: fn()) -> bool {
    *thread.get_or_init(|| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(body)
            .is_ok()
    })
}

/// Hands the leader role the caller just took (see `Log::enqueue`) to the committer. Gives
/// the log back if the committer thread cannot be started; the caller must then lead.
pub(crate) fn hand_to_committer(inner: Arc<Inner>) -> Result<(), Arc<Inner>> {
    if !started_once(&COMMITTER_THREAD, "millpond-commit", committer_loop) {
        return Err(inner);
    }
    COMMITTER.ready.lock().push(inner);
    COMMITTER.wake.notify_one();
    Ok(())
}

/// A log's written batch waiting for its fdatasync and resolution.
type Turn = (Arc<Inner>, Batch, Result<(), Failure>);

/// Threads that help the committer fdatasync the logs of a round in parallel: the disk
/// serves several flushes at once (~1.6x the single-thread fdatasync rate here), and a
/// round of ten logs synced one by one made every fan-out wait for all ten in series.
struct SyncHelpers {
    jobs: parking_lot::Mutex<Jobs>,
    work: parking_lot::Condvar,
    done: parking_lot::Condvar,
}

struct Jobs {
    /// Turns not yet taken.
    turns: Vec<Turn>,
    /// Turns not yet finished.
    open: usize,
    /// Finished turns' waiters, resolved together once the round is done.
    durable: Vec<Durable>,
    /// Logs whose turn became durable, to claim zeros for once their waiters are resolved.
    synced: Vec<Arc<Inner>>,
}

static HELPERS: SyncHelpers = SyncHelpers {
    jobs: parking_lot::Mutex::new(Jobs {
        turns: Vec::new(),
        open: 0,
        durable: Vec::new(),
        synced: Vec::new(),
    }),
    work: parking_lot::Condvar::new(),
    done: parking_lot::Condvar::new(),
};

/// Sync helpers besides the committer itself.
const SYNC_HELPERS: usize = 2;

/// Finishes queued turns until none is left to take, the lock released around each.
/// Whoever finishes the last outstanding turn tells the committer.
fn finish_queued(jobs: &mut parking_lot::MutexGuard<'_, Jobs>) {
    let mut durable = Vec::new();
    while let Some((inner, batch, w)) = jobs.turns.pop() {
        let ok = parking_lot::MutexGuard::unlocked(jobs, || {
            guarded(&inner, || finish(&inner, batch, w, &mut durable))
        });
        jobs.durable.append(&mut durable);
        if ok == Some(true) {
            jobs.synced.push(inner);
        }
        jobs.open -= 1;
        if jobs.open == 0 {
            HELPERS.done.notify_one();
        }
    }
}

fn helper_loop() {
    let mut jobs = HELPERS.jobs.lock();
    loop {
        finish_queued(&mut jobs);
        HELPERS.work.wait(&mut jobs);
    }
}

/// Finishes every turn of a round and returns their waiters to resolve and the logs whose
/// turn became durable: the committer works the turns off with the helpers it wakes (one
/// fewer than the turns still to fdatasync, at most `helpers`; a turn a shared `syncfs`
/// covered costs no fdatasync), then waits for the ones still being finished.
fn finish_all(
    turns: &mut Vec<Turn>,
    to_sync: usize,
    helpers: usize,
) -> (Vec<Durable>, Vec<Arc<Inner>>) {
    let mut jobs = HELPERS.jobs.lock();
    jobs.open += turns.len();
    for _ in 0..to_sync.saturating_sub(1).min(helpers) {
        HELPERS.work.notify_one();
    }
    jobs.turns.append(turns);
    finish_queued(&mut jobs);
    while jobs.open != 0 {
        HELPERS.done.wait(&mut jobs);
    }
    (
        std::mem::take(&mut jobs.durable),
        std::mem::take(&mut jobs.synced),
    )
}

fn committer_loop() {
    let helpers = (0..SYNC_HELPERS)
        .filter(|i| {
            std::thread::Builder::new()
                .name(format!("millpond-sync-{i}"))
                .spawn(helper_loop)
                .is_ok()
        })
        .count();
    let mut round: Vec<Arc<Inner>> = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    let mut shared = SharedSync::default();
    loop {
        {
            let mut ready = COMMITTER.ready.lock();
            while ready.is_empty() && round.is_empty() {
                COMMITTER.wake.wait(&mut ready);
            }
            round.append(&mut ready);
        }
        let alone = round.len() == 1;
        for inner in round.drain(..) {
            // A log with nothing pending leaves the round and gives up its leader role.
            if let Some(batch) = take_batch(&inner, alone) {
                let w = write_taken(&inner, &batch);
                turns.push((inner, batch, w));
            }
        }
        let mut to_sync = turns.len();
        if turns.len() > 1 {
            let shared = shared.sync(&turns);
            for (i, (inner, _, _)) in turns.iter().enumerate() {
                if shared[i] {
                    to_sync -= 1;
                } else {
                    inner.writer.lock().start_writeback_of_batch();
                }
            }
        }
        round.extend(turns.iter().map(|t| t.0.clone()));
        let (durable, synced) = finish_all(&mut turns, to_sync, helpers);
        resolve_durable(durable);
        for inner in synced {
            guarded(&inner, || zeros_ahead(&inner));
        }
    }
}

/// Logs of one filesystem in one round that share a `syncfs` instead of an fdatasync each.
const SHARED_SYNC_MIN_LOGS: usize = 4;

/// A `syncfs` this much slower than the recent ones, and slower than the floor, means other
/// writers' dirty data on the filesystem (which it must write too): the rounds go back to an
/// fdatasync per log for [`SHARED_SYNC_BACKOFF`]. The floor is well above our own spikes
/// (a round that rolls segments or meets zeros being written back: ~2-4 ms here, against
/// ~0.2 ms typical), which would cost per-log fdatasyncs as much.
const SHARED_SYNC_SLOW_FACTOR: u32 = 16;
const SHARED_SYNC_SLOW_FLOOR: Duration = Duration::from_millis(20);
const SHARED_SYNC_BACKOFF: Duration = Duration::from_secs(1);

/// One `syncfs` for a round's logs that share a filesystem, in place of an fdatasync each.
///
/// Why: a round of an SNS publish to ten queues is ten fdatasyncs, each ending in a flush of
/// the device's cache; three run at once, but they mostly queue at the device. One `syncfs`
/// writes every dirty page and inode of the filesystem and flushes once: ~0.32 ms here
/// against ~0.9 ms for ten fdatasyncs on three threads, and a third less CPU per publish
/// (`cargo bench --bench server`, sns-publish). Its durability covers everything an
/// fdatasync of each log would, metadata included.
///
/// Its cost is the whole filesystem's dirty data, not only ours: a `syncfs` far slower than
/// the recent ones backs off to per-log fdatasyncs for a while ([`SHARED_SYNC_BACKOFF`]),
/// so another program writing gigabytes costs one slow round per backoff, not every round.
/// Errors: `syncfs` reports a failed sync of the filesystem and writeback errors of its
/// files, but through the error state of the one handle it is called on. So on any error
/// the logs are left unsynced and each then fdatasyncs itself; and after a successful
/// `syncfs` each log's own handle is asked for writeback errors it has not reported
/// ([`SegmentFile::check_written`]): one there fails that log's batch and poisons it, exactly
/// as its fdatasync would have. Kernels whose `syncfs` drops errors (Linux before 5.17),
/// other platforms, and filesystems where a `syncfs` is not an fdatasync of every file
/// ([`fsutil::shared_sync_filesystem`]) always fdatasync.
#[derive(Default)]
struct SharedSync {
    /// Typical `syncfs` duration (exponentially weighted).
    typical: Duration,
    /// No shared syncs before this.
    backoff_until: Option<Instant>,
}

impl SharedSync {
    /// Syncs each filesystem shared by at least [`SHARED_SYNC_MIN_LOGS`] of the round's logs
    /// with one `syncfs`, and marks those logs synced; returns, per turn, whether it was.
    fn sync(&mut self, turns: &[Turn]) -> Vec<bool> {
        let mut done = vec![false; turns.len()];
        if turns.len() < SHARED_SYNC_MIN_LOGS
            || self.backoff_until.is_some_and(|t| Instant::now() < t)
        {
            return done;
        }
        let mut filesystems: Vec<u64> = turns.iter().filter_map(|t| t.0.fs).collect();
        filesystems.sort_unstable();
        filesystems.dedup();
        for fs in filesystems {
            // Each writer's state before the syncfs: its bytes written so far are covered
            // only if nothing was written or cut after this.
            let before: Vec<(usize, *const Segment, u64)> = turns
                .iter()
                .enumerate()
                .filter(|(_, t)| t.0.fs == Some(fs) && t.2.is_ok() && !t.1.barrier)
                .filter_map(|(i, t)| {
                    let w = t.0.writer.lock();
                    w.unsynced
                        .then(|| (i, Arc::as_ptr(&w.active), w.generation))
                })
                .collect();
            if before.len() < SHARED_SYNC_MIN_LOGS {
                continue;
            }
            let file = turns[before[0].0].0.writer.lock().file.clone();
            let t = Instant::now();
            let r = file.sync_filesystem();
            let took = t.elapsed();
            match r {
                Ok(()) => {
                    for &(i, active, generation) in &before {
                        let inner = &turns[i].0;
                        let mut w = inner.writer.lock();
                        if Arc::as_ptr(&w.active) != active || w.generation != generation {
                            continue;
                        }
                        match w.file.check_written() {
                            Ok(()) => {
                                w.unsynced = false;
                                w.last_sync = took;
                                done[i] = true;
                            }
                            // Left unsynced: its own fdatasync follows.
                            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {}
                            Err(e) => {
                                // Reported once only: a later fdatasync would succeed.
                                let err = LogError::io(&w.active.path, e);
                                drop(w);
                                inner.poison(&err);
                            }
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Unsupported => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "syncfs failed; each log fdatasyncs itself");
                }
            }
            if !self.typical.is_zero()
                && took > (self.typical * SHARED_SYNC_SLOW_FACTOR).max(SHARED_SYNC_SLOW_FLOOR)
            {
                self.backoff_until = Some(Instant::now() + SHARED_SYNC_BACKOFF);
                // Judged against quiet rounds only, not the slow one.
                return done;
            }
            self.typical = if self.typical.is_zero() {
                took
            } else {
                (self.typical * 7 + took) / 8
            };
        }
        done
    }
}

/// Zeros in flight ahead of one active segment: the range the zeroer thread is writing.
#[derive(Default)]
pub(crate) struct Ahead {
    range: parking_lot::Mutex<Option<(u64, u64)>>,
    done: parking_lot::Condvar,
}

impl Ahead {
    fn busy(&self) -> bool {
        self.range.lock().is_some()
    }

    /// Waits until bytes below `end` can be written without in-flight zeros landing on them.
    fn wait_clear_of(&self, end: u64) {
        let mut r = self.range.lock();
        while r.is_some_and(|(from, _)| end > from) {
            self.done.wait(&mut r);
        }
    }
}

/// Zeros to write into `[from, to)` of an active segment's file, and durable bytes behind
/// the data end whose page cache to drop first.
struct ZeroJob {
    file: Arc<dyn SegmentFile>,
    from: u64,
    to: u64,
    uncache: Option<(u64, u64)>,
    ahead: Arc<Ahead>,
}

impl ZeroJob {
    /// Writes the zeros; dropping the job releases the range. An error only ends the zeros
    /// early (see [`Writer::preallocate`]): whatever landed is zeros, and appends extend the
    /// file past it.
    fn run(self) {
        static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
        // Dropped first, so that the zeros' pages are likely the ones just freed.
        if let Some((from, to)) = self.uncache {
            let _ = self.file.drop_cached(from, to - from);
        }
        let mut pos = self.from;
        while pos < self.to {
            let n = (self.to - pos).min(ZEROS.len() as u64);
            if self.file.write_at(&ZEROS[..n as usize], pos).is_err() {
                break;
            }
            pos += n;
        }
    }
}

impl Drop for ZeroJob {
    // On every way out, a panic included: a range left claimed would hold up the log's
    // appends, seal and close forever.
    fn drop(&mut self) {
        *self.ahead.range.lock() = None;
        self.ahead.done.notify_all();
    }
}

/// The process-wide zeroer: writes the zeros of every `Fsync` log's [`Writer::preallocate`].
///
/// Why a thread of its own: zeros go into page-cache pages the file never had, and a fresh
/// page is the expensive part of a buffered write (in a VM whose host backs guest memory on
/// first touch, ~30% of the CPU of 256 appenders on one log, `cargo bench --bench log`).
/// Written by the committer, they held up the next round's write and fdatasync; here they
/// overlap them, and an append only waits for zeros it is about to overwrite.
struct Zeroer {
    jobs: parking_lot::Mutex<std::collections::VecDeque<ZeroJob>>,
    wake: parking_lot::Condvar,
}

static ZEROER: Zeroer = Zeroer {
    jobs: parking_lot::Mutex::new(std::collections::VecDeque::new()),
    wake: parking_lot::Condvar::new(),
};
static ZEROER_THREAD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Hands `job` to the zeroer, or gives it back if the thread cannot be started.
fn zero_ahead(job: ZeroJob) -> Result<(), ZeroJob> {
    if !started_once(&ZEROER_THREAD, "millpond-zero", zeroer_loop) {
        return Err(job);
    }
    ZEROER.jobs.lock().push_back(job);
    ZEROER.wake.notify_one();
    Ok(())
}

fn zeroer_loop() {
    loop {
        let job = {
            let mut jobs = ZEROER.jobs.lock();
            loop {
                match jobs.pop_front() {
                    Some(job) => break job,
                    None => ZEROER.wake.wait(&mut jobs),
                }
            }
        };
        // A panic (a bug) must not end the thread that every Fsync log's zeros wait for; the
        // job's drop has released its range either way.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run()));
    }
}

/// One `Durability::Interval` registration.
struct SyncJob {
    log: Weak<Inner>,
    every: Duration,
    due: Instant,
}

/// The process-wide syncer: one thread serves every log opened with `Durability::Interval`
/// (a broker may hold thousands of logs; a thread each would not scale). Jobs hold weak
/// references, so dropping the last `Log` handle unregisters it.
struct Syncer {
    jobs: parking_lot::Mutex<Vec<SyncJob>>,
    wake: parking_lot::Condvar,
}

static SYNCER: Syncer = Syncer {
    jobs: parking_lot::Mutex::new(Vec::new()),
    wake: parking_lot::Condvar::new(),
};
static SYNCER_THREAD: std::sync::OnceLock<std::io::Result<()>> = std::sync::OnceLock::new();

fn syncer_loop() {
    loop {
        let due: Vec<Weak<Inner>> = {
            let mut jobs = SYNCER.jobs.lock();
            jobs.retain(|j| j.log.strong_count() > 0);
            let now = Instant::now();
            let due: Vec<Weak<Inner>> = jobs
                .iter_mut()
                .filter(|j| j.due <= now)
                .map(|j| {
                    j.due = now + j.every;
                    j.log.clone()
                })
                .collect();
            if due.is_empty() {
                match jobs.iter().map(|j| j.due).min() {
                    Some(t) => {
                        SYNCER.wake.wait_until(&mut jobs, t);
                    }
                    None => SYNCER.wake.wait(&mut jobs),
                }
                continue;
            }
            due
        };
        for w in due {
            if let Some(inner) = w.upgrade() {
                sync_once(&inner);
            }
        }
    }
}

/// fdatasyncs the active segment if it has unsynced writes; a failure poisons the log.
fn sync_once(inner: &Inner) {
    if inner.is_poisoned() {
        return;
    }
    let job = {
        let mut w = inner.writer.lock();
        if w.unsynced {
            w.unsynced = false;
            Some((w.file.clone(), w.active.path.clone()))
        } else {
            None
        }
    };
    if let Some((file, path)) = job {
        if let Err(e) = file.sync_data() {
            inner.poison(&LogError::io(path, e));
        }
    }
}

/// Registers a log for background fdatasync at least every `every`.
pub(crate) fn spawn_syncer(weak: Weak<Inner>, every: Duration) -> std::io::Result<()> {
    let started = SYNCER_THREAD.get_or_init(|| {
        std::thread::Builder::new()
            .name("millpond-log-sync".into())
            .spawn(syncer_loop)
            .map(|_| ())
    });
    if let Err(e) = started {
        return Err(std::io::Error::new(e.kind(), e.to_string()));
    }
    SYNCER.jobs.lock().push(SyncJob {
        log: weak,
        every,
        due: Instant::now() + every,
    });
    SYNCER.wake.notify_one();
    Ok(())
}
