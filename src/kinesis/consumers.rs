//! Enhanced fan-out consumers: RegisterStreamConsumer, DeregisterStreamConsumer,
//! DescribeStreamConsumer, ListStreamConsumers. SubscribeToShard lives in `subscribe.rs`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::context::RequestContext;
use crate::error::{ServiceError, ServiceResult};
use crate::service::parse_input;

use super::error::{in_use, invalid_argument, limit_exceeded, not_found};
use super::keys::{self, ts_out};
use super::state::{ConsumerMeta, Status, StreamMeta};
use super::streams::{check_tag_chars, check_tags};
use super::validate::{self, Checks};
use super::{Kinesis, StreamSel, Target};

const MAX_CONSUMERS: usize = 20;
const MAX_CREATING: usize = 5;
const CONSUMER_ARN_PATTERN: &str =
    "^(arn):aws.*:kinesis:.*:\\d{12}:.*stream\\/[a-zA-Z0-9_.-]+\\/consumer\\/[a-zA-Z0-9_.-]+:[0-9]+";

/// How a request names a consumer: by ARN, or by stream ARN and consumer name.
pub(crate) struct ConsumerRef {
    pub(crate) target: Target,
    name: String,
    created_s: Option<u64>,
    arn: Option<String>,
}

fn consumer_not_found(name: &str, s_name: &str, account: &str) -> ServiceError {
    not_found(format!(
        "Consumer {name} under stream {s_name} under account {account} not found."
    ))
}

fn consumer_json(s: &StreamMeta, c: &ConsumerMeta, now: u64, with_stream: bool) -> Value {
    let mut m = Map::new();
    m.insert("ConsumerName".into(), json!(c.name));
    m.insert("ConsumerARN".into(), json!(s.consumer_arn(c)));
    m.insert(
        "ConsumerStatus".into(),
        json!(c.status_at(now).unwrap_or(Status::Deleting).as_str()),
    );
    m.insert(
        "ConsumerCreationTimestamp".into(),
        json!(ts_out(c.created_ms)),
    );
    if with_stream {
        m.insert("StreamARN".into(), json!(s.arn()));
    }
    Value::Object(m)
}

impl Kinesis {
    pub(crate) fn consumer_ref(
        &self,
        ctx: &RequestContext,
        stream_arn: Option<String>,
        consumer_name: Option<String>,
        consumer_arn: Option<String>,
    ) -> ServiceResult<ConsumerRef> {
        let mut c = Checks::new();
        c.name(consumer_name.as_deref(), "consumerName", 128);
        if let Some(a) = consumer_arn.as_deref() {
            c.len(Some(a), "consumerARN", 1, 2048).pattern(
                Some(a),
                "consumerARN",
                validate::parse_consumer_arn(a).is_some(),
                CONSUMER_ARN_PATTERN,
            );
        }
        if let Some(arn) = consumer_arn {
            c.finish()?;
            let (region, account, stream, name, created) = validate::parse_consumer_arn(&arn)
                .ok_or_else(|| invalid_argument("Invalid ConsumerARN."))?;
            return Ok(ConsumerRef {
                target: Target {
                    account,
                    region,
                    name: stream,
                },
                name,
                created_s: Some(created),
                arn: Some(arn),
            });
        }
        let (Some(stream_arn), Some(name)) = (stream_arn, consumer_name) else {
            c.finish()?;
            return Err(invalid_argument(
                "Either ConsumerARN or both StreamARN and ConsumerName must be provided.",
            ));
        };
        let sel = StreamSel {
            stream_arn: Some(stream_arn),
            ..StreamSel::default()
        };
        let target = self.target(ctx, &sel, &mut c)?;
        Ok(ConsumerRef {
            target,
            name,
            created_s: None,
            arn: None,
        })
    }

    pub(crate) fn find_consumer<'a>(
        s: &'a StreamMeta,
        r: &ConsumerRef,
        now: u64,
    ) -> ServiceResult<&'a ConsumerMeta> {
        s.consumers
            .get(&r.name)
            .filter(|c| c.status_at(now).is_some())
            .filter(|c| r.created_s.is_none_or(|t| t == c.created_ms / 1000))
            .ok_or_else(|| match &r.arn {
                Some(arn) => not_found(format!("Consumer {arn} not found.")),
                None => consumer_not_found(&r.name, &s.name, &s.account),
            })
    }

    pub(crate) async fn register_consumer(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(rename = "StreamARN")]
            stream_arn: Option<String>,
            consumer_name: Option<String>,
            tags: Option<BTreeMap<String, String>>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        c.required(&i.stream_arn, "streamARN")
            .required(&i.consumer_name, "consumerName")
            .name(i.consumer_name.as_deref(), "consumerName", 128);
        if let Some(t) = &i.tags {
            check_tags(&mut c, t, "tags");
        }
        let sel = StreamSel {
            stream_arn: i.stream_arn,
            ..StreamSel::default()
        };
        let t = self.target(ctx, &sel, &mut c)?;
        let name = i.consumer_name.unwrap_or_default();
        let _w = self.write_lock.lock().await;
        let now = self.now();
        let mut s = self.stream(&t)?;
        if let Some(tags) = &i.tags {
            check_tag_chars(tags.iter().flat_map(|(k, v)| [k, v]))?;
        }
        if !matches!(s.status_at(now), Some(Status::Active | Status::Updating)) {
            return Err(super::error::not_active(
                &s.name,
                &s.account,
                s.status_at(now).unwrap_or(Status::Deleting).as_str(),
            ));
        }
        if s.consumers
            .get(&name)
            .is_some_and(|c| c.status_at(now).is_some())
        {
            return Err(in_use(format!(
                "Consumer {name} under stream {} already exists for account {}.",
                s.name, s.account
            )));
        }
        let live: Vec<Status> = s
            .consumers
            .values()
            .filter_map(|c| c.status_at(now))
            .collect();
        if live.len() >= MAX_CONSUMERS {
            return Err(limit_exceeded(format!(
                "Stream {} under account {} already has {MAX_CONSUMERS} registered consumers.",
                s.name, s.account
            )));
        }
        if live.iter().filter(|st| **st == Status::Creating).count() >= MAX_CREATING {
            return Err(limit_exceeded(format!(
                "Stream {} under account {} already has {MAX_CREATING} consumers in CREATING status.",
                s.name, s.account
            )));
        }
        // Consumer ARNs carry creation seconds; keep them distinct from a previous incarnation.
        let mut created_ms = now;
        if let Some(old) = s.consumers.get(&name) {
            if old.created_ms / 1000 >= created_ms / 1000 {
                created_ms = (old.created_ms / 1000 + 1) * 1000;
            }
        }
        let c = ConsumerMeta {
            name: name.clone(),
            created_ms,
            status: Status::Creating,
            ready_at_ms: now + self.transition_ms,
            tags: i.tags.unwrap_or_default(),
            policy: None,
        };
        let out = consumer_json(&s, &c, now, false);
        s.consumers.insert(name, c);
        self.put_stream(s).await?;
        Ok(json!({ "Consumer": out }))
    }

    pub(crate) async fn deregister_consumer(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(rename = "StreamARN")]
            stream_arn: Option<String>,
            consumer_name: Option<String>,
            #[serde(rename = "ConsumerARN")]
            consumer_arn: Option<String>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let r = self.consumer_ref(ctx, i.stream_arn, i.consumer_name, i.consumer_arn)?;
        let _w = self.write_lock.lock().await;
        let now = self.now();
        let mut s = self.stream(&r.target)?;
        let status = Self::find_consumer(&s, &r, now)?.status_at(now);
        if status == Some(Status::Deleting) {
            return Err(in_use(format!(
                "Consumer {} under stream {} is already being deleted.",
                r.name, s.name
            )));
        }
        // The entry stays as a tombstone so a re-registration gets a later ARN timestamp.
        if let Some(c) = s.consumers.get_mut(&r.name) {
            c.status = Status::Deleting;
            c.ready_at_ms = now + self.transition_ms;
        }
        self.put_stream(s).await?;
        Ok(json!({}))
    }

    pub(crate) fn describe_consumer(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(rename = "StreamARN")]
            stream_arn: Option<String>,
            consumer_name: Option<String>,
            #[serde(rename = "ConsumerARN")]
            consumer_arn: Option<String>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let r = self.consumer_ref(ctx, i.stream_arn, i.consumer_name, i.consumer_arn)?;
        let now = self.now();
        self.with_stream(&r.target, |s| {
            let c = Self::find_consumer(s, &r, now)?;
            Ok(json!({ "ConsumerDescription": consumer_json(s, c, now, true) }))
        })
    }

    pub(crate) fn list_consumers(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(rename = "StreamARN")]
            stream_arn: Option<String>,
            next_token: Option<String>,
            max_results: Option<i64>,
            #[allow(dead_code)]
            stream_creation_timestamp: Option<Value>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        c.required(&i.stream_arn, "streamARN")
            .range(i.max_results, "maxResults", 1, Some(10000))
            .len(i.next_token.as_deref(), "nextToken", 1, 1_048_576);
        let sel = StreamSel {
            stream_arn: i.stream_arn,
            ..StreamSel::default()
        };
        let t = self.target(ctx, &sel, &mut c)?;
        let after = match &i.next_token {
            Some(tok) => Some(
                keys::decode_token(tok)
                    .filter(|p| p.len() == 2 && p[0] == "consumers")
                    .map(|mut p| p.remove(1))
                    .ok_or_else(|| invalid_argument(format!("Invalid NextToken: {tok}")))?,
            ),
            None => None,
        };
        let limit = i.max_results.unwrap_or(100) as usize;
        let now = self.now();
        self.with_stream(&t, |s| {
            let all: Vec<&ConsumerMeta> = s
                .consumers
                .values()
                .filter(|c| c.status_at(now).is_some())
                .filter(|c| after.as_ref().is_none_or(|a| &c.name > a))
                .collect();
            let page: Vec<Value> = all
                .iter()
                .take(limit)
                .map(|c| consumer_json(s, c, now, false))
                .collect();
            let mut out = Map::new();
            out.insert("Consumers".into(), Value::Array(page));
            if all.len() > limit {
                let last = &all[limit - 1].name;
                out.insert(
                    "NextToken".into(),
                    json!(keys::encode_token(&["consumers", last])),
                );
            }
            Ok(Value::Object(out))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::Env;
    use serde_json::json;

    const ARN: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/s";

    #[tokio::test]
    async fn consumer_lifecycle() {
        let e = Env::new();
        e.create("s", 2).await;
        let r = e
            .ok(
                "RegisterStreamConsumer",
                json!({"StreamARN": ARN, "ConsumerName": "c1", "Tags": {"a": "b"}}),
            )
            .await;
        let c = &r["Consumer"];
        assert_eq!(c["ConsumerName"], "c1");
        assert!(c["ConsumerARN"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{ARN}/consumer/c1:")));
        assert_eq!(c["ConsumerStatus"], "ACTIVE");
        assert!(c["ConsumerCreationTimestamp"].is_number());
        let carn = c["ConsumerARN"].as_str().unwrap().to_string();
        let err = e
            .err(
                "RegisterStreamConsumer",
                json!({"StreamARN": ARN, "ConsumerName": "c1"}),
            )
            .await;
        assert_eq!(err.code, "ResourceInUseException");
        e.ok(
            "RegisterStreamConsumer",
            json!({"StreamARN": ARN, "ConsumerName": "c2"}),
        )
        .await;

        let d = e
            .ok("DescribeStreamConsumer", json!({"ConsumerARN": carn}))
            .await;
        assert_eq!(d["ConsumerDescription"]["StreamARN"], ARN);
        assert_eq!(d["ConsumerDescription"]["ConsumerName"], "c1");
        let d = e
            .ok(
                "DescribeStreamConsumer",
                json!({"StreamARN": ARN, "ConsumerName": "c2"}),
            )
            .await;
        assert_eq!(d["ConsumerDescription"]["ConsumerStatus"], "ACTIVE");
        let s = e
            .ok("DescribeStreamSummary", json!({"StreamName": "s"}))
            .await;
        assert_eq!(s["StreamDescriptionSummary"]["ConsumerCount"], 2);

        let l = e.ok("ListStreamConsumers", json!({"StreamARN": ARN})).await;
        assert_eq!(l["Consumers"].as_array().unwrap().len(), 2);
        assert!(l["NextToken"].is_null());
        let l = e
            .ok(
                "ListStreamConsumers",
                json!({"StreamARN": ARN, "MaxResults": 1}),
            )
            .await;
        assert_eq!(l["Consumers"][0]["ConsumerName"], "c1");
        let l = e
            .ok(
                "ListStreamConsumers",
                json!({"StreamARN": ARN, "NextToken": l["NextToken"]}),
            )
            .await;
        assert_eq!(l["Consumers"][0]["ConsumerName"], "c2");
        assert!(l["NextToken"].is_null());

        // SubscribeToShard validates, then reports the missing event stream.
        let sub = |shard: &str| json!({"ConsumerARN": carn, "ShardId": shard, "StartingPosition": {"Type": "LATEST"}});
        let err = e.err("SubscribeToShard", sub("shardId-000000000009")).await;
        assert_eq!(err.code, "ResourceNotFoundException");
        let err = e.err("SubscribeToShard", sub("shardId-000000000000")).await;
        assert_eq!(err.code, "InvalidArgumentException");
        assert!(err.message.contains("SubscribeToShard"));
        let err = e
            .err(
                "SubscribeToShard",
                json!({"ConsumerARN": carn, "ShardId": "shardId-000000000000"}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");

        // Deleting a stream with consumers needs EnforceConsumerDeletion.
        let err = e.err("DeleteStream", json!({"StreamName": "s"})).await;
        assert_eq!(err.code, "ResourceInUseException");

        e.ok("DeregisterStreamConsumer", json!({"ConsumerARN": carn}))
            .await;
        let err = e
            .err("DescribeStreamConsumer", json!({"ConsumerARN": carn}))
            .await;
        assert_eq!(err.code, "ResourceNotFoundException");
        e.ok(
            "DeregisterStreamConsumer",
            json!({"StreamARN": ARN, "ConsumerName": "c2"}),
        )
        .await;
        let err = e
            .err(
                "DeregisterStreamConsumer",
                json!({"StreamARN": ARN, "ConsumerName": "c2"}),
            )
            .await;
        assert_eq!(err.code, "ResourceNotFoundException");
        let err = e
            .err("DeregisterStreamConsumer", json!({"StreamARN": ARN}))
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        let err = e
            .err(
                "RegisterStreamConsumer",
                json!({"StreamARN": ARN, "ConsumerName": "bad name"}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .err("RegisterStreamConsumer", json!({"ConsumerName": "x"}))
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .err(
                "RegisterStreamConsumer",
                json!({"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/none", "ConsumerName": "x"}),
            )
            .await;
        assert_eq!(err.code, "ResourceNotFoundException");
        let err = e.err("ListStreamConsumers", json!({})).await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .err("DescribeStreamConsumer", json!({"ConsumerARN": "arn:bad"}))
            .await;
        assert_eq!(err.code, "ValidationException");

        // A re-registered name gets a new ARN; the old one no longer resolves.
        let r = e
            .ok(
                "RegisterStreamConsumer",
                json!({"StreamARN": ARN, "ConsumerName": "c1"}),
            )
            .await;
        assert_ne!(r["Consumer"]["ConsumerARN"], carn.as_str());
        let err = e
            .err("DescribeStreamConsumer", json!({"ConsumerARN": carn}))
            .await;
        assert_eq!(err.code, "ResourceNotFoundException");
        e.ok(
            "DeleteStream",
            json!({"StreamName": "s", "EnforceConsumerDeletion": true}),
        )
        .await;
    }

    #[tokio::test]
    async fn consumer_limits_and_transitions() {
        let e = Env::with_config(|c| c.kinesis_transition_ms = 10_000);
        e.create("s", 1).await;
        let err = e
            .err(
                "RegisterStreamConsumer",
                json!({"StreamARN": ARN, "ConsumerName": "c"}),
            )
            .await;
        assert_eq!(err.code, "ResourceInUseException");
        e.svc.advance_clock(10_000);
        for i in 0..5 {
            let r = e
                .ok(
                    "RegisterStreamConsumer",
                    json!({"StreamARN": ARN, "ConsumerName": format!("c{i}")}),
                )
                .await;
            assert_eq!(r["Consumer"]["ConsumerStatus"], "CREATING");
        }
        let err = e
            .err(
                "RegisterStreamConsumer",
                json!({"StreamARN": ARN, "ConsumerName": "c5"}),
            )
            .await;
        assert_eq!(err.code, "LimitExceededException");
        e.svc.advance_clock(10_000);
        let d = e
            .ok(
                "DescribeStreamConsumer",
                json!({"StreamARN": ARN, "ConsumerName": "c0"}),
            )
            .await;
        assert_eq!(d["ConsumerDescription"]["ConsumerStatus"], "ACTIVE");
        for i in 5..20 {
            e.ok(
                "RegisterStreamConsumer",
                json!({"StreamARN": ARN, "ConsumerName": format!("c{i}")}),
            )
            .await;
            if i % 4 == 0 {
                e.svc.advance_clock(10_000);
            }
        }
        e.svc.advance_clock(10_000);
        let err = e
            .err(
                "RegisterStreamConsumer",
                json!({"StreamARN": ARN, "ConsumerName": "c20"}),
            )
            .await;
        assert_eq!(err.code, "LimitExceededException");
        e.ok(
            "DeregisterStreamConsumer",
            json!({"StreamARN": ARN, "ConsumerName": "c0"}),
        )
        .await;
        let d = e
            .ok(
                "DescribeStreamConsumer",
                json!({"StreamARN": ARN, "ConsumerName": "c0"}),
            )
            .await;
        assert_eq!(d["ConsumerDescription"]["ConsumerStatus"], "DELETING");
        e.svc.advance_clock(10_000);
        let err = e
            .err(
                "DescribeStreamConsumer",
                json!({"StreamARN": ARN, "ConsumerName": "c0"}),
            )
            .await;
        assert_eq!(err.code, "ResourceNotFoundException");
    }
}
