//! SQS: queues, messages and their state machines. Typed requests in, typed responses or
//! [`ServiceError`]s out; every state change is appended to the log before it is acknowledged.
//! Knows nothing of HTTP or wire formats.
//!
//! On disk, under `<data_dir>/sqs/`:
//! - `catalog/`: the catalog log (queues, attributes, tags, permissions, move tasks), with
//!   checkpoints of the whole catalog;
//! - `queues/<id>/`: one log per queue, `<id>` the catalog's never-reused decimal queue id,
//!   holding the message lifecycle records of `records.rs` and checkpoints of `state.rs`.
//!
//! Modules: `queues.rs` (queue actions), `messages.rs` (send/receive/delete/visibility and
//! their batches), `redrive.rs` (dead-letter queues, move tasks), `attributes.rs`, `md5.rs`,
//! `records.rs`, `state.rs` (per-queue in-memory state machine), `table.rs` (its compact
//! message table), `queue.rs` (one queue's log,
//! state and upkeep), `catalog.rs` (catalog replay), `error.rs`.
//!
//! Choices where AWS is silent or we differ:
//! - QueueDeletedRecently is not enforced by default (like localstack and moto): a deleted
//!   name can be reused at once, and the new queue starts empty. `--sqs-delete-cooldown-secs 60`
//!   refuses it for AWS's 60 s; the deletion times are kept in memory only, so a restart
//!   forgets them.
//! - On a standard queue the handle of any receive of a message deletes it, and changes its
//!   visibility while it is in flight, as AWS does (moto's test_delete_message_using_old_receipt_handle;
//!   LocalStack's AWS-validated test_terminate_visibility_timeout_after_receive). On a FIFO
//!   queue only the latest receive's handle works, within its visibility window: otherwise
//!   DeleteMessage and ChangeMessageVisibility fail with InvalidParameterValue and the message
//!   stays, as on AWS. Handles of deleted, expired or purged messages delete nothing and
//!   succeed.
//! - A message moved to a dead-letter queue keeps its MessageId, body, attributes,
//!   SentTimestamp, receive count and first receive time. In a FIFO dead-letter queue its
//!   retention and its deduplication window count from the move, and its deduplication id
//!   becomes its message id (SQS Developer Guide).
//! - Move tasks treat what they move as new messages: a new MessageId (the same for every
//!   attempt of one task) and SentTimestamp, receive count 0.
//! - Redrive and move tasks send first and remove second: a crash in between repeats the
//!   send, never loses the message. A dead-letter queue (FIFO or standard) drops the repeated
//!   copy by its message id, and a FIFO move-task destination by its deduplication id; a
//!   standard move-task destination keeps both, with one MessageId.
//! - FIFO: ContentBasedDeduplication uses SHA-256 of the body like AWS; SequenceNumber is the
//!   queue-local send order as a 20-digit string; ReceiveRequestAttemptId is remembered in
//!   memory only (a retry after a restart receives afresh). A retry within the window returns
//!   the same messages unless they were changed since, and resets (and logs) their
//!   visibility timeout.
//! - The in-flight limit (OverLimit) is 120,000 messages (20,000 on FIFO queues).

mod attributes;
mod catalog;
pub mod error;
mod md5;
mod messages;
mod queue;
mod queues;
mod records;
mod redrive;
mod state;
mod table;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde_json::Value;

use crate::config::Config;
use crate::context::RequestContext;
use crate::error::ServiceResult;
use crate::log::LogOptions;
use crate::service::{Input, Output};

use catalog::Catalog;
use queue::Queue;

/// (account, region, name): the identity a queue is looked up by.
pub(crate) type QueueKey = (String, String, String);

#[derive(Default)]
pub(crate) struct Registry {
    pub next_id: u64,
    pub by_key: HashMap<QueueKey, Arc<Queue>>,
    /// When queues were deleted, while CreateQueue still refuses their names (only with a
    /// delete cooldown).
    pub deleted: HashMap<QueueKey, u64>,
}

pub struct Sqs {
    dir: PathBuf,
    opts: LogOptions,
    catalog: Catalog,
    reg: RwLock<Registry>,
    tasks: Mutex<redrive::Tasks>,
    /// `Config::sqs_delete_cooldown_ms`.
    delete_cooldown_ms: u64,
    me: Weak<Sqs>,
}

impl Sqs {
    /// Opens (recovers) every queue under `<data_dir>/sqs`.
    pub fn open(config: &Config) -> ServiceResult<Arc<Sqs>> {
        let dir = config.data_dir.join("sqs");
        let opts = config.log_options();
        std::fs::create_dir_all(dir.join("queues"))
            .map_err(|e| crate::log::LogError::io(dir.join("queues"), e))?;
        let (catalog, state) = Catalog::open(&dir.join("catalog"), opts.clone())?;
        let mut reg = Registry {
            next_id: state.next_id,
            ..Default::default()
        };
        // Queue directories the catalog does not know are leftovers of a crash mid-create or
        // mid-delete, or of a reset.
        let live: std::collections::HashSet<u64> = state.queues.keys().copied().collect();
        if let Ok(rd) = std::fs::read_dir(dir.join("queues")) {
            for ent in rd.flatten() {
                let id = ent.file_name().to_str().and_then(|s| s.parse::<u64>().ok());
                match id {
                    Some(id) if live.contains(&id) => {}
                    _ => {
                        if let Some(id) = id {
                            reg.next_id = reg.next_id.max(id + 1);
                        }
                        let _ = crate::log::remove_dir(&ent.path());
                    }
                }
            }
        }
        for q in state.queues.values() {
            let queue = Queue::open(
                &dir.join("queues").join(q.create.id.to_string()),
                opts.clone(),
                &q.create,
            )?;
            {
                let mut m = queue.meta.lock();
                m.modified_ms = q.modified_ms;
            }
            reg.next_id = reg.next_id.max(q.create.id + 1);
            reg.by_key.insert(
                (
                    q.create.account.clone(),
                    q.create.region.clone(),
                    q.create.name.clone(),
                ),
                Arc::new(queue),
            );
        }
        let sqs = Arc::new_cyclic(|me| Sqs {
            dir,
            opts,
            catalog,
            reg: RwLock::new(reg),
            tasks: Mutex::new(redrive::Tasks::from_catalog(state.tasks)),
            delete_cooldown_ms: config.sqs_delete_cooldown_ms,
            me: me.clone(),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(sweeper(Arc::downgrade(&sqs)));
            sqs.resume_move_tasks();
        }
        Ok(sqs)
    }

    /// Runs one action. `op` is an operation name from the SQS model (the protocol layer has
    /// already rejected unknown ones); `input` is its JSON-shaped request document.
    pub async fn dispatch(
        &self,
        ctx: &RequestContext,
        op: &str,
        input: Value,
    ) -> ServiceResult<Value> {
        self.call(ctx, op, Input::Doc(input)).await?.into_doc()
    }

    /// [`Sqs::dispatch`] for any [`Input`]: the message actions (the hot path) read an AWS JSON
    /// body straight into their typed inputs and answer serialized JSON; the rest work on a
    /// document.
    pub async fn call(
        &self,
        ctx: &RequestContext,
        op: &str,
        input: Input<'_>,
    ) -> ServiceResult<Output> {
        match op {
            "SendMessage" => return self.send_message(ctx, input).await,
            "SendMessageBatch" => return self.send_message_batch(ctx, input).await,
            "ReceiveMessage" => return self.receive_message(ctx, input).await,
            "DeleteMessage" => return self.delete_message(ctx, input).await,
            "DeleteMessageBatch" => return self.delete_message_batch(ctx, input).await,
            _ => {}
        }
        let input = input.into_doc()?;
        let out = match op {
            "CreateQueue" => self.create_queue(ctx, input).await,
            "DeleteQueue" => self.delete_queue(ctx, input).await,
            "ListQueues" => self.list_queues(ctx, input),
            "GetQueueUrl" => self.get_queue_url(ctx, input),
            "GetQueueAttributes" => self.get_queue_attributes(ctx, input),
            "SetQueueAttributes" => self.set_queue_attributes(ctx, input).await,
            "PurgeQueue" => self.purge_queue(ctx, input).await,
            "TagQueue" => self.tag_queue(ctx, input).await,
            "UntagQueue" => self.untag_queue(ctx, input).await,
            "ListQueueTags" => self.list_queue_tags(ctx, input),
            "AddPermission" => self.add_permission(ctx, input).await,
            "RemovePermission" => self.remove_permission(ctx, input).await,
            "ChangeMessageVisibility" => self.change_message_visibility(ctx, input).await,
            "ChangeMessageVisibilityBatch" => {
                self.change_message_visibility_batch(ctx, input).await
            }
            "ListDeadLetterSourceQueues" => self.list_dead_letter_source_queues(ctx, input),
            "StartMessageMoveTask" => self.start_message_move_task(ctx, input).await,
            "ListMessageMoveTasks" => self.list_message_move_tasks(ctx, input),
            "CancelMessageMoveTask" => self.cancel_message_move_task(ctx, input).await,
            _ => Err(crate::error::ServiceError::invalid_action(op)),
        };
        out.map(Output::Doc)
    }

    /// Wipes every queue of every account and region, durably.
    pub async fn reset(&self) -> ServiceResult<()> {
        let _g = self.catalog.gate.lock().await;
        let queues: Vec<Arc<Queue>> = {
            let mut reg = self.reg.write();
            reg.deleted.clear();
            reg.by_key.drain().map(|(_, q)| q).collect()
        };
        for q in &queues {
            q.mark_deleted();
        }
        self.tasks.lock().clear();
        self.catalog.log.clear()?;
        for q in &queues {
            let _ = q.log.clear();
            let _ = crate::log::remove_dir(&self.queue_dir(q.id));
        }
        Ok(())
    }

    /// Makes everything appended so far durable (graceful shutdown in interval/none modes).
    pub fn flush(&self) -> ServiceResult<()> {
        self.catalog.log.flush()?;
        let queues: Vec<Arc<Queue>> = self.reg.read().by_key.values().cloned().collect();
        for q in queues {
            q.log.flush()?;
        }
        Ok(())
    }

    fn queue_dir(&self, id: u64) -> PathBuf {
        self.dir.join("queues").join(id.to_string())
    }

    pub(crate) fn all_queues(&self) -> Vec<Arc<Queue>> {
        self.reg.read().by_key.values().cloned().collect()
    }

    /// Checkpoints the catalog and every queue now (restart tests exercise checkpoint replay).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) async fn checkpoint_all(&self) -> ServiceResult<()> {
        for q in self.all_queues() {
            q.checkpoint().await?;
        }
        self.catalog.checkpoint(self).await
    }

    /// Runs upkeep on every queue once.
    pub(crate) async fn maintain(&self) {
        for q in self.all_queues() {
            if let Err(e) = q.maintain().await {
                tracing::warn!(queue = %q.name, error = %e, "sqs queue upkeep failed");
            }
        }
        if let Err(e) = self.catalog.maybe_checkpoint(self).await {
            tracing::warn!(error = %e, "sqs catalog checkpoint failed");
        }
    }
}

/// Background upkeep: retention, checkpoints, compaction. Ends when the service is dropped.
async fn sweeper(sqs: Weak<Sqs>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(s) = sqs.upgrade() else { return };
        s.maintain().await;
    }
}

/// A message another service (SNS fan-out) sends into a queue named by ARN.
#[derive(Clone, Debug, Default)]
pub struct InternalSend {
    pub body: String,
    /// JSON-shaped `MessageAttributes`: `{"name": {"DataType": "String", "StringValue": "v"}}`.
    pub message_attributes: serde_json::Map<String, Value>,
    pub message_group_id: Option<String>,
    pub message_deduplication_id: Option<String>,
    /// The publisher's X-Ray header, kept as the message's AWSTraceHeader as a SendMessage
    /// with that header would.
    pub trace_header: Option<String>,
}
