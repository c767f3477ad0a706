//! Dispatch-level tests of every SNS action and error, observing deliveries through fake sinks.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};

use super::delivery::{BoxFuture, HttpSink, OutboxFilter, Sinks, SqsSink};
use super::state::Record;
use super::Sns;
use crate::config::Config;
use crate::context::RequestContext;
use crate::error::{ServiceError, ServiceResult};
use crate::sqs::InternalSend;

#[derive(Default)]
struct FakeSqs {
    sent: Mutex<Vec<(String, InternalSend)>>,
    missing: Mutex<HashSet<String>>,
    broken: Mutex<bool>,
    /// When set, every send waits here first: sends complete only once as many as the
    /// barrier counts are in flight together.
    together: Mutex<Option<Arc<tokio::sync::Barrier>>>,
    /// Sends waiting at `together` now.
    held: Mutex<usize>,
}

impl SqsSink for FakeSqs {
    fn send(&self, queue_arn: &str, msg: InternalSend) -> BoxFuture<'_, ServiceResult<String>> {
        let arn = queue_arn.to_string();
        Box::pin(async move {
            let together = self.together.lock().clone();
            if let Some(barrier) = together {
                *self.held.lock() += 1;
                barrier.wait().await;
                *self.held.lock() -= 1;
            }
            if *self.broken.lock() {
                return Err(ServiceError::unavailable("disk full"));
            }
            if self.missing.lock().contains(&arn) {
                return Err(ServiceError::sender(
                    "QueueDoesNotExist",
                    "The specified queue does not exist.",
                ));
            }
            self.sent.lock().push((arn, msg));
            Ok(uuid::Uuid::new_v4().to_string())
        })
    }
}

impl FakeSqs {
    fn bodies(&self, arn: &str) -> Vec<String> {
        self.sent
            .lock()
            .iter()
            .filter(|(a, _)| a == arn)
            .map(|(_, m)| m.body.clone())
            .collect()
    }
}

type Post = (String, Vec<(String, String)>, String);

#[derive(Default)]
struct FakeHttp {
    posts: Mutex<Vec<Post>>,
    /// Scripted answers, then 200 forever (or `fail_all`).
    answers: Mutex<VecDeque<Result<u16, String>>>,
    fail_all: Mutex<bool>,
}

impl HttpSink for FakeHttp {
    fn post(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        body: String,
    ) -> BoxFuture<'_, Result<u16, String>> {
        self.posts.lock().push((url.to_string(), headers, body));
        let a = if *self.fail_all.lock() {
            Err("connection refused".to_string())
        } else {
            self.answers.lock().pop_front().unwrap_or(Ok(200))
        };
        Box::pin(async move { a })
    }
}

impl FakeHttp {
    fn of_type(&self, t: &str) -> Vec<Post> {
        self.posts
            .lock()
            .iter()
            .filter(|(_, h, _)| {
                h.iter()
                    .any(|(k, v)| k == "x-amz-sns-message-type" && v == t)
            })
            .cloned()
            .collect()
    }
}

struct T {
    _dir: tempfile::TempDir,
    sns: Arc<Sns>,
    sqs: Arc<FakeSqs>,
    http: Arc<FakeHttp>,
    ctx: RequestContext,
}

fn setup() -> T {
    let dir = tempfile::tempdir().unwrap();
    let sqs = Arc::new(FakeSqs::default());
    let http = Arc::new(FakeHttp::default());
    let sns = Sns::open_with(
        &Config::for_tests(dir.path()),
        Sinks {
            sqs: sqs.clone(),
            http: http.clone(),
        },
    )
    .unwrap();
    T {
        _dir: dir,
        sns,
        sqs,
        http,
        ctx: RequestContext::local("000000000000", "us-east-1"),
    }
}

impl T {
    async fn call(&self, op: &str, input: Value) -> ServiceResult<Value> {
        self.sns.dispatch(&self.ctx, op, input).await
    }
    async fn ok(&self, op: &str, input: Value) -> Value {
        self.call(op, input)
            .await
            .unwrap_or_else(|e| panic!("{op}: {e:?}"))
    }
    async fn err(&self, op: &str, input: Value) -> ServiceError {
        match self.call(op, input.clone()).await {
            Ok(v) => panic!("{op} {input} unexpectedly succeeded: {v}"),
            Err(e) => e,
        }
    }
    async fn topic(&self, name: &str) -> String {
        self.topic_with(name, json!({})).await
    }
    /// A topic named `name` with the attributes `attrs`; its ARN.
    async fn topic_with(&self, name: &str, attrs: Value) -> String {
        self.ok("CreateTopic", json!({"Name": name, "Attributes": attrs}))
            .await["TopicArn"]
            .as_str()
            .unwrap()
            .to_string()
    }
    /// A FIFO topic with the further attributes `attrs`; its ARN.
    async fn fifo_topic(&self, name: &str, attrs: Value) -> String {
        let mut a = json!({"FifoTopic": "true"});
        for (k, v) in attrs.as_object().into_iter().flatten() {
            a[k] = v.clone();
        }
        self.topic_with(name, a).await
    }
    async fn sub(&self, topic: &str, protocol: &str, endpoint: &str, attrs: Value) -> String {
        self.ok(
            "Subscribe",
            json!({"TopicArn": topic, "Protocol": protocol, "Endpoint": endpoint, "Attributes": attrs, "ReturnSubscriptionArn": true}),
        )
        .await["SubscriptionArn"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl T {
    fn replay_status(&self, sub: &str) -> String {
        self.sns.state.lock().subscriptions[sub].attributes["ReplayStatus"].clone()
    }
    async fn wait_replay(&self, sub: &str, status: &str) {
        wait_for(|| self.replay_status(sub) == status).await;
    }
    /// A raw subscription of queue `q` whose ReplayPolicy is `policy`.
    async fn replay_sub(&self, topic: &str, q: &str, policy: &str) -> String {
        self.sub(
            topic,
            "sqs",
            q,
            json!({"RawMessageDelivery": "true", "ReplayPolicy": policy}),
        )
        .await
    }
    /// From now on every send waits for a second party: the first one holds until the
    /// returned gate is passed through [`T::release_sends`].
    fn hold_sends(&self) -> Arc<tokio::sync::Barrier> {
        let gate = Arc::new(tokio::sync::Barrier::new(2));
        *self.sqs.together.lock() = Some(gate.clone());
        gate
    }
    /// Waits until a send is held by [`T::hold_sends`].
    async fn wait_held(&self) {
        wait_for(|| *self.sqs.held.lock() > 0).await;
    }
    /// Asserts that a topic re-created as `name` has nothing to replay (into `queue`): no
    /// archive of the topic before outlived what removed it.
    async fn replays_nothing(&self, name: &str, queue: &str) {
        let arn = archiving_topic(self, name).await;
        let s = self.replay_sub(&arn, queue, FROM_2020).await;
        self.wait_replay(&s, "Completed").await;
        assert_eq!(self.sqs.bodies(queue), Vec::<String>::new());
    }
    async fn release_sends(&self, gate: Arc<tokio::sync::Barrier>) {
        *self.sqs.together.lock() = None;
        gate.wait().await;
    }
}

fn assert_code(e: &ServiceError, code: &str, status: u16) {
    assert_eq!((e.query_code.as_ref(), e.status), (code, status), "{e:?}");
    assert_eq!(e.code, e.query_code);
}

async fn wait_for(mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 5s");
}

const Q: &str = "arn:aws:sqs:us-east-1:000000000000:q1";

#[tokio::test]
async fn create_topic_rules() {
    let t = setup();
    let arn = t.topic("orders").await;
    assert_eq!(arn, "arn:aws:sns:us-east-1:000000000000:orders");
    // Idempotent with the same attributes, an error with different ones.
    assert_eq!(t.topic("orders").await, arn);
    let e = t
        .err(
            "CreateTopic",
            json!({"Name": "orders", "Attributes": {"DisplayName": "x"}}),
        )
        .await;
    assert_code(&e, "InvalidParameter", 400);
    assert!(
        e.message
            .contains("already exists with different attributes"),
        "{}",
        e.message
    );
    for bad in ["", "has space", "a.fifo", &"x".repeat(257), "dots.in.name"] {
        let e = t.err("CreateTopic", json!({"Name": bad})).await;
        assert_code(&e, "InvalidParameter", 400);
    }
    assert_eq!(t.topic(&"x".repeat(256)).await.len(), 256 + 35);
    let e = t
        .err(
            "CreateTopic",
            json!({"Name": "nofifo", "Attributes": {"FifoTopic": "true"}}),
        )
        .await;
    assert_code(&e, "InvalidParameter", 400);
    let f = t
        .ok("CreateTopic", json!({"Name": "o.fifo", "Attributes": {"FifoTopic": "true", "ContentBasedDeduplication": "true"}}))
        .await;
    let attrs = t
        .ok("GetTopicAttributes", json!({"TopicArn": f["TopicArn"]}))
        .await["Attributes"]
        .clone();
    assert_eq!(attrs["FifoTopic"], "true");
    assert_eq!(attrs["ContentBasedDeduplication"], "true");
    let e = t
        .err(
            "CreateTopic",
            json!({"Name": "cbd", "Attributes": {"ContentBasedDeduplication": "true"}}),
        )
        .await;
    assert_code(&e, "InvalidParameter", 400);
    let e = t
        .err(
            "CreateTopic",
            json!({"Name": "u", "Attributes": {"Bogus": "1"}}),
        )
        .await;
    assert_code(&e, "InvalidParameter", 400);
    let e = t.err("CreateTopic", json!({"Name": 5})).await;
    assert_code(&e, "InvalidParameter", 400);
    // Tags at creation; a second create with different tags fails.
    t.ok(
        "CreateTopic",
        json!({"Name": "tagged", "Tags": [{"Key": "k", "Value": "v"}]}),
    )
    .await;
    let e = t
        .err(
            "CreateTopic",
            json!({"Name": "tagged", "Tags": [{"Key": "k", "Value": "w"}]}),
        )
        .await;
    assert!(e.message.contains("different tags"));
}

#[tokio::test]
async fn list_topics_pages_and_scopes() {
    let t = setup();
    for i in 0..250 {
        t.topic(&format!("t{i:03}")).await;
    }
    let other = RequestContext::local("000000000000", "eu-west-1");
    t.sns
        .dispatch(&other, "CreateTopic", json!({"Name": "elsewhere"}))
        .await
        .unwrap();
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut input = json!({});
        if let Some(tk) = &token {
            input["NextToken"] = json!(tk);
        }
        let out = t.ok("ListTopics", input).await;
        pages += 1;
        all.extend(
            out["Topics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["TopicArn"].as_str().unwrap().to_string()),
        );
        match out.get("NextToken") {
            Some(n) => token = Some(n.as_str().unwrap().to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(all.len(), 250);
    assert!(all.iter().all(|a| a.contains("us-east-1")));
    let e = t.err("ListTopics", json!({"NextToken": "!!!"})).await;
    assert_code(&e, "InvalidParameter", 400);
}

#[tokio::test]
async fn topic_attributes() {
    let t = setup();
    let arn = t.topic("a").await;
    let a = t.ok("GetTopicAttributes", json!({"TopicArn": arn})).await["Attributes"].clone();
    for k in [
        "TopicArn",
        "Owner",
        "Policy",
        "DisplayName",
        "SubscriptionsPending",
        "SubscriptionsConfirmed",
        "SubscriptionsDeleted",
        "EffectiveDeliveryPolicy",
    ] {
        assert!(a.get(k).is_some(), "missing {k}: {a}");
    }
    assert_eq!(a["Owner"], "000000000000");
    assert!(a.get("FifoTopic").is_none());
    t.ok(
        "SetTopicAttributes",
        json!({"TopicArn": arn, "AttributeName": "DisplayName", "AttributeValue": "Hi"}),
    )
    .await;
    t.ok(
        "SetTopicAttributes",
        json!({"TopicArn": arn, "AttributeName": "SignatureVersion", "AttributeValue": "2"}),
    )
    .await;
    let dp = json!({"http": {"defaultHealthyRetryPolicy": {"numRetries": 5, "minDelayTarget": 1, "maxDelayTarget": 2}}}).to_string();
    t.ok(
        "SetTopicAttributes",
        json!({"TopicArn": arn, "AttributeName": "DeliveryPolicy", "AttributeValue": dp}),
    )
    .await;
    let a = t.ok("GetTopicAttributes", json!({"TopicArn": arn})).await["Attributes"].clone();
    assert_eq!(a["DisplayName"], "Hi");
    assert_eq!(a["SignatureVersion"], "2");
    let eff: Value = serde_json::from_str(a["EffectiveDeliveryPolicy"].as_str().unwrap()).unwrap();
    assert_eq!(eff["http"]["defaultHealthyRetryPolicy"]["numRetries"], 5);
    // A null member of the policy leaves the default in the effective one.
    let dp = json!({"http": {"defaultHealthyRetryPolicy": null}}).to_string();
    t.ok(
        "SetTopicAttributes",
        json!({"TopicArn": arn, "AttributeName": "DeliveryPolicy", "AttributeValue": dp}),
    )
    .await;
    let a = t.ok("GetTopicAttributes", json!({"TopicArn": arn})).await["Attributes"].clone();
    let eff: Value = serde_json::from_str(a["EffectiveDeliveryPolicy"].as_str().unwrap()).unwrap();
    assert_eq!(eff["http"]["defaultHealthyRetryPolicy"]["numRetries"], 3);
    assert_eq!(
        eff["http"]["defaultHealthyRetryPolicy"]["backoffFunction"],
        "linear"
    );
    let cases = [
        (
            json!({"TopicArn": arn, "AttributeName": "Nope", "AttributeValue": "x"}),
            "InvalidParameter",
            400,
        ),
        (
            json!({"TopicArn": arn, "AttributeName": "FifoTopic", "AttributeValue": "true"}),
            "InvalidParameter",
            400,
        ),
        (
            json!({"TopicArn": arn, "AttributeName": "SignatureVersion", "AttributeValue": "3"}),
            "InvalidParameter",
            400,
        ),
        (
            json!({"TopicArn": arn, "AttributeName": "Policy", "AttributeValue": "{bad"}),
            "InvalidParameter",
            400,
        ),
        (
            json!({"TopicArn": arn, "AttributeName": "DeliveryPolicy", "AttributeValue": "{\"http\":{\"defaultHealthyRetryPolicy\":{\"numRetries\":500}}}"}),
            "InvalidParameter",
            400,
        ),
        (
            json!({"TopicArn": format!("{arn}x"), "AttributeName": "DisplayName", "AttributeValue": "x"}),
            "NotFound",
            404,
        ),
        (
            json!({"TopicArn": "not-an-arn", "AttributeName": "DisplayName", "AttributeValue": "x"}),
            "InvalidParameter",
            400,
        ),
        (
            json!({"TopicArn": "arn:aws:sns:us-east-1:111111111111:a", "AttributeName": "DisplayName", "AttributeValue": "x"}),
            "AuthorizationError",
            403,
        ),
    ];
    for (input, code, status) in cases {
        let e = t.err("SetTopicAttributes", input).await;
        assert_code(&e, code, status);
    }
    let e = t
        .err(
            "GetTopicAttributes",
            json!({"TopicArn": "arn:aws:sns:us-east-1:000000000000:missing"}),
        )
        .await;
    assert_code(&e, "NotFound", 404);
    assert_eq!(e.message, "Topic does not exist");
    let e = t.err("GetTopicAttributes", json!({})).await;
    assert_code(&e, "InvalidParameter", 400);
}

#[tokio::test]
async fn delete_topic_cascades() {
    let t = setup();
    let arn = t.topic("d").await;
    let s = t.sub(&arn, "sqs", Q, json!({})).await;
    t.ok("DeleteTopic", json!({"TopicArn": arn})).await;
    t.ok("DeleteTopic", json!({"TopicArn": arn})).await; // idempotent
    assert_code(
        &t.err("GetSubscriptionAttributes", json!({"SubscriptionArn": s}))
            .await,
        "NotFound",
        404,
    );
    assert_eq!(t.ok("ListTopics", json!({})).await["Topics"], json!([]));
    assert_code(
        &t.err("DeleteTopic", json!({"TopicArn": "bad"})).await,
        "InvalidParameter",
        400,
    );
}

#[tokio::test]
async fn tags() {
    let t = setup();
    let arn = t.topic("tg").await;
    t.ok("TagResource", json!({"ResourceArn": arn, "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]})).await;
    t.ok(
        "TagResource",
        json!({"ResourceArn": arn, "Tags": [{"Key": "a", "Value": "3"}]}),
    )
    .await;
    t.ok(
        "UntagResource",
        json!({"ResourceArn": arn, "TagKeys": ["b"]}),
    )
    .await;
    let tags = t
        .ok("ListTagsForResource", json!({"ResourceArn": arn}))
        .await;
    assert_eq!(tags["Tags"], json!([{"Key": "a", "Value": "3"}]));
    let missing = "arn:aws:sns:us-east-1:000000000000:none";
    assert_code(
        &t.err("ListTagsForResource", json!({"ResourceArn": missing}))
            .await,
        "ResourceNotFound",
        404,
    );
    assert_code(
        &t.err("TagResource", json!({"ResourceArn": missing, "Tags": []}))
            .await,
        "ResourceNotFound",
        404,
    );
    assert_code(
        &t.err(
            "UntagResource",
            json!({"ResourceArn": missing, "TagKeys": []}),
        )
        .await,
        "ResourceNotFound",
        404,
    );
    let many: Vec<Value> = (0..51)
        .map(|i| json!({"Key": format!("k{i}"), "Value": "v"}))
        .collect();
    assert_code(
        &t.err("TagResource", json!({"ResourceArn": arn, "Tags": many}))
            .await,
        "TagLimitExceeded",
        400,
    );
    assert_code(
        &t.err(
            "TagResource",
            json!({"ResourceArn": arn, "Tags": [{"Key": "", "Value": "v"}]}),
        )
        .await,
        "InvalidParameter",
        400,
    );
    assert_code(
        &t.err("TagResource", json!({"ResourceArn": arn, "Tags": [{"Key": "x", "Value": "v"}, {"Key": "x", "Value": "w"}]})).await,
        "InvalidParameter",
        400,
    );
}

#[tokio::test]
async fn permissions_and_data_protection() {
    let t = setup();
    let arn = t.topic("p").await;
    t.ok("AddPermission", json!({"TopicArn": arn, "Label": "l1", "AWSAccountId": ["111122223333"], "ActionName": ["Publish"]})).await;
    let e = t.err("AddPermission", json!({"TopicArn": arn, "Label": "l1", "AWSAccountId": ["111122223333"], "ActionName": ["Publish"]})).await;
    assert_code(&e, "InvalidParameter", 400);
    let policy = t.ok("GetTopicAttributes", json!({"TopicArn": arn})).await["Attributes"]["Policy"]
        .as_str()
        .unwrap()
        .to_string();
    let p: Value = serde_json::from_str(&policy).unwrap();
    let st = p["Statement"].as_array().unwrap();
    assert_eq!(st.len(), 2);
    assert_eq!(st[1]["Sid"], "l1");
    assert_eq!(st[1]["Action"], "SNS:Publish");
    assert_eq!(st[1]["Principal"]["AWS"], "arn:aws:iam::111122223333:root");
    t.ok("RemovePermission", json!({"TopicArn": arn, "Label": "l1"}))
        .await;
    let policy = t.ok("GetTopicAttributes", json!({"TopicArn": arn})).await["Attributes"]["Policy"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!policy.contains("l1"));
    let missing = "arn:aws:sns:us-east-1:000000000000:none";
    assert_code(
        &t.err(
            "RemovePermission",
            json!({"TopicArn": missing, "Label": "l1"}),
        )
        .await,
        "NotFound",
        404,
    );
    assert_code(&t.err("AddPermission", json!({"TopicArn": arn, "Label": "bad label", "AWSAccountId": ["1"], "ActionName": ["Publish"]})).await, "InvalidParameter", 400);
    // Only actions on a topic.
    for bad in ["NotExistingAction", "CreateTopic", "SNS:Publish", "*"] {
        let e = t.err("AddPermission", json!({"TopicArn": arn, "Label": "l9", "AWSAccountId": ["111122223333"], "ActionName": ["Publish", bad]})).await;
        assert_error(
            &e,
            "InvalidParameter",
            "Invalid parameter: Policy statement action out of service scope!",
        );
    }

    assert_eq!(
        t.ok("GetDataProtectionPolicy", json!({"ResourceArn": arn}))
            .await,
        json!({})
    );
    let dpp = json!({"Name": "p", "Version": "2021-06-01", "Statement": []}).to_string();
    t.ok(
        "PutDataProtectionPolicy",
        json!({"ResourceArn": arn, "DataProtectionPolicy": dpp}),
    )
    .await;
    assert_eq!(
        t.ok("GetDataProtectionPolicy", json!({"ResourceArn": arn}))
            .await["DataProtectionPolicy"],
        json!(dpp)
    );
    assert_code(
        &t.err(
            "PutDataProtectionPolicy",
            json!({"ResourceArn": arn, "DataProtectionPolicy": "{"}),
        )
        .await,
        "InvalidParameter",
        400,
    );
    assert_code(
        &t.err("GetDataProtectionPolicy", json!({"ResourceArn": missing}))
            .await,
        "NotFound",
        404,
    );
}

/// A value that is not ARN-shaped gets AWS's reason (asserted by AWS's own SDK examples);
/// an ARN without a subscription id part is "SubscriptionId".
#[tokio::test]
async fn arn_shape_errors_use_aws_wording() {
    let t = setup();
    let arn = t.topic("shape").await;
    for (action, input, msg) in [
        ("Publish", json!({"TopicArn": "x", "Message": "m"}), "Invalid parameter: TopicArn Reason: An ARN must have at least 6 elements, not 1"),
        ("DeleteTopic", json!({"TopicArn": "Invalid:Topic:Arn"}), "Invalid parameter: TopicArn Reason: An ARN must have at least 6 elements, not 3"),
        ("GetTopicAttributes", json!({"TopicArn": ""}), "Invalid parameter: TopicArn Reason: An ARN must have at least 6 elements, not 1"),
        ("Unsubscribe", json!({"SubscriptionArn": "randomstring"}), "Invalid parameter: SubscriptionArn Reason: An ARN must have at least 6 elements, not 1"),
        ("Unsubscribe", json!({"SubscriptionArn": arn}), "Invalid parameter: SubscriptionId"),
    ] {
        let e = t.err(action, input).await;
        assert_code(&e, "InvalidParameter", 400);
        assert_eq!(e.message, msg, "{action}");
    }
}

/// A Firehose subscription needs the role SNS writes to the stream with (Subscribe docs:
/// "required for Firehose delivery stream subscriptions"), at Subscribe and ever after.
#[tokio::test]
async fn firehose_subscriptions_need_a_role() {
    let t = setup();
    let arn = t.topic("fh").await;
    let stream = "arn:aws:firehose:us-east-1:000000000000:deliverystream/s";
    let role = "arn:aws:iam::000000000000:role/sns-firehose";
    for attrs in [json!({}), json!({"SubscriptionRoleArn": ""})] {
        let e = t
            .err(
                "Subscribe",
                json!({"TopicArn": arn, "Protocol": "firehose", "Endpoint": stream, "Attributes": attrs}),
            )
            .await;
        assert_code(&e, "InvalidParameter", 400);
        assert!(e.message.contains("SubscriptionRoleArn"), "{}", e.message);
    }
    let s = t
        .sub(
            &arn,
            "firehose",
            stream,
            json!({"SubscriptionRoleArn": role}),
        )
        .await;
    let e = t
        .err(
            "SetSubscriptionAttributes",
            json!({"SubscriptionArn": s, "AttributeName": "SubscriptionRoleArn", "AttributeValue": ""}),
        )
        .await;
    assert_code(&e, "InvalidParameter", 400);
    let a = t
        .ok("GetSubscriptionAttributes", json!({"SubscriptionArn": s}))
        .await["Attributes"]
        .clone();
    assert_eq!(a["SubscriptionRoleArn"], role);
    // Other protocols may go without one.
    t.sub(&arn, "sqs", Q, json!({})).await;
}

#[tokio::test]
async fn subscribe_sqs_and_errors() {
    let t = setup();
    let arn = t.topic("s").await;
    let out = t
        .ok(
            "Subscribe",
            json!({"TopicArn": arn, "Protocol": "sqs", "Endpoint": Q}),
        )
        .await;
    let s = out["SubscriptionArn"].as_str().unwrap().to_string();
    assert!(s.starts_with(&format!("{arn}:")));
    // Same endpoint again: the same subscription.
    assert_eq!(t.sub(&arn, "sqs", Q, json!({})).await, s);
    let e = t.err("Subscribe", json!({"TopicArn": arn, "Protocol": "sqs", "Endpoint": Q, "Attributes": {"RawMessageDelivery": "true"}})).await;
    assert!(e.message.contains("different attributes"), "{}", e.message);
    // Attributes spelled out at their defaults name the same subscription (as on AWS, where
    // deploy tools re-subscribe with the full attribute set).
    let defaults = json!({"RawMessageDelivery": "False", "FilterPolicyScope": "MessageAttributes"});
    assert_eq!(t.sub(&arn, "sqs", Q, defaults).await, s);
    let a = t
        .ok("GetSubscriptionAttributes", json!({"SubscriptionArn": s}))
        .await["Attributes"]
        .clone();
    assert_eq!(a["PendingConfirmation"], "false");
    assert_eq!(a["Protocol"], "sqs");
    assert_eq!(a["Endpoint"], Q);
    assert_eq!(a["RawMessageDelivery"], "false");
    assert_eq!(a["TopicArn"], json!(arn));
    let cases = [
        (
            json!({"TopicArn": arn, "Protocol": "smtp", "Endpoint": "x"}),
            "InvalidParameter",
            400,
        ),
        (
            json!({"TopicArn": arn, "Protocol": "sqs", "Endpoint": "not-an-arn"}),
            "InvalidParameter",
            400,
        ),
        (
            json!({"TopicArn": arn, "Protocol": "http", "Endpoint": "https://x"}),
            "InvalidParameter",
            400,
        ),
        (
            json!({"TopicArn": arn, "Protocol": "email", "Endpoint": "nobody"}),
            "InvalidParameter",
            400,
        ),
        (
            json!({"TopicArn": arn, "Protocol": "sms", "Endpoint": "abc"}),
            "InvalidParameter",
            400,
        ),
        (
            json!({"TopicArn": arn, "Protocol": "sqs"}),
            "InvalidParameter",
            400,
        ),
        (
            json!({"TopicArn": arn, "Protocol": "sqs", "Endpoint": "arn:aws:sqs:us-east-1:000000000000:q.fifo"}),
            "InvalidParameter",
            400,
        ),
        (
            json!({"TopicArn": arn, "Protocol": "sqs", "Endpoint": Q, "Attributes": {"Bogus": "1"}}),
            "InvalidParameter",
            400,
        ),
        (
            json!({"TopicArn": arn, "Protocol": "email", "Endpoint": "a@b.c", "Attributes": {"RawMessageDelivery": "true"}}),
            "InvalidParameter",
            400,
        ),
        (
            json!({"TopicArn": arn, "Protocol": "sqs", "Endpoint": Q, "Attributes": {"FilterPolicy": "{\"a\": [{\"bogus\": 1}]}"}}),
            "InvalidParameter",
            400,
        ),
        (
            json!({"TopicArn": arn, "Protocol": "sqs", "Endpoint": Q, "Attributes": {"FilterPolicyScope": "Everything"}}),
            "InvalidParameter",
            400,
        ),
        (
            json!({"TopicArn": arn, "Protocol": "sqs", "Endpoint": Q, "Attributes": {"RedrivePolicy": "{\"deadLetterTargetArn\": \"nope\"}"}}),
            "InvalidParameter",
            400,
        ),
        (
            json!({"TopicArn": format!("{arn}zz"), "Protocol": "sqs", "Endpoint": Q}),
            "NotFound",
            404,
        ),
    ];
    for (input, code, status) in cases {
        let e = t.err("Subscribe", input).await;
        assert_code(&e, code, status);
    }
    // FIFO topics take only sqs.
    let f = t
        .ok(
            "CreateTopic",
            json!({"Name": "f.fifo", "Attributes": {"FifoTopic": "true"}}),
        )
        .await["TopicArn"]
        .clone();
    assert_code(
        &t.err(
            "Subscribe",
            json!({"TopicArn": f, "Protocol": "http", "Endpoint": "http://x"}),
        )
        .await,
        "InvalidParameter",
        400,
    );
    t.ok("Subscribe", json!({"TopicArn": f, "Protocol": "sqs", "Endpoint": "arn:aws:sqs:us-east-1:000000000000:q.fifo"})).await;
}

#[tokio::test]
async fn subscription_attributes() {
    let t = setup();
    let arn = t.topic("sa").await;
    let s = t.sub(&arn, "sqs", Q, json!({})).await;
    let fp = json!({"color": ["red"]}).to_string();
    t.ok(
        "SetSubscriptionAttributes",
        json!({"SubscriptionArn": s, "AttributeName": "FilterPolicy", "AttributeValue": fp}),
    )
    .await;
    t.ok("SetSubscriptionAttributes", json!({"SubscriptionArn": s, "AttributeName": "RawMessageDelivery", "AttributeValue": "True"})).await;
    let a = t
        .ok("GetSubscriptionAttributes", json!({"SubscriptionArn": s}))
        .await["Attributes"]
        .clone();
    assert_eq!(a["FilterPolicy"], json!(fp));
    assert_eq!(a["FilterPolicyScope"], "MessageAttributes");
    assert_eq!(a["RawMessageDelivery"], "true");
    // A nested policy needs MessageBody scope.
    let nested = json!({"a": {"b": ["x"]}}).to_string();
    let e = t.err("SetSubscriptionAttributes", json!({"SubscriptionArn": s, "AttributeName": "FilterPolicy", "AttributeValue": nested})).await;
    assert_code(&e, "InvalidParameter", 400);
    assert_eq!(
        e.message,
        "Invalid parameter: Filter policy scope MessageAttributes does not support nested filter policy"
    );
    let bad_op = json!({"a": [{"prefx": "x"}]}).to_string();
    let e = t.err("SetSubscriptionAttributes", json!({"SubscriptionArn": s, "AttributeName": "FilterPolicy", "AttributeValue": bad_op})).await;
    assert_eq!(
        e.message,
        "Invalid parameter: FilterPolicy: Unrecognized match type prefx"
    );
    let e = t.err("Subscribe", json!({"TopicArn": arn, "Protocol": "sqs", "Endpoint": "arn:aws:sqs:us-east-1:000000000000:other", "Attributes": {"FilterPolicy": bad_op}})).await;
    assert_eq!(
        e.message,
        "Invalid parameter: Attributes Reason: FilterPolicy: Unrecognized match type prefx"
    );
    t.ok(
        "SetSubscriptionAttributes",
        json!({"SubscriptionArn": s, "AttributeName": "FilterPolicy", "AttributeValue": ""}),
    )
    .await;
    t.ok("SetSubscriptionAttributes", json!({"SubscriptionArn": s, "AttributeName": "FilterPolicyScope", "AttributeValue": "MessageBody"})).await;
    // A scope without a policy is kept, and shown only once there is a policy.
    let a = t
        .ok("GetSubscriptionAttributes", json!({"SubscriptionArn": s}))
        .await["Attributes"]
        .clone();
    assert!(a.get("FilterPolicyScope").is_none(), "{a}");
    t.ok(
        "SetSubscriptionAttributes",
        json!({"SubscriptionArn": s, "AttributeName": "FilterPolicy", "AttributeValue": nested}),
    )
    .await;
    let a = t
        .ok("GetSubscriptionAttributes", json!({"SubscriptionArn": s}))
        .await["Attributes"]
        .clone();
    assert_eq!(a["FilterPolicyScope"], "MessageBody");
    let too_many =
        json!({"a": ["1"], "b": ["1"], "c": ["1"], "d": ["1"], "e": ["1"], "f": ["1"]}).to_string();
    let e = t.err("SetSubscriptionAttributes", json!({"SubscriptionArn": s, "AttributeName": "FilterPolicy", "AttributeValue": too_many})).await;
    assert_code(&e, "InvalidParameter", 400);
    assert_code(
        &t.err(
            "SetSubscriptionAttributes",
            json!({"SubscriptionArn": s, "AttributeName": "Protocol", "AttributeValue": "http"}),
        )
        .await,
        "InvalidParameter",
        400,
    );
    assert_code(
        &t.err("SetSubscriptionAttributes", json!({"SubscriptionArn": s, "AttributeName": "DeliveryPolicy", "AttributeValue": "{}"})).await,
        "InvalidParameter",
        400,
    );
    let gone = format!("{arn}:00000000-0000-0000-0000-000000000000");
    assert_code(
        &t.err(
            "GetSubscriptionAttributes",
            json!({"SubscriptionArn": gone}),
        )
        .await,
        "NotFound",
        404,
    );
    assert_code(
        &t.err(
            "GetSubscriptionAttributes",
            json!({"SubscriptionArn": "pending confirmation"}),
        )
        .await,
        "InvalidParameter",
        400,
    );
}

#[tokio::test]
async fn list_subscriptions_and_unsubscribe() {
    let t = setup();
    let a = t.topic("la").await;
    let b = t.topic("lb").await;
    for i in 0..120 {
        t.sub(
            &a,
            "sqs",
            &format!("arn:aws:sqs:us-east-1:000000000000:q{i}"),
            json!({}),
        )
        .await;
    }
    let sb = t.sub(&b, "sqs", Q, json!({})).await;
    let p1 = t.ok("ListSubscriptions", json!({})).await;
    assert_eq!(p1["Subscriptions"].as_array().unwrap().len(), 100);
    let p2 = t
        .ok("ListSubscriptions", json!({"NextToken": p1["NextToken"]}))
        .await;
    assert_eq!(p2["Subscriptions"].as_array().unwrap().len(), 21);
    assert!(p2.get("NextToken").is_none());
    let bt = t
        .ok("ListSubscriptionsByTopic", json!({"TopicArn": b}))
        .await;
    assert_eq!(
        bt["Subscriptions"],
        json!([{"SubscriptionArn": sb, "Owner": "000000000000", "Protocol": "sqs", "Endpoint": Q, "TopicArn": b}])
    );
    assert_code(
        &t.err(
            "ListSubscriptionsByTopic",
            json!({"TopicArn": format!("{b}x")}),
        )
        .await,
        "NotFound",
        404,
    );
    t.ok("Unsubscribe", json!({"SubscriptionArn": sb})).await;
    // Again: AWS answers a repeated Unsubscribe without an error.
    t.ok("Unsubscribe", json!({"SubscriptionArn": sb})).await;
    assert_code(
        &t.err("Unsubscribe", json!({"SubscriptionArn": "x"})).await,
        "InvalidParameter",
        400,
    );
    assert_eq!(
        t.ok("ListSubscriptionsByTopic", json!({"TopicArn": b}))
            .await["Subscriptions"],
        json!([])
    );
    let attrs = t.ok("GetTopicAttributes", json!({"TopicArn": b})).await["Attributes"].clone();
    assert_eq!(attrs["SubscriptionsDeleted"], "1");
    assert_eq!(attrs["SubscriptionsConfirmed"], "0");
}

/// A publish builds the envelope once for all its subscriptions: each gets the same bytes but
/// for its own UnsubscribeURL. (The exact bytes and member order of an envelope are pinned by
/// `delivery.rs`'s tests, which build it through the same `SharedEnvelope`.)
#[tokio::test]
async fn envelopes_differ_only_in_their_unsubscribe_url() {
    let t = setup();
    let arn = t.topic("shared").await;
    let q2 = "arn:aws:sqs:us-east-1:000000000000:second";
    let s1 = t.sub(&arn, "sqs", Q, json!({})).await;
    let s2 = t.sub(&arn, "sqs", q2, json!({})).await;
    t.ok(
        "Publish",
        json!({"TopicArn": arn, "Message": "line\n\"quoted\"", "Subject": "s",
               "MessageAttributes": {"a": {"DataType": "String", "StringValue": "1"}}}),
    )
    .await;
    let (b1, b2) = (t.sqs.bodies(Q).remove(0), t.sqs.bodies(q2).remove(0));
    let url = |s: &str| super::delivery::arn_in_url(s);
    assert_ne!(b1, b2);
    assert_eq!(b1.replace(&url(&s1), "SUB"), b2.replace(&url(&s2), "SUB"));
    let env: Value = serde_json::from_str(&b2).unwrap();
    assert_eq!(env["Message"], "line\n\"quoted\"");
    assert!(env["UnsubscribeURL"].as_str().unwrap().ends_with(&url(&s2)));
    assert_eq!(
        env["MessageAttributes"]["a"],
        json!({"Type": "String", "Value": "1"})
    );
}

#[tokio::test]
async fn publish_fans_out_envelopes_to_sqs() {
    let t = setup();
    let arn = t.topic("pub").await;
    let s = t.sub(&arn, "sqs", Q, json!({})).await;
    let q2 = "arn:aws:sqs:us-east-1:000000000000:raw";
    t.sub(&arn, "sqs", q2, json!({"RawMessageDelivery": "true"}))
        .await;
    let out = t
        .ok(
            "Publish",
            json!({"TopicArn": arn, "Message": "hello", "Subject": "greeting",
                   "MessageAttributes": {"color": {"DataType": "String", "StringValue": "red"},
                                         "n": {"DataType": "Number", "StringValue": "5"},
                                         "bin": {"DataType": "Binary", "BinaryValue": "AAE="}}}),
        )
        .await;
    let mid = out["MessageId"].as_str().unwrap();
    assert!(out.get("SequenceNumber").is_none());
    let bodies = t.sqs.bodies(Q);
    assert_eq!(bodies.len(), 1);
    let env: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(env["Type"], "Notification");
    assert_eq!(env["MessageId"], mid);
    assert_eq!(env["TopicArn"], json!(arn));
    assert_eq!(env["Subject"], "greeting");
    assert_eq!(env["Message"], "hello");
    assert_eq!(env["SignatureVersion"], "1");
    assert!(env["Signature"].is_string() && env["SigningCertURL"].is_string());
    assert!(env["UnsubscribeURL"]
        .as_str()
        .unwrap()
        .contains("Action=Unsubscribe"));
    assert!(env["UnsubscribeURL"].as_str().unwrap().ends_with(&s));
    let ts = env["Timestamp"].as_str().unwrap();
    assert_eq!(ts.len(), 24);
    assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.');
    assert_eq!(
        env["MessageAttributes"]["color"],
        json!({"Type": "String", "Value": "red"})
    );
    assert_eq!(
        env["MessageAttributes"]["n"],
        json!({"Type": "Number", "Value": "5"})
    );
    assert_eq!(
        env["MessageAttributes"]["bin"],
        json!({"Type": "Binary", "Value": "AAE="})
    );
    let sent = t.sqs.sent.lock().clone();
    let (_, env_send) = sent.iter().find(|(a, _)| a == Q).unwrap();
    assert!(env_send.message_attributes.is_empty());
    assert!(env_send.message_group_id.is_none());
    let (_, raw) = sent.iter().find(|(a, _)| a == q2).unwrap();
    assert_eq!(raw.body, "hello");
    assert_eq!(
        raw.message_attributes["color"],
        json!({"DataType": "String", "StringValue": "red"})
    );
    // No Subject member when none was given.
    t.ok("Publish", json!({"TopicArn": arn, "Message": "again"}))
        .await;
    let env: Value = serde_json::from_str(&t.sqs.bodies(Q)[1]).unwrap();
    assert!(env.get("Subject").is_none());
    assert!(env.get("MessageAttributes").is_none());
    // TargetArn works for topics too.
    t.ok(
        "Publish",
        json!({"TargetArn": arn, "Message": "via target"}),
    )
    .await;
    assert_eq!(t.sqs.bodies(q2).len(), 3);
}

#[tokio::test]
async fn publish_validation() {
    let t = setup();
    let arn = t.topic("pv").await;
    let big = "x".repeat(262_145);
    let cases = [
        (json!({"Message": "m"}), "InvalidParameter"),
        (
            json!({"TopicArn": arn, "PhoneNumber": "+15555550100", "Message": "m"}),
            "InvalidParameter",
        ),
        (json!({"TopicArn": arn, "Message": ""}), "InvalidParameter"),
        (json!({"TopicArn": arn, "Message": big}), "InvalidParameter"),
        (
            json!({"TopicArn": arn, "Message": "m", "Subject": ""}),
            "InvalidParameter",
        ),
        (
            json!({"TopicArn": arn, "Message": "m", "Subject": "line\nbreak"}),
            "InvalidParameter",
        ),
        (
            json!({"TopicArn": arn, "Message": "m", "MessageStructure": "json"}),
            "InvalidParameter",
        ),
        (
            json!({"TopicArn": arn, "Message": "{\"sqs\": \"x\"}", "MessageStructure": "json"}),
            "InvalidParameter",
        ),
        (
            json!({"TopicArn": arn, "Message": "m", "MessageDeduplicationId": "d"}),
            "InvalidParameter",
        ),
        (
            json!({"TopicArn": arn, "Message": "m", "MessageAttributes": {"a": {"DataType": "Foo", "StringValue": "v"}}}),
            "ParameterValueInvalid",
        ),
        (
            json!({"TopicArn": arn, "Message": "m", "MessageAttributes": {"a": {"DataType": "String"}}}),
            "ParameterValueInvalid",
        ),
        (
            json!({"TopicArn": arn, "Message": "m", "MessageAttributes": {"a": {"DataType": "Number", "StringValue": "abc"}}}),
            "ParameterValueInvalid",
        ),
        // The SNS guide's Number range: 10^-128 to 10^+126, 38 digits of precision.
        (
            json!({"TopicArn": arn, "Message": "m", "MessageAttributes": {"a": {"DataType": "Number", "StringValue": "1e200"}}}),
            "ParameterValueInvalid",
        ),
        (
            json!({"TopicArn": arn, "Message": "m", "MessageAttributes": {"AWS.x": {"DataType": "String", "StringValue": "v"}}}),
            "ParameterValueInvalid",
        ),
        (
            json!({"TopicArn": arn, "Message": "m", "MessageAttributes": {"a": {"DataType": "Binary"}}}),
            "ParameterValueInvalid",
        ),
        (
            json!({"PhoneNumber": "12ab", "Message": "m"}),
            "InvalidParameter",
        ),
    ];
    for (input, code) in cases {
        let e = t.err("Publish", input).await;
        assert_code(&e, code, 400);
    }
    // A String.Array value that is not a JSON array is published (it only matches no
    // array-valued policy).
    t.ok(
        "Publish",
        json!({"TopicArn": arn, "Message": "m", "MessageAttributes": {"a": {"DataType": "String.Array", "StringValue": "nope"}}}),
    )
    .await;
    let e = t
        .err(
            "Publish",
            json!({"TopicArn": format!("{arn}x"), "Message": "m"}),
        )
        .await;
    assert_code(&e, "NotFound", 404);
    // Exactly at the limit is accepted.
    t.ok(
        "Publish",
        json!({"TopicArn": arn, "Message": "x".repeat(262_144)}),
    )
    .await;
}

#[tokio::test]
async fn filter_policies_select_subscriptions() {
    let t = setup();
    let arn = t.topic("flt").await;
    let red = "arn:aws:sqs:us-east-1:000000000000:red";
    let big = "arn:aws:sqs:us-east-1:000000000000:big";
    let body = "arn:aws:sqs:us-east-1:000000000000:body";
    t.sub(
        &arn,
        "sqs",
        red,
        json!({"FilterPolicy": json!({"color": ["red"]}).to_string()}),
    )
    .await;
    t.sub(
        &arn,
        "sqs",
        big,
        json!({"FilterPolicy": json!({"size": [{"numeric": [">", 10]}]}).to_string()}),
    )
    .await;
    t.sub(
        &arn,
        "sqs",
        body,
        json!({"FilterPolicyScope": "MessageBody", "FilterPolicy": json!({"order": {"kind": ["x"]}}).to_string()}),
    )
    .await;
    let attrs = |c: &str, n: &str| json!({"color": {"DataType": "String", "StringValue": c}, "size": {"DataType": "Number", "StringValue": n}});
    t.ok(
        "Publish",
        json!({"TopicArn": arn, "Message": "1", "MessageAttributes": attrs("red", "1")}),
    )
    .await;
    t.ok(
        "Publish",
        json!({"TopicArn": arn, "Message": "2", "MessageAttributes": attrs("blue", "11")}),
    )
    .await;
    t.ok(
        "Publish",
        json!({"TopicArn": arn, "Message": json!({"order": {"kind": "x"}}).to_string()}),
    )
    .await;
    t.ok(
        "Publish",
        json!({"TopicArn": arn, "Message": json!({"order": {"kind": "y"}}).to_string()}),
    )
    .await;
    let msgs = |q: &str| -> Vec<String> {
        t.sqs
            .bodies(q)
            .iter()
            .map(|b| {
                serde_json::from_str::<Value>(b).unwrap()["Message"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(msgs(red), ["1"]);
    assert_eq!(msgs(big), ["2"]);
    assert_eq!(msgs(body), [json!({"order": {"kind": "x"}}).to_string()]);
}

#[tokio::test]
async fn message_structure_json() {
    let t = setup();
    let arn = t.topic("ms").await;
    t.sub(&arn, "sqs", Q, json!({"RawMessageDelivery": "true"}))
        .await;
    let lambda = t
        .sub(
            &arn,
            "lambda",
            "arn:aws:lambda:us-east-1:000000000000:function:f",
            json!({}),
        )
        .await;
    let gcm = t
        .ok("CreatePlatformApplication", json!({"Name": "app", "Platform": "GCM", "Attributes": {"PlatformCredential": "secret"}}))
        .await["PlatformApplicationArn"]
        .clone();
    let ep = t
        .ok(
            "CreatePlatformEndpoint",
            json!({"PlatformApplicationArn": gcm, "Token": "tok"}),
        )
        .await["EndpointArn"]
        .as_str()
        .unwrap()
        .to_string();
    let app = t.sub(&arn, "application", &ep, json!({})).await;
    let attrs = json!({"k": {"DataType": "String", "StringValue": "v"}});
    t.ok(
        "Publish",
        json!({"TopicArn": arn, "MessageStructure": "json", "MessageAttributes": attrs,
               "Message": json!({"default": "d", "sqs": "for sqs", "GCM": "for gcm"}).to_string()}),
    )
    .await;
    assert_eq!(t.sqs.bodies(Q), ["for sqs"]);
    // Attributes are not delivered with MessageStructure=json.
    assert!(t.sqs.sent.lock()[0].1.message_attributes.is_empty());
    let by_sub = |s: &str| {
        t.sns.outbox(&OutboxFilter {
            subscription_arn: Some(s.to_string()),
            ..Default::default()
        })
    };
    let ev: Value = serde_json::from_str(by_sub(&lambda)[0]["Payload"].as_str().unwrap()).unwrap();
    assert_eq!(ev["Records"][0]["Sns"]["Message"], "d");
    assert!(ev["Records"][0]["Sns"].get("MessageAttributes").is_none());
    assert_eq!(by_sub(&app)[0]["Payload"], "for gcm");
    // Plain messages carry them.
    t.ok(
        "Publish",
        json!({"TopicArn": arn, "Message": "plain", "MessageAttributes": attrs}),
    )
    .await;
    assert_eq!(
        t.sqs.sent.lock()[1].1.message_attributes["k"]["StringValue"],
        "v"
    );
}

#[tokio::test]
async fn fifo_topic_booleans_in_any_case() {
    let t = setup();
    let arn = t
        .ok(
            "CreateTopic",
            json!({"Name": "cased.fifo", "Attributes": {"FifoTopic": "True", "ContentBasedDeduplication": "True"}}),
        )
        .await["TopicArn"]
        .clone();
    let a = t.ok("GetTopicAttributes", json!({"TopicArn": arn})).await["Attributes"].clone();
    assert_eq!(a["ContentBasedDeduplication"], "true");
    t.ok(
        "SetTopicAttributes",
        json!({"TopicArn": arn, "AttributeName": "ContentBasedDeduplication", "AttributeValue": "FALSE"}),
    )
    .await;
    let a = t.ok("GetTopicAttributes", json!({"TopicArn": arn})).await["Attributes"].clone();
    assert_eq!(a["ContentBasedDeduplication"], "false");
}

#[tokio::test]
async fn fifo_topics() {
    let t = setup();
    let arn = t.fifo_topic("f.fifo", json!({})).await;
    let fq = "arn:aws:sqs:us-east-1:000000000000:q.fifo";
    t.sub(&arn, "sqs", fq, json!({})).await;
    t.sub(&arn, "sqs", Q, json!({"RawMessageDelivery": "true"}))
        .await;
    let e = t
        .err("Publish", json!({"TopicArn": arn, "Message": "m"}))
        .await;
    assert!(e.message.contains("MessageGroupId"), "{}", e.message);
    let e = t
        .err(
            "Publish",
            json!({"TopicArn": arn, "Message": "m", "MessageGroupId": "g"}),
        )
        .await;
    assert!(
        e.message.contains("ContentBasedDeduplication"),
        "{}",
        e.message
    );
    let a = t.ok("Publish", json!({"TopicArn": arn, "Message": "m1", "MessageGroupId": "g", "MessageDeduplicationId": "d1"})).await;
    let b = t.ok("Publish", json!({"TopicArn": arn, "Message": "m2", "MessageGroupId": "g", "MessageDeduplicationId": "d2"})).await;
    let dup = t.ok("Publish", json!({"TopicArn": arn, "Message": "m1 again", "MessageGroupId": "g", "MessageDeduplicationId": "d1"})).await;
    assert_eq!(dup["MessageId"], a["MessageId"]);
    assert_eq!(dup["SequenceNumber"], a["SequenceNumber"]);
    let (sa, sb) = (
        a["SequenceNumber"].as_str().unwrap(),
        b["SequenceNumber"].as_str().unwrap(),
    );
    assert_eq!(sa.len(), 20);
    assert!(sb > sa);
    let sent = t.sqs.sent.lock().clone();
    let into_fifo: Vec<&InternalSend> = sent
        .iter()
        .filter(|(q, _)| q == fq)
        .map(|(_, m)| m)
        .collect();
    assert_eq!(into_fifo.len(), 2);
    assert_eq!(into_fifo[0].message_group_id.as_deref(), Some("g"));
    assert_eq!(into_fifo[0].message_deduplication_id.as_deref(), Some("d1"));
    let env: Value = serde_json::from_str(&into_fifo[1].body).unwrap();
    assert_eq!(env["Message"], "m2");
    assert_eq!(env["SequenceNumber"], json!(sb));
    // Standard queues behind a FIFO topic get neither id.
    let std: Vec<&InternalSend> = sent
        .iter()
        .filter(|(q, _)| q == Q)
        .map(|(_, m)| m)
        .collect();
    assert_eq!(std.len(), 2);
    assert!(std[0].message_group_id.is_none() && std[0].message_deduplication_id.is_none());
    // Content-based deduplication.
    t.ok("SetTopicAttributes", json!({"TopicArn": arn, "AttributeName": "ContentBasedDeduplication", "AttributeValue": "true"})).await;
    let c1 = t
        .ok(
            "Publish",
            json!({"TopicArn": arn, "Message": "same", "MessageGroupId": "g"}),
        )
        .await;
    let c2 = t
        .ok(
            "Publish",
            json!({"TopicArn": arn, "Message": "same", "MessageGroupId": "h"}),
        )
        .await;
    assert_eq!(c1["MessageId"], c2["MessageId"]);
    assert_eq!(t.sqs.bodies(fq).len(), 3);
}

#[tokio::test]
async fn publish_batch() {
    let t = setup();
    let arn = t.topic("pb").await;
    t.sub(&arn, "sqs", Q, json!({"RawMessageDelivery": "true"}))
        .await;
    let e = t
        .err(
            "PublishBatch",
            json!({"TopicArn": arn, "PublishBatchRequestEntries": []}),
        )
        .await;
    assert_code(&e, "EmptyBatchRequest", 400);
    let eleven: Vec<Value> = (0..11)
        .map(|i| json!({"Id": format!("i{i}"), "Message": "m"}))
        .collect();
    let e = t
        .err(
            "PublishBatch",
            json!({"TopicArn": arn, "PublishBatchRequestEntries": eleven}),
        )
        .await;
    assert_code(&e, "TooManyEntriesInBatchRequest", 400);
    assert_eq!(
        e.message,
        "The batch request contains more entries than permissible."
    );
    let dup = json!([{"Id": "a", "Message": "m"}, {"Id": "a", "Message": "m"}]);
    let e = t
        .err(
            "PublishBatch",
            json!({"TopicArn": arn, "PublishBatchRequestEntries": dup}),
        )
        .await;
    assert_code(&e, "BatchEntryIdsNotDistinct", 400);
    assert_eq!(
        e.message,
        "Two or more batch entries in the request have the same Id."
    );
    let bad = json!([{"Id": "a b", "Message": "m"}]);
    assert_code(
        &t.err(
            "PublishBatch",
            json!({"TopicArn": arn, "PublishBatchRequestEntries": bad}),
        )
        .await,
        "InvalidBatchEntryId",
        400,
    );
    let long = json!([{"Id": "a", "Message": "x".repeat(200_000)}, {"Id": "b", "Message": "x".repeat(100_000)}]);
    assert_code(
        &t.err(
            "PublishBatch",
            json!({"TopicArn": arn, "PublishBatchRequestEntries": long}),
        )
        .await,
        "BatchRequestTooLong",
        400,
    );
    let missing = "arn:aws:sns:us-east-1:000000000000:nope";
    assert_code(&t.err("PublishBatch", json!({"TopicArn": missing, "PublishBatchRequestEntries": [{"Id": "a", "Message": "m"}]})).await, "NotFound", 404);
    let out = t
        .ok(
            "PublishBatch",
            json!({"TopicArn": arn, "PublishBatchRequestEntries": [
                {"Id": "a", "Message": "one"},
                {"Id": "b", "Message": ""},
                {"Id": "c", "Message": "three", "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}}}
            ]}),
        )
        .await;
    let ok: Vec<&str> = out["Successful"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Id"].as_str().unwrap())
        .collect();
    assert_eq!(ok, ["a", "c"]);
    assert_eq!(
        out["Failed"],
        json!([{"Id": "b", "Code": "InvalidParameter", "Message": "Invalid parameter: Empty message", "SenderFault": true}])
    );
    assert_eq!(t.sqs.bodies(Q), ["one", "three"]);
    let (_, c) = t.sqs.sent.lock()[1].clone();
    assert_eq!(c.message_attributes["k"]["StringValue"], "v");
}

#[tokio::test]
async fn sqs_failures_dead_letter_or_fail_publish() {
    let t = setup();
    let arn = t.topic("dl").await;
    let gone = "arn:aws:sqs:us-east-1:000000000000:gone";
    let dlq = "arn:aws:sqs:us-east-1:000000000000:dlq";
    t.sub(
        &arn,
        "sqs",
        gone,
        json!({"RedrivePolicy": json!({"deadLetterTargetArn": dlq}).to_string()}),
    )
    .await;
    t.sqs.missing.lock().insert(gone.to_string());
    t.ok("Publish", json!({"TopicArn": arn, "Message": "m"}))
        .await;
    let d = t.sqs.bodies(dlq);
    assert_eq!(d.len(), 1);
    assert_eq!(
        serde_json::from_str::<Value>(&d[0]).unwrap()["Message"],
        "m"
    );
    // Storage failure: the publish is not acknowledged.
    *t.sqs.broken.lock() = true;
    let e = t
        .err("Publish", json!({"TopicArn": arn, "Message": "m"}))
        .await;
    assert_eq!(e.status, 503);
}

#[tokio::test]
async fn http_subscription_confirmation_flow() {
    let t = setup();
    let arn = t.topic("h").await;
    let out = t
        .ok(
            "Subscribe",
            json!({"TopicArn": arn, "Protocol": "http", "Endpoint": "http://127.0.0.1:9/hook"}),
        )
        .await;
    assert_eq!(out["SubscriptionArn"], "pending confirmation");
    wait_for(|| !t.http.of_type("SubscriptionConfirmation").is_empty()).await;
    let (url, headers, body) = t.http.of_type("SubscriptionConfirmation")[0].clone();
    assert_eq!(url, "http://127.0.0.1:9/hook");
    assert!(headers
        .iter()
        .any(|(k, v)| k == "x-amz-sns-topic-arn" && *v == arn));
    let c: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(c["Type"], "SubscriptionConfirmation");
    let token = c["Token"].as_str().unwrap().to_string();
    assert!(c["SubscribeURL"]
        .as_str()
        .unwrap()
        .contains("Action=ConfirmSubscription"));
    assert!(c["SubscribeURL"].as_str().unwrap().contains(&token));
    // Subscribing the pending endpoint again asks it again, with the same token.
    let again = t
        .ok(
            "Subscribe",
            json!({"TopicArn": arn, "Protocol": "http", "Endpoint": "http://127.0.0.1:9/hook"}),
        )
        .await;
    assert_eq!(again["SubscriptionArn"], "pending confirmation");
    wait_for(|| t.http.of_type("SubscriptionConfirmation").len() == 2).await;
    let resent: Value =
        serde_json::from_str(&t.http.of_type("SubscriptionConfirmation")[1].2).unwrap();
    assert_eq!(resent["Token"], token);
    assert_ne!(resent["MessageId"], c["MessageId"]);
    // Pending subscriptions get nothing and list as PendingConfirmation.
    t.ok("Publish", json!({"TopicArn": arn, "Message": "early"}))
        .await;
    let subs = t
        .ok("ListSubscriptionsByTopic", json!({"TopicArn": arn}))
        .await;
    assert_eq!(
        subs["Subscriptions"][0]["SubscriptionArn"],
        "PendingConfirmation"
    );
    let attrs = t.ok("GetTopicAttributes", json!({"TopicArn": arn})).await["Attributes"].clone();
    assert_eq!(attrs["SubscriptionsPending"], "1");
    assert_code(
        &t.err(
            "ConfirmSubscription",
            json!({"TopicArn": arn, "Token": "wrong"}),
        )
        .await,
        "InvalidParameter",
        400,
    );
    // A token issued for the subscription confirms it even when the URL names a topic that
    // does not exist (LocalStack's AWS-recorded "nonexistent-token-confirm"); a malformed
    // topic ARN is "Topic".
    let e = t
        .err(
            "ConfirmSubscription",
            json!({"TopicArn": "not-an-arn", "Token": token}),
        )
        .await;
    assert_eq!(e.message, "Invalid parameter: Topic");
    let via_missing_topic = t
        .ok(
            "ConfirmSubscription",
            json!({"TopicArn": format!("{arn}x"), "Token": token}),
        )
        .await;
    let confirmed = t
        .ok(
            "ConfirmSubscription",
            json!({"TopicArn": arn, "Token": token}),
        )
        .await;
    let sub_arn = confirmed["SubscriptionArn"].as_str().unwrap().to_string();
    assert!(sub_arn.starts_with(&arn));
    assert_eq!(via_missing_topic["SubscriptionArn"], sub_arn.as_str());
    // Confirming twice is fine; so is the internal entry point.
    assert_eq!(t.sns.confirm_by_token(&arn, &token).await.unwrap(), sub_arn);
    let out = t
        .ok(
            "Publish",
            json!({"TopicArn": arn, "Message": "hi", "Subject": "s"}),
        )
        .await;
    wait_for(|| !t.http.of_type("Notification").is_empty()).await;
    let (_, headers, body) = t.http.of_type("Notification")[0].clone();
    let h = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(
        h("x-amz-sns-message-id"),
        out["MessageId"].as_str().map(str::to_string)
    );
    assert_eq!(h("x-amz-sns-subscription-arn"), Some(sub_arn.clone()));
    assert_eq!(h("x-amz-sns-topic-arn"), Some(arn.clone()));
    let n: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(n["Message"], "hi");
    assert_eq!(
        t.http.of_type("Notification").len(),
        1,
        "the early publish must not be delivered"
    );
    assert_eq!(h("accept-encoding").as_deref(), Some("gzip,deflate"));
    // The confirmation request named no subscription.
    let (_, ch, _) = t.http.of_type("SubscriptionConfirmation")[0].clone();
    assert!(!ch.iter().any(|(n, _)| n == "x-amz-sns-subscription-arn"));
    // Unsubscribing an http subscription sends an UnsubscribeConfirmation, which names it.
    t.ok("Unsubscribe", json!({"SubscriptionArn": sub_arn}))
        .await;
    wait_for(|| !t.http.of_type("UnsubscribeConfirmation").is_empty()).await;
    let (_, uh, ub) = t.http.of_type("UnsubscribeConfirmation")[0].clone();
    assert!(uh
        .iter()
        .any(|(n, v)| n == "x-amz-sns-subscription-arn" && *v == sub_arn));
    // With a token of its own.
    let u: Value = serde_json::from_str(&ub).unwrap();
    assert!(u["Token"]
        .as_str()
        .is_some_and(|k| !k.is_empty() && k != token));
    assert_code(
        &t.err(
            "GetSubscriptionAttributes",
            json!({"SubscriptionArn": sub_arn}),
        )
        .await,
        "NotFound",
        404,
    );
}

#[tokio::test]
async fn http_retries_then_dead_letter() {
    let t = setup();
    let arn = t.topic("hr").await;
    let dlq = "arn:aws:sqs:us-east-1:000000000000:hdlq";
    let policy = json!({
        "healthyRetryPolicy": {"numRetries": 2, "numNoDelayRetries": 2, "minDelayTarget": 1, "maxDelayTarget": 1},
        "requestPolicy": {"headerContentType": "application/json"}
    })
    .to_string();
    let s = t
        .sub(&arn, "http", "http://127.0.0.1:9/x", json!({"DeliveryPolicy": policy, "RedrivePolicy": json!({"deadLetterTargetArn": dlq}).to_string()}))
        .await;
    wait_for(|| !t.http.of_type("SubscriptionConfirmation").is_empty()).await;
    let token = {
        let body = t.http.of_type("SubscriptionConfirmation")[0].2.clone();
        serde_json::from_str::<Value>(&body).unwrap()["Token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    t.sns.confirm_by_token(&arn, &token).await.unwrap();
    let a = t
        .ok("GetSubscriptionAttributes", json!({"SubscriptionArn": s}))
        .await["Attributes"]
        .clone();
    let eff: Value = serde_json::from_str(a["EffectiveDeliveryPolicy"].as_str().unwrap()).unwrap();
    assert_eq!(eff["healthyRetryPolicy"]["numRetries"], 2);
    // First answer 500, then 503, then unreachable: 3 attempts in all, then the DLQ.
    t.http
        .answers
        .lock()
        .extend([Ok(500), Ok(503), Err("refused".into())]);
    t.ok("Publish", json!({"TopicArn": arn, "Message": "doomed"}))
        .await;
    wait_for(|| !t.sqs.bodies(dlq).is_empty()).await;
    assert_eq!(t.http.of_type("Notification").len(), 3);
    let (_, headers, _) = t.http.of_type("Notification")[0].clone();
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/json"),
        "{headers:?}"
    );
    let env: Value = serde_json::from_str(&t.sqs.bodies(dlq)[0]).unwrap();
    assert_eq!(env["Message"], "doomed");
    wait_for(|| t.sns.state.lock().pending.is_empty()).await;
    // A 4xx is a refusal: no retries, straight to the DLQ.
    t.http.answers.lock().push_back(Ok(404));
    t.ok("Publish", json!({"TopicArn": arn, "Message": "refused"}))
        .await;
    wait_for(|| t.sqs.bodies(dlq).len() == 2).await;
    assert_eq!(t.http.of_type("Notification").len(), 4);
    wait_for(|| t.sns.state.lock().pending.is_empty()).await;
    // A delivery that succeeds on the second attempt is not dead-lettered.
    t.http.answers.lock().push_back(Ok(500));
    t.ok("Publish", json!({"TopicArn": arn, "Message": "lucky"}))
        .await;
    wait_for(|| t.http.of_type("Notification").len() == 6).await;
    wait_for(|| t.sns.state.lock().pending.is_empty()).await;
    assert_eq!(t.sqs.bodies(dlq).len(), 2);
}

#[tokio::test]
async fn outbox_for_unreachable_protocols() {
    let t = setup();
    let arn = t.topic("ob").await;
    let out = t
        .ok(
            "Subscribe",
            json!({"TopicArn": arn, "Protocol": "email", "Endpoint": "a@example.com"}),
        )
        .await;
    assert_eq!(out["SubscriptionArn"], "pending confirmation");
    let conf = t.sns.outbox(&OutboxFilter {
        endpoint: Some("a@example.com".into()),
        ..Default::default()
    });
    assert_eq!(conf.len(), 1);
    let env: Value = serde_json::from_str(conf[0]["Payload"].as_str().unwrap()).unwrap();
    t.sns
        .confirm_by_token(&arn, env["Token"].as_str().unwrap())
        .await
        .unwrap();
    let sms = t.sub(&arn, "sms", "+15555550100", json!({})).await;
    let lambda = t
        .sub(
            &arn,
            "lambda",
            "arn:aws:lambda:us-east-1:000000000000:function:f",
            json!({}),
        )
        .await;
    t.sub(&arn, "email-json", "b@example.com", json!({})).await; // stays pending
    t.ok(
        "Publish",
        json!({"TopicArn": arn, "Message": "note", "Subject": "subj"}),
    )
    .await;
    let sms_box = t.sns.outbox(&OutboxFilter {
        subscription_arn: Some(sms.clone()),
        ..Default::default()
    });
    assert_eq!(sms_box.len(), 1);
    assert_eq!(sms_box[0]["Payload"], "note");
    assert_eq!(sms_box[0]["Protocol"], "sms");
    let email = t.sns.outbox(&OutboxFilter {
        endpoint: Some("a@example.com".into()),
        ..Default::default()
    });
    assert_eq!(email.len(), 2);
    assert_eq!(email[1]["Payload"], "note");
    assert_eq!(email[1]["Subject"], "subj");
    let l = t.sns.outbox(&OutboxFilter {
        subscription_arn: Some(lambda),
        ..Default::default()
    });
    let ev: Value = serde_json::from_str(l[0]["Payload"].as_str().unwrap()).unwrap();
    assert_eq!(ev["Records"][0]["Sns"]["Message"], "note");
    assert_eq!(
        t.sns
            .outbox(&OutboxFilter {
                endpoint: Some("b@example.com".into()),
                ..Default::default()
            })
            .len(),
        1
    );
    // Direct SMS publish.
    t.ok(
        "Publish",
        json!({"PhoneNumber": "+15555550199", "Message": "text"}),
    )
    .await;
    assert_eq!(
        t.sns.outbox(&OutboxFilter {
            endpoint: Some("+15555550199".into()),
            ..Default::default()
        })[0]["Payload"],
        "text"
    );
    // At most 1,600 characters (not bytes) to a phone number.
    t.ok(
        "Publish",
        json!({"PhoneNumber": "+15555550199", "Message": "é".repeat(1600)}),
    )
    .await;
    let e = t
        .err(
            "Publish",
            json!({"PhoneNumber": "+15555550199", "Message": "x".repeat(1601)}),
        )
        .await;
    assert_error(
        &e,
        "InvalidParameter",
        "Invalid parameter: Message too long",
    );
    let n = t
        .sns
        .clear_outbox(&OutboxFilter {
            protocol: Some("sms".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert!(t
        .sns
        .outbox(&OutboxFilter {
            protocol: Some("sms".into()),
            ..Default::default()
        })
        .is_empty());
    t.sns.clear_outbox(&OutboxFilter::default()).await.unwrap();
    assert!(t.sns.outbox(&OutboxFilter::default()).is_empty());
}

/// Checks whose order AWS shows (moto's AWS-verified SNS tests): the topic before the
/// endpoint on Subscribe, a platform endpoint's state before the message on Publish, and an
/// application subscription needs an endpoint that exists.
#[tokio::test]
async fn subscribe_and_direct_publish_check_in_aws_order() {
    let t = setup();
    let e = t
        .err(
            "Subscribe",
            json!({"TopicArn": "arn:aws:sns:us-east-1:000000000000:none", "Protocol": "sqs", "Endpoint": "asdf"}),
        )
        .await;
    assert_eq!(
        (e.code.as_ref(), e.message.as_str()),
        ("NotFound", "Topic does not exist")
    );
    let app = t
        .ok(
            "CreatePlatformApplication",
            json!({"Name": "p", "Platform": "GCM", "Attributes": {"PlatformCredential": "k"}}),
        )
        .await["PlatformApplicationArn"]
        .clone();
    let ep = t
        .ok(
            "CreatePlatformEndpoint",
            json!({"PlatformApplicationArn": app, "Token": "some_unique_id", "Attributes": {"Enabled": "false"}}),
        )
        .await["EndpointArn"]
        .as_str()
        .unwrap()
        .to_string();
    let e = t
        .err(
            "Publish",
            json!({"TargetArn": ep, "Message": "msg", "MessageStructure": "json"}),
        )
        .await;
    assert_eq!(
        (e.code.as_ref(), e.message.as_str()),
        ("EndpointDisabled", "Endpoint is disabled")
    );
    let topic = t.topic("t").await;
    t.ok("DeleteEndpoint", json!({"EndpointArn": ep})).await;
    let e = t
        .err(
            "Subscribe",
            json!({"TopicArn": topic, "Protocol": "application", "Endpoint": ep}),
        )
        .await;
    assert_eq!(e.code, "InvalidParameter");
    assert_eq!(
        e.message,
        format!("Invalid parameter: Endpoint Reason: Endpoint does not exist for endpoint arn{ep}")
    );
}

#[tokio::test]
async fn platform_applications_and_endpoints() {
    let t = setup();
    let app = t
        .ok("CreatePlatformApplication", json!({"Name": "app", "Platform": "GCM", "Attributes": {"PlatformCredential": "secret"}}))
        .await["PlatformApplicationArn"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app, "arn:aws:sns:us-east-1:000000000000:app/GCM/app");
    assert_code(
        &t.err(
            "CreatePlatformApplication",
            json!({"Name": "x", "Platform": "NOPE", "Attributes": {}}),
        )
        .await,
        "InvalidParameter",
        400,
    );
    let attrs = t
        .ok(
            "GetPlatformApplicationAttributes",
            json!({"PlatformApplicationArn": app}),
        )
        .await["Attributes"]
        .clone();
    assert_eq!(attrs["Enabled"], "true");
    assert!(attrs.get("PlatformCredential").is_none());
    t.ok("SetPlatformApplicationAttributes", json!({"PlatformApplicationArn": app, "Attributes": {"EventEndpointCreated": "arn:aws:sns:us-east-1:000000000000:t"}})).await;
    let apps = t.ok("ListPlatformApplications", json!({})).await;
    assert_eq!(
        apps["PlatformApplications"][0]["PlatformApplicationArn"],
        json!(app)
    );
    let ep = t
        .ok(
            "CreatePlatformEndpoint",
            json!({"PlatformApplicationArn": app, "Token": "tok", "CustomUserData": "u"}),
        )
        .await["EndpointArn"]
        .as_str()
        .unwrap()
        .to_string();
    // Same token, same attributes: same endpoint; different attributes: an error.
    assert_eq!(
        t.ok(
            "CreatePlatformEndpoint",
            json!({"PlatformApplicationArn": app, "Token": "tok", "CustomUserData": "u"})
        )
        .await["EndpointArn"],
        json!(ep)
    );
    assert_code(
        &t.err(
            "CreatePlatformEndpoint",
            json!({"PlatformApplicationArn": app, "Token": "tok", "CustomUserData": "other"}),
        )
        .await,
        "InvalidParameter",
        400,
    );
    let a = t
        .ok("GetEndpointAttributes", json!({"EndpointArn": ep}))
        .await["Attributes"]
        .clone();
    assert_eq!(
        (
            a["Token"].as_str(),
            a["CustomUserData"].as_str(),
            a["Enabled"].as_str()
        ),
        (Some("tok"), Some("u"), Some("true"))
    );
    let eps = t
        .ok(
            "ListEndpointsByPlatformApplication",
            json!({"PlatformApplicationArn": app}),
        )
        .await;
    assert_eq!(eps["Endpoints"][0]["EndpointArn"], json!(ep));
    let out = t.ok("Publish", json!({"TargetArn": ep, "MessageStructure": "json", "Message": json!({"default": "d", "GCM": "{\"data\":1}"}).to_string()})).await;
    let ob = t.sns.outbox(&OutboxFilter {
        endpoint: Some(ep.clone()),
        ..Default::default()
    });
    assert_eq!(ob[0]["Payload"], "{\"data\":1}");
    assert_eq!(ob[0]["MessageId"], out["MessageId"]);
    t.ok(
        "SetEndpointAttributes",
        json!({"EndpointArn": ep, "Attributes": {"Enabled": "false"}}),
    )
    .await;
    assert_code(
        &t.err("Publish", json!({"TargetArn": ep, "Message": "m"}))
            .await,
        "EndpointDisabled",
        400,
    );
    assert_code(
        &t.err(
            "SetEndpointAttributes",
            json!({"EndpointArn": ep, "Attributes": {"Enabled": "maybe"}}),
        )
        .await,
        "InvalidParameter",
        400,
    );
    t.ok("DeleteEndpoint", json!({"EndpointArn": ep})).await;
    t.ok("DeleteEndpoint", json!({"EndpointArn": ep})).await;
    assert_code(
        &t.err("GetEndpointAttributes", json!({"EndpointArn": ep}))
            .await,
        "NotFound",
        404,
    );
    // AWS: a publish to an endpoint that does not exist is a bad TargetArn, not a NotFound.
    assert_code(
        &t.err("Publish", json!({"TargetArn": ep, "Message": "m"}))
            .await,
        "InvalidParameter",
        400,
    );
    t.ok(
        "DeletePlatformApplication",
        json!({"PlatformApplicationArn": app}),
    )
    .await;
    assert_code(
        &t.err(
            "GetPlatformApplicationAttributes",
            json!({"PlatformApplicationArn": app}),
        )
        .await,
        "NotFound",
        404,
    );
    assert_code(
        &t.err(
            "ListEndpointsByPlatformApplication",
            json!({"PlatformApplicationArn": app}),
        )
        .await,
        "NotFound",
        404,
    );
    assert_code(
        &t.err(
            "CreatePlatformEndpoint",
            json!({"PlatformApplicationArn": app, "Token": "t"}),
        )
        .await,
        "NotFound",
        404,
    );
}

#[tokio::test]
async fn sms_actions() {
    let t = setup();
    t.ok(
        "SetSMSAttributes",
        json!({"attributes": {"DefaultSMSType": "Transactional", "MonthlySpendLimit": "5"}}),
    )
    .await;
    assert_code(
        &t.err(
            "SetSMSAttributes",
            json!({"attributes": {"DefaultSMSType": "Loud"}}),
        )
        .await,
        "InvalidParameter",
        400,
    );
    assert_code(
        &t.err("SetSMSAttributes", json!({"attributes": {"Nope": "1"}}))
            .await,
        "InvalidParameter",
        400,
    );
    let all = t.ok("GetSMSAttributes", json!({})).await;
    assert_eq!(
        all["attributes"],
        json!({"DefaultSMSType": "Transactional", "MonthlySpendLimit": "5"})
    );
    let some = t
        .ok(
            "GetSMSAttributes",
            json!({"attributes": ["MonthlySpendLimit"]}),
        )
        .await;
    assert_eq!(some["attributes"], json!({"MonthlySpendLimit": "5"}));
    assert_eq!(
        t.ok(
            "CheckIfPhoneNumberIsOptedOut",
            json!({"phoneNumber": "+15555550100"})
        )
        .await,
        json!({"isOptedOut": false})
    );
    assert_code(
        &t.err(
            "CheckIfPhoneNumberIsOptedOut",
            json!({"phoneNumber": "bad"}),
        )
        .await,
        "InvalidParameter",
        400,
    );
    t.ok("OptInPhoneNumber", json!({"phoneNumber": "+15555550100"}))
        .await;
    assert_eq!(
        t.ok("ListPhoneNumbersOptedOut", json!({})).await,
        json!({"phoneNumbers": []})
    );
    assert_eq!(
        t.ok("GetSMSSandboxAccountStatus", json!({})).await,
        json!({"IsInSandbox": false})
    );
    t.ok(
        "CreateSMSSandboxPhoneNumber",
        json!({"PhoneNumber": "+15555550100", "LanguageCode": "en-US"}),
    )
    .await;
    let l = t.ok("ListSMSSandboxPhoneNumbers", json!({})).await;
    assert_eq!(
        l["PhoneNumbers"],
        json!([{"PhoneNumber": "+15555550100", "Status": "Pending"}])
    );
    t.ok(
        "VerifySMSSandboxPhoneNumber",
        json!({"PhoneNumber": "+15555550100", "OneTimePassword": "123456"}),
    )
    .await;
    let l = t.ok("ListSMSSandboxPhoneNumbers", json!({})).await;
    assert_eq!(l["PhoneNumbers"][0]["Status"], "Verified");
    assert_code(
        &t.err(
            "VerifySMSSandboxPhoneNumber",
            json!({"PhoneNumber": "+15555550101", "OneTimePassword": "1"}),
        )
        .await,
        "ResourceNotFound",
        404,
    );
    t.ok(
        "DeleteSMSSandboxPhoneNumber",
        json!({"PhoneNumber": "+15555550100"}),
    )
    .await;
    assert_code(
        &t.err(
            "DeleteSMSSandboxPhoneNumber",
            json!({"PhoneNumber": "+15555550100"}),
        )
        .await,
        "ResourceNotFound",
        404,
    );
    assert_eq!(
        t.ok("ListOriginationNumbers", json!({})).await,
        json!({"PhoneNumbers": []})
    );
    assert_code(
        &t.err("ListOriginationNumbers", json!({"MaxResults": 31}))
            .await,
        "ValidationException",
        400,
    );
    let e = t.err("NoSuchAction", json!({})).await;
    assert_code(&e, "InvalidAction", 400);
}

#[tokio::test]
async fn state_survives_reopen_from_log_and_checkpoint() {
    let t = setup();
    let arn = t.topic("durable").await;
    let f = t.fifo_topic("d.fifo", json!({})).await;
    t.ok(
        "TagResource",
        json!({"ResourceArn": arn, "Tags": [{"Key": "k", "Value": "v"}]}),
    )
    .await;
    let s = t
        .sub(
            &arn,
            "sqs",
            Q,
            json!({"FilterPolicy": json!({"a": ["b"]}).to_string()}),
        )
        .await;
    t.sub(
        &f,
        "sqs",
        "arn:aws:sqs:us-east-1:000000000000:q.fifo",
        json!({}),
    )
    .await;
    let first = t.ok("Publish", json!({"TopicArn": f, "Message": "m", "MessageGroupId": "g", "MessageDeduplicationId": "d"})).await;
    t.ok(
        "Publish",
        json!({"PhoneNumber": "+15555550100", "Message": "sms"}),
    )
    .await;
    let dump = |sns: &Sns| serde_json::to_string(&format!("{:?}", *sns.state.lock())).unwrap();
    let before = dump(&t.sns);
    let log = t.sns.log_handle();
    let reopened = t.reopen();
    assert_eq!(dump(&reopened), before);
    // The dedup window survives: a retry after restart is recognised.
    let ctx = &t.ctx;
    let again = reopened
        .dispatch(ctx, "Publish", json!({"TopicArn": f, "Message": "m", "MessageGroupId": "g", "MessageDeduplicationId": "d"}))
        .await
        .unwrap();
    assert_eq!(again["MessageId"], first["MessageId"]);
    // Checkpoint, then more records; a reopen rebuilds from both.
    {
        let _c = reopened.ckpt.write().await;
        reopened.checkpoint_locked().unwrap();
    }
    assert_eq!(
        log.start_offset(),
        log.next_offset(),
        "history below the checkpoint is dropped"
    );
    reopened
        .dispatch(ctx, "Unsubscribe", json!({"SubscriptionArn": s}))
        .await
        .unwrap();
    let before = dump(&reopened);
    let third = t.reopen();
    assert_eq!(dump(&third), before);
    let attrs = third
        .dispatch(ctx, "GetTopicAttributes", json!({"TopicArn": arn}))
        .await
        .unwrap();
    assert_eq!(attrs["Attributes"]["SubscriptionsDeleted"], "1");
    // Reset wipes everything durably.
    third.reset().await.unwrap();
    let fourth = t.reopen();
    assert_eq!(
        fourth.dispatch(ctx, "ListTopics", json!({})).await.unwrap(),
        json!({"Topics": []})
    );
    assert!(fourth.outbox(&OutboxFilter::default()).is_empty());
}

#[tokio::test]
async fn pending_http_delivery_resumes_after_restart() {
    let t = setup();
    let arn = t.topic("resume").await;
    let policy =
        json!({"healthyRetryPolicy": {"numRetries": 50, "minDelayTarget": 1, "maxDelayTarget": 1}})
            .to_string();
    t.sub(
        &arn,
        "http",
        "http://127.0.0.1:9/r",
        json!({"DeliveryPolicy": policy}),
    )
    .await;
    wait_for(|| !t.http.of_type("SubscriptionConfirmation").is_empty()).await;
    let body = t.http.of_type("SubscriptionConfirmation")[0].2.clone();
    let token = serde_json::from_str::<Value>(&body).unwrap()["Token"]
        .as_str()
        .unwrap()
        .to_string();
    t.sns.confirm_by_token(&arn, &token).await.unwrap();
    *t.http.fail_all.lock() = true;
    t.ok("Publish", json!({"TopicArn": arn, "Message": "persist me"}))
        .await;
    wait_for(|| t.sns.state.lock().pending.values().any(|p| p.attempts >= 1)).await;
    let log = t.sns.log_handle();
    // "Restart": a new instance over the same log with a working endpoint.
    let http2 = Arc::new(FakeHttp::default());
    let sns2 = Sns::open_log(
        log,
        Sinks {
            sqs: t.sqs.clone(),
            http: http2.clone(),
        },
        t.sns.signer.clone(),
    )
    .unwrap();
    assert_eq!(sns2.state.lock().pending.len(), 1);
    wait_for(|| !http2.of_type("Notification").is_empty()).await;
    let n: Value = serde_json::from_str(&http2.of_type("Notification")[0].2).unwrap();
    assert_eq!(n["Message"], "persist me");
    wait_for(|| sns2.state.lock().pending.is_empty()).await;
}

/// A one-route HTTP server on loopback recording (request head, body) and answering 200.
async fn http_recorder() -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let seen = seen2.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let head = text[..end].to_string();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                    buf.drain(..end + 4 + len);
                    seen.lock().push((head, body));
                    if sock
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}/hook"), seen)
}

#[tokio::test]
async fn real_http_delivery_over_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let sqs = Arc::new(FakeSqs::default());
    let sns = Sns::open_with(
        &Config::for_tests(dir.path()),
        Sinks {
            sqs,
            http: Arc::new(super::delivery::HyperHttp::new()),
        },
    )
    .unwrap();
    let ctx = RequestContext::local("000000000000", "us-east-1");
    let (url, seen) = http_recorder().await;
    let arn = sns
        .dispatch(&ctx, "CreateTopic", json!({"Name": "web"}))
        .await
        .unwrap()["TopicArn"]
        .as_str()
        .unwrap()
        .to_string();
    sns.dispatch(
        &ctx,
        "Subscribe",
        json!({"TopicArn": arn, "Protocol": "http", "Endpoint": url}),
    )
    .await
    .unwrap();
    wait_for(|| !seen.lock().is_empty()).await;
    let (head, body) = seen.lock()[0].clone();
    assert!(head.starts_with("POST /hook HTTP/1.1"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-amz-sns-message-type: subscriptionconfirmation"),
        "{head}"
    );
    let token = serde_json::from_str::<Value>(&body).unwrap()["Token"]
        .as_str()
        .unwrap()
        .to_string();
    let sub = sns
        .dispatch(
            &ctx,
            "ConfirmSubscription",
            json!({"TopicArn": arn, "Token": token}),
        )
        .await
        .unwrap()["SubscriptionArn"]
        .as_str()
        .unwrap()
        .to_string();
    sns.dispatch(
        &ctx,
        "Publish",
        json!({"TopicArn": arn, "Message": "over the wire"}),
    )
    .await
    .unwrap();
    wait_for(|| seen.lock().len() == 2).await;
    let (head, body) = seen.lock()[1].clone();
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("x-amz-sns-message-type: notification"),
        "{head}"
    );
    assert!(
        lower.contains(&format!(
            "x-amz-sns-subscription-arn: {}",
            sub.to_ascii_lowercase()
        )),
        "{head}"
    );
    assert!(
        lower.contains(&format!(
            "x-amz-sns-topic-arn: {}",
            arn.to_ascii_lowercase()
        )),
        "{head}"
    );
    assert!(lower.contains("x-amz-sns-message-id: "), "{head}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["Message"],
        "over the wire"
    );
    wait_for(|| sns.state.lock().pending.is_empty()).await;
}

#[tokio::test]
async fn hyper_sink_refuses_https_and_reports_unreachable() {
    let h = super::delivery::HyperHttp::new();
    assert!(h
        .post("https://127.0.0.1:1/", vec![], String::new())
        .await
        .is_err());
    // Port 1 on loopback: nothing listens there.
    assert!(h
        .post("http://127.0.0.1:1/", vec![], String::new())
        .await
        .is_err());
}

/// Rebuilds the canonical string from a delivered document, as SNS message validators do.
fn verifies(sns: &Sns, doc: &str) -> bool {
    let m: Value = serde_json::from_str(doc).unwrap();
    let keys: &[&str] = if m["Type"] == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let text: String = keys
        .iter()
        .filter_map(|k| m[*k].as_str().map(|v| format!("{k}\n{v}\n")))
        .collect();
    sns.signer.verify(
        text.as_bytes(),
        m["Signature"].as_str().unwrap(),
        m["SignatureVersion"].as_str().unwrap(),
    )
}

#[tokio::test]
async fn notifications_are_signed() {
    let t = setup();
    let arn = t.topic("sig").await;
    t.sub(&arn, "sqs", Q, json!({})).await;
    t.sub(&arn, "http", "http://127.0.0.1:9/s", json!({})).await;
    t.ok(
        "Publish",
        json!({"TopicArn": arn, "Message": "hello", "Subject": "s"}),
    )
    .await;
    t.ok(
        "SetTopicAttributes",
        json!({"TopicArn": arn, "AttributeName": "SignatureVersion", "AttributeValue": "2"}),
    )
    .await;
    t.ok("Publish", json!({"TopicArn": arn, "Message": "v2"}))
        .await;
    let bodies = t.sqs.bodies(Q);
    assert!(verifies(&t.sns, &bodies[0]));
    assert!(verifies(&t.sns, &bodies[1]));
    assert_eq!(
        serde_json::from_str::<Value>(&bodies[1]).unwrap()["SignatureVersion"],
        "2"
    );
    // Tampering breaks it.
    assert!(!verifies(&t.sns, &bodies[0].replace("hello", "hellO")));
    wait_for(|| !t.http.of_type("SubscriptionConfirmation").is_empty()).await;
    assert!(verifies(
        &t.sns,
        &t.http.of_type("SubscriptionConfirmation")[0].2
    ));
    assert!(t
        .sns
        .signing_cert_pem()
        .starts_with("-----BEGIN CERTIFICATE-----"));
}

#[tokio::test]
async fn periodic_checkpoints_bound_the_log_and_replay_exactly() {
    let t = setup();
    let mut arns = Vec::new();
    for i in 0..150 {
        arns.push(t.topic(&format!("c{i}")).await);
    }
    for a in arns.iter().step_by(3) {
        t.ok("DeleteTopic", json!({"TopicArn": a})).await;
    }
    t.ok(
        "Publish",
        json!({"PhoneNumber": "+15555550100", "Message": "after"}),
    )
    .await;
    let log = t.sns.log_handle();
    assert!(log.start_offset() > 0, "checkpoints dropped old history");
    assert!(log.next_offset() - log.start_offset() < 2 * super::CHECKPOINT_EVERY);
    let reopened = t.reopen();
    assert_eq!(*reopened.state.lock(), *t.sns.state.lock());
    let listed = reopened
        .dispatch(&t.ctx, "ListTopics", json!({}))
        .await
        .unwrap();
    assert_eq!(listed["Topics"].as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn filter_policy_limit_per_topic() {
    let t = setup();
    let arn = t.topic("many-filters").await;
    let fp = json!({"a": ["b"]}).to_string();
    for i in 0..200 {
        t.sub(
            &arn,
            "sqs",
            &format!("arn:aws:sqs:us-east-1:000000000000:f{i}"),
            json!({"FilterPolicy": fp}),
        )
        .await;
    }
    let e = t
        .err(
            "Subscribe",
            json!({"TopicArn": arn, "Protocol": "sqs", "Endpoint": "arn:aws:sqs:us-east-1:000000000000:over", "Attributes": {"FilterPolicy": fp}}),
        )
        .await;
    assert_code(&e, "FilterPolicyLimitExceeded", 403);
    let plain = t
        .sub(
            &arn,
            "sqs",
            "arn:aws:sqs:us-east-1:000000000000:plain",
            json!({}),
        )
        .await;
    let e = t
        .err(
            "SetSubscriptionAttributes",
            json!({"SubscriptionArn": plain, "AttributeName": "FilterPolicy", "AttributeValue": fp}),
        )
        .await;
    assert_code(&e, "FilterPolicyLimitExceeded", 403);
}

/// An endpoint that holds every POST until released, counting how many are open at once.
#[derive(Default)]
struct SlowHttp {
    open: std::sync::atomic::AtomicUsize,
    max_open: std::sync::atomic::AtomicUsize,
    done: std::sync::atomic::AtomicUsize,
    gate: tokio::sync::Notify,
    released: std::sync::atomic::AtomicBool,
}

impl HttpSink for SlowHttp {
    fn post(
        &self,
        _url: &str,
        _h: Vec<(String, String)>,
        _body: String,
    ) -> BoxFuture<'_, Result<u16, String>> {
        use std::sync::atomic::Ordering::SeqCst;
        Box::pin(async move {
            let now = self.open.fetch_add(1, SeqCst) + 1;
            self.max_open.fetch_max(now, SeqCst);
            while !self.released.load(SeqCst) {
                tokio::select! {
                    _ = self.gate.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
            self.open.fetch_sub(1, SeqCst);
            self.done.fetch_add(1, SeqCst);
            Ok(200)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_attempts_in_flight_are_bounded() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let http = Arc::new(SlowHttp::default());
    let sns = Sns::open_with(
        &Config::for_tests(dir.path()),
        Sinks {
            sqs: Arc::new(FakeSqs::default()),
            http: http.clone(),
        },
    )
    .unwrap();
    let ctx = RequestContext::local("000000000000", "us-east-1");
    let arn = sns
        .dispatch(&ctx, "CreateTopic", json!({"Name": "busy"}))
        .await
        .unwrap()["TopicArn"]
        .as_str()
        .unwrap()
        .to_string();
    // More pending confirmations than the cap (each signed: slow unoptimized), all held.
    for i in 0..66 {
        sns.dispatch(&ctx, "Subscribe", json!({"TopicArn": arn, "Protocol": "http", "Endpoint": format!("http://127.0.0.1:9/{i}")}))
            .await
            .unwrap();
    }
    wait_for(|| http.open.load(SeqCst) >= super::delivery::MAX_IN_FLIGHT).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(http.max_open.load(SeqCst), super::delivery::MAX_IN_FLIGHT);
    http.released.store(true, SeqCst);
    http.gate.notify_waiters();
    wait_for(|| http.done.load(SeqCst) == 66).await;
    wait_for(|| sns.state.lock().pending.is_empty()).await;
}

const FIFO_Q: &str = "arn:aws:sqs:us-east-1:000000000000:q.fifo";

fn assert_error(e: &ServiceError, code: &str, message: &str) {
    assert_code(e, code, 400);
    assert_eq!(e.message, message);
}

/// A standard topic's PublishBatch publishes its entries at once, so their fan-outs share
/// commit rounds instead of waiting for one each: here the three entries' sends complete
/// only when all three are in flight together. Results keep the request's order.
#[tokio::test]
async fn publish_batch_publishes_standard_entries_together() {
    let t = setup();
    let arn = t.topic("together").await;
    t.sub(&arn, "sqs", Q, json!({"RawMessageDelivery": "true"}))
        .await;
    *t.sqs.together.lock() = Some(Arc::new(tokio::sync::Barrier::new(3)));
    let batch = json!({"TopicArn": arn, "PublishBatchRequestEntries": [
        {"Id": "a", "Message": "1"}, {"Id": "b", "Message": "2"}, {"Id": "c", "Message": "3"}
    ]});
    let out = tokio::time::timeout(Duration::from_secs(10), t.ok("PublishBatch", batch))
        .await
        .expect("the entries' sends should be in flight together");
    let ids: Vec<&str> = out["Successful"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
    let mut bodies = t.sqs.bodies(Q);
    bodies.sort();
    assert_eq!(bodies, ["1", "2", "3"]);
}

/// AWS refuses the whole PublishBatch (a 400, nothing published) when an entry breaks a FIFO
/// topic's id rules, has an unusable MessageStructure, or has bad message attributes
/// (LocalStack test_publish_batch_exceptions and the batch-* snapshots of
/// test_empty_or_wrong_message_attributes).
#[tokio::test]
async fn publish_batch_refuses_whole_request() {
    let t = setup();
    let fifo = t.fifo_topic("pbx.fifo", json!({})).await;
    t.sub(&fifo, "sqs", FIFO_Q, json!({})).await;
    let batch = |topic: &str, entries: Value| json!({"TopicArn": topic, "PublishBatchRequestEntries": entries});
    let cases = [
        (
            json!([{"Id": "1", "Message": "Test message without Group ID"}]),
            "Invalid parameter: The MessageGroupId parameter is required for FIFO topics",
        ),
        (
            json!([{"Id": "1", "Message": "no dedup", "MessageGroupId": "msg1"}]),
            "Invalid parameter: The topic should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
        ),
        // MessageStructure is judged before the FIFO ids.
        (
            json!([{"Id": "1", "Message": "{\"sqs\": \"test sqs\"}", "MessageStructure": "json"}]),
            "Invalid parameter: Message Structure - No default entry in JSON message body",
        ),
        // A valid entry before the bad one is not published either.
        (
            json!([
                {"Id": "1", "Message": "ok", "MessageGroupId": "g", "MessageDeduplicationId": "d1"},
                {"Id": "2", "Message": "no group", "MessageDeduplicationId": "d2"}
            ]),
            "Invalid parameter: The MessageGroupId parameter is required for FIFO topics",
        ),
    ];
    for (entries, message) in cases {
        let e = t.err("PublishBatch", batch(&fifo, entries)).await;
        assert_error(&e, "InvalidParameter", message);
    }
    assert!(t.sqs.bodies(FIFO_Q).is_empty());

    let arn = t.topic("pbx").await;
    t.sub(&arn, "sqs", Q, json!({})).await;
    let e = t
        .err(
            "PublishBatch",
            batch(
                &arn,
                json!([
                    {"Id": "1", "Message": "valid-batch"},
                    {"Id": "2", "Message": "test-batch", "MessageAttributes": {"attr1": {"DataType": "String", "StringValue": ""}}},
                    {"Id": "3", "Message": "test-batch", "MessageAttributes": {"attr1": {"DataType": "String", "BinaryValue": "MTIz"}}}
                ]),
            ),
        )
        .await;
    assert_error(
        &e,
        "ParameterValueInvalid",
        "The message attribute 'attr1' must contain non-empty message attribute value for message attribute type 'String'.",
    );
    let e = t
        .err(
            "PublishBatch",
            batch(
                &arn,
                json!([
                    {"Id": "1", "Message": "valid-batch"},
                    {"Id": "2", "Message": "m", "MessageAttributes": {"attr1": {"StringValue": "v"}}}
                ]),
            ),
        )
        .await;
    assert_error(
        &e,
        "ValidationError",
        "1 validation error detected: Value null at 'publishBatchRequestEntries.2.member.messageAttributes.attr1.member.dataType' failed to satisfy constraint: Member must not be null",
    );
    assert!(t.sqs.bodies(Q).is_empty());
    let long = json!([{"Id": "a", "Message": "x".repeat(200_000)}, {"Id": "b", "Message": "x".repeat(100_000)}]);
    let e = t.err("PublishBatch", batch(&arn, long)).await;
    assert_error(
        &e,
        "BatchRequestTooLong",
        "The length of all the messages put together is more than the limit.",
    );
}

/// Message attribute errors in AWS's words (LocalStack test_empty_or_wrong_message_attributes).
#[tokio::test]
async fn message_attribute_errors_use_aws_wording() {
    let t = setup();
    let arn = t.topic("mattr").await;
    let pv = "ParameterValueInvalid";
    let cases = [
        (
            json!({"attr1": {"DataType": "String", "StringValue": ""}}),
            pv,
            "The message attribute 'attr1' must contain non-empty message attribute value for message attribute type 'String'.",
        ),
        (
            json!({"attr1": {"DataType": "String"}}),
            pv,
            "The message attribute 'attr1' must contain non-empty message attribute value for message attribute type 'String'.",
        ),
        (
            json!({"attr1": {"DataType": "Binary", "BinaryValue": ""}}),
            pv,
            "The message attribute 'attr1' must contain non-empty message attribute value for message attribute type 'Binary'.",
        ),
        (
            json!({"attr1": {"DataType": "String", "BinaryValue": "MTIz"}}),
            pv,
            "The message attribute 'attr1' with type 'String' must use field 'String'.",
        ),
        (
            json!({"attr1": {"DataType": "Number", "BinaryValue": "MTIz"}}),
            pv,
            "The message attribute 'attr1' with type 'Number' must use field 'String'.",
        ),
        (
            json!({"attr1": {"DataType": "Binary", "StringValue": "123"}}),
            pv,
            "The message attribute 'attr1' with type 'Binary' must use field 'Binary'.",
        ),
        (
            json!({"attr1": {"DataType": "InvalidType", "StringValue": "123"}}),
            pv,
            "The message attribute 'attr1' has an invalid message attribute type, the set of supported type prefixes is Binary, Number, and String.",
        ),
        (
            json!({"a".repeat(257): {"DataType": "String", "StringValue": "123"}}),
            pv,
            "Length of message attribute name must be less than 256 bytes.",
        ),
        (
            json!({"a^*?": {"DataType": "String", "StringValue": "123"}}),
            pv,
            "Invalid non-alphanumeric character '#x5E' was found in the message attribute name. Can only include alphanumeric characters, hyphens, underscores, or dots.",
        ),
        (
            json!({".abc": {"DataType": "String", "StringValue": "123"}}),
            pv,
            "Invalid message attribute name starting with character '.' was found.",
        ),
        (
            json!({"abc.": {"DataType": "String", "StringValue": "123"}}),
            pv,
            "Invalid message attribute name ending with character '.' was found.",
        ),
        (
            json!({"a..bc": {"DataType": "String", "StringValue": "123"}}),
            pv,
            "Message attribute name can not have successive '.' character.",
        ),
        (
            json!({"attr1": {"StringValue": "123"}}),
            "ValidationError",
            "1 validation error detected: Value null at 'messageAttributes.attr1.member.dataType' failed to satisfy constraint: Member must not be null",
        ),
    ];
    for (attrs, code, message) in cases {
        let e = t
            .err(
                "Publish",
                json!({"TopicArn": arn, "Message": "test message", "MessageAttributes": attrs}),
            )
            .await;
        assert_error(&e, code, message);
    }
}

#[tokio::test]
async fn subscribe_bad_sms_endpoint() {
    let t = setup();
    let arn = t.topic("badsms").await;
    let e = t
        .err(
            "Subscribe",
            json!({"TopicArn": arn, "Protocol": "sms", "Endpoint": "invalid-number"}),
        )
        .await;
    assert_error(
        &e,
        "InvalidParameter",
        "Invalid SMS endpoint: invalid-number",
    );
}

/// LocalStack test_validate_set_sub_attributes, test_create_subscriptions_with_attributes and
/// test_subscribe_invalid_filter_policy: Subscribe words value errors "Attributes Reason: ...",
/// SetSubscriptionAttributes does not; unparsable JSON gets Jackson's message.
#[tokio::test]
async fn subscription_attribute_errors_use_aws_wording() {
    let t = setup();
    let arn = t.topic("saw").await;
    let s = t.sub(&arn, "sqs", Q, json!({})).await;
    let set = |name: &str, value: &str| json!({"SubscriptionArn": s, "AttributeName": name, "AttributeValue": value});
    let src = "at [Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled); line: 1, column: 2]";
    let cases = [
        (
            set("RawMessageDelivery", "test-ValUe"),
            "Invalid parameter: RawMessageDelivery: Invalid value [test-ValUe]. Must be true or false.".to_string(),
        ),
        (
            set("RawMessageDelivery", ""),
            "Invalid parameter: RawMessageDelivery: Invalid value []. Must be true or false.".to_string(),
        ),
        (
            set("RedrivePolicy", "{invalidjson}"),
            format!("Invalid parameter: RedrivePolicy: failed to parse JSON. Unexpected character ('i' (code 105)): was expecting double-quote to start field name\n {src}"),
        ),
        (
            set("FilterPolicy", "{invalidjson}"),
            format!("Invalid parameter: FilterPolicy: failed to parse JSON. Unexpected character ('i' (code 105)): was expecting double-quote to start field name\n {src}"),
        ),
        (
            set("RedrivePolicy", &json!({"deadLetterTargetArn": "fake-arn"}).to_string()),
            "Invalid parameter: RedrivePolicy: deadLetterTargetArn is an invalid arn".to_string(),
        ),
    ];
    for (input, message) in cases {
        let e = t.err("SetSubscriptionAttributes", input).await;
        assert_error(&e, "InvalidParameter", &message);
    }
    let other = "arn:aws:sqs:us-east-1:000000000000:other";
    let subscribe = |attrs: Value| json!({"TopicArn": arn, "Protocol": "sqs", "Endpoint": other, "Attributes": attrs});
    let e = t
        .err(
            "Subscribe",
            subscribe(json!({"RawMessageDelivery": "wrongvalue"})),
        )
        .await;
    assert_error(
        &e,
        "InvalidParameter",
        "Invalid parameter: Attributes Reason: RawMessageDelivery: Invalid value [wrongvalue]. Must be true or false.",
    );
    let e = t
        .err("Subscribe", subscribe(json!({"FilterPolicy": "invalid"})))
        .await;
    assert_error(
        &e,
        "InvalidParameter",
        "Invalid parameter: Attributes Reason: FilterPolicy: failed to parse JSON. Unrecognized token 'invalid': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')\n at [Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled); line: 1, column: 8]",
    );
}

/// LocalStack test_sns_confirm_subscription_wrong_token.
#[tokio::test]
async fn confirm_subscription_token_errors() {
    let t = setup();
    let arn = t.topic("cst").await;
    let well_formed = "51b2ff3edb475b7d91550e0ab6edf0c1de2a34e6ebaf6c2262a001bcb7e051c4";
    let wrong_topic = format!("{}i", &arn[..arn.len() - 1]);
    let cases = [
        (
            wrong_topic.as_str(),
            well_formed,
            "Invalid parameter: Token",
        ),
        (arn.as_str(), "randomtoken", "Invalid token"),
        (arn.as_str(), well_formed, "Invalid parameter: Token"),
    ];
    for (topic, token, message) in cases {
        let e = t
            .err(
                "ConfirmSubscription",
                json!({"TopicArn": topic, "Token": token}),
            )
            .await;
        assert_error(&e, "InvalidParameter", message);
    }
}

/// LocalStack test_validations_for_fifo: a FIFO queue subscribed to a FIFO topic needs a FIFO
/// DLQ; a standard queue subscribed to the same topic does not.
#[tokio::test]
async fn fifo_subscription_needs_fifo_dead_letter_queue() {
    let t = setup();
    let arn = t.fifo_topic("dlqf.fifo", json!({})).await;
    let standard_dlq =
        json!({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:dlq"}).to_string();
    let fifo_dlq =
        json!({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:dlq.fifo"}).to_string();
    let standard = t.sub(&arn, "sqs", Q, json!({})).await;
    t.ok("SetSubscriptionAttributes", json!({"SubscriptionArn": standard, "AttributeName": "RedrivePolicy", "AttributeValue": standard_dlq})).await;
    let fifo = t.sub(&arn, "sqs", FIFO_Q, json!({})).await;
    let e = t.err("SetSubscriptionAttributes", json!({"SubscriptionArn": fifo, "AttributeName": "RedrivePolicy", "AttributeValue": standard_dlq})).await;
    assert_error(
        &e,
        "InvalidParameter",
        "Invalid parameter: RedrivePolicy: must use a FIFO queue as DLQ for a FIFO Subscription to a FIFO Topic.",
    );
    t.ok("SetSubscriptionAttributes", json!({"SubscriptionArn": fifo, "AttributeName": "RedrivePolicy", "AttributeValue": fifo_dlq})).await;
    let e = t
        .err(
            "Subscribe",
            json!({"TopicArn": arn, "Protocol": "sqs", "Endpoint": "arn:aws:sqs:us-east-1:000000000000:q2.fifo",
                   "Attributes": {"RedrivePolicy": standard_dlq}}),
        )
        .await;
    assert_error(
        &e,
        "InvalidParameter",
        "Invalid parameter: Attributes Reason: RedrivePolicy: must use a FIFO queue as DLQ for a FIFO Subscription to a FIFO Topic.",
    );
}

/// LocalStack test_publish_non_existent_target.
#[tokio::test]
async fn publish_to_missing_platform_endpoint() {
    let t = setup();
    let e = t
        .err(
            "Publish",
            json!({"TargetArn": "arn:aws:sns:us-east-1:000000000000:endpoint/APNS/abcdef/0f7d5971-aa8b-4bd5-b585-0826e9f93a66", "Message": "m"}),
        )
        .await;
    assert_error(
        &e,
        "InvalidParameter",
        "Invalid parameter: TargetArn Reason: No endpoint found for the target arn specified",
    );
}

/// A value that is not a list of conditions is reported even where nesting is not allowed
/// (test_sns_filter_policy.snapshot.json, test_validate_policy_string_operators).
#[tokio::test]
async fn filter_policy_shape_errors_before_scope() {
    let t = setup();
    let arn = t.topic("fps").await;
    let s = t.sub(&arn, "sqs", Q, json!({})).await;
    for (policy, key) in [
        (json!({"key": {"suffix": "value"}}), "suffix"),
        (
            json!({"key": {"suffix": "value", "prefix": "value"}}),
            "suffix",
        ),
        (
            json!({"key": {"not-an-operator": "value"}}),
            "not-an-operator",
        ),
    ] {
        let e = t.err("SetSubscriptionAttributes", json!({"SubscriptionArn": s, "AttributeName": "FilterPolicy", "AttributeValue": policy.to_string()})).await;
        assert_error(
            &e,
            "InvalidParameter",
            &format!("Invalid parameter: FilterPolicy: \"{key}\" must be an object or an array"),
        );
        let e = t
            .err(
                "Subscribe",
                json!({"TopicArn": arn, "Protocol": "sqs", "Endpoint": "arn:aws:sqs:us-east-1:000000000000:fps2",
                       "Attributes": {"FilterPolicy": policy.to_string()}}),
            )
            .await;
        assert_error(
            &e,
            "InvalidParameter",
            &format!("Invalid parameter: Attributes Reason: FilterPolicy: \"{key}\" must be an object or an array"),
        );
    }
    // A well-formed nested policy is still refused for its scope.
    let nested = json!({"object": {"key": [{"prefix": "auto-"}]}}).to_string();
    let e = t.err("SetSubscriptionAttributes", json!({"SubscriptionArn": s, "AttributeName": "FilterPolicy", "AttributeValue": nested})).await;
    assert_error(
        &e,
        "InvalidParameter",
        "Invalid parameter: Filter policy scope MessageAttributes does not support nested filter policy",
    );
}

/// LocalStack test_unsubscribe_wrong_arn_format: a six-element ARN has no subscription id,
/// whichever account it names.
#[tokio::test]
async fn unsubscribe_arn_without_subscription_id() {
    let t = setup();
    let e = t
        .err(
            "Unsubscribe",
            json!({"SubscriptionArn": "arn:aws:sns:us-east-1:111111111111:random"}),
        )
        .await;
    assert_error(&e, "InvalidParameter", "Invalid parameter: SubscriptionId");
}

/// LocalStack test_publish_wrong_arn_format: an empty TopicArn is judged as an ARN.
#[tokio::test]
async fn publish_empty_topic_arn() {
    let t = setup();
    let e = t
        .err("Publish", json!({"TopicArn": "", "Message": "m"}))
        .await;
    assert_error(
        &e,
        "InvalidParameter",
        "Invalid parameter: TopicArn Reason: An ARN must have at least 6 elements, not 1",
    );
}

#[tokio::test]
async fn the_publishers_x_ray_header_goes_with_the_sqs_delivery() {
    let t = setup();
    let arn = t.topic("traced").await;
    t.sub(&arn, "sqs", Q, json!({})).await;
    let mut ctx = t.ctx.clone();
    ctx.trace_header = Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".into());
    t.sns
        .dispatch(&ctx, "Publish", json!({"TopicArn": arn, "Message": "m"}))
        .await
        .unwrap();
    t.ok("Publish", json!({"TopicArn": arn, "Message": "untraced"}))
        .await;
    let sent = t.sqs.sent.lock().clone();
    assert_eq!(
        sent[0].1.trace_header.as_deref(),
        Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
    );
    assert_eq!(sent[1].1.trace_header, None);
}

#[tokio::test]
async fn subjects_are_utf8_and_standard_topics_forward_group_ids() {
    let t = setup();
    let arn = t.topic("fair").await;
    t.sub(&arn, "sqs", Q, json!({})).await;
    t.ok(
        "Publish",
        json!({"TopicArn": arn, "Message": "m", "Subject": "Grüße 日本語", "MessageGroupId": "tenant2"}),
    )
    .await;
    let e = t
        .err(
            "Publish",
            json!({"TopicArn": arn, "Message": "m", "Subject": "two\nlines"}),
        )
        .await;
    assert_eq!(e.message, "Invalid parameter: Subject");
    let sent = t.sqs.sent.lock().clone();
    assert_eq!(sent.len(), 1);
    let env: Value = serde_json::from_str(&sent[0].1.body).unwrap();
    assert_eq!(env["Subject"], "Grüße 日本語");
    // "Forwarded only to Amazon SQS standard subscriptions to activate fair queues."
    assert_eq!(sent[0].1.message_group_id.as_deref(), Some("tenant2"));
}

#[tokio::test]
async fn subjects_must_be_shorter_than_100_characters() {
    let t = setup();
    let arn = t.topic("subjects").await;
    t.sub(&arn, "sqs", Q, json!({})).await;
    // Characters, not bytes: 99 two-byte letters are 198 bytes and still fit.
    let longest = "é".repeat(99);
    t.ok(
        "Publish",
        json!({"TopicArn": arn, "Message": "m", "Subject": longest}),
    )
    .await;
    for too_long in ["a".repeat(100), "é".repeat(100), "a".repeat(101)] {
        let e = t
            .err(
                "Publish",
                json!({"TopicArn": arn, "Message": "m", "Subject": too_long}),
            )
            .await;
        assert_code(&e, "InvalidParameter", 400);
        assert_eq!(e.message, "Invalid parameter: Subject");
    }
    let out = t
        .ok(
            "PublishBatch",
            json!({"TopicArn": arn, "PublishBatchRequestEntries": [
                {"Id": "short", "Message": "one", "Subject": longest},
                {"Id": "long", "Message": "two", "Subject": "a".repeat(100)}
            ]}),
        )
        .await;
    assert_eq!(out["Successful"][0]["Id"], "short");
    assert_eq!(out["Successful"].as_array().unwrap().len(), 1);
    assert_eq!(
        out["Failed"],
        json!([{"Id": "long", "Code": "InvalidParameter", "Message": "Invalid parameter: Subject", "SenderFault": true}])
    );
    assert_eq!(t.sqs.bodies(Q).len(), 2);
}

/// AWS-recorded behaviour (LocalStack's validated SNS tests) that earlier versions missed.
#[tokio::test]
async fn aws_recorded_details() {
    let t = setup();
    let topic = t.topic("rec").await;
    // A protocol entry that is not a string: the default is delivered.
    let sub = t.sub(&topic, "sqs", Q, json!({})).await;
    t.ok(
        "Publish",
        json!({"TopicArn": topic, "MessageStructure": "json",
               "Message": json!({"default": "default field", "sqs": {"field": "value"}}).to_string()}),
    )
    .await;
    let env: Value = serde_json::from_str(&t.sqs.bodies(Q)[0]).unwrap();
    assert_eq!(env["Message"], "default field");
    // The UnsubscribeURL names the subscription ARN as it is.
    assert!(
        env["UnsubscribeURL"]
            .as_str()
            .unwrap()
            .ends_with(&format!("&SubscriptionArn={sub}")),
        "{}",
        env["UnsubscribeURL"]
    );
    // Subscribe stores a boolean in lower case and an empty FilterPolicy as none.
    let q2 = "arn:aws:sqs:us-east-1:000000000000:q2";
    let s2 = t
        .sub(
            &topic,
            "sqs",
            q2,
            json!({"RawMessageDelivery": "TrUe", "FilterPolicyScope": "MessageBody", "FilterPolicy": ""}),
        )
        .await;
    let a = &t
        .ok("GetSubscriptionAttributes", json!({"SubscriptionArn": s2}))
        .await["Attributes"];
    assert_eq!(a["RawMessageDelivery"], "true");
    assert!(a.get("FilterPolicy").is_none() && a.get("FilterPolicyScope").is_none());
    // ... and so the subscription gets every message.
    t.ok("Publish", json!({"TopicArn": topic, "Message": "to all"}))
        .await;
    assert_eq!(t.sqs.bodies(q2), ["to all"]);
    // A custom attribute type needs its suffix.
    let e = t
        .err(
            "Publish",
            json!({"TopicArn": topic, "Message": "m",
                   "MessageAttributes": {"attr1": {"DataType": "String.", "StringValue": "x"}}}),
        )
        .await;
    assert!(
        e.message.contains("supported type prefixes"),
        "{}",
        e.message
    );
    // Of any characters, spaces and a final dot too.
    t.ok(
        "Publish",
        json!({"TopicArn": topic, "Message": "m",
               "MessageAttributes": {"attr1": {"DataType": "String.  prefixed.", "StringValue": "x"}}}),
    )
    .await;
    // Separators in an SMS subscription's number, but only between digits.
    t.sub(&topic, "sms", "+12/34-567.890", json!({})).await;
    for bad in ["+15--551234567", "+15551234567.", "/+15551234567"] {
        let e = t
            .err(
                "Subscribe",
                json!({"TopicArn": topic, "Protocol": "sms", "Endpoint": bad}),
            )
            .await;
        assert_error(
            &e,
            "InvalidParameter",
            &format!("Invalid SMS endpoint: {bad}"),
        );
    }
    // A missing required parameter, in AWS's words.
    let e = t.err("Unsubscribe", json!({})).await;
    assert_eq!(
        e.message,
        "Invalid parameter: SubscriptionArn Reason: no value for required parameter"
    );
}

#[tokio::test]
async fn list_tokens_are_padded_standard_base64() {
    use base64::Engine;
    let t = setup();
    let topic = t.topic("paged").await;
    for i in 0..101 {
        t.sub(&topic, "sms", &format!("+1555000{i:04}"), json!({}))
            .await;
    }
    let v = t
        .ok("ListSubscriptionsByTopic", json!({"TopicArn": topic}))
        .await;
    let token = v["NextToken"].as_str().unwrap();
    assert!(base64::engine::general_purpose::STANDARD
        .decode(token)
        .is_ok());
    let v = t
        .ok(
            "ListSubscriptionsByTopic",
            json!({"TopicArn": topic, "NextToken": token}),
        )
        .await;
    assert_eq!(v["Subscriptions"].as_array().unwrap().len(), 1);
}

/// DeliveryPolicy reads back in AWS's normal form (LocalStack's AWS-recorded
/// test_topic_delivery_policy_crud and test_subscribe_external_http_endpoint_content_type).
#[tokio::test]
async fn delivery_policies_read_back_as_aws_shows_them() {
    let t = setup();
    let topic = t.topic("dp").await;
    let topic_policy = |v: Value| json!({"TopicArn": topic, "AttributeName": "DeliveryPolicy", "AttributeValue": v.to_string()});
    let shown = || async {
        t.ok("GetTopicAttributes", json!({"TopicArn": topic})).await["Attributes"]["DeliveryPolicy"]
            .as_str()
            .unwrap()
            .to_string()
    };
    t.ok(
        "SetTopicAttributes",
        topic_policy(
            json!({"http": {"defaultRequestPolicy": {"headerContentType": "application/json"}}}),
        ),
    )
    .await;
    assert_eq!(
        shown().await,
        r#"{"http":{"disableSubscriptionOverrides":false,"defaultRequestPolicy":{"headerContentType":"application/json"}}}"#
    );
    t.ok(
        "SetTopicAttributes",
        topic_policy(json!({"http": {"defaultHealthyRetryPolicy": null}})),
    )
    .await;
    assert_eq!(
        shown().await,
        r#"{"http":{"disableSubscriptionOverrides":false}}"#
    );
    let sub = t
        .sub(
            &topic,
            "http",
            "http://example.com/x",
            json!({"DeliveryPolicy": json!({"requestPolicy": {"headerContentType": "text/csv"}}).to_string()}),
        )
        .await;
    let sub_shown = || async {
        t.ok("GetSubscriptionAttributes", json!({"SubscriptionArn": sub}))
            .await["Attributes"]["DeliveryPolicy"]
            .clone()
    };
    assert_eq!(
        sub_shown().await,
        r#"{"healthyRetryPolicy":null,"sicklyRetryPolicy":null,"throttlePolicy":null,"requestPolicy":{"headerContentType":"text/csv"},"guaranteed":false}"#
    );
    // A retry policy reads back with every member in AWS's order, null where unset.
    let retry =
        json!({"healthyRetryPolicy": {"numRetries": 10, "minDelayTarget": 1, "maxDelayTarget": 2}});
    t.ok(
        "SetSubscriptionAttributes",
        json!({"SubscriptionArn": sub, "AttributeName": "DeliveryPolicy", "AttributeValue": retry.to_string()}),
    )
    .await;
    assert_eq!(
        sub_shown().await,
        r#"{"healthyRetryPolicy":{"minDelayTarget":1,"maxDelayTarget":2,"numRetries":10,"numMaxDelayRetries":null,"numNoDelayRetries":null,"numMinDelayRetries":null,"backoffFunction":null},"sicklyRetryPolicy":null,"throttlePolicy":null,"requestPolicy":null,"guaranteed":false}"#
    );
}

/// A FIFO topic with an ArchivePolicy keeps its messages; a subscription's ReplayPolicy
/// delivers those of its time range again (filter policy applied, envelope marked Replayed,
/// same MessageId, Timestamp and SequenceNumber), and its ReplayStatus ends Completed.
#[tokio::test]
async fn archived_fifo_messages_replay_to_a_new_subscription() {
    let t = setup();
    let e = t
        .err(
            "CreateTopic",
            json!({"Name": "a.fifo", "Attributes": {"FifoTopic": "true", "ArchivePolicy": "{\"MessageRetentionPeriod\":\"400\"}"}}),
        )
        .await;
    assert_code(&e, "InvalidParameter", 400);
    let arn = t
        .fifo_topic(
            "a.fifo",
            json!({"ArchivePolicy": "{\"MessageRetentionPeriod\":\"7\"}"}),
        )
        .await;
    let attrs = t.ok("GetTopicAttributes", json!({"TopicArn": arn})).await["Attributes"].clone();
    let began = attrs["BeginningArchiveTime"].as_str().unwrap().to_string();
    assert!(crate::service::parse_iso8601(&began).is_some(), "{began}");
    let live = "arn:aws:sqs:us-east-1:000000000000:live.fifo";
    t.sub(&arn, "sqs", live, json!({})).await;
    let mut published = Vec::new();
    for (i, color) in ["red", "blue", "red"].iter().enumerate() {
        let out = t.ok("Publish", json!({"TopicArn": arn, "Message": format!("m{i}"), "MessageGroupId": "g", "MessageDeduplicationId": format!("d{i}"), "MessageAttributes": {"color": {"DataType": "String", "StringValue": color}}})).await;
        published.push(out);
    }
    assert_eq!(t.sqs.bodies(live).len(), 3);
    // A policy a replay cannot use is refused.
    let replay_q = "arn:aws:sqs:us-east-1:000000000000:replay.fifo";
    for bad in [r#"{"foo":1}"#, r#"{"PointType":"Timestamp"}"#] {
        let e = t
            .err(
                "Subscribe",
                json!({"TopicArn": arn, "Protocol": "sqs", "Endpoint": replay_q, "Attributes": {"ReplayPolicy": bad}}),
            )
            .await;
        assert_code(&e, "InvalidParameter", 400);
    }
    let policy = json!({"PointType": "Timestamp", "StartingPoint": began}).to_string();
    let s = t
        .sub(
            &arn,
            "sqs",
            replay_q,
            json!({"ReplayPolicy": policy, "FilterPolicy": "{\"color\":[\"red\"]}"}),
        )
        .await;
    t.wait_replay(&s, "Completed").await;
    let sent = t.sqs.sent.lock().clone();
    let replayed: Vec<&InternalSend> = sent
        .iter()
        .filter(|(q, _)| q == replay_q)
        .map(|(_, m)| m)
        .collect();
    assert_eq!(replayed.len(), 2, "the two red ones");
    for ((m, original), original_dedup) in replayed
        .iter()
        .zip([&published[0], &published[2]])
        .zip(["d0", "d2"])
    {
        let env: Value = serde_json::from_str(&m.body).unwrap();
        assert_eq!(env["Replayed"], true);
        assert_eq!(env["MessageId"], original["MessageId"]);
        assert_eq!(env["SequenceNumber"], original["SequenceNumber"]);
        assert_eq!(m.message_group_id.as_deref(), Some("g"));
        // Its own deduplication id: a FIFO queue that had the original within 5 minutes, or
        // another message that reused the original's id later, does not swallow it.
        let dedup = m.message_deduplication_id.as_deref().unwrap();
        assert!(dedup != original_dedup && dedup.len() <= 128, "{dedup}");
    }
    // Completed: the subscription gets new messages again.
    t.ok("Publish", json!({"TopicArn": arn, "Message": "after", "MessageGroupId": "g", "MessageDeduplicationId": "d3", "MessageAttributes": {"color": {"DataType": "String", "StringValue": "red"}}})).await;
    assert_eq!(t.sqs.bodies(replay_q).len(), 3);
    // The live subscription's copies are not marked, and nothing was replayed to it.
    let first: Value = serde_json::from_str(&t.sqs.bodies(live)[0]).unwrap();
    assert!(first.get("Replayed").is_none());
    assert_eq!(t.sqs.bodies(live).len(), 4);
    let a = t
        .ok("GetSubscriptionAttributes", json!({"SubscriptionArn": s}))
        .await["Attributes"]
        .clone();
    assert_eq!(a["ReplayStatus"], "Completed");
    // A range that ends before the first publish replays nothing; a new policy replaces the
    // old one and runs again.
    let early = json!({"PointType": "Timestamp", "StartingPoint": "2020-01-01T00:00:00Z", "EndingPoint": "2020-01-02T00:00:00Z"});
    t.ok(
        "SetSubscriptionAttributes",
        json!({"SubscriptionArn": s, "AttributeName": "ReplayPolicy", "AttributeValue": early.to_string()}),
    )
    .await;
    t.wait_replay(&s, "Completed").await;
    assert_eq!(t.sqs.bodies(replay_q).len(), 3);
    // A replay with an EndingPoint leaves the subscription without new messages (the model:
    // "the subscription will no longer receive newly published messages").
    t.ok("Publish", json!({"TopicArn": arn, "Message": "later", "MessageGroupId": "g", "MessageDeduplicationId": "d4", "MessageAttributes": {"color": {"DataType": "String", "StringValue": "red"}}})).await;
    assert_eq!(t.sqs.bodies(replay_q).len(), 3);
    assert_eq!(t.sqs.bodies(live).len(), 5);
    // Turning archiving off drops the archive and BeginningArchiveTime.
    t.ok(
        "SetTopicAttributes",
        json!({"TopicArn": arn, "AttributeName": "ArchivePolicy", "AttributeValue": "{}"}),
    )
    .await;
    let attrs = t.ok("GetTopicAttributes", json!({"TopicArn": arn})).await["Attributes"].clone();
    assert!(attrs.get("BeginningArchiveTime").is_none(), "{attrs}");
    // A topic that does not archive has nothing to replay.
    let e = t
        .err(
            "SetSubscriptionAttributes",
            json!({"SubscriptionArn": s, "AttributeName": "ReplayPolicy", "AttributeValue": policy}),
        )
        .await;
    assert_code(&e, "InvalidParameter", 400);
    // ReplayPolicy needs a FIFO topic.
    let std_topic = t.topic("plain").await;
    let e = t
        .err(
            "Subscribe",
            json!({"TopicArn": std_topic, "Protocol": "sqs", "Endpoint": Q, "Attributes": {"ReplayPolicy": policy}}),
        )
        .await;
    assert_code(&e, "InvalidParameter", 400);
}

/// A replay longer than one read chunk delivers every message once, in archive order.
#[tokio::test]
async fn a_long_replay_reads_the_archive_in_chunks() {
    let t = setup();
    let arn = archiving_topic(&t, "long.fifo").await;
    let n = 600;
    for i in 0..n {
        t.ok(
            "Publish",
            json!({"TopicArn": arn, "Message": format!("m{i}"), "MessageGroupId": format!("g{}", i % 3)}),
        )
        .await;
    }
    let q = "arn:aws:sqs:us-east-1:000000000000:all.fifo";
    let s = t.replay_sub(&arn, q, FROM_2020).await;
    t.wait_replay(&s, "Completed").await;
    let want: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    assert_eq!(t.sqs.bodies(q), want);
}

async fn archiving_topic(t: &T, name: &str) -> String {
    t.fifo_topic(
        name,
        json!({"ContentBasedDeduplication": "true", "ArchivePolicy": "{\"MessageRetentionPeriod\":1}"}),
    )
    .await
}

const FROM_2020: &str = r#"{"PointType":"Timestamp","StartingPoint":"2020-01-01T00:00:00Z"}"#;

/// A replay stops once its subscription is gone: it does not send the rest of its range to a
/// queue nobody subscribed any more.
#[tokio::test]
async fn a_replay_stops_when_its_subscription_goes() {
    let t = setup();
    let arn = archiving_topic(&t, "stop.fifo").await;
    for i in 0..50 {
        t.ok(
            "Publish",
            json!({"TopicArn": arn, "Message": format!("m{i}"), "MessageGroupId": "g"}),
        )
        .await;
    }
    // The replay's first send holds until released.
    let gate = t.hold_sends();
    let q = "arn:aws:sqs:us-east-1:000000000000:gone.fifo";
    let s = t.replay_sub(&arn, q, FROM_2020).await;
    t.wait_replay(&s, "In progress").await;
    t.ok("Unsubscribe", json!({"SubscriptionArn": s})).await;
    t.release_sends(gate).await;
    // A replay that kept going would send the other 49 in well under this.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(t.sqs.bodies(q).len() <= 1, "{}", t.sqs.bodies(q).len());
}

/// DeleteTopic waits for a publish under way to the topic, so that publish cannot archive into
/// the removed archive and hand its message to a topic later created under the same name.
#[tokio::test]
async fn a_deleted_topics_archive_does_not_come_back() {
    let t = setup();
    let arn = archiving_topic(&t, "again.fifo").await;
    t.sub(
        &arn,
        "sqs",
        "arn:aws:sqs:us-east-1:000000000000:live.fifo",
        json!({}),
    )
    .await;
    let gate = t.hold_sends();
    let publish = t.ok(
        "Publish",
        json!({"TopicArn": arn, "Message": "old", "MessageGroupId": "g"}),
    );
    let delete = async {
        t.wait_held().await;
        let d = t.ok("DeleteTopic", json!({"TopicArn": arn}));
        let release = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            t.release_sends(gate).await;
        };
        tokio::join!(d, release);
    };
    tokio::join!(publish, delete);
    t.replays_nothing("again.fifo", "arn:aws:sqs:us-east-1:000000000000:new.fifo")
        .await;
}

/// FIFO topic sequence numbers start above the clock's count (ms x 10,000), so a crash that
/// loses the record of the last number given out cannot make a restart give it again.
#[tokio::test]
async fn fifo_topic_sequence_numbers_stay_above_the_clock() {
    let t = setup();
    let arn = archiving_topic(&t, "seq.fifo").await;
    let before = crate::service::now_ms() as u128;
    let out = t
        .ok(
            "Publish",
            json!({"TopicArn": arn, "Message": "m", "MessageGroupId": "g"}),
        )
        .await;
    let seq: u128 = out["SequenceNumber"].as_str().unwrap().parse().unwrap();
    assert!(seq >= before * 10_000 * 1000, "{seq}");
    assert!(out["SequenceNumber"].as_str().unwrap().starts_with('1'));
    assert_eq!(out["SequenceNumber"].as_str().unwrap().len(), 20);
}

/// What a kill between a publish's archive record and its deduplication record leaves (the
/// message delivered and archived, its intent recorded but not its end) is mended from the
/// archive at open: the publish counts as finished, and the retry gets the archived
/// MessageId and SequenceNumber and is not delivered again.
#[tokio::test]
async fn a_lost_deduplication_record_comes_back_from_the_archive() {
    let t = setup();
    let arn = archiving_topic(&t, "redo.fifo").await;
    let q = "arn:aws:sqs:us-east-1:000000000000:redo.fifo";
    t.sub(&arn, "sqs", q, json!({"RawMessageDelivery": "true"}))
        .await;
    let publish = || {
        t.ok(
            "Publish",
            json!({"TopicArn": arn, "Message": "m", "MessageGroupId": "g", "MessageDeduplicationId": "x"}),
        )
    };
    let first = publish().await;
    // The deduplication record lost, the intent before the deliveries kept.
    t.as_if_killed_before_the_end(&arn);
    t.sns
        .archives
        .recover_dedup(&mut t.sns.state.lock(), crate::service::now_ms());
    assert!(!dedup_entry(&t, &arn, "x").1, "archived: finished");
    let retry = publish().await;
    assert_eq!(retry["MessageId"], first["MessageId"]);
    assert_eq!(retry["SequenceNumber"], first["SequenceNumber"]);
    assert_eq!(t.sqs.bodies(q), vec!["m".to_string()]);
    // Numbers given out later stay above the archived ones.
    let next = t
        .ok(
            "Publish",
            json!({"TopicArn": arn, "Message": "n", "MessageGroupId": "g", "MessageDeduplicationId": "y"}),
        )
        .await;
    assert!(next["SequenceNumber"].as_str() > first["SequenceNumber"].as_str());
}

impl T {
    /// Another `Sns` on this one's log and sinks: what a restart reads back.
    fn reopen(&self) -> Arc<Sns> {
        Sns::open_log(
            self.sns.log_handle(),
            Sinks {
                sqs: self.sqs.clone(),
                http: self.http.clone(),
            },
            self.sns.signer.clone(),
        )
        .unwrap()
    }

    /// Puts FIFO topic `arn`'s state back to what a kill after its last publish's intent
    /// and deliveries, but before its end, leaves: the log's last `FifoIntent` only.
    fn as_if_killed_before_the_end(&self, arn: &str) {
        let log = self.sns.log_handle();
        let intent = log
            .scan(log.start_offset())
            .filter_map(|r| crate::codec::decode::<Record>(&r.unwrap().payload).ok())
            .filter(|r| matches!(r, Record::FifoIntent { .. }))
            .last()
            .expect("an intent");
        let mut st = self.sns.state.lock();
        st.fifo.remove(arn);
        st.apply(intent);
    }
}

/// The deduplication entry of `key` on FIFO topic `arn`, and whether it is marked unfinished.
fn dedup_entry(t: &T, arn: &str, key: &str) -> (Option<(u64, String, u64)>, bool) {
    let st = t.sns.state.lock();
    let f = st.fifo.get(arn);
    (
        f.and_then(|f| f.dedup.get(key).cloned()),
        f.is_some_and(|f| f.dedup.contains_key(&super::state::unfinished_key(key))),
    )
}

/// What a kill between a FIFO publish's deliveries and its deduplication record leaves: the
/// message in the queues, its intent recorded, its end not. The retry is delivered again
/// under the first MessageId, SequenceNumber and Timestamp (the FIFO queues drop the copy
/// by its deduplication id), not as a new message whose MessageId no subscriber saw; once
/// it is finished, further retries are only answered.
#[tokio::test]
async fn a_retry_finishes_a_fifo_publish_a_kill_left_unfinished() {
    let t = setup();
    let arn = t.fifo_topic("unfinished.fifo", json!({})).await;
    let q = "arn:aws:sqs:us-east-1:000000000000:unfinished.fifo";
    t.sub(&arn, "sqs", q, json!({})).await;
    let publish = || {
        t.ok(
            "Publish",
            json!({"TopicArn": arn, "Message": "m", "MessageGroupId": "g", "MessageDeduplicationId": "d"}),
        )
    };
    let first = publish().await;
    assert!(!dedup_entry(&t, &arn, "d").1, "finished");
    t.as_if_killed_before_the_end(&arn);
    // Another message under the deduplication id is only answered, not sent as this one.
    let other = t
        .ok(
            "Publish",
            json!({"TopicArn": arn, "Message": "other", "MessageGroupId": "g", "MessageDeduplicationId": "d"}),
        )
        .await;
    assert_eq!(other, first);
    assert_eq!(t.sqs.sent.lock().len(), 1);
    let retry = publish().await;
    assert_eq!(retry["MessageId"], first["MessageId"]);
    assert_eq!(retry["SequenceNumber"], first["SequenceNumber"]);
    let sent = t.sqs.sent.lock().clone();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].1.body, sent[1].1.body,
        "the same notification again"
    );
    assert_eq!(sent[1].1.message_deduplication_id.as_deref(), Some("d"));
    let envelope: Value = serde_json::from_str(&sent[1].1.body).unwrap();
    assert_eq!(envelope["MessageId"], first["MessageId"]);
    assert!(!dedup_entry(&t, &arn, "d").1, "finished by the retry");
    assert_eq!(publish().await["MessageId"], first["MessageId"]);
    assert_eq!(
        t.sqs.sent.lock().len(),
        2,
        "a finished publish is only answered"
    );
}

/// A FIFO publish whose delivery failed stays unfinished, across a restart too: its intent
/// is in the log before any delivery. The retry delivers it under the MessageId the intent
/// recorded.
#[tokio::test]
async fn a_failed_fifo_publish_is_delivered_by_its_retry_after_a_restart() {
    let t = setup();
    let arn = t.fifo_topic("failed.fifo", json!({})).await;
    let q = "arn:aws:sqs:us-east-1:000000000000:failed.fifo";
    t.sub(&arn, "sqs", q, json!({})).await;
    let publish = json!({"TopicArn": arn, "Message": "m", "MessageGroupId": "g", "MessageDeduplicationId": "d"});
    *t.sqs.broken.lock() = true;
    t.err("Publish", publish.clone()).await;
    *t.sqs.broken.lock() = false;
    let (entry, unfinished) = dedup_entry(&t, &arn, "d");
    let (_, message_id, _) = entry.expect("the intent takes the deduplication id");
    assert!(unfinished);
    let reopened = t.reopen();
    let retry = reopened
        .dispatch(&t.ctx, "Publish", publish.clone())
        .await
        .unwrap();
    assert_eq!(retry["MessageId"], message_id.as_str());
    let bodies = t.sqs.bodies(q);
    assert_eq!(bodies.len(), 1);
    let envelope: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(envelope["MessageId"], message_id.as_str());
    let again = reopened.dispatch(&t.ctx, "Publish", publish).await.unwrap();
    assert_eq!(again, retry);
    assert_eq!(t.sqs.bodies(q).len(), 1);
}

/// The archive finishes only its own publish: a later publish that took the deduplication
/// id once the archived one's window was over, and was cut before its deliveries, stays
/// unfinished (its retry must make them).
#[tokio::test]
async fn the_archive_finishes_only_its_own_publish() {
    let t = setup();
    let arn = archiving_topic(&t, "reused.fifo").await;
    t.ok(
        "Publish",
        json!({"TopicArn": arn, "Message": "m", "MessageGroupId": "g", "MessageDeduplicationId": "x"}),
    )
    .await;
    {
        let mut st = t.sns.state.lock();
        st.fifo.remove(&arn);
        st.apply(Record::FifoIntent {
            topic_arn: arn.clone(),
            dedup_id: "x".into(),
            message_id: "later".into(),
            sequence: u64::MAX / 2,
            at_ms: crate::service::now_ms(),
            fingerprint: "f".into(),
        });
    }
    t.sns
        .archives
        .recover_dedup(&mut t.sns.state.lock(), crate::service::now_ms());
    let (entry, unfinished) = dedup_entry(&t, &arn, "x");
    assert_eq!(entry.unwrap().1, "later");
    assert!(unfinished);
}

/// A publish that waited for a DeleteTopic of its FIFO topic finds the topic gone: NotFound,
/// nothing delivered, and no deduplication id kept for a topic re-created under the name.
#[tokio::test]
async fn a_publish_queued_behind_delete_topic_answers_not_found() {
    let t = setup();
    let arn = archiving_topic(&t, "behind.fifo").await;
    let q = "arn:aws:sqs:us-east-1:000000000000:behind.fifo";
    t.sub(&arn, "sqs", q, json!({"RawMessageDelivery": "true"}))
        .await;
    let publish = json!({"TopicArn": arn, "Message": "m", "MessageGroupId": "g", "MessageDeduplicationId": "d"});
    // Holding the topic's lock queues the DeleteTopic first, then the publish (the lock is
    // fair), which has already looked the topic up by then. Each party waiting for the lock
    // holds a clone of it: the map's, the test's, the DeleteTopic's, the publish's.
    let holders = || {
        t.sns
            .fifo_locks
            .lock()
            .get(&arn)
            .map_or(0, Arc::strong_count)
    };
    let held = t.sns.fifo_order(&arn).await;
    let delete = t.call("DeleteTopic", json!({"TopicArn": arn}));
    let publish_call = t.call("Publish", publish.clone());
    let release = async {
        wait_for(|| holders() == 4).await;
        drop(held);
    };
    let (deleted, published, ()) = tokio::join!(
        delete,
        async {
            wait_for(|| holders() == 3).await;
            publish_call.await
        },
        release
    );
    deleted.unwrap();
    let e = published.unwrap_err();
    assert_code(&e, "NotFound", 404);
    assert!(t.sqs.bodies(q).is_empty());
    assert!(!t.sns.state.lock().fifo.contains_key(&arn));
    // The same deduplication id on the re-created topic is a new message.
    let arn = archiving_topic(&t, "behind.fifo").await;
    t.sub(&arn, "sqs", q, json!({"RawMessageDelivery": "true"}))
        .await;
    t.ok("Publish", publish).await;
    assert_eq!(t.sqs.bodies(q), vec!["m".to_string()]);
}

/// A replay never reaches back past the archive's retention period, even to a message whose
/// segment has not been dropped yet (retention drops whole sealed segments).
#[tokio::test]
async fn a_replay_skips_messages_past_the_retention_period() {
    let t = setup();
    let arn = archiving_topic(&t, "kept.fifo").await;
    // Archived two days ago, in the active segment still, under a one-day policy.
    let two_days_ago = crate::service::now_ms() - 2 * 24 * 60 * 60 * 1000;
    let old = super::archive::Archived {
        message_id: super::util::uuid(),
        sequence: 1,
        timestamp_ms: two_days_ago,
        subject: None,
        message: "old".into(),
        attributes: "{}".into(),
        structured: false,
        group_id: Some("g".into()),
        dedup_id: Some("old".into()),
        base_url: "http://localhost:4566".into(),
    };
    t.sns.archives.append(&arn, 1, &old).await.unwrap();
    t.ok(
        "Publish",
        json!({"TopicArn": arn, "Message": "new", "MessageGroupId": "g"}),
    )
    .await;
    let q = "arn:aws:sqs:us-east-1:000000000000:kept.fifo";
    let s = t.replay_sub(&arn, q, FROM_2020).await;
    t.wait_replay(&s, "Completed").await;
    assert_eq!(t.sqs.bodies(q), vec!["new".to_string()]);
}

/// At open, archives nobody owns are removed: a crashed reset's renamed `archives.deleting`
/// and a directory of a topic that no longer archives; a live topic's archive stays.
#[tokio::test]
async fn open_sweeps_archives_left_by_a_crash() {
    let t = setup();
    let arn = archiving_topic(&t, "live.fifo").await;
    t.ok(
        "Publish",
        json!({"TopicArn": arn, "Message": "kept", "MessageGroupId": "g"}),
    )
    .await;
    let sns_dir = t.sns.log_handle().dir().to_path_buf();
    let archives = sns_dir.join("archives");
    let live: Vec<_> = std::fs::read_dir(&archives)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(live.len(), 1);
    let reset = sns_dir.join("archives.deleting/0123456789abcdef");
    std::fs::create_dir_all(&reset).unwrap();
    std::fs::write(reset.join("00000000000000000000.log"), b"x").unwrap();
    let orphan = archives.join("fedcba9876543210");
    std::fs::create_dir_all(&orphan).unwrap();
    let _reopened = t.reopen();
    assert!(!sns_dir.join("archives.deleting").exists());
    assert!(!orphan.exists());
    assert!(live[0].exists());
}

/// A reset while a publish to an archiving topic is sending wipes that topic, and the publish
/// must not archive afterwards: its archive would outlive the reset and replay to a topic
/// later created under the name. Nor may it record its deduplication id, which such a topic
/// would take for a publish of its own.
#[tokio::test]
async fn a_publish_cut_by_a_reset_archives_nothing() {
    let t = setup();
    let arn = archiving_topic(&t, "wiped.fifo").await;
    t.sub(
        &arn,
        "sqs",
        "arn:aws:sqs:us-east-1:000000000000:wiped.fifo",
        json!({"RawMessageDelivery": "true"}),
    )
    .await;
    let gate = t.hold_sends();
    let publish = t.call(
        "Publish",
        json!({"TopicArn": arn, "Message": "old", "MessageGroupId": "g"}),
    );
    let reset = async {
        t.wait_held().await;
        t.sns.reset().await.unwrap();
        t.release_sends(gate).await;
    };
    let (_, ()) = tokio::join!(publish, reset);
    let archives = t.sns.log_handle().dir().join("archives");
    let left = std::fs::read_dir(&archives).map_or(0, |d| d.count());
    assert_eq!(left, 0, "an archive outlived the reset");
    assert!(
        t.sns.state.lock().fifo.is_empty(),
        "FIFO state outlived the reset"
    );
    t.replays_nothing(
        "wiped.fifo",
        "arn:aws:sqs:us-east-1:000000000000:again.fifo",
    )
    .await;
}

/// An archive log poisoned by a failed write is reopened by the next publish, which archives
/// into it as usual: the topic does not stay unable to publish until a restart.
#[tokio::test]
async fn a_poisoned_archive_log_is_reopened() {
    let t = setup();
    let arn = archiving_topic(&t, "sick.fifo").await;
    let publish = |m: &'static str| {
        t.ok(
            "Publish",
            json!({"TopicArn": arn, "Message": m, "MessageGroupId": "g"}),
        )
    };
    publish("before").await;
    t.sns.archives.poison_for_tests(&arn);
    publish("after").await;
    let q = "arn:aws:sqs:us-east-1:000000000000:sick.fifo";
    let s = t.replay_sub(&arn, q, FROM_2020).await;
    t.wait_replay(&s, "Completed").await;
    assert_eq!(t.sqs.bodies(q), vec!["before", "after"]);
}

/// With FifoThroughputScope=MessageGroup a deduplication id is deduplicated within its message
/// group only (the model's Publish docs); with the default Topic scope, across the topic. A
/// restart's recovery from the archive and a replay keep the same scope.
#[tokio::test]
async fn deduplication_scope_follows_fifo_throughput_scope() {
    let t = setup();
    let mut ids = Vec::new();
    for scope in ["MessageGroup", "Topic"] {
        let name = format!("{}.fifo", scope.to_lowercase());
        let arn = t
            .fifo_topic(
                &name,
                json!({"FifoThroughputScope": scope, "ArchivePolicy": "{\"MessageRetentionPeriod\":1}"}),
            )
            .await;
        let q = format!("arn:aws:sqs:us-east-1:000000000000:{name}");
        t.sub(&arn, "sqs", &q, json!({"RawMessageDelivery": "true"}))
            .await;
        let publish = |body: &str, group: &str| {
            let body = body.to_string();
            let group = group.to_string();
            let arn = arn.clone();
            let t = &t;
            async move {
                t.ok(
                    "Publish",
                    json!({"TopicArn": arn, "Message": body, "MessageGroupId": group, "MessageDeduplicationId": "same"}),
                )
                .await["MessageId"]
                    .as_str()
                    .unwrap()
                    .to_string()
            }
        };
        let a = publish("a", "g1").await;
        let b = publish("b", "g2").await;
        let again = publish("a again", "g1").await;
        assert_eq!(again, a, "{scope}");
        ids.push((a, b));
        let live = if scope == "MessageGroup" {
            vec!["a", "b"]
        } else {
            vec!["a"]
        };
        assert_eq!(t.sqs.bodies(&q), live, "{scope}");
        // Recovered from the archive as a restart does, under the same keys.
        t.sns.state.lock().fifo.remove(&arn);
        t.sns
            .archives
            .recover_dedup(&mut t.sns.state.lock(), crate::service::now_ms());
        assert_eq!(
            publish("b again", "g2").await,
            ids.last().unwrap().1,
            "{scope}"
        );
        let replayed = format!("arn:aws:sqs:us-east-1:000000000000:replay-{name}");
        let s = t.replay_sub(&arn, &replayed, FROM_2020).await;
        t.wait_replay(&s, "Completed").await;
        assert_eq!(t.sqs.bodies(&replayed), live, "{scope}");
    }
    // MessageGroup: two messages; Topic: the second publish was the first one's duplicate.
    assert_ne!(ids[0].0, ids[0].1);
    assert_eq!(ids[1].0, ids[1].1);
}

/// MaximumMessageSize (SNS Developer Guide, "Publishing large messages", September 2026):
/// 1,024 to 1,048,576 bytes, 256 KiB by default and not shown until set; Publish and
/// PublishBatch are held to the topic's size; a topic above 256 KiB takes only sqs, lambda and
/// firehose subscriptions, at most 100 of them when the size is set.
#[tokio::test]
async fn maximum_message_size_sets_the_topics_limit() {
    let t = setup();
    let small = t.topic("small").await;
    let attrs = t.ok("GetTopicAttributes", json!({"TopicArn": small})).await["Attributes"].clone();
    assert!(attrs.get("MaximumMessageSize").is_none(), "{attrs}");
    for bad in ["1023", "1048577", "big", ""] {
        let e = t
            .err(
                "CreateTopic",
                json!({"Name": "bad", "Attributes": {"MaximumMessageSize": bad}}),
            )
            .await;
        assert_code(&e, "InvalidParameter", 400);
        let e = t
            .err(
                "SetTopicAttributes",
                json!({"TopicArn": small, "AttributeName": "MaximumMessageSize", "AttributeValue": bad}),
            )
            .await;
        assert_code(&e, "InvalidParameter", 400);
    }
    let large = t
        .topic_with("large", json!({"MaximumMessageSize": "1048576"}))
        .await;
    let attrs = t.ok("GetTopicAttributes", json!({"TopicArn": large})).await["Attributes"].clone();
    assert_eq!(attrs["MaximumMessageSize"], "1048576");
    let q = "arn:aws:sqs:us-east-1:000000000000:large";
    t.sub(&large, "sqs", q, json!({"RawMessageDelivery": "true"}))
        .await;
    let e = t
        .err(
            "Subscribe",
            json!({"TopicArn": large, "Protocol": "http", "Endpoint": "http://127.0.0.1:9/h"}),
        )
        .await;
    assert_code(&e, "InvalidParameter", 400);
    // 300,000 bytes: too long for a default topic, fine for the large one.
    let body = "x".repeat(300_000);
    let e = t
        .err("Publish", json!({"TopicArn": small, "Message": body}))
        .await;
    assert_code(&e, "InvalidParameter", 400);
    t.ok("Publish", json!({"TopicArn": large, "Message": body}))
        .await;
    assert_eq!(t.sqs.bodies(q), vec![body.clone()]);
    let batch = |arn: &str| {
        json!({"TopicArn": arn, "PublishBatchRequestEntries": [
            {"Id": "a", "Message": "y".repeat(200_000)},
            {"Id": "b", "Message": "z".repeat(200_000)},
        ]})
    };
    let e = t.err("PublishBatch", batch(&small)).await;
    assert_code(&e, "BatchRequestTooLong", 400);
    let out = t.ok("PublishBatch", batch(&large)).await;
    assert_eq!(out["Successful"].as_array().map(Vec::len), Some(2), "{out}");
    // Stored as the number: the same topic to CreateTopic however it is written.
    let padded = json!({"Name": "padded", "Attributes": {"MaximumMessageSize": "02048"}});
    let arn = t.ok("CreateTopic", padded).await["TopicArn"].clone();
    let plain = json!({"Name": "padded", "Attributes": {"MaximumMessageSize": "2048"}});
    assert_eq!(t.ok("CreateTopic", plain).await["TopicArn"], arn);
    let attrs = t.ok("GetTopicAttributes", json!({"TopicArn": arn})).await["Attributes"].clone();
    assert_eq!(attrs["MaximumMessageSize"], "2048");
    // A smaller limit than the default holds too.
    t.ok(
        "SetTopicAttributes",
        json!({"TopicArn": small, "AttributeName": "MaximumMessageSize", "AttributeValue": "2048"}),
    )
    .await;
    let e = t
        .err(
            "Publish",
            json!({"TopicArn": small, "Message": "x".repeat(3000)}),
        )
        .await;
    assert_code(&e, "InvalidParameter", 400);
    // Raising a topic above 256 KiB: not with an http subscription, not with over 100.
    let mixed = t.topic("mixed").await;
    let http = t
        .sub(&mixed, "http", "http://127.0.0.1:9/h", json!({}))
        .await;
    let raise = json!({"TopicArn": mixed, "AttributeName": "MaximumMessageSize", "AttributeValue": "524288"});
    let e = t.err("SetTopicAttributes", raise.clone()).await;
    assert_code(&e, "InvalidParameter", 400);
    t.ok("Unsubscribe", json!({"SubscriptionArn": http})).await;
    for n in 0..101 {
        let q = format!("arn:aws:sqs:us-east-1:000000000000:m{n}");
        t.sub(&mixed, "sqs", &q, json!({})).await;
    }
    let e = t.err("SetTopicAttributes", raise.clone()).await;
    assert_code(&e, "InvalidParameter", 400);
    let last = t
        .ok("ListSubscriptionsByTopic", json!({"TopicArn": mixed}))
        .await["Subscriptions"][0]["SubscriptionArn"]
        .as_str()
        .unwrap()
        .to_string();
    t.ok("Unsubscribe", json!({"SubscriptionArn": last})).await;
    t.ok("SetTopicAttributes", raise).await;
}
