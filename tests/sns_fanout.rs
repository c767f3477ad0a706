//! SNS fan-out into real SQS queues through the SDKs: FIFO topics into FIFO queues (order,
//! group ids, deduplication), raw delivery with attributes, MessageStructure=json, PublishBatch,
//! MessageBody filter policies, and a subscription dead-letter queue. Needs the SQS service's
//! `send_to_arn` (stubbed on the SNS branch; passes once merged).

mod common;

use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use common::*;

async fn drain(
    c: &aws_sdk_sqs::Client,
    url: &str,
    want: usize,
) -> Vec<aws_sdk_sqs::types::Message> {
    let mut out = Vec::new();
    for _ in 0..20 {
        if out.len() >= want {
            break;
        }
        let r = c
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        for m in r.messages.unwrap_or_default() {
            c.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle.clone().unwrap())
                .send()
                .await
                .unwrap();
            out.push(m);
        }
    }
    out
}

fn envelope(m: &aws_sdk_sqs::types::Message) -> serde_json::Value {
    serde_json::from_str(m.body.as_deref().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_topic_into_fifo_queue_keeps_order_and_deduplicates() {
    let srv = TestServer::start().await;
    let (q, n) = (sqs(&srv.endpoint()), sns(&srv.endpoint()));
    let (url, arn) = queue(&q, "orders.fifo", true).await;
    let topic = create_topic(&n, "orders.fifo", &[("FifoTopic", "true")]).await;
    subscribe(&n, &topic, "sqs", &arn, &[("RawMessageDelivery", "true")]).await;
    let seqs = publish_fifo_series(&n, &topic, 5).await;
    // A retry within the window is the same publish.
    let dup = n
        .publish()
        .topic_arn(&topic)
        .message("m0 again")
        .message_group_id("g")
        .message_deduplication_id("d0")
        .send()
        .await
        .unwrap();
    assert_eq!(dup.sequence_number.as_deref(), Some(seqs[0].as_str()));
    let mut sorted = seqs.clone();
    sorted.sort();
    assert_eq!(sorted, seqs, "sequence numbers increase");
    let got = drain(&q, &url, 5).await;
    let bodies: Vec<&str> = got.iter().map(|m| m.body.as_deref().unwrap()).collect();
    assert_eq!(bodies, ["m0", "m1", "m2", "m3", "m4"]);
    let attrs = got[0].attributes.as_ref().unwrap();
    assert_eq!(
        attrs
            .get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
            .map(String::as_str),
        Some("g")
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_attributes_structures_batches_and_body_filters() {
    let srv = TestServer::start().await;
    let (q, n) = (sqs(&srv.endpoint()), sns(&srv.endpoint()));
    let (raw_url, raw_arn) = queue(&q, "raw", false).await;
    let (env_url, env_arn) = queue(&q, "env", false).await;
    let (body_url, body_arn) = queue(&q, "body", false).await;
    let topic = n
        .create_topic()
        .name("mixed")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    for (arn, attrs) in [
        (&raw_arn, vec![("RawMessageDelivery", "true")]),
        (&env_arn, vec![]),
        (
            &body_arn,
            vec![
                ("FilterPolicyScope", "MessageBody"),
                (
                    "FilterPolicy",
                    r#"{"order":{"total":[{"numeric":[">=",100]}]}}"#,
                ),
            ],
        ),
    ] {
        let mut req = n
            .subscribe()
            .topic_arn(&topic)
            .protocol("sqs")
            .endpoint(arn.as_str());
        for (k, v) in attrs {
            req = req.attributes(k, v);
        }
        req.send().await.unwrap();
    }
    n.publish()
        .topic_arn(&topic)
        .message("plain")
        .message_attributes(
            "color",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("red")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let raw = drain(&q, &raw_url, 1).await;
    assert_eq!(raw[0].body.as_deref(), Some("plain"));
    let color = &raw[0].message_attributes.as_ref().unwrap()["color"];
    assert_eq!(color.string_value.as_deref(), Some("red"));
    let env = drain(&q, &env_url, 1).await;
    let e = envelope(&env[0]);
    assert_eq!(e["Message"], "plain");
    assert_eq!(e["MessageAttributes"]["color"]["Value"], "red");
    assert!(e["Signature"].as_str().unwrap().len() > 100);

    n.publish()
        .topic_arn(&topic)
        .message_structure("json")
        .message(r#"{"default":"dflt","sqs":"{\"order\":{\"total\":150}}"}"#)
        .send()
        .await
        .unwrap();
    let body = drain(&q, &body_url, 1).await;
    assert_eq!(envelope(&body[0])["Message"], r#"{"order":{"total":150}}"#);
    assert_eq!(
        drain(&q, &raw_url, 1).await[0].body.as_deref(),
        Some(r#"{"order":{"total":150}}"#)
    );
    drain(&q, &env_url, 1).await;

    let out = n
        .publish_batch()
        .topic_arn(&topic)
        .publish_batch_request_entries(
            PublishBatchRequestEntry::builder()
                .id("small")
                .message(r#"{"order":{"total":5}}"#)
                .build()
                .unwrap(),
        )
        .publish_batch_request_entries(
            PublishBatchRequestEntry::builder()
                .id("big")
                .message(r#"{"order":{"total":500}}"#)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.successful.unwrap().len(), 2);
    assert_eq!(drain(&q, &raw_url, 2).await.len(), 2);
    let filtered = drain(&q, &body_url, 1).await;
    assert_eq!(filtered.len(), 1);
    assert_eq!(
        envelope(&filtered[0])["Message"],
        r#"{"order":{"total":500}}"#
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_messages_go_to_the_subscription_dlq() {
    let srv = TestServer::start().await;
    let (q, n) = (sqs(&srv.endpoint()), sns(&srv.endpoint()));
    let (gone_url, gone_arn) = queue(&q, "gone", false).await;
    let (dlq_url, dlq_arn) = queue(&q, "sub-dlq", false).await;
    let topic = n
        .create_topic()
        .name("dl")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    n.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&gone_arn)
        .attributes(
            "RedrivePolicy",
            format!(r#"{{"deadLetterTargetArn":"{dlq_arn}"}}"#),
        )
        .send()
        .await
        .unwrap();
    q.delete_queue().queue_url(&gone_url).send().await.unwrap();
    n.publish()
        .topic_arn(&topic)
        .message("nowhere to go")
        .send()
        .await
        .unwrap();
    let dead = drain(&q, &dlq_url, 1).await;
    assert_eq!(envelope(&dead[0])["Message"], "nowhere to go");
    srv.stop().await;
}
