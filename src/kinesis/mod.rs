//! Kinesis: streams, shards and records. Typed requests in, typed responses or
//! [`ServiceError`]s out; every state change is appended to a log before it is acknowledged.
//! Knows nothing of HTTP or wire formats.
//!
//! # Files (under `<data_dir>/kinesis/`)
//! - `catalog/`: one log of `state::CatalogEvent`s (whole-stream metadata snapshots, removals,
//!   account settings) plus periodic checkpoints of the whole catalog; segments below a checkpoint
//!   are truncated, so restart reads one small snapshot and a short tail.
//! - `<account>/<region>/<stream id>/shardId-NNNNNNNNNNNN/`: one log per shard, one log record per
//!   Kinesis record (partition key, explicit hash key, data; arrival time = log timestamp). The
//!   stream id is unique per incarnation, so a re-created stream never sees an old one's records.
//!   Shard logs are opened lazily on first use, so restart time does not depend on history.
//!
//! Sequence numbers and iterators are described in [`keys`]; iterators issued before a restart
//! keep working until they are 5 minutes old. Status transitions (CREATING, UPDATING, DELETING)
//! are stored with the time they resolve (`config.kinesis_transition_ms` after the request) and
//! evaluated lazily, so they survive restarts without timers. Resharding takes effect at request
//! time (parents closed, children open) and the stream reports UPDATING until the transition
//! delay has passed.
//!
//! Retention: reads never return records older than the stream's retention (TRIM_HORIZON is
//! computed from it with the log's time index), and a background task drops whole expired
//! segments every minute (shard segments roll hourly). Closed shards disappear from listings
//! once their retention has passed.
//!
//! Code: catalog state in `state.rs`; actions in `streams.rs` (lifecycle and
//! configuration), `data.rs` (records and iterators), `reshard.rs`, `tags.rs` (tags and
//! policies), `consumers.rs`, `subscribe.rs` (SubscribeToShard); encodings in `keys.rs`; model
//! constraint checks in `validate.rs`; error constructors in `error.rs`.
//!
//! This module must not touch HTTP, wire formats or other services' files.

mod consumers;
mod data;
pub mod error;
pub mod keys;
mod reshard;
mod state;
mod streams;
mod subscribe;
mod tags;
mod validate;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};
use serde::Deserialize;
use serde_json::Value;

use crate::config::Config;
use crate::context::RequestContext;
use crate::error::{ServiceError, ServiceResult};
use crate::log::{Log, LogOptions};

pub use self::subscribe::ShardSubscription;

use self::error::{invalid_argument, stream_not_found};
use self::state::{Catalog, CatalogEvent, StreamMeta};
use self::validate::Checks;

/// Catalog events between checkpoints.
const CHECKPOINT_EVERY: u64 = 256;
/// Shard log segments roll at least this often, so retention can drop them whole.
const SHARD_SEGMENT_AGE: std::time::Duration = std::time::Duration::from_secs(3600);
/// How often the background task drops expired segments.
const RETENTION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

pub use crate::config::KinesisLimits as Limits;

/// One-second usage window of a shard, for [`Limits`].
#[derive(Default)]
struct Window {
    sec: u64,
    records_in: u64,
    bytes_in: u64,
    bytes_out: u64,
    reads: u64,
}

impl Window {
    fn at(&mut self, now_ms: u64) -> &mut Self {
        let sec = now_ms / 1000;
        if sec != self.sec {
            *self = Window {
                sec,
                ..Window::default()
            };
        }
        self
    }
}

/// Live handles of one shard: its log, and the gate that closes it to writers when resharding.
pub(crate) struct ShardRt {
    log: Log,
    /// `true` once closed; writers hold a read guard across their append so a reshard (write
    /// guard) sees every acknowledged record below the end offset it records.
    gate: tokio::sync::RwLock<bool>,
    /// Last arrival timestamp handed out, so timestamps never go backwards within a shard.
    last_ts: Mutex<u64>,
    window: Mutex<Window>,
    /// This run's writer epoch, once recorded in the catalog for this shard.
    epoch: tokio::sync::OnceCell<u64>,
    /// Woken after every append, for SubscribeToShard readers waiting at the tip.
    appended: tokio::sync::Notify,
}

impl ShardRt {
    fn next_ts(&self, now: u64) -> u64 {
        let mut last = self.last_ts.lock();
        *last = (*last).max(now);
        *last
    }
}

/// A shard's handles once its log is open.
type ShardSlot = Arc<Mutex<Option<Arc<ShardRt>>>>;

pub struct Kinesis {
    dir: PathBuf,
    log_opts: LogOptions,
    transition_ms: u64,
    limits: RwLock<Option<Limits>>,
    catalog_log: Log,
    catalog: RwLock<Catalog>,
    /// Serializes catalog changes so the log order is the apply order.
    write_lock: tokio::sync::Mutex<()>,
    shards: Mutex<HashMap<(String, u32), ShardSlot>>,
    /// Open SubscribeToShard subscriptions by (consumer ARN, shard id): one per pair.
    subscriptions: Mutex<HashMap<(String, String), subscribe::Active>>,
    events_since_checkpoint: AtomicU64,
    /// Added to the wall clock; tests move time forward with [`Kinesis::advance_clock`].
    clock_skew_ms: AtomicU64,
    /// When non-zero, the clock reads this instead of the wall clock (tests of per-second limits).
    frozen_ms: AtomicU64,
    /// Last stream creation time or shard writer epoch handed out (see [`keys`]): strictly
    /// increasing, and above everything recorded by earlier runs.
    last_stamp_ms: AtomicU64,
}

/// Which stream a request names: resolved from StreamName (in the caller's account and region)
/// or StreamARN.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub account: String,
    pub region: String,
    pub name: String,
}

/// The StreamName / StreamARN / StreamId members most actions share.
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StreamSel {
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[allow(dead_code)]
    pub stream_id: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    AddTagsToStream,
    CreateStream,
    DecreaseStreamRetentionPeriod,
    DeleteResourcePolicy,
    DeleteStream,
    DeregisterStreamConsumer,
    DescribeAccountSettings,
    DescribeLimits,
    DescribeStream,
    DescribeStreamConsumer,
    DescribeStreamSummary,
    DisableEnhancedMonitoring,
    EnableEnhancedMonitoring,
    GetRecords,
    GetResourcePolicy,
    GetShardIterator,
    IncreaseStreamRetentionPeriod,
    ListShards,
    ListStreamConsumers,
    ListStreams,
    ListTagsForResource,
    ListTagsForStream,
    MergeShards,
    PutRecord,
    PutRecords,
    PutResourcePolicy,
    RegisterStreamConsumer,
    RemoveTagsFromStream,
    SplitShard,
    StartStreamEncryption,
    StopStreamEncryption,
    SubscribeToShard,
    TagResource,
    UntagResource,
    UpdateAccountSettings,
    UpdateMaxRecordSize,
    UpdateShardCount,
    UpdateStreamMode,
    UpdateStreamWarmThroughput,
}

impl Op {
    fn parse(op: &str) -> Option<Op> {
        use Op::*;
        Some(match op {
            "AddTagsToStream" => AddTagsToStream,
            "CreateStream" => CreateStream,
            "DecreaseStreamRetentionPeriod" => DecreaseStreamRetentionPeriod,
            "DeleteResourcePolicy" => DeleteResourcePolicy,
            "DeleteStream" => DeleteStream,
            "DeregisterStreamConsumer" => DeregisterStreamConsumer,
            "DescribeAccountSettings" => DescribeAccountSettings,
            "DescribeLimits" => DescribeLimits,
            "DescribeStream" => DescribeStream,
            "DescribeStreamConsumer" => DescribeStreamConsumer,
            "DescribeStreamSummary" => DescribeStreamSummary,
            "DisableEnhancedMonitoring" => DisableEnhancedMonitoring,
            "EnableEnhancedMonitoring" => EnableEnhancedMonitoring,
            "GetRecords" => GetRecords,
            "GetResourcePolicy" => GetResourcePolicy,
            "GetShardIterator" => GetShardIterator,
            "IncreaseStreamRetentionPeriod" => IncreaseStreamRetentionPeriod,
            "ListShards" => ListShards,
            "ListStreamConsumers" => ListStreamConsumers,
            "ListStreams" => ListStreams,
            "ListTagsForResource" => ListTagsForResource,
            "ListTagsForStream" => ListTagsForStream,
            "MergeShards" => MergeShards,
            "PutRecord" => PutRecord,
            "PutRecords" => PutRecords,
            "PutResourcePolicy" => PutResourcePolicy,
            "RegisterStreamConsumer" => RegisterStreamConsumer,
            "RemoveTagsFromStream" => RemoveTagsFromStream,
            "SplitShard" => SplitShard,
            "StartStreamEncryption" => StartStreamEncryption,
            "StopStreamEncryption" => StopStreamEncryption,
            "SubscribeToShard" => SubscribeToShard,
            "TagResource" => TagResource,
            "UntagResource" => UntagResource,
            "UpdateAccountSettings" => UpdateAccountSettings,
            "UpdateMaxRecordSize" => UpdateMaxRecordSize,
            "UpdateShardCount" => UpdateShardCount,
            "UpdateStreamMode" => UpdateStreamMode,
            "UpdateStreamWarmThroughput" => UpdateStreamWarmThroughput,
            _ => return None,
        })
    }
}

impl Kinesis {
    /// Opens (recovers) every stream under `<data_dir>/kinesis`: reads the catalog checkpoint and
    /// replays the catalog tail. Shard logs are opened on first use.
    pub fn open(config: &Config) -> ServiceResult<Arc<Kinesis>> {
        let dir = config.data_dir.join("kinesis");
        let log_opts = config.log_options();
        let (catalog_log, _report) = Log::open(dir.join("catalog"), log_opts.clone())?;
        let mut catalog = Catalog::default();
        let mut from = catalog_log.start_offset();
        if let Some((upto, bytes)) = catalog_log.read_checkpoint()? {
            catalog = Catalog::from_snapshot(crate::codec::decode_snapshot(&bytes)?);
            from = upto;
        }
        let mut replayed = 0u64;
        for rec in catalog_log.scan(from) {
            let rec = rec?;
            catalog.apply(crate::codec::decode::<CatalogEvent>(&rec.payload)?);
            replayed += 1;
        }
        let newest_stamp = catalog
            .streams
            .values()
            .flat_map(|s| {
                let epochs = s.shards.iter().flat_map(|sh| {
                    sh.epochs
                        .last()
                        .map(|e| e.1)
                        .into_iter()
                        .chain([sh.created_ms])
                });
                epochs.chain([s.created_ms])
            })
            .max()
            .unwrap_or(0);
        let svc = Arc::new(Kinesis {
            dir,
            log_opts,
            transition_ms: config.kinesis_transition_ms,
            limits: RwLock::new(config.kinesis_limits.clone()),
            catalog_log,
            catalog: RwLock::new(catalog),
            write_lock: tokio::sync::Mutex::new(()),
            shards: Mutex::new(HashMap::new()),
            subscriptions: Mutex::new(HashMap::new()),
            events_since_checkpoint: AtomicU64::new(replayed),
            clock_skew_ms: AtomicU64::new(0),
            frozen_ms: AtomicU64::new(0),
            last_stamp_ms: AtomicU64::new(newest_stamp),
        });
        svc.remove_orphan_stream_dirs();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let weak: Weak<Kinesis> = Arc::downgrade(&svc);
            handle.spawn(async move {
                let mut tick = tokio::time::interval(RETENTION_INTERVAL);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(svc) = weak.upgrade() else { break };
                    if let Err(e) = svc.enforce_retention() {
                        tracing::warn!(error = %e, "kinesis retention pass failed");
                    }
                    let _w = svc.write_lock.lock().await;
                    if let Err(e) = svc.purge_deleted().await {
                        tracing::warn!(error = %e, "kinesis purge of deleted streams failed");
                    }
                }
            });
        }
        Ok(svc)
    }

    /// Runs one action. `op` is an operation name from the Kinesis model (the protocol layer has
    /// already rejected unknown ones); `input` is its JSON-shaped request document.
    pub async fn dispatch(
        &self,
        ctx: &RequestContext,
        op: &str,
        input: Value,
    ) -> ServiceResult<Value> {
        let Some(parsed) = Op::parse(op) else {
            return Err(ServiceError::invalid_action(op));
        };
        match parsed {
            Op::CreateStream => self.create_stream(ctx, input).await,
            Op::DeleteStream => self.delete_stream(ctx, input).await,
            Op::DescribeStream => self.describe_stream(ctx, input),
            Op::DescribeStreamSummary => self.describe_stream_summary(ctx, input),
            Op::ListStreams => self.list_streams(ctx, input),
            Op::ListShards => self.list_shards(ctx, input),
            Op::IncreaseStreamRetentionPeriod => self.change_retention(ctx, input, true).await,
            Op::DecreaseStreamRetentionPeriod => self.change_retention(ctx, input, false).await,
            Op::UpdateStreamMode => self.update_stream_mode(ctx, input).await,
            Op::UpdateMaxRecordSize => self.update_max_record_size(ctx, input).await,
            Op::UpdateStreamWarmThroughput => self.update_warm_throughput(ctx, input).await,
            Op::StartStreamEncryption => self.set_encryption(ctx, input, true).await,
            Op::StopStreamEncryption => self.set_encryption(ctx, input, false).await,
            Op::EnableEnhancedMonitoring => self.set_monitoring(ctx, input, true).await,
            Op::DisableEnhancedMonitoring => self.set_monitoring(ctx, input, false).await,
            Op::DescribeLimits => self.describe_limits(ctx),
            Op::DescribeAccountSettings => self.describe_account_settings(ctx),
            Op::UpdateAccountSettings => self.update_account_settings(ctx, input).await,
            Op::PutRecord => self.put_record(ctx, input).await,
            Op::PutRecords => self.put_records(ctx, input).await,
            Op::GetShardIterator => self.get_shard_iterator(ctx, input),
            Op::GetRecords => self.get_records(ctx, input),
            Op::SplitShard => self.split_shard(ctx, input).await,
            Op::MergeShards => self.merge_shards(ctx, input).await,
            Op::UpdateShardCount => self.update_shard_count(ctx, input).await,
            Op::AddTagsToStream => self.add_tags_to_stream(ctx, input).await,
            Op::RemoveTagsFromStream => self.remove_tags_from_stream(ctx, input).await,
            Op::ListTagsForStream => self.list_tags_for_stream(ctx, input),
            Op::TagResource => self.tag_resource(ctx, input).await,
            Op::UntagResource => self.untag_resource(ctx, input).await,
            Op::ListTagsForResource => self.list_tags_for_resource(ctx, input),
            Op::PutResourcePolicy => self.put_resource_policy(ctx, input).await,
            Op::GetResourcePolicy => self.get_resource_policy(ctx, input),
            Op::DeleteResourcePolicy => self.delete_resource_policy(ctx, input).await,
            Op::RegisterStreamConsumer => self.register_consumer(ctx, input).await,
            Op::DeregisterStreamConsumer => self.deregister_consumer(ctx, input).await,
            Op::DescribeStreamConsumer => self.describe_consumer(ctx, input),
            Op::ListStreamConsumers => self.list_consumers(ctx, input),
            Op::SubscribeToShard => self.subscribe_to_shard(ctx, input),
        }
    }

    /// Wipes every stream of every account and region, durably.
    pub async fn reset(&self) -> ServiceResult<()> {
        let _w = self.write_lock.lock().await;
        self.catalog_log.clear()?;
        *self.catalog.write() = Catalog::default();
        self.shards.lock().clear();
        self.events_since_checkpoint.store(0, Ordering::Relaxed);
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if e.file_name() != "catalog" && e.path().is_dir() {
                    let _ = crate::log::remove_dir(&e.path());
                }
            }
        }
        Ok(())
    }

    /// Makes everything appended so far durable (graceful shutdown in interval/none modes).
    pub fn flush(&self) -> ServiceResult<()> {
        self.catalog_log.flush()?;
        let slots: Vec<ShardSlot> = self.shards.lock().values().cloned().collect();
        for slot in slots {
            let rt = slot.lock().clone();
            if let Some(rt) = rt {
                rt.log.flush()?;
            }
        }
        Ok(())
    }

    /// Turns per-shard throughput limits on (`Some`) or off.
    pub fn set_limits(&self, limits: Option<Limits>) {
        *self.limits.write() = limits;
    }

    /// Moves this service's clock forward (tests: iterator expiry, retention, transitions).
    #[doc(hidden)]
    pub fn advance_clock(&self, ms: u64) {
        self.clock_skew_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Drops whole segments older than each stream's retention period. Run every minute by a
    /// background task; public so operators and tests can force a pass. Records of a partly
    /// expired segment stay on disk until the whole segment expires, but reads never return them
    /// (TRIM_HORIZON is computed from the retention period, see `data.rs`).
    pub fn enforce_retention(&self) -> ServiceResult<u64> {
        let now = self.now();
        let targets: Vec<StreamMeta> = self.catalog.read().streams.values().cloned().collect();
        let mut dropped = 0;
        for s in targets {
            let retention = s.retention_ms();
            // Shards never written (e.g. UpdateShardCount's short-lived ones) have no log files.
            for sh in s.shards.iter().filter(|sh| !sh.epochs.is_empty()) {
                let rt = self.shard_rt(&s, sh.index)?;
                let log = &rt.log;
                let next = log.next_offset();
                if next > log.start_offset() {
                    // An idle shard's active segment never rolls on its own; once even its
                    // newest record has expired, seal it so it can be dropped.
                    let newest = log.read_with(next - 1, |_, ts, _| ts)?;
                    if newest.is_some_and(|ts| ts.saturating_add(retention) < now) {
                        log.roll()?;
                    }
                }
                dropped += log.enforce_retention(now, Some(retention), None)?;
            }
        }
        Ok(dropped)
    }

    /// Stops this service's clock at the current time (tests); `advance_clock` still moves it.
    #[doc(hidden)]
    pub fn freeze_clock(&self) {
        self.frozen_ms
            .store(crate::service::now_ms(), Ordering::Relaxed);
    }

    /// A stream creation time or shard writer epoch: now, but strictly after every earlier one
    /// (also those of earlier runs). Caller holds `write_lock`.
    pub(crate) fn unique_stamp(&self) -> u64 {
        let v = self
            .now()
            .max(self.last_stamp_ms.load(Ordering::Relaxed) + 1);
        self.last_stamp_ms.store(v, Ordering::Relaxed);
        v
    }

    pub(crate) fn now(&self) -> u64 {
        let base = match self.frozen_ms.load(Ordering::Relaxed) {
            0 => crate::service::now_ms(),
            f => f,
        };
        base + self.clock_skew_ms.load(Ordering::Relaxed)
    }

    fn stream_dir(&self, s: &StreamMeta) -> PathBuf {
        self.dir.join(&s.account).join(&s.region).join(&s.id)
    }

    /// The live handles of a shard, opening its log on first use. Opening happens under the
    /// shard's own slot lock so concurrent first uses open the log directory once.
    pub(crate) fn shard_rt(&self, s: &StreamMeta, index: u32) -> ServiceResult<Arc<ShardRt>> {
        let slot = self
            .shards
            .lock()
            .entry((s.id.clone(), index))
            .or_default()
            .clone();
        let mut slot = slot.lock();
        if let Some(rt) = slot.as_ref() {
            return Ok(rt.clone());
        }
        let closed = s.shard(index).is_some_and(|m| !m.is_open());
        let path = self.stream_dir(s).join(keys::shard_id(index));
        let mut opts = self.log_opts.clone();
        // Hourly segments let retention drop expired records in whole segments.
        opts.segment_age = Some(SHARD_SEGMENT_AGE);
        let (log, _) = Log::open(&path, opts)?;
        let rt = Arc::new(ShardRt {
            log,
            gate: tokio::sync::RwLock::new(closed),
            last_ts: Mutex::new(0),
            window: Mutex::new(Window::default()),
            epoch: tokio::sync::OnceCell::new(),
            appended: tokio::sync::Notify::new(),
        });
        *slot = Some(rt.clone());
        Ok(rt)
    }

    /// Records (once per shard per run) the first offset this run writes under its epoch, so
    /// sequence numbers of records written now can be recomputed after a restart. Must not be
    /// called while holding a shard gate (it takes the catalog write lock, as reshards do).
    pub(crate) async fn ensure_epoch(
        &self,
        stream_id: &str,
        ix: u32,
        rt: &ShardRt,
    ) -> ServiceResult<u64> {
        rt.epoch
            .get_or_try_init(|| async {
                let _w = self.write_lock.lock().await;
                {
                    let cat = self.catalog.read();
                    let s = cat
                        .streams
                        .get(stream_id)
                        .ok_or_else(|| error::not_found("Stream not found."))?;
                    if ix as usize >= s.shards.len() {
                        return Err(error::not_found("Shard not found."));
                    }
                }
                let epoch = self.unique_stamp();
                self.commit(CatalogEvent::AddShardEpoch {
                    stream_id: stream_id.to_string(),
                    shard: ix,
                    from: rt.log.next_offset(),
                    epoch,
                })
                .await?;
                Ok(epoch)
            })
            .await
            .copied()
    }

    /// Removes stream directories the catalog no longer knows (a crash between a stream's
    /// removal from the catalog and the deletion of its files). Directory listing only.
    fn remove_orphan_stream_dirs(&self) {
        let live: std::collections::HashSet<String> =
            self.catalog.read().streams.keys().cloned().collect();
        let dirs = |p: &std::path::Path| -> Vec<PathBuf> {
            std::fs::read_dir(p)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.path())
                        .filter(|p| p.is_dir())
                        .collect()
                })
                .unwrap_or_default()
        };
        for account in dirs(&self.dir) {
            if account.file_name().is_some_and(|n| n == "catalog") {
                continue;
            }
            // An account's directory caught mid-removal by a crash in `reset`.
            if account
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(crate::log::DELETING_SUFFIX))
            {
                let _ = crate::log::remove_dir(&account);
                continue;
            }
            for region in dirs(&account) {
                for stream in dirs(&region) {
                    let id = stream
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or_default();
                    if !live.contains(id) {
                        tracing::info!(dir = %stream.display(), "removing orphaned kinesis stream files");
                        let _ = crate::log::remove_dir(&stream);
                    }
                }
            }
        }
    }

    /// Forgets a deleted stream's shard handles and removes its files.
    fn drop_stream_files(&self, s: &StreamMeta) {
        self.shards.lock().retain(|(id, _), _| id != &s.id);
        let _ = crate::log::remove_dir(&self.stream_dir(s));
    }

    /// Appends a catalog event, then applies it. Caller holds `write_lock`.
    pub(crate) async fn commit(&self, ev: CatalogEvent) -> ServiceResult<()> {
        let payload = crate::codec::encode(&ev);
        self.catalog_log
            .append(state::CATALOG_KIND, self.now(), payload)
            .await?;
        self.catalog.write().apply(ev);
        if self.events_since_checkpoint.fetch_add(1, Ordering::Relaxed) + 1 >= CHECKPOINT_EVERY {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Snapshots the catalog and drops the log segments it covers. Caller holds `write_lock`.
    fn checkpoint(&self) -> ServiceResult<()> {
        let upto = self.catalog_log.next_offset();
        let snap = crate::codec::encode(&self.catalog.read().snapshot());
        self.catalog_log.write_checkpoint(upto, &snap)?;
        // Rolling first lets truncation drop every segment the checkpoint covers.
        self.catalog_log.roll()?;
        self.catalog_log.truncate_front(upto)?;
        self.events_since_checkpoint.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Removes streams whose deletion delay has passed. Caller holds `write_lock`.
    async fn purge_deleted(&self) -> ServiceResult<()> {
        let now = self.now();
        let gone: Vec<StreamMeta> = self
            .catalog
            .read()
            .streams
            .values()
            .filter(|s| s.status_at(now).is_none())
            .cloned()
            .collect();
        for s in gone {
            self.commit(CatalogEvent::RemoveStream { id: s.id.clone() })
                .await?;
            self.drop_stream_files(&s);
        }
        Ok(())
    }

    /// Resolves StreamName / StreamARN to a target, checking their model constraints.
    pub(crate) fn target(
        &self,
        ctx: &RequestContext,
        sel: &StreamSel,
        checks: &mut Checks,
    ) -> ServiceResult<Target> {
        checks.name(sel.stream_name.as_deref(), "streamName", 128);
        if let Some(arn) = sel.stream_arn.as_deref() {
            checks.len(Some(arn), "streamARN", 1, 2048);
            let ok = validate::parse_stream_arn(arn).is_some();
            checks.pattern(Some(arn), "streamARN", ok, validate::STREAM_ARN_PATTERN);
        }
        checks.finish()?;
        match (&sel.stream_name, &sel.stream_arn) {
            (_, Some(arn)) => {
                let (region, account, name) = validate::parse_stream_arn(arn)
                    .ok_or_else(|| invalid_argument("Invalid StreamARN."))?;
                if let Some(n) = &sel.stream_name {
                    if n != &name {
                        return Err(invalid_argument(format!(
                            "StreamName {n} does not match the stream in StreamARN {arn}."
                        )));
                    }
                }
                Ok(Target {
                    account,
                    region,
                    name,
                })
            }
            (Some(name), None) => Ok(Target {
                account: ctx.account_id.clone(),
                region: ctx.region.clone(),
                name: name.clone(),
            }),
            (None, None) => Err(invalid_argument(
                "Either StreamName or StreamARN must be provided.",
            )),
        }
    }

    /// Runs `f` on the live stream `t` names, or fails with ResourceNotFoundException.
    pub(crate) fn with_stream<R>(
        &self,
        t: &Target,
        f: impl FnOnce(&StreamMeta) -> ServiceResult<R>,
    ) -> ServiceResult<R> {
        self.with_stream_or(t, || stream_not_found(&t.name, &t.account), f)
    }

    /// [`Self::with_stream`] for actions whose missing-stream error AWS words differently.
    pub(crate) fn with_stream_or<R>(
        &self,
        t: &Target,
        missing: impl FnOnce() -> ServiceError,
        f: impl FnOnce(&StreamMeta) -> ServiceResult<R>,
    ) -> ServiceResult<R> {
        let now = self.now();
        let cat = self.catalog.read();
        match cat.lookup(&t.account, &t.region, &t.name, now) {
            Some(s) => f(s),
            None => Err(missing()),
        }
    }

    pub(crate) fn stream(&self, t: &Target) -> ServiceResult<StreamMeta> {
        self.with_stream(t, |s| Ok(s.clone()))
    }

    /// Stream metadata that must be ACTIVE to change (ResourceInUseException otherwise).
    pub(crate) fn active_stream(&self, t: &Target) -> ServiceResult<StreamMeta> {
        let now = self.now();
        let s = self.stream(t)?;
        match s.status_at(now) {
            Some(state::Status::Active) => Ok(s),
            Some(st) => Err(error::not_active(&s.name, &s.account, st.as_str())),
            None => Err(stream_not_found(&t.name, &t.account)),
        }
    }

    /// Writes a changed stream (caller holds `write_lock`).
    pub(crate) async fn put_stream(&self, s: StreamMeta) -> ServiceResult<()> {
        self.commit(CatalogEvent::PutStream(Box::new(s))).await
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;
    use serde_json::json;

    pub struct Env {
        #[allow(dead_code)]
        pub dir: tempfile::TempDir,
        pub svc: Arc<Kinesis>,
        pub ctx: RequestContext,
    }

    impl Env {
        pub fn new() -> Env {
            let dir = tempfile::tempdir().expect("tempdir");
            let svc = Kinesis::open(&Config::for_tests(dir.path())).expect("open");
            Env {
                dir,
                svc,
                ctx: RequestContext::local("000000000000", "us-east-1"),
            }
        }

        pub fn with_config(f: impl FnOnce(&mut Config)) -> Env {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut cfg = Config::for_tests(dir.path());
            f(&mut cfg);
            let svc = Kinesis::open(&cfg).expect("open");
            Env {
                dir,
                svc,
                ctx: RequestContext::local("000000000000", "us-east-1"),
            }
        }

        pub async fn call(&self, op: &str, input: Value) -> ServiceResult<Value> {
            self.svc.dispatch(&self.ctx, op, input).await
        }

        pub async fn ok(&self, op: &str, input: Value) -> Value {
            match self.call(op, input.clone()).await {
                Ok(v) => v,
                Err(e) => panic!("{op} {} failed: {e}", short(&input)),
            }
        }

        pub async fn err(&self, op: &str, input: Value) -> ServiceError {
            match self.call(op, input.clone()).await {
                Ok(v) => panic!(
                    "{op} {} unexpectedly succeeded: {}",
                    short(&input),
                    short(&v)
                ),
                Err(e) => e,
            }
        }

        pub async fn create(&self, name: &str, shards: u32) {
            self.ok(
                "CreateStream",
                json!({"StreamName": name, "ShardCount": shards}),
            )
            .await;
        }

        pub async fn iterator(&self, name: &str, shard: &str, kind: &str) -> String {
            let v = self
                .ok(
                    "GetShardIterator",
                    json!({"StreamName": name, "ShardId": shard, "ShardIteratorType": kind}),
                )
                .await;
            v["ShardIterator"].as_str().expect("iterator").to_string()
        }
    }

    fn short(v: &Value) -> String {
        let s = v.to_string();
        s.chars().take(300).collect()
    }

    pub fn b64(s: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::{b64, Env};
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn unknown_action() {
        let e = Env::new();
        let err = e.err("FlyToTheMoon", json!({})).await;
        assert_eq!(err.code, "InvalidAction");
    }

    #[tokio::test]
    async fn every_model_operation_is_dispatched() {
        let model: Value =
            serde_json::from_str(include_str!("../protocol/models/kinesis.json")).expect("model");
        let ops = model["operations"].as_object().expect("operations");
        assert_eq!(ops.len(), 39);
        for op in ops.keys() {
            assert!(Op::parse(op).is_some(), "{op} not dispatched");
        }
    }

    #[tokio::test]
    async fn checkpoint_truncates_the_catalog_log() {
        let e = Env::new();
        e.create("s", 1).await;
        for i in 0..(CHECKPOINT_EVERY + 10) {
            e.ok(
                "AddTagsToStream",
                json!({"StreamName": "s", "Tags": {"k": i.to_string()}}),
            )
            .await;
        }
        assert_eq!(
            e.svc.catalog_log.start_offset(),
            e.svc.catalog_log.read_checkpoint().unwrap().unwrap().0
        );
        let (upto, snap) = e.svc.catalog_log.read_checkpoint().unwrap().unwrap();
        assert!(upto >= CHECKPOINT_EVERY);
        let snap: state::Snapshot = crate::codec::decode(&snap).unwrap();
        assert_eq!(snap.streams.len(), 1);
        let l = e.ok("ListTagsForStream", json!({"StreamName": "s"})).await;
        assert_eq!(l["Tags"][0]["Value"], (CHECKPOINT_EVERY + 9).to_string());
    }

    #[tokio::test]
    async fn orphaned_stream_dirs_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::for_tests(dir.path());
        let ctx = RequestContext::local("000000000000", "us-east-1");
        let svc = Kinesis::open(&cfg).unwrap();
        svc.dispatch(
            &ctx,
            "CreateStream",
            json!({"StreamName": "s", "ShardCount": 1}),
        )
        .await
        .unwrap();
        drop(svc);
        let orphan = dir
            .path()
            .join("kinesis/000000000000/us-east-1/deadbeef-000");
        std::fs::create_dir_all(orphan.join("shardId-000000000000")).unwrap();
        // What a kill during `reset` leaves: an account's directory renamed for removal.
        let reset = dir
            .path()
            .join("kinesis/000000000001.deleting/us-east-1/cafe-000");
        std::fs::create_dir_all(reset.join("shardId-000000000000")).unwrap();
        let svc = Kinesis::open(&cfg).unwrap();
        assert!(!orphan.exists());
        assert!(!dir.path().join("kinesis/000000000001.deleting").exists());
        // The live stream is untouched.
        let d = svc
            .dispatch(&ctx, "DescribeStreamSummary", json!({"StreamName": "s"}))
            .await
            .unwrap();
        assert_eq!(d["StreamDescriptionSummary"]["OpenShardCount"], 1);
    }

    /// A run's first write to a shard records its epoch in a record of its own: a stream of
    /// 200 shards written once each grows the catalog by kilobytes. A whole-stream record per
    /// shard, as before, was ~200 x 200 shard entries (megabytes; quadratic in the shards).
    #[tokio::test]
    async fn first_writes_record_small_epochs() {
        let e = Env::new();
        e.create("wide", 200).await;
        let catalog = e.dir.path().join("kinesis").join("catalog");
        let bytes = || -> u64 {
            std::fs::read_dir(&catalog)
                .unwrap()
                .flatten()
                .map(|f| f.metadata().map_or(0, |m| m.len()))
                .sum()
        };
        e.svc.flush().unwrap();
        let before = bytes();
        for shard in 0..200u32 {
            // An explicit hash key in the middle of each shard's range.
            let key = (u128::MAX / 200) * u128::from(shard) + u128::MAX / 400;
            e.ok(
                "PutRecord",
                json!({"StreamName": "wide", "PartitionKey": "p", "ExplicitHashKey": key.to_string(), "Data": ""}),
            )
            .await;
        }
        e.svc.flush().unwrap();
        let grown = bytes().saturating_sub(before);
        assert!(grown < 256 << 10, "catalog grew {grown} bytes");
        let s = e.svc.catalog.read();
        let st = s.streams.values().next().unwrap();
        let counts: Vec<usize> = st.shards.iter().map(|sh| sh.epochs.len()).collect();
        assert!(counts.iter().all(|&n| n == 1), "{counts:?}");
    }

    #[tokio::test]
    async fn reset_wipes_everything() {
        let e = Env::new();
        e.create("s", 1).await;
        e.ok(
            "PutRecord",
            json!({"StreamName": "s", "PartitionKey": "a", "Data": ""}),
        )
        .await;
        e.svc.reset().await.unwrap();
        assert_eq!(
            e.ok("ListStreams", json!({})).await["StreamNames"],
            json!([])
        );
        e.create("s", 1).await;
        let it = e
            .iterator("s", "shardId-000000000000", "TRIM_HORIZON")
            .await;
        let r = e.ok("GetRecords", json!({"ShardIterator": it})).await;
        assert_eq!(r["Records"], json!([]));
        e.svc.flush().unwrap();
    }

    /// Everything acknowledged before a drop is there after reopening the same directory:
    /// streams, open and closed shards, hash ranges, lineage, retention, tags, consumers,
    /// policies, and every record with its sequence number and arrival time. Iterators issued
    /// before the restart keep working (they carry all their state) until 5 minutes old.
    #[tokio::test]
    async fn restart_recovers_streams_shards_and_records() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::for_tests(dir.path());
        let ctx = RequestContext::local("000000000000", "us-east-1");
        let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/s";
        let shard_ids = [
            "shardId-000000000000",
            "shardId-000000000001",
            "shardId-000000000002",
            "shardId-000000000003",
        ];
        let call = |svc: Arc<Kinesis>, op: &'static str, v: Value| {
            let ctx = ctx.clone();
            async move { svc.dispatch(&ctx, op, v).await.unwrap() }
        };
        let (before, read_before, old_iterator, max_seq) = {
            let svc = Kinesis::open(&cfg).unwrap();
            call(
                svc.clone(),
                "CreateStream",
                json!({"StreamName": "s", "ShardCount": 2, "Tags": {"t": "1"}}),
            )
            .await;
            call(
                svc.clone(),
                "CreateStream",
                json!({"StreamName": "gone", "ShardCount": 1}),
            )
            .await;
            call(svc.clone(), "DeleteStream", json!({"StreamName": "gone"})).await;
            for i in 0..20 {
                call(svc.clone(), "PutRecord", json!({"StreamName": "s", "PartitionKey": format!("k{i}"), "Data": b64(format!("d{i}").as_bytes())})).await;
            }
            call(svc.clone(), "SplitShard", json!({"StreamName": "s", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "1000"})).await;
            let recs: Vec<Value> = (0..10)
                .map(|i| json!({"PartitionKey": format!("p{i}"), "Data": b64(b"x")}))
                .collect();
            call(
                svc.clone(),
                "PutRecords",
                json!({"StreamName": "s", "Records": recs}),
            )
            .await;
            call(
                svc.clone(),
                "IncreaseStreamRetentionPeriod",
                json!({"StreamName": "s", "RetentionPeriodHours": 48}),
            )
            .await;
            call(
                svc.clone(),
                "RegisterStreamConsumer",
                json!({"StreamARN": arn, "ConsumerName": "c"}),
            )
            .await;
            call(
                svc.clone(),
                "PutResourcePolicy",
                json!({"ResourceARN": arn, "Policy": "{\"Statement\":[]}"}),
            )
            .await;
            call(
                svc.clone(),
                "StartStreamEncryption",
                json!({"StreamName": "s", "EncryptionType": "KMS", "KeyId": "k"}),
            )
            .await;
            call(
                svc.clone(),
                "EnableEnhancedMonitoring",
                json!({"StreamName": "s", "ShardLevelMetrics": ["IncomingBytes"]}),
            )
            .await;
            // Enough catalog events to cross a checkpoint.
            for i in 0..(CHECKPOINT_EVERY + 5) {
                call(
                    svc.clone(),
                    "AddTagsToStream",
                    json!({"StreamName": "s", "Tags": {"n": i.to_string()}}),
                )
                .await;
            }
            let mut before = Vec::new();
            for op in [
                "DescribeStream",
                "DescribeStreamSummary",
                "ListShards",
                "ListTagsForStream",
            ] {
                before.push(call(svc.clone(), op, json!({"StreamName": "s"})).await);
            }
            before.push(
                call(
                    svc.clone(),
                    "ListStreamConsumers",
                    json!({"StreamARN": arn}),
                )
                .await,
            );
            before.push(
                call(
                    svc.clone(),
                    "GetResourcePolicy",
                    json!({"ResourceARN": arn}),
                )
                .await,
            );
            before.push(call(svc.clone(), "ListStreams", json!({})).await);
            let mut reads = Vec::new();
            let mut max_seq = String::new();
            let mut old_iterator = String::new();
            for sh in shard_ids {
                let it = call(
                    svc.clone(),
                    "GetShardIterator",
                    json!({"StreamName": "s", "ShardId": sh, "ShardIteratorType": "TRIM_HORIZON"}),
                )
                .await;
                if sh == "shardId-000000000002" {
                    old_iterator = it["ShardIterator"].as_str().unwrap().to_string();
                }
                let r = call(
                    svc.clone(),
                    "GetRecords",
                    json!({"ShardIterator": it["ShardIterator"]}),
                )
                .await;
                for rec in r["Records"].as_array().unwrap() {
                    max_seq = max_seq.max(rec["SequenceNumber"].as_str().unwrap().to_string());
                }
                reads.push(r["Records"].clone());
            }
            svc.flush().unwrap();
            (before, reads, old_iterator, max_seq)
        };
        let svc = Kinesis::open(&cfg).unwrap();
        let mut after = Vec::new();
        for op in [
            "DescribeStream",
            "DescribeStreamSummary",
            "ListShards",
            "ListTagsForStream",
        ] {
            after.push(call(svc.clone(), op, json!({"StreamName": "s"})).await);
        }
        after.push(
            call(
                svc.clone(),
                "ListStreamConsumers",
                json!({"StreamARN": arn}),
            )
            .await,
        );
        after.push(
            call(
                svc.clone(),
                "GetResourcePolicy",
                json!({"ResourceARN": arn}),
            )
            .await,
        );
        after.push(call(svc.clone(), "ListStreams", json!({})).await);
        assert_eq!(before, after);
        for (sh, expected) in shard_ids.iter().zip(&read_before) {
            let it = call(
                svc.clone(),
                "GetShardIterator",
                json!({"StreamName": "s", "ShardId": sh, "ShardIteratorType": "TRIM_HORIZON"}),
            )
            .await;
            let r = call(
                svc.clone(),
                "GetRecords",
                json!({"ShardIterator": it["ShardIterator"]}),
            )
            .await;
            assert_eq!(&r["Records"], expected, "{sh}");
        }
        assert_eq!(
            read_before
                .iter()
                .map(|r| r.as_array().unwrap().len())
                .sum::<usize>(),
            30
        );
        // The pre-restart iterator still reads.
        let r = call(
            svc.clone(),
            "GetRecords",
            json!({"ShardIterator": old_iterator}),
        )
        .await;
        assert_eq!(r["Records"], read_before[2]);
        // New records get larger sequence numbers than any before the restart.
        for i in 0..10 {
            let p = call(
                svc.clone(),
                "PutRecord",
                json!({"StreamName": "s", "PartitionKey": format!("k{i}"), "Data": ""}),
            )
            .await;
            assert!(p["SequenceNumber"].as_str().unwrap() > max_seq.as_str());
        }
        let err = svc
            .dispatch(&ctx, "DescribeStream", json!({"StreamName": "gone"}))
            .await
            .unwrap_err();
        assert_eq!(err.code, "ResourceNotFoundException");
    }
}
