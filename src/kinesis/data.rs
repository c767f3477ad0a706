//! The data plane: PutRecord, PutRecords, GetShardIterator, GetRecords, and the per-shard
//! throughput limits. Records go to the shard logs; the catalog is only read here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::context::RequestContext;
use crate::error::{ServiceError, ServiceResult};
use crate::service::parse_input;

use super::error::{
    expired_iterator, invalid_argument, invalid_iterator, not_found, serialization,
    stream_not_found, throughput_exceeded,
};
use super::keys::{self, ts_out, Iterator as ShardIterator, ITERATOR_TTL_MS};
use super::state::{Status, StoredRecord, StreamMeta, RECORD_KIND};
use super::validate::Checks;
use super::{Kinesis, ShardRt, StreamSel, Target};

/// GetRecords returns at most this many bytes per call.
const MAX_GET_BYTES: usize = 10 << 20;
const MAX_DATA_BYTES: usize = 10 << 20;
/// Largest PutRecords request: data plus partition keys of all its records.
const MAX_REQUEST_BYTES: u64 = 10 << 20;

fn b64() -> &'static base64::engine::GeneralPurpose {
    &base64::engine::general_purpose::STANDARD
}

fn hash_key_ok(s: &str) -> bool {
    s == "0"
        || (s.len() <= 39
            && s.as_bytes()
                .first()
                .is_some_and(|b| (b'1'..=b'9').contains(b))
            && s.bytes().all(|b| b.is_ascii_digit()))
}

fn seq_ok(s: &str) -> bool {
    s == "0"
        || (s.len() <= 129
            && s.as_bytes()
                .first()
                .is_some_and(|b| (b'1'..=b'9').contains(b))
            && s.bytes().all(|b| b.is_ascii_digit()))
}

/// Polls every future to completion concurrently (appends to different shards share group
/// commits instead of waiting for each other).
async fn join_all<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futs.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// What a writer needs of its stream (cheap to copy out of the catalog per request).
struct WriteInfo {
    id: String,
    name: String,
    account: String,
    kms: bool,
}

/// Per-record PutRecords outcome: (shard, epoch, offset) or (error code, message).
type RecordOutcome = Result<(u32, u64, u64), (String, String)>;

/// A validated record to write.
struct Entry {
    partition_key: String,
    explicit_hash_key: Option<String>,
    hash: u128,
    data: Vec<u8>,
}

impl Entry {
    fn size(&self) -> u64 {
        (self.data.len() + self.partition_key.len()) as u64
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecordIn {
    data: Option<String>,
    partition_key: Option<String>,
    explicit_hash_key: Option<String>,
}

fn check_record(c: &mut Checks, r: &RecordIn, prefix: &str) {
    c.required(&r.data, &format!("{prefix}data"))
        .required(&r.partition_key, &format!("{prefix}partitionKey"))
        .len(
            r.partition_key.as_deref(),
            &format!("{prefix}partitionKey"),
            1,
            256,
        );
    if let Some(h) = r.explicit_hash_key.as_deref() {
        c.pattern(
            Some(h),
            &format!("{prefix}explicitHashKey"),
            hash_key_ok(h),
            "0|([1-9]\\d{0,38})",
        );
    }
}

/// The record size limit covers "the total size of the partition key and data blob" (the
/// model's PutRecords text): a blob at the limit with any key is over it. A blob over the
/// limit by itself is printed as AWS prints it; one over only with its key is not printed
/// (moto's wording for that case; AWS's is not recorded).
fn data_too_long(c: &mut Checks, e: &Entry, max: usize, path: &str) {
    let len = e.data.len();
    let constraint = format!("have length less than or equal to {max}");
    if len > max {
        c.raw(
            format!("'java.nio.HeapByteBuffer[pos=0 lim={len} cap={len}]'"),
            path,
            &constraint,
        );
    } else if e.size() > max as u64 {
        c.unvalued(path, &constraint);
    }
}

/// Base64 `Data`, with AWS's SerializationException wording for malformed input.
fn decode_blob(v: &str) -> ServiceResult<Vec<u8>> {
    if v.len() % 4 != 0 {
        return Err(serialization(format!(
            "'{v}' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: {}",
            v.len()
        )));
    }
    if let Some(c) = v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '+' || *c == '/' || *c == '='))
    {
        return Err(serialization(format!(
            "'{v}' can not be converted to a Blob: Invalid Base64 character: '{c}'"
        )));
    }
    b64().decode(v).map_err(|_| {
        serialization(format!(
            "'{v}' can not be converted to a Blob: Invalid last non-pad Base64 character dectected"
        ))
    })
}

fn decode_entry(r: RecordIn) -> ServiceResult<Entry> {
    let data = decode_blob(&r.data.unwrap_or_default())?;
    let partition_key = r.partition_key.unwrap_or_default();
    let hash = match &r.explicit_hash_key {
        Some(h) => keys::parse_hash_key(h).ok_or_else(|| {
            invalid_argument(format!(
                "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {h}"
            ))
        })?,
        None => keys::hash_partition_key(&partition_key),
    };
    Ok(Entry {
        partition_key,
        explicit_hash_key: r.explicit_hash_key,
        hash,
        data,
    })
}

/// Streams accept records while ACTIVE or UPDATING.
fn writable(s: &StreamMeta, now: u64) -> ServiceResult<()> {
    match s.status_at(now) {
        Some(Status::Active | Status::Updating) => Ok(()),
        _ => Err(stream_not_found(&s.name, &s.account)),
    }
}

pub(crate) fn shard_missing(shard: &str, s: &StreamMeta) -> ServiceError {
    shard_missing_in(shard, &s.name, &s.account)
}

fn shard_missing_in(shard: &str, stream: &str, account: &str) -> ServiceError {
    not_found(format!(
        "Shard {shard} in stream {stream} under account {account} does not exist"
    ))
}

/// A shard id that does not name a shard index at all (see [`keys::parse_shard_id`]).
pub(crate) fn unknown_shard_id(id: &str, stream: &str, account: &str) -> ServiceError {
    not_found(format!(
        "Could not find shard {id} in stream {stream} under account {account}."
    ))
}

impl Kinesis {
    /// Routes entries to open shards and takes each target shard's write gate (in shard order).
    /// Retries after a concurrent reshard has finished if a routed shard closed meanwhile.
    async fn route_and_gate(
        &self,
        t: &Target,
        hashes: &[u128],
    ) -> ServiceResult<(WriteInfo, Vec<u32>, Vec<(u32, Arc<ShardRt>, u64)>)> {
        loop {
            let now = self.now();
            let (meta, routes, rts) = self.with_stream(t, |s| {
                writable(s, now)?;
                let mut routes = Vec::with_capacity(hashes.len());
                for h in hashes {
                    let sh = s
                        .route(*h)
                        .ok_or_else(|| ServiceError::internal("no open shard covers hash key"))?;
                    routes.push(sh.index);
                }
                let mut uniq = routes.clone();
                uniq.sort_unstable();
                uniq.dedup();
                let mut rts = Vec::with_capacity(uniq.len());
                for ix in uniq {
                    rts.push((ix, self.shard_rt(s, ix)?));
                }
                let meta = WriteInfo {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    account: s.account.clone(),
                    kms: s.kms_key.is_some(),
                };
                Ok((meta, routes, rts))
            })?;
            let mut closed = false;
            let mut with_epochs = Vec::with_capacity(rts.len());
            for (ix, rt) in rts {
                if *rt.gate.read().await {
                    closed = true;
                    break;
                }
                let epoch = self.ensure_epoch(&meta.id, ix, &rt).await?;
                with_epochs.push((ix, rt, epoch));
            }
            if closed {
                // A reshard closed a routed shard; it holds the write lock until the catalog
                // shows the children.
                drop(self.write_lock.lock().await);
                continue;
            }
            return Ok((meta, routes, with_epochs));
        }
    }

    pub(crate) async fn put_record(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(flatten)]
            sel: StreamSel,
            #[serde(flatten)]
            rec: RecordIn,
            sequence_number_for_ordering: Option<String>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        check_record(&mut c, &i.rec, "");
        if let Some(s) = i.sequence_number_for_ordering.as_deref() {
            c.pattern(
                Some(s),
                "sequenceNumberForOrdering",
                seq_ok(s),
                "0|([1-9]\\d{0,128})",
            );
        }
        let t = self.target(ctx, &i.sel, &mut c)?;
        let entry = decode_entry(i.rec)?;
        let max = self.with_stream(&t, |s| Ok(s.max_record_kib as usize * 1024))?;
        let mut c = Checks::new();
        data_too_long(&mut c, &entry, max.min(MAX_DATA_BYTES), "data");
        c.finish()?;
        if let Some(sfo) = &i.sequence_number_for_ordering {
            if keys::parse_sequence_number(sfo).is_none() && sfo != "0" {
                return Err(invalid_argument(format!(
                    "ExclusiveMinimumSequenceNumber {sfo} used in PutRecord on stream {} under account {} is invalid.",
                    t.name, t.account
                )));
            }
        }
        let (meta, routes, rts) = self.route_and_gate(&t, &[entry.hash]).await?;
        let (ix, rt, epoch) = (routes[0], &rts[0].1, rts[0].2);
        let guard = rt.gate.read().await;
        if *guard {
            drop(guard);
            return Box::pin(self.put_record_retry(ctx, &t, entry)).await;
        }
        let now = self.now();
        self.admit_write(rt, 1, entry.size(), now).map_err(|_| {
            throughput_exceeded(format!(
                "Rate exceeded for shard {} in stream {} under account {}.",
                keys::shard_id(ix),
                meta.name,
                meta.account
            ))
        })?;
        let ts = rt.next_ts(now);
        let payload = crate::codec::encode(&StoredRecord {
            partition_key: entry.partition_key,
            explicit_hash_key: entry.explicit_hash_key,
            data: entry.data,
        });
        let offset = rt.log.append(RECORD_KIND, ts, payload).await?;
        drop(guard);
        rt.appended.notify_waiters();
        Ok(json!({
            "ShardId": keys::shard_id(ix),
            "SequenceNumber": keys::sequence_number(epoch, ix, offset),
            "EncryptionType": if meta.kms { "KMS" } else { "NONE" },
        }))
    }

    /// The rare path where a reshard closed the shard between routing and writing.
    async fn put_record_retry(
        &self,
        ctx: &RequestContext,
        t: &Target,
        e: Entry,
    ) -> ServiceResult<Value> {
        let mut input = json!({
            "StreamARN": format!("arn:aws:kinesis:{}:{}:stream/{}", t.region, t.account, t.name),
            "PartitionKey": e.partition_key,
            "Data": b64().encode(&e.data),
        });
        if let Some(h) = e.explicit_hash_key {
            input["ExplicitHashKey"] = json!(h);
        }
        self.put_record(ctx, input).await
    }

    /// Counts a write against the shard's window; `Err` if it would exceed the limits.
    fn admit_write(&self, rt: &ShardRt, records: u64, bytes: u64, now: u64) -> Result<(), ()> {
        let limits = self.limits.read().clone();
        let Some(l) = limits else { return Ok(()) };
        let mut w = rt.window.lock();
        let w = w.at(now);
        if w.records_in + records > l.records_in_per_sec || w.bytes_in + bytes > l.bytes_in_per_sec
        {
            return Err(());
        }
        w.records_in += records;
        w.bytes_in += bytes;
        Ok(())
    }

    pub(crate) async fn put_records(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(flatten)]
            sel: StreamSel,
            records: Option<Vec<RecordIn>>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        c.required(&i.records, "records").count(
            i.records.as_ref().map(|r| r.len()),
            "records",
            1,
            500,
        );
        for (n, r) in i.records.iter().flatten().enumerate() {
            check_record(&mut c, r, &format!("records.{}.member.", n + 1));
        }
        let t = self.target(ctx, &i.sel, &mut c)?;
        let mut entries = Vec::new();
        for r in i.records.unwrap_or_default() {
            entries.push(decode_entry(r)?);
        }
        let max = self.with_stream(&t, |s| Ok(s.max_record_kib as usize * 1024))?;
        let mut c = Checks::new();
        for (n, e) in entries.iter().enumerate() {
            data_too_long(
                &mut c,
                e,
                max.min(MAX_DATA_BYTES),
                &format!("records.{}.member.data", n + 1),
            );
        }
        c.finish()?;
        let total: u64 = entries.iter().map(|e| e.size()).sum();
        // The model's limit: "up to a limit of 10 MiB for the entire request, including
        // partition keys". (Before records of up to 10 MiB existed, AWS documented 5 MiB;
        // the SDKs now ship the 10 MiB text, whatever the stream's record size.)
        if total > MAX_REQUEST_BYTES {
            return Err(invalid_argument(format!(
                "Records size exceeds {} MB limit",
                MAX_REQUEST_BYTES >> 20
            )));
        }
        let hashes: Vec<u128> = entries.iter().map(|e| e.hash).collect();
        let (meta, results) = loop {
            let (meta, routes, rts) = self.route_and_gate(&t, &hashes).await?;
            // Hold every target shard's gate across the appends.
            let mut guards = Vec::with_capacity(rts.len());
            let mut closed = false;
            for (_, rt, _) in &rts {
                let g = rt.gate.read().await;
                closed |= *g;
                guards.push(g);
            }
            if closed {
                drop(guards);
                drop(self.write_lock.lock().await);
                continue;
            }
            let now = self.now();
            let mut results: Vec<Option<RecordOutcome>> =
                (0..entries.len()).map(|_| None).collect();
            let mut batches: Vec<(usize, Vec<usize>)> = Vec::new();
            for (k, (ix, rt, _)) in rts.iter().enumerate() {
                let mut mine = Vec::new();
                for (n, r) in routes.iter().enumerate() {
                    if r != ix {
                        continue;
                    }
                    if self.admit_write(rt, 1, entries[n].size(), now).is_ok() {
                        mine.push(n);
                    } else {
                        results[n] = Some(Err((
                            "ProvisionedThroughputExceededException".to_string(),
                            format!(
                                "Rate exceeded for shard {} in stream {} under account {}.",
                                keys::shard_id(*ix),
                                meta.name,
                                meta.account
                            ),
                        )));
                    }
                }
                if !mine.is_empty() {
                    batches.push((k, mine));
                }
            }
            let futs: Vec<_> = batches
                .iter()
                .map(|(k, mine)| {
                    let rt = &rts[*k].1;
                    let ts = rt.next_ts(now);
                    let recs = mine
                        .iter()
                        .map(|n| {
                            let e = &entries[*n];
                            (
                                RECORD_KIND,
                                ts,
                                crate::codec::encode(&StoredRecord {
                                    partition_key: e.partition_key.clone(),
                                    explicit_hash_key: e.explicit_hash_key.clone(),
                                    data: e.data.clone(),
                                }),
                            )
                        })
                        .collect();
                    rt.log.append_batch(recs)
                })
                .collect();
            let outcomes = join_all(futs).await;
            drop(guards);
            for (k, _) in &batches {
                rts[*k].1.appended.notify_waiters();
            }
            for ((k, mine), outcome) in batches.iter().zip(outcomes) {
                let (ix, epoch) = (rts[*k].0, rts[*k].2);
                match outcome {
                    Ok(first) => {
                        for (j, n) in mine.iter().enumerate() {
                            results[*n] = Some(Ok((ix, epoch, first + j as u64)));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "kinesis put_records append failed");
                        for n in mine {
                            results[*n] = Some(Err((
                                "InternalFailure".to_string(),
                                "Internal service failure.".to_string(),
                            )));
                        }
                    }
                }
            }
            break (meta, results);
        };
        let mut failed = 0;
        let records: Vec<Value> = results
            .into_iter()
            .map(|r| match r {
                Some(Ok((ix, epoch, off))) => json!({
                    "SequenceNumber": keys::sequence_number(epoch, ix, off),
                    "ShardId": keys::shard_id(ix),
                }),
                Some(Err((code, msg))) => {
                    failed += 1;
                    json!({"ErrorCode": code, "ErrorMessage": msg})
                }
                None => {
                    failed += 1;
                    json!({"ErrorCode": "InternalFailure", "ErrorMessage": "Internal service failure."})
                }
            })
            .collect();
        Ok(json!({
            "FailedRecordCount": failed,
            "Records": records,
            "EncryptionType": if meta.kms { "KMS" } else { "NONE" },
        }))
    }

    /// First offset clients may read: above dropped segments and records older than retention.
    fn trim_horizon(&self, s: &StreamMeta, rt: &ShardRt, now: u64) -> ServiceResult<u64> {
        let start = rt.log.start_offset();
        let cutoff = now.saturating_sub(s.retention_ms());
        let by_age = match rt.log.offset_for_timestamp(cutoff)? {
            Some(o) => o,
            None => rt.log.next_offset(),
        };
        Ok(start.max(by_age))
    }

    /// Offset past the last record a reader can reach: a closed shard's end, else the tip.
    fn shard_end(s: &StreamMeta, ix: u32, rt: &ShardRt) -> u64 {
        match s.shard(ix).and_then(|m| m.closed) {
            Some(c) => c.end_offset,
            None => rt.log.next_offset(),
        }
    }

    pub(crate) fn get_shard_iterator(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(flatten)]
            sel: StreamSel,
            shard_id: Option<String>,
            shard_iterator_type: Option<String>,
            starting_sequence_number: Option<String>,
            timestamp: Option<Value>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        c.required(&i.shard_id, "shardId")
            .name(i.shard_id.as_deref(), "shardId", 128)
            .required(&i.shard_iterator_type, "shardIteratorType")
            .one_of(
                i.shard_iterator_type.as_deref(),
                "shardIteratorType",
                &[
                    "AT_SEQUENCE_NUMBER",
                    "AFTER_SEQUENCE_NUMBER",
                    "TRIM_HORIZON",
                    "LATEST",
                    "AT_TIMESTAMP",
                ],
            );
        if let Some(s) = i.starting_sequence_number.as_deref() {
            c.pattern(
                Some(s),
                "startingSequenceNumber",
                seq_ok(s),
                "0|([1-9]\\d{0,128})",
            );
        }
        let t = self.target(ctx, &i.sel, &mut c)?;
        let ts_ms = i
            .timestamp
            .as_ref()
            .map(|v| keys::parse_timestamp(v, "Timestamp"))
            .transpose()?;
        let shard_str = i.shard_id.unwrap_or_default();
        let kind = i.shard_iterator_type.unwrap_or_default();
        let now = self.now();
        // AWS resolves the shard id before the stream, and names the missing stream's shard.
        let ix = Self::shard_index(&shard_str, &t)?;
        let shard_name = keys::shard_id(ix);
        let missing = || shard_missing_in(&shard_name, &t.name, &t.account);
        self.with_stream_or(&t, missing, |s| {
            if s.shard(ix).is_none() {
                return Err(shard_missing(&shard_name, s));
            }
            let seq = i.starting_sequence_number.as_deref();
            match (kind.as_str(), seq) {
                ("TRIM_HORIZON" | "LATEST" | "AT_TIMESTAMP", Some(_)) => {
                    return Err(invalid_argument(format!(
                        "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified {kind} and also a StartingSequenceNumber."
                    )));
                }
                ("AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER", None) => {
                    return Err(invalid_argument(format!(
                        "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified {kind} and no StartingSequenceNumber."
                    )));
                }
                _ => {}
            }
            let rt = self.shard_rt(s, ix)?;
            let horizon = self.trim_horizon(s, &rt, now)?;
            let end = Self::shard_end(s, ix, &rt);
            let offset = match kind.as_str() {
                "TRIM_HORIZON" => horizon,
                "LATEST" => end,
                "AT_TIMESTAMP" => {
                    let ts = ts_ms.ok_or_else(|| {
                        invalid_argument("Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current request has no timestamp parameter.")
                    })?;
                    if ts > now {
                        return Err(invalid_argument(format!(
                            "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. timestampInMillis: {ts}, currentTimestampInMillis: {now}"
                        )));
                    }
                    rt.log.offset_for_timestamp(ts)?.unwrap_or(rt.log.next_offset()).max(horizon)
                }
                _ => {
                    let seq = seq.unwrap_or_default();
                    let invalid = || {
                        invalid_argument(format!(
                            "StartingSequenceNumber {seq} used in GetShardIterator on shard {shard_name} in stream {} under account {} is invalid.",
                            s.name, s.account
                        ))
                    };
                    let p = keys::parse_sequence_number(seq).ok_or_else(invalid)?;
                    if p.shard != ix {
                        return Err(invalid_argument(format!(
                            "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard with {shard_name}",
                            keys::shard_id(p.shard)
                        )));
                    }
                    if p.epoch_ms < s.created_ms {
                        return Err(invalid_argument(format!(
                            "StartingSequenceNumber {seq} used in GetShardIterator on shard {shard_name} in stream {} under account {} is invalid because it did not come from this stream.",
                            s.name, s.account
                        )));
                    }
                    let epochs = s.shard(ix).map_or(&[][..], |m| &m.epochs[..]);
                    let o = seq_start(
                        epochs,
                        p.epoch_ms,
                        p.offset,
                        kind == "AFTER_SEQUENCE_NUMBER",
                    );
                    o.clamp(horizon.min(end), end)
                }
            };
            let it = ShardIterator {
                stream_id: s.id.clone(),
                account: s.account.clone(),
                stream_name: s.name.clone(),
                stream_created_ms: s.created_ms,
                shard: ix,
                offset,
                issued_ms: now,
            };
            Ok(json!({"ShardIterator": keys::encode_iterator(&it)}))
        })
    }

    pub(crate) fn get_records(&self, _ctx: &RequestContext, input: Value) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            shard_iterator: Option<String>,
            limit: Option<i64>,
            #[serde(rename = "StreamARN")]
            stream_arn: Option<String>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        Checks::new()
            .required(&i.shard_iterator, "shardIterator")
            .len(i.shard_iterator.as_deref(), "shardIterator", 1, 512)
            .range(i.limit, "limit", 1, Some(10000))
            .finish()?;
        let it = keys::decode_iterator(i.shard_iterator.as_deref().unwrap_or_default())?;
        let now = self.now();
        if it.issued_ms > now + 60_000 {
            return Err(invalid_iterator());
        }
        if now.saturating_sub(it.issued_ms) > ITERATOR_TTL_MS {
            return Err(expired_iterator(format!(
                "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of {ITERATOR_TTL_MS} milliseconds.",
                keys::amz_utc_string(it.issued_ms),
                keys::amz_utc_string(now)
            )));
        }
        let limit = i.limit.unwrap_or(10000) as usize;
        self.read_iterator(&it, limit, i.stream_arn.as_deref(), true)
    }

    /// Reads up to `limit` records (and 10 MiB) at an iterator's position: the GetRecords
    /// output document. `throttle` applies the per-shard read limits (GetRecords), not the
    /// enhanced fan-out path.
    pub(crate) fn read_iterator(
        &self,
        it: &ShardIterator,
        limit: usize,
        stream_arn: Option<&str>,
        throttle: bool,
    ) -> ServiceResult<Value> {
        let now = self.now();
        let cat = self.catalog.read();
        let s = cat
            .streams
            .get(&it.stream_id)
            .filter(|s| s.created_ms == it.stream_created_ms && s.status_at(now).is_some())
            .ok_or_else(|| {
                let shard = keys::shard_id(it.shard);
                if it.stream_name.is_empty() {
                    not_found(format!(
                        "Shard {shard} in stream with id {} does not exist",
                        it.stream_id
                    ))
                } else {
                    shard_missing_in(&shard, &it.stream_name, &it.account)
                }
            })?;
        if let Some(arn) = stream_arn {
            if arn != s.arn() {
                return Err(invalid_argument(format!(
                    "StreamARN {arn} does not match the stream of the ShardIterator."
                )));
            }
        }
        let shard_name = keys::shard_id(it.shard);
        if s.shard(it.shard).is_none() {
            return Err(shard_missing(&shard_name, s));
        }
        let rt = self.shard_rt(s, it.shard)?;
        let limits = if throttle {
            self.limits.read().clone()
        } else {
            None
        };
        if let Some(l) = &limits {
            let mut w = rt.window.lock();
            let w = w.at(now);
            if w.reads >= l.reads_per_sec || w.bytes_out >= l.bytes_out_per_sec {
                return Err(throughput_exceeded(format!(
                    "Rate exceeded for Shard - {shard_name} in stream {} under account {}.",
                    s.name, s.account
                )));
            }
            w.reads += 1;
        }
        let end = Self::shard_end(s, it.shard, &rt);
        let mut offset = it.offset.max(self.trim_horizon(s, &rt, now)?).min(end);
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let encrypted = s.kms_key.is_some();
        let meta = s
            .shard(it.shard)
            .ok_or_else(|| shard_missing(&shard_name, s))?;
        while offset < end && records.len() < limit {
            let rec = rt.log.read_with(offset, |_kind, ts, payload| {
                crate::codec::decode::<StoredRecord>(payload).map(|r| (ts, r))
            })?;
            let Some(rec) = rec else { break };
            let (ts, r) = rec?;
            let size = r.data.len() + r.partition_key.len();
            if !records.is_empty() && bytes + size > MAX_GET_BYTES {
                break;
            }
            bytes += size;
            let mut m = Map::new();
            m.insert(
                "SequenceNumber".into(),
                json!(keys::sequence_number(
                    meta.epoch_at(offset),
                    it.shard,
                    offset
                )),
            );
            m.insert("ApproximateArrivalTimestamp".into(), json!(ts_out(ts)));
            m.insert("Data".into(), json!(b64().encode(&r.data)));
            m.insert("PartitionKey".into(), json!(r.partition_key));
            if encrypted {
                m.insert("EncryptionType".into(), json!("KMS"));
            }
            records.push(Value::Object(m));
            offset += 1;
        }
        if limits.is_some() {
            rt.window.lock().at(now).bytes_out += bytes as u64;
        }
        let millis_behind = if offset >= rt.log.next_offset() {
            0
        } else {
            rt.log
                .read_with(offset, |_, ts, _| now.saturating_sub(ts))?
                .unwrap_or(0)
        };
        let mut out = Map::new();
        out.insert("Records".into(), Value::Array(records));
        let closed_at_end = s.shard(it.shard).is_some_and(|m| m.closed.is_some()) && offset >= end;
        if closed_at_end {
            let children: Vec<Value> = s
                .children_of(it.shard)
                .into_iter()
                .map(|c| {
                    let mut parents = vec![keys::shard_id(c.parent.unwrap_or(it.shard))];
                    if let Some(a) = c.adjacent_parent {
                        parents.push(keys::shard_id(a));
                    }
                    json!({
                        "ShardId": keys::shard_id(c.index),
                        "ParentShards": parents,
                        "HashKeyRange": {"StartingHashKey": c.start_key, "EndingHashKey": c.end_key},
                    })
                })
                .collect();
            out.insert("ChildShards".into(), Value::Array(children));
        } else {
            let next = ShardIterator {
                offset,
                issued_ms: now,
                ..it.clone()
            };
            out.insert(
                "NextShardIterator".into(),
                json!(keys::encode_iterator(&next)),
            );
        }
        out.insert("MillisBehindLatest".into(), json!(millis_behind));
        Ok(Value::Object(out))
    }
}

/// Where AT_SEQUENCE_NUMBER (`after` false) or AFTER_SEQUENCE_NUMBER of the number (`epoch`,
/// `offset`) starts in a shard whose writer epochs are `epochs` ((first offset, epoch), both
/// ascending): at the first record numbered at or above it, or above it.
///
/// Records are numbered (epoch, offset), so that is the record at its offset (AT) or the next
/// (AFTER), unless a later epoch starts at or below its offset: then it is that epoch's first
/// record. So it is for the shard's StartingSequenceNumber, which is also an empty shard's
/// continuation number and sorts below the first record, and for the number of a record lost in
/// a crash, whose offset a later run reused.
fn seq_start(epochs: &[(u64, u64)], epoch: u64, offset: u64, after: bool) -> u64 {
    let later = epochs.partition_point(|&(_, e)| e <= epoch);
    match epochs.get(later) {
        Some(&(from, _)) if from <= offset => from,
        _ if after => offset.saturating_add(1),
        _ => offset,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{b64 as enc, Env};
    use super::super::Limits;
    use super::seq_start;
    use serde_json::{json, Value};

    #[test]
    fn sequence_positions_follow_number_order() {
        // A record's own number: AT is it, AFTER the next.
        let ep = [(0, 10), (5, 20)];
        assert_eq!(seq_start(&ep, 20, 7, false), 7);
        assert_eq!(seq_start(&ep, 20, 7, true), 8);
        assert_eq!(seq_start(&ep, 10, 3, true), 4);
        // The shard's StartingSequenceNumber (creation time 5, offset 0) sorts below record 0.
        assert_eq!(seq_start(&ep, 5, 0, true), 0);
        assert_eq!(
            seq_start(&[], 5, 0, true),
            1,
            "empty shard: clamped to its end later"
        );
        // Run 20 wrote offsets 10 and 11, lost in a crash; run 30 rewrote offset 10. After
        // (20, 11) comes (30, 10), below its offset.
        let ep = [(0, 10), (10, 20), (10, 30)];
        assert_eq!(seq_start(&ep, 20, 11, true), 10);
        assert_eq!(seq_start(&ep, 20, 11, false), 10);
        assert_eq!(seq_start(&ep, 30, 10, true), 11);
    }

    /// A child shard's StartingSequenceNumber sorts below its first record even when that
    /// record is written in the millisecond of the split: AFTER it reads the record.
    #[tokio::test]
    async fn after_a_childs_starting_number_reads_its_first_record() {
        let e = Env::new();
        e.svc.freeze_clock();
        e.create("s", 1).await;
        // A new millisecond with no stamp in it yet, as for a split on a quiet stream.
        e.svc.advance_clock(1000);
        e.ok(
            "SplitShard",
            json!({"StreamName": "s", "ShardToSplit": "shardId-000000000000",
                   "NewStartingHashKey": "170141183460469231731687303715884105728"}),
        )
        .await;
        let d = e.ok("DescribeStream", json!({"StreamName": "s"})).await;
        let child = &d["StreamDescription"]["Shards"][1];
        assert_eq!(child["ShardId"], "shardId-000000000001");
        let start = child["SequenceNumberRange"]["StartingSequenceNumber"].clone();
        // Hash key 0 routes to the lower child.
        e.ok(
            "PutRecord",
            json!({"StreamName": "s", "PartitionKey": "k", "ExplicitHashKey": "0", "Data": enc(b"first")}),
        )
        .await;
        let it = e
            .ok(
                "GetShardIterator",
                json!({"StreamName": "s", "ShardId": "shardId-000000000001",
                       "ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": start}),
            )
            .await;
        let got = e
            .ok("GetRecords", json!({"ShardIterator": it["ShardIterator"]}))
            .await;
        assert_eq!(got["Records"].as_array().unwrap().len(), 1, "{got}");
    }

    /// LocalStack's AWS-validated test_get_records_shard_iterator_with_surrounding_quotes: an
    /// iterator in double quotes reads as the iterator.
    #[tokio::test]
    async fn a_quoted_iterator_reads_like_the_iterator() {
        let e = Env::new();
        e.create("s", 1).await;
        put(&e, "s", "a", b"x").await;
        let it = e
            .ok(
                "GetShardIterator",
                json!({"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
            )
            .await["ShardIterator"]
            .as_str()
            .unwrap()
            .to_string();
        let r = e
            .ok("GetRecords", json!({"ShardIterator": format!("\"{it}\"")}))
            .await;
        assert_eq!(r["Records"].as_array().unwrap().len(), 1);
    }

    /// kinesalite's AWS-checked getShardIterator.js: any `<prefix>-N` names shard N; an id that
    /// names no index fails first; a missing stream is reported as its missing shard.
    #[tokio::test]
    async fn shard_iterator_shard_ids_are_normalized() {
        let e = Env::new();
        e.create("s", 2).await;
        let gi = |stream: &str, shard: &str| json!({"StreamName": stream, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"});
        let home = put(&e, "s", "a", b"x").await["ShardId"].clone();
        for (id, shard) in [
            ("foo-0", "shardId-000000000000"),
            ("shard-0", "shardId-000000000000"),
            ("0", "shardId-000000000000"),
            ("shardId-1", "shardId-000000000001"),
            ("-1", "shardId-000000000001"),
        ] {
            let it = e.ok("GetShardIterator", gi("s", id)).await;
            let r = e
                .ok("GetRecords", json!({"ShardIterator": it["ShardIterator"]}))
                .await;
            let n = r["Records"].as_array().unwrap().len();
            assert_eq!(n, usize::from(home == shard), "{id}");
        }
        let acct = "000000000000";
        let err = e.err("GetShardIterator", gi("s", "shardId-5")).await;
        assert_eq!(err.code, "ResourceNotFoundException");
        assert_eq!(
            err.message,
            format!("Shard shardId-000000000005 in stream s under account {acct} does not exist")
        );
        let err = e
            .err("GetShardIterator", gi("nope", "x-00002147483647"))
            .await;
        assert_eq!(err.code, "ResourceNotFoundException");
        assert_eq!(
            err.message,
            format!(
                "Shard shardId-002147483647 in stream nope under account {acct} does not exist"
            )
        );
        for bad in ["2147483648", "shardId-002147483648", "ABKLFD8", "2.14E4"] {
            let err = e.err("GetShardIterator", gi("nope", bad)).await;
            assert_eq!(err.code, "ResourceNotFoundException");
            assert_eq!(
                err.message,
                format!("Could not find shard {bad} in stream nope under account {acct}.")
            );
        }
    }

    /// kinesalite's AWS-checked getRecords.js names the deleted stream, not an internal id.
    #[tokio::test]
    async fn iterator_of_deleted_stream_names_the_stream() {
        let e = Env::new();
        e.create("gone", 2).await;
        let it0 = e.iterator("gone", "shardId-0", "LATEST").await;
        let it1 = e.iterator("gone", "shardId-1", "LATEST").await;
        e.ok("DeleteStream", json!({"StreamName": "gone"})).await;
        for (it, shard) in [(it0, "shardId-000000000000"), (it1, "shardId-000000000001")] {
            let err = e.err("GetRecords", json!({"ShardIterator": it})).await;
            assert_eq!(err.code, "ResourceNotFoundException");
            assert_eq!(
                err.message,
                format!("Shard {shard} in stream gone under account 000000000000 does not exist")
            );
        }
    }

    /// An iterator of a deleted stream does not read the new stream of the same name: it
    /// names the stream it was taken on (id and creation time), as AWS's do.
    #[tokio::test]
    async fn iterator_of_an_earlier_same_name_stream_reads_nothing_of_the_new_one() {
        let e = Env::new();
        e.create("again", 1).await;
        put(&e, "again", "a", b"old").await;
        let old = e.iterator("again", "shardId-0", "TRIM_HORIZON").await;
        e.ok("DeleteStream", json!({"StreamName": "again"})).await;
        e.create("again", 1).await;
        put(&e, "again", "a", b"new").await;
        let err = e.err("GetRecords", json!({"ShardIterator": old})).await;
        assert_eq!(err.code, "ResourceNotFoundException");
        assert_eq!(
            err.message,
            "Shard shardId-000000000000 in stream again under account 000000000000 does not exist"
        );
        // A fresh iterator reads the new stream only.
        let it = e.iterator("again", "shardId-0", "TRIM_HORIZON").await;
        let r = get(&e, &it, None).await;
        assert_eq!(r["Records"].as_array().unwrap().len(), 1);
        assert_eq!(r["Records"][0]["Data"], enc(b"new"));
    }

    async fn put(e: &Env, stream: &str, pk: &str, data: &[u8]) -> Value {
        e.ok(
            "PutRecord",
            json!({"StreamName": stream, "PartitionKey": pk, "Data": enc(data)}),
        )
        .await
    }

    async fn get(e: &Env, it: &str, limit: Option<u32>) -> Value {
        let mut input = json!({ "ShardIterator": it });
        if let Some(l) = limit {
            input["Limit"] = json!(l);
        }
        e.ok("GetRecords", input).await
    }

    /// Sequence numbers have a fixed width, so string order is numeric order.
    fn seq(v: &Value) -> String {
        let s = v["SequenceNumber"].as_str().unwrap().to_string();
        assert_eq!(s.len(), 38);
        s
    }

    #[tokio::test]
    async fn put_and_read_back() {
        let e = Env::new();
        e.create("s", 1).await;
        let a = put(&e, "s", "pk", b"one").await;
        let b = put(&e, "s", "pk", b"two").await;
        let c = put(&e, "s", "other", b"").await;
        assert_eq!(a["ShardId"], "shardId-000000000000");
        assert_eq!(a["EncryptionType"], "NONE");
        assert!(seq(&a) < seq(&b) && seq(&b) < seq(&c));
        assert_eq!(a["SequenceNumber"].as_str().unwrap().len(), 38);

        let it = e
            .iterator("s", "shardId-000000000000", "TRIM_HORIZON")
            .await;
        let r = get(&e, &it, None).await;
        let recs = r["Records"].as_array().unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0]["Data"], enc(b"one"));
        assert_eq!(recs[0]["PartitionKey"], "pk");
        assert_eq!(recs[0]["SequenceNumber"], a["SequenceNumber"]);
        assert_eq!(recs[2]["Data"], "");
        let ts = recs[0]["ApproximateArrivalTimestamp"].as_f64().unwrap();
        assert!(ts > 1.6e9 && ts < 1e10, "{ts}");
        assert_eq!(r["MillisBehindLatest"], 0);
        let next = r["NextShardIterator"].as_str().unwrap().to_string();
        let r = get(&e, &next, None).await;
        assert_eq!(r["Records"], json!([]));
        assert!(r["ChildShards"].is_null());
        let next = r["NextShardIterator"].as_str().unwrap().to_string();
        put(&e, "s", "pk", b"three").await;
        let r = get(&e, &next, None).await;
        assert_eq!(r["Records"][0]["Data"], enc(b"three"));

        // Limit pages.
        let it = e
            .iterator("s", "shardId-000000000000", "TRIM_HORIZON")
            .await;
        let r = get(&e, &it, Some(2)).await;
        assert_eq!(r["Records"].as_array().unwrap().len(), 2);
        assert!(r["MillisBehindLatest"].as_u64().is_some());
        let r = get(&e, r["NextShardIterator"].as_str().unwrap(), Some(2)).await;
        assert_eq!(r["Records"].as_array().unwrap().len(), 2);
        assert_eq!(r["Records"][1]["Data"], enc(b"three"));
    }

    #[tokio::test]
    async fn routing_by_md5_and_explicit_hash_key() {
        let e = Env::new();
        e.create("s", 2).await;
        // md5("a") starts with 0x0c: lower half; md5("b") = 92eb5ffe... upper half.
        assert_eq!(
            put(&e, "s", "a", b"x").await["ShardId"],
            "shardId-000000000000"
        );
        assert_eq!(
            put(&e, "s", "b", b"x").await["ShardId"],
            "shardId-000000000001"
        );
        let ehk = |k: &str| json!({"StreamName": "s", "PartitionKey": "a", "Data": "", "ExplicitHashKey": k});
        let r = e
            .ok("PutRecord", ehk("340282366920938463463374607431768211455"))
            .await;
        assert_eq!(r["ShardId"], "shardId-000000000001");
        let r = e
            .ok("PutRecord", ehk("170141183460469231731687303715884105727"))
            .await;
        assert_eq!(r["ShardId"], "shardId-000000000000");
        let r = e
            .ok("PutRecord", ehk("170141183460469231731687303715884105728"))
            .await;
        assert_eq!(r["ShardId"], "shardId-000000000001");
        let err = e
            .err("PutRecord", ehk("340282366920938463463374607431768211456"))
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        assert!(err.message.starts_with("Invalid ExplicitHashKey."));
        let err = e.err("PutRecord", ehk("01")).await;
        assert_eq!(err.code, "ValidationException");
        let r = e
            .ok(
                "PutRecords",
                json!({"StreamName": "s", "Records": [
                    {"PartitionKey": "a", "Data": enc(b"1")},
                    {"PartitionKey": "b", "Data": enc(b"2")},
                    {"PartitionKey": "z", "Data": enc(b"3"), "ExplicitHashKey": "0"},
                ]}),
            )
            .await;
        assert_eq!(r["FailedRecordCount"], 0);
        let recs = r["Records"].as_array().unwrap();
        assert_eq!(recs[0]["ShardId"], "shardId-000000000000");
        assert_eq!(recs[1]["ShardId"], "shardId-000000000001");
        assert_eq!(recs[2]["ShardId"], "shardId-000000000000");
        assert!(seq(&recs[0]) < seq(&recs[2]));
        let it = e
            .iterator("s", "shardId-000000000000", "TRIM_HORIZON")
            .await;
        let got = get(&e, &it, None).await;
        let datas: Vec<&Value> = got["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["Data"])
            .collect();
        assert_eq!(datas.len(), 4);
        assert_eq!(datas[2], &json!(enc(b"1")));
        assert_eq!(datas[3], &json!(enc(b"3")));
    }

    #[tokio::test]
    async fn put_validation_and_errors() {
        let e = Env::new();
        e.create("s", 1).await;
        let err = e
            .err(
                "PutRecord",
                json!({"StreamName": "nope", "PartitionKey": "a", "Data": ""}),
            )
            .await;
        assert_eq!(err.code, "ResourceNotFoundException");
        let err = e
            .err(
                "PutRecord",
                json!({"StreamName": "s", "PartitionKey": "", "Data": ""}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
        assert!(err.message.contains("'partitionKey'"), "{}", err.message);
        let err = e
            .err(
                "PutRecord",
                json!({"StreamName": "s", "PartitionKey": "k".repeat(257), "Data": ""}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .err("PutRecord", json!({"StreamName": "s", "Data": ""}))
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .err("PutRecord", json!({"StreamName": "s", "PartitionKey": "a"}))
            .await;
        assert_eq!(err.code, "ValidationException");
        assert!(err.message.contains("'data'"));
        let err = e
            .err(
                "PutRecord",
                json!({"StreamName": "s", "PartitionKey": "a", "Data": "###"}),
            )
            .await;
        assert_eq!(err.code, "SerializationException");
        let err = e
            .err(
                "PutRecord",
                json!({"StreamName": "s", "PartitionKey": 5, "Data": ""}),
            )
            .await;
        assert_eq!(err.code, "SerializationException");
        let big = enc(&vec![0u8; (1 << 20) + 1]);
        let err = e
            .err(
                "PutRecord",
                json!({"StreamName": "s", "PartitionKey": "a", "Data": big}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
        assert!(err.message.contains("1048576"), "{}", err.message);
        // The limit covers the partition key too: a blob of exactly 1 MiB fits only without
        // one, and a key takes its bytes from the blob's share.
        let at_limit = enc(&vec![0u8; 1 << 20]);
        let err = e
            .err(
                "PutRecord",
                json!({"StreamName": "s", "PartitionKey": "a", "Data": at_limit}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
        assert!(
            err.message
                .contains("Value at 'data' failed to satisfy constraint"),
            "{}",
            err.message
        );
        let fits = enc(&vec![0u8; (1 << 20) - 3]);
        e.ok(
            "PutRecord",
            json!({"StreamName": "s", "PartitionKey": "abc", "Data": fits}),
        )
        .await;
        let err = e
            .err(
                "PutRecord",
                json!({"StreamName": "s", "PartitionKey": "a", "Data": "", "SequenceNumberForOrdering": "12"}),
            )
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        let first = put(&e, "s", "a", b"1").await;
        let r = e
            .ok(
                "PutRecord",
                json!({"StreamName": "s", "PartitionKey": "a", "Data": "",
                       "SequenceNumberForOrdering": first["SequenceNumber"]}),
            )
            .await;
        assert!(seq(&r) > seq(&first));
        // Raising the max record size admits larger records.
        e.ok(
            "UpdateMaxRecordSize",
            json!({"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s", "MaxRecordSizeInKiB": 2048}),
        )
        .await;
        e.ok(
            "PutRecord",
            json!({"StreamName": "s", "PartitionKey": "a", "Data": big}),
        )
        .await;

        // PutRecords (on a stream with the default 1 MiB record size).
        e.create("t", 1).await;
        let err = e
            .err("PutRecords", json!({"StreamName": "t", "Records": []}))
            .await;
        assert_eq!(err.code, "ValidationException");
        let many: Vec<Value> = (0..501)
            .map(|_| json!({"PartitionKey": "a", "Data": ""}))
            .collect();
        let err = e
            .err("PutRecords", json!({"StreamName": "t", "Records": many}))
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .err(
                "PutRecords",
                json!({"StreamName": "t", "Records": [{"PartitionKey": "a", "Data": ""}, {"PartitionKey": "", "Data": ""}]}),
            )
            .await;
        assert!(
            err.message.contains("'records.2.member.partitionKey'"),
            "{}",
            err.message
        );
        let err = e.err("PutRecords", json!({"StreamName": "t"})).await;
        assert_eq!(err.code, "ValidationException");
        // 10 MiB per request, data and partition keys together.
        // (Each record at exactly 1 MiB with its one-byte key.)
        let mib = enc(&vec![0u8; (1 << 20) - 1]);
        let mut over: Vec<Value> = (0..10)
            .map(|_| json!({"PartitionKey": "a", "Data": mib}))
            .collect();
        over.push(json!({"PartitionKey": "a", "Data": ""}));
        let err = e
            .err("PutRecords", json!({"StreamName": "t", "Records": over}))
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        assert!(err.message.contains("10 MB"), "{}", err.message);
        let mut under: Vec<Value> = (0..9)
            .map(|_| json!({"PartitionKey": "a", "Data": mib}))
            .collect();
        under.push(json!({"PartitionKey": "a", "Data": enc(&vec![0u8; (1 << 20) - 10])}));
        let r = e
            .ok("PutRecords", json!({"StreamName": "t", "Records": under}))
            .await;
        assert_eq!(r["FailedRecordCount"], 0);
        let full = enc(&vec![0u8; 1 << 20]);
        let err = e
            .err(
                "PutRecords",
                json!({"StreamName": "t", "Records": [{"PartitionKey": "a", "Data": ""}, {"PartitionKey": "a", "Data": full}]}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
        assert!(
            err.message.contains("'records.2.member.data'"),
            "{}",
            err.message
        );
        let ok: Vec<Value> = (0..500)
            .map(|i| json!({"PartitionKey": format!("k{i}"), "Data": ""}))
            .collect();
        let r = e
            .ok("PutRecords", json!({"StreamName": "t", "Records": ok}))
            .await;
        assert_eq!(r["Records"].as_array().unwrap().len(), 500);
        assert_eq!(r["FailedRecordCount"], 0);
    }

    #[tokio::test]
    async fn iterator_types() {
        let e = Env::new();
        e.create("s", 2).await;
        let sh = "shardId-000000000000";
        let a = put(&e, "s", "a", b"1").await;
        e.svc.advance_clock(2_000);
        let b = put(&e, "s", "a", b"2").await;
        let c = put(&e, "s", "a", b"3").await;
        let gi = |extra: Value| {
            let mut v = json!({"StreamName": "s", "ShardId": sh});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            v
        };
        let at = e
            .ok("GetShardIterator", gi(json!({"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": b["SequenceNumber"]})))
            .await;
        let r = get(&e, at["ShardIterator"].as_str().unwrap(), None).await;
        assert_eq!(r["Records"].as_array().unwrap().len(), 2);
        assert_eq!(r["Records"][0]["SequenceNumber"], b["SequenceNumber"]);
        let after = e
            .ok("GetShardIterator", gi(json!({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": b["SequenceNumber"]})))
            .await;
        let r = get(&e, after["ShardIterator"].as_str().unwrap(), None).await;
        assert_eq!(r["Records"].as_array().unwrap().len(), 1);
        assert_eq!(r["Records"][0]["SequenceNumber"], c["SequenceNumber"]);
        // AT_TIMESTAMP between a and b (b arrived 2 s of service time later).
        let ta = get(&e, &e.iterator("s", sh, "TRIM_HORIZON").await, None).await["Records"][0]
            ["ApproximateArrivalTimestamp"]
            .as_f64()
            .unwrap();
        let ts = e
            .ok(
                "GetShardIterator",
                gi(json!({"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": ta + 1.0})),
            )
            .await;
        let r = get(&e, ts["ShardIterator"].as_str().unwrap(), None).await;
        assert_eq!(r["Records"][0]["SequenceNumber"], b["SequenceNumber"]);
        let ts = e
            .ok(
                "GetShardIterator",
                gi(json!({"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": ta})),
            )
            .await;
        let r = get(&e, ts["ShardIterator"].as_str().unwrap(), None).await;
        assert_eq!(r["Records"][0]["SequenceNumber"], a["SequenceNumber"]);
        // ISO-8601 timestamps are accepted too.
        let ts = e
            .ok("GetShardIterator", gi(json!({"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": "2001-01-01T00:00:00Z"})))
            .await;
        let r = get(&e, ts["ShardIterator"].as_str().unwrap(), None).await;
        assert_eq!(r["Records"].as_array().unwrap().len(), 3);
        // LATEST sees only what comes after.
        let latest = e.iterator("s", sh, "LATEST").await;
        assert_eq!(get(&e, &latest, None).await["Records"], json!([]));
        let d = put(&e, "s", "a", b"4").await;
        let r = get(&e, &latest, None).await;
        assert_eq!(r["Records"][0]["SequenceNumber"], d["SequenceNumber"]);

        // Errors.
        let other = put(&e, "s", "b", b"x").await;
        assert_eq!(other["ShardId"], "shardId-000000000001");
        let err = e
            .err("GetShardIterator", gi(json!({"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": other["SequenceNumber"]})))
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        assert_eq!(err.message, "Invalid StartingSequenceNumber. It encodes shardId-000000000001, while it was used in a call to a shard with shardId-000000000000");
        let err = e
            .err("GetShardIterator", gi(json!({"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": "1234"})))
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        assert!(err.message.ends_with("is invalid."), "{}", err.message);
        let err = e
            .err("GetShardIterator", gi(json!({"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": "abc"})))
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .err(
                "GetShardIterator",
                gi(json!({"ShardIteratorType": "AT_SEQUENCE_NUMBER"})),
            )
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        let err = e
            .err("GetShardIterator", gi(json!({"ShardIteratorType": "LATEST", "StartingSequenceNumber": a["SequenceNumber"]})))
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        let err = e
            .err(
                "GetShardIterator",
                gi(json!({"ShardIteratorType": "AT_TIMESTAMP"})),
            )
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        let err = e
            .err(
                "GetShardIterator",
                gi(json!({"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": 9.9e10})),
            )
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        let err = e
            .err(
                "GetShardIterator",
                gi(json!({"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": true})),
            )
            .await;
        assert_eq!(err.code, "SerializationException");
        let err = e
            .err(
                "GetShardIterator",
                gi(json!({"ShardIteratorType": "SOMEWHERE"})),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .err(
                "GetShardIterator",
                json!({"StreamName": "s", "ShardId": "shardId-000000000009", "ShardIteratorType": "LATEST"}),
            )
            .await;
        assert_eq!(err.code, "ResourceNotFoundException");
        assert_eq!(
            err.message,
            "Shard shardId-000000000009 in stream s under account 000000000000 does not exist"
        );
        let err = e
            .err(
                "GetShardIterator",
                json!({"StreamName": "zz", "ShardId": sh, "ShardIteratorType": "LATEST"}),
            )
            .await;
        assert_eq!(err.code, "ResourceNotFoundException");

        // A sequence number from a previous incarnation of the stream.
        e.ok("DeleteStream", json!({"StreamName": "s"})).await;
        e.create("s", 2).await;
        let err = e
            .err("GetShardIterator", gi(json!({"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": a["SequenceNumber"]})))
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        assert!(err
            .message
            .ends_with("because it did not come from this stream."));
        // Old iterators do not read the new incarnation.
        let err = e.err("GetRecords", json!({"ShardIterator": latest})).await;
        assert_eq!(err.code, "ResourceNotFoundException");
    }

    #[tokio::test]
    async fn iterators_expire_and_are_checked() {
        let e = Env::new();
        e.create("s", 1).await;
        let it = e
            .iterator("s", "shardId-000000000000", "TRIM_HORIZON")
            .await;
        assert!(it.len() <= 512);
        get(&e, &it, None).await;
        e.svc.advance_clock(300_001);
        let err = e.err("GetRecords", json!({"ShardIterator": it})).await;
        assert_eq!(err.code, "ExpiredIteratorException");
        assert!(
            err.message
                .starts_with("Iterator expired. The iterator was created at time "),
            "{}",
            err.message
        );
        assert!(err.message.contains(" UTC "));
        let err = e
            .err(
                "GetRecords",
                json!({"ShardIterator": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}),
            )
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        assert_eq!(err.message, "Invalid ShardIterator.");
        let err = e
            .err("GetRecords", json!({"ShardIterator": "not base64!"}))
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        let err = e.err("GetRecords", json!({})).await;
        assert_eq!(err.code, "ValidationException");
        let fresh = e
            .iterator("s", "shardId-000000000000", "TRIM_HORIZON")
            .await;
        let err = e
            .err("GetRecords", json!({"ShardIterator": fresh, "Limit": 0}))
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .err(
                "GetRecords",
                json!({"ShardIterator": fresh, "Limit": 10001}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .err(
                "GetRecords",
                json!({"ShardIterator": fresh, "StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/other"}),
            )
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
    }

    #[tokio::test]
    async fn retention_hides_expired_records() {
        let e = Env::new();
        e.create("s", 1).await;
        put(&e, "s", "a", b"old").await;
        e.svc.advance_clock(23 * 3_600_000);
        put(&e, "s", "a", b"new").await;
        e.svc.advance_clock(2 * 3_600_000);
        e.svc.enforce_retention().unwrap();
        let it = e
            .iterator("s", "shardId-000000000000", "TRIM_HORIZON")
            .await;
        let r = get(&e, &it, None).await;
        assert_eq!(r["Records"].as_array().unwrap().len(), 1);
        assert_eq!(r["Records"][0]["Data"], enc(b"new"));
        e.svc.advance_clock(24 * 3_600_000);
        let it = e
            .iterator("s", "shardId-000000000000", "TRIM_HORIZON")
            .await;
        assert_eq!(get(&e, &it, None).await["Records"], json!([]));
    }

    #[tokio::test]
    async fn throughput_limits() {
        let e = Env::new();
        e.create("s", 1).await;
        e.svc.freeze_clock();
        e.svc.set_limits(Some(Limits {
            records_in_per_sec: 3,
            bytes_in_per_sec: 1 << 20,
            bytes_out_per_sec: 2 << 20,
            reads_per_sec: 2,
        }));
        put(&e, "s", "a", b"1").await;
        let recs: Vec<Value> = (0..3)
            .map(|_| json!({"PartitionKey": "a", "Data": ""}))
            .collect();
        let r = e
            .ok("PutRecords", json!({"StreamName": "s", "Records": recs}))
            .await;
        assert_eq!(r["FailedRecordCount"], 1);
        assert_eq!(
            r["Records"][2]["ErrorCode"],
            "ProvisionedThroughputExceededException"
        );
        assert!(r["Records"][2]["ErrorMessage"]
            .as_str()
            .unwrap()
            .starts_with("Rate exceeded for shard shardId-000000000000"));
        assert!(r["Records"][2]["SequenceNumber"].is_null());
        let err = e
            .err(
                "PutRecord",
                json!({"StreamName": "s", "PartitionKey": "a", "Data": ""}),
            )
            .await;
        assert_eq!(err.code, "ProvisionedThroughputExceededException");
        let it = e
            .iterator("s", "shardId-000000000000", "TRIM_HORIZON")
            .await;
        get(&e, &it, None).await;
        get(&e, &it, None).await;
        let err = e.err("GetRecords", json!({"ShardIterator": it})).await;
        assert_eq!(err.code, "ProvisionedThroughputExceededException");
        // The next second has fresh budgets.
        e.svc.advance_clock(1_000);
        let r = get(&e, &it, None).await;
        assert_eq!(r["Records"].as_array().unwrap().len(), 3);
        put(&e, "s", "a", b"1").await;
        // Off again.
        e.svc.set_limits(None);
        for _ in 0..5 {
            put(&e, "s", "a", b"1").await;
        }
    }

    #[tokio::test]
    async fn encrypted_stream_marks_records() {
        let e = Env::new();
        e.create("s", 1).await;
        e.ok(
            "StartStreamEncryption",
            json!({"StreamName": "s", "EncryptionType": "KMS", "KeyId": "k"}),
        )
        .await;
        let r = put(&e, "s", "a", b"1").await;
        assert_eq!(r["EncryptionType"], "KMS");
        let it = e
            .iterator("s", "shardId-000000000000", "TRIM_HORIZON")
            .await;
        let r = get(&e, &it, None).await;
        assert_eq!(r["Records"][0]["EncryptionType"], "KMS");
    }
}

#[cfg(test)]
mod retention_on_disk {
    use super::super::test_util::{b64 as enc, Env};
    use serde_json::json;

    /// Expired records leave the disk in whole segments, and TRIM_HORIZON moves past them.
    #[tokio::test]
    async fn retention_drops_whole_segments() {
        let e = Env::new();
        e.create("s", 1).await;
        for i in 0..10 {
            e.ok("PutRecord", json!({"StreamName": "s", "PartitionKey": "a", "Data": enc(format!("{i}").as_bytes())}))
                .await;
        }
        let s = e
            .svc
            .stream(&super::Target {
                account: "000000000000".into(),
                region: "us-east-1".into(),
                name: "s".into(),
            })
            .unwrap();
        let rt = e.svc.shard_rt(&s, 0).unwrap();
        assert_eq!(rt.log.start_offset(), 0);
        e.svc.advance_clock(25 * 3_600_000);
        e.svc.enforce_retention().unwrap();
        assert_eq!(rt.log.start_offset(), 10, "the expired segment is gone");
        e.ok(
            "PutRecord",
            json!({"StreamName": "s", "PartitionKey": "a", "Data": enc(b"fresh")}),
        )
        .await;
        let it = e
            .iterator("s", "shardId-000000000000", "TRIM_HORIZON")
            .await;
        let r = e.ok("GetRecords", json!({"ShardIterator": it})).await;
        assert_eq!(r["Records"].as_array().unwrap().len(), 1);
        assert_eq!(r["Records"][0]["Data"], enc(b"fresh"));
    }
}
