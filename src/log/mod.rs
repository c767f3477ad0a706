//! Durable, segmented, checksummed write-ahead logs.
//!
//! This module owns everything about how a log is stored on disk: segment files with record
//! frames, sparse offset and time indexes, group commit, crash recovery, retention and
//! checkpoints. It knows nothing about the services built on it: a record is an opaque
//! `(kind: u8, timestamp_ms: u64, payload: bytes)` and gets a dense offset `0, 1, 2, ...`.
//!
//! The byte layouts, the recovery algorithm and the durability argument are documented in
//! `storage-format.md` at the repository root; the constants in the submodules match it.
//!
//! Invariants a user may rely on:
//! * Offsets are dense and never reused (not even after [`Log::clear`]).
//! * A resolved append is durable per the log's [`Durability`]; in `Fsync` mode it survives
//!   kill -9 and power loss.
//! * Readers only see records that are durable per the durability mode, and every returned
//!   record's CRC has been verified.
//! * Retention and truncation remove whole segments from the front only.
//!
//! Crash behaviour: a crash leaves at most a torn tail in the newest segment (cut at the next
//! open, reported in [`RecoveryReport`]), possibly a half-finished roll (finished at open),
//! `*.tmp` files (deleted at open) and missing indexes (rebuilt at open).
//!
//! Typical use by a service:
//!
//! ```no_run
//! # async fn demo() -> Result<(), millpond::log::LogError> {
//! use millpond::{codec, log::{Log, LogOptions}};
//! let (log, report) = Log::open("/var/lib/millpond/queues/q1", LogOptions::default())?;
//! // Replay: state from the checkpoint, then every record at or after its `upto`.
//! let (upto, mut state): (u64, Vec<String>) = match log.read_checkpoint()? {
//!     Some((upto, bytes)) => (upto, codec::decode(&bytes).expect("own checkpoint")),
//!     None => (0, Vec::new()),
//! };
//! for rec in log.scan(upto) {
//!     let rec = rec?;
//!     state.push(codec::decode(&rec.payload).expect("own record"));
//! }
//! // Append (resolves once durable); kinds are the service's own tags.
//! let off = log.append(1, 1_700_000_000_000, codec::encode(&"hello".to_string())).await?;
//! state.push("hello".to_string());
//! // Compact: snapshot state reflecting records < off + 1, drop whole segments below it.
//! log.checkpoint_and_truncate(off + 1, &codec::encode(&state))?;
//! # let _ = report; Ok(()) }
//! ```

mod checkpoint;
mod error;
mod fsutil;
mod group;
mod index;
mod record;
mod recovery;
mod segment;
mod spare;
mod verify;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};

pub use checkpoint::{CHECKPOINT_FILE, CHECKPOINT_MAGIC, CHECKPOINT_VERSION};
pub use error::LogError;
pub use fsutil::{remove_dir, SegmentFile, SegmentIo, StdIo, DELETING_SUFFIX};
pub use record::{
    MAX_PAYLOAD_LEN, RECORD_HEADER_LEN, RECORD_MAGIC, RECORD_OVERHEAD, RECORD_VERSION,
};
pub use segment::{SEGMENT_HEADER_LEN, SEGMENT_MAGIC, SEGMENT_VERSION, TRAILER_LEN};
pub use verify::{find_log_dirs, verify_dir, VerifyReport};

use group::{Group, Meta, Queue, Waiter, Writer};
use segment::Segment;

/// When an append counts as done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Each append resolves only after the bytes are written and `fdatasync`ed (batched with
    /// concurrent appends: group commit). Survives process kill and power loss.
    Fsync,
    /// Appends resolve after the `write`; a background thread (one per process, shared by all
    /// logs) `fdatasync`s every log with unsynced writes about this often.
    /// Survives process kill; power loss may lose up to one interval of acknowledged appends.
    Interval(Duration),
    /// Appends resolve after the `write`; fdatasync only on roll, flush and drop.
    /// Survives process kill (the page cache is the kernel's), not power loss.
    None,
}

impl FromStr for Durability {
    type Err = LogError;

    /// Parses `"fsync"`, `"interval=<ms>"` or `"none"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s {
            "fsync" => Ok(Durability::Fsync),
            "none" => Ok(Durability::None),
            _ => match s.strip_prefix("interval=").map(str::parse::<u64>) {
                Some(Ok(ms)) if ms > 0 => Ok(Durability::Interval(Duration::from_millis(ms))),
                _ => Err(LogError::InvalidArgument(format!(
                    "durability must be \"fsync\", \"interval=<ms>\" (ms > 0) or \"none\", got {s:?}"
                ))),
            },
        }
    }
}

/// Tuning of one log.
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// Roll when the active segment would exceed this many bytes (default 64 MiB). A record
    /// (or batch) larger than this gets a segment of its own.
    pub segment_bytes: u64,
    /// Roll when the active segment is older than this (None = never).
    pub segment_age: Option<Duration>,
    /// Default `Fsync`.
    pub durability: Durability,
    /// Sparse index granularity in bytes (default 4096); lookups scan at most about this much.
    pub index_interval_bytes: u32,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: 64 << 20,
            segment_age: None,
            durability: Durability::Fsync,
            index_interval_bytes: 4096,
        }
    }
}

/// Largest accepted `segment_bytes` (positions in the index are u32).
pub const MAX_SEGMENT_BYTES: u64 = 1 << 31;
/// Largest total size of one `append_batch` call (keeps positions within u32).
pub const MAX_BATCH_BYTES: usize = 1 << 30;

/// A record read from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedRecord {
    pub offset: u64,
    pub kind: u8,
    pub timestamp_ms: u64,
    pub payload: Vec<u8>,
}

/// What [`Log::open`] found and fixed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Bytes cut from the tail of the active segment (torn or corrupt records).
    pub truncated_bytes: u64,
    /// File and byte position where the cut happened.
    pub truncated_at: Option<(PathBuf, u64)>,
    /// Sealed segments whose `.idx`/`.tix` had to be rebuilt.
    pub rebuilt_indexes: usize,
    /// Segments in the log after recovery (including the active one).
    pub segments: usize,
    /// Leftover `*.tmp` files deleted.
    pub removed_temp_files: usize,
    /// A new active segment was created (empty directory or crash during a roll).
    pub created_segment: bool,
    pub start_offset: u64,
    pub next_offset: u64,
}

/// Facts about one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub base_offset: u64,
    /// One past the last offset in the segment.
    pub next_offset: u64,
    /// Bytes on disk (segment plus its index files).
    pub bytes: u64,
    pub min_timestamp_ms: Option<u64>,
    pub max_timestamp_ms: Option<u64>,
    pub sealed: bool,
    /// Sealed with all its records dropped ([`Log::hollow`]): only the offset range is left.
    pub hollow: bool,
    pub path: PathBuf,
}

pub(crate) struct Inner {
    dir: PathBuf,
    opts: LogOptions,
    io: Arc<dyn SegmentIo>,
    queue: Mutex<Queue>,
    /// Signals a delaying group-commit leader that enough appenders have queued.
    more: Condvar,
    writer: Mutex<Writer>,
    /// Segments in offset order; the last one is the active segment.
    view: RwLock<Vec<Arc<Segment>>>,
    poisoned: AtomicBool,
    /// `next_offset()` as published to readers, for [`Log::subscribe`].
    tail: tokio::sync::watch::Sender<u64>,
    checkpoint_lock: Mutex<()>,
    /// Serialises removals of leading segments (retention, truncation, clear) and hollowing.
    front: Mutex<()>,
    /// The file of a dropped segment kept for the next roll (`spare.rs`).
    spares: spare::Spares,
    /// The filesystem the log lives on (`st_dev` of its directory), if logs there can share
    /// a commit round's `syncfs` (see `group::SharedSync`, `fsutil::shared_sync_filesystem`).
    fs: Option<u64>,
    _lock: fsutil::DirLock,
}

impl Inner {
    fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Poisons the log if the failure demands it; returns its error.
    fn fail(&self, f: group::Failure) -> LogError {
        if f.poison {
            self.poison(&f.err);
        }
        f.err
    }

    fn poison(&self, why: &LogError) {
        if !self.poisoned.swap(true, Ordering::AcqRel) {
            tracing::error!(dir = %self.dir.display(), error = %why, "log poisoned; reopen to recover");
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Best effort for Interval/None: nobody can wait for these bytes any more, but making
        // them durable on a clean shutdown costs one fdatasync.
        let w = self.writer.get_mut();
        // Zeros landing after this handle is gone could overwrite the appends of the next
        // handle opened on this directory.
        w.wait_for_zeros();
        if w.unsynced && !self.poisoned.load(Ordering::Acquire) {
            let _ = w.file.sync_data();
        }
    }
}

/// The group-commit leader's work handed to a blocking thread. If the runtime is shutting
/// down and drops the job without running it, the drop runs it instead: otherwise the queue
/// would keep a leader that never comes and every later append would hang.
struct LeaderJob(Option<Arc<Inner>>);

impl LeaderJob {
    fn run(mut self) {
        if let Some(inner) = self.0.take() {
            group::drive(&inner);
        }
    }
}

impl Drop for LeaderJob {
    fn drop(&mut self) {
        if let Some(inner) = self.0.take() {
            group::drive(&inner);
        }
    }
}

/// A durable log. Cheap to clone (Arc inside); Send + Sync; many tasks append concurrently.
#[derive(Clone)]
pub struct Log {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl Log {
    /// Opens or creates the log in `dir` (creating the directory), recovering as described in
    /// `storage-format.md` §9: leftovers deleted, a torn tail of the active segment cut
    /// (reported in the [`RecoveryReport`] and logged with `tracing::warn!`), missing indexes
    /// rebuilt. Synchronous; does not scan sealed segments unless an index is missing.
    /// Fails with [`LogError::Locked`] if the directory is open elsewhere.
    pub fn open(
        dir: impl AsRef<Path>,
        opts: LogOptions,
    ) -> Result<(Log, RecoveryReport), LogError> {
        Self::open_with_io(dir, opts, Arc::new(StdIo))
    }

    /// Like [`Log::open`] but every file write (segments, indexes, checkpoints) goes through
    /// `io` (fault injection in tests).
    pub fn open_with_io(
        dir: impl AsRef<Path>,
        opts: LogOptions,
        io: Arc<dyn SegmentIo>,
    ) -> Result<(Log, RecoveryReport), LogError> {
        let dir = dir.as_ref().to_path_buf();
        let min_seg = SEGMENT_HEADER_LEN + TRAILER_LEN + RECORD_OVERHEAD as u64;
        if opts.segment_bytes < min_seg || opts.segment_bytes > MAX_SEGMENT_BYTES {
            return Err(LogError::InvalidArgument(format!(
                "segment_bytes must be in {min_seg}..={MAX_SEGMENT_BYTES}"
            )));
        }
        if let Durability::Interval(d) = opts.durability {
            if d.is_zero() {
                return Err(LogError::InvalidArgument(
                    "durability interval must be > 0".into(),
                ));
            }
        }
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).map_err(|e| LogError::io(&dir, e))?;
            // The new directory's own entry must be durable, or a power loss could take the
            // whole log (and its acknowledged appends) with it.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fsutil::fsync_dir(parent)?;
            }
        }
        let lock = fsutil::DirLock::acquire(&dir)?;
        let fs = fsutil::shared_sync_filesystem(&dir);
        let opened = recovery::recover(&dir, &opts, &io)?;
        let next = opened.writer.cur.next;
        let inner = Arc::new(Inner {
            dir,
            io,
            queue: Mutex::new(Queue::new(next)),
            more: Condvar::new(),
            writer: Mutex::new(opened.writer),
            view: RwLock::new(opened.segs),
            poisoned: AtomicBool::new(false),
            tail: tokio::sync::watch::Sender::new(next),
            checkpoint_lock: Mutex::new(()),
            front: Mutex::new(()),
            spares: opened.spares,
            fs,
            _lock: lock,
            opts,
        });
        if let Durability::Interval(every) = inner.opts.durability {
            group::spawn_syncer(Arc::downgrade(&inner), every)
                .map_err(|e| LogError::io(&inner.dir, e))?;
        }
        Ok((Log { inner }, opened.report))
    }

    /// The directory of this log.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The options this log was opened with.
    pub fn options(&self) -> &LogOptions {
        &self.inner.opts
    }

    /// True once a write/fsync failure poisoned the log (reopen to recover).
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }

    /// Poisons the log as a failed write would, for tests of what reopens it.
    #[cfg(test)]
    pub fn poison_for_tests(&self) {
        self.inner.poison(&LogError::Poisoned);
    }

    /// Encodes `records` into the queue; returns whether the caller must lead.
    fn enqueue(
        &self,
        records: Vec<(u8, u64, Vec<u8>)>,
        waiter: Waiter,
        barrier: bool,
    ) -> Result<bool, LogError> {
        let mut total = 0usize;
        for (_, _, p) in &records {
            if p.len() > MAX_PAYLOAD_LEN as usize {
                return Err(LogError::InvalidArgument(format!(
                    "payload of {} bytes exceeds {MAX_PAYLOAD_LEN}",
                    p.len()
                )));
            }
            total = total.saturating_add(record::frame_len(p.len()));
        }
        if total > MAX_BATCH_BYTES {
            return Err(LogError::InvalidArgument(format!(
                "batch of {total} bytes exceeds {MAX_BATCH_BYTES}"
            )));
        }
        let mut q = self.inner.queue.lock();
        if self.inner.is_poisoned() {
            return Err(LogError::Poisoned);
        }
        let first = q.next;
        let p = &mut q.pending;
        let byte_start = p.frames.len();
        let meta_start = p.metas.len();
        let mut off = first;
        for (kind, ts, payload) in &records {
            record::encode_into(&mut p.frames, *kind, *ts, off, payload);
            p.metas.push(Meta {
                len: record::frame_len(payload.len()) as u64,
                ts: *ts,
            });
            off += 1;
        }
        let byte_end = p.frames.len();
        let is_async = matches!(waiter, Waiter::Async(_));
        p.groups.push(Group {
            first,
            count: records.len(),
            byte_start,
            byte_end,
            meta_start,
            waiter: Some(waiter),
        });
        p.barrier |= barrier;
        if p.rt.is_none() && is_async {
            p.rt = tokio::runtime::Handle::try_current().ok();
        }
        q.next = off;
        if q.want != 0 && (q.pending.groups.len() >= q.want || barrier) {
            self.inner.more.notify_one();
        }
        let lead = !q.leader;
        q.leader = true;
        Ok(lead)
    }

    /// Runs the group-commit leader (which blocks in fdatasync) on a blocking thread.
    fn spawn_leader(&self) {
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                let job = LeaderJob(Some(self.inner.clone()));
                drop(h.spawn_blocking(move || job.run()));
            }
            Err(_) => group::drive(&self.inner),
        }
    }

    /// Appends one record; resolves with its offset once durable per the durability mode.
    /// Offsets are dense. If the future is dropped after being polled once, the record may
    /// still be written.
    pub async fn append(
        &self,
        kind: u8,
        timestamp_ms: u64,
        payload: Vec<u8>,
    ) -> Result<u64, LogError> {
        self.append_batch(vec![(kind, timestamp_ms, payload)]).await
    }

    /// Appends records contiguously (no other appender's record between them, same segment)
    /// in one write; returns the first offset.
    pub async fn append_batch(&self, records: Vec<(u8, u64, Vec<u8>)>) -> Result<u64, LogError> {
        if records.is_empty() {
            return Err(LogError::InvalidArgument("empty batch".into()));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.enqueue(records, Waiter::Async(tx), false)? {
            if self.inner.opts.durability == Durability::Fsync {
                if group::hand_to_committer(self.inner.clone()).is_err() {
                    self.spawn_leader();
                }
            } else {
                // Without fdatasync the leader's batch is one cheap pwrite, done inline. Yield
                // once first: the appenders this task's previous batch released are queued
                // on this worker and would otherwise only run after it, so every batch would
                // hold one record (one syscall each). If the future is dropped at the yield,
                // the job's drop drives the queue, so the leader role is never lost.
                let job = LeaderJob(Some(self.inner.clone()));
                tokio::task::yield_now().await;
                job.run();
            }
        }
        rx.await.unwrap_or(Err(LogError::Closed))
    }

    /// Blocking variant of [`Log::append`] for non-async callers. Must not be called from
    /// inside an async task (it blocks the thread, possibly for a whole group commit).
    pub fn append_blocking(
        &self,
        kind: u8,
        timestamp_ms: u64,
        payload: Vec<u8>,
    ) -> Result<u64, LogError> {
        self.append_batch_blocking(vec![(kind, timestamp_ms, payload)])
    }

    /// Blocking variant of [`Log::append_batch`].
    pub fn append_batch_blocking(&self, records: Vec<(u8, u64, Vec<u8>)>) -> Result<u64, LogError> {
        if records.is_empty() {
            return Err(LogError::InvalidArgument("empty batch".into()));
        }
        self.submit_blocking(records, false)
    }

    fn submit_blocking(
        &self,
        records: Vec<(u8, u64, Vec<u8>)>,
        barrier: bool,
    ) -> Result<u64, LogError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if self.enqueue(records, Waiter::Blocking(tx), barrier)? {
            group::drive(&self.inner);
        }
        rx.recv().unwrap_or(Err(LogError::Closed))
    }

    fn segment_for(&self, offset: u64) -> Option<Arc<Segment>> {
        let v = self.inner.view.read();
        let k = v.partition_point(|s| s.base <= offset);
        (k > 0).then(|| v[k - 1].clone())
    }

    /// Reads one record by offset. `Ok(None)` if `offset < start_offset()` or
    /// `offset >= next_offset()`.
    pub fn read(&self, offset: u64) -> Result<Option<OwnedRecord>, LogError> {
        self.read_with(offset, |kind, timestamp_ms, payload| OwnedRecord {
            offset,
            kind,
            timestamp_ms,
            payload: payload.to_vec(),
        })
    }

    /// Calls `f(kind, timestamp_ms, payload)` with the payload borrowed from the mmap (sealed
    /// segments) or from a `pread` buffer (active segment).
    pub fn read_with<R>(
        &self,
        offset: u64,
        f: impl FnOnce(u8, u64, &[u8]) -> R,
    ) -> Result<Option<R>, LogError> {
        let Some(seg) = self.segment_for(offset) else {
            return Ok(None);
        };
        let mut win = segment::Window::new(segment::Window::LOOKUP);
        let Some((pos, limit)) = seg.find(offset, &mut win)? else {
            return Ok(None);
        };
        let (h, payload) = seg.frame_at(pos, limit, offset, &mut win)?;
        Ok(Some(f(h.kind, h.timestamp_ms, &payload)))
    }

    /// Iterates records from `from` (clamped to `start_offset()`) to `next_offset()` as of the
    /// call. Stops after the first error.
    pub fn scan(&self, from: u64) -> LogIter<'_> {
        LogIter {
            log: self,
            next: from.max(self.start_offset()),
            end: self.next_offset(),
            cur: None,
            win: segment::Window::new(segment::Window::SCAN),
            done: false,
        }
    }

    /// First offset still stored.
    pub fn start_offset(&self) -> u64 {
        let v = self.inner.view.read();
        v.first().map_or(0, |s| s.base)
    }

    /// One past the last record visible to readers; equal to the offset the next append gets
    /// when no append is in flight.
    pub fn next_offset(&self) -> u64 {
        let v = self.inner.view.read();
        v.last().map_or(0, |s| s.next())
    }

    /// First offset whose record timestamp is >= `ts_ms`. Timestamps need not be monotonic:
    /// the answer is the first record (in offset order) with timestamp >= `ts_ms`.
    pub fn offset_for_timestamp(&self, ts_ms: u64) -> Result<Option<u64>, LogError> {
        // The answer lies in the first segment whose newest timestamp reaches `ts_ms` (the
        // running maximum first reaches it there); later segments only matter if that segment
        // was removed concurrently.
        let mut after = None;
        loop {
            let seg = {
                let v = self.inner.view.read();
                v.iter()
                    .filter(|s| after.is_none_or(|a| s.base > a))
                    .find(|s| s.max_ts().is_some_and(|m| m >= ts_ms))
                    .cloned()
            };
            let Some(seg) = seg else { return Ok(None) };
            if let Some(o) = seg.offset_for_timestamp(ts_ms)? {
                return Ok(Some(o));
            }
            after = Some(seg.base);
        }
    }

    /// Removes the leading sealed segments chosen by `drop_it` (stops at the first segment it
    /// rejects, and never removes the active one); returns records dropped.
    fn drop_front(&self, mut drop_it: impl FnMut(&Segment) -> bool) -> Result<u64, LogError> {
        // Not the writer lock: unlinking big files and the directory fsync take milliseconds,
        // and appends must not wait for them. Rolls only replace the last (active) entry of
        // the view and push behind it, so the leading sealed victims stay at the front; the
        // `front` lock keeps two removals from racing.
        let _f = self.inner.front.lock();
        let segs: Vec<Arc<Segment>> = self.inner.view.read().clone();
        let mut victims = Vec::new();
        for s in &segs {
            if !s.is_sealed() || !drop_it(s) {
                break;
            }
            victims.push(s.clone());
        }
        if victims.is_empty() {
            return Ok(0);
        }
        let mut removed = 0usize;
        let mut records = 0;
        let mut result = Ok(());
        // The newest victim with records is the one worth keeping: the others may be hollow
        // (a header and a trailer) or older files of a smaller roll size.
        let keep = victims
            .iter()
            .rposition(|s| matches!(s.body, segment::Body::Sealed(_)));
        let mut spare = None;
        for (i, s) in victims.iter().enumerate() {
            if keep == Some(i) {
                spare = self.inner.spares.rename(&self.inner.dir, s);
            }
            let renamed = keep == Some(i) && spare.is_some();
            if !renamed {
                if let Err(e) = fsutil::remove_if_exists(&s.path) {
                    result = Err(e);
                    break;
                }
            }
            removed += 1;
            records += s.next() - s.base;
            for name in [segment::idx_name(s.base), segment::tix_name(s.base)] {
                let _ = fsutil::remove_if_exists(&self.inner.dir.join(name));
            }
        }
        if removed > 0 {
            self.inner.view.write().drain(..removed);
        }
        let synced = result.and_then(|()| fsutil::fsync_dir(&self.inner.dir));
        let settled = match (spare, keep) {
            (Some(path), Some(i)) => {
                self.inner
                    .spares
                    .settle(path, victims[i].clone(), synced.is_ok())
            }
            _ => Ok(()),
        };
        synced?;
        settled?;
        Ok(records)
    }

    /// Drops every record of the sealed segment starting at `base`, keeping its offset range
    /// as a hollow segment (storage-format.md §3.4) so the segments stay contiguous; returns
    /// the records dropped (0 if there is no such sealed segment, or it is hollow already).
    /// The caller vouches that none of them is needed again, including by replay after a
    /// restart: reads of these offsets find nothing from now on.
    ///
    /// Durable when it returns. The replacement is atomic (temporary file, fdatasync,
    /// rename), so after a crash the segment is either whole or hollow; index files left
    /// behind by a crash are removed by recovery. Readers that already hold the segment keep
    /// reading its old mapping.
    pub fn hollow(&self, base: u64) -> Result<u64, LogError> {
        let _f = self.inner.front.lock();
        let Some(seg) = self.segment_for(base).filter(|s| s.base == base) else {
            return Ok(0);
        };
        let segment::Body::Sealed(sealed) = &seg.body else {
            return Ok(0);
        };
        let created = segment::header_created_ms(&sealed.map);
        let image = segment::encode_hollow(created, &sealed.trailer);
        let dir = &self.inner.dir;
        // The records' file becomes the spare: a second name first, so that the segment is
        // whole or hollow at every instant.
        let spare = self.inner.spares.link(dir, &seg);
        let replaced = fsutil::atomic_write(
            self.inner.io.as_ref(),
            dir,
            &segment::seg_name(base),
            &image,
            false,
        )
        .and_then(|()| {
            [segment::idx_name(base), segment::tix_name(base)]
                .iter()
                .try_for_each(|name| fsutil::remove_if_exists(&dir.join(name)))
        })
        .and_then(|()| fsutil::fsync_dir(dir));
        let settled = match spare {
            Some(p) => self.inner.spares.settle(p, seg.clone(), replaced.is_ok()),
            None => Ok(()),
        };
        replaced?;
        settled?;
        let hollow = Arc::new(Segment {
            base,
            path: seg.path.clone(),
            body: segment::Body::Hollow(segment::Hollow {
                trailer: sealed.trailer,
                file_len: image.len() as u64,
            }),
        });
        let mut v = self.inner.view.write();
        // Rolls only touch the last entry and push behind it; removals take `front`.
        if let Some(slot) = v.iter_mut().find(|s| s.base == base) {
            *slot = hollow;
        }
        Ok(sealed.trailer.next - base)
    }

    /// Deletes whole segments all of whose offsets are < `before` (never the active segment).
    /// Afterwards `start_offset()` is the base of the first remaining segment.
    pub fn truncate_front(&self, before: u64) -> Result<(), LogError> {
        self.drop_front(|s| s.next() <= before).map(|_| ())
    }

    /// Drops leading sealed segments whose newest record is older than
    /// `now_ms - max_age_ms`, and/or oldest sealed segments while the total size exceeds
    /// `max_bytes`. Returns the number of records dropped.
    pub fn enforce_retention(
        &self,
        now_ms: u64,
        max_age_ms: Option<u64>,
        max_bytes: Option<u64>,
    ) -> Result<u64, LogError> {
        let mut total = self.disk_bytes();
        let cutoff = max_age_ms.map(|a| now_ms.saturating_sub(a));
        self.drop_front(|s| {
            let old = cutoff.is_some_and(|c| s.max_ts().is_some_and(|m| m < c));
            let big = max_bytes.is_some_and(|m| total > m);
            if old || big {
                total = total.saturating_sub(s.bytes());
                true
            } else {
                false
            }
        })
    }

    /// A receiver of `next_offset()`, updated whenever new records become visible. Long-poll
    /// readers wait with `rx.wait_for(|&n| n > offset).await`.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.tail.subscribe()
    }

    /// Compaction helper: writes a checkpoint reflecting records `< upto`, then drops the
    /// whole segments that lie entirely below `upto`. A crash in between leaves the new
    /// checkpoint and some redundant records, which replay must tolerate (it starts at
    /// `max(upto, start_offset())`).
    pub fn checkpoint_and_truncate(&self, upto: u64, data: &[u8]) -> Result<(), LogError> {
        self.write_checkpoint(upto, data)?;
        self.truncate_front(upto)
    }

    /// Facts about every segment, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let segs: Vec<Arc<Segment>> = self.inner.view.read().clone();
        segs.iter().map(|s| s.info()).collect()
    }

    /// Bytes of all segments and indexes.
    pub fn disk_bytes(&self) -> u64 {
        let segs: Vec<Arc<Segment>> = self.inner.view.read().clone();
        segs.iter().map(|s| s.bytes()).sum()
    }

    /// Seals the active segment and starts a new one (no-op if the active segment is empty).
    pub fn roll(&self) -> Result<(), LogError> {
        let mut w = self.inner.writer.lock();
        if self.inner.is_poisoned() {
            return Err(LogError::Poisoned);
        }
        w.roll(&self.inner).map_err(|f| self.inner.fail(f))
    }

    /// Atomically replaces the checkpoint: state reflecting all records `< upto`.
    pub fn write_checkpoint(&self, upto: u64, data: &[u8]) -> Result<(), LogError> {
        let _g = self.inner.checkpoint_lock.lock();
        checkpoint::write(self.inner.io.as_ref(), &self.inner.dir, upto, data)
    }

    /// The newest checkpoint `(upto, data)`, if any.
    pub fn read_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        let _g = self.inner.checkpoint_lock.lock();
        checkpoint::read(&self.inner.dir)
    }

    /// Waits until everything appended so far is written and fdatasync'ed (any mode).
    /// Blocks the calling thread.
    pub fn flush(&self) -> Result<(), LogError> {
        self.submit_blocking(Vec::new(), true).map(|_| ())
    }

    /// Deletes every segment, index and the checkpoint, leaving an empty log whose next offset
    /// is unchanged (offsets are never reused). Durable when it returns.
    pub fn clear(&self) -> Result<(), LogError> {
        let end = {
            let mut w = self.inner.writer.lock();
            if self.inner.is_poisoned() {
                return Err(LogError::Poisoned);
            }
            // The new empty segment at the current end must exist before older ones go, so a
            // crash in between can never make offsets restart lower.
            w.roll(&self.inner).map_err(|f| self.inner.fail(f))?;
            w.cur.next
        };
        let _g = self.inner.checkpoint_lock.lock();
        fsutil::remove_if_exists(&self.inner.dir.join(CHECKPOINT_FILE))?;
        self.drop_front(|s| s.next() <= end)?;
        self.inner.spares.remove()?;
        fsutil::fsync_dir(&self.inner.dir)
    }
}

/// Iterator returned by [`Log::scan`].
pub struct LogIter<'a> {
    log: &'a Log,
    next: u64,
    end: u64,
    cur: Option<(Arc<Segment>, u64, u64)>,
    win: segment::Window,
    done: bool,
}

impl LogIter<'_> {
    fn step(&mut self) -> Result<Option<OwnedRecord>, LogError> {
        while !matches!(&self.cur, Some((s, _, _)) if self.next < s.next()) {
            let start = self.log.start_offset();
            if self.next < start {
                // Truncated away while iterating: continue at the new start.
                self.next = start;
            }
            if self.next >= self.end {
                return Ok(None);
            }
            if let Some((done, _, _)) = self.cur.take() {
                // A scan reads a segment once: keep resident memory at one segment's worth.
                done.release_pages();
            }
            let Some(seg) = self.log.segment_for(self.next) else {
                return Ok(None);
            };
            if seg.is_hollow() {
                // Nothing left to read here: carry on after its range.
                self.next = seg.next();
                continue;
            }
            self.win = segment::Window::new(segment::Window::SCAN);
            let Some((pos, limit)) = seg.find(self.next, &mut self.win)? else {
                return Ok(None);
            };
            self.cur = Some((seg, pos, limit));
        }
        let Some((seg, pos, limit)) = &mut self.cur else {
            return Ok(None);
        };
        let (h, payload) = seg.frame_at(*pos, *limit, self.next, &mut self.win)?;
        let rec = OwnedRecord {
            offset: self.next,
            kind: h.kind,
            timestamp_ms: h.timestamp_ms,
            payload: payload.into_owned(),
        };
        *pos += h.frame_len();
        self.next += 1;
        Ok(Some(rec))
    }
}

impl Iterator for LogIter<'_> {
    type Item = Result<OwnedRecord, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.next >= self.end {
            return None;
        }
        match self.step() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Fuzzing entry point (also run by unit tests): treats `data` as the contents of a log
/// directory, opens it, and reads everything. Must never panic or loop.
///
/// The first byte picks a mode: write `data` verbatim as the only segment; prefix it with a
/// valid segment header, plain or recycled (so frame parsing is explored); write a valid
/// sealed segment followed by `data` as its offset index and a second segment; or damage a
/// valid sealed segment's records (header and trailer intact) at positions/values taken
/// from `data`.
#[doc(hidden)]
pub fn fuzz_open_bytes(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(dir) = tempfile::tempdir() else { return };
    let d = dir.path();
    let seg0 = d.join(segment::seg_name(0));
    let write = |p: &Path, b: &[u8]| std::fs::write(p, b).is_ok();
    let build_sealed = |d: &Path| {
        let opts = LogOptions {
            index_interval_bytes: 64,
            ..LogOptions::default()
        };
        Log::open(d, opts).and_then(|(log, _)| {
            for i in 0..20u64 {
                log.append_blocking(1, i * 7 % 5, vec![i as u8; 40])?;
            }
            log.roll()
        })
    };
    let ok = match mode % 4 {
        0 => write(&seg0, rest),
        1 => {
            // The high bit of the mode picks a recycled segment's header (other tail rules).
            let mut b = if mode & 0x80 != 0 {
                segment::encode_recycled_header(0, 0)
            } else {
                segment::encode_header(0, 0)
            };
            b.extend_from_slice(rest);
            write(&seg0, &b)
        }
        3 => {
            // Damage records inside a sealed segment; its header and trailer stay valid.
            let mut ok = build_sealed(d).is_ok();
            if let Ok(mut b) = std::fs::read(&seg0) {
                let data_end = b.len().saturating_sub(TRAILER_LEN as usize);
                let body = data_end.saturating_sub(SEGMENT_HEADER_LEN as usize).max(1);
                for c in rest.chunks_exact(3) {
                    let at = SEGMENT_HEADER_LEN as usize
                        + (u16::from_le_bytes([c[0], c[1]]) as usize) % body;
                    if let Some(x) = b.get_mut(at) {
                        *x ^= c[2];
                    }
                }
                ok &= write(&seg0, &b);
            }
            ok
        }
        _ => {
            // A real sealed segment, then hostile index bytes and a hostile active segment.
            let built = build_sealed(d);
            let half = rest.len() / 2;
            let mut active = segment::encode_header(20, 0);
            active.extend_from_slice(&rest[half..]);
            built.is_ok()
                && write(&d.join(segment::idx_name(0)), &rest[..half])
                && write(&d.join(segment::seg_name(20)), &active)
        }
    };
    if !ok {
        return;
    }
    let _ = verify_dir(d);
    let opts = LogOptions {
        index_interval_bytes: 64,
        ..LogOptions::default()
    };
    if let Ok((log, _)) = Log::open(d, opts) {
        let next = log.next_offset();
        for r in log.scan(0).take(10_000) {
            if r.is_err() {
                break;
            }
        }
        for o in [0, 1, next / 2, next.saturating_sub(1), next, u64::MAX] {
            let _ = log.read(o);
        }
        for ts in [0, 1, 3, 1000, u64::MAX] {
            let _ = log.offset_for_timestamp(ts);
        }
        let _ = log.append_blocking(2, 2, b"after".to_vec());
        let _ = log.scan(0).take(10_000).count();
    }
}
