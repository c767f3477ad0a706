//! Dead-letter queues and message move tasks: moving messages over maxReceiveCount into the
//! dead-letter queue, ListDeadLetterSourceQueues, and Start/List/CancelMessageMoveTask (tokio
//! tasks moving messages at MaxNumberOfMessagesPerSecond, progress in the catalog, resumed after
//! a restart). A move is "send to the destination, then log the removal at the source", so a
//! crash in between repeats the send but never loses a message: a dead-letter queue drops the
//! repeated copy by its message id (`Queue::send`), a FIFO move-task destination by its
//! deduplication id, and in a standard one both copies carry the same MessageId. A cancel waits
//! for the step in flight, so a cancelled task never leaves a message half moved (in both queues)
//! with nothing left to finish the move.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::attributes::arn_parts;
use super::catalog::TaskState;
use super::error as e;
use super::queue::Queue;
use super::queues::{decode_token, encode_token, PARAM};
use super::records::*;
use super::state::MsgMeta;
use super::Sqs;
use crate::context::RequestContext;
use crate::error::ServiceResult;
use crate::service::{now_ms, parse_input};

/// Move tasks: their catalog state plus the runners of the running ones.
#[derive(Default)]
pub struct Tasks {
    list: Vec<TaskState>,
    runners: HashMap<String, Arc<Runner>>,
}

/// What a running task's runner shares with the rest: its cancel flag, and the lock one move
/// step holds from its step record to the logged removal. A cancel takes it
/// before it logs the task's end, so the end falls between steps: a kill after the cancel is
/// acknowledged cannot leave a copy in the destination whose removal from the source was never
/// logged and never will be (a cancelled task is not resumed).
#[derive(Default)]
struct Runner {
    cancelled: AtomicBool,
    step: Arc<tokio::sync::Mutex<()>>,
}

impl Tasks {
    pub fn from_catalog(list: Vec<TaskState>) -> Tasks {
        Tasks {
            list,
            runners: HashMap::new(),
        }
    }
    pub fn to_catalog(&self) -> Vec<TaskState> {
        self.list.clone()
    }
    pub fn clear(&mut self) {
        for r in self.runners.values() {
            r.cancelled.store(true, Ordering::Release);
        }
        self.list.clear();
        self.runners.clear();
    }
    /// Keeps the 10 most recent tasks of each source queue (all ListMessageMoveTasks can show),
    /// so the catalog does not grow without bound.
    fn prune(&mut self) {
        let mut per_source: HashMap<String, usize> = HashMap::new();
        let mut keep = vec![false; self.list.len()];
        for (i, t) in self.list.iter().enumerate().rev() {
            let n = per_source.entry(t.rec.source_arn.clone()).or_default();
            *n += 1;
            keep[i] = *n <= 10 || t.status == "RUNNING";
        }
        let mut it = keep.into_iter();
        self.list.retain(|_| it.next().unwrap_or(true));
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut TaskState> {
        self.list.iter_mut().find(|t| t.rec.task_id == id)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DlqSourcesIn {
    queue_url: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartIn {
    source_arn: Option<String>,
    destination_arn: Option<String>,
    max_number_of_messages_per_second: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListTasksIn {
    source_arn: Option<String>,
    max_results: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CancelIn {
    task_handle: Option<String>,
}

fn task_handle(t: &TaskState) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(json!({"taskId": t.rec.task_id, "sourceArn": t.rec.source_arn}).to_string())
}

/// The task id and source queue ARN a handle names.
fn task_of(handle: &str) -> Option<(String, Option<String>)> {
    let b = base64::engine::general_purpose::STANDARD
        .decode(handle)
        .ok()?;
    let v: Value = serde_json::from_slice(&b).ok()?;
    let id = v.get("taskId")?.as_str()?.to_string();
    Some((
        id,
        v.get("sourceArn")
            .and_then(Value::as_str)
            .map(str::to_string),
    ))
}

/// The MessageId a move task gives message `id`: the same for every attempt of the task, a
/// version-4-shaped UUID like every other MessageId.
fn moved_message_id(task_id: &str, id: u128) -> u128 {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(task_id.as_bytes());
    h.update(id.to_le_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .as_u128()
}

/// A move task's failure reason when its source or destination queue is gone.
const NON_EXISTENT_QUEUE: &str = "AWS.SimpleQueueService.NonExistentQueue";

/// A copy of a stored message for another queue, starting from `receive_count` receives, the
/// first of them at `first_receive_ms` (0: none). Id and SentTimestamp are the stored ones; a
/// move task replaces both (see [`Sqs::move_one`]).
fn moved_copy(
    mut r: SendRec,
    dlq_source: Option<String>,
    receive_count: u32,
    first_receive_ms: u64,
) -> SendRec {
    r.dlq_source = dlq_source;
    r.receive_count = receive_count;
    r.first_receive_ms = first_receive_ms;
    r.version = 0;
    r.inflight = false;
    r.visible_at = 0;
    r
}

impl Sqs {
    /// Moves held messages (over maxReceiveCount) from `q` to its dead-letter queue.
    pub(crate) async fn dead_letter(
        &self,
        q: &Arc<Queue>,
        dlq: &Arc<Queue>,
        held: Vec<(u64, MsgMeta)>,
    ) -> ServiceResult<()> {
        if dlq.is_deleted() {
            let now = now_ms();
            let mut st = q.state.lock();
            for (seq, _) in &held {
                st.release(*seq, now);
            }
            return Ok(());
        }
        let fifo = dlq.config().fifo;
        let recs: Vec<SendRec> = {
            let _g = q.gate.read().await;
            let mut v = Vec::new();
            for (_, m) in &held {
                if let Some(r) = q.read_message(m.offset)? {
                    // AWS carries the receive count into the dead-letter queue, so the first
                    // receive there reports one more than the source saw; the first receive's
                    // time comes along with it (a test on SQS in ElasticMQ's issue 386).
                    let mut copy =
                        moved_copy(r, Some(q.arn()), m.receive_count, m.first_receive_ms);
                    if fifo {
                        // "When a message is moved from a FIFO queue to a FIFO DLQ, the
                        // original message's deduplication ID will be replaced with the
                        // original message's ID" (SQS Developer Guide): what the copy shows
                        // and carries on, so a redrive back to the source is not taken for
                        // the original send. (The dead-letter queue itself keys every
                        // dead-lettered copy by its message id: `Queue::send`.)
                        copy.dedup_id = Some(super::messages::message_id(copy.id));
                    }
                    v.push(copy);
                }
            }
            v
        };
        if let Err(err) = dlq.send(recs).await {
            let now = now_ms();
            let mut st = q.state.lock();
            for (seq, _) in &held {
                st.release(*seq, now);
            }
            return Err(err);
        }
        let _g = q.gate.read().await;
        let seqs: Vec<u64> = {
            let mut st = q.state.lock();
            held.iter()
                .filter_map(|(s, _)| st.remove(*s).map(|_| *s))
                .collect()
        };
        q.log_removed(Q_MOVED, seqs).await
    }

    pub(crate) fn list_dead_letter_source_queues(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: DlqSourcesIn = parse_input(input, PARAM)?;
        let dlq = self.queue_by_url(ctx, i.queue_url.as_deref())?;
        if let Some(m) = i.max_results {
            if !(1..=1000).contains(&m) {
                return Err(e::invalid_range(
                    "MaxResults",
                    m,
                    "MaxResults must be an integer between 1 and 1000.",
                ));
            }
        }
        let after = i.next_token.as_deref().map(decode_token).transpose()?;
        let arn = dlq.arn();
        let mut sources: Vec<Arc<Queue>> = self
            .all_queues()
            .into_iter()
            .filter(|q| q.account == dlq.account && q.region == dlq.region)
            .filter(|q| q.config().redrive.is_some_and(|r| r.target_arn == arn))
            .filter(|q| after.as_ref().is_none_or(|a| &q.name > a))
            .collect();
        sources.sort_by(|a, b| a.name.cmp(&b.name));
        let limit = i.max_results.unwrap_or(1000) as usize;
        let more = sources.len() > limit;
        sources.truncate(limit);
        let mut out = json!({
            "queueUrls": sources.iter().map(|q| q.url(&ctx.base_url)).collect::<Vec<_>>()
        });
        if more && i.max_results.is_some() {
            if let Some(last) = sources.last() {
                out["NextToken"] = json!(encode_token(&last.name));
            }
        }
        Ok(out)
    }

    pub(crate) async fn start_message_move_task(
        &self,
        _ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: StartIn = parse_input(input, PARAM)?;
        let source_arn = i
            .source_arn
            .ok_or_else(|| e::missing_parameter("SourceArn"))?;
        let src = self.queue_by_arn(&source_arn).ok_or_else(|| {
            e::resource_not_found(
                "The resource that you specified for the SourceArn parameter doesn't exist.",
            )
        })?;
        let is_dlq = self.all_queues().iter().any(|q| {
            q.config()
                .redrive
                .is_some_and(|r| r.target_arn == source_arn)
        });
        if !is_dlq {
            return Err(e::invalid_parameter_value(
                "Source queue must be configured as a Dead Letter Queue.",
            ));
        }
        if let Some(d) = &i.destination_arn {
            if arn_parts(d).is_none() || self.queue_by_arn(d).is_none() {
                return Err(e::resource_not_found(
                    "The resource that you specified for the DestinationArn parameter doesn't exist.",
                ));
            }
            if d == &source_arn {
                return Err(e::invalid_parameter_value(
                    "Source queue arn and destination queue arn cannot be the same.",
                ));
            }
        }
        let rate = match i.max_number_of_messages_per_second {
            Some(r) if !(1..=500).contains(&r) => {
                return Err(e::invalid_parameter_value(
                    "Value for parameter MaxNumberOfMessagesPerSecond is invalid. Reason: You must enter a number that's between 1 and 500.",
                ))
            }
            r => r.map(|r| r as u32),
        };
        let _g = self.catalog.gate.lock().await;
        if self
            .tasks
            .lock()
            .list
            .iter()
            .any(|t| t.rec.source_arn == source_arn && t.status == "RUNNING")
        {
            return Err(e::invalid_parameter_value(
                "There is already a task running. Only one active task is allowed for a source queue arn at a given time.",
            ));
        }
        let to_move = src.state.lock().counts(now_ms()).0 as u64;
        let rec = MoveTaskRec {
            task_id: uuid::Uuid::new_v4().to_string(),
            source_arn,
            destination_arn: i.destination_arn,
            rate,
            started_ms: now_ms(),
            to_move,
        };
        self.catalog.append(C_MOVE_START, &rec).await?;
        let t = TaskState {
            rec,
            moved: 0,
            status: "RUNNING".into(),
            failure: None,
            pending: None,
        };
        let handle = task_handle(&t);
        let id = t.rec.task_id.clone();
        {
            let mut tasks = self.tasks.lock();
            tasks.list.push(t);
            tasks.prune();
        }
        self.spawn_task(id);
        Ok(json!({ "TaskHandle": handle }))
    }

    pub(crate) fn list_message_move_tasks(
        &self,
        _ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: ListTasksIn = parse_input(input, PARAM)?;
        let source_arn = i
            .source_arn
            .ok_or_else(|| e::missing_parameter("SourceArn"))?;
        if self.queue_by_arn(&source_arn).is_none() {
            return Err(e::resource_not_found(
                "The resource that you specified for the SourceArn parameter doesn't exist.",
            ));
        }
        let max = match i.max_results {
            Some(m) if !(1..=10).contains(&m) => {
                return Err(e::invalid_range(
                    "MaxResults",
                    m,
                    "You must enter a number that's between 1 and 10.",
                ))
            }
            Some(m) => m as usize,
            None => 1,
        };
        let tasks = self.tasks.lock();
        let results: Vec<Value> = tasks
            .list
            .iter()
            .rev()
            .filter(|t| t.rec.source_arn == source_arn)
            .take(max)
            .map(|t| {
                let mut v = json!({
                    "Status": t.status,
                    "SourceArn": t.rec.source_arn,
                    "ApproximateNumberOfMessagesMoved": t.moved,
                    "ApproximateNumberOfMessagesToMove": t.rec.to_move,
                    "StartedTimestamp": t.rec.started_ms,
                });
                if t.status == "RUNNING" {
                    v["TaskHandle"] = json!(task_handle(t));
                }
                if let Some(d) = &t.rec.destination_arn {
                    v["DestinationArn"] = json!(d);
                }
                if let Some(r) = t.rec.rate {
                    v["MaxNumberOfMessagesPerSecond"] = json!(r);
                }
                if let Some(f) = &t.failure {
                    v["FailureReason"] = json!(f);
                }
                v
            })
            .collect();
        Ok(json!({ "Results": results }))
    }

    pub(crate) async fn cancel_message_move_task(
        &self,
        _ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: CancelIn = parse_input(input, PARAM)?;
        let handle = i
            .task_handle
            .ok_or_else(|| e::missing_parameter("TaskHandle"))?;
        let not_found = || e::resource_not_found("Task does not exist.");
        let (id, source) = task_of(&handle).ok_or_else(|| {
            e::invalid_parameter_value("Value for parameter TaskHandle is invalid.")
        })?;
        // A handle naming a source queue that does not exist (LocalStack's AWS-recorded
        // test_cancel_with_invalid_source_arn_in_task_handle).
        if source.is_some_and(|a| self.queue_by_arn(&a).is_none()) {
            return Err(e::resource_not_found(
                "The resource that you specified for the SourceArn parameter doesn't exist.",
            ));
        }
        // The step in flight first (then the catalog, in the runner's order).
        let runner = self.tasks.lock().runners.get(&id).cloned();
        let _step = match &runner {
            Some(r) => Some(r.step.lock().await),
            None => None,
        };
        // A task that has ended is no longer one that cancelling can find (the model names
        // ResourceNotFoundException as the action's error; moto's
        // test_cancel_message_move_task_that_is_not_running answers the same).
        let moved = self
            .end_task(&id, "CANCELLED", None)
            .await?
            .ok_or_else(not_found)?;
        Ok(json!({ "ApproximateNumberOfMessagesMoved": moved }))
    }

    /// The step lock of a running task's runner, for a test to stand in for a step in flight.
    #[cfg(test)]
    pub(crate) fn move_step_lock(&self, handle: &str) -> Option<Arc<tokio::sync::Mutex<()>>> {
        let (id, _) = task_of(handle)?;
        Some(self.tasks.lock().runners.get(&id)?.step.clone())
    }

    /// A task's state by its handle, for a test to stand in for a step in flight.
    #[cfg(test)]
    pub(crate) fn with_move_task<R>(
        &self,
        handle: &str,
        f: impl FnOnce(&mut TaskState) -> R,
    ) -> Option<R> {
        let (id, _) = task_of(handle)?;
        self.tasks.lock().get_mut(&id).map(f)
    }

    /// Restarts the runners of tasks that were RUNNING when the broker stopped, counting the
    /// message of each one's last logged step if it left the source queue.
    pub(crate) fn resume_move_tasks(&self) {
        let pending: Vec<(String, String, (u64, u64))> = self
            .tasks
            .lock()
            .list
            .iter()
            .filter(|t| t.status == "RUNNING")
            .filter_map(|t| Some((t.rec.task_id.clone(), t.rec.source_arn.clone(), t.pending?)))
            .collect();
        for (id, source, (source_id, seq)) in pending {
            // A source deleted since (or made anew under its ARN) cannot tell; the task fails
            // on its next step anyway.
            let moved = self
                .queue_by_arn(&source)
                .filter(|q| q.id == source_id)
                .is_some_and(|q| q.state.lock().get(seq).is_none());
            if let Some(t) = self.tasks.lock().get_mut(&id) {
                t.moved += u64::from(moved);
                t.pending = None;
            }
        }
        let running: Vec<String> = self
            .tasks
            .lock()
            .list
            .iter()
            .filter(|t| t.status == "RUNNING")
            .map(|t| t.rec.task_id.clone())
            .collect();
        for id in running {
            self.spawn_task(id);
        }
    }

    fn spawn_task(&self, id: String) {
        let runner = Arc::new(Runner::default());
        self.tasks.lock().runners.insert(id.clone(), runner.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(run_task(self.me.clone(), id, runner));
        }
    }

    /// Ends a RUNNING task durably with `status` and stops its runner; the count it moved, or
    /// None if no such task is running.
    async fn end_task(
        &self,
        id: &str,
        status: &str,
        failure: Option<String>,
    ) -> ServiceResult<Option<u64>> {
        self.end_task_after(id, status, failure, 0).await
    }

    /// [`Sqs::end_task`], counting `just_moved` more messages moved: the last move of a task
    /// and its end are shown together, so a reader never sees every message moved and the
    /// task still RUNNING (as AWS's task does not, LocalStack's AWS-recorded
    /// test_basic_move_task_workflow).
    async fn end_task_after(
        &self,
        id: &str,
        status: &str,
        failure: Option<String>,
        just_moved: u64,
    ) -> ServiceResult<Option<u64>> {
        let _g = self.catalog.gate.lock().await;
        let moved = match self.tasks.lock().get_mut(id) {
            Some(t) if t.status == "RUNNING" => t.moved + just_moved,
            _ => return Ok(None),
        };
        let rec = MoveEndRec {
            task_id: id.to_string(),
            moved,
            status: status.to_string(),
            failure,
        };
        self.catalog.append(C_MOVE_END, &rec).await?;
        let mut tasks = self.tasks.lock();
        if let Some(r) = tasks.runners.remove(id) {
            r.cancelled.store(true, Ordering::Release);
        }
        if let Some(t) = tasks.get_mut(id) {
            t.status = rec.status;
            t.failure = rec.failure;
            t.moved = moved;
        }
        Ok(Some(moved))
    }

    /// Logs the step about to move message `seq` of `src` ([`MoveStepRec`]), and keeps it
    /// as the task's step in flight until the move is counted, for a catalog checkpoint to
    /// log again.
    async fn record_step(&self, t: &TaskState, src: &Queue, seq: u64) -> ServiceResult<()> {
        let _g = self.catalog.gate.lock().await;
        let rec = MoveStepRec {
            task_id: t.rec.task_id.clone(),
            moved: t.moved,
            source_id: src.id,
            seq,
        };
        self.catalog.append(C_MOVE_STEP, &rec).await?;
        if let Some(t) = self.tasks.lock().get_mut(&t.rec.task_id) {
            t.pending = Some((src.id, seq));
        }
        Ok(())
    }

    /// Moves one message of the task; Ok(false) when there is nothing left to move.
    async fn move_one(&self, t: &TaskState) -> Result<bool, String> {
        let src = self
            .queue_by_arn(&t.rec.source_arn)
            .ok_or(NON_EXISTENT_QUEUE)?;
        let Some((seq, m)) = src.state.lock().hold_next(now_ms()) else {
            return Ok(false);
        };
        let release = |src: &Queue| src.state.lock().release(seq, now_ms());
        if let Err(err) = self.record_step(t, &src, seq).await {
            release(&src);
            return Err(err.message);
        }
        let rec = {
            let _g = src.gate.read().await;
            match src.read_message(m.offset) {
                Ok(Some(r)) => r,
                _ => {
                    release(&src);
                    return Err("A message could not be read.".into());
                }
            }
        };
        // Without a destination a message goes back where it was dead-lettered from; one sent
        // to the dead-letter queue directly has no such place (AWS's "Troubleshoot Amazon SQS
        // dead-letter queue and DLQ redrive issues" gives both failure reasons).
        let Some(dest_arn) = t.rec.destination_arn.clone().or(rec.dlq_source.clone()) else {
            release(&src);
            return Err("CouldNotDetermineMessageSource".into());
        };
        let dest = self.queue_by_arn(&dest_arn).filter(|d| !d.is_deleted());
        let Some(dest) = dest else {
            release(&src);
            return Err(NON_EXISTENT_QUEUE.into());
        };
        // "All redriven messages are considered new messages and are assigned a new messageID
        // and enqueueTime" (SQS Developer Guide, dead-letter queue redrive): retention starts
        // over. The new id is derived from the task and the message, so the duplicate a crash
        // between this send and the removal below leaves in a standard destination has the
        // same id as its twin (a FIFO destination drops it by the unchanged deduplication id).
        let id = moved_message_id(&t.rec.task_id, rec.id);
        let mut copy = moved_copy(rec, None, 0, 0);
        copy.id = id;
        copy.sent_ms = now_ms();
        if let Err(err) = dest.send(vec![copy]).await {
            release(&src);
            return Err(err.message);
        }
        let _g = src.gate.read().await;
        let removed = src.state.lock().remove(seq).is_some();
        if removed {
            src.log_removed(Q_MOVED, vec![seq])
                .await
                .map_err(|e| e.message)?;
        }
        Ok(true)
    }
}

async fn run_task(sqs: Weak<Sqs>, id: String, runner: Arc<Runner>) {
    loop {
        if runner.cancelled.load(Ordering::Acquire) {
            return;
        }
        let Some(s) = sqs.upgrade() else { return };
        let Some(t) = s
            .tasks
            .lock()
            .list
            .iter()
            .find(|t| t.rec.task_id == id)
            .cloned()
        else {
            return;
        };
        if t.status != "RUNNING" {
            return;
        }
        if t.moved >= t.rec.to_move {
            let _ = s.end_task(&id, "COMPLETED", None).await;
            return;
        }
        let step = runner.step.lock().await;
        // A cancel that got the step lock first has ended the task.
        if runner.cancelled.load(Ordering::Acquire) {
            return;
        }
        match s.move_one(&t).await {
            Ok(true) if t.moved + 1 >= t.rec.to_move => {
                if s.end_task_after(&id, "COMPLETED", None, 1).await.is_ok() {
                    return;
                }
                // The end was not recorded: count the move, and the next turn ends the task.
                if let Some(t) = s.tasks.lock().get_mut(&id) {
                    t.moved += 1;
                    t.pending = None;
                }
            }
            Ok(true) => {
                // The next step's record (or the task's end) logs the new count; until then
                // replay derives it from this step's record and the source queue.
                if let Some(t) = s.tasks.lock().get_mut(&id) {
                    t.moved += 1;
                    t.pending = None;
                }
            }
            Ok(false) => {
                let _ = s.end_task(&id, "COMPLETED", None).await;
                return;
            }
            Err(reason) => {
                let _ = s.end_task(&id, "FAILED", Some(reason)).await;
                return;
            }
        }
        drop(step);
        let pause = Duration::from_millis(1000 / u64::from(t.rec.rate.unwrap_or(500).max(1)));
        drop(s);
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A move retried after a crash gives the message the id the first attempt gave it; another
    /// task, or another message, gets another id.
    #[test]
    fn moved_message_ids_are_stable_per_task_and_message() {
        let a = moved_message_id("task-1", 7);
        assert_eq!(a, moved_message_id("task-1", 7));
        assert_ne!(a, moved_message_id("task-2", 7));
        assert_ne!(a, moved_message_id("task-1", 8));
        assert_ne!(a, 7);
        assert_eq!(uuid::Uuid::from_u128(a).get_version_num(), 4);
    }
}
