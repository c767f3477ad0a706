//! SQS actions and errors through aws-sdk-sqs (AWS JSON 1.0) and the query protocol that
//! `sqs_api.rs` leaves out: pagination, permissions, tags, visibility batches, dead-letter
//! sources, message move tasks, FIFO queues, and the error codes SDKs see.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;

use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use common::*;

/// The error code an SDK user sees (the legacy query code, as AWS sends it in
/// `x-amzn-query-error`).
fn code<T, E: ProvideErrorMetadata, R>(r: Result<T, aws_sdk_sqs::error::SdkError<E, R>>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.code().unwrap_or("<none>").to_string(),
    }
}

async fn create(c: &aws_sdk_sqs::Client, name: &str) -> String {
    c.create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

async fn arn(c: &aws_sdk_sqs::Client, url: &str) -> String {
    c.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_queues_paginates_and_get_queue_url_checks_owner() {
    let srv = TestServer::start().await;
    let c = sqs(&srv.endpoint());
    for i in 0..5 {
        create(&c, &format!("page-{i}")).await;
    }
    create(&c, "other").await;
    let mut urls = Vec::new();
    let mut token = None;
    loop {
        let r = c
            .list_queues()
            .queue_name_prefix("page-")
            .max_results(2)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        urls.extend(r.queue_urls.unwrap_or_default());
        token = r.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(urls.len(), 5);
    assert!(urls.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        code(c.list_queues().max_results(1001).send().await),
        "InvalidParameterValue"
    );
    let url = c
        .get_queue_url()
        .queue_name("other")
        .queue_owner_aws_account_id("000000000000")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    assert!(url.ends_with("/000000000000/other"));
    assert_eq!(
        code(
            c.get_queue_url()
                .queue_name("other")
                .queue_owner_aws_account_id("123456789012")
                .send()
                .await
        ),
        "AWS.SimpleQueueService.NonExistentQueue"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_and_message_errors() {
    let srv = TestServer::start().await;
    let c = sqs(&srv.endpoint());
    let url = create(&c, "errs").await;
    assert_eq!(
        code(c.create_queue().queue_name("bad name").send().await),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(
            c.set_queue_attributes()
                .queue_url(&url)
                .attributes(QueueAttributeName::DelaySeconds, "901")
                .send()
                .await
        ),
        "InvalidAttributeValue"
    );
    assert_eq!(
        code(
            c.set_queue_attributes()
                .queue_url(&url)
                .attributes(QueueAttributeName::from("Bogus"), "1")
                .send()
                .await
        ),
        "InvalidAttributeName"
    );
    assert_eq!(
        code(
            c.get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::from("Bogus"))
                .send()
                .await
        ),
        "InvalidAttributeName"
    );
    assert_eq!(
        code(
            c.send_message()
                .queue_url(&url)
                .message_body("bad \u{1} char")
                .send()
                .await
        ),
        "InvalidMessageContents"
    );
    assert_eq!(
        code(
            c.receive_message()
                .queue_url(&url)
                .max_number_of_messages(11)
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
    assert_eq!(
        code(
            c.delete_message()
                .queue_url(&url)
                .receipt_handle("not-a-handle")
                .send()
                .await
        ),
        "ReceiptHandleIsInvalid"
    );
    c.send_message()
        .queue_url(&url)
        .message_body("m")
        .send()
        .await
        .unwrap();
    let m = c
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    let h = m[0].receipt_handle.clone().unwrap();
    let vis = |h: String, secs: i32| {
        c.change_message_visibility()
            .queue_url(&url)
            .receipt_handle(h)
            .visibility_timeout(secs)
            .send()
    };
    vis(h.clone(), 0).await.unwrap();
    // Visible again and not received since: the last receive's handle still hides it.
    vis(h.clone(), 5).await.unwrap();
    vis(h.clone(), 0).await.unwrap();
    // Received again and made visible: the older handle's message is not in flight.
    let m = c
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    vis(m[0].receipt_handle.clone().unwrap(), 0).await.unwrap();
    assert_eq!(
        code(vis(h, 5).await),
        "AWS.SimpleQueueService.MessageNotInflight"
    );
    c.purge_queue().queue_url(&url).send().await.unwrap();
    assert_eq!(
        code(c.purge_queue().queue_url(&url).send().await),
        "AWS.SimpleQueueService.PurgeQueueInProgress"
    );
    let batch = |ids: &[&str]| {
        ids.iter()
            .map(|id| {
                SendMessageBatchRequestEntry::builder()
                    .id(*id)
                    .message_body("x")
                    .build()
                    .unwrap()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        code(
            c.send_message_batch()
                .queue_url(&url)
                .set_entries(Some(batch(&["a", "a"])))
                .send()
                .await
        ),
        "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
    );
    assert_eq!(
        code(
            c.send_message_batch()
                .queue_url(&url)
                .set_entries(Some(batch(&[
                    "i0", "i1", "i2", "i3", "i4", "i5", "i6", "i7", "i8", "i9", "i10"
                ])))
                .send()
                .await
        ),
        "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
    );
    assert_eq!(
        code(
            c.send_message_batch()
                .queue_url(&url)
                .set_entries(Some(batch(&["bad id!"])))
                .send()
                .await
        ),
        "AWS.SimpleQueueService.InvalidBatchEntryId"
    );
    assert_eq!(
        code(
            c.send_message_batch()
                .queue_url(&url)
                .set_entries(Some(vec![]))
                .send()
                .await
        ),
        "AWS.SimpleQueueService.EmptyBatchRequest"
    );
    let big: Vec<_> = (0..2)
        .map(|i| {
            SendMessageBatchRequestEntry::builder()
                .id(format!("b{i}"))
                .message_body("x".repeat(600_000))
                .build()
                .unwrap()
        })
        .collect();
    assert_eq!(
        code(
            c.send_message_batch()
                .queue_url(&url)
                .set_entries(Some(big))
                .send()
                .await
        ),
        "AWS.SimpleQueueService.BatchRequestTooLong"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visibility_batch_tags_and_permissions() {
    let srv = TestServer::start().await;
    let c = sqs(&srv.endpoint());
    let url = c
        .create_queue()
        .queue_name("vb")
        .tags("team", "core")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let tags = c.list_queue_tags().queue_url(&url).send().await.unwrap();
    assert_eq!(tags.tags.unwrap()["team"], "core");
    for i in 0..3 {
        c.send_message()
            .queue_url(&url)
            .message_body(format!("{i}"))
            .send()
            .await
            .unwrap();
    }
    let msgs = c
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(msgs.len(), 3);
    let entries: Vec<_> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(format!("e{i}"))
                .receipt_handle(m.receipt_handle.clone().unwrap())
                .visibility_timeout(0)
                .build()
                .unwrap()
        })
        .chain(std::iter::once(
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id("bad")
                .receipt_handle("garbage")
                .visibility_timeout(0)
                .build()
                .unwrap(),
        ))
        .collect();
    let r = c
        .change_message_visibility_batch()
        .queue_url(&url)
        .set_entries(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(r.successful.len(), 3);
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].id, "bad");
    assert!(r.failed[0].sender_fault);
    assert_eq!(r.failed[0].code, "ReceiptHandleIsInvalid");
    let again = c
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(again.len(), 3);
    assert_eq!(
        again[0].attributes.as_ref().unwrap()[&MessageSystemAttributeName::ApproximateReceiveCount],
        "2"
    );
    c.add_permission()
        .queue_url(&url)
        .label("share")
        .aws_account_ids("111122223333")
        .actions("SendMessage")
        .actions("ReceiveMessage")
        .send()
        .await
        .unwrap();
    let attrs = c
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::Policy)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let policy: serde_json::Value =
        serde_json::from_str(&attrs[&QueueAttributeName::Policy]).unwrap();
    assert_eq!(policy["Statement"][0]["Sid"], "share");
    assert_eq!(
        code(
            c.add_permission()
                .queue_url(&url)
                .label("share")
                .aws_account_ids("111122223333")
                .actions("SendMessage")
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
    c.remove_permission()
        .queue_url(&url)
        .label("share")
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(
            c.remove_permission()
                .queue_url(&url)
                .label("share")
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
    c.untag_queue()
        .queue_url(&url)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let tags = c.list_queue_tags().queue_url(&url).send().await.unwrap();
    assert!(tags.tags.unwrap_or_default().is_empty());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_sources_and_message_move_tasks() {
    let srv = TestServer::start().await;
    let c = sqs(&srv.endpoint());
    let dlq = create(&c, "dl").await;
    let dlq_arn = arn(&c, &dlq).await;
    let src = c
        .create_queue()
        .queue_name("dl-src")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}).to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let r = c
        .list_dead_letter_source_queues()
        .queue_url(&dlq)
        .send()
        .await
        .unwrap();
    assert_eq!(r.queue_urls, vec![src.clone()]);
    for i in 0..4 {
        c.send_message()
            .queue_url(&src)
            .message_body(format!("{i}"))
            .send()
            .await
            .unwrap();
    }
    for _ in 0..2 {
        c.receive_message()
            .queue_url(&src)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
    let dead = c
        .receive_message()
        .queue_url(&dlq)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(dead.len(), 4);
    let src_arn = arn(&c, &src).await;
    assert_eq!(
        dead[0].attributes.as_ref().unwrap()[&MessageSystemAttributeName::DeadLetterQueueSourceArn],
        src_arn
    );
    assert_eq!(
        code(
            c.start_message_move_task()
                .source_arn("arn:aws:sqs:us-east-1:000000000000:missing")
                .send()
                .await
        ),
        "ResourceNotFoundException"
    );
    let handle = c
        .start_message_move_task()
        .source_arn(&dlq_arn)
        .send()
        .await
        .unwrap()
        .task_handle
        .unwrap();
    let start = Instant::now();
    loop {
        let r = c
            .list_message_move_tasks()
            .source_arn(&dlq_arn)
            .send()
            .await
            .unwrap();
        let t = &r.results.unwrap()[0];
        if t.status.as_deref() == Some("COMPLETED") {
            assert_eq!(t.approximate_number_of_messages_moved, 4);
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{t:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // An ended task is not one cancelling can find.
    assert_eq!(
        code(
            c.cancel_message_move_task()
                .task_handle(&handle)
                .send()
                .await
        ),
        "ResourceNotFoundException"
    );
    // Not a handle at all (base64 of "nope"), and a well-formed one of no task.
    assert_eq!(
        code(
            c.cancel_message_move_task()
                .task_handle("bm9wZQ==")
                .send()
                .await
        ),
        "InvalidParameterValue"
    );
    let unknown = base64::engine::general_purpose::STANDARD.encode(
        serde_json::json!({"taskId": "nope", "sourceArn": "arn:aws:sqs:us-east-1:000000000000:x"})
            .to_string(),
    );
    assert_eq!(
        code(
            c.cancel_message_move_task()
                .task_handle(unknown)
                .send()
                .await
        ),
        "ResourceNotFoundException"
    );
    let back = c
        .receive_message()
        .queue_url(&src)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(back.len(), 4);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_queues_order_groups_and_deduplicate() {
    let srv = TestServer::start().await;
    let c = sqs(&srv.endpoint());
    let url = c
        .create_queue()
        .queue_name("jobs.fifo")
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "true")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let mut seqs = Vec::new();
    for (g, b) in [("a", "a1"), ("b", "b1"), ("a", "a2"), ("a", "a1")] {
        let r = c
            .send_message()
            .queue_url(&url)
            .message_group_id(g)
            .message_body(b)
            .send()
            .await
            .unwrap();
        seqs.push(r.sequence_number.unwrap());
    }
    // The second "a1" is a duplicate of the first.
    assert_eq!(seqs[3], seqs[0]);
    assert!(seqs[0] < seqs[1] && seqs[1] < seqs[2]);
    assert_eq!(
        code(
            c.send_message()
                .queue_url(&url)
                .message_body("no group")
                .send()
                .await
        ),
        "MissingParameter"
    );
    let r = c
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .receive_request_attempt_id("attempt-1")
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    let bodies: Vec<_> = r.iter().map(|m| m.body.clone().unwrap()).collect();
    assert_eq!(bodies, ["a1", "a2", "b1"]);
    // Both groups are locked now.
    let none = c
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert!(none.is_empty());
    srv.stop().await;
}

#[test]
fn query_protocol_errors_and_batches() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt.block_on(TestServer::start());
    let r = query_post(srv.addr, "/", "sqs", "Action=CreateQueue&QueueName=qp");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = query_post(
        srv.addr,
        "/000000000000/qp",
        "sqs",
        "Action=SendMessageBatch&SendMessageBatchRequestEntry.1.Id=a&SendMessageBatchRequestEntry.1.MessageBody=x&SendMessageBatchRequestEntry.2.Id=a&SendMessageBatchRequestEntry.2.MessageBody=y",
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        xml_text(&r.text(), "Code").as_deref(),
        Some("AWS.SimpleQueueService.BatchEntryIdsNotDistinct")
    );
    let r = query_post(
        srv.addr,
        "/000000000000/qp",
        "sqs",
        "Action=SendMessageBatch&SendMessageBatchRequestEntry.1.Id=a&SendMessageBatchRequestEntry.1.MessageBody=x&SendMessageBatchRequestEntry.2.Id=b&SendMessageBatchRequestEntry.2.MessageBody=y&SendMessageBatchRequestEntry.2.DelaySeconds=1000",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let xml = r.text();
    assert!(
        xml.contains("<SendMessageBatchResultEntry><Id>a</Id>"),
        "{xml}"
    );
    assert!(xml.contains("<BatchResultErrorEntry><Id>b</Id>"), "{xml}");
    let r = query_post(
        srv.addr,
        "/000000000000/qp",
        "sqs",
        "Action=DeleteMessage&ReceiptHandle=garbage",
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        xml_text(&r.text(), "Code").as_deref(),
        Some("ReceiptHandleIsInvalid")
    );
    let r = query_post(
        srv.addr,
        "/000000000000/qp",
        "sqs",
        "Action=ReceiveMessage&WaitTimeSeconds=21",
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        xml_text(&r.text(), "Message").as_deref(),
        Some("Value 21 for parameter WaitTimeSeconds is invalid. Reason: Must be &gt;= 0 and &lt;= 20, if provided.")
    );
    let r = query_post(srv.addr, "/000000000000/qp", "sqs", "Action=ListQueueTags");
    assert_eq!(r.status, 200, "{}", r.text());
    rt.block_on(srv.stop());
}
