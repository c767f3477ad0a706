//! The catalog log: replaying it into a [`CatalogState`] at open, appending catalog records,
//! and checkpointing the live catalog. Owns no queue messages.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::records::*;
use super::Sqs;
use crate::codec::{decode, decode_snapshot, encode};
use crate::error::ServiceResult;
use crate::log::{Log, LogOptions};
use crate::service::now_ms;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueueEntry {
    pub create: CreateQueueRec,
    pub modified_ms: u64,
}

/// A message move task as the catalog knows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TaskState {
    pub rec: MoveTaskRec,
    pub moved: u64,
    /// RUNNING, COMPLETED, CANCELLING, CANCELLED or FAILED.
    pub status: String,
    pub failure: Option<String>,
    /// The source queue id and message seq of the step in flight ([`MoveStepRec`]): after
    /// a replay, counted in `moved` at resume if the source no longer holds it. Not in
    /// checkpoints (their layout predates it): a checkpoint logs the step again instead.
    #[serde(skip)]
    pub pending: Option<(u64, u64)>,
}

#[derive(Default, Serialize, Deserialize)]
pub struct CatalogState {
    pub next_id: u64,
    pub queues: BTreeMap<u64, QueueEntry>,
    pub tasks: Vec<TaskState>,
}

pub struct Catalog {
    pub log: Log,
    /// Serializes catalog changes: held across check, append and apply.
    pub gate: tokio::sync::Mutex<()>,
    since_checkpoint: AtomicU64,
}

const CHECKPOINT_EVERY: u64 = 1_000;

impl Catalog {
    pub fn open(dir: &Path, opts: LogOptions) -> ServiceResult<(Catalog, CatalogState)> {
        let (log, _) = Log::open(dir, opts)?;
        let (mut st, from) = match log.read_checkpoint()? {
            Some((upto, data)) => (decode_snapshot::<CatalogState>(&data)?, upto),
            None => (CatalogState::default(), 0),
        };
        let mut n = 0;
        for rec in log.scan(from.max(log.start_offset())) {
            let rec = rec?;
            st.apply(rec.kind, &rec.payload)?;
            n += 1;
        }
        Ok((
            Catalog {
                log,
                gate: tokio::sync::Mutex::new(()),
                since_checkpoint: AtomicU64::new(n),
            },
            st,
        ))
    }

    /// Appends one record; the caller holds `gate` and applies the change after this returns.
    pub async fn append<T: Serialize>(&self, kind: u8, rec: &T) -> ServiceResult<()> {
        self.log.append(kind, now_ms(), encode(rec)).await?;
        self.since_checkpoint.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub async fn maybe_checkpoint(&self, sqs: &Sqs) -> ServiceResult<()> {
        if self.since_checkpoint.load(Ordering::Relaxed) < CHECKPOINT_EVERY {
            return Ok(());
        }
        self.checkpoint(sqs).await
    }

    pub async fn checkpoint(&self, sqs: &Sqs) -> ServiceResult<()> {
        let _g = self.gate.lock().await;
        let st = sqs.catalog_state();
        let upto = self.log.next_offset();
        self.log.write_checkpoint(upto, &encode(&st))?;
        self.log.truncate_front(upto)?;
        self.since_checkpoint.store(0, Ordering::Relaxed);
        // Steps in flight are not in the snapshot: their records follow it again.
        for t in st.tasks.iter().filter(|t| t.status == "RUNNING") {
            if let Some((source_id, seq)) = t.pending {
                let rec = MoveStepRec {
                    task_id: t.rec.task_id.clone(),
                    moved: t.moved,
                    source_id,
                    seq,
                };
                self.append(C_MOVE_STEP, &rec).await?;
            }
        }
        Ok(())
    }
}

impl CatalogState {
    fn apply(&mut self, kind: u8, payload: &[u8]) -> ServiceResult<()> {
        match kind {
            C_CREATE => {
                let c: CreateQueueRec = decode(payload)?;
                self.next_id = self.next_id.max(c.id + 1);
                self.queues.insert(
                    c.id,
                    QueueEntry {
                        modified_ms: c.created_ms,
                        create: c,
                    },
                );
            }
            C_SET_ATTRS => {
                let s: SetAttrsRec = decode(payload)?;
                if let Some(q) = self.queues.get_mut(&s.id) {
                    merge_attrs(&mut q.create.attributes, &s.attributes);
                    q.modified_ms = s.modified_ms;
                }
            }
            C_DELETE => {
                let d: DeleteQueueRec = decode(payload)?;
                self.queues.remove(&d.id);
            }
            C_TAG => {
                let t: TagRec = decode(payload)?;
                if let Some(q) = self.queues.get_mut(&t.id) {
                    q.create.tags.extend(t.tags);
                }
            }
            C_UNTAG => {
                let t: UntagRec = decode(payload)?;
                if let Some(q) = self.queues.get_mut(&t.id) {
                    for k in &t.keys {
                        q.create.tags.remove(k);
                    }
                }
            }
            C_MOVE_START => {
                let r: MoveTaskRec = decode(payload)?;
                self.tasks.push(TaskState {
                    rec: r,
                    moved: 0,
                    status: "RUNNING".into(),
                    failure: None,
                    pending: None,
                });
            }
            C_MOVE_PROGRESS => {
                let p: MoveProgressRec = decode(payload)?;
                if let Some(t) = self.tasks.iter_mut().find(|t| t.rec.task_id == p.task_id) {
                    t.moved = t.moved.max(p.moved);
                    // Written after a move (by an older build): the step is counted.
                    t.pending = None;
                }
            }
            C_MOVE_STEP => {
                let p: MoveStepRec = decode(payload)?;
                if let Some(t) = self.tasks.iter_mut().find(|t| t.rec.task_id == p.task_id) {
                    t.moved = t.moved.max(p.moved);
                    t.pending = Some((p.source_id, p.seq));
                }
            }
            C_MOVE_END => {
                let p: MoveEndRec = decode(payload)?;
                if let Some(t) = self.tasks.iter_mut().find(|t| t.rec.task_id == p.task_id) {
                    t.moved = t.moved.max(p.moved);
                    t.status = p.status;
                    t.failure = p.failure;
                }
            }
            other => tracing::warn!(kind = other, "unknown sqs catalog record kind; skipped"),
        }
        Ok(())
    }
}

/// Applies a SetQueueAttributes change: empty values remove.
pub fn merge_attrs(into: &mut BTreeMap<String, String>, changes: &BTreeMap<String, String>) {
    for (k, v) in changes {
        if v.is_empty() {
            into.remove(k);
        } else {
            into.insert(k.clone(), v.clone());
        }
    }
}
