//! Topic actions: CreateTopic, DeleteTopic, ListTopics, Get/SetTopicAttributes, tagging,
//! Add/RemovePermission and data protection policies. Owns topic-name and topic-attribute
//! validation; never touches subscriptions except to count them.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::archive;
use super::delivery::{
    effective_topic_delivery_policy, shown_delivery_policy, validate_delivery_policy,
};
use super::error::parse_input;
use super::error::*;
use super::state::{Record, State, Subscription, Topic};
use super::util::{check_arn, page, scope_prefix, topic_arn};
use super::Sns;
use crate::context::RequestContext;
use crate::error::ServiceResult;
use crate::service::to_output;

const MAX_TOPICS: usize = 100_000;
const MAX_TAGS: usize = 50;

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateTopicInput {
    name: String,
    #[serde(default)]
    attributes: HashMap<String, String>,
    #[serde(default)]
    tags: Vec<Tag>,
    data_protection_policy: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TopicArnInput {
    topic_arn: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NextTokenInput {
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SetTopicAttributesInput {
    topic_arn: String,
    attribute_name: String,
    attribute_value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagResourceInput {
    resource_arn: String,
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagResourceInput {
    resource_arn: String,
    tag_keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResourceArnInput {
    resource_arn: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AddPermissionInput {
    topic_arn: String,
    label: String,
    #[serde(rename = "AWSAccountId")]
    aws_account_id: Vec<String>,
    action_name: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RemovePermissionInput {
    topic_arn: String,
    label: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutDataProtectionPolicyInput {
    resource_arn: String,
    data_protection_policy: String,
}

/// Attributes a user may set on a topic (besides `FifoTopic`, which only CreateTopic takes).
fn settable(name: &str) -> bool {
    const PLAIN: &[&str] = &[
        "DeliveryPolicy",
        "DisplayName",
        "Policy",
        "SignatureVersion",
        "TracingConfig",
        "KmsMasterKeyId",
        "ContentBasedDeduplication",
        "ArchivePolicy",
        "FifoThroughputScope",
        "DataProtectionPolicy",
        "MaximumMessageSize",
    ];
    const FEEDBACK_PROTOCOLS: &[&str] = &["Application", "Firehose", "HTTP", "Lambda", "SQS"];
    const FEEDBACK: &[&str] = &[
        "SuccessFeedbackRoleArn",
        "SuccessFeedbackSampleRate",
        "FailureFeedbackRoleArn",
    ];
    PLAIN.contains(&name)
        || FEEDBACK_PROTOCOLS.iter().any(|p| {
            name.strip_prefix(p)
                .is_some_and(|rest| FEEDBACK.contains(&rest))
        })
}

/// A `MaximumMessageSize` value: bytes from 1,024 to 1,048,576 ("Publishing large messages
/// with Amazon SNS", SNS Developer Guide, September 2026, after the model on this machine).
fn parse_max_message_size(value: &str) -> Option<usize> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (1024..=1_048_576).contains(n))
}

/// Checks a topic that takes messages above 256 KiB against what AWS supports for one: "up to
/// 100 total subscriptions", and only Firehose, SQS and Lambda endpoints (the same guide).
/// The count is checked when the attribute is set only: AWS does not enforce it at Subscribe
/// (floci-io/floci#3953, checked against AWS).
fn check_large_topic(st: &State, t: &Topic) -> ServiceResult<()> {
    if t.max_message_bytes() <= super::publish::MAX_MESSAGE_BYTES {
        return Ok(());
    }
    let subs: Vec<&Subscription> = st.subscriptions_of(&t.arn).collect();
    if subs.len() > 100 {
        return Err(invalid_parameter(
            "MaximumMessageSize Reason: a topic with MaximumMessageSize above 262144 supports up to 100 subscriptions",
        ));
    }
    if let Some(s) = subs.iter().find(|s| !large_message_protocol(&s.protocol)) {
        return Err(large_message_protocol_error(&s.protocol));
    }
    Ok(())
}

/// Protocols a topic with MaximumMessageSize above 256 KiB can deliver to.
pub(super) fn large_message_protocol(protocol: &str) -> bool {
    matches!(protocol, "sqs" | "lambda" | "firehose")
}

pub(super) fn large_message_protocol_error(protocol: &str) -> crate::error::ServiceError {
    invalid_parameter(format!(
        "Invalid protocol type: {protocol}. Topics with MaximumMessageSize above 262144 only support the sqs, lambda and firehose protocols"
    ))
}

/// Validates one topic attribute's value; `fifo` says whether the topic is FIFO.
fn validate_attribute(name: &str, value: &str, fifo: bool) -> ServiceResult<()> {
    match name {
        "Policy" | "ArchivePolicy" | "DataProtectionPolicy" => {
            if !value.is_empty() && serde_json::from_str::<Value>(value).is_err() {
                return Err(invalid_parameter(format!("{name}: failed to parse JSON")));
            }
            if name == "ArchivePolicy" && !fifo {
                return Err(invalid_parameter(
                    "ArchivePolicy Reason: Message archiving is only supported for FIFO topics",
                ));
            }
            if name == "ArchivePolicy" {
                archive::retention_days(value)?;
            }
        }
        "DeliveryPolicy" => validate_delivery_policy(value, true)?,
        "MaximumMessageSize" if parse_max_message_size(value).is_none() => {
            return Err(invalid_parameter(
                "MaximumMessageSize Reason: must be an integer between 1024 and 1048576",
            ));
        }
        "DisplayName" if value.chars().count() > 100 => {
            return Err(invalid_parameter("DisplayName"));
        }
        "SignatureVersion" if value != "1" && value != "2" => {
            return Err(invalid_parameter("SignatureVersion"));
        }
        "TracingConfig" if value != "PassThrough" && value != "Active" => {
            return Err(invalid_parameter(
                "Attributes Reason: TracingConfig must be PassThrough or Active",
            ));
        }
        "ContentBasedDeduplication" => {
            if !fifo {
                return Err(invalid_parameter(
                    "ContentBasedDeduplication Reason: Content-based deduplication can only be set for FIFO topics",
                ));
            }
            if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") {
                return Err(invalid_parameter("ContentBasedDeduplication"));
            }
        }
        "FifoThroughputScope" => {
            if !fifo {
                return Err(invalid_parameter(
                    "FifoThroughputScope Reason: FifoThroughputScope can only be set for FIFO topics",
                ));
            }
            if value != "Topic" && value != "MessageGroup" {
                return Err(invalid_parameter("FifoThroughputScope"));
            }
        }
        n if n.ends_with("SuccessFeedbackSampleRate")
            && !matches!(value.parse::<u32>(), Ok(0..=100)) =>
        {
            return Err(invalid_parameter(format!("Attributes Reason: {n}")));
        }
        _ => {}
    }
    Ok(())
}

fn valid_topic_name(name: &str, fifo: bool) -> bool {
    let base = if fifo {
        match name.strip_suffix(".fifo") {
            Some(b) => b,
            None => return false,
        }
    } else {
        name
    };
    !base.is_empty()
        && name.len() <= 256
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub fn default_policy(arn: &str, account: &str) -> String {
    json!({
        "Version": "2008-10-17",
        "Id": "__default_policy_ID",
        "Statement": [{
            "Sid": "__default_statement_ID",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": [
                "SNS:GetTopicAttributes",
                "SNS:SetTopicAttributes",
                "SNS:AddPermission",
                "SNS:RemovePermission",
                "SNS:DeleteTopic",
                "SNS:Subscribe",
                "SNS:ListSubscriptionsByTopic",
                "SNS:Publish"
            ],
            "Resource": arn,
            "Condition": {"StringEquals": {"AWS:SourceOwner": account}}
        }]
    })
    .to_string()
}

fn validate_tags(tags: &[Tag]) -> ServiceResult<()> {
    let mut seen = std::collections::HashSet::new();
    for t in tags {
        if t.key.is_empty() || t.key.chars().count() > 128 {
            return Err(invalid_parameter(
                "Tag key must be between 1 and 128 characters",
            ));
        }
        if t.key.starts_with("aws:") {
            return Err(invalid_parameter(
                "Tag key must not start with the reserved prefix aws:",
            ));
        }
        if t.value.chars().count() > 256 {
            return Err(invalid_parameter(
                "Tag value must be at most 256 characters",
            ));
        }
        if !seen.insert(t.key.as_str()) {
            return Err(invalid_parameter("Duplicated keys are not allowed."));
        }
    }
    Ok(())
}

/// The actions a topic's policy may grant: its default policy's eight, and the other
/// actions on a topic.
const TOPIC_ACTIONS: [&str; 14] = [
    "AddPermission",
    "DeleteTopic",
    "GetTopicAttributes",
    "ListSubscriptionsByTopic",
    "Publish",
    "RemovePermission",
    "SetTopicAttributes",
    "Subscribe",
    "GetDataProtectionPolicy",
    "PutDataProtectionPolicy",
    "ListTagsForResource",
    "TagResource",
    "UntagResource",
    // Taken before; moto's default topic policy grants it.
    "Receive",
];

/// Looks a topic up by ARN after checking the ARN's shape, region and account.
pub fn find_topic<'a>(
    st: &'a State,
    ctx: &RequestContext,
    arn: &str,
    action: &str,
) -> ServiceResult<&'a Topic> {
    check_arn(ctx, arn, "TopicArn", action)?;
    st.topics.get(arn).ok_or_else(topic_not_found)
}

/// The attributes GetTopicAttributes reports: stored ones plus the computed ones.
pub fn topic_attributes(st: &State, t: &Topic) -> BTreeMap<String, String> {
    let mut a = t.attributes.clone();
    let (mut pending, mut confirmed) = (0u64, 0u64);
    for s in st.subscriptions_of(&t.arn) {
        if s.confirmed {
            confirmed += 1;
        } else {
            pending += 1;
        }
    }
    a.insert("TopicArn".into(), t.arn.clone());
    a.insert("Owner".into(), t.account.clone());
    a.insert("SubscriptionsPending".into(), pending.to_string());
    a.insert("SubscriptionsConfirmed".into(), confirmed.to_string());
    a.insert(
        "SubscriptionsDeleted".into(),
        t.subscriptions_deleted.to_string(),
    );
    a.entry("DisplayName".into()).or_default();
    if let Some(p) = a.get_mut("DeliveryPolicy") {
        *p = shown_delivery_policy(p, true);
    }
    a.insert(
        "EffectiveDeliveryPolicy".into(),
        effective_topic_delivery_policy(t),
    );
    if t.is_fifo() {
        a.entry("ContentBasedDeduplication".into())
            .or_insert_with(|| "false".into());
    }
    if let Some(began) = archive::beginning_archive_time(t, crate::service::now_ms()) {
        a.insert(archive::BEGINNING_ARCHIVE_TIME.into(), began);
    }
    a
}

/// A topic attribute as stored. ContentBasedDeduplication is taken in any case, as FifoTopic
/// is (a Python caller's `str(True)` is "True"), and stored in lower case, so
/// GetTopicAttributes shows it as AWS does and idempotent CreateTopic calls compare equal.
/// (FifoTopic is normalised by `create_topic` itself.)
fn stored_value(name: &str, value: String) -> String {
    match name {
        "ContentBasedDeduplication" => value.to_ascii_lowercase(),
        // As the number it is, so `02048` and `2048` name the same topic to CreateTopic.
        "MaximumMessageSize" => parse_max_message_size(&value).map_or(value, |n| n.to_string()),
        _ => value,
    }
}

impl Sns {
    pub(super) async fn create_topic(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let mut i: CreateTopicInput = parse_input(input, PARSE_CODE)?;
        let fifo = match i.attributes.get("FifoTopic") {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(_) => return Err(invalid_parameter("FifoTopic")),
        };
        if !valid_topic_name(&i.name, fifo) {
            return Err(if fifo {
                invalid_parameter("Fifo Topic names must end with .fifo and must be made up of only uppercase and lowercase ASCII letters, numbers, underscores, and hyphens, and must be between 1 and 256 characters long.")
            } else {
                invalid_parameter("Topic Name")
            });
        }
        if fifo {
            i.attributes.insert("FifoTopic".into(), "true".into());
        } else {
            i.attributes.remove("FifoTopic");
        }
        for (k, v) in &i.attributes {
            if k != "FifoTopic" && !settable(k) {
                return Err(invalid_parameter(format!(
                    "Attributes Reason: Unknown attribute {k}"
                )));
            }
            validate_attribute(k, v, fifo)?;
        }
        for (k, v) in i.attributes.iter_mut() {
            *v = stored_value(k, std::mem::take(v));
        }
        if let Some(p) = &i.data_protection_policy {
            validate_attribute("DataProtectionPolicy", p, fifo)?;
        }
        validate_tags(&i.tags)?;
        if i.tags.len() > MAX_TAGS {
            return Err(tag_limit_exceeded());
        }
        let arn = topic_arn(ctx, &i.name);
        self.mutate(|st| {
            if let Some(t) = st.topics.get(&arn) {
                let same_attrs = i.attributes.iter().all(|(k, v)| {
                    t.attributes.get(k).is_some_and(|x| x == v)
                        || (k == "FifoTopic" && t.is_fifo() == fifo)
                });
                if !same_attrs || t.is_fifo() != fifo {
                    return Err(invalid_parameter(
                        "Attributes Reason: Topic already exists with different attributes",
                    ));
                }
                let same_tags = i
                    .tags
                    .iter()
                    .all(|tag| t.tags.iter().any(|(k, v)| *k == tag.key && *v == tag.value));
                if !same_tags {
                    return Err(invalid_parameter(
                        "Tags Reason: Topic already exists with different tags",
                    ));
                }
                return Ok((vec![], arn.clone()));
            }
            if st.topics.len() >= MAX_TOPICS {
                return Err(topic_limit_exceeded());
            }
            let mut attributes: BTreeMap<String, String> =
                i.attributes.clone().into_iter().collect();
            attributes
                .entry("Policy".into())
                .or_insert_with(|| default_policy(&arn, &ctx.account_id));
            archive::normalise_topic(&mut attributes, crate::service::now_ms());
            let t = Topic {
                arn: arn.clone(),
                name: i.name.clone(),
                account: ctx.account_id.clone(),
                region: ctx.region.clone(),
                attributes,
                tags: i
                    .tags
                    .iter()
                    .map(|t| (t.key.clone(), t.value.clone()))
                    .collect(),
                data_protection_policy: i.data_protection_policy.clone(),
                subscriptions_deleted: 0,
            };
            Ok((vec![Record::PutTopic(t)], arn.clone()))
        })
        .await?;
        Ok(json!({ "TopicArn": arn }))
    }

    pub(super) async fn delete_topic(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: TopicArnInput = parse_input(input, PARSE_CODE)?;
        check_arn(ctx, &i.topic_arn, "TopicArn", "DeleteTopic")?;
        // AWS: deleting a topic that does not exist is not an error.
        // Not while a publish to the topic is under way (it may be archiving).
        let _order = self.fifo_order(&i.topic_arn).await;
        let archived = self
            .mutate(|st| {
                let Some(t) = st.topics.get(&i.topic_arn) else {
                    return Ok((vec![], false));
                };
                let archived = archive::archiving_days(t).is_some();
                Ok((vec![Record::DeleteTopic(i.topic_arn.clone())], archived))
            })
            .await?;
        if archived {
            self.archives.remove(&i.topic_arn);
        }
        Ok(json!({}))
    }

    pub(super) fn list_topics(&self, ctx: &RequestContext, input: Value) -> ServiceResult<Value> {
        let i: NextTokenInput = parse_input(input, PARSE_CODE)?;
        let prefix = scope_prefix(ctx);
        let st = self.state.lock();
        let (items, next) = page(
            st.topics
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, t)| (k, json!({"TopicArn": t.arn}))),
            i.next_token.as_deref(),
        )?;
        let mut out = json!({ "Topics": items });
        if let Some(n) = next {
            out["NextToken"] = json!(n);
        }
        Ok(out)
    }

    pub(super) fn get_topic_attributes(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: TopicArnInput = parse_input(input, PARSE_CODE)?;
        let st = self.state.lock();
        let t = find_topic(&st, ctx, &i.topic_arn, "GetTopicAttributes")?;
        Ok(json!({ "Attributes": topic_attributes(&st, t) }))
    }

    pub(super) async fn set_topic_attributes(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: SetTopicAttributesInput = parse_input(input, PARSE_CODE)?;
        let value = i.attribute_value.unwrap_or_default();
        if !settable(&i.attribute_name) {
            return Err(invalid_parameter("AttributeName"));
        }
        let value = stored_value(&i.attribute_name, value);
        // Archiving may stop here: not while a publish to the topic is under way.
        let _order = self.fifo_order(&i.topic_arn).await;
        self.mutate(|st| {
            let mut t = find_topic(st, ctx, &i.topic_arn, "SetTopicAttributes")?.clone();
            validate_attribute(&i.attribute_name, &value, t.is_fifo())?;
            if i.attribute_name == "MaximumMessageSize" {
                let mut raised = t.clone();
                raised
                    .attributes
                    .insert(i.attribute_name.clone(), value.clone());
                check_large_topic(st, &raised)?;
            }
            if i.attribute_name == "DataProtectionPolicy" {
                t.data_protection_policy = (!value.is_empty()).then(|| value.clone());
            } else if value.is_empty() && i.attribute_name != "DisplayName" {
                if i.attribute_name == "Policy" {
                    t.attributes
                        .insert("Policy".into(), default_policy(&t.arn, &t.account));
                } else {
                    t.attributes.remove(&i.attribute_name);
                }
            } else {
                t.attributes.insert(i.attribute_name.clone(), value.clone());
            }
            archive::normalise_topic(&mut t.attributes, crate::service::now_ms());
            let stopped = archive::archiving_days(&t).is_none()
                && st
                    .topics
                    .get(&t.arn)
                    .is_some_and(|old| archive::archiving_days(old).is_some());
            let arn = t.arn.clone();
            Ok((vec![Record::PutTopic(t)], stopped.then_some(arn)))
        })
        .await?
        .inspect(|arn| self.archives.remove(arn));
        Ok(json!({}))
    }

    fn tag_target<'a>(st: &'a State, ctx: &RequestContext, arn: &str) -> ServiceResult<&'a Topic> {
        if super::util::parse_arn(arn).is_none() {
            return Err(invalid_parameter("ResourceArn"));
        }
        check_arn(ctx, arn, "ResourceArn", "TagResource").map_err(|_| resource_not_found())?;
        st.topics.get(arn).ok_or_else(resource_not_found)
    }

    pub(super) async fn tag_resource(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: TagResourceInput = parse_input(input, PARSE_CODE)?;
        validate_tags(&i.tags)?;
        self.mutate(|st| {
            let mut t = Self::tag_target(st, ctx, &i.resource_arn)?.clone();
            for tag in &i.tags {
                match t.tags.iter_mut().find(|(k, _)| *k == tag.key) {
                    Some(slot) => slot.1 = tag.value.clone(),
                    None => t.tags.push((tag.key.clone(), tag.value.clone())),
                }
            }
            if t.tags.len() > MAX_TAGS {
                return Err(tag_limit_exceeded());
            }
            Ok((vec![Record::PutTopic(t)], ()))
        })
        .await?;
        Ok(json!({}))
    }

    pub(super) async fn untag_resource(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: UntagResourceInput = parse_input(input, PARSE_CODE)?;
        self.mutate(|st| {
            let mut t = Self::tag_target(st, ctx, &i.resource_arn)?.clone();
            t.tags.retain(|(k, _)| !i.tag_keys.contains(k));
            Ok((vec![Record::PutTopic(t)], ()))
        })
        .await?;
        Ok(json!({}))
    }

    pub(super) fn list_tags_for_resource(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: ResourceArnInput = parse_input(input, PARSE_CODE)?;
        let st = self.state.lock();
        let t = Self::tag_target(&st, ctx, &i.resource_arn)?;
        let tags: Vec<Tag> = t
            .tags
            .iter()
            .map(|(k, v)| Tag {
                key: k.clone(),
                value: v.clone(),
            })
            .collect();
        to_output(&json!({ "Tags": tags }))
    }

    pub(super) async fn add_permission(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: AddPermissionInput = parse_input(input, PARSE_CODE)?;
        if i.label.is_empty()
            || i.label.len() > 100
            || !i
                .label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(invalid_parameter("Label"));
        }
        if i.aws_account_id.is_empty() {
            return Err(invalid_parameter("AWSAccountId"));
        }
        if i.action_name.is_empty() {
            return Err(invalid_parameter("ActionName"));
        }
        // Only actions on a topic: AWS refuses others (an account-level action such as
        // CreateTopic, a made-up name, a prefixed `SNS:Publish`) as out of the policy's scope
        // (moto's test_add_permission_errors; users' reports of that error list the eight
        // actions of a topic's default policy).
        for a in &i.action_name {
            if !TOPIC_ACTIONS.iter().any(|t| t.eq_ignore_ascii_case(a)) {
                return Err(invalid_parameter(
                    "Policy statement action out of service scope!",
                ));
            }
        }
        self.mutate(|st| {
            let mut t = find_topic(st, ctx, &i.topic_arn, "AddPermission")?.clone();
            let mut policy = policy_value(&t);
            let mut stmts = take_statements(&mut policy);
            if stmts.iter().any(|s| s["Sid"] == json!(i.label)) {
                return Err(invalid_parameter("Statement already exists"));
            }
            let principals: Vec<String> = i
                .aws_account_id
                .iter()
                .map(|a| format!("arn:aws:iam::{a}:root"))
                .collect();
            let actions: Vec<String> = i.action_name.iter().map(|a| format!("SNS:{a}")).collect();
            stmts.push(json!({
                "Sid": i.label,
                "Effect": "Allow",
                "Principal": {"AWS": if principals.len() == 1 { json!(principals[0]) } else { json!(principals) }},
                "Action": if actions.len() == 1 { json!(actions[0]) } else { json!(actions) },
                "Resource": t.arn,
            }));
            policy["Statement"] = Value::Array(stmts);
            t.attributes.insert("Policy".into(), policy.to_string());
            Ok((vec![Record::PutTopic(t)], ()))
        })
        .await?;
        Ok(json!({}))
    }

    pub(super) async fn remove_permission(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: RemovePermissionInput = parse_input(input, PARSE_CODE)?;
        self.mutate(|st| {
            let mut t = find_topic(st, ctx, &i.topic_arn, "RemovePermission")?.clone();
            let mut policy = policy_value(&t);
            let mut stmts = take_statements(&mut policy);
            let before = stmts.len();
            stmts.retain(|s| s["Sid"] != json!(i.label));
            if stmts.len() == before {
                // Removing a label that is not there changes nothing (as AWS).
                return Ok((vec![], ()));
            }
            policy["Statement"] = Value::Array(stmts);
            t.attributes.insert("Policy".into(), policy.to_string());
            Ok((vec![Record::PutTopic(t)], ()))
        })
        .await?;
        Ok(json!({}))
    }

    pub(super) fn get_data_protection_policy(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: ResourceArnInput = parse_input(input, PARSE_CODE)?;
        let st = self.state.lock();
        check_arn(
            ctx,
            &i.resource_arn,
            "ResourceArn",
            "GetDataProtectionPolicy",
        )?;
        let t = st
            .topics
            .get(&i.resource_arn)
            .ok_or_else(resource_not_found_nf)?;
        Ok(match &t.data_protection_policy {
            Some(p) => json!({ "DataProtectionPolicy": p }),
            None => json!({}),
        })
    }

    pub(super) async fn put_data_protection_policy(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: PutDataProtectionPolicyInput = parse_input(input, PARSE_CODE)?;
        check_arn(
            ctx,
            &i.resource_arn,
            "ResourceArn",
            "PutDataProtectionPolicy",
        )?;
        validate_attribute("DataProtectionPolicy", &i.data_protection_policy, false)?;
        self.mutate(|st| {
            let mut t = st
                .topics
                .get(&i.resource_arn)
                .ok_or_else(resource_not_found_nf)?
                .clone();
            t.data_protection_policy =
                (!i.data_protection_policy.is_empty()).then(|| i.data_protection_policy.clone());
            Ok((vec![Record::PutTopic(t)], ()))
        })
        .await?;
        Ok(json!({}))
    }
}

/// The data-protection actions model `NotFound`, not `ResourceNotFound`.
fn resource_not_found_nf() -> crate::error::ServiceError {
    not_found("Resource does not exist")
}

fn policy_value(t: &Topic) -> Value {
    t.attributes
        .get("Policy")
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
        .filter(|v| v.is_object())
        .unwrap_or_else(|| {
            serde_json::from_str(&default_policy(&t.arn, &t.account)).unwrap_or(Value::Null)
        })
}

/// Takes the policy's statements out as a list (a single statement object counts as one).
fn take_statements(policy: &mut Value) -> Vec<Value> {
    match policy["Statement"].take() {
        Value::Array(v) => v,
        Value::Null => vec![],
        single => vec![single],
    }
}

fn topic_limit_exceeded() -> crate::error::ServiceError {
    crate::error::ServiceError::sender("TopicLimitExceeded", "Topic limit exceeded")
        .with_status(403)
}
