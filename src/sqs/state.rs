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
//! FIFO queues will add message-group bookkeeping here: `take` is the single place that picks
//! the next deliverable message, and is where a group lock check belongs.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::records::{ReceiveEntry, SendRec, VisibilityEntry};

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
    pub id: u128,
    /// Log offset of the Send/Relocate record holding body and attributes.
    pub offset: u64,
    pub sent_ms: u64,
    pub visible_at: u64,
    pub first_receive_ms: u64,
    pub receive_count: u32,
    pub version: u32,
    pub phase: Phase,
}

impl MsgMeta {
    pub fn from_send(r: &SendRec, offset: u64) -> MsgMeta {
        MsgMeta {
            id: r.id,
            offset,
            sent_ms: r.sent_ms,
            visible_at: r.visible_at,
            first_receive_ms: r.first_receive_ms,
            receive_count: r.receive_count,
            version: r.version,
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

#[derive(Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub next_seq: u64,
    pub purge_below: u64,
    pub last_purge_ms: u64,
    pub msgs: Vec<(u64, MsgMeta)>,
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
pub struct QueueState {
    msgs: BTreeMap<u64, MsgMeta>,
    ready: BTreeSet<u64>,
    timers: BTreeSet<(u64, u64)>,
    pub next_seq: u64,
    pub purge_below: u64,
    pub last_purge_ms: u64,
    n_delayed: usize,
    n_inflight: usize,
}

impl QueueState {
    pub fn alloc_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    pub fn get(&self, seq: u64) -> Option<&MsgMeta> {
        self.msgs.get(&seq)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&u64, &MsgMeta)> {
        self.msgs.iter()
    }

    fn unindex(&mut self, seq: u64, m: &MsgMeta) {
        match m.phase {
            Phase::Ready => {
                self.ready.remove(&seq);
            }
            Phase::Delayed => {
                self.timers.remove(&(m.visible_at, seq));
                self.n_delayed -= 1;
            }
            Phase::Inflight => {
                self.timers.remove(&(m.visible_at, seq));
                self.n_inflight -= 1;
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
            m.phase = if m.receive_count > 0 {
                Phase::Inflight
            } else {
                Phase::Delayed
            };
            self.timers.insert((m.visible_at, seq));
            if m.phase == Phase::Inflight {
                self.n_inflight += 1;
            } else {
                self.n_delayed += 1;
            }
        } else {
            m.phase = Phase::Ready;
            self.ready.insert(seq);
        }
    }

    /// Adds a sent (or relocated) message. False if a purge already covered its seq.
    pub fn insert(&mut self, seq: u64, mut m: MsgMeta, now: u64) -> bool {
        if seq < self.purge_below {
            return false;
        }
        if let Some(old) = self.msgs.remove(&seq) {
            self.unindex(seq, &old);
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
    pub fn relocate(&mut self, seq: u64, m: MsgMeta, now: u64) {
        match self.msgs.get_mut(&seq) {
            Some(cur) if cur.version > m.version => cur.offset = m.offset,
            _ => {
                self.insert(seq, m, now);
            }
        }
    }

    /// Moves every message whose deadline has passed into `ready`.
    pub fn promote(&mut self, now: u64) {
        while let Some(&(t, seq)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            if let Some(m) = self.msgs.get_mut(&seq) {
                match m.phase {
                    Phase::Delayed => self.n_delayed -= 1,
                    Phase::Inflight => self.n_inflight -= 1,
                    _ => {}
                }
                m.phase = Phase::Ready;
                self.ready.insert(seq);
            }
        }
    }

    pub fn next_deadline(&self) -> Option<u64> {
        self.timers.first().map(|&(t, _)| t)
    }

    /// (visible, in flight, delayed) as of `now`.
    pub fn counts(&mut self, now: u64) -> (usize, usize, usize) {
        self.promote(now);
        (self.ready.len(), self.n_inflight, self.n_delayed)
    }

    /// Receives up to `max` visible messages for `visibility_ms`. Messages past `retention_ms`
    /// are dropped instead; with `max_receive` (a redrive policy) a message already received
    /// that many times is held for the dead-letter queue instead of delivered.
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
        while out.delivered.len() < max {
            let Some(seq) = self.ready.pop_first() else {
                break;
            };
            let Some(m) = self.msgs.get_mut(&seq) else {
                continue;
            };
            if m.sent_ms.saturating_add(retention_ms) <= now {
                self.msgs.remove(&seq);
                out.expired.push(seq);
                continue;
            }
            if max_receive.is_some_and(|mr| m.receive_count >= mr) {
                m.phase = Phase::Held;
                m.version += 1;
                out.redrive.push((seq, *m));
                continue;
            }
            m.receive_count += 1;
            if m.first_receive_ms == 0 {
                m.first_receive_ms = now;
            }
            m.version += 1;
            m.visible_at = now + visibility_ms;
            m.phase = Phase::Inflight;
            let snapshot = *m;
            self.timers.insert((snapshot.visible_at, seq));
            self.n_inflight += 1;
            out.delivered.push((seq, snapshot));
        }
        out
    }

    /// Takes the first visible message out of circulation for a move task.
    pub fn hold_next(&mut self, now: u64) -> Option<(u64, MsgMeta)> {
        self.promote(now);
        let seq = self.ready.pop_first()?;
        let m = self.msgs.get_mut(&seq)?;
        m.phase = Phase::Held;
        m.version += 1;
        Some((seq, *m))
    }

    /// Puts a held message back (its move failed).
    pub fn release(&mut self, seq: u64, now: u64) {
        if let Some(mut m) = self.msgs.remove(&seq) {
            if m.phase == Phase::Held {
                m.phase = Phase::Delayed;
                m.visible_at = now;
                self.index(seq, &mut m, now);
            }
            self.msgs.insert(seq, m);
        }
    }

    /// Changes the visibility deadline of the message received as receive number `generation`.
    pub fn change_visibility(
        &mut self,
        seq: u64,
        generation: u32,
        visible_at: u64,
        now: u64,
    ) -> Result<VisibilityEntry, VisError> {
        self.promote(now);
        let Some(mut m) = self.msgs.get(&seq).copied() else {
            return Err(VisError::Expired);
        };
        if m.receive_count != generation {
            return Err(VisError::Expired);
        }
        if m.phase != Phase::Inflight {
            return Err(VisError::NotInflight);
        }
        self.unindex(seq, &m);
        m.version += 1;
        m.visible_at = visible_at;
        m.phase = Phase::Inflight;
        if visible_at > now {
            self.timers.insert((visible_at, seq));
            self.n_inflight += 1;
        } else {
            m.phase = Phase::Ready;
            self.ready.insert(seq);
        }
        self.msgs.insert(seq, m);
        Ok(VisibilityEntry {
            seq,
            version: m.version,
            visible_at,
        })
    }

    pub fn remove(&mut self, seq: u64) -> Option<MsgMeta> {
        let m = self.msgs.remove(&seq)?;
        self.unindex(seq, &m);
        Some(m)
    }

    /// Removes everything sent so far; later-landing sends of older seqs are refused.
    pub fn purge(&mut self, now: u64) -> u64 {
        self.purge_below = self.next_seq;
        self.last_purge_ms = now;
        self.clear_below(self.purge_below);
        self.purge_below
    }

    fn clear_below(&mut self, below: u64) {
        let keep = self.msgs.split_off(&below);
        let gone = std::mem::replace(&mut self.msgs, keep);
        for (seq, m) in gone {
            self.unindex(seq, &m);
        }
    }

    /// Messages past the retention period, oldest seqs first (stops at the first live one, so a
    /// dead-lettered message with an old SentTimestamp waits for `take` to notice it).
    pub fn expire(&mut self, now: u64, retention_ms: u64, limit: usize) -> Vec<u64> {
        let mut out = Vec::new();
        while out.len() < limit {
            let Some((&seq, m)) = self.msgs.first_key_value() else {
                break;
            };
            if m.sent_ms.saturating_add(retention_ms) > now || m.phase == Phase::Held {
                break;
            }
            self.remove(seq);
            out.push(seq);
        }
        out
    }

    // Replay.

    pub fn apply_receive(&mut self, e: &ReceiveEntry, now: u64) {
        if let Some(mut m) = self.msgs.get(&e.seq).copied() {
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
        if let Some(mut m) = self.msgs.get(&e.seq).copied() {
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

    /// A held message that outlived a restart goes back into circulation.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            next_seq: self.next_seq,
            purge_below: self.purge_below,
            last_purge_ms: self.last_purge_ms,
            msgs: self.msgs.iter().map(|(s, m)| (*s, *m)).collect(),
        }
    }

    pub fn from_snapshot(s: Snapshot, now: u64) -> QueueState {
        let mut st = QueueState {
            next_seq: s.next_seq,
            purge_below: s.purge_below,
            last_purge_ms: s.last_purge_ms,
            ..Default::default()
        };
        for (seq, mut m) in s.msgs {
            if m.phase == Phase::Held {
                m.phase = Phase::Delayed;
            }
            st.index(seq, &mut m, now);
            st.msgs.insert(seq, m);
        }
        st
    }

    /// After replay, held messages (a move interrupted by a crash) become visible again.
    pub fn release_all_held(&mut self, now: u64) {
        let held: Vec<u64> = self
            .msgs
            .iter()
            .filter(|(_, m)| m.phase == Phase::Held)
            .map(|(s, _)| *s)
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
            id: 1,
            offset: 0,
            sent_ms: sent,
            visible_at,
            first_receive_ms: 0,
            receive_count: 0,
            version: 0,
            phase: Phase::Delayed,
        }
    }

    const DAY: u64 = 86_400_000;

    #[test]
    fn meta_is_small() {
        assert!(std::mem::size_of::<MsgMeta>() <= 64);
    }

    #[test]
    fn receive_visibility_and_delete() {
        let mut s = QueueState::default();
        for i in 0..3 {
            let q = s.alloc_seq();
            assert!(s.insert(q, meta(1000, 1000 + i * 1000), 1000));
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
            s.change_visibility(0, 1, 9000, 2000),
            Err(VisError::Expired)
        ));
        assert!(s.change_visibility(0, 2, 9000, 2000).is_ok());
        assert!(s.remove(1).is_some());
        assert_eq!(s.counts(3000), (1, 1, 0));
        assert_eq!(s.next_deadline(), Some(9000));
        assert!(matches!(
            s.change_visibility(2, 0, 9000, 3000),
            Err(VisError::NotInflight)
        ));
    }

    #[test]
    fn purge_refuses_late_sends() {
        let mut s = QueueState::default();
        let a = s.alloc_seq();
        let b = s.alloc_seq();
        s.insert(a, meta(0, 0), 0);
        s.purge(10);
        assert_eq!(s.len(), 0);
        assert!(!s.insert(b, meta(0, 0), 10));
        let c = s.alloc_seq();
        assert!(s.insert(c, meta(0, 0), 10));
    }

    #[test]
    fn retention_and_redrive() {
        let mut s = QueueState::default();
        for _ in 0..2 {
            let q = s.alloc_seq();
            s.insert(q, meta(0, 0), 0);
        }
        assert_eq!(s.expire(100, 50, 10), vec![0, 1]);
        let q = s.alloc_seq();
        s.insert(q, meta(100, 100), 100);
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
        s.insert(0, meta(0, 0), 0);
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
        let snap = s.snapshot();
        let mut r = QueueState::from_snapshot(snap, 600);
        assert_eq!(r.counts(600), (1, 0, 0));
    }
}
