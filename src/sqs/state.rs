//! The in-memory state machine of one queue's messages, pure and clock-injected (every method
//! takes `now` in ms), so it is testable without a log or a runtime. Owns no I/O.
//!
//! Per message it keeps a fixed [`MsgMeta`] (64 bytes: the body and attributes stay on disk at
//! `offset`). Three indexes make every operation O(log n) in the queue size:
//! - `msgs`: all live messages by queue-local `seq` (send order);
//! - `ready`: seqs visible now, received lowest seq first;
//! - `timers`: (visible-at deadline, seq) of delayed and in-flight messages; `promote` moves the
//!   due ones to `ready`, and `next_deadline` tells long polls when to look again.
//!
//! FIFO queues add message groups: each group keeps its own ready and in-flight seqs, and
//! `avail` orders the groups that may deliver (a ready message before anything of theirs in
//! flight) by their oldest ready seq, so a receive takes the oldest unlocked group's messages
//! in order without scanning locked ones. FIFO queues keep the 5-minute deduplication table
//! (standard ones use it for dead-lettered copies only).

use std::collections::{BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::records::{ReceiveEntry, SendRec, VisibilityEntry};
use super::table::MsgTable;

/// `MsgMeta::group` of a message outside any FIFO message group.
pub const NO_GROUP: u32 = u32::MAX;

/// A FIFO message's place in the queue: (seq it ranks at, 0 if it rejoined there after a
/// receive else 1, order of rejoining). See [`QueueState::position`].
type Position = (u64, u8, u64);

/// How long FIFO queues remember a deduplication id.
pub const DEDUP_WINDOW_MS: u64 = 5 * 60 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Ready,
    /// Sent with a delay and not yet visible.
    Delayed,
    /// Received, visibility timeout running.
    Inflight,
    /// Taken out of circulation while being moved to another queue.
    Held,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MsgMeta {
    /// Log offset of the Send/Relocate record holding body and attributes.
    pub offset: u64,
    /// Where retention counts from (see [`MsgMeta::from_send`]).
    pub retained_from_ms: u64,
    pub visible_at: u64,
    pub first_receive_ms: u64,
    pub receive_count: u32,
    pub version: u32,
    /// Interned FIFO message group, or [`NO_GROUP`].
    pub group: u32,
    /// Low 32 bits of the message id: receipt handles must match it (the full id is on disk).
    pub tag: u32,
    pub phase: Phase,
}

impl MsgMeta {
    /// The live state of a stored message. `appended_ms`: when its record was appended.
    /// Retention counts from SentTimestamp, except for a message dead-lettered into a FIFO
    /// queue: AWS resets its enqueue time at the move ("Setting-up dead-letter queue
    /// retention", SQS Developer Guide), while its SentTimestamp stays the original.
    pub fn from_send(r: &SendRec, offset: u64, fifo: bool, appended_ms: u64) -> MsgMeta {
        let retained_from_ms = if fifo && r.dlq_source.is_some() {
            appended_ms
        } else {
            r.sent_ms
        };
        MsgMeta {
            offset,
            retained_from_ms,
            visible_at: r.visible_at,
            first_receive_ms: r.first_receive_ms,
            receive_count: r.receive_count,
            version: r.version,
            group: NO_GROUP,
            tag: r.id as u32,
            phase: if r.inflight {
                Phase::Inflight
            } else {
                Phase::Delayed
            },
        }
    }
}

/// Why a visibility change was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum VisError {
    /// The message is gone (deleted, expired, moved) or the handle is from an older receive.
    Expired,
    NotInflight,
}

/// A remembered FIFO deduplication id: the message it first admitted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DedupEntry {
    pub key: String,
    pub expires_ms: u64,
    pub id: u128,
    pub seq: u64,
}

/// A checkpoint of a queue's state, as decoded.
#[derive(Default, Deserialize)]
pub struct Snapshot {
    pub next_seq: u64,
    pub purge_below: u64,
    pub last_purge_ms: u64,
    pub msgs: Vec<(u64, MsgMeta)>,
    pub groups: Vec<(u32, String)>,
    pub dedup: Vec<DedupEntry>,
}

/// The same checkpoint as encoded: borrows the message map, so checkpointing a large queue
/// does not first copy every message.
#[derive(Serialize)]
pub struct SnapshotRef<'a> {
    pub next_seq: u64,
    pub purge_below: u64,
    pub last_purge_ms: u64,
    pub msgs: &'a MsgTable,
    pub groups: Vec<(u32, String)>,
    pub dedup: Vec<&'a DedupEntry>,
}

/// What one `take` produced.
#[derive(Default, Debug)]
pub struct Taken {
    /// Delivered: seq and the message's new state.
    pub delivered: Vec<(u64, MsgMeta)>,
    /// Past their retention period; removed from memory, to be logged as expired.
    pub expired: Vec<u64>,
    /// Over maxReceiveCount: now `Held`, to be moved to the dead-letter queue.
    pub redrive: Vec<(u64, MsgMeta)>,
}

#[derive(Default)]
struct Group {
    name: String,
    ready: BTreeSet<u64>,
    /// Seqs in flight: a group delivers only what comes before the first of them.
    inflight: BTreeSet<u64>,
    live: u32,
}

#[derive(Default)]
pub struct QueueState {
    msgs: MsgTable,
    ready: BTreeSet<u64>,
    timers: BTreeSet<(u64, u64)>,
    pub next_seq: u64,
    pub purge_below: u64,
    pub last_purge_ms: u64,
    n_delayed: usize,
    n_inflight: usize,
    fifo: bool,
    groups: HashMap<u32, Group>,
    group_ids: HashMap<String, u32>,
    next_group: u32,
    /// (queue position of its oldest ready message, group) of every FIFO group that may
    /// deliver (see `avail_key`).
    avail: BTreeSet<(Position, u32)>,
    /// FIFO messages that are ready again after a receive: where they rejoined the queue
    /// (see [`QueueState::position`]). Memory only: a restart ranks them again as it restores
    /// them.
    returned: HashMap<u64, (u64, u64)>,
    /// Counts returns, to rank messages that rejoined at the same point.
    return_clock: u64,
    dedup: HashMap<String, DedupEntry>,
    dedup_order: VecDeque<(u64, String)>,
    /// Set when a new earliest deadline appeared: parked polls sleeping until a later one must
    /// look again (see `take_lowered`).
    lowered: bool,
    /// FIFO groups whose lock ended (nothing left in flight) with a message ready: each can
    /// serve a parked poll at once (see `take_unlocked`).
    unlocked: usize,
}

impl QueueState {
    pub fn new(fifo: bool) -> QueueState {
        QueueState {
            fifo,
            ..Default::default()
        }
    }

    pub fn alloc_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    pub fn get(&self, seq: u64) -> Option<&MsgMeta> {
        self.msgs.get(seq)
    }

    /// Every live message, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &MsgMeta)> {
        self.msgs.iter()
    }

    // FIFO groups.

    /// The interned id of a FIFO message group (NO_GROUP on standard queues).
    pub fn group_id(&mut self, name: Option<&str>) -> u32 {
        let Some(name) = name.filter(|_| self.fifo) else {
            return NO_GROUP;
        };
        if let Some(&g) = self.group_ids.get(name) {
            return g;
        }
        while self.groups.contains_key(&self.next_group) || self.next_group == NO_GROUP {
            self.next_group = self.next_group.wrapping_add(1);
        }
        let g = self.next_group;
        self.next_group = self.next_group.wrapping_add(1);
        self.group_ids.insert(name.to_string(), g);
        self.groups.insert(
            g,
            Group {
                name: name.to_string(),
                ..Default::default()
            },
        );
        g
    }

    /// A group may deliver while its oldest ready message comes before everything of it in
    /// flight: AWS hands out a message whose visibility ran out even while later ones of its
    /// group are still in flight, but nothing after those (LocalStack's AWS-validated
    /// test_fifo_message_group_visibility_after_terminate_visibility_timeout).
    fn avail_key(&self, g: u32) -> Option<(Position, u32)> {
        let gr = self.groups.get(&g)?;
        let first = *gr.ready.first()?;
        if gr.inflight.first().is_some_and(|&i| i < first) {
            return None;
        }
        Some((self.position(first), g))
    }

    /// Where a ready FIFO message stands in the queue, which orders the groups: its seq if it
    /// was never received; else where it rejoined, behind everything sent before that and
    /// before anything sent after. So a group received and returned goes behind groups not
    /// yet served, as on AWS (LocalStack's AWS-validated
    /// test_fifo_receive_message_with_zero_visibility_timeout and
    /// test_fifo_message_group_visibility_after_terminate_visibility_timeout). Within a
    /// group, delivery stays in seq order.
    fn position(&self, seq: u64) -> Position {
        match self.returned.get(&seq) {
            Some(&(at, n)) => (at, 0, n),
            None => (seq, 1, 0),
        }
    }

    /// A received message is ready again: it rejoins the queue here.
    fn ready_again(&mut self, seq: u64, g: u32) {
        if self.fifo {
            self.return_clock += 1;
            self.returned
                .insert(seq, (self.next_seq, self.return_clock));
        }
        self.ready_add(seq, g);
    }

    /// Mutates a group and keeps `avail` in step with it.
    fn with_group(&mut self, g: u32, f: impl FnOnce(&mut Group)) {
        if g == NO_GROUP || !self.groups.contains_key(&g) {
            return;
        }
        let before = self.avail_key(g);
        if let Some(gr) = self.groups.get_mut(&g) {
            f(gr);
        }
        let after = self.avail_key(g);
        if before != after {
            if let Some(b) = before {
                self.avail.remove(&b);
            }
            if let Some(a) = after {
                self.avail.insert(a);
            }
        }
    }

    fn ready_add(&mut self, seq: u64, g: u32) {
        self.ready.insert(seq);
        self.with_group(g, |gr| {
            gr.ready.insert(seq);
        });
    }

    fn ready_remove(&mut self, seq: u64, g: u32) {
        self.ready.remove(&seq);
        self.with_group(g, |gr| {
            gr.ready.remove(&seq);
        });
        if self.fifo {
            self.returned.remove(&seq);
        }
    }

    fn inflight_add(&mut self, seq: u64, g: u32) {
        self.n_inflight += 1;
        self.with_group(g, |gr| {
            gr.inflight.insert(seq);
        });
    }

    fn inflight_sub(&mut self, seq: u64, g: u32) {
        self.n_inflight = self.n_inflight.saturating_sub(1);
        let locked = self.avail_key(g).is_none();
        self.with_group(g, |gr| {
            gr.inflight.remove(&seq);
        });
        if locked && self.avail_key(g).is_some() {
            self.unlocked += 1;
        }
    }

    fn group_unref(&mut self, g: u32) {
        let gone = match self.groups.get_mut(&g) {
            Some(gr) => {
                gr.live = gr.live.saturating_sub(1);
                gr.live == 0
            }
            None => false,
        };
        if gone {
            if let Some(k) = self.avail_key(g) {
                self.avail.remove(&k);
            }
            if let Some(gr) = self.groups.remove(&g) {
                self.group_ids.remove(&gr.name);
            }
        }
    }

    // FIFO deduplication.

    /// The message a deduplication key already admitted within the window, if any.
    pub fn dedup_lookup(&mut self, key: &str, now: u64) -> Option<(u128, u64)> {
        while let Some((exp, k)) = self.dedup_order.front() {
            if *exp > now {
                break;
            }
            if self.dedup.get(k).is_some_and(|d| d.expires_ms <= now) {
                self.dedup.remove(k);
            }
            self.dedup_order.pop_front();
        }
        self.dedup
            .get(key)
            .filter(|d| d.expires_ms > now)
            .map(|d| (d.id, d.seq))
    }

    pub fn dedup_insert(&mut self, e: DedupEntry) {
        self.dedup_order.push_back((e.expires_ms, e.key.clone()));
        self.dedup.insert(e.key.clone(), e);
    }

    /// Forgets a key whose send failed to reach the log.
    pub fn dedup_forget(&mut self, key: &str, seq: u64) {
        if self.dedup.get(key).is_some_and(|d| d.seq == seq) {
            self.dedup.remove(key);
        }
    }

    // Indexes.

    fn unindex(&mut self, seq: u64, m: &MsgMeta) {
        match m.phase {
            Phase::Ready => self.ready_remove(seq, m.group),
            Phase::Delayed => {
                self.timers.remove(&(m.visible_at, seq));
                self.n_delayed = self.n_delayed.saturating_sub(1);
            }
            Phase::Inflight => {
                self.timers.remove(&(m.visible_at, seq));
                self.inflight_sub(seq, m.group);
            }
            Phase::Held => {}
        }
    }

    /// Files a message under the index its state calls for; `phase` Delayed/Inflight are
    /// re-derived from the deadline so a replayed past deadline lands in `ready`.
    fn index(&mut self, seq: u64, m: &mut MsgMeta, now: u64) {
        if m.phase == Phase::Held {
            return;
        }
        if m.visible_at > now {
            self.timer_add(m.visible_at, seq);
            if m.receive_count > 0 {
                m.phase = Phase::Inflight;
                self.inflight_add(seq, m.group);
            } else {
                m.phase = Phase::Delayed;
                self.n_delayed += 1;
            }
        } else {
            m.phase = Phase::Ready;
            if m.receive_count > 0 {
                self.ready_again(seq, m.group);
            } else {
                self.ready_add(seq, m.group);
            }
        }
    }

    /// Adds a sent (or relocated) message of FIFO group `group` (None on standard queues).
    /// False if a purge already covered its seq.
    pub fn insert(&mut self, seq: u64, mut m: MsgMeta, group: Option<&str>, now: u64) -> bool {
        if seq < self.purge_below {
            return false;
        }
        if let Some(old) = self.msgs.remove(seq) {
            self.unindex(seq, &old);
            self.group_unref(old.group);
        }
        m.group = self.group_id(group);
        if let Some(gr) = self.groups.get_mut(&m.group) {
            gr.live += 1;
        }
        if m.phase != Phase::Held {
            m.phase = Phase::Delayed;
        }
        self.index(seq, &mut m, now);
        self.msgs.insert(seq, m);
        self.next_seq = self.next_seq.max(seq + 1);
        true
    }

    /// Applies a relocation: the record's state wins unless memory already saw a newer version.
    pub fn relocate(&mut self, seq: u64, mut m: MsgMeta, group: Option<&str>, now: u64) {
        match self.msgs.get_mut(seq) {
            Some(cur) if cur.version > m.version => cur.offset = m.offset,
            cur => {
                // A relocated copy is appended later than the message was: its retention
                // still counts from where the message's did.
                if let Some(cur) = cur {
                    m.retained_from_ms = cur.retained_from_ms;
                }
                self.insert(seq, m, group, now);
            }
        }
    }

    /// Points a live message at its relocated record.
    pub fn set_offset(&mut self, seq: u64, offset: u64) {
        if let Some(m) = self.msgs.get_mut(seq) {
            m.offset = offset;
        }
    }

    /// Moves every message whose deadline has passed into `ready`.
    pub fn promote(&mut self, now: u64) {
        while let Some(&(t, seq)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            let Some(m) = self.msgs.get(seq).copied() else {
                continue;
            };
            match m.phase {
                Phase::Delayed => self.n_delayed = self.n_delayed.saturating_sub(1),
                Phase::Inflight => self.inflight_sub(seq, m.group),
                _ => continue,
            }
            if let Some(mm) = self.msgs.get_mut(seq) {
                mm.phase = Phase::Ready;
            }
            if m.phase == Phase::Inflight {
                self.ready_again(seq, m.group);
            } else {
                self.ready_add(seq, m.group);
            }
        }
    }

    fn timer_add(&mut self, t: u64, seq: u64) {
        if self.timers.first().is_none_or(|f| (t, seq) < *f) {
            self.lowered = true;
        }
        self.timers.insert((t, seq));
    }

    /// How many FIFO groups became receivable by losing their in-flight message since the
    /// last call.
    pub fn take_unlocked(&mut self) -> usize {
        std::mem::take(&mut self.unlocked)
    }

    /// Whether the earliest deadline moved earlier since the last call.
    pub fn take_lowered(&mut self) -> bool {
        std::mem::take(&mut self.lowered)
    }

    pub fn next_deadline(&self) -> Option<u64> {
        self.timers.first().map(|&(t, _)| t)
    }

    /// (visible, in flight, delayed) as of `now`.
    pub fn counts(&mut self, now: u64) -> (usize, usize, usize) {
        self.promote(now);
        (self.ready.len(), self.n_inflight, self.n_delayed)
    }

    /// The next seq `take` would consider: the lowest ready one, or on FIFO queues the oldest
    /// message of the oldest group that may deliver.
    fn next_ready(&self, group: Option<u32>) -> Option<u64> {
        match group {
            Some(g) => self.groups.get(&g)?.ready.first().copied(),
            None if self.fifo => {
                let &(_, g) = self.avail.first()?;
                self.groups.get(&g)?.ready.first().copied()
            }
            None => self.ready.first().copied(),
        }
    }

    /// Receives up to `max` visible messages for `visibility_ms`. Messages past `retention_ms`
    /// are dropped instead; with `max_receive` (a redrive policy) a message already received
    /// that many times is held for the dead-letter queue instead of delivered. On FIFO queues
    /// a receive drains the oldest unlocked group in order before moving to the next.
    pub fn take(
        &mut self,
        now: u64,
        max: usize,
        visibility_ms: u64,
        retention_ms: u64,
        max_receive: Option<u32>,
    ) -> Taken {
        self.promote(now);
        let mut out = Taken::default();
        // The FIFO group being drained (it stays ours after its first delivery locks it), and
        // the first of its seqs that was in flight before: nothing from there on is ours.
        let mut current: Option<(u32, Option<u64>)> = None;
        while out.delivered.len() < max {
            let next = match current {
                Some((g, bound)) => self
                    .next_ready(Some(g))
                    .filter(|s| bound.is_none_or(|b| *s < b)),
                None => self.next_ready(None),
            };
            let seq = match next {
                Some(s) => s,
                None if current.is_some() => {
                    current = None;
                    continue;
                }
                None => break,
            };
            let Some(mut m) = self.msgs.get(seq).copied() else {
                self.ready.remove(&seq);
                if self.fifo {
                    self.returned.remove(&seq);
                }
                continue;
            };
            if self.fifo && current.is_none() {
                let bound = self
                    .groups
                    .get(&m.group)
                    .and_then(|gr| gr.inflight.first().copied());
                current = Some((m.group, bound));
            }
            self.ready_remove(seq, m.group);
            if m.retained_from_ms.saturating_add(retention_ms) <= now {
                self.msgs.remove(seq);
                self.group_unref(m.group);
                out.expired.push(seq);
                continue;
            }
            if max_receive.is_some_and(|mr| m.receive_count >= mr) {
                m.phase = Phase::Held;
                m.version += 1;
                self.msgs.insert(seq, m);
                out.redrive.push((seq, m));
                continue;
            }
            m.receive_count += 1;
            if m.first_receive_ms == 0 {
                m.first_receive_ms = now;
            }
            m.version += 1;
            m.visible_at = now + visibility_ms;
            m.phase = Phase::Inflight;
            self.timer_add(m.visible_at, seq);
            self.inflight_add(seq, m.group);
            self.msgs.insert(seq, m);
            out.delivered.push((seq, m));
        }
        out
    }

    /// Takes the next visible message out of circulation for a move task.
    pub fn hold_next(&mut self, now: u64) -> Option<(u64, MsgMeta)> {
        self.promote(now);
        let seq = self.next_ready(None)?;
        let mut m = *self.msgs.get(seq)?;
        self.ready_remove(seq, m.group);
        m.phase = Phase::Held;
        m.version += 1;
        self.msgs.insert(seq, m);
        Some((seq, m))
    }

    /// Puts a held message back (its move failed).
    pub fn release(&mut self, seq: u64, now: u64) {
        if let Some(mut m) = self.msgs.get(seq).copied() {
            if m.phase == Phase::Held {
                m.phase = Phase::Delayed;
                m.visible_at = now;
                self.index(seq, &mut m, now);
                self.msgs.insert(seq, m);
            }
        }
    }

    /// Changes the visibility deadline of the message received as receive number `generation`;
    /// the change to record, or `None` if there is none.
    ///
    /// `strict` (FIFO queues): only that receive's handle. Otherwise (standard queues) any
    /// earlier receive's handle of the message changes the message while it is in flight, as
    /// AWS does (LocalStack's AWS-validated test_terminate_visibility_timeout_after_receive).
    pub fn change_visibility(
        &mut self,
        seq: u64,
        generation: u32,
        visible_at: u64,
        now: u64,
        strict: bool,
    ) -> Result<Option<VisibilityEntry>, VisError> {
        self.promote(now);
        let Some(mut m) = self.msgs.get(seq).copied() else {
            return Err(VisError::Expired);
        };
        if strict && m.receive_count != generation {
            return Err(VisError::Expired);
        }
        // On a standard queue a message whose visibility ran out is still the last receive's,
        // until it is received again: that receive's handle hides it again, and a deadline of
        // now leaves it as it is. AWS answers 200 there (LocalStack's AWS-recorded
        // test_change_message_visibility_after_visibility_timeout_expiration), so a consumer's
        // heartbeat that comes a little late still keeps the message from a second consumer.
        // Not on a FIFO queue (`strict`), where the handle expires with its visibility window,
        // as DeleteMessage answers for it (`remove_by_handle`).
        let returned = !strict
            && m.phase == Phase::Ready
            && m.receive_count > 0
            && m.receive_count == generation;
        // Nothing changes, so nothing is recorded.
        if returned && visible_at <= now {
            return Ok(None);
        }
        if m.phase != Phase::Inflight && !returned {
            return Err(VisError::NotInflight);
        }
        self.unindex(seq, &m);
        m.version += 1;
        m.visible_at = visible_at;
        self.index(seq, &mut m, now);
        self.msgs.insert(seq, m);
        Ok(Some(VisibilityEntry {
            seq,
            version: m.version,
            visible_at,
        }))
    }

    pub fn remove(&mut self, seq: u64) -> Option<MsgMeta> {
        let m = self.msgs.remove(seq)?;
        self.unindex(seq, &m);
        self.group_unref(m.group);
        Some(m)
    }

    /// Removes everything sent so far; later-landing sends of older seqs are refused.
    pub fn purge(&mut self, now: u64) -> u64 {
        self.purge_below = self.next_seq;
        self.last_purge_ms = now;
        self.clear_below(self.purge_below);
        self.purge_below
    }

    /// Also forgets the deduplication ids those messages admitted: after a purge, a FIFO
    /// send reusing one is a new message (LocalStack's AWS-validated
    /// test_purge_queue_clears_fifo_deduplication_cache).
    fn clear_below(&mut self, below: u64) {
        let gone = self.msgs.seqs_below(below);
        for seq in gone {
            self.remove(seq);
        }
        self.dedup.retain(|_, d| d.seq >= below);
    }

    /// Messages past the retention period, oldest seqs first (stops at the first live one, so a
    /// dead-lettered message with an old SentTimestamp waits for `take` to notice it).
    pub fn expire(&mut self, now: u64, retention_ms: u64, limit: usize) -> Vec<u64> {
        let out: Vec<u64> = self
            .msgs
            .iter_ordered()
            .take_while(|(_, m)| {
                m.retained_from_ms.saturating_add(retention_ms) <= now && m.phase != Phase::Held
            })
            .take(limit)
            .map(|(s, _)| s)
            .collect();
        for &seq in &out {
            self.remove(seq);
        }
        out
    }

    // Replay.

    pub fn apply_receive(&mut self, e: &ReceiveEntry, now: u64) {
        if let Some(mut m) = self.msgs.get(e.seq).copied() {
            if e.version <= m.version {
                return;
            }
            self.unindex(e.seq, &m);
            m.version = e.version;
            m.visible_at = e.visible_at;
            m.receive_count = e.receive_count;
            m.first_receive_ms = e.first_receive_ms;
            m.phase = Phase::Inflight;
            self.index(e.seq, &mut m, now);
            self.msgs.insert(e.seq, m);
        }
    }

    pub fn apply_visibility(&mut self, e: &VisibilityEntry, now: u64) {
        if let Some(mut m) = self.msgs.get(e.seq).copied() {
            if e.version <= m.version {
                return;
            }
            self.unindex(e.seq, &m);
            m.version = e.version;
            m.visible_at = e.visible_at;
            m.phase = Phase::Inflight;
            self.index(e.seq, &mut m, now);
            self.msgs.insert(e.seq, m);
        }
    }

    pub fn apply_purge(&mut self, below: u64, ts: u64) {
        self.purge_below = self.purge_below.max(below);
        self.last_purge_ms = self.last_purge_ms.max(ts);
        self.next_seq = self.next_seq.max(below);
        self.clear_below(below);
    }

    pub fn snapshot(&self) -> SnapshotRef<'_> {
        SnapshotRef {
            next_seq: self.next_seq,
            purge_below: self.purge_below,
            last_purge_ms: self.last_purge_ms,
            msgs: &self.msgs,
            groups: self
                .groups
                .iter()
                .map(|(g, gr)| (*g, gr.name.clone()))
                .collect(),
            dedup: self.dedup.values().collect(),
        }
    }

    /// Rebuilds state from a checkpoint; messages held for a move go back into circulation.
    pub fn from_snapshot(s: Snapshot, fifo: bool, now: u64) -> QueueState {
        let mut st = QueueState {
            next_seq: s.next_seq,
            purge_below: s.purge_below,
            last_purge_ms: s.last_purge_ms,
            fifo,
            ..Default::default()
        };
        for (g, name) in s.groups {
            st.group_ids.insert(name.clone(), g);
            st.groups.insert(
                g,
                Group {
                    name,
                    ..Default::default()
                },
            );
            st.next_group = st.next_group.max(g.wrapping_add(1));
        }
        st.msgs = MsgTable::from_entries(s.msgs);
        let seqs: Vec<u64> = st.msgs.iter().map(|(s, _)| s).collect();
        for seq in seqs {
            let Some(mut m) = st.msgs.get(seq).copied() else {
                continue;
            };
            if m.phase == Phase::Held {
                m.phase = Phase::Delayed;
            }
            if let Some(gr) = st.groups.get_mut(&m.group) {
                gr.live += 1;
            }
            st.index(seq, &mut m, now);
            st.msgs.insert(seq, m);
        }
        st.groups.retain(|_, gr| gr.live > 0);
        let names: std::collections::HashSet<u32> = st.groups.keys().copied().collect();
        st.group_ids.retain(|_, g| names.contains(g));
        let mut dedup = s.dedup;
        dedup.sort_by_key(|d| d.expires_ms);
        for d in dedup {
            st.dedup_insert(d);
        }
        st
    }

    /// After replay, held messages (a move interrupted by a crash) become visible again.
    pub fn release_all_held(&mut self, now: u64) {
        let held: Vec<u64> = self
            .msgs
            .iter()
            .filter(|(_, m)| m.phase == Phase::Held)
            .map(|(s, _)| s)
            .collect();
        for s in held {
            self.release(s, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(sent: u64, visible_at: u64) -> MsgMeta {
        MsgMeta {
            offset: 0,
            retained_from_ms: sent,
            visible_at,
            first_receive_ms: 0,
            receive_count: 0,
            version: 0,
            group: NO_GROUP,
            tag: 1,
            phase: Phase::Delayed,
        }
    }

    const DAY: u64 = 86_400_000;

    #[test]
    fn meta_is_small() {
        assert!(std::mem::size_of::<MsgMeta>() <= 56);
        assert_eq!(
            std::mem::size_of::<Option<MsgMeta>>(),
            std::mem::size_of::<MsgMeta>()
        );
    }

    #[test]
    fn receive_visibility_and_delete() {
        let mut s = QueueState::default();
        for i in 0..3 {
            let q = s.alloc_seq();
            assert!(s.insert(q, meta(1000, 1000 + i * 1000), None, 1000));
        }
        assert_eq!(s.counts(1000), (1, 0, 2));
        let t = s.take(1000, 10, 500, DAY, None);
        assert_eq!(t.delivered.len(), 1);
        assert_eq!(s.counts(1000), (0, 1, 2));
        // Visibility ran out and the next delayed one is due.
        let t = s.take(2000, 10, 500, DAY, None);
        assert_eq!(
            t.delivered.iter().map(|d| d.0).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(t.delivered[0].1.receive_count, 2);
        assert_eq!(t.delivered[0].1.first_receive_ms, 1000);
        assert!(matches!(
            s.change_visibility(0, 1, 9000, 2000, true),
            Err(VisError::Expired)
        ));
        assert!(s.change_visibility(0, 2, 9000, 2000, true).is_ok());
        assert!(s.remove(1).is_some());
        assert_eq!(s.counts(3000), (1, 1, 0));
        assert_eq!(s.next_deadline(), Some(9000));
        assert!(matches!(
            s.change_visibility(2, 0, 9000, 3000, true),
            Err(VisError::NotInflight)
        ));
        // A standard queue takes the earlier receive's handle too, while the message is in
        // flight.
        assert!(s.change_visibility(0, 1, 9500, 3000, false).is_ok());
        assert_eq!(s.next_deadline(), Some(9500));
        assert!(s.change_visibility(0, 1, 3000, 3000, false).is_ok());
        assert_eq!(s.counts(3000), (2, 0, 0));
        assert!(matches!(
            s.change_visibility(0, 1, 9000, 3000, false),
            Err(VisError::NotInflight)
        ));
    }

    #[test]
    fn purge_refuses_late_sends() {
        let mut s = QueueState::default();
        let a = s.alloc_seq();
        let b = s.alloc_seq();
        s.insert(a, meta(0, 0), None, 0);
        s.purge(10);
        assert_eq!(s.len(), 0);
        assert!(!s.insert(b, meta(0, 0), None, 10));
        let c = s.alloc_seq();
        assert!(s.insert(c, meta(0, 0), None, 10));
    }

    #[test]
    fn retention_and_redrive() {
        let mut s = QueueState::default();
        for _ in 0..2 {
            let q = s.alloc_seq();
            s.insert(q, meta(0, 0), None, 0);
        }
        assert_eq!(s.expire(100, 50, 10), vec![0, 1]);
        let q = s.alloc_seq();
        s.insert(q, meta(100, 100), None, 100);
        let t = s.take(100, 1, 0, DAY, Some(1));
        assert_eq!(t.delivered.len(), 1);
        let t = s.take(100, 1, 0, DAY, Some(1));
        assert_eq!(t.delivered.len(), 0);
        assert_eq!(t.redrive.len(), 1);
        assert_eq!(s.counts(100), (0, 0, 0));
    }

    #[test]
    fn replay_ignores_stale_versions() {
        let mut s = QueueState::default();
        s.insert(0, meta(0, 0), None, 0);
        s.apply_receive(
            &ReceiveEntry {
                seq: 0,
                version: 2,
                visible_at: 500,
                receive_count: 2,
                first_receive_ms: 1,
            },
            0,
        );
        s.apply_receive(
            &ReceiveEntry {
                seq: 0,
                version: 1,
                visible_at: 100,
                receive_count: 1,
                first_receive_ms: 1,
            },
            0,
        );
        assert_eq!(s.get(0).unwrap().receive_count, 2);
        assert_eq!(s.next_deadline(), Some(500));
        let snap = crate::codec::decode(&crate::codec::encode(&s.snapshot())).unwrap();
        let mut r = QueueState::from_snapshot(snap, false, 600);
        assert_eq!(r.counts(600), (1, 0, 0));
    }
}

#[cfg(test)]
mod fifo_tests {
    use super::*;

    fn meta() -> MsgMeta {
        MsgMeta {
            offset: 0,
            retained_from_ms: 0,
            visible_at: 0,
            first_receive_ms: 0,
            receive_count: 0,
            version: 0,
            group: NO_GROUP,
            tag: 1,
            phase: Phase::Delayed,
        }
    }

    const DAY: u64 = 86_400_000;

    fn fill(s: &mut QueueState, groups: &[&str]) {
        for g in groups {
            let q = s.alloc_seq();
            s.insert(q, meta(), Some(g), 0);
        }
    }

    fn seqs(t: &Taken) -> Vec<u64> {
        t.delivered.iter().map(|d| d.0).collect()
    }

    #[test]
    fn groups_lock_while_in_flight_and_deliver_in_order() {
        let mut s = QueueState::new(true);
        fill(&mut s, &["a", "b", "a", "c", "a"]);
        // Oldest group first, drained in order, then the next group.
        assert_eq!(seqs(&s.take(0, 4, 100, DAY, None)), vec![0, 2, 4, 1]);
        // a and b are locked; only c is left.
        assert_eq!(seqs(&s.take(0, 10, 100, DAY, None)), vec![3]);
        assert!(s.take(0, 10, 100, DAY, None).delivered.is_empty());
        // Deleting a's first message does not unlock a while its others are in flight.
        s.remove(0);
        assert!(s.take(0, 10, 100, DAY, None).delivered.is_empty());
        // Visibility runs out: a's remaining messages come back in order.
        assert_eq!(seqs(&s.take(100, 1, 100, DAY, None)), vec![1]);
        assert_eq!(seqs(&s.take(100, 10, 100, DAY, None)), vec![2, 4, 3]);
        assert_eq!(s.counts(100), (0, 4, 0));
        for q in [1, 2, 3, 4] {
            s.remove(q);
        }
        assert!(s.groups.is_empty() && s.avail.is_empty() && s.group_ids.is_empty());
    }

    /// Groups received and returned rank where they rejoined: behind groups not yet served.
    /// The orders are those AWS answered in LocalStack's validated FIFO tests.
    #[test]
    fn returned_groups_rank_behind_groups_not_yet_served() {
        // test_fifo_receive_message_with_zero_visibility_timeout
        let mut s = QueueState::new(true);
        fill(&mut s, &["g1", "g2", "g2", "g3", "g1"]);
        assert_eq!(seqs(&s.take(0, 3, 0, DAY, None)), vec![0, 4, 1]);
        assert_eq!(seqs(&s.take(0, 10, 0, DAY, None)), vec![3, 0, 4, 1, 2]);
        // test_fifo_message_group_visibility_after_terminate_visibility_timeout
        let mut s = QueueState::new(true);
        fill(&mut s, &["g1", "g1", "g2"]);
        assert_eq!(seqs(&s.take(0, 2, 30_000, DAY, None)), vec![0, 1]);
        s.change_visibility(0, 1, 0, 0, true).unwrap();
        assert_eq!(seqs(&s.take(0, 3, 30_000, DAY, None)), vec![2, 0]);
        // test_fifo_message_group_visibility_after_delete: never received, so by seq
        let mut s = QueueState::new(true);
        fill(&mut s, &["g1", "g2", "g1", "g2", "g1", "g1", "g3"]);
        assert_eq!(seqs(&s.take(0, 2, 30_000, DAY, None)), vec![0, 2]);
        s.remove(0);
        s.remove(2);
        assert_eq!(seqs(&s.take(0, 10, 30_000, DAY, None)), vec![1, 3, 4, 5, 6]);
        // test_fifo_receive_message_visibility_timeout_shared_in_group
        let mut s = QueueState::new(true);
        fill(&mut s, &["g1", "g1", "g1", "g1", "g2", "g3"]);
        assert_eq!(seqs(&s.take(0, 2, 1_000, DAY, None)), vec![0, 1]);
        assert_eq!(seqs(&s.take(10, 1, 1_000, DAY, None)), vec![4]);
        assert_eq!(
            seqs(&s.take(2_000, 10, 0, DAY, None)),
            vec![5, 0, 1, 2, 3, 4]
        );
        assert!(s.returned.len() <= 6);
    }

    /// A late heartbeat on a standard queue: the visibility ran out, nobody received the
    /// message since, and the last receive's handle hides it again. On a FIFO queue the
    /// handle expired with its window.
    #[test]
    fn the_last_handle_hides_a_message_whose_visibility_ran_out() {
        let mut s = QueueState::new(false);
        for _ in 0..3 {
            let q = s.alloc_seq();
            s.insert(q, meta(), None, 0);
        }
        assert_eq!(seqs(&s.take(0, 1, 1000, DAY, None)), vec![0]);
        let e = s.change_visibility(0, 1, 9000, 2000, false).unwrap();
        assert_eq!(e.map(|e| e.visible_at), Some(9000));
        assert_eq!(seqs(&s.take(2000, 10, 30_000, DAY, None)), vec![1, 2]);
        assert!(s.take(8000, 10, 1000, DAY, None).delivered.is_empty());
        // At its new deadline it comes back; received again, the earlier handle no longer
        // hides it once it is visible.
        assert_eq!(seqs(&s.take(9000, 1, 1000, DAY, None)), vec![0]);
        assert!(matches!(
            s.change_visibility(0, 1, 20_000, 10_500, false),
            Err(VisError::NotInflight)
        ));
        // A deadline of now on a visible message leaves it visible, and records nothing.
        assert!(s
            .change_visibility(0, 2, 10_500, 10_500, false)
            .unwrap()
            .is_none());
        assert_eq!(seqs(&s.take(10_500, 1, 1000, DAY, None)), vec![0]);
        let mut f = QueueState::new(true);
        fill(&mut f, &["g1", "g1"]);
        assert_eq!(seqs(&f.take(0, 1, 1000, DAY, None)), vec![0]);
        assert!(matches!(
            f.change_visibility(0, 1, 9000, 2000, true),
            Err(VisError::NotInflight)
        ));
    }

    #[test]
    fn a_group_delivers_what_comes_before_its_first_message_in_flight() {
        let mut s = QueueState::new(true);
        fill(&mut s, &["g1", "g1", "g2", "g1"]);
        assert_eq!(seqs(&s.take(0, 2, 1000, DAY, None)), vec![0, 1]);
        // 0 visible again while 1 is in flight: 0 comes back (behind g2, which was not served
        // yet), 3 (after 1) does not.
        s.change_visibility(0, 1, 0, 0, true).unwrap();
        assert_eq!(seqs(&s.take(0, 10, 1000, DAY, None)), vec![2, 0]);
        assert!(s.take(0, 10, 1000, DAY, None).delivered.is_empty());
        s.remove(1);
        assert!(s.take(0, 10, 1000, DAY, None).delivered.is_empty());
        s.remove(0);
        assert_eq!(seqs(&s.take(0, 10, 1000, DAY, None)), vec![3]);
    }

    #[test]
    fn visibility_change_unlocks_group() {
        let mut s = QueueState::new(true);
        fill(&mut s, &["g", "g"]);
        let t = s.take(0, 1, 1000, DAY, None);
        assert_eq!(seqs(&t), vec![0]);
        assert!(s.take(0, 1, 1000, DAY, None).delivered.is_empty());
        s.change_visibility(0, 1, 0, 0, true).unwrap();
        assert_eq!(seqs(&s.take(0, 10, 1000, DAY, None)), vec![0, 1]);
    }

    #[test]
    fn dedup_window() {
        let mut s = QueueState::new(true);
        s.dedup_insert(DedupEntry {
            key: "k".into(),
            expires_ms: 100,
            id: 7,
            seq: 3,
        });
        assert_eq!(s.dedup_lookup("k", 99), Some((7, 3)));
        assert_eq!(s.dedup_lookup("k", 100), None);
        assert!(s.dedup.is_empty());
    }

    #[test]
    fn snapshot_keeps_groups_and_dedup() {
        let mut s = QueueState::new(true);
        fill(&mut s, &["a", "a", "b"]);
        s.take(0, 1, 1000, DAY, None);
        s.dedup_insert(DedupEntry {
            key: "k".into(),
            expires_ms: 5000,
            id: 7,
            seq: 0,
        });
        let snap = crate::codec::decode(&crate::codec::encode(&s.snapshot())).unwrap();
        let mut r = QueueState::from_snapshot(snap, true, 10);
        assert_eq!(r.dedup_lookup("k", 10), Some((7, 0)));
        // a is still locked by its in-flight message; b is free.
        assert_eq!(seqs(&r.take(10, 10, 1000, DAY, None)), vec![2]);
        assert_eq!(seqs(&r.take(1000, 10, 1000, DAY, None)), vec![0, 1]);
    }
}
#[cfg(test)]
mod mem_probe {
    use super::*;

    fn rss() -> u64 {
        let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        s.split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u64>().ok())
            .unwrap_or(0)
            * 4096
    }

    /// Per-message memory of a backlog (the budget: 10,000,000 messages well under
    /// 2 GiB). Measures process RSS, so run it alone:
    /// `cargo test --release --lib sqs::state::mem_probe -- --ignored --nocapture`.
    #[test]
    #[ignore = "measures process RSS: run alone, in release"]
    fn backlog_bytes_per_message() {
        let before = rss();
        let mut s = QueueState::new(false);
        let n = 2_000_000u64;
        let m = MsgMeta {
            offset: 0,
            retained_from_ms: 0,
            visible_at: 0,
            first_receive_ms: 0,
            receive_count: 0,
            version: 0,
            group: NO_GROUP,
            tag: 1,
            phase: Phase::Delayed,
        };
        let t = std::time::Instant::now();
        for i in 0..n {
            let q = s.alloc_seq();
            s.insert(q, MsgMeta { offset: i, ..m }, None, 0);
        }
        let per_msg = (rss() - before) / n;
        println!("{per_msg} bytes/message; {n} inserts in {:?}", t.elapsed());
        assert!(per_msg <= 128, "{per_msg} bytes per message");
        let t = std::time::Instant::now();
        let mut k = 0;
        while k < 100_000 {
            let x = s.take(0, 10, 30_000, u64::MAX, None);
            k += x.delivered.len();
            for (q, _) in x.delivered {
                s.remove(q);
            }
        }
        println!("100k receive+delete in {:?}", t.elapsed());
        let t = std::time::Instant::now();
        let enc = crate::codec::encode(&s.snapshot());
        println!("checkpoint of {} bytes in {:?}", enc.len(), t.elapsed());
    }
}
