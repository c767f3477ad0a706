//! SQS state across `kill -9`: the broker runs as a child process and is SIGKILLed, then started
//! again on the same data directory.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_messages_in_flight_delayed_and_deleted_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::spawn(dir.path(), &[]);
    let c = sqs(&b.endpoint());
    let url = c
        .create_queue()
        .queue_name("durable")
        .attributes(QueueAttributeName::VisibilityTimeout, "17")
        .tags("owner", "tests")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let path = url
        .rsplit_once(&b.endpoint())
        .map(|(_, p)| p.to_string())
        .unwrap();
    for i in 0..5 {
        c.send_message()
            .queue_url(&url)
            .message_body(format!("m{i}"))
            .send()
            .await
            .unwrap();
    }
    // m0..m4 are visible. Take two in flight for 3 s, delete one of them.
    let got = c
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(2)
        .visibility_timeout(3)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(got.len(), 2);
    c.delete_message()
        .queue_url(&url)
        .receipt_handle(got[0].receipt_handle.clone().unwrap())
        .send()
        .await
        .unwrap();
    let deleted = got[0].body.clone().unwrap();
    let in_flight = got[1].body.clone().unwrap();
    c.send_message()
        .queue_url(&url)
        .message_body("late")
        .delay_seconds(2)
        .send()
        .await
        .unwrap();
    b.kill9();

    let b = Broker::spawn(dir.path(), &[]);
    let c = sqs(&b.endpoint());
    let url = format!("{}{path}", b.endpoint());
    assert_eq!(
        c.get_queue_url()
            .queue_name("durable")
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap(),
        url
    );
    let attrs = c
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let attrs = attrs.attributes.unwrap();
    assert_eq!(attrs[&QueueAttributeName::VisibilityTimeout], "17");
    let tags = c
        .list_queue_tags()
        .queue_url(&url)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap();
    assert_eq!(tags["owner"], "tests");

    // Right after restart: the three never-received messages, not the in-flight, delayed or deleted ones.
    let now = c
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .visibility_timeout(30)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    let bodies: HashSet<String> = now.iter().map(|m| m.body.clone().unwrap()).collect();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    assert!(!bodies.contains(&deleted) && !bodies.contains(&in_flight) && !bodies.contains("late"));

    // Within a few seconds, the in-flight one returns with its receive count kept, and the
    // delayed one appears; the deleted one never does.
    let mut later = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while later.len() < 2 && std::time::Instant::now() < deadline {
        let r = c
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .unwrap();
        later.extend(r.messages.unwrap_or_default());
    }
    let by_body = |b: &str| later.iter().find(|m| m.body.as_deref() == Some(b));
    let back = by_body(&in_flight).expect("in-flight message returns after its deadline");
    assert_eq!(
        back.attributes.as_ref().unwrap()[&MessageSystemAttributeName::ApproximateReceiveCount],
        "2"
    );
    assert!(by_body("late").is_some(), "delayed message appears");
    assert!(by_body(&deleted).is_none());
    b.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_send_is_lost_when_killed_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::spawn(dir.path(), &[]);
    let c = sqs(&b.endpoint());
    let url = c
        .create_queue()
        .queue_name("stream")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (c, url, acked) = (c.clone(), url.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let body = format!("w{w}-{i}");
                match c
                    .send_message()
                    .queue_url(&url)
                    .message_body(&body)
                    .send()
                    .await
                {
                    Ok(_) => acked.lock().unwrap().push(body),
                    Err(_) => break,
                }
            }
        }));
    }
    while acked.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    b.kill9();
    for t in tasks {
        let _ = t.await;
    }
    let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();

    let b = Broker::spawn(dir.path(), &[]);
    let c = sqs(&b.endpoint());
    let url = c
        .get_queue_url()
        .queue_name("stream")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let found: HashSet<String> = drain_bodies(&c, &url).await.into_iter().collect();
    let lost: Vec<_> = acked.difference(&found).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged sends lost, e.g. {:?}",
        lost.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
    b.kill9();
}
