//! Tags and resource policies: AddTagsToStream, RemoveTagsFromStream, ListTagsForStream,
//! TagResource, UntagResource, ListTagsForResource, Put/Get/DeleteResourcePolicy. Resources are
//! streams or registered consumers, named by ARN (or StreamName for the *Stream actions).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::context::RequestContext;
use crate::error::ServiceResult;
use crate::service::parse_input;

use super::error::{invalid_argument, not_found};
use super::state::StreamMeta;
use super::streams::{check_no_percent, check_tag_chars, check_tags};
use super::validate::{self, Checks};
use super::{Kinesis, StreamSel, Target};

const MAX_TAGS: usize = 50;

/// A resource an ARN names: a stream, or one of its consumers.
pub(crate) enum Resource {
    Stream(Target),
    Consumer(Target, String, u64),
}

pub(crate) fn check_resource_arn(c: &mut Checks, arn: Option<&str>) {
    c.required(&arn, "resourceARN");
    if let Some(a) = arn {
        c.len(Some(a), "resourceARN", 1, 2048);
        let ok =
            validate::parse_stream_arn(a).is_some() || validate::parse_consumer_arn(a).is_some();
        c.pattern(
            Some(a),
            "resourceARN",
            ok,
            "arn:aws.*:kinesis:.*:\\d{12}:.*stream/\\S+",
        );
    }
}

pub(crate) fn parse_resource(arn: &str) -> ServiceResult<Resource> {
    if let Some((region, account, stream, consumer, created)) = validate::parse_consumer_arn(arn) {
        return Ok(Resource::Consumer(
            Target {
                account,
                region,
                name: stream,
            },
            consumer,
            created,
        ));
    }
    if let Some((region, account, name)) = validate::parse_stream_arn(arn) {
        return Ok(Resource::Stream(Target {
            account,
            region,
            name,
        }));
    }
    Err(invalid_argument(format!("Invalid ResourceARN: {arn}")))
}

fn consumer_missing(arn: &str) -> crate::error::ServiceError {
    not_found(format!("Consumer {arn} not found."))
}

impl Kinesis {
    /// Applies `f` to the tags/policy holder an ARN names and stores the stream.
    async fn modify_resource(
        &self,
        arn: &str,
        f: impl FnOnce(
            &mut BTreeMap<String, String>,
            &mut Option<String>,
            &StreamMeta,
        ) -> ServiceResult<bool>,
    ) -> ServiceResult<()> {
        let res = parse_resource(arn)?;
        let _w = self.write_lock.lock().await;
        let now = self.now();
        let changed = match res {
            Resource::Stream(t) => {
                let mut s = self.stream(&t)?;
                let view = s.clone();
                let changed = f(&mut s.tags, &mut s.policy, &view)?;
                changed.then_some(s)
            }
            Resource::Consumer(t, name, created) => {
                let mut s = self.stream(&t)?;
                let view = s.clone();
                let c = s
                    .consumers
                    .get_mut(&name)
                    .filter(|c| c.created_ms / 1000 == created && c.status_at(now).is_some())
                    .ok_or_else(|| consumer_missing(arn))?;
                let changed = f(&mut c.tags, &mut c.policy, &view)?;
                changed.then_some(s)
            }
        };
        if let Some(s) = changed {
            self.put_stream(s).await?;
        }
        Ok(())
    }

    fn read_resource<R>(
        &self,
        arn: &str,
        f: impl FnOnce(&BTreeMap<String, String>, &Option<String>) -> R,
    ) -> ServiceResult<R> {
        let now = self.now();
        match parse_resource(arn)? {
            Resource::Stream(t) => self.with_stream(&t, |s| Ok(f(&s.tags, &s.policy))),
            Resource::Consumer(t, name, created) => self.with_stream(&t, |s| {
                let c = s
                    .consumers
                    .get(&name)
                    .filter(|c| c.created_ms / 1000 == created && c.status_at(now).is_some())
                    .ok_or_else(|| consumer_missing(arn))?;
                Ok(f(&c.tags, &c.policy))
            }),
        }
    }

    fn add_tags(
        tags: &mut BTreeMap<String, String>,
        new: BTreeMap<String, String>,
        what: &str,
    ) -> ServiceResult<bool> {
        let mut merged = tags.clone();
        merged.extend(new);
        if merged.len() > MAX_TAGS {
            return Err(invalid_argument(format!(
                "Failed to add tags to {what} because a given stream cannot have more than {MAX_TAGS} tags."
            )));
        }
        let changed = merged != *tags;
        *tags = merged;
        Ok(changed)
    }

    pub(crate) async fn add_tags_to_stream(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(flatten)]
            sel: StreamSel,
            tags: Option<BTreeMap<String, String>>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        c.required(&i.tags, "tags");
        if let Some(t) = &i.tags {
            check_tags(&mut c, t, "tags");
        }
        let t = self.target(ctx, &i.sel, &mut c)?;
        let arn = format!(
            "arn:aws:kinesis:{}:{}:stream/{}",
            t.region, t.account, t.name
        );
        let new = i.tags.unwrap_or_default();
        self.modify_resource(&arn, |tags, _, s| {
            check_tag_chars(new.iter().flat_map(|(k, v)| [k, v]))?;
            check_no_percent(new.iter().flat_map(|(k, v)| [k, v]), "add tags to", s)?;
            Self::add_tags(
                tags,
                new,
                &format!("stream {} under account {}", s.name, s.account),
            )
        })
        .await?;
        Ok(json!({}))
    }

    pub(crate) async fn remove_tags_from_stream(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(flatten)]
            sel: StreamSel,
            tag_keys: Option<Vec<String>>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        c.required(&i.tag_keys, "tagKeys").count(
            i.tag_keys.as_ref().map(|t| t.len()),
            "tagKeys",
            1,
            50,
        );
        for (n, k) in i.tag_keys.iter().flatten().enumerate() {
            c.len(Some(k), &format!("tagKeys.{}.member", n + 1), 1, 128);
        }
        let t = self.target(ctx, &i.sel, &mut c)?;
        let arn = format!(
            "arn:aws:kinesis:{}:{}:stream/{}",
            t.region, t.account, t.name
        );
        let keys = i.tag_keys.unwrap_or_default();
        self.modify_resource(&arn, |tags, _, s| {
            check_tag_chars(&keys)?;
            check_no_percent(&keys, "remove tags from", s)?;
            let before = tags.len();
            tags.retain(|k, _| !keys.contains(k));
            Ok(tags.len() != before)
        })
        .await?;
        Ok(json!({}))
    }

    pub(crate) fn list_tags_for_stream(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(flatten)]
            sel: StreamSel,
            exclusive_start_tag_key: Option<String>,
            limit: Option<i64>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        c.len(
            i.exclusive_start_tag_key.as_deref(),
            "exclusiveStartTagKey",
            1,
            128,
        )
        .range(i.limit, "limit", 1, Some(50));
        let t = self.target(ctx, &i.sel, &mut c)?;
        let limit = i.limit.unwrap_or(50) as usize;
        self.with_stream(&t, |s| {
            let all: Vec<(&String, &String)> = s
                .tags
                .iter()
                .filter(|(k, _)| i.exclusive_start_tag_key.as_ref().is_none_or(|x| *k > x))
                .collect();
            let tags: Vec<Value> = all
                .iter()
                .take(limit)
                .map(|(k, v)| json!({"Key": k, "Value": v}))
                .collect();
            Ok(json!({"Tags": tags, "HasMoreTags": all.len() > limit}))
        })
    }

    pub(crate) async fn tag_resource(
        &self,
        _ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(rename = "ResourceARN")]
            resource_arn: Option<String>,
            tags: Option<BTreeMap<String, String>>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        check_resource_arn(&mut c, i.resource_arn.as_deref());
        c.required(&i.tags, "tags");
        if let Some(t) = &i.tags {
            check_tags(&mut c, t, "tags");
        }
        c.finish()?;
        let arn = i.resource_arn.unwrap_or_default();
        let new = i.tags.unwrap_or_default();
        let what = format!("resource {arn}");
        self.modify_resource(&arn, |tags, _, _| {
            check_tag_chars(new.iter().flat_map(|(k, v)| [k, v]))?;
            Self::add_tags(tags, new, &what)
        })
        .await?;
        Ok(json!({}))
    }

    pub(crate) async fn untag_resource(
        &self,
        _ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(rename = "ResourceARN")]
            resource_arn: Option<String>,
            tag_keys: Option<Vec<String>>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        check_resource_arn(&mut c, i.resource_arn.as_deref());
        c.required(&i.tag_keys, "tagKeys").count(
            i.tag_keys.as_ref().map(|t| t.len()),
            "tagKeys",
            1,
            50,
        );
        c.finish()?;
        let arn = i.resource_arn.unwrap_or_default();
        let keys = i.tag_keys.unwrap_or_default();
        self.modify_resource(&arn, |tags, _, _| {
            check_tag_chars(&keys)?;
            let before = tags.len();
            tags.retain(|k, _| !keys.contains(k));
            Ok(tags.len() != before)
        })
        .await?;
        Ok(json!({}))
    }

    pub(crate) fn list_tags_for_resource(
        &self,
        _ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let arn = resource_arn_only(input)?;
        let tags = self.read_resource(&arn, |tags, _| {
            tags.iter()
                .map(|(k, v)| json!({"Key": k, "Value": v}))
                .collect::<Vec<_>>()
        })?;
        Ok(json!({ "Tags": tags }))
    }

    pub(crate) async fn put_resource_policy(
        &self,
        _ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            #[serde(rename = "ResourceARN")]
            resource_arn: Option<String>,
            policy: Option<String>,
        }
        let i: In = parse_input(input, "SerializationException")?;
        let mut c = Checks::new();
        check_resource_arn(&mut c, i.resource_arn.as_deref());
        c.required(&i.policy, "policy");
        c.finish()?;
        let policy = i.policy.unwrap_or_default();
        if !serde_json::from_str::<Value>(&policy).is_ok_and(|v| v.is_object()) {
            return Err(invalid_argument(
                "Policy is not a valid JSON policy document.",
            ));
        }
        let arn = i.resource_arn.unwrap_or_default();
        self.modify_resource(&arn, |_, p, _| {
            let changed = p.as_deref() != Some(policy.as_str());
            *p = Some(policy);
            Ok(changed)
        })
        .await?;
        Ok(json!({}))
    }

    pub(crate) fn get_resource_policy(
        &self,
        _ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let arn = resource_arn_only(input)?;
        let policy = self.read_resource(&arn, |_, p| p.clone())?;
        Ok(json!({"Policy": policy.unwrap_or_else(|| "{}".to_string())}))
    }

    pub(crate) async fn delete_resource_policy(
        &self,
        _ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let arn = resource_arn_only(input)?;
        let arn2 = arn.clone();
        self.modify_resource(&arn, |_, p, _| {
            if p.is_none() {
                return Err(not_found(format!(
                    "No resource policy found for resource {arn2}."
                )));
            }
            *p = None;
            Ok(true)
        })
        .await?;
        Ok(json!({}))
    }
}

/// The input of the actions that take only a `ResourceARN` (ListTagsForResource,
/// Get/DeleteResourcePolicy), validated.
fn resource_arn_only(input: Value) -> ServiceResult<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        #[serde(rename = "ResourceARN")]
        resource_arn: Option<String>,
    }
    let i: In = parse_input(input, "SerializationException")?;
    let mut c = Checks::new();
    check_resource_arn(&mut c, i.resource_arn.as_deref());
    c.finish()?;
    Ok(i.resource_arn.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::super::test_util::Env;
    use serde_json::json;

    const ARN: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/t";

    /// kinesalite's AWS-checked addTagsToStream.js / removeTagsFromStream.js.
    #[tokio::test]
    async fn tag_characters_are_checked() {
        let e = Env::new();
        e.create("t", 1).await;
        let invalid = "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white space, _ . / = + - % @ :.";
        let percent = |action: &str| {
            format!("Failed to {action} stream t under account 000000000000 because some tags contained illegal characters. The allowed characters are Unicode letters, white-spaces, '_',',','/','=','+','-','@',':'.")
        };
        for bad in ["abc;def", "abc\tdef", "abc\ndef", "abc,def"] {
            for tags in [json!({ bad: "1" }), json!({ "a": bad })] {
                let err = e
                    .err("AddTagsToStream", json!({"StreamName": "t", "Tags": tags}))
                    .await;
                assert_eq!(err.code, "InvalidArgumentException");
                assert_eq!(err.message, invalid);
                let err = e
                    .err("TagResource", json!({"ResourceARN": ARN, "Tags": tags}))
                    .await;
                assert_eq!(err.message, invalid);
                let err = e
                    .err(
                        "CreateStream",
                        json!({"StreamName": "t2", "ShardCount": 1, "Tags": tags}),
                    )
                    .await;
                assert_eq!(err.message, invalid);
            }
            let err = e
                .err(
                    "RemoveTagsFromStream",
                    json!({"StreamName": "t", "TagKeys": [bad]}),
                )
                .await;
            assert_eq!(err.message, invalid);
        }
        for tags in [json!({"abc%def": "1"}), json!({"a": "abc%def"})] {
            let err = e
                .err("AddTagsToStream", json!({"StreamName": "t", "Tags": tags}))
                .await;
            assert_eq!(err.code, "InvalidArgumentException");
            assert_eq!(err.message, percent("add tags to"));
        }
        let err = e
            .err(
                "RemoveTagsFromStream",
                json!({"StreamName": "t", "TagKeys": ["abc%def"]}),
            )
            .await;
        assert_eq!(err.message, percent("remove tags from"));
        // The stream is looked up first.
        let err = e
            .err(
                "RemoveTagsFromStream",
                json!({"StreamName": "nope", "TagKeys": [";"]}),
            )
            .await;
        assert_eq!(err.code, "ResourceNotFoundException");
        let ok = json!({"a": "a", "ü0 _.": "a", "/=+-@:": "a", "b": "ü0 _./=+-@:", "c": ""});
        e.ok("AddTagsToStream", json!({"StreamName": "t", "Tags": ok}))
            .await;
        e.ok(
            "RemoveTagsFromStream",
            json!({"StreamName": "t", "TagKeys": ["ü0 _.", "/=+-@:"]}),
        )
        .await;
        let l = e.ok("ListTagsForStream", json!({"StreamName": "t"})).await;
        assert_eq!(l["Tags"].as_array().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn stream_tags() {
        let e = Env::new();
        e.ok(
            "CreateStream",
            json!({"StreamName": "t", "ShardCount": 1, "Tags": {"a": "1"}}),
        )
        .await;
        e.ok(
            "AddTagsToStream",
            json!({"StreamName": "t", "Tags": {"b": "2", "c": ""}}),
        )
        .await;
        let l = e.ok("ListTagsForStream", json!({"StreamName": "t"})).await;
        assert_eq!(
            l["Tags"],
            json!([{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}, {"Key": "c", "Value": ""}])
        );
        assert_eq!(l["HasMoreTags"], false);
        let l = e
            .ok("ListTagsForStream", json!({"StreamName": "t", "Limit": 1}))
            .await;
        assert_eq!(l["Tags"], json!([{"Key": "a", "Value": "1"}]));
        assert_eq!(l["HasMoreTags"], true);
        let l = e
            .ok(
                "ListTagsForStream",
                json!({"StreamName": "t", "ExclusiveStartTagKey": "a"}),
            )
            .await;
        assert_eq!(l["Tags"].as_array().unwrap().len(), 2);
        e.ok(
            "RemoveTagsFromStream",
            json!({"StreamName": "t", "TagKeys": ["a", "zz"]}),
        )
        .await;
        let l = e
            .ok("ListTagsForResource", json!({"ResourceARN": ARN}))
            .await;
        assert_eq!(
            l["Tags"],
            json!([{"Key": "b", "Value": "2"}, {"Key": "c", "Value": ""}])
        );
        e.ok(
            "TagResource",
            json!({"ResourceARN": ARN, "Tags": {"d": "4"}}),
        )
        .await;
        e.ok(
            "UntagResource",
            json!({"ResourceARN": ARN, "TagKeys": ["b"]}),
        )
        .await;
        let l = e.ok("ListTagsForStream", json!({"StreamARN": ARN})).await;
        assert_eq!(
            l["Tags"],
            json!([{"Key": "c", "Value": ""}, {"Key": "d", "Value": "4"}])
        );

        let many: serde_json::Map<String, serde_json::Value> =
            (0..49).map(|i| (format!("k{i}"), json!("v"))).collect();
        let err = e
            .err("AddTagsToStream", json!({"StreamName": "t", "Tags": many}))
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        let err = e
            .err("AddTagsToStream", json!({"StreamName": "t", "Tags": {}}))
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .err(
                "AddTagsToStream",
                json!({"StreamName": "t", "Tags": {"k": "v".repeat(257)}}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e.err("AddTagsToStream", json!({"StreamName": "t"})).await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .err(
                "RemoveTagsFromStream",
                json!({"StreamName": "t", "TagKeys": []}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .err("ListTagsForStream", json!({"StreamName": "t", "Limit": 51}))
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .err("ListTagsForStream", json!({"StreamName": "nope"}))
            .await;
        assert_eq!(err.code, "ResourceNotFoundException");
        let err = e
            .err("TagResource", json!({"ResourceARN": "arn:aws:kinesis:us-east-1:000000000000:stream/nope", "Tags": {"a": "b"}}))
            .await;
        assert_eq!(err.code, "ResourceNotFoundException");
        let err = e
            .err(
                "TagResource",
                json!({"ResourceARN": "arn:aws:sqs:x", "Tags": {"a": "b"}}),
            )
            .await;
        assert_eq!(err.code, "ValidationException");
        let err = e.err("ListTagsForResource", json!({})).await;
        assert_eq!(err.code, "ValidationException");
        let err = e
            .err(
                "AddTagsToStream",
                json!({"StreamName": "t", "Tags": {"a": 1}}),
            )
            .await;
        assert_eq!(err.code, "SerializationException");
    }

    #[tokio::test]
    async fn resource_policies_on_streams_and_consumers() {
        let e = Env::new();
        e.create("t", 1).await;
        let policy = r#"{"Version":"2012-10-17","Statement":[]}"#;
        let g = e.ok("GetResourcePolicy", json!({"ResourceARN": ARN})).await;
        assert_eq!(g["Policy"], "{}");
        let err = e
            .err("DeleteResourcePolicy", json!({"ResourceARN": ARN}))
            .await;
        assert_eq!(err.code, "ResourceNotFoundException");
        e.ok(
            "PutResourcePolicy",
            json!({"ResourceARN": ARN, "Policy": policy}),
        )
        .await;
        let g = e.ok("GetResourcePolicy", json!({"ResourceARN": ARN})).await;
        assert_eq!(g["Policy"], policy);
        let err = e
            .err(
                "PutResourcePolicy",
                json!({"ResourceARN": ARN, "Policy": "not json"}),
            )
            .await;
        assert_eq!(err.code, "InvalidArgumentException");
        let err = e
            .err("PutResourcePolicy", json!({"ResourceARN": ARN}))
            .await;
        assert_eq!(err.code, "ValidationException");
        e.ok("DeleteResourcePolicy", json!({"ResourceARN": ARN}))
            .await;
        assert_eq!(
            e.ok("GetResourcePolicy", json!({"ResourceARN": ARN})).await["Policy"],
            "{}"
        );

        let c = e
            .ok(
                "RegisterStreamConsumer",
                json!({"StreamARN": ARN, "ConsumerName": "c1"}),
            )
            .await;
        let carn = c["Consumer"]["ConsumerARN"].as_str().unwrap().to_string();
        e.ok(
            "PutResourcePolicy",
            json!({"ResourceARN": carn, "Policy": policy}),
        )
        .await;
        assert_eq!(
            e.ok("GetResourcePolicy", json!({"ResourceARN": carn}))
                .await["Policy"],
            policy
        );
        assert_eq!(
            e.ok("GetResourcePolicy", json!({"ResourceARN": ARN})).await["Policy"],
            "{}"
        );
        e.ok(
            "TagResource",
            json!({"ResourceARN": carn, "Tags": {"team": "x"}}),
        )
        .await;
        let l = e
            .ok("ListTagsForResource", json!({"ResourceARN": carn}))
            .await;
        assert_eq!(l["Tags"], json!([{"Key": "team", "Value": "x"}]));
        e.ok(
            "UntagResource",
            json!({"ResourceARN": carn, "TagKeys": ["team"]}),
        )
        .await;
        let l = e
            .ok("ListTagsForResource", json!({"ResourceARN": carn}))
            .await;
        assert_eq!(l["Tags"], json!([]));
        let bad = format!("{ARN}/consumer/c1:1");
        let err = e
            .err("GetResourcePolicy", json!({"ResourceARN": bad}))
            .await;
        assert_eq!(err.code, "ResourceNotFoundException");
    }
}
