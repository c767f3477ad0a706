//! One queue: its metadata (mirrored from the catalog), its message log and the in-memory state
//! rebuilt from it, the long-poll wake-up, and its maintenance (checkpoints, compaction,
//! retention). Knows nothing of other queues; redrive and move tasks live in `redrive.rs`.
//!
//! Concurrency: `state` is a short synchronous lock; operations mutate it and then append
//! their record, so the log order may differ from memory order — records carry per-message
//! versions that make replay order-independent (see `records.rs`). A send appends first and
//! inserts after, because its offset is only known then. `gate` is held shared by every
//! mutating operation across mutate+append, and exclusively by checkpointing, so a checkpoint
//! sees memory that matches exactly the log below `next_offset`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{Notify, RwLock};

use super::attributes::QueueConfig;
use super::records::*;
use super::state::{DedupEntry, MsgMeta, Phase, QueueState, Snapshot, DEDUP_WINDOW_MS};
use crate::codec::{decode, decode_snapshot, encode};
use crate::error::ServiceResult;
use crate::log::{Log, LogOptions, SegmentInfo};
use crate::service::now_ms;

/// A remembered FIFO receive attempt: expiry and the (seq, receive number, receive time,
/// version) it returned.
pub type Attempt = (u64, Vec<(u64, u32, u64, u32)>);

/// Catalog-owned facts about a queue.
#[derive(Clone, Debug)]
pub struct QueueMeta {
    pub attributes: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub created_ms: u64,
    pub modified_ms: u64,
    pub config: QueueConfig,
}

pub struct Queue {
    pub id: u64,
    pub account: String,
    pub region: String,
    pub name: String,
    pub fifo: bool,
    pub meta: Mutex<QueueMeta>,
    pub log: Log,
    pub state: Mutex<QueueState>,
    pub gate: RwLock<()>,
    /// Woken on sends and visibility resets (see `wake`); parked long polls wait on it.
    pub notify: Notify,
    pub deleted: AtomicBool,
    since_checkpoint: AtomicU64,
    /// Payload bytes appended since the last checkpoint: a few live messages under a large
    /// send/delete history must still checkpoint, or restart replays the whole history.
    bytes_since_checkpoint: AtomicU64,
    /// Size of the last snapshot written, so checkpoint cost stays proportional to the replay
    /// it saves.
    snapshot_bytes: AtomicU64,
    /// One checkpoint at a time (the sweeper's and a shutdown's may overlap).
    checkpointing: tokio::sync::Mutex<()>,
    /// FIFO ReceiveRequestAttemptId → (expiry, what it returned). Kept in
    /// memory only: a retry after a restart receives afresh.
    pub attempts: Mutex<HashMap<String, Attempt>>,
}

/// Records appended since the last checkpoint before one is due (or the live count, if larger,
/// so checkpoint cost stays proportional to the log it saves replaying).
const CHECKPOINT_EVERY: u64 = 10_000;

/// Payload bytes appended since the last checkpoint before one is due (or the last snapshot's
/// size, if larger): bounds what a restart replays whatever the message sizes.
const CHECKPOINT_EVERY_BYTES: u64 = 64 << 20;

/// Most messages one compaction pass re-appends.
const MAX_RELOCATE: u64 = 50_000;

/// Most body bytes one compaction pass re-appends.
const MAX_RELOCATE_BYTES: u64 = 64 << 20;

/// Most messages and body bytes one relocation step re-appends with the queue's gate held
/// (sends and receives wait for it): about one fdatasync of 1 MiB.
const RELOCATE_STEP_MESSAGES: usize = 1_000;
const RELOCATE_STEP_BYTES: u64 = 1 << 20;

impl Queue {
    /// Opens the queue's log and rebuilds its state from checkpoint + replay.
    pub fn open(dir: &Path, opts: LogOptions, c: &CreateQueueRec) -> ServiceResult<Queue> {
        let (log, _report) = Log::open(dir, opts)?;
        let now = now_ms();
        let config = QueueConfig::from_attrs(&c.attributes, c.fifo);
        let (mut st, from) = match log.read_checkpoint()? {
            Some((upto, data)) => (
                QueueState::from_snapshot(decode_snapshot::<Snapshot>(&data)?, c.fifo, now),
                upto,
            ),
            None => (QueueState::new(c.fifo), 0),
        };
        // What is replayed now counts towards the next checkpoint, so a restart that had much
        // to replay soon writes one and the next restart does not replay it again.
        let (mut replayed, mut replayed_bytes) = (0u64, 0u64);
        for rec in log.scan(from.max(log.start_offset())) {
            let rec = rec?;
            replayed += 1;
            replayed_bytes += rec.payload.len() as u64;
            apply(
                &mut st,
                &config,
                rec.kind,
                rec.offset,
                rec.timestamp_ms,
                &rec.payload,
                now,
            )?;
        }
        st.release_all_held(now);
        let fifo = c.fifo;
        Ok(Queue {
            id: c.id,
            account: c.account.clone(),
            region: c.region.clone(),
            name: c.name.clone(),
            fifo,
            meta: Mutex::new(QueueMeta {
                config,
                attributes: c.attributes.clone(),
                tags: c.tags.clone(),
                created_ms: c.created_ms,
                modified_ms: c.created_ms,
            }),
            log,
            state: Mutex::new(st),
            gate: RwLock::new(()),
            notify: Notify::new(),
            deleted: AtomicBool::new(false),
            since_checkpoint: AtomicU64::new(replayed),
            bytes_since_checkpoint: AtomicU64::new(replayed_bytes),
            snapshot_bytes: AtomicU64::new(0),
            checkpointing: tokio::sync::Mutex::new(()),
            attempts: Mutex::new(HashMap::new()),
        })
    }

    pub fn arn(&self) -> String {
        format!("arn:aws:sqs:{}:{}:{}", self.region, self.account, self.name)
    }

    pub fn url(&self, base_url: &str) -> String {
        format!(
            "{}/{}/{}",
            base_url.trim_end_matches('/'),
            self.account,
            self.name
        )
    }

    pub fn config(&self) -> QueueConfig {
        self.meta.lock().config.clone()
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Wakes up to `n` parked long polls, one per message that became visible: waking every
    /// poller for each message would make a crowd of them race for it. (A poll that was woken
    /// but is dropped hands its wake-up on to the next waiter.)
    pub fn wake(&self, n: usize) {
        for _ in 0..n.min(16) {
            self.notify.notify_one();
        }
    }

    /// After a removal is durable: a FIFO group it unlocked can serve a parked poll now (AWS
    /// returns a long poll as soon as a message is available), so one poll per such group
    /// looks again.
    pub fn wake_unlocked(&self) {
        let n = self.state.lock().take_unlocked();
        self.wake(n);
    }

    /// After a state change: if a deadline earlier than any before appeared (a short delay, a
    /// short visibility timeout), every parked poll recomputes how long to sleep.
    pub fn rearm(&self, st: &mut QueueState) {
        if st.take_lowered() {
            self.notify.notify_waiters();
        }
    }

    pub fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Appends queue records in one batch (one durable write); returns the first offset.
    pub async fn append(&self, recs: Vec<(u8, Vec<u8>)>) -> ServiceResult<u64> {
        let now = now_ms();
        let n = recs.len() as u64;
        let bytes: u64 = recs.iter().map(|(_, p)| p.len() as u64).sum();
        let first = self
            .log
            .append_batch(recs.into_iter().map(|(k, p)| (k, now, p)).collect())
            .await?;
        self.since_checkpoint.fetch_add(n, Ordering::Relaxed);
        self.bytes_since_checkpoint
            .fetch_add(bytes, Ordering::Relaxed);
        Ok(first)
    }

    /// Appends fresh messages and makes them receivable; returns each one's seq and message id
    /// (on FIFO queues a duplicate within the deduplication window gets the original's, and is
    /// not stored again).
    pub async fn send(&self, mut recs: Vec<SendRec>) -> ServiceResult<Vec<(u64, u128)>> {
        let _g = self.gate.read().await;
        let cfg = self.config();
        let now = now_ms();
        let mut result = Vec::with_capacity(recs.len());
        {
            let mut st = self.state.lock();
            // Duplicates are dropped in place: records are a few hundred bytes each, and
            // most sends have no duplicate, so none has to move.
            recs.retain_mut(|r| {
                let key = dedup_key(&cfg, r);
                if let Some(k) = &key {
                    if let Some((id, seq)) = st.dedup_lookup(k, now) {
                        result.push((seq, id));
                        return false;
                    }
                }
                r.seq = st.alloc_seq();
                if let Some(k) = key {
                    st.dedup_insert(DedupEntry {
                        key: k,
                        expires_ms: dedup_from(r, now) + DEDUP_WINDOW_MS,
                        id: r.id,
                        seq: r.seq,
                    });
                }
                result.push((r.seq, r.id));
                true
            });
        }
        let fresh = recs;
        if fresh.is_empty() {
            return Ok(result);
        }
        let first = match self
            .append(fresh.iter().map(|r| (Q_SEND, encode(r))).collect())
            .await
        {
            Ok(f) => f,
            Err(e) => {
                let mut st = self.state.lock();
                for r in &fresh {
                    if let Some(k) = dedup_key(&cfg, r) {
                        st.dedup_forget(&k, r.seq);
                    }
                }
                return Err(e);
            }
        };
        let now = now_ms();
        {
            let mut st = self.state.lock();
            for (i, r) in fresh.iter().enumerate() {
                let m = MsgMeta::from_send(r, first + i as u64, cfg.fifo, now);
                st.insert(r.seq, m, r.group_id.as_deref(), now);
            }
            self.rearm(&mut st);
        }
        self.wake(fresh.len());
        Ok(result)
    }

    /// Reads a message's stored record (body, attributes) from the log.
    pub fn read_message(&self, offset: u64) -> ServiceResult<Option<SendRec>> {
        match self.log.read_with(offset, |_, _, p| decode::<SendRec>(p))? {
            Some(r) => Ok(Some(r?)),
            None => Ok(None),
        }
    }

    /// Logs removals (delete, expiry, moves) of messages already removed from memory.
    pub async fn log_removed(&self, kind: u8, seqs: Vec<u64>) -> ServiceResult<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        self.append(vec![(kind, encode(&seqs))]).await?;
        Ok(())
    }

    /// Periodic upkeep: drop expired messages, then checkpoint and compact when due.
    pub async fn maintain(self: &Arc<Self>) -> ServiceResult<()> {
        if self.is_deleted() {
            return Ok(());
        }
        let retention_ms = self.config().retention_s * 1000;
        {
            let _g = self.gate.read().await;
            let expired = self.state.lock().expire(now_ms(), retention_ms, 100_000);
            self.log_removed(Q_EXPIRED, expired).await?;
            self.wake_unlocked();
        }
        if self.checkpoint_due() {
            self.checkpoint().await?;
        }
        Ok(())
    }

    /// Whether enough was appended since the last checkpoint, in records or in bytes.
    pub fn checkpoint_due(&self) -> bool {
        let live = self.state.lock().len() as u64;
        let bytes_due = CHECKPOINT_EVERY_BYTES.max(self.snapshot_bytes.load(Ordering::Relaxed));
        self.since_checkpoint.load(Ordering::Relaxed) >= CHECKPOINT_EVERY.max(live)
            || self.bytes_since_checkpoint.load(Ordering::Relaxed) >= bytes_due
    }

    /// Relocates the few live messages of a sparse oldest segment, writes a checkpoint,
    /// truncates every segment below the oldest live message and hollows the sealed ones
    /// above it that hold no live message.
    ///
    /// The gate is held (no change in flight) only while the snapshot is taken, not while it
    /// is written: a queue with a million messages would otherwise stall every send and
    /// receive for the whole disk write. Changes made meanwhile get offsets from `upto` on,
    /// which the snapshot does not claim, and truncation stops at the oldest message the
    /// snapshot holds, so nothing they wrote is dropped.
    pub async fn checkpoint(self: &Arc<Self>) -> ServiceResult<()> {
        let _one = self.checkpointing.lock().await;
        self.relocate_sparse_head().await?;
        // Sealed segments that hold no live message. Counted before the gate is taken, to
        // keep the pass over every message out of the time sends wait: appends only ever go
        // to the active segment, so a sealed segment can only lose live messages meanwhile,
        // and one found dead now is still dead at the snapshot. Once the snapshot is durable,
        // replay starts after them and no read needs their bodies, so they can be hollowed
        // even where older live messages keep the head of the log in place.
        let dead: Vec<(u64, u64)> = {
            let segs = self.log.segments();
            let live = self.live_per_segment(&segs);
            segs.iter()
                .zip(&live)
                .filter(|(s, &n)| n == 0 && s.sealed && !s.hollow)
                .map(|(s, _)| (s.base_offset, s.next_offset))
                .collect()
        };
        let (upto, snap, min_live, since, bytes_since) = {
            let _g = self.gate.write().await;
            let upto = self.log.next_offset();
            let st = self.state.lock();
            let min_live = st.iter().map(|(_, m)| m.offset).min().unwrap_or(upto);
            (
                upto,
                encode(&st.snapshot()),
                min_live,
                self.since_checkpoint.load(Ordering::Relaxed),
                self.bytes_since_checkpoint.load(Ordering::Relaxed),
            )
        };
        let snapshot_bytes = snap.len() as u64;
        // Writing a large snapshot takes a while: off the async workers.
        let q = self.clone();
        tokio::task::spawn_blocking(move || {
            q.log.write_checkpoint(upto, &snap)?;
            q.log.truncate_front(min_live)?;
            for (base, next) in dead {
                if base >= min_live && next <= upto {
                    q.log.hollow(base)?;
                }
            }
            Ok::<_, crate::log::LogError>(())
        })
        .await
        .map_err(|e| crate::error::ServiceError::internal(e.to_string()))??;
        // Only what the snapshot covers is paid off; appends since count toward the next one.
        let pay = |c: &AtomicU64, n: u64| {
            let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
        };
        pay(&self.since_checkpoint, since);
        pay(&self.bytes_since_checkpoint, bytes_since);
        self.snapshot_bytes.store(snapshot_bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Live messages whose Send/Relocate record lies in each of `segs` (oldest first).
    fn live_per_segment(&self, segs: &[SegmentInfo]) -> Vec<u64> {
        let mut live = vec![0u64; segs.len()];
        for (_, m) in self.state.lock().iter() {
            let i = segs.partition_point(|s| s.base_offset <= m.offset);
            live[i.saturating_sub(1)] += 1;
        }
        live
    }

    async fn relocate_sparse_head(&self) -> ServiceResult<()> {
        let segs = self.log.segments();
        if segs.len() < 2 {
            return Ok(());
        }
        // The active last segment is never compacted.
        let live = self.live_per_segment(&segs);
        // The leading run of sparse segments (under a quarter of their records live): dense
        // ones are left alone, since relocating them would rewrite most of the log — unless
        // the log as a whole is mostly dead (long-lived messages at the head, a long
        // send/delete history behind them), where moving the head forward, MAX_RELOCATE
        // messages per checkpoint, is what lets the history behind it be dropped.
        // Records still on disk: hollow segments hold none.
        let total: u64 = segs
            .iter()
            .filter(|s| !s.hollow)
            .map(|s| s.next_offset - s.base_offset)
            .sum();
        // Dead by records, or by bytes: segments holding nothing live outweigh those that do
        // (a few big history messages are few records but most of the disk).
        let (dead_bytes, live_bytes) = segs.iter().zip(&live).fold((0, 0), |(d, l), (s, &n)| {
            if n == 0 {
                (d + s.bytes, l)
            } else {
                (d, l + s.bytes)
            }
        });
        let mostly_dead = live.iter().sum::<u64>() * 4 < total || dead_bytes > live_bytes;
        let mut end = None;
        let mut moved = 0;
        for (i, seg) in segs[..segs.len() - 1].iter().enumerate() {
            let records = seg.next_offset.saturating_sub(seg.base_offset).max(1);
            if live[i] * 4 > records && !mostly_dead {
                break;
            }
            if moved + live[i] > MAX_RELOCATE {
                // A dense head segment can hold more than one pass may move: in a mostly dead
                // log, move its oldest MAX_RELOCATE now and the rest on later passes.
                if mostly_dead && end.is_none() {
                    end = Some(seg.next_offset);
                }
                break;
            }
            moved += live[i];
            end = Some(seg.next_offset);
        }
        let Some(end) = end else { return Ok(()) };
        let mut victims: Vec<(u64, MsgMeta)> = {
            let st = self.state.lock();
            st.iter()
                .filter(|(_, m)| m.offset < end)
                .map(|(s, m)| (s, *m))
                .collect()
        };
        // Oldest first, so a pass that stops early has still moved the head forward.
        victims.sort_unstable_by_key(|(_, m)| m.offset);
        victims.truncate(MAX_RELOCATE as usize);
        let mut moved_bytes = 0;
        let mut i = 0;
        while i < victims.len() && moved_bytes < MAX_RELOCATE_BYTES {
            // Bodies are read without the gate (a stored body never changes); only each
            // step's re-append holds it, so sends and receives wait for one ~1 MiB write and
            // fdatasync at most, not for the whole pass.
            let mut step = Vec::new();
            let mut step_bytes = 0;
            while i < victims.len()
                && step.len() < RELOCATE_STEP_MESSAGES
                && step_bytes < RELOCATE_STEP_BYTES
            {
                let offset = victims[i].1.offset;
                i += 1;
                if let Some(r) = self.read_message(offset)? {
                    step_bytes += r.body.len() as u64;
                    step.push((offset, r));
                }
            }
            moved_bytes += step_bytes;
            self.relocate_step(step).await?;
        }
        Ok(())
    }

    /// Re-appends `step` (bodies read at the given offsets) and points the messages at their
    /// new records, with the gate held. What changed since the bodies were read wins: a
    /// message deleted or moved meanwhile is skipped, and receive state is taken as it is now.
    pub(super) async fn relocate_step(&self, step: Vec<(u64, SendRec)>) -> ServiceResult<()> {
        let _g = self.gate.write().await;
        let recs: Vec<SendRec> = {
            let st = self.state.lock();
            step.into_iter()
                .filter_map(|(offset, mut r)| {
                    let m = st.get(r.seq).filter(|m| m.offset == offset)?;
                    r.visible_at = m.visible_at;
                    r.receive_count = m.receive_count;
                    r.first_receive_ms = m.first_receive_ms;
                    r.version = m.version;
                    r.inflight = m.phase == Phase::Inflight;
                    Some(r)
                })
                .collect()
        };
        if recs.is_empty() {
            return Ok(());
        }
        let first = self
            .append(recs.iter().map(|r| (Q_RELOCATE, encode(r))).collect())
            .await?;
        let mut st = self.state.lock();
        for (i, r) in recs.iter().enumerate() {
            st.set_offset(r.seq, first + i as u64);
        }
        Ok(())
    }
}

/// Applies one queue-log record during replay.
fn apply(
    st: &mut QueueState,
    cfg: &QueueConfig,
    kind: u8,
    offset: u64,
    ts: u64,
    payload: &[u8],
    now: u64,
) -> ServiceResult<()> {
    match kind {
        Q_SEND => {
            let r: SendRec = decode(payload)?;
            let kept = st.insert(
                r.seq,
                MsgMeta::from_send(&r, offset, cfg.fifo, ts),
                r.group_id.as_deref(),
                now,
            );
            // A send a purge overtook (its record after the purge's) admitted nothing, live
            // or replayed: its deduplication id is not remembered either.
            if let Some(key) = dedup_key(cfg, &r).filter(|_| kept) {
                st.dedup_insert(DedupEntry {
                    key,
                    expires_ms: dedup_from(&r, ts) + DEDUP_WINDOW_MS,
                    id: r.id,
                    seq: r.seq,
                });
            }
        }
        Q_RELOCATE => {
            let r: SendRec = decode(payload)?;
            st.relocate(
                r.seq,
                MsgMeta::from_send(&r, offset, cfg.fifo, ts),
                r.group_id.as_deref(),
                now,
            );
        }
        Q_RECEIVE => {
            for e in decode::<Vec<ReceiveEntry>>(payload)? {
                st.apply_receive(&e, now);
            }
        }
        Q_VISIBILITY => {
            for e in decode::<Vec<VisibilityEntry>>(payload)? {
                st.apply_visibility(&e, now);
            }
        }
        Q_DELETE | Q_MOVED | Q_EXPIRED => {
            for s in decode::<Vec<u64>>(payload)? {
                st.remove(s);
            }
        }
        Q_PURGE => {
            let p: PurgeRec = decode(payload)?;
            st.apply_purge(p.below_seq, ts);
        }
        other => tracing::warn!(
            kind = other,
            offset,
            "unknown sqs queue record kind; skipped"
        ),
    }
    Ok(())
}

/// The FIFO deduplication key of a message: its deduplication id, scoped to its message group
/// when DeduplicationScope is messageGroup. None on standard queues.
/// Where a stored message's deduplication window starts: its send, or for a dead-lettered
/// copy (keyed by its message id, see [`dedup_key`]) its arrival `appended_ms`, so that a move
/// repeated after a crash is dropped however old the message is.
fn dedup_from(r: &SendRec, appended_ms: u64) -> u64 {
    if r.dlq_source.is_some() {
        appended_ms
    } else {
        r.sent_ms
    }
}

/// The deduplication key a stored message holds for its window, if any.
///
/// A dead-lettered copy, in a FIFO or a standard queue, is keyed by its message id: a
/// dead-letter move repeated after a crash (sent here, but its removal at the source not yet
/// logged) then lands once. The key starts with a newline, which no client's key can: a
/// deduplication id has none, and a group id, which comes first, is never empty. Otherwise a
/// standard queue deduplicates nothing, and a FIFO queue keys by the deduplication id (per
/// group unless deduplication is queue-wide).
fn dedup_key(cfg: &QueueConfig, r: &SendRec) -> Option<String> {
    if r.dlq_source.is_some() {
        return Some(format!("\ndead-letter:{:032x}", r.id));
    }
    if !cfg.fifo {
        return None;
    }
    let d = r.dedup_id.as_ref()?;
    Some(if cfg.dedup_scope_queue {
        d.clone()
    } else {
        format!("{}\n{}", r.group_id.as_deref().unwrap_or_default(), d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A send whose record lands after a purge that overtook it admitted nothing: replay
    /// neither keeps the message nor remembers its deduplication id.
    #[test]
    fn replayed_send_overtaken_by_a_purge_remembers_no_deduplication_id() {
        let cfg = QueueConfig {
            delay_s: 0,
            max_size: 1 << 20,
            retention_s: 345_600,
            wait_s: 0,
            visibility_s: 30,
            redrive: None,
            fifo: true,
            content_based_dedup: false,
            dedup_scope_queue: true,
        };
        let send = SendRec {
            seq: 0,
            id: 7,
            sent_ms: 1_000,
            visible_at: 1_000,
            body: "m".into(),
            attrs: Default::default(),
            system_attrs: Default::default(),
            sender_id: "s".into(),
            group_id: Some("g".into()),
            dedup_id: Some("d".into()),
            dlq_source: None,
            receive_count: 0,
            first_receive_ms: 0,
            version: 0,
            inflight: false,
        };
        let mut st = QueueState::new(true);
        apply(
            &mut st,
            &cfg,
            Q_PURGE,
            0,
            1_000,
            &encode(&PurgeRec { below_seq: 1 }),
            1_000,
        )
        .unwrap();
        apply(&mut st, &cfg, Q_SEND, 1, 1_000, &encode(&send), 1_000).unwrap();
        assert_eq!(st.counts(1_000), (0, 0, 0));
        assert_eq!(st.dedup_lookup("d", 1_000), None);
    }
}
