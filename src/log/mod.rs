//! STUB with the storage API's signatures, in memory only, so services compile before the real
//! engine lands. Replaced wholesale by the storage branch.
#![allow(dead_code, unused_variables)]
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    Fsync,
    Interval(std::time::Duration),
    None,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fsync" => Ok(Durability::Fsync),
            "none" => Ok(Durability::None),
            _ => match s.strip_prefix("interval=") {
                Some(ms) => ms
                    .parse()
                    .map(|ms| Durability::Interval(std::time::Duration::from_millis(ms)))
                    .map_err(|_| format!("bad interval: {s}")),
                None => Err(format!("unknown durability mode: {s}")),
            },
        }
    }
}

#[derive(Clone, Debug)]
pub struct LogOptions {
    pub segment_bytes: u64,
    pub segment_age: Option<std::time::Duration>,
    pub durability: Durability,
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

#[derive(Clone, Debug)]
pub struct OwnedRecord {
    pub offset: u64,
    pub kind: u8,
    pub timestamp_ms: u64,
    pub payload: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct RecoveryReport {
    pub truncated_bytes: u64,
    pub truncated_at: Option<(PathBuf, u64)>,
    pub rebuilt_indexes: usize,
    pub segments: usize,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("log poisoned")]
    Poisoned,
}

#[derive(Default)]
struct Inner {
    start: u64,
    recs: Vec<OwnedRecord>,
    checkpoint: Option<(u64, Vec<u8>)>,
}

#[derive(Clone, Default)]
pub struct Log {
    inner: Arc<Mutex<Inner>>,
}

pub struct SegmentInfo {
    pub base_offset: u64,
    pub next_offset: u64,
    pub bytes: u64,
}

impl Log {
    pub fn open(
        dir: impl AsRef<Path>,
        opts: LogOptions,
    ) -> Result<(Log, RecoveryReport), LogError> {
        std::fs::create_dir_all(dir.as_ref())?;
        Ok((Log::default(), RecoveryReport::default()))
    }
    pub async fn append(
        &self,
        kind: u8,
        timestamp_ms: u64,
        payload: Vec<u8>,
    ) -> Result<u64, LogError> {
        self.append_blocking(kind, timestamp_ms, payload)
    }
    pub async fn append_batch(&self, records: Vec<(u8, u64, Vec<u8>)>) -> Result<u64, LogError> {
        let mut g = self.inner.lock();
        let first = g.start + g.recs.len() as u64;
        for (kind, timestamp_ms, payload) in records {
            let offset = g.start + g.recs.len() as u64;
            g.recs.push(OwnedRecord {
                offset,
                kind,
                timestamp_ms,
                payload,
            });
        }
        Ok(first)
    }
    pub fn append_blocking(
        &self,
        kind: u8,
        timestamp_ms: u64,
        payload: Vec<u8>,
    ) -> Result<u64, LogError> {
        let mut g = self.inner.lock();
        let offset = g.start + g.recs.len() as u64;
        g.recs.push(OwnedRecord {
            offset,
            kind,
            timestamp_ms,
            payload,
        });
        Ok(offset)
    }
    pub fn read(&self, offset: u64) -> Result<Option<OwnedRecord>, LogError> {
        let g = self.inner.lock();
        Ok(offset
            .checked_sub(g.start)
            .and_then(|i| g.recs.get(i as usize))
            .cloned())
    }
    pub fn read_with<R>(
        &self,
        offset: u64,
        f: impl FnOnce(u8, u64, &[u8]) -> R,
    ) -> Result<Option<R>, LogError> {
        Ok(self
            .read(offset)?
            .map(|r| f(r.kind, r.timestamp_ms, &r.payload)))
    }
    pub fn scan(&self, from: u64) -> impl Iterator<Item = Result<OwnedRecord, LogError>> + '_ {
        let g = self.inner.lock();
        let v: Vec<_> = g
            .recs
            .iter()
            .filter(|r| r.offset >= from)
            .cloned()
            .map(Ok)
            .collect();
        v.into_iter()
    }
    pub fn start_offset(&self) -> u64 {
        self.inner.lock().start
    }
    pub fn next_offset(&self) -> u64 {
        let g = self.inner.lock();
        g.start + g.recs.len() as u64
    }
    pub fn offset_for_timestamp(&self, ts_ms: u64) -> Result<Option<u64>, LogError> {
        Ok(self
            .inner
            .lock()
            .recs
            .iter()
            .find(|r| r.timestamp_ms >= ts_ms)
            .map(|r| r.offset))
    }
    pub fn truncate_front(&self, before: u64) -> Result<(), LogError> {
        let mut g = self.inner.lock();
        while g.recs.first().is_some_and(|r| r.offset < before) {
            g.recs.remove(0);
            g.start += 1;
        }
        Ok(())
    }
    pub fn enforce_retention(
        &self,
        now_ms: u64,
        max_age_ms: Option<u64>,
        max_bytes: Option<u64>,
    ) -> Result<u64, LogError> {
        Ok(0)
    }
    pub fn segments(&self) -> Vec<SegmentInfo> {
        Vec::new()
    }
    pub fn disk_bytes(&self) -> u64 {
        0
    }
    pub fn roll(&self) -> Result<(), LogError> {
        Ok(())
    }
    pub fn write_checkpoint(&self, upto: u64, data: &[u8]) -> Result<(), LogError> {
        self.inner.lock().checkpoint = Some((upto, data.to_vec()));
        Ok(())
    }
    pub fn read_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        Ok(self.inner.lock().checkpoint.clone())
    }
    pub fn flush(&self) -> Result<(), LogError> {
        Ok(())
    }
    pub fn clear(&self) -> Result<(), LogError> {
        let mut g = self.inner.lock();
        g.start += g.recs.len() as u64;
        g.recs.clear();
        g.checkpoint = None;
        Ok(())
    }
}
