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

use super::error::{invalid_argument, not_found};
use super::keys;
use super::state::{Closed, ShardMeta, StreamMeta};
use super::streams::{shard_limit_error, SHARD_LIMIT};
use super::validate::Checks;
use super::{Kinesis, StreamSel};

/// Closes `ix` (end offset from `ends`, 0 for shards created within this request).
fn close(s: &mut StreamMeta, ix: u32, ends: &BTreeMap<u32, u64>, now: u64) {
    if let Some(sh) = s.shards.get_mut(ix as usize) {
        sh.closed = Some(Closed {
            end_offset: ends.get(&ix).copied().unwrap_or(0),
            closed_ms: now,
        });
    }
}

fn add_shard(s: &mut StreamMeta, parent: u32, adjacent: Option<u32>, start: u128, end: u128, now: u64) -> u32 {
    let index = s.shards.len() as u32;
    s.shards.push(ShardMeta {
        index,
        parent: Some(parent),
        adjacent_parent: adjacent,
        start_key: start.to_string(),
        end_key: end.to_string(),
        created_ms: now,
        closed: None,
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

    fn open_shard<'a>(s: &'a StreamMeta, id: &str) -> ServiceResult<&'a ShardMeta> {
        let sh = keys::parse_shard_id(id)
            .and_then(|ix| s.shard(ix))
            .ok_or_else(|| {
                not_found(format!(
                    "Could not find shard {id} in stream {} under account {}.",
                    s.name, s.account
                ))
            })?;
        Ok(sh)
    }

    pub(crate) async fn split_shard(&self, ctx: &RequestContext, input: Value) -> ServiceResult<Value> {
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
            let ok = k == "0" || (!k.starts_with('0') && k.len() <= 39 && k.bytes().all(|b| b.is_ascii_digit()));
            c.pattern(Some(k), "newStartingHashKey", ok, "0|([1-9]\\d{0,38})");
        }
        let t = self.target(ctx, &i.sel, &mut c)?;
        let shard_id = i.shard_to_split.unwrap_or_default();
        let key_str = i.new_starting_hash_key.unwrap_or_default();
        let _w = self.write_lock.lock().await;
        let now = self.now();
        let mut s = self.active_stream(&t)?;
        let sh = Self::open_shard(&s, &shard_id)?.clone();
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
        let open = self.catalog.read().open_shard_count(&s.account, &s.region, now);
        if open + 1 > SHARD_LIMIT {
            return Err(shard_limit_error(&s.account, &s.region, open, 1));
        }
        let (rts, ends) = self.close_gates(&s, &[sh.index]).await?;
        split(&mut s, sh.index, key, &ends, now);
        self.mark_updating(&mut s);
        if let Err(e) = self.put_stream(s).await {
            Self::reopen_gates(&rts).await;
            return Err(e);
        }
        Ok(json!({}))
    }

    pub(crate) async fn merge_shards(&self, ctx: &RequestContext, input: Value) -> ServiceResult<Value> {
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
            .name(i.adjacent_shard_to_merge.as_deref(), "adjacentShardToMerge", 128);
        let t = self.target(ctx, &i.sel, &mut c)?;
        let _w = self.write_lock.lock().await;
        let now = self.now();
        let mut s = self.active_stream(&t)?;
        let a = Self::open_shard(&s, i.shard_to_merge.as_deref().unwrap_or_default())?.clone();
        let b = Self::open_shard(&s, i.adjacent_shard_to_merge.as_deref().unwrap_or_default())?.clone();
        let (na, nb) = (keys::shard_id(a.index), keys::shard_id(b.index));
        for sh in [&a, &b] {
            if !sh.is_open() {
                return Err(invalid_argument(format!(
                    "Shard {} in stream {} under account {} has already been merged or split, and thus is not eligible for merging or splitting.",
                    keys::shard_id(sh.index), s.name, s.account
                )));
            }
        }
        let adjacent = a.index != b.index
            && (a.end().checked_add(1) == Some(b.start()) || b.end().checked_add(1) == Some(a.start()));
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
        Ok(json!({}))
    }

    pub(crate) async fn update_shard_count(&self, ctx: &RequestContext, input: Value) -> ServiceResult<Value> {
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
            .one_of(i.scaling_type.as_deref(), "scalingType", &["UNIFORM_SCALING"]);
        let t = self.target(ctx, &i.sel, &mut c)?;
        let target = i.target_shard_count.unwrap_or(1);
        let _w = self.write_lock.lock().await;
        let now = self.now();
        let mut s = self.active_stream(&t)?;
        if s.on_demand {
            return Err(invalid_argument(format!(
                "UpdateShardCount is not supported for stream {} under account {} in ON_DEMAND mode.",
                s.name, s.account
            )));
        }
        let mut open: Vec<ShardMeta> = s.open_shards().cloned().collect();
        open.sort_by_key(|sh| sh.start());
        let current = open.len() as i64;
        if target > current * 2 || target > 10000 {
            return Err(invalid_argument(format!(
                "UpdateShardCount cannot scale up over double your current open shard count. Current open shard count: {current} Target shard count: {target}"
            )));
        }
        if target * 2 < current {
            return Err(invalid_argument(format!(
                "UpdateShardCount cannot scale down below half your current open shard count. Current open shard count: {current} Target shard count: {target}"
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
        let account_open = self.catalog.read().open_shard_count(&s.account, &s.region, now);
        if account_open - current as usize + new_open > SHARD_LIMIT {
            return Err(shard_limit_error(
                &s.account,
                &s.region,
                account_open,
                new_open.saturating_sub(current as usize),
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
        Ok(out)
    }
}
