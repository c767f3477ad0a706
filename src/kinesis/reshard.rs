//! Resharding: SplitShard, MergeShards and UpdateShardCount (UNIFORM_SCALING). Parents are
//! closed at the offset past their last record (taken under their write gate, so no
//! acknowledged record lands beyond it) and children open with lineage. UpdateShardCount is a
//! sequence of splits then merges, as AWS does, so every shard has at most two parents; the
//! short-lived intermediate shards are created closed and empty.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::context::RequestContext;
use crate::error::ServiceResult;
use crate::service::parse_input;

use super::data::unknown_shard_id;
use super::error::{invalid_argument, limit_exceeded, validation};
use super::keys;
use super::state::{Closed, ShardMeta, StreamMeta};
use super::streams::{shard_limit, shard_limit_error};
use super::validate::Checks;
use super::{Kinesis, StreamSel, Target};

/// Closes `ix` (end offset from `ends`, 0 for shards created within this request).
fn close(s: &mut StreamMeta, ix: u32, ends: &BTreeMap<u32, u64>, now: u64) {
    if let Some(sh) = s.shards.get_mut(ix as usize) {
        sh.closed = Some(Closed {
            end_offset: ends.get(&ix).copied().unwrap_or(0),
            closed_ms: now,
        });
    }
}

fn add_shard(
    s: &mut StreamMeta,
    parent: u32,
    adjacent: Option<u32>,
    start: u128,
    end: u128,
    now: u64,
) -> u32 {
    let index = s.shards.len() as u32;
    s.shards.push(ShardMeta {
        index,
        parent: Some(parent),
        adjacent_parent: adjacent,
        start_key: start.to_string(),
        end_key: end.to_string(),
        created_ms: now,
        closed: None,
        epochs: Vec::new(),
    });
    index
}

/// Splits open shard `ix` at `at` (start of the upper child); returns (lower, upper).
fn split(s: &mut StreamMeta, ix: u32, at: u128, ends: &BTreeMap<u32, u64>, now: u64) -> (u32, u32) {
    let (start, end) = {
        let sh = &s.shards[ix as usize];
        (sh.start(), sh.end())
    };
    close(s, ix, ends, now);
    let lo = add_shard(s, ix, None, start, at - 1, now);
    let hi = add_shard(s, ix, None, at, end, now);
    (lo, hi)
}

/// Merges open shards `a` and `b` (b adjacent above a unless `b` is below); returns the child.
fn merge(s: &mut StreamMeta, a: u32, b: u32, ends: &BTreeMap<u32, u64>, now: u64) -> u32 {
    let (sa, ea) = (s.shards[a as usize].start(), s.shards[a as usize].end());
    let (sb, eb) = (s.shards[b as usize].start(), s.shards[b as usize].end());
    close(s, a, ends, now);
    close(s, b, ends, now);
    add_shard(s, a, Some(b), sa.min(sb), ea.max(eb), now)
}

impl Kinesis {
    /// Closes the write gates of `parents` and returns their end offsets; the guards must be
    /// held until the catalog records the reshard.
    async fn close_gates(
        &self,
        s: &StreamMeta,
        parents: &[u32],
    ) -> ServiceResult<(Vec<std::sync::Arc<super::ShardRt>>, BTreeMap<u32, u64>)> {
        let mut sorted = parents.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut rts = Vec::new();
        let mut ends = BTreeMap::new();
        for ix in sorted {
            let rt = self.shard_rt(s, ix)?;
            {
                let mut g = rt.gate.write().await;
                *g = true;
            }
            ends.insert(ix, rt.log.next_offset());
            rts.push(rt);
        }
        Ok((rts, ends))
    }

    /// Reopens gates after a failed catalog write.
    async fn reopen_gates(rts: &[std::sync::Arc<super::ShardRt>]) {
        for rt in rts {
            *rt.gate.write().await = false;
        }
    }

    /// Resolves a client-supplied shard id before the stream is looked up, as AWS does: one that
    /// names no shard index fails even when the stream does not exist.
    pub(crate) fn shard_index(id: &str, t: &Target) -> ServiceResult<u32> {
        keys::parse_shard_id(id).ok_or_else(|| unknown_shard_id(id, &t.name, &t.account))
    }

    fn open_shard(s: &StreamMeta, ix: u32) -> ServiceResult<&ShardMeta> {
        s.shard(ix)
            .ok_or_else(|| unknown_shard_id(&keys::shard_id(ix), &s.name, &s.account))
    }

    fn reject_on_demand(s: &StreamMeta) -> ServiceResult<()> {
        if s.on_demand {
            return Err(validation(format!(
                "Request is invalid. Stream {} under account {} is in On-Demand mode.",
                s.name, s.account
            )));
        }
        Ok(())
    }

    pub(crate) async fn split_shard(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(flatten)]
            sel: StreamSel,
            shard_to_split: Option<String>,
            new_starting_hash_key: Option<String>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        c.required(&i.shard_to_split, "shardToSplit")
            .name(i.shard_to_split.as_deref(), "shardToSplit", 128)
            .required(&i.new_starting_hash_key, "newStartingHashKey");
        if let Some(k) = i.new_starting_hash_key.as_deref() {
            let ok = k == "0"
                || (!k.starts_with('0') && k.len() <= 39 && k.bytes().all(|b| b.is_ascii_digit()));
            c.pattern(Some(k), "newStartingHashKey", ok, "0|([1-9]\\d{0,38})");
        }
        let t = self.target(ctx, &i.sel, &mut c)?;
        let ix = Self::shard_index(i.shard_to_split.as_deref().unwrap_or_default(), &t)?;
        let key_str = i.new_starting_hash_key.unwrap_or_default();
        let _w = self.write_lock.lock().await;
        // A stamp, not the clock: children's creation times must sort below their first
        // record's epoch, which AFTER_SEQUENCE_NUMBER of their StartingSequenceNumber relies on.
        let now = self.unique_stamp();
        let mut s = self.active_stream(&t)?;
        Self::reject_on_demand(&s)?;
        let sh = Self::open_shard(&s, ix)?.clone();
        let name = keys::shard_id(sh.index);
        if !sh.is_open() {
            return Err(invalid_argument(format!(
                "Shard {name} in stream {} under account {} has already been merged or split, and thus is not eligible for merging or splitting.",
                s.name, s.account
            )));
        }
        let key = keys::parse_hash_key(&key_str);
        let valid = key.is_some_and(|k| k > sh.start().saturating_add(1) && k < sh.end());
        let Some(key) = key.filter(|_| valid) else {
            return Err(invalid_argument(format!(
                "NewStartingHashKey {key_str} used in SplitShard() on shard {name} in stream {} under account {} is not both greater than one plus the shard's StartingHashKey {} and less than the shard's EndingHashKey {}.",
                s.name, s.account, sh.start_key, sh.end_key
            )));
        };
        let open = self
            .catalog
            .read()
            .open_shard_count(&s.account, &s.region, now);
        if open + 1 > shard_limit(&s.region) {
            return Err(shard_limit_error(&s.account, &s.region, open, 1));
        }
        let (rts, ends) = self.close_gates(&s, &[sh.index]).await?;
        split(&mut s, sh.index, key, &ends, now);
        self.mark_updating(&mut s);
        if let Err(e) = self.put_stream(s).await {
            Self::reopen_gates(&rts).await;
            return Err(e);
        }
        // Subscribers waiting at a parent's tip now see its end.
        for rt in &rts {
            rt.appended.notify_waiters();
        }
        Ok(json!({}))
    }

    pub(crate) async fn merge_shards(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(flatten)]
            sel: StreamSel,
            shard_to_merge: Option<String>,
            adjacent_shard_to_merge: Option<String>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        c.required(&i.shard_to_merge, "shardToMerge")
            .name(i.shard_to_merge.as_deref(), "shardToMerge", 128)
            .required(&i.adjacent_shard_to_merge, "adjacentShardToMerge")
            .name(
                i.adjacent_shard_to_merge.as_deref(),
                "adjacentShardToMerge",
                128,
            );
        let t = self.target(ctx, &i.sel, &mut c)?;
        let ia = Self::shard_index(i.shard_to_merge.as_deref().unwrap_or_default(), &t)?;
        let ib = Self::shard_index(i.adjacent_shard_to_merge.as_deref().unwrap_or_default(), &t)?;
        let _w = self.write_lock.lock().await;
        // A stamp, not the clock: children's creation times must sort below their first
        // record's epoch, which AFTER_SEQUENCE_NUMBER of their StartingSequenceNumber relies on.
        let now = self.unique_stamp();
        let mut s = self.active_stream(&t)?;
        Self::reject_on_demand(&s)?;
        let a = Self::open_shard(&s, ia)?.clone();
        let b = Self::open_shard(&s, ib)?.clone();
        let (na, nb) = (keys::shard_id(a.index), keys::shard_id(b.index));
        for sh in [&a, &b] {
            if !sh.is_open() {
                return Err(invalid_argument(format!(
                    "Shard {} in stream {} under account {} has already been merged or split, and thus is not eligible for merging or splitting.",
                    keys::shard_id(sh.index), s.name, s.account
                )));
            }
        }
        // Order matters: AdjacentShardToMerge must be the one directly above ShardToMerge.
        let adjacent = a.index != b.index && a.end().checked_add(1) == Some(b.start());
        if !adjacent {
            return Err(invalid_argument(format!(
                "Shards {na} and {nb} in stream {} under account {} are not an adjacent pair of shards eligible for merging",
                s.name, s.account
            )));
        }
        let (rts, ends) = self.close_gates(&s, &[a.index, b.index]).await?;
        merge(&mut s, a.index, b.index, &ends, now);
        self.mark_updating(&mut s);
        if let Err(e) = self.put_stream(s).await {
            Self::reopen_gates(&rts).await;
            return Err(e);
        }
        // Subscribers waiting at a parent's tip now see its end.
        for rt in &rts {
            rt.appended.notify_waiters();
        }
        Ok(json!({}))
    }

    pub(crate) async fn update_shard_count(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(flatten)]
            sel: StreamSel,
            target_shard_count: Option<i64>,
            scaling_type: Option<String>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        c.required(&i.target_shard_count, "targetShardCount")
            .range(i.target_shard_count, "targetShardCount", 1, None)
            .required(&i.scaling_type, "scalingType")
            .one_of(
                i.scaling_type.as_deref(),
                "scalingType",
                &["UNIFORM_SCALING"],
            );
        let t = self.target(ctx, &i.sel, &mut c)?;
        let target = i.target_shard_count.unwrap_or(1);
        let _w = self.write_lock.lock().await;
        // A stamp, not the clock: children's creation times must sort below their first
        // record's epoch, which AFTER_SEQUENCE_NUMBER of their StartingSequenceNumber relies on.
        let now = self.unique_stamp();
        let mut s = self.active_stream(&t)?;
        Self::reject_on_demand(&s)?;
        let mut open: Vec<ShardMeta> = s.open_shards().cloned().collect();
        open.sort_by_key(|sh| sh.start());
        let current = open.len() as i64;
        if target > current * 2 || target > 10000 {
            return Err(limit_exceeded(format!(
                "UpdateShardCount cannot scale up over double your current open shard count. Current open shard count: {current}, Target shard count: {target}"
            )));
        }
        if target * 2 < current {
            return Err(limit_exceeded(format!(
                "UpdateShardCount cannot scale down below half your current open shard count. Current open shard count: {current}, Target shard count: {target}"
            )));
        }
        let ranges = keys::even_ranges(target as u32);
        let touched: Vec<u32> = open
            .iter()
            .filter(|sh| !ranges.contains(&(sh.start(), sh.end())))
            .map(|sh| sh.index)
            .collect();
        let new_open = current as usize - touched.len()
            + ranges
                .iter()
                .filter(|r| !open.iter().any(|sh| (sh.start(), sh.end()) == **r))
                .count();
        let account_open = self
            .catalog
            .read()
            .open_shard_count(&s.account, &s.region, now);
        if account_open - current as usize + new_open > shard_limit(&s.region) {
            return Err(shard_limit_error(
                &s.account,
                &s.region,
                account_open,
                new_open.saturating_sub(current as usize) as i64,
            ));
        }
        let out = json!({
            "StreamName": s.name,
            "StreamARN": s.arn(),
            "CurrentShardCount": current,
            "TargetShardCount": target,
        });
        if touched.is_empty() {
            return Ok(out);
        }
        let (rts, ends) = self.close_gates(&s, &touched).await?;
        // Splits: cut every open shard at the target boundaries strictly inside it.
        let mut pieces: Vec<u32> = Vec::new();
        for sh in &open {
            if !touched.contains(&sh.index) {
                pieces.push(sh.index);
                continue;
            }
            let mut piece = sh.index;
            for (start, _) in &ranges {
                if *start > sh.start() && *start <= sh.end() {
                    let (lo, hi) = split(&mut s, piece, *start, &ends, now);
                    pieces.push(lo);
                    piece = hi;
                }
            }
            pieces.push(piece);
        }
        // Merges: fold the pieces inside each target range left to right.
        for (start, end) in &ranges {
            let mut inside: Vec<u32> = pieces
                .iter()
                .copied()
                .filter(|ix| {
                    let sh = &s.shards[*ix as usize];
                    sh.start() >= *start && sh.end() <= *end
                })
                .collect();
            inside.sort_by_key(|ix| s.shards[*ix as usize].start());
            let Some(&first) = inside.first() else {
                continue;
            };
            let mut acc = first;
            for next in inside.into_iter().skip(1) {
                acc = merge(&mut s, acc, next, &ends, now);
            }
        }
        self.mark_updating(&mut s);
        if let Err(e) = self.put_stream(s).await {
            Self::reopen_gates(&rts).await;
            return Err(e);
        }
        // Subscribers waiting at a parent's tip now see its end.
        for rt in &rts {
            rt.appended.notify_waiters();
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{b64 as enc, Env};
    use serde_json::{json, Value};

    async fn shards(e: &Env, name: &str) -> Vec<Value> {
        e.ok("ListShards", json!({"StreamName": name})).await["Shards"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn open(sh: &[Value]) -> Vec<&Value> {
        sh.iter()
            .filter(|s| s["SequenceNumberRange"]["EndingSequenceNumber"].is_null())
            .collect()
    }

    async fn put(e: &Env, name: &str, pk: &str) -> Value {
        e.ok(
            "PutRecord",
            json!({"StreamName": name, "PartitionKey": pk, "Data": enc(pk.as_bytes())}),
        )
        .await
    }

    async fn drain(e: &Env, name: &str, shard: &str) -> Value {
        let it = e.iterator(name, shard, "TRIM_HORIZON").await;
        e.ok("GetRecords", json!({"ShardIterator": it})).await
    }

    #[tokio::test]
    async fn split_closes_parent_and_routes_to_children() {
        let e = Env::new();
        e.create("s", 1).await;
        let before = put(&e, "s", "a").await;
        let latest = e.iterator("s", "shardId-000000000000", "LATEST").await;
        let mid = (1u128 << 127).to_string();
        e.ok(
            "SplitShard",
            json!({"StreamName": "s", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": mid}),
        )
        .await;
        let sh = shards(&e, "s").await;
        assert_eq!(sh.len(), 3);
        assert!(sh[0]["SequenceNumberRange"]["EndingSequenceNumber"].is_string());
        assert_eq!(sh[1]["ParentShardId"], "shardId-000000000000");
        assert_eq!(sh[2]["ParentShardId"], "shardId-000000000000");
        assert!(sh[1]["AdjacentParentShardId"].is_null());
        assert_eq!(sh[1]["HashKeyRange"]["StartingHashKey"], "0");
        assert_eq!(
            sh[1]["HashKeyRange"]["EndingHashKey"],
            ((1u128 << 127) - 1).to_string()
        );
        assert_eq!(sh[2]["HashKeyRange"]["StartingHashKey"], mid);
        let s = e
            .ok("DescribeStreamSummary", json!({"StreamName": "s"}))
            .await;
        assert_eq!(s["StreamDescriptionSummary"]["OpenShardCount"], 2);

        // New records go to the children, with larger sequence numbers.
        let a = put(&e, "s", "a").await;
        assert_eq!(a["ShardId"], "shardId-000000000001");
        assert!(a["SequenceNumber"].as_str().unwrap() > before["SequenceNumber"].as_str().unwrap());
        let b = put(&e, "s", "b").await;
        assert_eq!(b["ShardId"], "shardId-000000000002");

        // The parent still serves its record, then ends with its children.
        let r = drain(&e, "s", "shardId-000000000000").await;
        assert_eq!(r["Records"].as_array().unwrap().len(), 1);
        assert_eq!(r["Records"][0]["SequenceNumber"], before["SequenceNumber"]);
        assert!(r["NextShardIterator"].is_null());
        let children = r["ChildShards"].as_array().unwrap();
        assert_eq!(children.len(), 2);
        assert_eq!(children[0]["ShardId"], "shardId-000000000001");
        assert_eq!(children[0]["ParentShards"], json!(["shardId-000000000000"]));
        // An iterator taken at LATEST before the split reaches the end too.
        let r = e.ok("GetRecords", json!({"ShardIterator": latest})).await;
        assert_eq!(r["Records"], json!([]));
        assert!(r["NextShardIterator"].is_null());
        assert_eq!(r["ChildShards"].as_array().unwrap().len(), 2);
        // LATEST on a closed shard: already at the end.
        let it = e.iterator("s", "shardId-000000000000", "LATEST").await;
        let r = e.ok("GetRecords", json!({"ShardIterator": it})).await;
        assert!(r["NextShardIterator"].is_null());
        // AT the closed shard's EndingSequenceNumber is accepted.
        let end = sh[0]["SequenceNumberRange"]["EndingSequenceNumber"].clone();
        e.ok(
            "GetShardIterator",
            json!({"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": end}),
        )
        .await;
        assert_eq!(
            drain(&e, "s", "shardId-000000000001").await["Records"][0]["Data"],
            enc(b"a")
        );

        // Errors.
        let split = |shard: &str, key: &str| json!({"StreamName": "s", "ShardToSplit": shard, "NewStartingHashKey": key});
        let err = e
            .err("SplitShard", split("shardId-000000000000", "5"))
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        let err = e
            .err("SplitShard", split("shardId-000000000001", "1"))
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        assert!(
            err.message.contains("is not both greater than one plus"),
            "{}",
            err.message
        );
        let err = e
            .err(
                "SplitShard",
                split("shardId-000000000001", &((1u128 << 127) - 1).to_string()),
            )
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        let err = e
            .err("SplitShard", split("shardId-000000000009", "5"))
            .await;
        assert_eq!(err.code, "ResourceNotFoundException");
        let err = e
            .err("SplitShard", split("shardId-000000000001", "x"))
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .err(
                "SplitShard",
                json!({"StreamName": "s", "NewStartingHashKey": "5"}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e.err("SplitShard", json!({"StreamName": "zz", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "5"})).await;
        assert_eq!(err.code, "ResourceNotFoundException");
    }

    /// A reshard leaves the stream UPDATING until the transition time has passed; another
    /// reshard meanwhile is refused as AWS refuses it, and is accepted once ACTIVE again.
    #[tokio::test]
    async fn reshards_are_refused_while_the_stream_is_updating() {
        let e = Env::with_config(|c| c.kinesis_transition_ms = 10_000);
        e.create("u", 2).await;
        e.svc.advance_clock(10_000);
        let mid = (1u128 << 126).to_string();
        let split = json!({"StreamName": "u", "ShardToSplit": "shardId-000000000000",
                           "NewStartingHashKey": mid});
        e.ok("SplitShard", split.clone()).await;
        let d = e
            .ok("DescribeStreamSummary", json!({"StreamName": "u"}))
            .await;
        assert_eq!(d["StreamDescriptionSummary"]["StreamStatus"], "UPDATING");
        let busy = "Stream u under account 000000000000 not ACTIVE, instead in state UPDATING";
        for (op, input) in [
            (
                "SplitShard",
                json!({"StreamName": "u", "ShardToSplit": "shardId-000000000001",
                       "NewStartingHashKey": (3u128 << 126).to_string()}),
            ),
            (
                "MergeShards",
                json!({"StreamName": "u", "ShardToMerge": "shardId-000000000002",
                       "AdjacentShardToMerge": "shardId-000000000003"}),
            ),
            (
                "UpdateShardCount",
                json!({"StreamName": "u", "TargetShardCount": 4,
                       "ScalingType": "UNIFORM_SCALING"}),
            ),
        ] {
            let err = e.err(op, input).await;
            assert_eq!(err.code, "ResourceInUseException", "{op}");
            assert_eq!(err.message, busy, "{op}");
        }
        // Records still go in meanwhile.
        put(&e, "u", "a").await;
        e.svc.advance_clock(10_000);
        e.ok(
            "MergeShards",
            json!({"StreamName": "u", "ShardToMerge": "shardId-000000000002",
                   "AdjacentShardToMerge": "shardId-000000000003"}),
        )
        .await;
    }

    #[tokio::test]
    async fn merge_adjacent_shards() {
        let e = Env::new();
        e.create("m", 3).await;
        put(&e, "m", "a").await;
        let merge = |a: &str, b: &str| json!({"StreamName": "m", "ShardToMerge": a, "AdjacentShardToMerge": b});
        let err = e
            .err(
                "MergeShards",
                merge("shardId-000000000000", "shardId-000000000002"),
            )
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        assert!(err.message.contains("not an adjacent pair"));
        let err = e
            .err(
                "MergeShards",
                merge("shardId-000000000000", "shardId-000000000000"),
            )
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        let err = e
            .err(
                "MergeShards",
                merge("shardId-000000000000", "shardId-000000000007"),
            )
            .await;
        assert_eq!(err.code, "ResourceNotFoundException");
        // kinesalite's AWS-checked suite ("adjacency is inverted"): the adjacent shard must be
        // the one above, so the reverse order is refused.
        let err = e
            .err(
                "MergeShards",
                merge("shardId-000000000001", "shardId-000000000000"),
            )
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        assert_eq!(
            err.message,
            "Shards shardId-000000000001 and shardId-000000000000 in stream m under account 000000000000 are not an adjacent pair of shards eligible for merging"
        );
        e.ok(
            "MergeShards",
            merge("shardId-000000000000", "shardId-000000000001"),
        )
        .await;
        let sh = shards(&e, "m").await;
        assert_eq!(sh.len(), 4);
        assert_eq!(sh[3]["ShardId"], "shardId-000000000003");
        assert_eq!(sh[3]["ParentShardId"], "shardId-000000000000");
        assert_eq!(sh[3]["AdjacentParentShardId"], "shardId-000000000001");
        assert_eq!(sh[3]["HashKeyRange"]["StartingHashKey"], "0");
        assert_eq!(
            sh[3]["HashKeyRange"]["EndingHashKey"],
            sh[1]["HashKeyRange"]["EndingHashKey"]
        );
        assert_eq!(open(&sh).len(), 2);
        let err = e
            .err(
                "MergeShards",
                merge("shardId-000000000000", "shardId-000000000001"),
            )
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        assert!(err.message.contains("already been merged or split"));
        let r = drain(&e, "m", "shardId-000000000000").await;
        assert_eq!(r["ChildShards"][0]["ShardId"], "shardId-000000000003");
        assert_eq!(
            r["ChildShards"][0]["ParentShards"],
            json!(["shardId-000000000000", "shardId-000000000001"])
        );
        assert_eq!(put(&e, "m", "a").await["ShardId"], "shardId-000000000003");
    }

    fn check_uniform(sh: &[Value], n: u32) {
        let o = open(sh);
        assert_eq!(o.len(), n as usize);
        let ranges = crate::kinesis::keys::even_ranges(n);
        let mut got: Vec<(u128, u128)> = o
            .iter()
            .map(|s| {
                (
                    s["HashKeyRange"]["StartingHashKey"]
                        .as_str()
                        .unwrap()
                        .parse()
                        .unwrap(),
                    s["HashKeyRange"]["EndingHashKey"]
                        .as_str()
                        .unwrap()
                        .parse()
                        .unwrap(),
                )
            })
            .collect();
        got.sort();
        assert_eq!(got, ranges);
    }

    #[tokio::test]
    async fn update_shard_count_uniform_scaling() {
        let e = Env::new();
        e.create("u", 2).await;
        let usc = |n: i64| json!({"StreamName": "u", "TargetShardCount": n, "ScalingType": "UNIFORM_SCALING"});
        let r = e.ok("UpdateShardCount", usc(4)).await;
        assert_eq!(r["CurrentShardCount"], 2);
        assert_eq!(r["TargetShardCount"], 4);
        assert_eq!(r["StreamName"], "u");
        check_uniform(&shards(&e, "u").await, 4);
        e.ok("UpdateShardCount", usc(3)).await;
        let sh = shards(&e, "u").await;
        check_uniform(&sh, 3);
        // Every shard has at most two parents, and parents exist.
        let ids: Vec<&str> = sh.iter().map(|s| s["ShardId"].as_str().unwrap()).collect();
        for s in &sh {
            for k in ["ParentShardId", "AdjacentParentShardId"] {
                if let Some(p) = s[k].as_str() {
                    assert!(ids.contains(&p), "{p}");
                }
            }
        }
        e.ok("UpdateShardCount", usc(2)).await;
        check_uniform(&shards(&e, "u").await, 2);
        // Same count, already uniform: no change.
        let before = shards(&e, "u").await.len();
        e.ok("UpdateShardCount", usc(2)).await;
        assert_eq!(shards(&e, "u").await.len(), before);
        for pk in ["a", "b", "c", "d"] {
            put(&e, "u", pk).await;
        }

        let err = e.err("UpdateShardCount", usc(5)).await;
        assert_eq!(err.code, "LimitExceededException");
        assert_eq!(
            err.message,
            "UpdateShardCount cannot scale up over double your current open shard count. Current open shard count: 2, Target shard count: 5"
        );
        let err = e.err("UpdateShardCount", usc(0)).await;
        assert_eq!(err.code, "ValidationException");
        e.ok("UpdateShardCount", usc(1)).await;
        let err = e
            .err(
                "UpdateShardCount",
                json!({"StreamName": "u", "TargetShardCount": 2, "ScalingType": "X"}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
        e.create("big", 4).await;
        let err = e
            .err("UpdateShardCount", json!({"StreamName": "big", "TargetShardCount": 1, "ScalingType": "UNIFORM_SCALING"}))
            .await;
        assert_eq!(err.code, "LimitExceededException");
        assert_eq!(
            err.message,
            "UpdateShardCount cannot scale down below half your current open shard count. Current open shard count: 4, Target shard count: 1"
        );
        e.ok(
            "CreateStream",
            json!({"StreamName": "od", "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}),
        )
        .await;
        let err = e
            .err("UpdateShardCount", json!({"StreamName": "od", "TargetShardCount": 5, "ScalingType": "UNIFORM_SCALING"}))
            .await;
        assert_eq!(err.code, "ValidationException");
        assert_eq!(
            err.message,
            "Request is invalid. Stream od under account 000000000000 is in On-Demand mode."
        );
    }

    /// MaxResults accepts up to 10000, but "if you specify a value greater than 1000, at most
    /// 1000 results are returned".
    #[tokio::test]
    async fn list_shards_returns_at_most_1000() {
        let e = Env::new();
        e.create("big", 250).await;
        for n in [500, 250, 500] {
            e.ok(
                "UpdateShardCount",
                json!({"StreamName": "big", "TargetShardCount": n, "ScalingType": "UNIFORM_SCALING"}),
            )
            .await;
        }
        let r = e
            .ok(
                "ListShards",
                json!({"StreamName": "big", "MaxResults": 5000}),
            )
            .await;
        assert_eq!(r["Shards"].as_array().unwrap().len(), 1000);
        assert!(r["NextToken"].is_string());
    }

    /// SplitShard and MergeShards are "only supported for the data streams with the provisioned
    /// capacity mode"; they fail as UpdateShardCount does.
    #[tokio::test]
    async fn split_and_merge_refuse_on_demand_streams() {
        let e = Env::new();
        e.ok(
            "CreateStream",
            json!({"StreamName": "od", "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}),
        )
        .await;
        let msg = "Request is invalid. Stream od under account 000000000000 is in On-Demand mode.";
        let err = e
            .err(
                "SplitShard",
                json!({"StreamName": "od", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "1000"}),
            )
            .await;
        assert_eq!(
            (&*err.code, err.message.as_str()),
            ("ValidationException", msg)
        );
        let err = e
            .err(
                "MergeShards",
                json!({"StreamName": "od", "ShardToMerge": "shardId-000000000000", "AdjacentShardToMerge": "shardId-000000000001"}),
            )
            .await;
        assert_eq!(
            (&*err.code, err.message.as_str()),
            ("ValidationException", msg)
        );
        assert_eq!(shards(&e, "od").await.len(), 4);
    }

    /// kinesalite's AWS-checked splitShard.js / mergeShards.js: any `<prefix>-N` names shard N,
    /// errors show the normalized id, and an id naming no index fails before the stream lookup.
    #[tokio::test]
    async fn reshard_shard_ids_are_normalized() {
        let e = Env::new();
        e.create("n", 3).await;
        let acct = "000000000000";
        let split = |stream: &str, shard: &str, key: &str| json!({"StreamName": stream, "ShardToSplit": shard, "NewStartingHashKey": key});
        let err = e.err("SplitShard", split("n", "shard-0", "1")).await;
        assert_eq!(err.code, "InvalidArgumentException");
        assert!(
            err.message
                .starts_with("NewStartingHashKey 1 used in SplitShard() on shard shardId-000000000000 in stream n"),
            "{}",
            err.message
        );
        let err = e.err("SplitShard", split("n", "shardId-5", "2")).await;
        assert_eq!(err.code, "ResourceNotFoundException");
        assert_eq!(
            err.message,
            format!("Could not find shard shardId-000000000005 in stream n under account {acct}.")
        );
        for bad in ["2147483648", "shardId-002147483648", "ABKLFD8", "2.14E4"] {
            let err = e.err("SplitShard", split("nope", bad, "2")).await;
            assert_eq!(
                err.message,
                format!("Could not find shard {bad} in stream nope under account {acct}."),
            );
        }
        let err = e
            .err("SplitShard", split("nope", "a-00002147483647", "2"))
            .await;
        assert_eq!(
            err.message,
            format!("Stream nope under account {acct} not found.")
        );
        e.ok("SplitShard", split("n", "foo-0", "1000")).await;
        assert_eq!(shards(&e, "n").await.len(), 5);

        let merge = |a: &str, b: &str| json!({"StreamName": "n", "ShardToMerge": a, "AdjacentShardToMerge": b});
        let err = e.err("MergeShards", merge("x-1", "shardId-5")).await;
        assert_eq!(
            err.message,
            format!("Could not find shard shardId-000000000005 in stream n under account {acct}.")
        );
        // Shard 4 (upper child of 0) lies directly below shard 1.
        let err = e.err("MergeShards", merge("x-1", "y-4")).await;
        assert_eq!(
            err.message,
            format!("Shards shardId-000000000001 and shardId-000000000004 in stream n under account {acct} are not an adjacent pair of shards eligible for merging")
        );
        e.ok("MergeShards", merge("x-4", "y-1")).await;
        let sh = shards(&e, "n").await;
        assert_eq!(sh.last().unwrap()["ParentShardId"], "shardId-000000000004");
        assert_eq!(
            sh.last().unwrap()["AdjacentParentShardId"],
            "shardId-000000000001"
        );
    }

    #[tokio::test]
    async fn list_shards_paging_and_filters() {
        let e = Env::new();
        e.create("l", 2).await;
        e.ok(
            "SplitShard",
            json!({"StreamName": "l", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "1000"}),
        )
        .await;
        let all = shards(&e, "l").await;
        assert_eq!(all.len(), 4);
        let p1 = e
            .ok("ListShards", json!({"StreamName": "l", "MaxResults": 3}))
            .await;
        assert_eq!(p1["Shards"].as_array().unwrap().len(), 3);
        let tok = p1["NextToken"].as_str().unwrap().to_string();
        let p2 = e.ok("ListShards", json!({"NextToken": tok})).await;
        assert_eq!(p2["Shards"].as_array().unwrap().len(), 1);
        assert_eq!(p2["Shards"][0]["ShardId"], "shardId-000000000003");
        assert!(p2["NextToken"].is_null());
        let err = e
            .err("ListShards", json!({"NextToken": tok, "StreamName": "l"}))
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        let err = e.err("ListShards", json!({"NextToken": "garbage"})).await;
        assert_eq!(err.code, "InvalidArgumentException");
        let r = e
            .ok(
                "ListShards",
                json!({"StreamName": "l", "ExclusiveStartShardId": "shardId-000000000001"}),
            )
            .await;
        assert_eq!(r["Shards"].as_array().unwrap().len(), 2);
        // Any `<prefix>-N` names shard N, as in GetShardIterator.
        let r = e
            .ok(
                "ListShards",
                json!({"StreamName": "l", "ExclusiveStartShardId": "x-1"}),
            )
            .await;
        assert_eq!(r["Shards"].as_array().unwrap().len(), 2);
        let r = e
            .ok(
                "ListShards",
                json!({"StreamName": "l", "ShardFilter": {"Type": "AFTER_SHARD_ID", "ShardId": "shard-2"}}),
            )
            .await;
        assert_eq!(r["Shards"].as_array().unwrap().len(), 1);
        let ids = |v: &Value| -> Vec<String> {
            v["Shards"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["ShardId"].as_str().unwrap().to_string())
                .collect()
        };
        let f = |filter: Value| json!({"StreamName": "l", "ShardFilter": filter});
        let r = e.ok("ListShards", f(json!({"Type": "AT_LATEST"}))).await;
        assert_eq!(
            ids(&r),
            vec![
                "shardId-000000000001",
                "shardId-000000000002",
                "shardId-000000000003"
            ]
        );
        let r = e
            .ok("ListShards", f(json!({"Type": "AT_TRIM_HORIZON"})))
            .await;
        assert_eq!(
            ids(&r),
            vec!["shardId-000000000000", "shardId-000000000001"]
        );
        let r = e
            .ok("ListShards", f(json!({"Type": "FROM_TRIM_HORIZON"})))
            .await;
        assert_eq!(ids(&r).len(), 4);
        let r = e
            .ok(
                "ListShards",
                f(json!({"Type": "AFTER_SHARD_ID", "ShardId": "shardId-000000000002"})),
            )
            .await;
        assert_eq!(ids(&r), vec!["shardId-000000000003"]);
        let r = e
            .ok(
                "ListShards",
                f(json!({"Type": "AT_TIMESTAMP", "Timestamp": 1000.0})),
            )
            .await;
        assert_eq!(
            ids(&r),
            vec!["shardId-000000000000", "shardId-000000000001"]
        );
        let future = (crate::service::now_ms() / 1000 + 100) as f64;
        let r = e
            .ok(
                "ListShards",
                f(json!({"Type": "FROM_TIMESTAMP", "Timestamp": future})),
            )
            .await;
        assert_eq!(ids(&r).len(), 3);
        let err = e
            .err("ListShards", f(json!({"Type": "AFTER_SHARD_ID"})))
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        let err = e
            .err("ListShards", f(json!({"Type": "AT_TIMESTAMP"})))
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        let err = e
            .err(
                "ListShards",
                f(json!({"Type": "AT_LATEST", "ShardId": "shardId-000000000000"})),
            )
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        let err = e.err("ListShards", f(json!({"Type": "NOPE"}))).await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .err("ListShards", json!({"StreamName": "l", "MaxResults": 0}))
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e.err("ListShards", json!({"StreamName": "nope"})).await;
        assert_eq!(err.code, "ResourceNotFoundException");
        // Tokens expire after 5 minutes.
        let p1 = e
            .ok("ListShards", json!({"StreamName": "l", "MaxResults": 1}))
            .await;
        e.svc.advance_clock(300_001);
        let err = e
            .err("ListShards", json!({"NextToken": p1["NextToken"]}))
            .await;
        assert_eq!(err.code, "ExpiredNextTokenException");
        // DescribeStream paging.
        let d = e
            .ok("DescribeStream", json!({"StreamName": "l", "Limit": 2}))
            .await;
        assert_eq!(d["StreamDescription"]["HasMoreShards"], true);
        assert_eq!(
            d["StreamDescription"]["Shards"].as_array().unwrap().len(),
            2
        );
        let d = e
            .ok("DescribeStream", json!({"StreamName": "l", "Limit": 2, "ExclusiveStartShardId": "shardId-000000000001"}))
            .await;
        assert_eq!(d["StreamDescription"]["HasMoreShards"], false);
        assert_eq!(
            d["StreamDescription"]["Shards"][0]["ShardId"],
            "shardId-000000000002"
        );
        // Closed shards disappear once their retention has passed.
        e.svc.advance_clock(25 * 3_600_000);
        assert_eq!(shards(&e, "l").await.len(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_puts_during_split_lose_nothing() {
        let e = Env::new();
        e.create("c", 1).await;
        let svc = e.svc.clone();
        let ctx = e.ctx.clone();
        let writer = tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..300 {
                let r = svc
                    .dispatch(
                        &ctx,
                        "PutRecord",
                        json!({"StreamName": "c", "PartitionKey": format!("k{i}"), "Data": ""}),
                    )
                    .await
                    .unwrap();
                acked.push((
                    r["ShardId"].as_str().unwrap().to_string(),
                    r["SequenceNumber"].as_str().unwrap().to_string(),
                ));
                tokio::task::yield_now().await;
            }
            acked
        });
        tokio::task::yield_now().await;
        e.ok(
            "SplitShard",
            json!({"StreamName": "c", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": (1u128 << 127).to_string()}),
        )
        .await;
        let acked = writer.await.unwrap();
        let mut seen = Vec::new();
        for sh in [
            "shardId-000000000000",
            "shardId-000000000001",
            "shardId-000000000002",
        ] {
            let r = drain(&e, "c", sh).await;
            for rec in r["Records"].as_array().unwrap() {
                seen.push((
                    sh.to_string(),
                    rec["SequenceNumber"].as_str().unwrap().to_string(),
                ));
            }
        }
        let mut a = acked.clone();
        a.sort();
        seen.sort();
        assert_eq!(a, seen);
    }
}
