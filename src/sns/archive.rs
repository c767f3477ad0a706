//! Message archiving and replay for FIFO topics: the topic's `ArchivePolicy` keeps every
//! message published to it for `MessageRetentionPeriod` days, and a subscription's
//! `ReplayPolicy` redelivers the archived messages of a time range to it, reporting progress in
//! its `ReplayStatus` (SNS Developer Guide, "Amazon SNS message archiving and replay for FIFO
//! topics").
//!
//! Each archiving topic has a log of its own under `<sns log dir>/archives/`, one record per
//! published message, found by time through the log's time index and dropped by the log's
//! time retention. A replay is a task that reads that log and sends through the same SQS sink
//! as live deliveries; its status lives in the subscription's attributes, so a replay cut off
//! by a restart starts again when the broker does.
//!
//! Delivery follows the model's ReplayStatus docs: while a replay is Pending or In progress the
//! subscription gets no live messages; the replay reads the archive up to its tail and hands
//! the subscription back to live delivery ("Completed ... now delivering newly published
//! messages") under the topic's publish lock, so no message is skipped or sent twice; a
//! replay with an EndingPoint leaves the subscription without live messages once Completed
//! ("will no longer receive newly published messages"). Choices where AWS is silent: a
//! replayed notification has `"Replayed" : true` as its last envelope member, a raw one is
//! unmarked; a replayed message sent into a FIFO queue gets a deduplication id of its own
//! (derived from the ReplayPolicy and the MessageId, so a replay resumed after a restart is
//! deduplicated by the queue and a replay soon after the original delivery is not); a replay
//! of a topic with no archive, or whose queue refuses a message, ends `Failed`; a StartingPoint
//! before BeginningArchiveTime replays from it.
//!
//! Owns the archive files; publishing, subscriptions and envelopes stay in their modules.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Weak;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::delivery::{Notice, SharedEnvelope};
use super::error::invalid_parameter;
use super::state::{
    unfinished_key, DeliveryKind, Record, State, Subscription, Topic, DEDUP_WINDOW_MS,
};
use super::Sns;
use crate::error::{ServiceError, ServiceResult};
use crate::log::{Log, LogOptions};
use crate::sqs::InternalSend;

/// Record kind of an archived message in an archive log.
const ARCHIVED: u8 = 1;
const DAY_MS: u64 = 24 * 60 * 60 * 1000;
/// About the most archive bytes one replay holds in memory at a time.
const CHUNK_BYTES: usize = 4 << 20;
/// The topic attribute AWS reports as the earliest point a replay can start from.
pub const BEGINNING_ARCHIVE_TIME: &str = "BeginningArchiveTime";
pub const REPLAY_STATUS: &str = "ReplayStatus";
/// ReplayStatus values, as the SNS model's ReplayStatus documentation spells them.
const PENDING: &str = "Pending";
const IN_PROGRESS: &str = "In progress";
const COMPLETED: &str = "Completed";
const FAILED: &str = "Failed";

/// One message as a FIFO topic published it: what a replay needs to deliver it again exactly.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Archived {
    pub message_id: String,
    pub sequence: u64,
    pub timestamp_ms: u64,
    pub subject: Option<String>,
    /// The message an SQS subscription receives (MessageStructure=json already resolved).
    pub message: String,
    /// The published message attributes, as JSON: they drive filter policies.
    pub attributes: String,
    /// Published with MessageStructure=json: the attributes are not delivered.
    pub structured: bool,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
    /// The base URL of the publish, which the envelope's UnsubscribeURL starts with.
    pub base_url: String,
}

/// `MessageRetentionPeriod` of an ArchivePolicy, in days; `Ok(None)` for an empty policy (`{}`
/// or an empty string), which turns archiving off.
pub fn retention_days(policy: &str) -> ServiceResult<Option<u64>> {
    let bad = |why: &str| invalid_parameter(format!("ArchivePolicy Reason: {why}"));
    if policy.trim().is_empty() {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(policy).map_err(|_| bad("failed to parse JSON"))?;
    let Some(obj) = v.as_object() else {
        return Err(bad("must be a JSON object"));
    };
    if let Some(k) = obj.keys().find(|k| *k != "MessageRetentionPeriod") {
        return Err(bad(&format!("Unknown key {k}")));
    }
    let Some(days) = obj.get("MessageRetentionPeriod") else {
        return Ok(None);
    };
    let days = match days {
        Value::String(s) => s.parse::<u64>().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    };
    match days {
        Some(d @ 1..=365) => Ok(Some(d)),
        _ => Err(bad(
            "MessageRetentionPeriod must be an integer from 1 to 365",
        )),
    }
}

/// A subscription's ReplayPolicy: the time range, in ms, of the messages to replay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReplayRange {
    pub start_ms: u64,
    pub end_ms: Option<u64>,
}

/// Parses and checks a ReplayPolicy (`{"PointType":"Timestamp","StartingPoint":"<ISO 8601>",
/// "EndingPoint":"<ISO 8601>"}`, the last optional) of a subscription to `topic_arn`.
pub fn replay_range(policy: &str, topic_arn: &str) -> ServiceResult<ReplayRange> {
    let bad = |why: &str| invalid_parameter(format!("ReplayPolicy Reason: {why}"));
    if !topic_arn.ends_with(".fifo") {
        return Err(bad("Message replay is only supported for FIFO topics"));
    }
    let v: Value = serde_json::from_str(policy).map_err(|_| bad("failed to parse JSON"))?;
    let Some(obj) = v.as_object() else {
        return Err(bad("must be a JSON object"));
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "PointType" | "StartingPoint" | "EndingPoint"))
    {
        return Err(bad(&format!("Unknown key {k}")));
    }
    if obj.get("PointType").and_then(Value::as_str) != Some("Timestamp") {
        return Err(bad("PointType must be Timestamp"));
    }
    let time = |key: &str| -> ServiceResult<Option<u64>> {
        match obj.get(key) {
            None => Ok(None),
            Some(t) => t
                .as_str()
                .and_then(crate::service::parse_iso8601)
                .map(Some)
                .ok_or_else(|| bad(&format!("{key} must be an ISO 8601 timestamp"))),
        }
    };
    let Some(start_ms) = time("StartingPoint")? else {
        return Err(bad("StartingPoint is required"));
    };
    let end_ms = time("EndingPoint")?;
    if end_ms.is_some_and(|e| e < start_ms) {
        return Err(bad("EndingPoint must not be before StartingPoint"));
    }
    Ok(ReplayRange { start_ms, end_ms })
}

/// The archive directory of a topic: its ARN hashed (ARNs hold ':' and may be longer than a
/// file name may be).
fn archive_dir(root: &Path, topic_arn: &str) -> PathBuf {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(topic_arn.as_bytes());
    root.join(hex::encode(&digest[..16]))
}

/// The archive logs of the archiving topics, opened on first use.
pub struct Archives {
    root: PathBuf,
    opts: LogOptions,
    open: parking_lot::Mutex<HashMap<String, Log>>,
    /// The latest replay started per subscription: an older one still running stops.
    replays: parking_lot::Mutex<HashMap<String, u64>>,
}

impl Archives {
    pub fn new(sns_log_dir: &Path, mut opts: LogOptions) -> Self {
        // Hourly segments, so retention (which drops whole segments) frees an expired hour
        // at the next publish instead of waiting for 64 MiB to roll.
        opts.segment_age = Some(std::time::Duration::from_secs(3600));
        Archives {
            root: sns_log_dir.join("archives"),
            opts,
            open: Default::default(),
            replays: Default::default(),
        }
    }

    /// Removes the archives of topics that do not archive (any more): a crash between a
    /// DeleteTopic or an archive policy's removal and the files' removal leaves them.
    pub fn sweep<'a>(&self, archiving: impl Iterator<Item = &'a Topic>) {
        let live: std::collections::HashSet<PathBuf> =
            archiving.map(|t| archive_dir(&self.root, &t.arn)).collect();
        // What a crash in `clear` leaves.
        let mut cleared = self.root.clone().into_os_string();
        cleared.push(crate::log::DELETING_SUFFIX);
        let _ = crate::log::remove_dir(Path::new(&cleared));
        if let Ok(rd) = std::fs::read_dir(&self.root) {
            for ent in rd.flatten() {
                if !live.contains(&ent.path()) {
                    let _ = crate::log::remove_dir(&ent.path());
                }
            }
        }
    }

    fn log(&self, topic_arn: &str) -> ServiceResult<Log> {
        let mut open = self.open.lock();
        match open.get(topic_arn) {
            Some(l) if !l.is_poisoned() => return Ok(l.clone()),
            // A failed write poisons a log until it is reopened.
            Some(_) => drop(open.remove(topic_arn)),
            None => {}
        }
        let dir = archive_dir(&self.root, topic_arn);
        let (log, report) = Log::open(&dir, self.opts.clone())?;
        if report.truncated_bytes > 0 {
            tracing::warn!(
                ?report,
                topic_arn,
                "sns archive: torn tail truncated on recovery"
            );
        }
        open.insert(topic_arn.to_string(), log.clone());
        Ok(log)
    }

    /// Archives one message durably, first dropping the sealed segments older than `days`.
    pub async fn append(&self, topic_arn: &str, days: u64, m: &Archived) -> ServiceResult<()> {
        let log = self.log(topic_arn)?;
        // Best effort: the message is delivered already, and a replay skips expired records.
        if let Err(e) = log.enforce_retention(m.timestamp_ms, Some(days * DAY_MS), None) {
            tracing::warn!(error = %e, topic_arn, "sns archive: retention failed");
        }
        log.append(ARCHIVED, m.timestamp_ms, crate::codec::encode(m))
            .await?;
        Ok(())
    }

    /// Poisons a topic's open archive log as a failed write would.
    #[cfg(test)]
    pub fn poison_for_tests(&self, topic_arn: &str) {
        if let Some(log) = self.open.lock().get(topic_arn) {
            log.poison_for_tests();
        }
    }

    /// Deletes a topic's archive (the topic is gone, or archives no more).
    pub fn remove(&self, topic_arn: &str) {
        let log = self.open.lock().remove(topic_arn);
        drop(log);
        let _ = crate::log::remove_dir(&archive_dir(&self.root, topic_arn));
    }

    /// Deletes every archive.
    pub fn clear(&self) {
        self.open.lock().clear();
        let _ = crate::log::remove_dir(&self.root);
    }

    /// Puts back the deduplication records a crash lost. A publish is archived after its
    /// deliveries and before its `FifoPublished` record; a kill between leaves a delivered
    /// message whose retry the topic would deliver again under a new MessageId (into FIFO
    /// queues too, when they hold a replay of the first). Read from each archiving topic's
    /// last 5 minutes, the retry is answered with the archived MessageId and SequenceNumber.
    pub fn recover_dedup(&self, state: &mut State, now_ms: u64) {
        let topics: Vec<String> = state
            .topics
            .values()
            .filter(|t| t.is_fifo() && archiving_days(t).is_some())
            .map(|t| t.arn.clone())
            .collect();
        for arn in topics {
            let log = match self.log(&arn) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, topic_arn = arn, "sns archive: cannot open");
                    continue;
                }
            };
            let since = now_ms.saturating_sub(DEDUP_WINDOW_MS);
            let Ok(Some(from)) = log.offset_for_timestamp(since) else {
                continue;
            };
            let Some(topic) = state.topics.get(&arn).cloned() else {
                continue;
            };
            let f = state.fifo.entry(arn.clone()).or_default();
            for rec in log.scan(from) {
                let Ok(rec) = rec else { break };
                if rec.kind != ARCHIVED || rec.timestamp_ms < since {
                    continue;
                }
                let Ok(m) = crate::codec::decode::<Archived>(&rec.payload) else {
                    continue;
                };
                f.sequence = f.sequence.max(m.sequence);
                if let Some(id) = &m.dedup_id {
                    let key = topic.dedup_key(m.group_id.as_deref(), id);
                    match f.dedup.get(&key) {
                        // Archived after its deliveries: finished, whatever its intent said
                        // (if the id is still this publish's, not a later one's).
                        Some(e) if e.1 == m.message_id => {
                            f.dedup.remove(&unfinished_key(&key));
                        }
                        Some(_) => {}
                        None => f.remember(key, (m.timestamp_ms, m.message_id, m.sequence)),
                    }
                }
            }
        }
    }

    /// Registers a new replay of a subscription, which supersedes any running one.
    fn next_replay(&self, sub_arn: &str) -> u64 {
        let mut r = self.replays.lock();
        let n = r.entry(sub_arn.to_string()).or_default();
        *n += 1;
        *n
    }

    fn is_current(&self, sub_arn: &str, generation: u64) -> bool {
        self.replays.lock().get(sub_arn) == Some(&generation)
    }

    /// Where a replay of `range` starts reading: the first record at or after its
    /// StartingPoint, or the archive's end.
    fn replay_start(&self, topic_arn: &str, range: ReplayRange) -> ServiceResult<u64> {
        let log = self.log(topic_arn)?;
        Ok(log
            .offset_for_timestamp(range.start_ms)?
            .unwrap_or_else(|| log.next_offset()))
    }

    /// The offset after the last archived message: where a replay has caught up.
    fn end(&self, topic_arn: &str) -> ServiceResult<u64> {
        Ok(self.log(topic_arn)?.next_offset())
    }

    /// Up to `max` archived messages stamped within `range`, read from offset `from` up to
    /// `stop` (looking at no more than `16 * max` records or about [`CHUNK_BYTES`]), and the
    /// offset to go on from: a replay holds one such chunk in memory at a
    /// time, however large the archive.
    fn read_chunk(
        &self,
        topic_arn: &str,
        range: ReplayRange,
        (from, stop): (u64, u64),
        max: usize,
    ) -> ServiceResult<(Vec<Archived>, u64)> {
        let log = self.log(topic_arn)?;
        let mut out = Vec::new();
        let mut next = stop;
        let mut bytes = 0usize;
        // Bounded in records looked at, not only in records returned (a narrow range over a
        // long archive must not be scanned in one go on an async worker), and in bytes (256
        // messages of 256 KiB would hold 64 MiB per replay).
        for (looked, rec) in log.scan(from).enumerate() {
            let rec = rec?;
            if rec.offset >= stop || out.len() == max || looked == 16 * max || bytes >= CHUNK_BYTES
            {
                next = rec.offset.min(stop);
                break;
            }
            bytes += rec.payload.len();
            if rec.kind != ARCHIVED
                || rec.timestamp_ms < range.start_ms
                || range.end_ms.is_some_and(|e| rec.timestamp_ms > e)
            {
                continue;
            }
            out.push(crate::codec::decode::<Archived>(&rec.payload)?);
        }
        Ok((out, next))
    }
}

/// The BeginningArchiveTime to show: when archiving began, or the retention period ago if
/// that is later.
pub fn beginning_archive_time(t: &Topic, now_ms: u64) -> Option<String> {
    let began = t
        .attributes
        .get(BEGINNING_ARCHIVE_TIME)
        .and_then(|s| crate::service::parse_iso8601(s))?;
    let days = t
        .attributes
        .get("ArchivePolicy")
        .and_then(|p| retention_days(p).ok().flatten())?;
    Some(crate::service::iso8601_ms(
        began.max(now_ms.saturating_sub(days * DAY_MS)),
    ))
}

/// Keeps a topic's BeginningArchiveTime with its ArchivePolicy: set when archiving starts,
/// gone when it stops.
pub fn normalise_topic(attributes: &mut std::collections::BTreeMap<String, String>, now_ms: u64) {
    let archiving = attributes
        .get("ArchivePolicy")
        .is_some_and(|p| retention_days(p).ok().flatten().is_some());
    if !archiving {
        attributes.remove(BEGINNING_ARCHIVE_TIME);
    } else if !attributes.contains_key(BEGINNING_ARCHIVE_TIME) {
        attributes.insert(
            BEGINNING_ARCHIVE_TIME.into(),
            crate::service::iso8601_ms(now_ms),
        );
    }
}

/// The archive retention of a topic, in days, if it archives.
pub fn archiving_days(t: &Topic) -> Option<u64> {
    t.attributes
        .get("ArchivePolicy")
        .and_then(|p| retention_days(p).ok().flatten())
}

/// A ReplayPolicy needs messages to replay: the topic must archive. (Accepted, such a replay
/// could only fail, and the subscription would miss the live messages of its Pending time.)
fn check_archiving(t: &Topic) -> ServiceResult<()> {
    match archiving_days(t) {
        Some(_) => Ok(()),
        None => Err(invalid_parameter(
            "ReplayPolicy Reason: The topic has no message archive (ArchivePolicy)",
        )),
    }
}

/// After a subscription's attributes took a new ReplayPolicy (or lost it): marks the replay
/// Pending and returns the policy to replay, or clears the status. The topic must archive.
pub fn begin_replay(
    attributes: &mut std::collections::BTreeMap<String, String>,
    topic: &Topic,
) -> ServiceResult<Option<String>> {
    match attributes
        .get("ReplayPolicy")
        .filter(|p| !p.is_empty())
        .cloned()
    {
        Some(policy) => {
            check_archiving(topic)?;
            attributes.insert(REPLAY_STATUS.into(), PENDING.into());
            Ok(Some(policy))
        }
        None => {
            attributes.remove(REPLAY_STATUS);
            Ok(None)
        }
    }
}

/// Whether a subscription's replay has yet to finish.
pub fn replay_pending(s: &Subscription) -> bool {
    matches!(
        s.attributes.get(REPLAY_STATUS).map(String::as_str),
        Some(PENDING | IN_PROGRESS)
    )
}

/// Whether a subscription gets newly published messages: not while its replay runs, nor after
/// a replay with an EndingPoint completed (the model's ReplayStatus documentation).
pub fn receives_live(s: &Subscription) -> bool {
    match s.attributes.get(REPLAY_STATUS).map(String::as_str) {
        Some(PENDING | IN_PROGRESS) => false,
        Some(COMPLETED) => s
            .attributes
            .get("ReplayPolicy")
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .is_none_or(|p| p.get("EndingPoint").is_none()),
        _ => true,
    }
}

/// The deduplication id a replayed message carries into a FIFO queue: its own, so the queue
/// does not take it for the original (or for another message that shared the original's id
/// more than 5 minutes apart), and the same for every run of one ReplayPolicy, so a replay
/// resumed after a restart is deduplicated.
fn replay_dedup_id(policy: &str, message_id: &str) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(policy.as_bytes());
    h.update([0]);
    h.update(message_id.as_bytes());
    hex::encode(h.finalize())
}

/// Archived messages a replay reads at a time (at most; see [`CHUNK_BYTES`]).
const REPLAY_CHUNK: usize = 256;

/// What one replay carries from span to span.
struct Span<'a> {
    sub_arn: &'a str,
    topic_arn: &'a str,
    range: ReplayRange,
    policy: &'a str,
    generation: u64,
    /// Deduplication ids met in the last 5 minutes of archive: a crash between archiving a
    /// publish and recording its deduplication id archives its retry too.
    seen: HashMap<String, u64>,
}

impl Sns {
    /// Starts the replay a subscription's ReplayPolicy asks for (its status is `Pending`).
    pub(super) fn spawn_replay(&self, sub_arn: &str, policy: &str) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let generation = self.archives.next_replay(sub_arn);
        handle.spawn(run_replay(
            self.me.clone(),
            sub_arn.to_string(),
            policy.to_string(),
            generation,
        ));
    }

    /// Sets a subscription's ReplayStatus, unless its ReplayPolicy is no longer `policy` (a
    /// newer replay replaced this one) or it is gone. Whether it was set.
    async fn set_replay_status(
        &self,
        sub_arn: &str,
        policy: &str,
        status: &str,
    ) -> ServiceResult<bool> {
        self.mutate(|st| {
            let Some(s) = st.subscriptions.get(sub_arn) else {
                return Ok((vec![], false));
            };
            if s.attributes.get("ReplayPolicy").map(String::as_str) != Some(policy) {
                return Ok((vec![], false));
            }
            let mut s = s.clone();
            s.attributes.insert(REPLAY_STATUS.into(), status.into());
            Ok((vec![Record::PutSubscription(s)], true))
        })
        .await
    }

    /// Delivers one archived message to an SQS subscription again.
    async fn replay_one(
        &self,
        sub: &Subscription,
        m: &Archived,
        policy: &str,
    ) -> ServiceResult<()> {
        let attrs: Map<String, Value> = serde_json::from_str(&m.attributes).unwrap_or_default();
        if !super::publish::filter_passes(self, sub, &attrs, &m.message) {
            return Ok(());
        }
        let delivered = if m.structured { Map::new() } else { attrs };
        let into_fifo = super::publish::is_fifo_queue(&sub.endpoint);
        let (body, message_attributes) = if sub.raw() {
            (m.message.clone(), delivered)
        } else {
            let seq = super::publish::format_seq(m.sequence);
            let notice = Notice {
                kind: DeliveryKind::Notification,
                message_id: &m.message_id,
                sequence_number: Some(&seq),
                topic_arn: &sub.topic_arn,
                subject: m.subject.as_deref(),
                message: &m.message,
                timestamp_ms: m.timestamp_ms,
                base_url: &m.base_url,
                subscription_arn: &sub.arn,
                attributes: &delivered,
                token: None,
                signature_version: "1",
                signer: &self.signer,
            };
            (
                SharedEnvelope::new(&notice, "").for_replay(&sub.arn),
                Map::new(),
            )
        };
        let send = InternalSend {
            body,
            message_attributes,
            message_group_id: m.group_id.clone().filter(|_| into_fifo),
            message_deduplication_id: into_fifo.then(|| replay_dedup_id(policy, &m.message_id)),
            trace_header: None,
        };
        self.sinks.sqs.send(&sub.endpoint, send).await.map(|_| ())
    }

    /// Whether the replay `generation` of `sub_arn` under `policy` should go on: it is the
    /// latest one started, and the subscription still exists with that policy (not
    /// unsubscribed, its topic not deleted, the policy not cleared or replaced).
    fn replay_current(&self, sub_arn: &str, policy: &str, generation: u64) -> bool {
        self.archives.is_current(sub_arn, generation)
            && self
                .state
                .lock()
                .subscriptions
                .get(sub_arn)
                .and_then(|s| s.attributes.get("ReplayPolicy"))
                .is_some_and(|p| p == policy)
    }

    /// Runs one replay to its end: `In progress`, every archived message of the range sent
    /// again, then `Completed` (or `Failed`).
    async fn replay(&self, sub_arn: &str, policy: &str, generation: u64) -> ServiceResult<()> {
        let (sub, days) = {
            let st = self.state.lock();
            let Some(sub) = st.subscriptions.get(sub_arn).cloned() else {
                return Ok(());
            };
            let days = st.topics.get(&sub.topic_arn).and_then(archiving_days);
            (sub, days)
        };
        if !self.set_replay_status(sub_arn, policy, IN_PROGRESS).await? {
            return Ok(());
        }
        let outcome = match (days, replay_range(policy, &sub.topic_arn)) {
            (Some(days), Ok(range)) => {
                self.replay_range_to(&sub, range, days, policy, generation)
                    .await
            }
            _ => Err(ServiceError::internal("no archive to replay")),
        };
        match outcome {
            // Completed by `replay_range_to`, under the topic's lock; or replaced.
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::info!(error = %e, subscription = sub_arn, "sns: replay failed");
                if self.archives.is_current(sub_arn, generation) {
                    self.set_replay_status(sub_arn, policy, FAILED).await?;
                }
                Ok(())
            }
        }
    }

    /// Sends the archived messages of `range` to `sub`, a chunk at a time, until it has
    /// caught up with the archive's tail; then, holding the topic's publish lock so that no
    /// publish falls between, marks the replay Completed, which hands the subscription back to
    /// live delivery. `Ok(false)` when the replay was replaced or its subscription is gone.
    async fn replay_range_to(
        &self,
        sub: &Subscription,
        mut range: ReplayRange,
        days: u64,
        policy: &str,
        generation: u64,
    ) -> ServiceResult<bool> {
        // Nothing older than the retention period is replayed, even where its segment has
        // not been dropped yet.
        let oldest = crate::service::now_ms().saturating_sub(days * DAY_MS);
        range.start_ms = range.start_ms.max(oldest);
        let mut span = Span {
            sub_arn: &sub.arn,
            topic_arn: &sub.topic_arn,
            range,
            policy,
            generation,
            seen: HashMap::new(),
        };
        let mut from = self.archives.replay_start(&sub.topic_arn, range)?;
        let mut pass = 0u32;
        loop {
            pass += 1;
            let stop = self.archives.end(&sub.topic_arn)?;
            let Some(next) = self.send_span(&mut span, from, stop).await? else {
                return Ok(false);
            };
            from = next;
            let _order = self.fifo_order(&sub.topic_arn).await;
            let tail = self.archives.end(&sub.topic_arn)?;
            // A short rest is sent under the lock, so a replay finishes once it holds it
            // however busy the topic; a long one is sent without holding publishers up,
            // unless the replay has fallen behind a topic publishing faster than it sends
            // for a few passes: then the rest goes under the lock too, or it would never end.
            if tail.saturating_sub(from) > 4 * REPLAY_CHUNK as u64 && pass < 4 {
                continue;
            }
            if self.send_span(&mut span, from, tail).await?.is_none()
                || !self.replay_current(&sub.arn, policy, generation)
            {
                return Ok(false);
            }
            self.set_replay_status(&sub.arn, policy, COMPLETED).await?;
            return Ok(true);
        }
    }

    /// Sends the archived messages of `span`'s range between offsets `from` and `stop`.
    /// `Some(next offset)`, or `None` when the replay was replaced or its subscription is gone.
    async fn send_span(
        &self,
        span: &mut Span<'_>,
        mut from: u64,
        stop: u64,
    ) -> ServiceResult<Option<u64>> {
        while from < stop {
            let (chunk, next) =
                self.archives
                    .read_chunk(span.topic_arn, span.range, (from, stop), REPLAY_CHUNK)?;
            // As the subscription is now: a FilterPolicy or RawMessageDelivery changed
            // mid-replay applies from the next chunk on.
            let Some(sub) = self.state.lock().subscriptions.get(span.sub_arn).cloned() else {
                return Ok(None);
            };
            for m in &chunk {
                if !self.replay_current(span.sub_arn, span.policy, span.generation) {
                    return Ok(None);
                }
                if let Some(id) = &m.dedup_id {
                    // Copies of one publish share its group too; keyed by both, two messages
                    // of a MessageGroup-scoped topic that share only the id both replay.
                    let key = format!("{} {id}", m.group_id.as_deref().unwrap_or_default());
                    let again = span
                        .seen
                        .get(&key)
                        .is_some_and(|&t| t + DEDUP_WINDOW_MS > m.timestamp_ms);
                    span.seen.insert(key, m.timestamp_ms);
                    if again {
                        continue;
                    }
                }
                self.replay_one(&sub, m, span.policy).await?;
            }
            if let Some(last) = chunk.last() {
                span.seen
                    .retain(|_, t| *t + DEDUP_WINDOW_MS > last.timestamp_ms);
            }
            from = next;
        }
        Ok(Some(from))
    }

    /// Starts again every replay a restart cut off.
    pub(super) fn resume_replays(&self) {
        let pending: Vec<(String, String)> = {
            let st = self.state.lock();
            st.subscriptions
                .values()
                .filter(|s| replay_pending(s))
                .filter_map(|s| {
                    s.attributes
                        .get("ReplayPolicy")
                        .map(|p| (s.arn.clone(), p.clone()))
                })
                .collect()
        };
        for (arn, policy) in pending {
            self.spawn_replay(&arn, &policy);
        }
    }
}

async fn run_replay(sns: Weak<Sns>, sub_arn: String, policy: String, generation: u64) {
    let Some(sns) = sns.upgrade() else { return };
    if let Err(e) = sns.replay(&sub_arn, &policy, generation).await {
        tracing::warn!(error = %e, subscription = sub_arn, "sns: replay stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_policies() {
        assert_eq!(
            retention_days(r#"{"MessageRetentionPeriod":"7"}"#).unwrap(),
            Some(7)
        );
        assert_eq!(
            retention_days(r#"{"MessageRetentionPeriod":365}"#).unwrap(),
            Some(365)
        );
        assert_eq!(retention_days("{}").unwrap(), None);
        assert_eq!(retention_days("").unwrap(), None);
        for bad in [
            r#"{"MessageRetentionPeriod":"0"}"#,
            r#"{"MessageRetentionPeriod":"366"}"#,
            r#"{"MessageRetentionPeriod":"x"}"#,
            r#"{"Retention":"7"}"#,
            "[1]",
            "{",
        ] {
            assert!(retention_days(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn replay_policies() {
        let fifo = "arn:aws:sns:us-east-1:000000000000:t.fifo";
        let r = replay_range(
            r#"{"PointType":"Timestamp","StartingPoint":"2026-01-01T00:00:00.000Z","EndingPoint":"2026-01-01T00:00:01Z"}"#,
            fifo,
        )
        .unwrap();
        assert_eq!(r.end_ms.unwrap() - r.start_ms, 1000);
        let open = r#"{"PointType":"Timestamp","StartingPoint":"2026-01-01T00:00:00Z"}"#;
        assert_eq!(replay_range(open, fifo).unwrap().end_ms, None);
        assert!(replay_range(open, "arn:aws:sns:us-east-1:000000000000:t").is_err());
        for bad in [
            r#"{"foo":1}"#,
            r#"{"PointType":"Offset","StartingPoint":"2026-01-01T00:00:00Z"}"#,
            r#"{"PointType":"Timestamp"}"#,
            r#"{"PointType":"Timestamp","StartingPoint":"yesterday"}"#,
            r#"{"PointType":"Timestamp","StartingPoint":"2026-01-02T00:00:00Z","EndingPoint":"2026-01-01T00:00:00Z"}"#,
            "nope",
        ] {
            assert!(replay_range(bad, fifo).is_err(), "{bad}");
        }
    }
}
