//! SubscribeToShard: enhanced fan-out reads of one shard for a registered consumer.
//!
//! The wire side (an `application/vnd.amazon.eventstream` response) belongs to the protocol
//! layer, which calls [`Kinesis::subscribe`] directly: it returns a [`ShardSubscription`] yielding
//! JSON-shaped `SubscribeToShardEvent` documents (Records, ContinuationSequenceNumber,
//! MillisBehindLatest, ChildShards) for up to 5 minutes, as AWS does; readers at the tip wake on
//! each append. `dispatch("SubscribeToShard")` cannot stream, so it only validates and refuses:
//! the protocol layer never routes the action there.
//!
//! One subscription per consumer and shard, as the API reference sets it out: a call within 5
//! seconds of the last successful one for the pair is ResourceInUseException; a later one takes
//! over, and the open one ends with that exception.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::context::RequestContext;
use crate::error::ServiceResult;
use crate::service::parse_input;

use super::error::{in_use, invalid_argument, not_found};
use super::keys::{self, Iterator as ShardIterator};
use super::state::Status;
use super::validate::Checks;
use super::Kinesis;

/// AWS ends a subscription after 5 minutes; clients re-subscribe with the continuation number.
const SUBSCRIPTION_MS: u64 = 300_000;
/// An empty event is sent at least this often while a reader waits at the tip.
const HEARTBEAT: Duration = Duration::from_secs(5);
const MAX_RECORDS_PER_EVENT: usize = 10_000;

/// A newer call for the same consumer and shard within this time of a subscription's start
/// fails; a later one takes the subscription over ("SubscribeToShard", Kinesis API reference).
const TAKEOVER_AFTER_MS: u64 = 5_000;

/// The latest subscription of one consumer to one shard (open, or ended less than
/// [`TAKEOVER_AFTER_MS`] after it started).
pub(crate) struct Active {
    started_ms: u64,
    takeover: Arc<Takeover>,
}

/// How a subscription learns that a newer one took over, and how the registry learns that it
/// ended.
#[derive(Default)]
pub(crate) struct Takeover {
    taken: std::sync::atomic::AtomicBool,
    wake: tokio::sync::Notify,
    ended: std::sync::atomic::AtomicBool,
}

impl Takeover {
    fn take_over(&self) {
        self.taken.store(true, Ordering::Release);
        self.wake.notify_one();
    }
    fn taken(&self) -> bool {
        self.taken.load(Ordering::Acquire)
    }
    fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
}

/// Why [`Kinesis::stream_events`] returned.
#[derive(PartialEq, Eq)]
enum Ended {
    /// Time, end of shard, a read error (already sent), or the reader went away.
    Done,
    /// A newer subscription took over; the caller ends the stream with ResourceInUseException.
    TakenOver,
}

/// The events of one SubscribeToShard call, in order; `None` once the subscription ended
/// (5 minutes passed, or the shard is closed and fully read: the last event lists ChildShards).
pub struct ShardSubscription {
    rx: tokio::sync::mpsc::Receiver<ServiceResult<Value>>,
}

impl ShardSubscription {
    /// The next `SubscribeToShardEvent` document, or the error that ended the subscription.
    pub async fn next(&mut self) -> Option<ServiceResult<Value>> {
        self.rx.recv().await
    }
}

impl Kinesis {
    /// Validates a SubscribeToShard request and returns the position it starts from.
    /// Also returns the subscription's key: the consumer's ARN and the shard's id.
    fn subscription_start(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<(ShardIterator, (String, String))> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Pos {
            #[serde(rename = "Type")]
            kind: Option<String>,
            sequence_number: Option<String>,
            timestamp: Option<Value>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(rename = "ConsumerARN")]
            consumer_arn: Option<String>,
            shard_id: Option<String>,
            starting_position: Option<Pos>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        c.required(&i.consumer_arn, "consumerARN")
            .required(&i.shard_id, "shardId")
            .name(i.shard_id.as_deref(), "shardId", 128)
            .required(&i.starting_position, "startingPosition");
        if let Some(p) = &i.starting_position {
            c.required(&p.kind, "startingPosition.type").one_of(
                p.kind.as_deref(),
                "startingPosition.type",
                &[
                    "AT_SEQUENCE_NUMBER",
                    "AFTER_SEQUENCE_NUMBER",
                    "TRIM_HORIZON",
                    "LATEST",
                    "AT_TIMESTAMP",
                ],
            );
        }
        c.finish()?;
        let r = self.consumer_ref(ctx, None, None, i.consumer_arn)?;
        let now = self.now();
        let shard = i.shard_id.unwrap_or_default();
        let (stream_arn, key) = self.with_stream(&r.target, |s| {
            let c = Self::find_consumer(s, &r, now)?;
            if c.status_at(now) != Some(Status::Active) {
                return Err(in_use(format!(
                    "Consumer {} is not ACTIVE.",
                    s.consumer_arn(c)
                )));
            }
            let ix = keys::parse_shard_id(&shard);
            if ix.and_then(|ix| s.shard(ix)).is_none() {
                // AWS reports the normalized id (`shardId-%012d`) when the given one parses.
                let shown = ix.map_or_else(|| shard.clone(), keys::shard_id);
                return Err(super::data::shard_missing(&shown, s));
            }
            let key = (
                s.consumer_arn(c),
                ix.map_or_else(|| shard.clone(), keys::shard_id),
            );
            Ok((s.arn(), key))
        })?;
        // The starting position resolves exactly as GetShardIterator's would.
        let Some(pos) = i.starting_position else {
            return Err(invalid_argument("StartingPosition is required."));
        };
        let mut gsi = json!({
            "StreamARN": stream_arn,
            "ShardId": shard,
            "ShardIteratorType": pos.kind,
        });
        if let Some(seq) = pos.sequence_number {
            gsi["StartingSequenceNumber"] = json!(seq);
        }
        if let Some(ts) = pos.timestamp {
            gsi["Timestamp"] = ts;
        }
        let out = self.get_shard_iterator(ctx, gsi)?;
        let it = keys::decode_iterator(out["ShardIterator"].as_str().unwrap_or_default())?;
        Ok((it, key))
    }

    /// Registers a subscription for `key`: refused within [`TAKEOVER_AFTER_MS`] of the last
    /// successful call for it, whether or not that one is still open (AWS words the rule by
    /// call times); otherwise an open one is told to end.
    fn claim_subscription(&self, key: &(String, String)) -> ServiceResult<Arc<Takeover>> {
        let now = self.now();
        let mut subs = self.subscriptions.lock();
        // Ended ones are kept for their start time only as long as it matters.
        subs.retain(|_, a| !a.takeover.ended() || now < a.started_ms + TAKEOVER_AFTER_MS);
        if let Some(a) = subs.get(key) {
            if now < a.started_ms + TAKEOVER_AFTER_MS {
                return Err(in_use(format!(
                    "Another active subscription exists for consumer {} and shard {}.",
                    key.0, key.1
                )));
            }
            a.takeover.take_over();
        }
        let takeover = Arc::new(Takeover::default());
        subs.insert(
            key.clone(),
            Active {
                started_ms: now,
                takeover: Arc::clone(&takeover),
            },
        );
        Ok(takeover)
    }

    /// `dispatch("SubscribeToShard")`: validates, then reports that the event stream is not
    /// served over this transport.
    pub(crate) fn subscribe_to_shard(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let _ = self.subscription_start(ctx, input)?;
        Err(invalid_argument(
            "SubscribeToShard (HTTP/2 event stream) is not supported by this broker yet; use GetShardIterator and GetRecords.",
        ))
    }

    /// Opens a SubscribeToShard subscription (the protocol layer's entry point for the HTTP/2
    /// event stream). Validation errors are returned here; later errors end the stream.
    pub async fn subscribe(
        self: &Arc<Self>,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<ShardSubscription> {
        let (start, key) = self.subscription_start(ctx, input)?;
        let takeover = self.claim_subscription(&key)?;
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let svc = Arc::clone(self);
        tokio::spawn(async move {
            if svc.stream_events(start, &tx, &takeover).await == Ended::TakenOver {
                let _ = tx
                    .send(Err(in_use(
                        "Another subscription for this consumer and shard took this one over.",
                    )))
                    .await;
            }
            takeover.ended.store(true, Ordering::Release);
        });
        Ok(ShardSubscription { rx })
    }

    /// Sends a subscription's events into `tx` until it ends: after 5 minutes, at the end of
    /// a closed shard, when the reader goes away, or when a newer subscription takes over
    /// (which ends this one with ResourceInUseException, as AWS does).
    async fn stream_events(
        &self,
        start: ShardIterator,
        tx: &tokio::sync::mpsc::Sender<ServiceResult<Value>>,
        takeover: &Takeover,
    ) -> Ended {
        let deadline = self.now() + SUBSCRIPTION_MS;
        let mut it = start;
        let mut last_seq: Option<String> = None;
        // Empty events go out first and then only as heartbeats, not after every read.
        let mut send_empty = true;
        loop {
            // Checked on every turn, not only when idle: a subscription catching up on a
            // backlog must not go on streaming beside its successor.
            if takeover.taken() {
                return Ended::TakenOver;
            }
            let rt = match self.iterator_shard(&it) {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            };
            // Registered before reading, so an append between the read and the wait wakes us.
            let appended = rt.appended.notified();
            it.issued_ms = self.now();
            let out = match self.read_iterator(&it, MAX_RECORDS_PER_EVENT, None, false) {
                Ok(v) => v,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            };
            let records = out["Records"].as_array().cloned().unwrap_or_default();
            if let Some(seq) = records.last().and_then(|r| r["SequenceNumber"].as_str()) {
                last_seq = Some(seq.to_string());
            }
            let next = out["NextShardIterator"]
                .as_str()
                .and_then(|t| keys::decode_iterator(t).ok());
            let end_of_shard = next.is_none();
            let mut event = Map::new();
            event.insert("Records".into(), Value::Array(records.clone()));
            // A closed shard's last event has none: a null continuation is how consumers (the
            // KCL, Flink, Beam) learn the shard has ended and move on to its children.
            if !end_of_shard {
                let continuation = match &last_seq {
                    Some(s) => s.clone(),
                    None => self.sequence_before(&it),
                };
                event.insert("ContinuationSequenceNumber".into(), json!(continuation));
            }
            event.insert(
                "MillisBehindLatest".into(),
                out["MillisBehindLatest"].clone(),
            );
            if let Some(children) = out.get("ChildShards") {
                event.insert("ChildShards".into(), children.clone());
            }
            if !records.is_empty() || send_empty || end_of_shard {
                // A reader too slow to take the event must not hold off a takeover.
                tokio::select! {
                    sent = tx.send(Ok(Value::Object(event))) => {
                        if sent.is_err() {
                            break;
                        }
                    }
                    _ = takeover.wake.notified() => return Ended::TakenOver,
                }
            }
            send_empty = false;
            let Some(next) = next else { break };
            it = next;
            if self.now() >= deadline {
                break;
            }
            if records.is_empty() {
                tokio::select! {
                    _ = appended => {}
                    _ = tokio::time::sleep(HEARTBEAT) => send_empty = true,
                    _ = tx.closed() => break,
                    _ = takeover.wake.notified() => return Ended::TakenOver,
                }
            }
        }
        Ended::Done
    }

    fn iterator_shard(&self, it: &ShardIterator) -> ServiceResult<Arc<super::ShardRt>> {
        let now = self.now();
        let s = self
            .catalog
            .read()
            .streams
            .get(&it.stream_id)
            .filter(|s| s.created_ms == it.stream_created_ms && s.status_at(now).is_some())
            .cloned()
            .ok_or_else(|| not_found("The stream of this subscription no longer exists."))?;
        self.shard_rt(&s, it.shard)
    }

    /// The sequence number just before an iterator's position (the continuation point when
    /// nothing has been delivered yet); the shard's starting number at offset 0.
    fn sequence_before(&self, it: &ShardIterator) -> String {
        let cat = self.catalog.read();
        let Some(sh) = cat
            .streams
            .get(&it.stream_id)
            .and_then(|s| s.shard(it.shard))
        else {
            return keys::sequence_number(0, it.shard, 0);
        };
        match it.offset.checked_sub(1) {
            Some(o) => keys::sequence_number(sh.epoch_at(o), it.shard, o),
            None => keys::sequence_number(sh.created_ms, it.shard, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{b64, Env};
    use serde_json::json;

    const ARN: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/s";

    /// Registers consumer "c" on stream "s"; its ARN.
    async fn consumer(e: &Env) -> String {
        let c = e
            .ok(
                "RegisterStreamConsumer",
                json!({"StreamARN": ARN, "ConsumerName": "c"}),
            )
            .await;
        c["Consumer"]["ConsumerARN"].as_str().unwrap().to_string()
    }

    /// A PutRecord of `d` to stream "s".
    fn put(d: &str) -> serde_json::Value {
        json!({"StreamName": "s", "PartitionKey": "a", "Data": b64(d.as_bytes())})
    }

    #[tokio::test]
    async fn subscription_streams_records_then_children() {
        let e = Env::new();
        e.create("s", 1).await;
        let carn = consumer(&e).await;
        let first = e.ok("PutRecord", put("one")).await;
        e.ok("PutRecord", put("two")).await;
        let input = json!({"ConsumerARN": carn, "ShardId": "shardId-000000000000",
                           "StartingPosition": {"Type": "TRIM_HORIZON"}});
        let err = e.err("SubscribeToShard", input.clone()).await;
        assert_eq!(err.code, "InvalidArgumentException");

        // The 5-second rule below runs on the service clock, not on how fast this test is.
        e.svc.freeze_clock();
        let mut sub = e.svc.subscribe(&e.ctx, input).await.unwrap();
        let ev = sub.next().await.unwrap().unwrap();
        assert_eq!(ev["Records"].as_array().unwrap().len(), 2);
        assert_eq!(ev["Records"][0]["SequenceNumber"], first["SequenceNumber"]);
        assert_eq!(ev["MillisBehindLatest"], 0);
        let cont = ev["ContinuationSequenceNumber"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(ev["Records"][1]["SequenceNumber"], cont.as_str());
        // A waiting subscription wakes on the next append.
        let third = e.ok("PutRecord", put("three")).await;
        let ev = tokio::time::timeout(std::time::Duration::from_secs(2), sub.next())
            .await
            .expect("woken by the append")
            .unwrap()
            .unwrap();
        assert_eq!(ev["Records"][0]["SequenceNumber"], third["SequenceNumber"]);

        // One subscription per consumer and shard: a second one within 5 seconds of the
        // first is refused; a later one takes over, ending the first with
        // ResourceInUseException (Kinesis API reference, SubscribeToShard).
        let resume = json!({"ConsumerARN": carn, "ShardId": "shardId-000000000000",
                            "StartingPosition": {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": cont}});
        let err = e.svc.subscribe(&e.ctx, resume.clone()).await.err().unwrap();
        assert_eq!(err.code, "ResourceInUseException");
        e.svc.advance_clock(5_000);
        // Resume after the continuation number.
        let mut again = e.svc.subscribe(&e.ctx, resume).await.unwrap();
        let ev = again.next().await.unwrap().unwrap();
        assert_eq!(ev["Records"][0]["Data"], b64(b"three"));
        // (Past any heartbeat it sent meanwhile.)
        let ended = loop {
            let ev = tokio::time::timeout(std::time::Duration::from_secs(10), sub.next())
                .await
                .expect("the first subscription ends")
                .unwrap();
            match ev {
                Ok(ev) => assert!(ev["Records"].as_array().unwrap().is_empty(), "{ev}"),
                Err(err) => break err,
            }
        };
        assert_eq!(ended.code, "ResourceInUseException");
        assert!(sub.next().await.is_none());
        let mut sub = again;

        // Closing the shard ends the subscription with its children.
        e.ok(
            "SplitShard",
            json!({"StreamName": "s", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "1000"}),
        )
        .await;
        let ev = tokio::time::timeout(std::time::Duration::from_secs(10), sub.next())
            .await
            .expect("an event")
            .unwrap()
            .unwrap();
        assert_eq!(ev["ChildShards"].as_array().unwrap().len(), 2);
        // No continuation at the end of a shard: that is how the KCL and Flink tell it ended
        // (they test `continuationSequenceNumber() == null`) and move on to the children.
        assert!(ev.get("ContinuationSequenceNumber").is_none(), "{ev}");
        assert!(sub.next().await.is_none());
    }

    /// The continuation number of a shard that has never held a record is its
    /// StartingSequenceNumber; resuming AFTER it must start with the first record written
    /// since (the model: it "captures your shard progress even when no data is written").
    #[tokio::test]
    async fn empty_shard_continuation_resumes_at_first_record() {
        let e = Env::new();
        e.create("s", 1).await;
        let carn = consumer(&e).await;
        e.svc.freeze_clock();
        let mut sub = e
            .svc
            .subscribe(
                &e.ctx,
                json!({"ConsumerARN": carn, "ShardId": "shardId-000000000000",
                       "StartingPosition": {"Type": "TRIM_HORIZON"}}),
            )
            .await
            .unwrap();
        let ev = sub.next().await.unwrap().unwrap();
        assert!(ev["Records"].as_array().unwrap().is_empty());
        let cont = ev["ContinuationSequenceNumber"]
            .as_str()
            .unwrap()
            .to_string();
        drop(sub);
        let desc = e.ok("DescribeStream", json!({"StreamName": "s"})).await;
        assert_eq!(
            desc["StreamDescription"]["Shards"][0]["SequenceNumberRange"]["StartingSequenceNumber"],
            cont.as_str()
        );
        e.ok("PutRecord", put("first")).await;
        e.ok("PutRecord", put("second")).await;
        e.svc.advance_clock(5_000);
        let mut again = e
            .svc
            .subscribe(
                &e.ctx,
                json!({"ConsumerARN": carn, "ShardId": "shardId-000000000000",
                       "StartingPosition": {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": cont}}),
            )
            .await
            .unwrap();
        let ev = again.next().await.unwrap().unwrap();
        let data: Vec<_> = ev["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["Data"].clone())
            .collect();
        assert_eq!(data, [b64(b"first"), b64(b"second")]);
        // GetShardIterator reads the number the same way.
        let it = e
            .ok(
                "GetShardIterator",
                json!({"StreamName": "s", "ShardId": "shardId-000000000000",
                       "ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": cont}),
            )
            .await;
        let got = e
            .ok("GetRecords", json!({"ShardIterator": it["ShardIterator"]}))
            .await;
        assert_eq!(got["Records"].as_array().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn subscribe_validation() {
        let e = Env::new();
        e.create("s", 1).await;
        let err = e
            .err(
                "SubscribeToShard",
                json!({"ConsumerARN": format!("{ARN}/consumer/c:1"), "ShardId": "shardId-000000000000",
                       "StartingPosition": {"Type": "LATEST"}}),
            )
            .await;
        assert_eq!(err.code, "ResourceNotFoundException");
        let carn = consumer(&e).await;
        let err = e
            .err(
                "SubscribeToShard",
                json!({"ConsumerARN": carn, "ShardId": "shardId-000000000000",
                       "StartingPosition": {"Type": "AT_SEQUENCE_NUMBER"}}),
            )
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        let err = e
            .err(
                "SubscribeToShard",
                json!({"ConsumerARN": carn, "ShardId": "shardId-000000000000",
                       "StartingPosition": {"Type": "NOWHERE"}}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .svc
            .subscribe(
                &e.ctx,
                json!({"ConsumerARN": carn, "ShardId": "shardId-000000000004",
                       "StartingPosition": {"Type": "LATEST"}}),
            )
            .await
            .err()
            .unwrap();
        assert_eq!(err.code, "ResourceNotFoundException");
    }
}
