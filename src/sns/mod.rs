//! SNS: topics, subscriptions and deliveries. Typed requests in, typed responses or
//! [`ServiceError`]s out; every state change is appended to the log before it is acknowledged.
//! Knows nothing of HTTP wire formats on the serving side; it does act as an HTTP *client* to
//! deliver notifications to http subscriptions (see [`delivery`]).
//!
//! Layout: [`state`] holds the derived state and log record types; `topics`, `subscriptions`,
//! `publish`, `platform` and `sms` implement the families of actions; [`filter`] is the filter
//! policy language; [`delivery`] the seams to SQS and HTTP, the notification envelope and the
//! HTTP retry worker; [`signing`] the RSA key, certificate and notification signatures.
//!
//! Concurrency: one `writer` async mutex serializes validate → append → apply of every catalog
//! change, so validation never races and catalog apply order equals log order. Delivery
//! bookkeeping (pending HTTP deliveries, attempts, outbox entries) is appended outside it and
//! shares the log's group commits; those records commute with everything else (see
//! `Sns::commit`). Checkpoints take the `ckpt` lock exclusively, so they never snapshot a state
//! that lags the log. SQS fan-out happens outside all locks (FIFO topics serialize their
//! publishes per topic instead).

mod archive;
pub mod delivery;
pub mod error;
pub mod filter;
mod platform;
mod publish;
pub mod signing;
mod sms;
pub mod state;
mod subscriptions;
mod topics;
mod util;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use serde_json::Value;

use crate::config::Config;
use crate::context::RequestContext;
use crate::error::{ServiceError, ServiceResult};
use crate::log::Log;
use crate::sqs::Sqs;

pub use delivery::{HttpSink, OutboxFilter, Sinks, SqsSink};
use state::{Record, State, RECORD_KIND};

/// Write a checkpoint (and drop the log below it) after this many records.
#[cfg(not(test))]
const CHECKPOINT_EVERY: u64 = 4096;
/// Small in tests so ordinary test traffic crosses checkpoints.
#[cfg(test)]
const CHECKPOINT_EVERY: u64 = 64;

pub struct Sns {
    me: Weak<Sns>,
    log: Log,
    state: Mutex<State>,
    writer: tokio::sync::Mutex<()>,
    /// Held for reading by every append-then-apply, for writing by checkpoints: a checkpoint
    /// never snapshots a state missing a record already in the log.
    ckpt: tokio::sync::RwLock<()>,
    /// Ids for pending deliveries and outbox entries (monotonic, never reused).
    ids: AtomicU64,
    since_checkpoint: AtomicU64,
    sinks: Sinks,
    /// Wakes the HTTP delivery worker when a delivery becomes pending.
    wake: tokio::sync::Notify,
    worker_started: AtomicBool,
    /// Pending deliveries with an attempt under way, so the worker never doubles them.
    in_flight: Mutex<HashSet<u64>>,
    /// Per-FIFO-topic publish locks: keep the order of publishes into FIFO queues.
    fifo_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Parsed filter policies by (scope, text): publishes evaluate them for every subscription.
    filters: Mutex<HashMap<(bool, String), Arc<filter::Policy>>>,
    /// Signs notifications; its certificate is served at the SigningCertURL.
    signer: Arc<signing::Signer>,
    /// FIFO topics' message archives.
    archives: archive::Archives,
}

impl Sns {
    /// Opens (recovers) every topic under `<data_dir>/sns`; delivers to SQS through `sqs`.
    pub fn open(config: &Config, sqs: Arc<Sqs>) -> ServiceResult<Arc<Sns>> {
        Self::open_with(config, Sinks::real(sqs, config.sns_ca_file.as_deref())?)
    }

    /// Like [`Sns::open`] with explicit delivery seams (tests observe deliveries through them).
    pub fn open_with(config: &Config, sinks: Sinks) -> ServiceResult<Arc<Sns>> {
        let dir = config.data_dir.join("sns");
        let (log, report) = Log::open(&dir, config.log_options())?;
        if report.truncated_bytes > 0 {
            tracing::warn!(?report, "sns log: torn tail truncated on recovery");
        }
        let signer = Arc::new(signing::Signer::load_or_create(
            &dir,
            config.sns_signing_key_bits,
        )?);
        // Debug builds use a fixed development key that loads fast; the suites open hundreds
        // of data directories and should not start a thread for each.
        #[cfg(not(debug_assertions))]
        signer.prewarm();
        Self::open_log(log, sinks, signer)
    }

    /// Rebuilds state from `log`'s checkpoint and the records after it.
    pub fn open_log(
        log: Log,
        sinks: Sinks,
        signer: Arc<signing::Signer>,
    ) -> ServiceResult<Arc<Sns>> {
        let mut state = State::default();
        let mut from = log.start_offset();
        if let Some((upto, bytes)) = log.read_checkpoint()? {
            state = crate::codec::decode_snapshot(&bytes)?;
            from = from.max(upto);
        }
        let mut replayed = 0u64;
        for rec in log.scan(from) {
            let rec = rec?;
            if rec.kind != RECORD_KIND {
                continue;
            }
            state.apply(crate::codec::decode::<Record>(&rec.payload)?);
            replayed += 1;
        }
        let archives = archive::Archives::new(log.dir(), log.options().clone());
        archives.sweep(
            state
                .topics
                .values()
                .filter(|t| archive::archiving_days(t).is_some()),
        );
        archives.recover_dedup(&mut state, crate::service::now_ms());
        let ids = AtomicU64::new(state.next_id);
        let sns = Arc::new_cyclic(|me| Sns {
            me: me.clone(),
            log,
            state: Mutex::new(state),
            writer: tokio::sync::Mutex::new(()),
            ckpt: tokio::sync::RwLock::new(()),
            ids,
            since_checkpoint: AtomicU64::new(replayed),
            sinks,
            wake: tokio::sync::Notify::new(),
            worker_started: AtomicBool::new(false),
            in_flight: Mutex::new(HashSet::new()),
            fifo_locks: Mutex::new(HashMap::new()),
            filters: Mutex::new(HashMap::new()),
            signer,
            archives,
        });
        sns.ensure_worker();
        Ok(sns)
    }

    /// Runs one action. `op` is an operation name from the SNS model (the protocol layer has
    /// already rejected unknown ones); `input` is its JSON-shaped request document.
    pub async fn dispatch(
        &self,
        ctx: &RequestContext,
        op: &str,
        input: Value,
    ) -> ServiceResult<Value> {
        self.ensure_worker();
        match op {
            "CreateTopic" => self.create_topic(ctx, input).await,
            "DeleteTopic" => self.delete_topic(ctx, input).await,
            "ListTopics" => self.list_topics(ctx, input),
            "GetTopicAttributes" => self.get_topic_attributes(ctx, input),
            "SetTopicAttributes" => self.set_topic_attributes(ctx, input).await,
            "TagResource" => self.tag_resource(ctx, input).await,
            "UntagResource" => self.untag_resource(ctx, input).await,
            "ListTagsForResource" => self.list_tags_for_resource(ctx, input),
            "AddPermission" => self.add_permission(ctx, input).await,
            "RemovePermission" => self.remove_permission(ctx, input).await,
            "GetDataProtectionPolicy" => self.get_data_protection_policy(ctx, input),
            "PutDataProtectionPolicy" => self.put_data_protection_policy(ctx, input).await,
            "Subscribe" => self.subscribe(ctx, input).await,
            "ConfirmSubscription" => self.confirm_subscription(ctx, input).await,
            "Unsubscribe" => self.unsubscribe_action(ctx, input).await,
            "ListSubscriptions" => self.list_subscriptions(ctx, input),
            "ListSubscriptionsByTopic" => self.list_subscriptions_by_topic(ctx, input),
            "GetSubscriptionAttributes" => self.get_subscription_attributes(ctx, input),
            "SetSubscriptionAttributes" => self.set_subscription_attributes(ctx, input).await,
            "Publish" => self.publish(ctx, input).await,
            "PublishBatch" => self.publish_batch(ctx, input).await,
            "CreatePlatformApplication" => self.create_platform_application(ctx, input).await,
            "DeletePlatformApplication" => self.delete_platform_application(ctx, input).await,
            "GetPlatformApplicationAttributes" => {
                self.get_platform_application_attributes(ctx, input)
            }
            "SetPlatformApplicationAttributes" => {
                self.set_platform_application_attributes(ctx, input).await
            }
            "ListPlatformApplications" => self.list_platform_applications(ctx, input),
            "CreatePlatformEndpoint" => self.create_platform_endpoint(ctx, input).await,
            "DeleteEndpoint" => self.delete_endpoint(ctx, input).await,
            "GetEndpointAttributes" => self.get_endpoint_attributes(ctx, input),
            "SetEndpointAttributes" => self.set_endpoint_attributes(ctx, input).await,
            "ListEndpointsByPlatformApplication" => {
                self.list_endpoints_by_platform_application(ctx, input)
            }
            "CheckIfPhoneNumberIsOptedOut" => self.check_if_phone_number_is_opted_out(ctx, input),
            "GetSMSAttributes" => self.get_sms_attributes(ctx, input),
            "SetSMSAttributes" => self.set_sms_attributes(ctx, input).await,
            "OptInPhoneNumber" => self.opt_in_phone_number(ctx, input).await,
            "ListPhoneNumbersOptedOut" => self.list_phone_numbers_opted_out(ctx, input),
            "GetSMSSandboxAccountStatus" => self.get_sms_sandbox_account_status(ctx, input),
            "CreateSMSSandboxPhoneNumber" => self.create_sms_sandbox_phone_number(ctx, input).await,
            "DeleteSMSSandboxPhoneNumber" => self.delete_sms_sandbox_phone_number(ctx, input).await,
            "VerifySMSSandboxPhoneNumber" => self.verify_sms_sandbox_phone_number(ctx, input).await,
            "ListSMSSandboxPhoneNumbers" => self.list_sms_sandbox_phone_numbers(ctx, input),
            "ListOriginationNumbers" => self.list_origination_numbers(ctx, input),
            _ => Err(ServiceError::invalid_action(op)),
        }
    }

    /// Wipes every topic of every account and region, durably.
    pub async fn reset(&self) -> ServiceResult<()> {
        let _w = self.writer.lock().await;
        let _c = self.ckpt.write().await;
        self.append_apply(vec![Record::Reset]).await?;
        self.archives.clear();
        // Everything before the reset is dead: snapshot the empty state and drop the history.
        self.checkpoint_locked()
    }

    /// Makes everything appended so far durable (graceful shutdown in interval/none modes).
    pub fn flush(&self) -> ServiceResult<()> {
        Ok(self.log.flush()?)
    }

    /// Confirms a pending subscription of `topic_arn` by its token (the SubscribeURL GET).
    /// Returns the subscription ARN.
    pub async fn confirm_by_token(&self, topic_arn: &str, token: &str) -> ServiceResult<String> {
        self.confirm_token(topic_arn, token, false).await
    }

    /// Deletes a subscription by ARN (the UnsubscribeURL GET).
    pub async fn unsubscribe(&self, subscription_arn: &str) -> ServiceResult<()> {
        self.unsubscribe_arn(subscription_arn).await
    }

    /// The PEM certificate of the key notifications are signed with, for the lead to serve at
    /// `{base_url}/_millpond/sns/SimpleNotificationService.pem` (the SigningCertURL).
    pub fn signing_cert_pem(&self) -> String {
        self.signer.cert_pem()
    }

    /// Deliveries recorded for endpoints millpond cannot reach (email, email-json, sms,
    /// application, lambda, firehose, and direct publishes to phone numbers or platform
    /// endpoints), oldest first. Each is `{"Id", "Timestamp" (ISO 8601), "Protocol", "Endpoint",
    /// "SubscriptionArn"?, "TopicArn"?, "MessageId", "Subject"?, "Payload" (what the endpoint
    /// would have received), "MessageAttributes"}`. Email confirmations appear here too, with
    /// the SubscribeURL inside the payload.
    pub fn outbox(&self, filter: &OutboxFilter) -> Vec<Value> {
        let st = self.state.lock();
        st.outbox
            .values()
            .filter(|e| filter.matches(e))
            .map(delivery::outbox_json)
            .collect()
    }

    /// Removes the outbox entries `filter` selects, durably. Returns how many were removed.
    pub async fn clear_outbox(&self, filter: &OutboxFilter) -> ServiceResult<usize> {
        self.mutate(|st| {
            let ids: Vec<u64> = st
                .outbox
                .values()
                .filter(|e| filter.matches(e))
                .map(|e| e.id)
                .collect();
            let n = ids.len();
            let recs = if n == 0 {
                vec![]
            } else {
                vec![Record::OutboxCleared(ids)]
            };
            Ok((recs, n))
        })
        .await
    }

    /// Validates against the current state, then appends and applies the records `f` returns,
    /// all under the writer lock.
    async fn mutate<T>(
        &self,
        f: impl FnOnce(&State) -> ServiceResult<(Vec<Record>, T)>,
    ) -> ServiceResult<T> {
        let _w = self.writer.lock().await;
        let out = {
            let _c = self.ckpt.read().await;
            let (recs, out) = {
                let st = self.state.lock();
                f(&st)?
            };
            if !recs.is_empty() {
                self.append_apply(recs).await?;
            }
            out
        };
        self.maybe_checkpoint().await;
        Ok(out)
    }

    /// Appends records durably then applies them. Caller holds `writer`.
    async fn append_apply(&self, recs: Vec<Record>) -> ServiceResult<()> {
        let now = crate::service::now_ms();
        let batch: Vec<(u8, u64, Vec<u8>)> = recs
            .iter()
            .map(|r| (RECORD_KIND, now, crate::codec::encode(r)))
            .collect();
        let n = batch.len() as u64;
        self.log.append_batch(batch).await?;
        {
            let mut st = self.state.lock();
            for r in recs {
                st.apply(r);
            }
        }
        self.since_checkpoint.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    /// Checkpoints once enough records accumulated, when no append is between log and state.
    async fn maybe_checkpoint(&self) {
        if self.since_checkpoint.load(Ordering::Relaxed) < CHECKPOINT_EVERY {
            return;
        }
        let _c = self.ckpt.write().await;
        if self.since_checkpoint.load(Ordering::Relaxed) >= CHECKPOINT_EVERY {
            // A failed checkpoint loses nothing: the log still holds every record.
            if let Err(e) = self.checkpoint_locked() {
                tracing::warn!(error = %e, "sns checkpoint failed");
            }
        }
    }

    /// Snapshots the state as of the log's end and drops the segments below it. Caller holds
    /// `ckpt` for writing, so no record is appended but unapplied.
    fn checkpoint_locked(&self) -> ServiceResult<()> {
        let upto = self.log.next_offset();
        let bytes = crate::codec::encode(&*self.state.lock());
        self.log.write_checkpoint(upto, &bytes)?;
        // Start a new segment at `upto` so every segment below it is whole and can go.
        self.log.roll()?;
        self.log.truncate_front(upto)?;
        self.since_checkpoint.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Appends delivery bookkeeping (Pending, Attempted, Delivered, Outbox) without the writer
    /// lock, so concurrent publishes and delivery attempts share group commits. Safe because
    /// these records commute with each other and with catalog records (each names its own id;
    /// a delivery's later records are only written after its Pending is applied), so applying
    /// them in completion order gives the state replay in log order gives.
    async fn commit(&self, recs: Vec<Record>) -> ServiceResult<()> {
        if recs.is_empty() {
            return Ok(());
        }
        {
            let _c = self.ckpt.read().await;
            self.append_apply(recs).await?;
        }
        self.maybe_checkpoint().await;
        Ok(())
    }

    /// Appends records of topic `arn`'s FIFO state (which DeleteTopic and a reset clear)
    /// under the writer lock, if the topic still exists; whether it did. A reset takes no
    /// topic lock, so it may have removed the topic while a publish was under way, and a
    /// topic made again under the name must start without this state.
    async fn commit_for_topic(&self, arn: &str, recs: Vec<Record>) -> ServiceResult<bool> {
        self.mutate(|st| {
            let live = st.topics.contains_key(arn);
            Ok((if live { recs } else { Vec::new() }, live))
        })
        .await
    }

    /// The parsed form of a stored (already validated) filter policy, cached.
    fn parsed_filter(
        &self,
        text: &str,
        scope: filter::Scope,
    ) -> Result<Arc<filter::Policy>, String> {
        let key = (scope == filter::Scope::MessageBody, text.to_string());
        if let Some(p) = self.filters.lock().get(&key) {
            return Ok(p.clone());
        }
        let p = Arc::new(filter::parse(text, scope)?);
        let mut cache = self.filters.lock();
        if cache.len() >= 10_000 {
            // Policies replaced over time: start over rather than grow without bound.
            cache.clear();
        }
        cache.insert(key, p.clone());
        Ok(p)
    }

    fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    fn ensure_worker(&self) {
        if self.worker_started.load(Ordering::Acquire) {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            if !self.worker_started.swap(true, Ordering::AcqRel) {
                handle.spawn(delivery::run_worker(self.me.clone()));
                self.resume_replays();
            }
        }
    }

    #[cfg(test)]
    fn log_handle(&self) -> Log {
        self.log.clone()
    }
}
