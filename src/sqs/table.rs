//! [`MsgTable`]: a queue's live messages by seq, at about `size_of::<MsgMeta>()` bytes each.
//!
//! Seqs are dense and mostly inserted in increasing order, so messages live in fixed chunks of
//! `CHUNK` slots indexed by `seq / CHUNK` (a `BTreeMap` of messages would cost twice as much:
//! appending in order leaves its nodes half full). A chunk whose live count drops below a
//! quarter — consumed, except for a few stragglers — hands its survivors to the `overflow` map
//! and is freed, and no chunk is ever created below one that was freed or below the newest one,
//! so memory follows the live messages, not the span of seqs they cover.

use std::collections::{BTreeMap, HashMap};

use serde::ser::{Serialize, SerializeSeq, Serializer};

use super::state::MsgMeta;

const CHUNK: u64 = 1024;
const SPARSE: u32 = (CHUNK / 4) as u32;

struct Chunk {
    slots: Box<[Option<MsgMeta>]>,
    live: u32,
}

impl Chunk {
    fn new() -> Chunk {
        Chunk {
            slots: vec![None; CHUNK as usize].into_boxed_slice(),
            live: 0,
        }
    }
}

#[derive(Default)]
pub struct MsgTable {
    chunks: BTreeMap<u64, Chunk>,
    overflow: BTreeMap<u64, MsgMeta>,
    /// No chunk below this index is created again: it was freed, so its late entries are few.
    floor: u64,
    len: usize,
}

fn split(seq: u64) -> (u64, usize) {
    (seq / CHUNK, (seq % CHUNK) as usize)
}

impl MsgTable {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn get(&self, seq: u64) -> Option<&MsgMeta> {
        let (k, i) = split(seq);
        match self.chunks.get(&k) {
            Some(c) => c.slots[i].as_ref(),
            None => self.overflow.get(&seq),
        }
    }

    pub fn get_mut(&mut self, seq: u64) -> Option<&mut MsgMeta> {
        let (k, i) = split(seq);
        match self.chunks.get_mut(&k) {
            Some(c) => c.slots[i].as_mut(),
            None => self.overflow.get_mut(&seq),
        }
    }

    /// Inserts or replaces; returns the previous entry.
    pub fn insert(&mut self, seq: u64, m: MsgMeta) -> Option<MsgMeta> {
        let (k, i) = split(seq);
        let newest = self.chunks.last_key_value().map(|(k, _)| *k);
        if !self.chunks.contains_key(&k) && k >= self.floor && newest.is_none_or(|n| k > n) {
            self.chunks.insert(k, Chunk::new());
            // The previous newest chunk stops filling now: if only stragglers are left in it,
            // no later remove would free it.
            if let Some(n) = newest {
                self.maybe_free(n);
            }
        }
        let old = match self.chunks.get_mut(&k) {
            Some(c) => {
                let old = c.slots[i].replace(m);
                if old.is_none() {
                    c.live += 1;
                }
                old
            }
            None => self.overflow.insert(seq, m),
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub fn remove(&mut self, seq: u64) -> Option<MsgMeta> {
        let (k, i) = split(seq);
        let old = match self.chunks.get_mut(&k) {
            Some(c) => {
                let old = c.slots[i].take();
                if old.is_some() {
                    c.live -= 1;
                }
                old
            }
            None => self.overflow.remove(&seq),
        };
        if old.is_some() {
            self.len -= 1;
            self.maybe_free(k);
        }
        old
    }

    /// Frees a sparse chunk (never the newest, which sends are filling), moving its few live
    /// entries to `overflow`.
    fn maybe_free(&mut self, k: u64) {
        let sparse = self.chunks.get(&k).is_some_and(|c| c.live < SPARSE);
        let newest = self.chunks.last_key_value().map(|(n, _)| *n) == Some(k);
        if !sparse || newest {
            return;
        }
        if let Some(c) = self.chunks.remove(&k) {
            for (i, m) in c.slots.iter().enumerate() {
                if let Some(m) = m {
                    self.overflow.insert(k * CHUNK + i as u64, *m);
                }
            }
        }
        self.floor = self.floor.max(k + 1);
    }

    /// Every live message, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &MsgMeta)> {
        self.chunks
            .iter()
            .flat_map(|(k, c)| {
                c.slots
                    .iter()
                    .enumerate()
                    .filter_map(move |(i, m)| m.as_ref().map(|m| (k * CHUNK + i as u64, m)))
            })
            .chain(self.overflow.iter().map(|(s, m)| (*s, m)))
    }

    /// Every live message in seq order.
    pub fn iter_ordered(&self) -> impl Iterator<Item = (u64, &MsgMeta)> {
        let mut a = self
            .chunks
            .iter()
            .flat_map(|(k, c)| {
                c.slots
                    .iter()
                    .enumerate()
                    .filter_map(move |(i, m)| m.as_ref().map(|m| (k * CHUNK + i as u64, m)))
            })
            .peekable();
        let mut b = self.overflow.iter().map(|(s, m)| (*s, m)).peekable();
        std::iter::from_fn(move || match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => {
                if x.0 < y.0 {
                    a.next()
                } else {
                    b.next()
                }
            }
            (Some(_), None) => a.next(),
            _ => b.next(),
        })
    }

    /// Seqs of live messages below `below`.
    pub fn seqs_below(&self, below: u64) -> Vec<u64> {
        self.iter()
            .filter(|(s, _)| *s < below)
            .map(|(s, _)| s)
            .collect()
    }

    /// Builds a table from checkpointed entries, placing chunks only where they are dense.
    pub fn from_entries(entries: Vec<(u64, MsgMeta)>) -> MsgTable {
        let mut per_chunk: HashMap<u64, u32> = HashMap::new();
        for (s, _) in &entries {
            *per_chunk.entry(s / CHUNK).or_default() += 1;
        }
        let mut t = MsgTable::default();
        for (seq, m) in entries {
            let (k, i) = split(seq);
            if per_chunk[&k] >= SPARSE {
                let c = t.chunks.entry(k).or_insert_with(Chunk::new);
                if c.slots[i].replace(m).is_none() {
                    c.live += 1;
                    t.len += 1;
                }
            } else if t.overflow.insert(seq, m).is_none() {
                t.len += 1;
            }
        }
        t.floor = per_chunk
            .iter()
            .filter(|(_, n)| **n < SPARSE)
            .map(|(k, _)| k + 1)
            .max()
            .unwrap_or(0);
        t
    }
}

/// Serializes as a sequence of (seq, meta) without first copying the table.
impl Serialize for MsgTable {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len))?;
        for (k, m) in self.iter() {
            seq.serialize_element(&(k, m))?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqs::state::{Phase, NO_GROUP};

    fn m(offset: u64) -> MsgMeta {
        MsgMeta {
            offset,
            retained_from_ms: 0,
            visible_at: 0,
            first_receive_ms: 0,
            receive_count: 0,
            version: 0,
            group: NO_GROUP,
            tag: 0,
            phase: Phase::Ready,
        }
    }

    #[test]
    fn dense_sparse_and_stragglers() {
        let mut t = MsgTable::default();
        for s in 0..3 * CHUNK {
            assert!(t.insert(s, m(s)).is_none());
        }
        assert_eq!(t.chunks.len(), 3);
        // Consume chunk 0 except one straggler: it moves to overflow, the chunk is freed.
        for s in 1..CHUNK {
            assert_eq!(t.remove(s).unwrap().offset, s);
        }
        assert_eq!(t.chunks.len(), 2);
        assert_eq!(t.overflow.len(), 1);
        assert_eq!(t.get(0).unwrap().offset, 0);
        assert_eq!(t.iter_ordered().next().unwrap().0, 0);
        assert_eq!(t.len(), 2 * CHUNK as usize + 1);
        // A late insert into a freed chunk goes to overflow, not a new chunk.
        t.insert(5, m(5));
        assert_eq!(t.chunks.len(), 2);
        assert_eq!(t.get(5).unwrap().offset, 5);
        // The newest chunk is never freed, even when empty...
        for s in 2 * CHUNK..3 * CHUNK {
            t.remove(s);
        }
        assert!(t.chunks.contains_key(&2));
        // ...until a newer one starts.
        t.insert(3 * CHUNK, m(0));
        assert!(!t.chunks.contains_key(&2));
        t.remove(3 * CHUNK);
        t.get_mut(CHUNK).unwrap().offset = 99;
        assert_eq!(t.get(CHUNK).unwrap().offset, 99);
        assert_eq!(t.seqs_below(CHUNK + 2), vec![CHUNK, CHUNK + 1, 0, 5]);
        assert_eq!(t.iter().count(), t.len());
        let ordered: Vec<u64> = t.iter_ordered().map(|(s, _)| s).collect();
        assert_eq!(&ordered[..4], &[0, 5, CHUNK, CHUNK + 1]);
        assert!(ordered.windows(2).all(|w| w[0] < w[1]));
        let encoded = crate::codec::encode(&t);
        let entries: Vec<(u64, MsgMeta)> = crate::codec::decode(&encoded).unwrap();
        let r = MsgTable::from_entries(entries);
        assert_eq!(r.len(), t.len());
        assert_eq!(r.chunks.len(), 1);
        assert_eq!(r.overflow.len(), 2);
        assert_eq!(r.get(CHUNK).unwrap().offset, 99);
    }
}
