//! SQS through aws-sdk-sqs (AWS JSON 1.0) and raw query-protocol requests, against a real server.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use common::*;

fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_lifecycle_urls_and_region_scoping() {
    let srv = TestServer::start().await;
    let c = sqs(&srv.endpoint());
    let url = c
        .create_queue()
        .queue_name("orders")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    assert_eq!(url, format!("{}/000000000000/orders", srv.endpoint()));
    // Same name, same attributes: same URL.
    let again = c
        .create_queue()
        .queue_name("orders")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    assert_eq!(again, url);
    // Same name, other attributes: QueueAlreadyExists (QueueNameExists in the model).
    let err = c
        .create_queue()
        .queue_name("orders")
        .attributes(QueueAttributeName::VisibilityTimeout, "5")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("QueueAlreadyExists")
    );
    let got = c
        .get_queue_url()
        .queue_name("orders")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    assert_eq!(got, url);
    let listed = c
        .list_queues()
        .send()
        .await
        .unwrap()
        .queue_urls
        .unwrap_or_default();
    assert_eq!(listed, vec![url.clone()]);

    // Another region sees nothing of it.
    let eu = sqs_in(&srv.endpoint(), "eu-west-1");
    assert!(eu
        .list_queues()
        .send()
        .await
        .unwrap()
        .queue_urls
        .unwrap_or_default()
        .is_empty());
    let err = eu
        .get_queue_url()
        .queue_name("orders")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_queue_does_not_exist(), "{err:?}");

    c.delete_queue().queue_url(&url).send().await.unwrap();
    let err = c
        .get_queue_url()
        .queue_name("orders")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_queue_does_not_exist(), "{err:?}");
    let err = c
        .send_message()
        .queue_url(&url)
        .message_body("x")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_queue_does_not_exist(), "{err:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_receive_delete_with_attributes_and_md5s() {
    let srv = TestServer::start().await;
    let c = sqs(&srv.endpoint());
    let url = c
        .create_queue()
        .queue_name("q")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let body = "héllo\r\nworld <&>";
    let sent = c
        .send_message()
        .queue_url(&url)
        .message_body(body)
        .message_attributes(
            "color",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("red")
                .build()
                .unwrap(),
        )
        .message_attributes(
            "n",
            MessageAttributeValue::builder()
                .data_type("Number")
                .string_value("42")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        sent.md5_of_message_body.as_deref(),
        Some(md5_hex(body).as_str())
    );
    assert!(sent.md5_of_message_attributes.is_some());
    let got = c
        .receive_message()
        .queue_url(&url)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let msgs = got.messages.unwrap();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.body.as_deref(), Some(body));
    assert_eq!(m.message_id, sent.message_id);
    assert_eq!(m.md5_of_body.as_deref(), Some(md5_hex(body).as_str()));
    assert_eq!(m.md5_of_message_attributes, sent.md5_of_message_attributes);
    let attrs = m.message_attributes.as_ref().unwrap();
    assert_eq!(attrs["color"].string_value.as_deref(), Some("red"));
    assert_eq!(attrs["n"].data_type, "Number");
    let sys = m.attributes.as_ref().unwrap();
    assert_eq!(
        sys[&MessageSystemAttributeName::ApproximateReceiveCount],
        "1"
    );
    assert!(sys.contains_key(&MessageSystemAttributeName::SentTimestamp));
    c.delete_message()
        .queue_url(&url)
        .receipt_handle(m.receipt_handle.clone().unwrap())
        .send()
        .await
        .unwrap();
    let again = c.receive_message().queue_url(&url).send().await.unwrap();
    assert!(again.messages.unwrap_or_default().is_empty());
    // Garbage receipt handle.
    let err = c
        .delete_message()
        .queue_url(&url)
        .receipt_handle("garbage")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("ReceiptHandleIsInvalid")
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visibility_timeout_hides_then_returns_with_higher_receive_count() {
    let srv = TestServer::start().await;
    let c = sqs(&srv.endpoint());
    let url = c
        .create_queue()
        .queue_name("vis")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    c.send_message()
        .queue_url(&url)
        .message_body("m")
        .send()
        .await
        .unwrap();
    let first = c
        .receive_message()
        .queue_url(&url)
        .visibility_timeout(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(first.len(), 1);
    assert!(c
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
        .is_empty());
    let again = c
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(3)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].attributes.as_ref().unwrap()[&MessageSystemAttributeName::ApproximateReceiveCount],
        "2"
    );
    assert_ne!(again[0].receipt_handle, first[0].receipt_handle);
    // ChangeMessageVisibility to 0 makes it visible at once.
    c.change_message_visibility()
        .queue_url(&url)
        .receipt_handle(again[0].receipt_handle.clone().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let third = c
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(third.len(), 1);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_returns_as_soon_as_a_message_arrives() {
    let srv = TestServer::start().await;
    let c = sqs(&srv.endpoint());
    let url = c
        .create_queue()
        .queue_name("lp")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let (c2, url2) = (c.clone(), url.clone());
    let poll = tokio::spawn(async move {
        let t = Instant::now();
        let r = c2
            .receive_message()
            .queue_url(&url2)
            .wait_time_seconds(10)
            .send()
            .await
            .unwrap();
        (t.elapsed(), r.messages.unwrap_or_default().len())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.send_message()
        .queue_url(&url)
        .message_body("wake")
        .send()
        .await
        .unwrap();
    let (took, n) = poll.await.unwrap();
    assert_eq!(n, 1);
    assert!(took < Duration::from_secs(5), "long poll took {took:?}");
    // With nothing to receive, it waits out the wait time.
    let t = Instant::now();
    let r = c
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert!(r.messages.unwrap_or_default().is_empty());
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_report_per_entry_results_and_batch_errors() {
    let srv = TestServer::start().await;
    let c = sqs(&srv.endpoint());
    let url = c
        .create_queue()
        .queue_name("batch")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let entry = |id: &str, body: &str| {
        SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body(body)
            .build()
            .unwrap()
    };
    let r = c
        .send_message_batch()
        .queue_url(&url)
        .entries(entry("a", "one"))
        .entries(entry("b", "two"))
        .entries(entry("c", "\u{1}bad"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.successful.len(), 2);
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].id, "c");
    assert!(r.failed[0].sender_fault);

    let err = c
        .send_message_batch()
        .queue_url(&url)
        .entries(entry("x", "1"))
        .entries(entry("x", "2"))
        .send()
        .await
        .unwrap_err();
    let err = err.into_service_error();
    assert!(err.is_batch_entry_ids_not_distinct(), "{err:?}");
    let mut b = c.send_message_batch().queue_url(&url);
    for i in 0..11 {
        b = b.entries(entry(&format!("e{i}"), "x"));
    }
    let err = b.send().await.unwrap_err().into_service_error();
    assert!(err.is_too_many_entries_in_batch_request(), "{err:?}");
    let err = c
        .send_message_batch()
        .queue_url(&url)
        .set_entries(Some(vec![]))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_empty_batch_request(), "{err:?}");

    let got = c
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(got.len(), 2);
    let mut del = c.delete_message_batch().queue_url(&url);
    for (i, m) in got.iter().enumerate() {
        del = del.entries(
            aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                .id(format!("d{i}"))
                .receipt_handle(m.receipt_handle.clone().unwrap())
                .build()
                .unwrap(),
        );
    }
    del = del.entries(
        aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
            .id("bad")
            .receipt_handle("nope")
            .build()
            .unwrap(),
    );
    let r = del.send().await.unwrap();
    assert_eq!(r.successful.len(), 2);
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].code, "ReceiptHandleIsInvalid");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_validation_tags_and_purge() {
    let srv = TestServer::start().await;
    let c = sqs(&srv.endpoint());
    let url = c
        .create_queue()
        .queue_name("attrs")
        .attributes(QueueAttributeName::DelaySeconds, "0")
        .attributes(QueueAttributeName::VisibilityTimeout, "45")
        .tags("team", "core")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let a = c
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let a = a.attributes.unwrap();
    assert_eq!(a[&QueueAttributeName::VisibilityTimeout], "45");
    assert_eq!(a[&QueueAttributeName::MessageRetentionPeriod], "345600");
    assert_eq!(a[&QueueAttributeName::MaximumMessageSize], "1048576");
    assert_eq!(
        a[&QueueAttributeName::QueueArn],
        "arn:aws:sqs:us-east-1:000000000000:attrs"
    );
    assert_eq!(a[&QueueAttributeName::ApproximateNumberOfMessages], "0");

    let err = c
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::VisibilityTimeout, "43201")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_attribute_value(), "{err:?}");
    c.set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::DelaySeconds, "2")
        .send()
        .await
        .unwrap();

    let tags = c
        .list_queue_tags()
        .queue_url(&url)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap();
    assert_eq!(tags.get("team").map(String::as_str), Some("core"));
    c.tag_queue()
        .queue_url(&url)
        .tags("env", "dev")
        .send()
        .await
        .unwrap();
    c.untag_queue()
        .queue_url(&url)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let tags = c
        .list_queue_tags()
        .queue_url(&url)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap();
    assert_eq!(
        tags,
        HashMap::from([("env".to_string(), "dev".to_string())])
    );

    c.send_message()
        .queue_url(&url)
        .message_body("delayed")
        .send()
        .await
        .unwrap();
    let a = c
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    assert_eq!(
        a.attributes.unwrap()[&QueueAttributeName::ApproximateNumberOfMessagesDelayed],
        "1"
    );
    c.purge_queue().queue_url(&url).send().await.unwrap();
    let err = c
        .purge_queue()
        .queue_url(&url)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_purge_queue_in_progress(), "{err:?}");
    let a = c
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    assert_eq!(
        a.attributes.unwrap()[&QueueAttributeName::ApproximateNumberOfMessagesDelayed],
        "0"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_moves_to_the_dead_letter_queue_after_max_receives() {
    let srv = TestServer::start().await;
    let c = sqs(&srv.endpoint());
    let dlq = c
        .create_queue()
        .queue_name("dlq")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let policy =
        r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"2"}"#;
    let src = c
        .create_queue()
        .queue_name("src")
        .attributes(QueueAttributeName::RedrivePolicy, policy)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    c.send_message()
        .queue_url(&src)
        .message_body("poison")
        .send()
        .await
        .unwrap();
    for _ in 0..2 {
        let got = c
            .receive_message()
            .queue_url(&src)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
        assert_eq!(got.messages.unwrap_or_default().len(), 1);
    }
    // The third receive exceeds maxReceiveCount: the message moves instead of being delivered.
    let got = c.receive_message().queue_url(&src).send().await.unwrap();
    assert!(got.messages.unwrap_or_default().is_empty());
    let dead = c
        .receive_message()
        .queue_url(&dlq)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body.as_deref(), Some("poison"));
    let sources = c
        .list_dead_letter_source_queues()
        .queue_url(&dlq)
        .send()
        .await
        .unwrap();
    assert_eq!(sources.queue_urls, vec![src.clone()]);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_consumers_drain_ten_thousand_messages_without_duplicates() {
    let srv = TestServer::start().await;
    let c = sqs(&srv.endpoint());
    let url = c
        .create_queue()
        .queue_name("drain")
        .attributes(QueueAttributeName::VisibilityTimeout, "120")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let total = 10_000;
    let mut senders = Vec::new();
    for s in 0..8 {
        let (c, url) = (c.clone(), url.clone());
        senders.push(tokio::spawn(async move {
            for b in 0..(total / 8 / 10) {
                let mut req = c.send_message_batch().queue_url(&url);
                for i in 0..10 {
                    let n = s * (total / 8) + b * 10 + i;
                    req = req.entries(
                        SendMessageBatchRequestEntry::builder()
                            .id(format!("e{i}"))
                            .message_body(n.to_string())
                            .build()
                            .unwrap(),
                    );
                }
                assert_eq!(req.send().await.unwrap().successful.len(), 10);
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    let mut consumers = Vec::new();
    for _ in 0..16 {
        let (c, url) = (c.clone(), url.clone());
        consumers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let r = c
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .send()
                    .await
                    .unwrap();
                let msgs = r.messages.unwrap_or_default();
                if msgs.is_empty() {
                    break;
                }
                let mut del = c.delete_message_batch().queue_url(&url);
                for (i, m) in msgs.iter().enumerate() {
                    seen.push(m.body.clone().unwrap());
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
            seen
        }));
    }
    let mut all = Vec::new();
    for c in consumers {
        all.extend(c.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "a message was delivered twice inside its visibility timeout"
    );
    assert_eq!(all.len(), total as usize);
    srv.stop().await;
}

#[test]
fn queue_urls_refuse_queueless_actions_and_requests_without_an_action() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt.block_on(TestServer::start());
    let r = query_post(srv.addr, "/", "sqs", "Action=CreateQueue&QueueName=home");
    assert_eq!(r.status, 200, "{}", r.text());
    // No Action on a queue URL: a bare 404, in XML even when JSON is asked for.
    for headers in [vec![], vec![("Accept", "application/json")]] {
        let r = raw(srv.addr, "GET", "/000000000000/home", &headers, b"");
        assert_eq!(r.status, 404, "{}", r.text());
        assert_eq!(r.text(), "<UnknownOperationException/>");
        assert!(r.header("x-amzn-requestid").is_some());
    }
    // The same path with an Action is served as before.
    let r = raw(
        srv.addr,
        "GET",
        "/000000000000/home?Action=GetQueueUrl&QueueName=home",
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(xml_text(&r.text(), "QueueUrl")
        .unwrap()
        .ends_with("/000000000000/home"));
    // Actions that take no queue are refused on a queue URL, by GET and by POST.
    let get = raw(
        srv.addr,
        "GET",
        "/000000000000/home?Action=CreateQueue&QueueName=other",
        &[],
        b"",
    );
    let post = query_post(srv.addr, "/000000000000/home", "sqs", "Action=ListQueues");
    for (r, action) in [(get, "CreateQueue"), (post, "ListQueues")] {
        let xml = r.text();
        assert_eq!(r.status, 400, "{xml}");
        assert_eq!(xml_text(&xml, "Type").as_deref(), Some("Sender"), "{xml}");
        assert_eq!(xml_text(&xml, "Code").as_deref(), Some("InvalidAction"));
        assert_eq!(
            xml_text(&xml, "Message"),
            Some(format!(
                "The action {action} is not valid for this endpoint."
            ))
        );
    }
    let r = query_post(srv.addr, "/", "sqs", "Action=ListQueues");
    let xml = r.text();
    assert!(xml.contains("/000000000000/home</QueueUrl>"), "{xml}");
    assert!(
        !xml.contains("other"),
        "the refused CreateQueue made a queue: {xml}"
    );
    rt.block_on(srv.stop());
}

#[test]
fn query_protocol_speaks_xml_and_accepts_posts_to_the_queue_path() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt.block_on(TestServer::start());
    let r = query_post(srv.addr, "/", "sqs", "Action=CreateQueue&QueueName=legacy&Attribute.1.Name=DelaySeconds&Attribute.1.Value=0&Version=2012-11-05");
    assert_eq!(r.status, 200, "{}", r.text());
    let url = xml_text(&r.text(), "QueueUrl").unwrap();
    assert!(url.ends_with("/000000000000/legacy"), "{url}");
    // POST to the queue's path, QueueUrl implied.
    let r = query_post(
        srv.addr,
        "/000000000000/legacy",
        "sqs",
        "Action=SendMessage&MessageBody=hi%20there&MessageAttribute.1.Name=k&MessageAttribute.1.Value.DataType=String&MessageAttribute.1.Value.StringValue=v",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let xml = r.text();
    assert!(xml.contains("<SendMessageResponse xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\"><SendMessageResult>"), "{xml}");
    assert_eq!(
        xml_text(&xml, "MD5OfMessageBody").as_deref(),
        Some(md5_hex("hi there").as_str())
    );
    let r = query_post(
        srv.addr,
        "/000000000000/legacy",
        "sqs",
        "Action=ReceiveMessage&AttributeName.1=All&MessageAttributeName.1=All",
    );
    let xml = r.text();
    assert!(
        xml.contains("<ReceiveMessageResult><Message><MessageId>"),
        "{xml}"
    );
    assert!(xml.contains("<Body>hi there</Body>"), "{xml}");
    assert!(
        xml.contains("<Attribute><Name>ApproximateReceiveCount</Name><Value>1</Value></Attribute>"),
        "{xml}"
    );
    assert!(xml.contains("<MessageAttribute><Name>k</Name><Value><StringValue>v</StringValue><DataType>String</DataType></Value></MessageAttribute>"), "{xml}");
    // Unknown queue: the legacy code.
    let r = query_post(
        srv.addr,
        "/000000000000/nope",
        "sqs",
        "Action=GetQueueAttributes&AttributeName.1=All",
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        xml_text(&r.text(), "Code").as_deref(),
        Some("AWS.SimpleQueueService.NonExistentQueue")
    );
    assert_eq!(
        xml_text(&r.text(), "Message").as_deref(),
        Some("The specified queue does not exist for this wsdl version.")
    );
    // And over JSON, the header carries the same legacy code.
    let r = json_post(
        srv.addr,
        "AmazonSQS.GetQueueUrl",
        "application/x-amz-json-1.0",
        br#"{"QueueName":"nope"}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["__type"], "com.amazonaws.sqs#QueueDoesNotExist");
    assert_eq!(r.json()["message"], "The specified queue does not exist.");
    assert_eq!(
        r.header("x-amzn-query-error"),
        Some("AWS.SimpleQueueService.NonExistentQueue;Sender")
    );
    rt.block_on(srv.stop());
}
