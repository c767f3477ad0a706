//! FIFO queues over the SDK: per-group order under concurrent consumers, and order, group locks,
//! deduplication and sequence numbers across `kill -9`.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::types::{
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use common::*;

async fn fifo_queue(c: &aws_sdk_sqs::Client, name: &str) -> String {
    c.create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::VisibilityTimeout, "60")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_groups_of_a_thousand_keep_order_under_eight_consumers() {
    let srv = TestServer::start().await;
    let c = sqs(&srv.endpoint());
    let url = fifo_queue(&c, "orders.fifo").await;
    let (groups, per_group) = (10usize, 1000usize);
    // Batches interleave groups, as real producers do.
    for k in 0..per_group {
        let mut req = c.send_message_batch().queue_url(&url);
        for g in 0..groups {
            req = req.entries(
                SendMessageBatchRequestEntry::builder()
                    .id(format!("g{g}"))
                    .message_body(format!("{g}:{k}"))
                    .message_group_id(format!("group-{g}"))
                    .message_deduplication_id(format!("{g}-{k}"))
                    .build()
                    .unwrap(),
            );
        }
        assert_eq!(req.send().await.unwrap().successful.len(), groups);
    }
    let seen = Arc::new(Mutex::new(Vec::<(usize, usize)>::new()));
    let mut consumers = Vec::new();
    for _ in 0..8 {
        let (c, url, seen) = (c.clone(), url.clone(), seen.clone());
        consumers.push(tokio::spawn(async move {
            let total = groups * per_group;
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while seen.lock().unwrap().len() < total && std::time::Instant::now() < deadline {
                let r = c
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .send()
                    .await
                    .unwrap();
                let msgs = r.messages.unwrap_or_default();
                if msgs.is_empty() {
                    continue;
                }
                let mut del = c.delete_message_batch().queue_url(&url);
                for (i, m) in msgs.iter().enumerate() {
                    let (g, k) = m.body.as_deref().unwrap().split_once(':').unwrap();
                    seen.lock()
                        .unwrap()
                        .push((g.parse().unwrap(), k.parse().unwrap()));
                    del = del.entries(
                        aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(m.receipt_handle.clone().unwrap())
                            .build()
                            .unwrap(),
                    );
                }
                assert!(del.send().await.unwrap().failed.is_empty());
            }
        }));
    }
    for t in consumers {
        t.await.unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(seen.len(), groups * per_group, "every message once");
    let mut next: HashMap<usize, usize> = HashMap::new();
    for &(g, k) in seen.iter() {
        let want = next.entry(g).or_insert(0);
        assert_eq!(k, *want, "group {g} out of order (or duplicated)");
        *want += 1;
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_group_locks_dedup_and_sequence_numbers_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::spawn(dir.path(), &[]);
    let c = sqs(&b.endpoint());
    let url = fifo_queue(&c, "durable.fifo").await;
    let mut sent = Vec::new();
    for i in 0..5 {
        let r = c
            .send_message()
            .queue_url(&url)
            .message_body(format!("a{i}"))
            .message_group_id("A")
            .message_deduplication_id(format!("d{i}"))
            .send()
            .await
            .unwrap();
        sent.push((r.message_id.unwrap(), r.sequence_number.unwrap()));
    }
    c.send_message()
        .queue_url(&url)
        .message_body("b0")
        .message_group_id("B")
        .message_deduplication_id("db0")
        .send()
        .await
        .unwrap();
    // a0 goes in flight for 3 s: group A is locked until then.
    let got = c
        .receive_message()
        .queue_url(&url)
        .visibility_timeout(3)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(got[0].body.as_deref(), Some("a0"));
    b.kill9();

    let b = Broker::spawn(dir.path(), &[]);
    let c = sqs(&b.endpoint());
    // Group A is still locked; group B flows.
    let now = c
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    let bodies: Vec<_> = now.iter().map(|m| m.body.clone().unwrap()).collect();
    assert_eq!(bodies, vec!["b0".to_string()]);
    // A duplicate inside the window is answered with the original id and sequence number.
    let dup = c
        .send_message()
        .queue_url(&url)
        .message_body("a1 again")
        .message_group_id("A")
        .message_deduplication_id("d1")
        .send()
        .await
        .unwrap();
    assert_eq!(dup.message_id.as_deref(), Some(sent[1].0.as_str()));
    assert_eq!(dup.sequence_number.as_deref(), Some(sent[1].1.as_str()));
    // A new message gets a larger sequence number than any before the restart.
    let fresh = c
        .send_message()
        .queue_url(&url)
        .message_body("a5")
        .message_group_id("A")
        .message_deduplication_id("d5")
        .send()
        .await
        .unwrap();
    let max_before = sent
        .iter()
        .map(|(_, s)| s.parse::<u128>().unwrap())
        .max()
        .unwrap();
    assert!(fresh.sequence_number.unwrap().parse::<u128>().unwrap() > max_before);
    // After the deadline, a0 comes back first, then the rest of A in order, each once.
    let mut order = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while order.len() < 6 && std::time::Instant::now() < deadline {
        let r = c
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .unwrap();
        for m in r.messages.unwrap_or_default() {
            if m.body.as_deref() == Some("a0") {
                assert_eq!(
                    m.attributes.as_ref().unwrap()
                        [&MessageSystemAttributeName::ApproximateReceiveCount],
                    "2"
                );
            }
            order.push(m.body.clone().unwrap());
            c.delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(order, vec!["a0", "a1", "a2", "a3", "a4", "a5"]);
    b.kill9();
}
