//! Stream lifecycle and configuration: CreateStream, DeleteStream, DescribeStream(Summary),
//! ListStreams, ListShards, retention, stream mode, max record size, warm throughput,
//! encryption, enhanced monitoring, DescribeLimits and account settings.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::context::RequestContext;
use crate::error::ServiceResult;
use crate::service::parse_input;

use super::error::{
    expired_next_token, in_use, invalid_argument, limit_exceeded, not_active, stream_not_found,
};
use super::keys::{self, ts_out};
use super::state::{
    AccountSettings, CatalogEvent, ShardMeta, Status, StreamMeta, DEFAULT_MAX_RECORD_KIB,
    DEFAULT_RETENTION_HOURS,
};
use super::validate::Checks;
use super::{Kinesis, StreamSel, Target};

/// The account's default shard quota in `region`: 20,000 in us-east-1, us-west-2 and
/// eu-west-1, "1,000 or 6,000" elsewhere (Kinesis Developer Guide, "Quotas and limits"; the
/// larger of the two, a local broker has no capacity to protect). 500 was the quota of years
/// ago and refused streams AWS takes.
pub fn shard_limit(region: &str) -> usize {
    match region {
        "us-east-1" | "us-west-2" | "eu-west-1" => 20_000,
        _ => 6_000,
    }
}
pub const ON_DEMAND_STREAM_LIMIT: usize = 50;
pub const ON_DEMAND_SHARDS: u32 = 4;
pub const MIN_RETENTION_HOURS: i64 = 24;
pub const MAX_RETENTION_HOURS: i64 = 8760;
const LIST_TOKEN_TTL_MS: u64 = 300_000;
const ALL_METRICS: [&str; 7] = [
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
];

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StreamModeDetails {
    pub stream_mode: Option<String>,
}

/// A TagMap's rules (CreateStream's and AddTagsToStream's): 1 to 200 entries, keys of 1 to
/// 128 characters, values of at most 256.
pub(crate) fn check_tags(checks: &mut Checks, tags: &BTreeMap<String, String>, path: &str) {
    if tags.is_empty() {
        // AWS prints an empty map as `{}`.
        checks.raw(
            "'{}'".into(),
            path,
            "have length greater than or equal to 1",
        );
    }
    checks.count(Some(tags.len()).filter(|n| *n > 0), path, 1, 200);
    for (k, v) in tags {
        checks.len(Some(k), &format!("{path}.key"), 1, 128);
        checks.len(Some(v), &format!("{path}.value"), 0, 256);
    }
}

/// Characters AWS allows in tag keys and values besides Unicode letters, digits and spaces.
const TAG_PUNCTUATION: &str = "_./=+-%@:";

fn tag_char_ok(c: char) -> bool {
    // "White space" is spaces (Unicode separators), not tabs or line breaks.
    c.is_alphanumeric()
        || TAG_PUNCTUATION.contains(c)
        || c == ' '
        || (c.is_whitespace() && !c.is_control())
}

/// Rejects tag keys or values with characters outside AWS's set (InvalidArgumentException,
/// checked after the model constraints and, where there is one, the stream lookup).
pub(crate) fn check_tag_chars<'a>(
    strings: impl IntoIterator<Item = &'a String>,
) -> ServiceResult<()> {
    if strings.into_iter().any(|s| !s.chars().all(tag_char_ok)) {
        return Err(invalid_argument(
            "Some tags contain invalid characters. Valid characters: \
             Unicode letters, digits, white space, _ . / = + - % @ :.",
        ));
    }
    Ok(())
}

/// AddTagsToStream and RemoveTagsFromStream also refuse `%`, although the message above lists it.
pub(crate) fn check_no_percent<'a>(
    strings: impl IntoIterator<Item = &'a String>,
    action: &str,
    s: &StreamMeta,
) -> ServiceResult<()> {
    if strings.into_iter().any(|t| t.contains('%')) {
        return Err(invalid_argument(format!(
            "Failed to {action} stream {} under account {} because some tags contained illegal \
             characters. The allowed characters are Unicode letters, white-spaces, \
             '_',',','/','=','+','-','@',':'.",
            s.name, s.account
        )));
    }
    Ok(())
}

pub(crate) fn shard_limit_error(
    account: &str,
    region: &str,
    current: usize,
    extra: i64,
) -> crate::error::ServiceError {
    let limit = shard_limit(region);
    limit_exceeded(format!(
        "This request would exceed the shard limit for the account {account} in {region}. \
         Current shard count for the account: {current}. Limit: {limit}. Number of additional \
         shards that would have resulted from this request: {extra}. Refer to the AWS Service Limits \
         page (https://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current \
         limits and how to request higher limits."
    ))
}

pub(crate) fn shard_json(sh: &ShardMeta) -> Value {
    let mut m = Map::new();
    m.insert("ShardId".into(), json!(keys::shard_id(sh.index)));
    if let Some(p) = sh.parent {
        m.insert("ParentShardId".into(), json!(keys::shard_id(p)));
    }
    if let Some(p) = sh.adjacent_parent {
        m.insert("AdjacentParentShardId".into(), json!(keys::shard_id(p)));
    }
    m.insert(
        "HashKeyRange".into(),
        json!({"StartingHashKey": sh.start_key, "EndingHashKey": sh.end_key}),
    );
    let mut range = Map::new();
    range.insert(
        "StartingSequenceNumber".into(),
        json!(keys::sequence_number(sh.created_ms, sh.index, 0)),
    );
    if sh.closed.is_some() {
        range.insert(
            "EndingSequenceNumber".into(),
            json!(keys::ending_sequence_number(sh.index)),
        );
    }
    m.insert("SequenceNumberRange".into(), Value::Object(range));
    Value::Object(m)
}

fn mode_str(s: &StreamMeta) -> &'static str {
    if s.on_demand {
        "ON_DEMAND"
    } else {
        "PROVISIONED"
    }
}

fn monitoring_json(s: &StreamMeta) -> Value {
    json!([{"ShardLevelMetrics": s.metrics.iter().collect::<Vec<_>>()}])
}

/// Warm throughput tops out at 10 GiBps per on-demand stream.
fn check_warm(mibps: Option<i64>) -> ServiceResult<()> {
    match mibps {
        Some(m) if m > 10240 => Err(invalid_argument(format!(
            "Requested warm throughput {m} MiBps exceeds the maximum of 10240 MiBps."
        ))),
        _ => Ok(()),
    }
}

fn new_stream_id() -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", &u[..20], &u[20..23])
}

impl Kinesis {
    pub(crate) fn settings_key(account: &str, region: &str) -> String {
        format!("{account}/{region}")
    }

    pub(crate) fn commitment_active(&self, account: &str, region: &str) -> bool {
        let now = self.now();
        let cat = self.catalog.read();
        cat.accounts
            .get(&Self::settings_key(account, region))
            .is_some_and(|a| a.commitment_enabled && a.commitment_ended_ms.is_none_or(|e| now < e))
    }

    /// Marks a stream UPDATING until the transition delay has passed.
    pub(crate) fn mark_updating(&self, s: &mut StreamMeta) {
        let now = self.now();
        s.status = Status::Updating;
        s.ready_at_ms = now + self.transition_ms;
    }

    pub(crate) async fn create_stream(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            stream_name: Option<String>,
            shard_count: Option<i64>,
            stream_mode_details: Option<StreamModeDetails>,
            tags: Option<BTreeMap<String, String>>,
            max_record_size_in_ki_b: Option<i64>,
            warm_throughput_mi_bps: Option<i64>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mode = i
            .stream_mode_details
            .as_ref()
            .map(|m| m.stream_mode.clone());
        // Neither a shard count nor a mode: AWS creates an on-demand stream (4 shards).
        let on_demand = matches!(&mode, Some(Some(m)) if m == "ON_DEMAND")
            || (mode.is_none() && i.shard_count.is_none());
        let mut c = Checks::new();
        c.required(&i.stream_name, "streamName")
            .name(i.stream_name.as_deref(), "streamName", 128)
            .range(i.shard_count, "shardCount", 1, None)
            .range(
                i.max_record_size_in_ki_b,
                "maxRecordSizeInKiB",
                1024,
                Some(10240),
            )
            .range(i.warm_throughput_mi_bps, "warmThroughputMiBps", 0, None);
        if let Some(m) = &mode {
            c.required(m, "streamModeDetails.streamMode").one_of(
                m.as_deref(),
                "streamModeDetails.streamMode",
                &["PROVISIONED", "ON_DEMAND"],
            );
        }
        if !on_demand {
            c.required(&i.shard_count, "shardCount");
        }
        if let Some(t) = &i.tags {
            check_tags(&mut c, t, "tags");
        }
        c.finish()?;
        let name = i.stream_name.unwrap_or_default();
        let tags = i.tags.unwrap_or_default();
        check_tag_chars(tags.iter().flat_map(|(k, v)| [k, v]))?;
        if tags.len() > 50 {
            return Err(invalid_argument(format!(
                "Failed to create stream {name} under account {} because a given stream cannot have more than 50 tags.",
                ctx.account_id
            )));
        }
        let requested = if on_demand {
            ON_DEMAND_SHARDS as i64
        } else {
            i.shard_count.unwrap_or(1)
        };
        // Above the account limit (checked below) anyway; clamped so the cast cannot wrap.
        let limit = shard_limit(&ctx.region);
        let shard_count = requested.clamp(1, limit as i64 + 1) as u32;
        if i.warm_throughput_mi_bps.is_some() && !on_demand {
            return Err(invalid_argument(
                "Warm throughput can only be configured for ON_DEMAND streams.",
            ));
        }
        check_warm(i.warm_throughput_mi_bps)?;
        let _w = self.write_lock.lock().await;
        self.purge_deleted().await?;
        let now = self.now();
        {
            let cat = self.catalog.read();
            if cat
                .lookup(&ctx.account_id, &ctx.region, &name, now)
                .is_some()
            {
                return Err(in_use(format!(
                    "Stream {name} under account {} already exists.",
                    ctx.account_id
                )));
            }
            let open = cat.open_shard_count(&ctx.account_id, &ctx.region, now);
            if open + shard_count as usize > limit {
                // The message names the count asked for, not the clamped one.
                return Err(shard_limit_error(
                    &ctx.account_id,
                    &ctx.region,
                    open,
                    requested,
                ));
            }
            if on_demand {
                let n = cat
                    .streams
                    .values()
                    .filter(|s| {
                        s.account == ctx.account_id
                            && s.region == ctx.region
                            && s.on_demand
                            && s.status_at(now).is_some()
                    })
                    .count();
                if n >= ON_DEMAND_STREAM_LIMIT {
                    return Err(limit_exceeded(format!(
                        "This request would exceed the on-demand stream limit for the account {} in {}. \
                         Current on-demand stream count: {n}. Limit: {ON_DEMAND_STREAM_LIMIT}.",
                        ctx.account_id, ctx.region
                    )));
                }
            }
        }
        let created_ms = self.unique_stamp();
        let shards = keys::even_ranges(shard_count)
            .into_iter()
            .enumerate()
            .map(|(ix, (start, end))| ShardMeta {
                index: ix as u32,
                parent: None,
                adjacent_parent: None,
                start_key: start.to_string(),
                end_key: end.to_string(),
                created_ms,
                closed: None,
                epochs: Vec::new(),
            })
            .collect();
        let meta = StreamMeta {
            id: new_stream_id(),
            account: ctx.account_id.clone(),
            region: ctx.region.clone(),
            name,
            created_ms,
            status: Status::Creating,
            ready_at_ms: now + self.transition_ms,
            on_demand,
            retention_hours: DEFAULT_RETENTION_HOURS,
            shards,
            tags,
            kms_key: None,
            metrics: BTreeSet::new(),
            max_record_kib: i
                .max_record_size_in_ki_b
                .map_or(DEFAULT_MAX_RECORD_KIB, |v| v as u32),
            warm_mibps: i.warm_throughput_mi_bps.map(|v| v as u32),
            policy: None,
            consumers: BTreeMap::new(),
        };
        self.put_stream(meta).await?;
        Ok(json!({}))
    }

    pub(crate) async fn delete_stream(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(flatten)]
            sel: StreamSel,
            enforce_consumer_deletion: Option<bool>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let t = self.target(ctx, &i.sel, &mut Checks::new())?;
        let _w = self.write_lock.lock().await;
        let now = self.now();
        let mut s = self.stream(&t)?;
        match s.status_at(now) {
            Some(Status::Creating) => {
                return Err(not_active(&s.name, &s.account, "CREATING"));
            }
            Some(Status::Deleting) => return Err(stream_not_found(&t.name, &t.account)),
            _ => {}
        }
        let live_consumers = s
            .consumers
            .values()
            .filter(|c| c.status_at(now).is_some())
            .count();
        if live_consumers > 0 && !i.enforce_consumer_deletion.unwrap_or(false) {
            return Err(in_use(format!(
                "Stream {} under account {} has registered consumers. Deregister them or use EnforceConsumerDeletion.",
                s.name, s.account
            )));
        }
        if self.transition_ms == 0 {
            self.commit(CatalogEvent::RemoveStream { id: s.id.clone() })
                .await?;
            self.drop_stream_files(&s);
        } else {
            s.status = Status::Deleting;
            s.ready_at_ms = now + self.transition_ms;
            self.put_stream(s).await?;
        }
        Ok(json!({}))
    }

    fn description_common(&self, s: &StreamMeta, now: u64) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("StreamName".into(), json!(s.name));
        m.insert("StreamARN".into(), json!(s.arn()));
        m.insert(
            "StreamStatus".into(),
            json!(s.status_at(now).unwrap_or(Status::Deleting).as_str()),
        );
        m.insert(
            "StreamModeDetails".into(),
            json!({"StreamMode": mode_str(s)}),
        );
        m
    }

    fn add_encryption(m: &mut Map<String, Value>, s: &StreamMeta) {
        match &s.kms_key {
            Some(k) => {
                m.insert("EncryptionType".into(), json!("KMS"));
                m.insert("KeyId".into(), json!(k));
            }
            None => {
                m.insert("EncryptionType".into(), json!("NONE"));
            }
        }
    }

    pub(crate) fn describe_stream(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(flatten)]
            sel: StreamSel,
            limit: Option<i64>,
            exclusive_start_shard_id: Option<String>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        c.range(i.limit, "limit", 1, Some(10000)).name(
            i.exclusive_start_shard_id.as_deref(),
            "exclusiveStartShardId",
            128,
        );
        let t = self.target(ctx, &i.sel, &mut c)?;
        let now = self.now();
        self.with_stream(&t, |s| {
            // Limit may be up to 10000, but at most 100 shards come back.
            let limit = i.limit.unwrap_or(100).min(100) as usize;
            let after = i
                .exclusive_start_shard_id
                .as_deref()
                .map(|id| keys::parse_shard_id(id).map(|v| v as i64).unwrap_or(-1));
            let shards: Vec<&ShardMeta> = s
                .visible_shards(now)
                .filter(|sh| after.is_none_or(|a| sh.index as i64 > a))
                .collect();
            let has_more = shards.len() > limit;
            let mut m = self.description_common(s, now);
            m.insert(
                "Shards".into(),
                Value::Array(shards.iter().take(limit).map(|sh| shard_json(sh)).collect()),
            );
            m.insert("HasMoreShards".into(), json!(has_more));
            m.insert("RetentionPeriodHours".into(), json!(s.retention_hours));
            m.insert(
                "StreamCreationTimestamp".into(),
                json!(ts_out(s.created_ms)),
            );
            m.insert("EnhancedMonitoring".into(), monitoring_json(s));
            Self::add_encryption(&mut m, s);
            Ok(json!({ "StreamDescription": m }))
        })
    }

    pub(crate) fn describe_stream_summary(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let sel: StreamSel = parse_input(input, "SerializationException")?;
        let t = self.target(ctx, &sel, &mut Checks::new())?;
        let now = self.now();
        self.with_stream(&t, |s| {
            let mut m = self.description_common(s, now);
            m.insert("RetentionPeriodHours".into(), json!(s.retention_hours));
            m.insert(
                "StreamCreationTimestamp".into(),
                json!(ts_out(s.created_ms)),
            );
            m.insert("EnhancedMonitoring".into(), monitoring_json(s));
            Self::add_encryption(&mut m, s);
            m.insert("OpenShardCount".into(), json!(s.open_shards().count()));
            m.insert(
                "ConsumerCount".into(),
                json!(s
                    .consumers
                    .values()
                    .filter(|c| c.status_at(now).is_some())
                    .count()),
            );
            m.insert("StreamId".into(), json!(s.id));
            m.insert("MaxRecordSizeInKiB".into(), json!(s.max_record_kib));
            if let Some(w) = s.warm_mibps {
                m.insert(
                    "WarmThroughput".into(),
                    json!({"TargetMiBps": w, "CurrentMiBps": w}),
                );
            }
            Ok(json!({ "StreamDescriptionSummary": m }))
        })
    }

    pub(crate) fn list_streams(&self, ctx: &RequestContext, input: Value) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            limit: Option<i64>,
            exclusive_start_stream_name: Option<String>,
            next_token: Option<String>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        Checks::new()
            .range(i.limit, "limit", 1, Some(10000))
            .name(
                i.exclusive_start_stream_name.as_deref(),
                "exclusiveStartStreamName",
                128,
            )
            .len(i.next_token.as_deref(), "nextToken", 1, 1_048_576)
            .finish()?;
        let mut after = i.exclusive_start_stream_name.clone();
        if let Some(tok) = &i.next_token {
            let parts = keys::decode_token(tok)
                .filter(|p| p.len() == 2 && p[0] == "streams")
                .ok_or_else(|| invalid_argument(format!("Invalid NextToken: {tok}")))?;
            after = Some(parts[1].clone());
        }
        // Limit may be up to 10000, but at most 100 streams come back.
        let limit = i.limit.unwrap_or(100).min(100) as usize;
        let now = self.now();
        let cat = self.catalog.read();
        let mut names: Vec<&StreamMeta> = cat
            .by_name
            .range((ctx.account_id.clone(), ctx.region.clone(), String::new())..)
            .take_while(|((a, r, _), _)| a == &ctx.account_id && r == &ctx.region)
            .filter(|((_, _, n), _)| after.as_ref().is_none_or(|a| n > a))
            .filter_map(|(_, id)| cat.streams.get(id))
            .filter(|s| s.status_at(now).is_some())
            .take(limit + 1)
            .collect();
        let has_more = names.len() > limit;
        names.truncate(limit);
        let mut out = Map::new();
        out.insert(
            "StreamNames".into(),
            json!(names.iter().map(|s| s.name.clone()).collect::<Vec<_>>()),
        );
        out.insert("HasMoreStreams".into(), json!(has_more));
        if has_more {
            if let Some(last) = names.last() {
                out.insert(
                    "NextToken".into(),
                    json!(keys::encode_token(&["streams", &last.name])),
                );
            }
        }
        out.insert(
            "StreamSummaries".into(),
            Value::Array(
                names
                    .iter()
                    .map(|s| {
                        json!({
                            "StreamName": s.name,
                            "StreamARN": s.arn(),
                            "StreamStatus": s.status_at(now).unwrap_or(Status::Deleting).as_str(),
                            "StreamModeDetails": {"StreamMode": mode_str(s)},
                            "StreamCreationTimestamp": ts_out(s.created_ms),
                        })
                    })
                    .collect(),
            ),
        );
        Ok(Value::Object(out))
    }

    pub(crate) fn list_shards(&self, ctx: &RequestContext, input: Value) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Filter {
            #[serde(rename = "Type")]
            kind: Option<String>,
            shard_id: Option<String>,
            timestamp: Option<Value>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(flatten)]
            sel: StreamSel,
            next_token: Option<String>,
            exclusive_start_shard_id: Option<String>,
            max_results: Option<i64>,
            #[allow(dead_code)]
            stream_creation_timestamp: Option<Value>,
            shard_filter: Option<Filter>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        c.range(i.max_results, "maxResults", 1, Some(10000))
            .name(
                i.exclusive_start_shard_id.as_deref(),
                "exclusiveStartShardId",
                128,
            )
            .len(i.next_token.as_deref(), "nextToken", 1, 1_048_576);
        if let Some(f) = &i.shard_filter {
            c.required(&f.kind, "shardFilter.type").one_of(
                f.kind.as_deref(),
                "shardFilter.type",
                &[
                    "AFTER_SHARD_ID",
                    "AT_TRIM_HORIZON",
                    "FROM_TRIM_HORIZON",
                    "AT_LATEST",
                    "AT_TIMESTAMP",
                    "FROM_TIMESTAMP",
                ],
            );
            c.name(f.shard_id.as_deref(), "shardFilter.shardId", 128);
        }
        let now = self.now();
        // (target, exclusive start index, filter kind, filter shard index, filter ts)
        let (t, mut after, kind, f_shard, f_ts);
        if let Some(tok) = &i.next_token {
            c.finish()?;
            if i.sel.stream_name.is_some() || i.sel.stream_arn.is_some() {
                return Err(invalid_argument(
                    "NextToken and StreamName cannot be provided together.",
                ));
            }
            if i.exclusive_start_shard_id.is_some() || i.shard_filter.is_some() {
                return Err(invalid_argument(
                    "NextToken cannot be provided together with ExclusiveStartShardId or ShardFilter.",
                ));
            }
            let p = keys::decode_token(tok)
                .filter(|p| p.len() == 9 && p[0] == "shards")
                .ok_or_else(|| invalid_argument(format!("Invalid NextToken: {tok}")))?;
            let issued: u64 = p[5].parse().unwrap_or(0);
            if now.saturating_sub(issued) > LIST_TOKEN_TTL_MS {
                return Err(expired_next_token(format!(
                    "The timestamp in the NextToken has expired: {tok}"
                )));
            }
            t = Target {
                account: p[1].clone(),
                region: p[2].clone(),
                name: p[3].clone(),
            };
            after = p[4].parse::<i64>().ok();
            kind = Some(p[6].clone()).filter(|k| !k.is_empty());
            f_shard = p[7].parse::<i64>().ok();
            f_ts = p[8].parse::<u64>().ok();
        } else {
            t = self.target(ctx, &i.sel, &mut c)?;
            after = i
                .exclusive_start_shard_id
                .as_deref()
                .map(|id| keys::parse_shard_id(id).map_or(-1, |v| v as i64));
            let f = i.shard_filter.as_ref();
            kind = f.and_then(|f| f.kind.clone());
            f_shard = None;
            f_ts = None;
            let (mut fs, mut ft) = (None, None);
            if let Some(f) = f {
                let k = kind.as_deref().unwrap_or_default();
                match k {
                    "AFTER_SHARD_ID" => {
                        let id = f.shard_id.as_deref().ok_or_else(|| {
                            invalid_argument("ShardId must be provided with the AFTER_SHARD_ID shard filter type.")
                        })?;
                        fs = Some(keys::parse_shard_id(id).map_or(-1, |v| v as i64));
                    }
                    "AT_TIMESTAMP" | "FROM_TIMESTAMP" => {
                        let ts = f.timestamp.as_ref().ok_or_else(|| {
                            invalid_argument(format!(
                                "Timestamp must be provided with the {k} shard filter type."
                            ))
                        })?;
                        ft = Some(keys::parse_timestamp(ts, "ShardFilter.Timestamp")?);
                    }
                    _ => {}
                }
                if f.shard_id.is_some() && k != "AFTER_SHARD_ID" {
                    return Err(invalid_argument(format!(
                        "ShardId cannot be provided with the {k} shard filter type."
                    )));
                }
                if f.timestamp.is_some() && k != "AT_TIMESTAMP" && k != "FROM_TIMESTAMP" {
                    return Err(invalid_argument(format!(
                        "Timestamp cannot be provided with the {k} shard filter type."
                    )));
                }
            }
            let _ = (f_shard, f_ts);
            return self.list_shards_page(&t, after, kind, fs, ft, i.max_results, now);
        }
        if after.is_none() {
            after = None;
        }
        self.list_shards_page(&t, after, kind, f_shard, f_ts, i.max_results, now)
    }

    #[allow(clippy::too_many_arguments)]
    fn list_shards_page(
        &self,
        t: &Target,
        after: Option<i64>,
        kind: Option<String>,
        f_shard: Option<i64>,
        f_ts: Option<u64>,
        max_results: Option<i64>,
        now: u64,
    ) -> ServiceResult<Value> {
        // MaxResults may be up to 10000, but at most 1000 shards come back.
        let limit = max_results.unwrap_or(1000).min(1000) as usize;
        self.with_stream(t, |s| {
            let visible: Vec<&ShardMeta> = s.visible_shards(now).collect();
            let is_visible =
                |ix: Option<u32>| ix.is_some_and(|ix| visible.iter().any(|v| v.index == ix));
            let roots = |sh: &&ShardMeta| !is_visible(sh.parent) && !is_visible(sh.adjacent_parent);
            let mut picked: Vec<&ShardMeta> = match kind.as_deref() {
                Some("AT_LATEST") => visible.iter().copied().filter(|sh| sh.is_open()).collect(),
                Some("AT_TRIM_HORIZON") => visible.iter().copied().filter(roots).collect(),
                Some("AFTER_SHARD_ID") => visible
                    .iter()
                    .copied()
                    .filter(|sh| sh.index as i64 > f_shard.unwrap_or(-1))
                    .collect(),
                Some("AT_TIMESTAMP") => {
                    let ts = f_ts.unwrap_or(0);
                    if ts < s.created_ms {
                        visible.iter().copied().filter(roots).collect()
                    } else {
                        visible
                            .iter()
                            .copied()
                            .filter(|sh| {
                                sh.created_ms <= ts && sh.closed.is_none_or(|c| c.closed_ms > ts)
                            })
                            .collect()
                    }
                }
                Some("FROM_TIMESTAMP") => {
                    let ts = f_ts.unwrap_or(0);
                    visible
                        .iter()
                        .copied()
                        .filter(|sh| sh.closed.is_none_or(|c| c.closed_ms > ts))
                        .collect()
                }
                _ => visible.clone(),
            };
            if let Some(a) = after {
                picked.retain(|sh| sh.index as i64 > a);
            }
            let has_more = picked.len() > limit;
            picked.truncate(limit);
            let mut out = Map::new();
            out.insert(
                "Shards".into(),
                Value::Array(picked.iter().map(|sh| shard_json(sh)).collect()),
            );
            if has_more {
                if let Some(last) = picked.last() {
                    let last_ix = last.index.to_string();
                    let issued = now.to_string();
                    let fsh = f_shard.map(|v| v.to_string()).unwrap_or_default();
                    let fts = f_ts.map(|v| v.to_string()).unwrap_or_default();
                    out.insert(
                        "NextToken".into(),
                        json!(keys::encode_token(&[
                            "shards",
                            &t.account,
                            &t.region,
                            &t.name,
                            &last_ix,
                            &issued,
                            kind.as_deref().unwrap_or(""),
                            &fsh,
                            &fts,
                        ])),
                    );
                }
            }
            Ok(Value::Object(out))
        })
    }

    pub(crate) async fn change_retention(
        &self,
        ctx: &RequestContext,
        input: Value,
        increase: bool,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(flatten)]
            sel: StreamSel,
            retention_period_hours: Option<i64>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        c.required(&i.retention_period_hours, "retentionPeriodHours");
        let t = self.target(ctx, &i.sel, &mut c)?;
        let hours = i.retention_period_hours.unwrap_or_default();
        if hours < MIN_RETENTION_HOURS {
            return Err(invalid_argument(format!(
                "Minimum allowed retention period is {MIN_RETENTION_HOURS} hours. Requested retention period ({hours} hours) is too short."
            )));
        }
        if hours > MAX_RETENTION_HOURS {
            return Err(invalid_argument(format!(
                "Maximum allowed retention period is {MAX_RETENTION_HOURS} hours. Requested retention period ({hours} hours) is too long."
            )));
        }
        let _w = self.write_lock.lock().await;
        let mut s = self.active_stream(&t)?;
        let cur = s.retention_hours as i64;
        if increase && hours < cur {
            return Err(invalid_argument(format!(
                "Requested retention period ({hours} hours) for stream {} can not be shorter than existing retention period ({cur} hours). Use DecreaseRetentionPeriod API.",
                s.name
            )));
        }
        if !increase && hours > cur {
            return Err(invalid_argument(format!(
                "Requested retention period ({hours} hours) for stream {} can not be longer than existing retention period ({cur} hours). Use IncreaseRetentionPeriod API.",
                s.name
            )));
        }
        if hours != cur {
            s.retention_hours = hours as u32;
            self.mark_updating(&mut s);
            self.put_stream(s).await?;
        }
        Ok(json!({}))
    }

    pub(crate) async fn update_stream_mode(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(rename = "StreamARN")]
            stream_arn: Option<String>,
            stream_mode_details: Option<StreamModeDetails>,
            warm_throughput_mi_bps: Option<i64>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        c.required(&i.stream_arn, "streamARN")
            .required(&i.stream_mode_details, "streamModeDetails")
            .range(i.warm_throughput_mi_bps, "warmThroughputMiBps", 0, None);
        let mode = i.stream_mode_details.and_then(|m| m.stream_mode);
        if i.stream_arn.is_some() {
            c.required(&mode, "streamModeDetails.streamMode");
        }
        c.one_of(
            mode.as_deref(),
            "streamModeDetails.streamMode",
            &["PROVISIONED", "ON_DEMAND"],
        );
        let sel = StreamSel {
            stream_arn: i.stream_arn,
            ..StreamSel::default()
        };
        let t = self.target(ctx, &sel, &mut c)?;
        let on_demand = mode.as_deref() == Some("ON_DEMAND");
        if i.warm_throughput_mi_bps.is_some() && !on_demand {
            return Err(invalid_argument(
                "Warm throughput can only be configured for ON_DEMAND streams.",
            ));
        }
        check_warm(i.warm_throughput_mi_bps)?;
        let _w = self.write_lock.lock().await;
        let mut s = self.active_stream(&t)?;
        if s.on_demand == on_demand {
            return Err(invalid_argument(format!(
                "Stream {} under account {} is already in {} mode.",
                s.name,
                s.account,
                mode_str(&s)
            )));
        }
        s.on_demand = on_demand;
        s.warm_mibps = if on_demand {
            i.warm_throughput_mi_bps.map(|v| v as u32)
        } else {
            None
        };
        self.mark_updating(&mut s);
        self.put_stream(s).await?;
        Ok(json!({}))
    }

    pub(crate) async fn update_max_record_size(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(rename = "StreamARN")]
            stream_arn: Option<String>,
            max_record_size_in_ki_b: Option<i64>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        c.required(&i.max_record_size_in_ki_b, "maxRecordSizeInKiB")
            .range(
                i.max_record_size_in_ki_b,
                "maxRecordSizeInKiB",
                1024,
                Some(10240),
            );
        let sel = StreamSel {
            stream_arn: i.stream_arn,
            ..StreamSel::default()
        };
        let t = self.target(ctx, &sel, &mut c)?;
        let _w = self.write_lock.lock().await;
        let mut s = self.active_stream(&t)?;
        s.max_record_kib = i.max_record_size_in_ki_b.unwrap_or(1024) as u32;
        self.mark_updating(&mut s);
        self.put_stream(s).await?;
        Ok(json!({}))
    }

    pub(crate) async fn update_warm_throughput(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(flatten)]
            sel: StreamSel,
            warm_throughput_mi_bps: Option<i64>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        c.required(&i.warm_throughput_mi_bps, "warmThroughputMiBps")
            .range(i.warm_throughput_mi_bps, "warmThroughputMiBps", 0, None);
        let t = self.target(ctx, &i.sel, &mut c)?;
        let mibps = i.warm_throughput_mi_bps.unwrap_or_default();
        check_warm(Some(mibps))?;
        let _w = self.write_lock.lock().await;
        let mut s = self.active_stream(&t)?;
        if !s.on_demand {
            return Err(invalid_argument(
                "Warm throughput can only be configured for ON_DEMAND streams.",
            ));
        }
        if !self.commitment_active(&s.account, &s.region) {
            return Err(invalid_argument(
                "Warm throughput requires MinimumThroughputBillingCommitment to be enabled for the account.",
            ));
        }
        s.warm_mibps = Some(mibps as u32);
        self.mark_updating(&mut s);
        let (arn, name) = (s.arn(), s.name.clone());
        self.put_stream(s).await?;
        Ok(json!({
            "StreamARN": arn,
            "StreamName": name,
            "WarmThroughput": {"TargetMiBps": mibps, "CurrentMiBps": mibps},
        }))
    }

    pub(crate) async fn set_encryption(
        &self,
        ctx: &RequestContext,
        input: Value,
        start: bool,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(flatten)]
            sel: StreamSel,
            encryption_type: Option<String>,
            key_id: Option<String>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        c.required(&i.encryption_type, "encryptionType")
            .one_of(
                i.encryption_type.as_deref(),
                "encryptionType",
                &["NONE", "KMS"],
            )
            .required(&i.key_id, "keyId")
            .len(i.key_id.as_deref(), "keyId", 1, 2048);
        let t = self.target(ctx, &i.sel, &mut c)?;
        if i.encryption_type.as_deref() != Some("KMS") {
            return Err(invalid_argument(format!(
                "Invalid EncryptionType {}. Only KMS is supported.",
                i.encryption_type.unwrap_or_default()
            )));
        }
        let _w = self.write_lock.lock().await;
        let mut s = self.active_stream(&t)?;
        if start {
            s.kms_key = i.key_id;
        } else {
            if s.kms_key.is_none() {
                return Ok(json!({}));
            }
            s.kms_key = None;
        }
        self.mark_updating(&mut s);
        self.put_stream(s).await?;
        Ok(json!({}))
    }

    pub(crate) async fn set_monitoring(
        &self,
        ctx: &RequestContext,
        input: Value,
        enable: bool,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(flatten)]
            sel: StreamSel,
            shard_level_metrics: Option<Vec<String>>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        c.required(&i.shard_level_metrics, "shardLevelMetrics")
            .count(
                i.shard_level_metrics.as_ref().map(|m| m.len()),
                "shardLevelMetrics",
                1,
                7,
            );
        let mut all = ALL_METRICS.to_vec();
        all.push("ALL");
        for (ix, m) in i.shard_level_metrics.iter().flatten().enumerate() {
            c.one_of(
                Some(m),
                &format!("shardLevelMetrics.{}.member", ix + 1),
                &all,
            );
        }
        let t = self.target(ctx, &i.sel, &mut c)?;
        let _w = self.write_lock.lock().await;
        let mut s = self.active_stream(&t)?;
        let current: Vec<String> = s.metrics.iter().cloned().collect();
        let wanted: BTreeSet<String> = i
            .shard_level_metrics
            .unwrap_or_default()
            .into_iter()
            .flat_map(|m| {
                if m == "ALL" {
                    ALL_METRICS.iter().map(|s| s.to_string()).collect()
                } else {
                    vec![m]
                }
            })
            .collect();
        if enable {
            s.metrics.extend(wanted);
        } else {
            s.metrics.retain(|m| !wanted.contains(m));
        }
        let desired: Vec<String> = s.metrics.iter().cloned().collect();
        let (arn, name) = (s.arn(), s.name.clone());
        if desired != current {
            self.put_stream(s).await?;
        }
        Ok(json!({
            "StreamName": name,
            "StreamARN": arn,
            "CurrentShardLevelMetrics": current,
            "DesiredShardLevelMetrics": desired,
        }))
    }

    pub(crate) fn describe_limits(&self, ctx: &RequestContext) -> ServiceResult<Value> {
        let now = self.now();
        let cat = self.catalog.read();
        let open = cat.open_shard_count(&ctx.account_id, &ctx.region, now);
        let on_demand = cat
            .streams
            .values()
            .filter(|s| {
                s.account == ctx.account_id
                    && s.region == ctx.region
                    && s.on_demand
                    && s.status_at(now).is_some()
            })
            .count();
        Ok(json!({
            "ShardLimit": shard_limit(&ctx.region),
            "OpenShardCount": open,
            "OnDemandStreamCount": on_demand,
            "OnDemandStreamCountLimit": ON_DEMAND_STREAM_LIMIT,
        }))
    }

    fn commitment_json(&self, a: Option<&AccountSettings>, now: u64) -> Value {
        let Some(a) = a.filter(|a| a.commitment_started_ms.is_some()) else {
            return json!({"Status": "DISABLED"});
        };
        let started = a.commitment_started_ms.unwrap_or(0);
        let earliest = started + 24 * 3_600_000;
        let mut m = Map::new();
        let status = match a.commitment_ended_ms {
            None => "ENABLED",
            Some(e) if now < e => "ENABLED_UNTIL_EARLIEST_ALLOWED_END",
            Some(_) => "DISABLED",
        };
        m.insert("Status".into(), json!(status));
        m.insert("StartedAt".into(), json!(ts_out(started)));
        if let Some(e) = a.commitment_ended_ms {
            m.insert("EndedAt".into(), json!(ts_out(e)));
        }
        m.insert("EarliestAllowedEndAt".into(), json!(ts_out(earliest)));
        Value::Object(m)
    }

    pub(crate) fn describe_account_settings(&self, ctx: &RequestContext) -> ServiceResult<Value> {
        let now = self.now();
        let cat = self.catalog.read();
        let a = cat
            .accounts
            .get(&Self::settings_key(&ctx.account_id, &ctx.region));
        Ok(json!({"MinimumThroughputBillingCommitment": self.commitment_json(a, now)}))
    }

    pub(crate) async fn update_account_settings(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Commit {
            status: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            minimum_throughput_billing_commitment: Option<Commit>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let status = i
            .minimum_throughput_billing_commitment
            .as_ref()
            .map(|c| c.status.clone());
        let mut c = Checks::new();
        c.required(
            &i.minimum_throughput_billing_commitment,
            "minimumThroughputBillingCommitment",
        );
        if let Some(st) = &status {
            c.required(st, "minimumThroughputBillingCommitment.status")
                .one_of(
                    st.as_deref(),
                    "minimumThroughputBillingCommitment.status",
                    &["ENABLED", "DISABLED"],
                );
        }
        c.finish()?;
        let enable = matches!(&status, Some(Some(s)) if s == "ENABLED");
        let _w = self.write_lock.lock().await;
        let now = self.now();
        let key = Self::settings_key(&ctx.account_id, &ctx.region);
        let mut a = self
            .catalog
            .read()
            .accounts
            .get(&key)
            .cloned()
            .unwrap_or_default();
        let active = a.commitment_enabled && a.commitment_ended_ms.is_none_or(|e| now < e);
        if enable && (!active || a.commitment_ended_ms.is_some()) {
            if !active {
                a.commitment_started_ms = Some(now);
            }
            a.commitment_enabled = true;
            a.commitment_ended_ms = None;
        } else if !enable && active && a.commitment_ended_ms.is_none() {
            let earliest = a.commitment_started_ms.unwrap_or(now) + 24 * 3_600_000;
            a.commitment_ended_ms = Some(now.max(earliest));
        }
        self.commit(CatalogEvent::PutAccountSettings {
            account: key,
            settings: a.clone(),
        })
        .await?;
        Ok(json!({"MinimumThroughputBillingCommitment": self.commitment_json(Some(&a), now)}))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::Env;
    use serde_json::json;

    #[tokio::test]
    async fn create_describe_list_delete() {
        let e = Env::new();
        e.create("s1", 3).await;
        let d = e.ok("DescribeStream", json!({"StreamName": "s1"})).await;
        let sd = &d["StreamDescription"];
        assert_eq!(sd["StreamStatus"], "ACTIVE");
        assert_eq!(
            sd["StreamARN"],
            "arn:aws:kinesis:us-east-1:000000000000:stream/s1"
        );
        assert_eq!(sd["Shards"].as_array().unwrap().len(), 3);
        assert_eq!(sd["Shards"][0]["ShardId"], "shardId-000000000000");
        assert_eq!(sd["Shards"][0]["HashKeyRange"]["StartingHashKey"], "0");
        assert_eq!(
            sd["Shards"][2]["HashKeyRange"]["EndingHashKey"],
            "340282366920938463463374607431768211455"
        );
        assert_eq!(sd["HasMoreShards"], false);
        assert_eq!(sd["RetentionPeriodHours"], 24);
        assert_eq!(sd["EncryptionType"], "NONE");
        assert_eq!(sd["StreamModeDetails"]["StreamMode"], "PROVISIONED");
        assert!(sd["StreamCreationTimestamp"].as_f64().unwrap() > 1.6e9);
        assert_eq!(sd["EnhancedMonitoring"], json!([{"ShardLevelMetrics": []}]));
        assert!(sd["Shards"][0]["SequenceNumberRange"]["EndingSequenceNumber"].is_null());

        let err = e
            .err("CreateStream", json!({"StreamName": "s1", "ShardCount": 1}))
            .await;
        assert_eq!(err.code, "ResourceInUseException");
        assert_eq!(
            err.message,
            "Stream s1 under account 000000000000 already exists."
        );

        // By ARN, and ARN/name mismatch.
        let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/s1";
        let d = e
            .ok("DescribeStreamSummary", json!({"StreamARN": arn}))
            .await;
        let s = &d["StreamDescriptionSummary"];
        assert_eq!(s["OpenShardCount"], 3);
        assert_eq!(s["ConsumerCount"], 0);
        assert_eq!(s["MaxRecordSizeInKiB"], 1024);
        assert!(s["StreamId"].as_str().unwrap().len() == 24);
        let err = e
            .err(
                "DescribeStream",
                json!({"StreamARN": arn, "StreamName": "other"}),
            )
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        let err = e.err("DescribeStream", json!({})).await;
        assert_eq!(err.code, "InvalidArgumentException");
        let err = e.err("DescribeStream", json!({"StreamARN": "nope"})).await;
        assert_eq!(err.code, "ValidationException");

        // Region scoping.
        let mut other = e.ctx.clone();
        other.region = "eu-west-1".into();
        let err = e
            .svc
            .dispatch(&other, "DescribeStream", json!({"StreamName": "s1"}))
            .await
            .unwrap_err();
        assert_eq!(err.code, "ResourceNotFoundException");
        assert_eq!(
            err.message,
            "Stream s1 under account 000000000000 not found."
        );

        e.create("s2", 1).await;
        e.create("a0", 1).await;
        let l = e.ok("ListStreams", json!({})).await;
        assert_eq!(l["StreamNames"], json!(["a0", "s1", "s2"]));
        assert_eq!(l["HasMoreStreams"], false);
        assert_eq!(l["StreamSummaries"][1]["StreamStatus"], "ACTIVE");
        let l = e.ok("ListStreams", json!({"Limit": 2})).await;
        assert_eq!(l["StreamNames"], json!(["a0", "s1"]));
        assert_eq!(l["HasMoreStreams"], true);
        let tok = l["NextToken"].as_str().unwrap().to_string();
        let l = e.ok("ListStreams", json!({"NextToken": tok})).await;
        assert_eq!(l["StreamNames"], json!(["s2"]));
        let l = e
            .ok("ListStreams", json!({"ExclusiveStartStreamName": "a0"}))
            .await;
        assert_eq!(l["StreamNames"], json!(["s1", "s2"]));

        e.ok("DeleteStream", json!({"StreamName": "s2"})).await;
        let err = e.err("DescribeStream", json!({"StreamName": "s2"})).await;
        assert_eq!(err.code, "ResourceNotFoundException");
        let err = e.err("DeleteStream", json!({"StreamName": "s2"})).await;
        assert_eq!(err.code, "ResourceNotFoundException");
        // Name reuse after delete.
        e.create("s2", 2).await;
    }

    #[tokio::test]
    async fn create_validation() {
        let e = Env::new();
        // An empty tag map breaks the TagMap's minimum of one entry, on both actions.
        let want = "1 validation error detected: Value '{}' at 'tags' failed to satisfy constraint: Member must have length greater than or equal to 1";
        let err = e
            .err(
                "CreateStream",
                json!({"StreamName": "t", "ShardCount": 1, "Tags": {}}),
            )
            .await;
        assert_eq!(err.message, want);
        e.ok("CreateStream", json!({"StreamName": "t", "ShardCount": 1}))
            .await;
        let err = e
            .err("AddTagsToStream", json!({"StreamName": "t", "Tags": {}}))
            .await;
        assert_eq!(err.message, want);
        let err = e
            .err(
                "TagResource",
                json!({"ResourceARN": "arn:aws:kinesis:us-east-1:000000000000:stream/t", "Tags": {}}),
            )
            .await;
        assert_eq!(err.message, want);
        let err = e
            .err(
                "CreateStream",
                json!({"StreamName": "bad name", "ShardCount": 1}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
        assert!(err.message.contains("at 'streamName'"), "{}", err.message);
        let long = "x".repeat(129);
        let err = e
            .err("CreateStream", json!({"StreamName": long, "ShardCount": 1}))
            .await;
        assert!(err.message.contains("length less than or equal to 128"));
        let err = e
            .err("CreateStream", json!({"StreamName": "s", "ShardCount": 0}))
            .await;
        assert_eq!(err.code, "ValidationException");
        // Without ShardCount AWS creates an on-demand stream (see
        // create_without_shard_count_or_mode_is_on_demand); PROVISIONED still needs one.
        let err = e
            .err(
                "CreateStream",
                json!({"StreamName": "s", "StreamModeDetails": {"StreamMode": "PROVISIONED"}}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
        assert!(err.message.contains("'shardCount'"));
        let err = e.err("CreateStream", json!({"ShardCount": 1})).await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .err(
                "CreateStream",
                json!({"StreamName": "s", "ShardCount": "x"}),
            )
            .await;
        assert_eq!(err.code, "SerializationException");
        let err = e
            .err(
                "CreateStream",
                json!({"StreamName": "s", "ShardCount": 20_001}),
            )
            .await;
        assert_eq!(err.code, "LimitExceededException");
        let err = e
            .err(
                "CreateStream",
                json!({"StreamName": "s", "StreamModeDetails": {"StreamMode": "FAST"}}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .err(
                "CreateStream",
                json!({"StreamName": "s", "ShardCount": 1, "MaxRecordSizeInKiB": 100}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
    }

    /// LocalStack's AWS-validated snapshot (test_create_stream_without_shard_count) records 4
    /// shards, the on-demand starting size.
    #[tokio::test]
    async fn create_without_shard_count_or_mode_is_on_demand() {
        let e = Env::new();
        e.ok("CreateStream", json!({"StreamName": "d"})).await;
        let d = e
            .ok("DescribeStreamSummary", json!({"StreamName": "d"}))
            .await;
        assert_eq!(d["StreamDescriptionSummary"]["OpenShardCount"], 4);
        assert_eq!(
            d["StreamDescriptionSummary"]["StreamModeDetails"]["StreamMode"],
            "ON_DEMAND"
        );
        let l = e.ok("DescribeLimits", json!({})).await;
        assert_eq!(l["OnDemandStreamCount"], 1);
    }

    #[tokio::test]
    async fn shard_limit_message_names_the_requested_count() {
        let e = Env::new();
        let err = e
            .err(
                "CreateStream",
                json!({"StreamName": "big", "ShardCount": 20_001}),
            )
            .await;
        assert_eq!(err.code, "LimitExceededException");
        assert!(
            err.message.contains(
                "Limit: 20000. Number of additional shards that would have resulted from this request: 20001."
            ),
            "{}",
            err.message
        );
    }

    /// Limit accepts up to 10000, but "if you specify a value greater than 100, at most 100
    /// results are returned".
    #[tokio::test]
    async fn describe_and_list_return_at_most_100() {
        let e = Env::new();
        e.create("wide", 120).await;
        let d = e
            .ok(
                "DescribeStream",
                json!({"StreamName": "wide", "Limit": 1000}),
            )
            .await;
        assert_eq!(
            d["StreamDescription"]["Shards"].as_array().unwrap().len(),
            100
        );
        assert_eq!(d["StreamDescription"]["HasMoreShards"], true);
        for n in 0..119 {
            e.create(&format!("s{n:03}"), 1).await;
        }
        let l = e.ok("ListStreams", json!({"Limit": 1000})).await;
        assert_eq!(l["StreamNames"].as_array().unwrap().len(), 100);
        assert_eq!(l["HasMoreStreams"], true);
        let l = e
            .ok(
                "ListStreams",
                json!({"Limit": 1000, "NextToken": l["NextToken"]}),
            )
            .await;
        assert_eq!(l["StreamNames"].as_array().unwrap().len(), 20);
        assert_eq!(l["HasMoreStreams"], false);
    }

    #[tokio::test]
    async fn on_demand_and_mode_switch() {
        let e = Env::new();
        e.ok(
            "CreateStream",
            json!({"StreamName": "od", "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}),
        )
        .await;
        let d = e
            .ok("DescribeStreamSummary", json!({"StreamName": "od"}))
            .await;
        assert_eq!(d["StreamDescriptionSummary"]["OpenShardCount"], 4);
        assert_eq!(
            d["StreamDescriptionSummary"]["StreamModeDetails"]["StreamMode"],
            "ON_DEMAND"
        );
        let l = e.ok("DescribeLimits", json!({})).await;
        assert_eq!(l["OnDemandStreamCount"], 1);
        assert_eq!(l["OpenShardCount"], 4);
        // AWS's default quota of us-east-1 (the tests' region), not the 500 of years ago:
        // a 501-shard stream is taken.
        assert_eq!(l["ShardLimit"], 20_000);
        assert_eq!(super::shard_limit("eu-central-1"), 6_000);
        let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/od";
        e.ok(
            "UpdateStreamMode",
            json!({"StreamARN": arn, "StreamModeDetails": {"StreamMode": "PROVISIONED"}}),
        )
        .await;
        let d = e
            .ok("DescribeStreamSummary", json!({"StreamName": "od"}))
            .await;
        assert_eq!(
            d["StreamDescriptionSummary"]["StreamModeDetails"]["StreamMode"],
            "PROVISIONED"
        );
        let err = e
            .err(
                "UpdateStreamMode",
                json!({"StreamARN": arn, "StreamModeDetails": {"StreamMode": "PROVISIONED"}}),
            )
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        let err = e
            .err(
                "UpdateStreamMode",
                json!({"StreamModeDetails": {"StreamMode": "PROVISIONED"}}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
    }

    #[tokio::test]
    async fn retention_changes() {
        let e = Env::new();
        e.create("r", 1).await;
        let inc = |h: i64| json!({"StreamName": "r", "RetentionPeriodHours": h});
        e.ok("IncreaseStreamRetentionPeriod", inc(48)).await;
        let d = e.ok("DescribeStream", json!({"StreamName": "r"})).await;
        assert_eq!(d["StreamDescription"]["RetentionPeriodHours"], 48);
        let err = e.err("IncreaseStreamRetentionPeriod", inc(24)).await;
        assert_eq!(err.code, "InvalidArgumentException");
        assert!(err.message.contains("can not be shorter"));
        let err = e.err("DecreaseStreamRetentionPeriod", inc(72)).await;
        assert!(err.message.contains("can not be longer"));
        let err = e.err("DecreaseStreamRetentionPeriod", inc(23)).await;
        assert_eq!(
            err.message,
            "Minimum allowed retention period is 24 hours. Requested retention period (23 hours) is too short."
        );
        let err = e.err("IncreaseStreamRetentionPeriod", inc(8761)).await;
        assert_eq!(err.code, "InvalidArgumentException");
        e.ok("DecreaseStreamRetentionPeriod", inc(24)).await;
        let err = e
            .err("IncreaseStreamRetentionPeriod", json!({"StreamName": "r"}))
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .err(
                "IncreaseStreamRetentionPeriod",
                json!({"StreamName": "zz", "RetentionPeriodHours": 48}),
            )
            .await;
        assert_eq!(err.code, "ResourceNotFoundException");
    }

    #[tokio::test]
    async fn encryption_monitoring_max_record_size() {
        let e = Env::new();
        e.create("x", 1).await;
        e.ok(
            "StartStreamEncryption",
            json!({"StreamName": "x", "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}),
        )
        .await;
        let d = e.ok("DescribeStream", json!({"StreamName": "x"})).await;
        assert_eq!(d["StreamDescription"]["EncryptionType"], "KMS");
        assert_eq!(d["StreamDescription"]["KeyId"], "alias/aws/kinesis");
        let err = e
            .err(
                "StartStreamEncryption",
                json!({"StreamName": "x", "EncryptionType": "NONE", "KeyId": "k"}),
            )
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        let err = e
            .err(
                "StartStreamEncryption",
                json!({"StreamName": "x", "EncryptionType": "KMS"}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
        e.ok(
            "StopStreamEncryption",
            json!({"StreamName": "x", "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}),
        )
        .await;
        let d = e.ok("DescribeStream", json!({"StreamName": "x"})).await;
        assert_eq!(d["StreamDescription"]["EncryptionType"], "NONE");
        assert!(d["StreamDescription"]["KeyId"].is_null());

        let m = e
            .ok(
                "EnableEnhancedMonitoring",
                json!({"StreamName": "x", "ShardLevelMetrics": ["IncomingBytes"]}),
            )
            .await;
        assert_eq!(m["CurrentShardLevelMetrics"], json!([]));
        assert_eq!(m["DesiredShardLevelMetrics"], json!(["IncomingBytes"]));
        assert_eq!(m["StreamName"], "x");
        let m = e
            .ok(
                "EnableEnhancedMonitoring",
                json!({"StreamName": "x", "ShardLevelMetrics": ["ALL"]}),
            )
            .await;
        assert_eq!(m["DesiredShardLevelMetrics"].as_array().unwrap().len(), 7);
        let m = e
            .ok(
                "DisableEnhancedMonitoring",
                json!({"StreamName": "x", "ShardLevelMetrics": ["ALL"]}),
            )
            .await;
        assert_eq!(m["DesiredShardLevelMetrics"], json!([]));
        let err = e
            .err(
                "EnableEnhancedMonitoring",
                json!({"StreamName": "x", "ShardLevelMetrics": ["Nope"]}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .err(
                "EnableEnhancedMonitoring",
                json!({"StreamName": "x", "ShardLevelMetrics": []}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");

        let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/x";
        e.ok(
            "UpdateMaxRecordSize",
            json!({"StreamARN": arn, "MaxRecordSizeInKiB": 10240}),
        )
        .await;
        let d = e
            .ok("DescribeStreamSummary", json!({"StreamARN": arn}))
            .await;
        assert_eq!(d["StreamDescriptionSummary"]["MaxRecordSizeInKiB"], 10240);
        let err = e
            .err(
                "UpdateMaxRecordSize",
                json!({"StreamARN": arn, "MaxRecordSizeInKiB": 10241}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
    }

    #[tokio::test]
    async fn account_settings_and_warm_throughput() {
        let e = Env::new();
        let s = e.ok("DescribeAccountSettings", json!({})).await;
        assert_eq!(
            s["MinimumThroughputBillingCommitment"]["Status"],
            "DISABLED"
        );
        e.ok(
            "CreateStream",
            json!({"StreamName": "od", "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}),
        )
        .await;
        let err = e
            .err(
                "UpdateStreamWarmThroughput",
                json!({"StreamName": "od", "WarmThroughputMiBps": 100}),
            )
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        let s = e
            .ok(
                "UpdateAccountSettings",
                json!({"MinimumThroughputBillingCommitment": {"Status": "ENABLED"}}),
            )
            .await;
        assert_eq!(s["MinimumThroughputBillingCommitment"]["Status"], "ENABLED");
        assert!(s["MinimumThroughputBillingCommitment"]["StartedAt"].is_number());
        let w = e
            .ok(
                "UpdateStreamWarmThroughput",
                json!({"StreamName": "od", "WarmThroughputMiBps": 100}),
            )
            .await;
        assert_eq!(w["WarmThroughput"]["TargetMiBps"], 100);
        assert_eq!(w["StreamName"], "od");
        let d = e
            .ok("DescribeStreamSummary", json!({"StreamName": "od"}))
            .await;
        assert_eq!(
            d["StreamDescriptionSummary"]["WarmThroughput"]["CurrentMiBps"],
            100
        );
        let s = e
            .ok(
                "UpdateAccountSettings",
                json!({"MinimumThroughputBillingCommitment": {"Status": "DISABLED"}}),
            )
            .await;
        assert_eq!(
            s["MinimumThroughputBillingCommitment"]["Status"],
            "ENABLED_UNTIL_EARLIEST_ALLOWED_END"
        );
        let err = e
            .err(
                "UpdateAccountSettings",
                json!({"MinimumThroughputBillingCommitment": {"Status": "MAYBE"}}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e.err("UpdateAccountSettings", json!({})).await;
        assert_eq!(err.code, "ValidationException");
        e.create("prov", 1).await;
        let err = e
            .err(
                "UpdateStreamWarmThroughput",
                json!({"StreamName": "prov", "WarmThroughputMiBps": 10}),
            )
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
    }

    #[tokio::test]
    async fn transitions_are_delayed_when_configured() {
        let e = Env::with_config(|c| c.kinesis_transition_ms = 60_000);
        e.create("t", 1).await;
        let d = e
            .ok("DescribeStreamSummary", json!({"StreamName": "t"}))
            .await;
        assert_eq!(d["StreamDescriptionSummary"]["StreamStatus"], "CREATING");
        let err = e
            .err(
                "IncreaseStreamRetentionPeriod",
                json!({"StreamName": "t", "RetentionPeriodHours": 48}),
            )
            .await;
        assert_eq!(err.code, "ResourceInUseException");
        assert_eq!(
            err.message,
            "Stream t under account 000000000000 not ACTIVE, instead in state CREATING"
        );
        e.svc.advance_clock(60_000);
        let d = e
            .ok("DescribeStreamSummary", json!({"StreamName": "t"}))
            .await;
        assert_eq!(d["StreamDescriptionSummary"]["StreamStatus"], "ACTIVE");
        e.ok(
            "IncreaseStreamRetentionPeriod",
            json!({"StreamName": "t", "RetentionPeriodHours": 48}),
        )
        .await;
        let d = e
            .ok("DescribeStreamSummary", json!({"StreamName": "t"}))
            .await;
        assert_eq!(d["StreamDescriptionSummary"]["StreamStatus"], "UPDATING");
        e.svc.advance_clock(60_000);
        e.ok("DeleteStream", json!({"StreamName": "t"})).await;
        let d = e
            .ok("DescribeStreamSummary", json!({"StreamName": "t"}))
            .await;
        assert_eq!(d["StreamDescriptionSummary"]["StreamStatus"], "DELETING");
        let err = e
            .err("CreateStream", json!({"StreamName": "t", "ShardCount": 1}))
            .await;
        assert_eq!(err.code, "ResourceInUseException");
        e.svc.advance_clock(60_000);
        let err = e.err("DescribeStream", json!({"StreamName": "t"})).await;
        assert_eq!(err.code, "ResourceNotFoundException");
        e.create("t", 1).await;
    }
}
