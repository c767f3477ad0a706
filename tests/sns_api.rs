//! SNS through aws-sdk-sns (query protocol): topics, subscriptions, fan-out into SQS, filter
//! policies, HTTP delivery, and subscriptions across `kill -9`.

mod common;

use std::time::Duration;

use aws_sdk_sns::types::MessageAttributeValue;
use common::*;

async fn receive_one(c: &aws_sdk_sqs::Client, url: &str) -> Option<aws_sdk_sqs::types::Message> {
    let r = c
        .receive_message()
        .queue_url(url)
        .wait_time_seconds(1)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap();
    r.messages.unwrap_or_default().into_iter().next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_and_errors() {
    let srv = TestServer::start().await;
    let c = sns(&srv.endpoint());
    let arn = c
        .create_topic()
        .name("alerts")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    assert_eq!(arn, "arn:aws:sns:us-east-1:000000000000:alerts");
    assert_eq!(
        c.create_topic()
            .name("alerts")
            .send()
            .await
            .unwrap()
            .topic_arn
            .unwrap(),
        arn
    );
    let topics = c
        .list_topics()
        .send()
        .await
        .unwrap()
        .topics
        .unwrap_or_default();
    assert_eq!(topics.len(), 1);
    c.set_topic_attributes()
        .topic_arn(&arn)
        .attribute_name("DisplayName")
        .attribute_value("Alerts")
        .send()
        .await
        .unwrap();
    let attrs = c
        .get_topic_attributes()
        .topic_arn(&arn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(attrs["DisplayName"], "Alerts");
    assert_eq!(attrs["TopicArn"], arn);
    let err = c
        .get_topic_attributes()
        .topic_arn("arn:aws:sns:us-east-1:000000000000:missing")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_not_found_exception(), "{err:?}");
    let err = c
        .create_topic()
        .name("bad name!")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_exception(), "{err:?}");
    c.delete_topic().topic_arn(&arn).send().await.unwrap();
    assert!(c
        .list_topics()
        .send()
        .await
        .unwrap()
        .topics
        .unwrap_or_default()
        .is_empty());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_fans_out_to_queues_as_envelopes_or_raw() {
    let srv = TestServer::start().await;
    let (n, q) = (sns(&srv.endpoint()), sqs(&srv.endpoint()));
    let topic = n
        .create_topic()
        .name("fan")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let (env_url, env_arn) = queue(&q, "enveloped", false).await;
    let (raw_url, raw_arn) = queue(&q, "raw", false).await;
    let sub = n
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&env_arn)
        .send()
        .await
        .unwrap();
    assert!(sub
        .subscription_arn
        .unwrap()
        .starts_with(&format!("{topic}:")));
    let raw_sub = n
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&raw_arn)
        .send()
        .await
        .unwrap()
        .subscription_arn
        .unwrap();
    n.set_subscription_attributes()
        .subscription_arn(&raw_sub)
        .attribute_name("RawMessageDelivery")
        .attribute_value("true")
        .send()
        .await
        .unwrap();
    let published = n
        .publish()
        .topic_arn(&topic)
        .subject("greeting")
        .message("hello subscribers")
        .message_attributes(
            "kind",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("test")
                .build()
                .unwrap(),
        )
        .message_attributes(
            "tags",
            MessageAttributeValue::builder()
                .data_type("String.Array")
                .string_value(r#"["a", 1]"#)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let id = published.message_id.unwrap();

    let m = receive_one(&q, &env_url).await.expect("enveloped delivery");
    let env: serde_json::Value = serde_json::from_str(m.body.as_deref().unwrap()).unwrap();
    assert_eq!(env["Type"], "Notification");
    assert_eq!(env["MessageId"], id);
    assert_eq!(env["TopicArn"], topic);
    assert_eq!(env["Subject"], "greeting");
    assert_eq!(env["Message"], "hello subscribers");
    assert_eq!(env["MessageAttributes"]["kind"]["Type"], "String");
    assert_eq!(env["MessageAttributes"]["kind"]["Value"], "test");
    for k in [
        "Timestamp",
        "SignatureVersion",
        "Signature",
        "SigningCertURL",
        "UnsubscribeURL",
    ] {
        assert!(env.get(k).is_some(), "envelope lacks {k}: {env}");
    }

    assert_eq!(env["MessageAttributes"]["tags"]["Type"], "String.Array");

    let m = receive_one(&q, &raw_url).await.expect("raw delivery");
    assert_eq!(m.body.as_deref(), Some("hello subscribers"));
    let attrs = m.message_attributes.unwrap();
    assert_eq!(attrs["kind"].string_value.as_deref(), Some("test"));
    // An SQS String with a custom suffix: the type is delivered as published.
    assert_eq!(attrs["tags"].data_type, "String.Array");
    assert_eq!(attrs["tags"].string_value.as_deref(), Some(r#"["a", 1]"#));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_policies_decide_who_gets_what() {
    let srv = TestServer::start().await;
    let (n, q) = (sns(&srv.endpoint()), sqs(&srv.endpoint()));
    let topic = n
        .create_topic()
        .name("filtered")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let (red_url, red_arn) = queue(&q, "red", false).await;
    let (big_url, big_arn) = queue(&q, "big", false).await;
    n.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&red_arn)
        .attributes("FilterPolicy", r#"{"color": ["red"]}"#)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    n.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&big_arn)
        .attributes("FilterPolicy", r#"{"size": [{"numeric": [">", 10]}]}"#)
        .attributes("FilterPolicyScope", "MessageBody")
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    let attr = |v: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .unwrap()
    };
    n.publish()
        .topic_arn(&topic)
        .message(r#"{"size": 5}"#)
        .message_attributes("color", attr("blue"))
        .send()
        .await
        .unwrap();
    n.publish()
        .topic_arn(&topic)
        .message(r#"{"size": 50}"#)
        .message_attributes("color", attr("red"))
        .send()
        .await
        .unwrap();
    let red = receive_one(&q, &red_url).await.expect("red matches");
    assert_eq!(red.body.as_deref(), Some(r#"{"size": 50}"#));
    let big = receive_one(&q, &big_url).await.expect("size > 10 matches");
    assert_eq!(big.body.as_deref(), Some(r#"{"size": 50}"#));
    assert!(
        receive_one(&q, &red_url).await.is_none(),
        "blue went nowhere"
    );
    assert!(
        receive_one(&q, &big_url).await.is_none(),
        "size 5 went nowhere"
    );

    let err = n
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&red_arn)
        .attributes("FilterPolicy", r#"{"color": [{"bogus-operator": 1}]}"#)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_exception(), "{err:?}");
    srv.stop().await;
}

/// A tiny HTTP endpoint that records each POST's headers and body and answers 200.
async fn http_endpoint() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(Vec<(String, String)>, String)>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let headers: Vec<(String, String)> = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect();
                    let len: usize = headers
                        .iter()
                        .find(|(k, _)| k == "content-length")
                        .map(|(_, v)| v.parse().unwrap())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                    let _ = tx.send((headers, body));
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
            });
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_subscriptions_confirm_and_receive_notifications() {
    let srv = TestServer::start().await;
    let n = sns(&srv.endpoint());
    let (hook, mut rx) = http_endpoint().await;
    let topic = n
        .create_topic()
        .name("web")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let sub = n
        .subscribe()
        .topic_arn(&topic)
        .protocol("http")
        .endpoint(&hook)
        .send()
        .await
        .unwrap();
    assert_eq!(
        sub.subscription_arn.as_deref(),
        Some("pending confirmation")
    );
    let (headers, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("confirmation POST")
        .unwrap();
    let h = |k: &str| {
        headers
            .iter()
            .find(|(hk, _)| hk == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        h("x-amz-sns-message-type").as_deref(),
        Some("SubscriptionConfirmation")
    );
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["Type"], "SubscriptionConfirmation");
    let token = doc["Token"].as_str().unwrap().to_string();
    assert!(doc["SubscribeURL"].as_str().unwrap().contains(&token));
    let confirmed = n
        .confirm_subscription()
        .topic_arn(&topic)
        .token(&token)
        .send()
        .await
        .unwrap();
    let sub_arn = confirmed.subscription_arn.unwrap();
    assert!(sub_arn.starts_with(&topic));

    n.publish()
        .topic_arn(&topic)
        .message("over http")
        .send()
        .await
        .unwrap();
    let (headers, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("notification POST")
        .unwrap();
    let h = |k: &str| {
        headers
            .iter()
            .find(|(hk, _)| hk == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(h("x-amz-sns-message-type").as_deref(), Some("Notification"));
    assert_eq!(h("x-amz-sns-topic-arn").as_deref(), Some(topic.as_str()));
    assert_eq!(
        h("x-amz-sns-subscription-arn").as_deref(),
        Some(sub_arn.as_str())
    );
    assert!(h("x-amz-sns-message-id").is_some());
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["Message"], "over http");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_and_subscriptions_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::spawn(dir.path(), &[]);
    let (n, q) = (sns(&b.endpoint()), sqs(&b.endpoint()));
    let topic = n
        .create_topic()
        .name("kept")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let (_, arn) = queue(&q, "kept-q", false).await;
    let sub = n
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap()
        .subscription_arn
        .unwrap();
    b.kill9();
    let b = Broker::spawn(dir.path(), &[]);
    let (n, q) = (sns(&b.endpoint()), sqs(&b.endpoint()));
    let subs = n
        .list_subscriptions_by_topic()
        .topic_arn(&topic)
        .send()
        .await
        .unwrap()
        .subscriptions
        .unwrap_or_default();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].subscription_arn.as_deref(), Some(sub.as_str()));
    let attrs = n
        .get_subscription_attributes()
        .subscription_arn(&sub)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(attrs["RawMessageDelivery"], "true");
    n.publish()
        .topic_arn(&topic)
        .message("after restart")
        .send()
        .await
        .unwrap();
    let url = q
        .get_queue_url()
        .queue_name("kept-q")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let m = receive_one(&q, &url).await.expect("delivery after restart");
    assert_eq!(m.body.as_deref(), Some("after restart"));
    b.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_records_deliveries_with_nowhere_to_go_and_the_cert_is_served() {
    let srv = TestServer::start().await;
    let n = sns(&srv.endpoint());
    let topic = n
        .create_topic()
        .name("boxed")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let sub = n
        .subscribe()
        .topic_arn(&topic)
        .protocol("lambda")
        .endpoint("arn:aws:lambda:us-east-1:000000000000:function:handler")
        .send()
        .await
        .unwrap()
        .subscription_arn
        .unwrap();
    n.publish()
        .topic_arn(&topic)
        .message("to the outbox")
        .send()
        .await
        .unwrap();
    let addr = srv.addr;
    let path = format!(
        "/_millpond/sns/outbox?subscription_arn={}",
        sub.replace(':', "%3A")
    );
    let get = {
        let path = path.clone();
        move || raw(addr, "GET", &path, &[], b"")
    };
    let r = tokio::task::spawn_blocking(get.clone()).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let deliveries = r.json()["deliveries"].as_array().cloned().unwrap();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert!(
        deliveries[0].to_string().contains("to the outbox"),
        "{deliveries:?}"
    );
    let r = tokio::task::spawn_blocking(move || raw(addr, "DELETE", &path, &[], b""))
        .await
        .unwrap();
    assert_eq!(r.json()["cleared"], 1);
    let r = tokio::task::spawn_blocking(get).await.unwrap();
    assert_eq!(r.json()["deliveries"].as_array().map(Vec::len), Some(0));

    let r = tokio::task::spawn_blocking(move || {
        raw(
            addr,
            "GET",
            "/_millpond/sns/SimpleNotificationService.pem",
            &[],
            b"",
        )
    })
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.text().starts_with("-----BEGIN CERTIFICATE-----"),
        "{}",
        r.text()
    );
    srv.stop().await;
}
