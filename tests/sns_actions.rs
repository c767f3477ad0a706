//! SNS through aws-sdk-sns (query protocol) for the actions that need no other service: every
//! action's request and response shapes survive the XML round trip, and AWS's error codes map
//! to the SDK's typed exceptions.

mod common;

use std::time::Duration;

use aws_sdk_sns::error::ProvideErrorMetadata;
use aws_sdk_sns::types::{
    LanguageCodeString, MessageAttributeValue, PublishBatchRequestEntry, Tag,
};
use common::*;

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_actions_and_their_errors() {
    let srv = TestServer::start().await;
    let c = sns(&srv.endpoint());
    let arn = c
        .create_topic()
        .name("t1")
        .attributes("DisplayName", "One")
        .tags(tag("team", "a"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let fifo = c
        .create_topic()
        .name("t2.fifo")
        .attributes("FifoTopic", "true")
        .attributes("ContentBasedDeduplication", "true")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let attrs = c
        .get_topic_attributes()
        .topic_arn(&fifo)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(attrs["FifoTopic"], "true");
    assert_eq!(attrs["ContentBasedDeduplication"], "true");
    assert_eq!(attrs["SubscriptionsConfirmed"], "0");

    let e = c.create_topic().name("bad name").send().await.unwrap_err();
    assert_eq!(e.code(), Some("InvalidParameter"));
    assert!(e
        .as_service_error()
        .unwrap()
        .is_invalid_parameter_exception());
    assert_eq!(e.message(), Some("Invalid parameter: Topic Name"));

    let e = c
        .get_topic_attributes()
        .topic_arn("arn:aws:sns:us-east-1:000000000000:nope")
        .send()
        .await
        .unwrap_err();
    assert!(
        e.as_service_error().unwrap().is_not_found_exception(),
        "{e:?}"
    );
    assert_eq!(e.message(), Some("Topic does not exist"));
    let e = c
        .get_topic_attributes()
        .topic_arn("arn:aws:sns:us-east-1:123456789012:other")
        .send()
        .await
        .unwrap_err();
    assert!(
        e.as_service_error()
            .unwrap()
            .is_authorization_error_exception(),
        "{e:?}"
    );

    // Tags.
    c.tag_resource()
        .resource_arn(&arn)
        .tags(tag("env", "test"))
        .send()
        .await
        .unwrap();
    c.untag_resource()
        .resource_arn(&arn)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let tags = c
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap();
    assert_eq!(tags, vec![tag("env", "test")]);
    let e = c
        .list_tags_for_resource()
        .resource_arn("arn:aws:sns:us-east-1:000000000000:nope")
        .send()
        .await
        .unwrap_err();
    assert!(
        e.as_service_error()
            .unwrap()
            .is_resource_not_found_exception(),
        "{e:?}"
    );

    // Permissions and data protection.
    c.add_permission()
        .topic_arn(&arn)
        .label("pub")
        .aws_account_id("111122223333")
        .action_name("Publish")
        .send()
        .await
        .unwrap();
    let policy = c
        .get_topic_attributes()
        .topic_arn(&arn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove("Policy")
        .unwrap();
    assert!(policy.contains("\"Sid\":\"pub\""), "{policy}");
    c.remove_permission()
        .topic_arn(&arn)
        .label("pub")
        .send()
        .await
        .unwrap();
    let dpp = r#"{"Name":"p","Version":"2021-06-01","Statement":[]}"#;
    c.put_data_protection_policy()
        .resource_arn(&arn)
        .data_protection_policy(dpp)
        .send()
        .await
        .unwrap();
    let got = c
        .get_data_protection_policy()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(got.data_protection_policy.as_deref(), Some(dpp));

    c.delete_topic().topic_arn(&fifo).send().await.unwrap();
    let topics = c.list_topics().send().await.unwrap().topics.unwrap();
    assert_eq!(topics.len(), 1);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_actions_and_filter_policy_errors() {
    let srv = TestServer::start().await;
    let c = sns(&srv.endpoint());
    let arn = c
        .create_topic()
        .name("subs")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let sub = c
        .subscribe()
        .topic_arn(&arn)
        .protocol("email")
        .endpoint("someone@example.com")
        .return_subscription_arn(true)
        .send()
        .await
        .unwrap()
        .subscription_arn
        .unwrap();
    assert!(sub.starts_with(&arn));
    let attrs = c
        .get_subscription_attributes()
        .subscription_arn(&sub)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(attrs["PendingConfirmation"], "true");
    assert_eq!(attrs["Protocol"], "email");

    let lambda = c
        .subscribe()
        .topic_arn(&arn)
        .protocol("lambda")
        .endpoint("arn:aws:lambda:us-east-1:000000000000:function:f")
        .attributes("FilterPolicy", r#"{"kind":[{"prefix":"or"}]}"#)
        .send()
        .await
        .unwrap()
        .subscription_arn
        .unwrap();
    c.set_subscription_attributes()
        .subscription_arn(&lambda)
        .attribute_name("FilterPolicy")
        .attribute_value(r#"{"n":[{"numeric":[">",0,"<=",10]}]}"#)
        .send()
        .await
        .unwrap();
    let e = c
        .set_subscription_attributes()
        .subscription_arn(&lambda)
        .attribute_name("FilterPolicy")
        .attribute_value(r#"{"n":[{"numeric":[">",10,"<",1]}]}"#)
        .send()
        .await
        .unwrap_err();
    assert!(e
        .as_service_error()
        .unwrap()
        .is_invalid_parameter_exception());
    assert_eq!(
        e.message(),
        Some("Invalid parameter: FilterPolicy: Bottom must be less than top")
    );
    let e = c
        .subscribe()
        .topic_arn(&arn)
        .protocol("pigeon")
        .endpoint("x")
        .send()
        .await
        .unwrap_err();
    assert!(e
        .as_service_error()
        .unwrap()
        .is_invalid_parameter_exception());

    let listed = c
        .list_subscriptions_by_topic()
        .topic_arn(&arn)
        .send()
        .await
        .unwrap()
        .subscriptions
        .unwrap();
    assert_eq!(listed.len(), 2);
    let pending: Vec<_> = listed
        .iter()
        .filter(|s| s.subscription_arn.as_deref() == Some("PendingConfirmation"))
        .collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].endpoint.as_deref(), Some("someone@example.com"));
    let all = c.list_subscriptions().send().await.unwrap();
    assert_eq!(all.subscriptions.unwrap().len(), 2);
    assert!(all.next_token.is_none());

    let e = c
        .confirm_subscription()
        .topic_arn(&arn)
        .token("not-a-token")
        .send()
        .await
        .unwrap_err();
    assert!(e
        .as_service_error()
        .unwrap()
        .is_invalid_parameter_exception());

    c.unsubscribe()
        .subscription_arn(&lambda)
        .send()
        .await
        .unwrap();
    // A repeated Unsubscribe succeeds, as on AWS.
    c.unsubscribe()
        .subscription_arn(&lambda)
        .send()
        .await
        .unwrap();
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_errors_and_batches() {
    let srv = TestServer::start().await;
    let c = sns(&srv.endpoint());
    let arn = c
        .create_topic()
        .name("p")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let out = c
        .publish()
        .topic_arn(&arn)
        .message("m")
        .subject("s")
        .message_attributes(
            "n",
            MessageAttributeValue::builder()
                .data_type("Number")
                .string_value("1.5")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(out.message_id.is_some());
    assert!(out.sequence_number.is_none());

    let e = c
        .publish()
        .topic_arn(&arn)
        .message("m")
        .message_attributes(
            "n",
            MessageAttributeValue::builder()
                .data_type("Number")
                .string_value("one")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ParameterValueInvalid"));
    assert!(
        e.as_service_error()
            .unwrap()
            .is_invalid_parameter_value_exception(),
        "{e:?}"
    );
    let e = c
        .publish()
        .topic_arn(&arn)
        .message("")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.message(), Some("Invalid parameter: Empty message"));

    let fifo = c
        .create_topic()
        .name("p.fifo")
        .attributes("FifoTopic", "true")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let e = c
        .publish()
        .topic_arn(&fifo)
        .message("m")
        .send()
        .await
        .unwrap_err();
    assert!(e
        .as_service_error()
        .unwrap()
        .is_invalid_parameter_exception());
    let first = c
        .publish()
        .topic_arn(&fifo)
        .message("m")
        .message_group_id("g")
        .message_deduplication_id("d")
        .send()
        .await
        .unwrap();
    let again = c
        .publish()
        .topic_arn(&fifo)
        .message("m")
        .message_group_id("g")
        .message_deduplication_id("d")
        .send()
        .await
        .unwrap();
    assert_eq!(first.message_id, again.message_id);
    assert_eq!(first.sequence_number, again.sequence_number);
    assert_eq!(first.sequence_number.unwrap().len(), 20);

    let entry = |id: &str, msg: &str| {
        PublishBatchRequestEntry::builder()
            .id(id)
            .message(msg)
            .build()
            .unwrap()
    };
    let out = c
        .publish_batch()
        .topic_arn(&arn)
        .publish_batch_request_entries(entry("a", "one"))
        .publish_batch_request_entries(entry("b", ""))
        .send()
        .await
        .unwrap();
    let ok = out.successful.unwrap();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].id.as_deref(), Some("a"));
    let failed = out.failed.unwrap();
    assert_eq!(failed[0].id, "b");
    assert_eq!(failed[0].code, "InvalidParameter");
    assert!(failed[0].sender_fault);
    let e = c
        .publish_batch()
        .topic_arn(&arn)
        .publish_batch_request_entries(entry("a", "x"))
        .publish_batch_request_entries(entry("a", "y"))
        .send()
        .await
        .unwrap_err();
    assert!(
        e.as_service_error()
            .unwrap()
            .is_batch_entry_ids_not_distinct_exception(),
        "{e:?}"
    );
    let e = c
        .publish_batch()
        .topic_arn(&arn)
        .publish_batch_request_entries(entry("bad id!", "x"))
        .send()
        .await
        .unwrap_err();
    assert!(e
        .as_service_error()
        .unwrap()
        .is_invalid_batch_entry_id_exception());
    let mut eleven = c.publish_batch().topic_arn(&arn);
    for i in 0..11 {
        eleven = eleven.publish_batch_request_entries(entry(&format!("e{i}"), "x"));
    }
    let e = eleven.send().await.unwrap_err();
    assert!(e
        .as_service_error()
        .unwrap()
        .is_too_many_entries_in_batch_request_exception());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_and_sms_actions() {
    let srv = TestServer::start().await;
    let c = sns(&srv.endpoint());
    let app = c
        .create_platform_application()
        .name("app")
        .platform("GCM")
        .attributes("PlatformCredential", "key")
        .send()
        .await
        .unwrap()
        .platform_application_arn
        .unwrap();
    c.set_platform_application_attributes()
        .platform_application_arn(&app)
        .attributes("SuccessFeedbackSampleRate", "100")
        .send()
        .await
        .unwrap();
    let attrs = c
        .get_platform_application_attributes()
        .platform_application_arn(&app)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(attrs["Enabled"], "true");
    let apps = c.list_platform_applications().send().await.unwrap();
    assert_eq!(apps.platform_applications.unwrap().len(), 1);
    let ep = c
        .create_platform_endpoint()
        .platform_application_arn(&app)
        .token("device-token")
        .custom_user_data("user-1")
        .send()
        .await
        .unwrap()
        .endpoint_arn
        .unwrap();
    let eps = c
        .list_endpoints_by_platform_application()
        .platform_application_arn(&app)
        .send()
        .await
        .unwrap()
        .endpoints
        .unwrap();
    assert_eq!(eps[0].endpoint_arn.as_deref(), Some(ep.as_str()));
    assert_eq!(eps[0].attributes.as_ref().unwrap()["Token"], "device-token");
    c.publish()
        .target_arn(&ep)
        .message("push")
        .send()
        .await
        .unwrap();
    c.set_endpoint_attributes()
        .endpoint_arn(&ep)
        .attributes("Enabled", "false")
        .send()
        .await
        .unwrap();
    let e = c
        .publish()
        .target_arn(&ep)
        .message("push")
        .send()
        .await
        .unwrap_err();
    assert!(
        e.as_service_error()
            .unwrap()
            .is_endpoint_disabled_exception(),
        "{e:?}"
    );
    let a = c
        .get_endpoint_attributes()
        .endpoint_arn(&ep)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(a["Enabled"], "false");
    c.delete_endpoint().endpoint_arn(&ep).send().await.unwrap();
    c.delete_platform_application()
        .platform_application_arn(&app)
        .send()
        .await
        .unwrap();
    let e = c
        .get_platform_application_attributes()
        .platform_application_arn(&app)
        .send()
        .await
        .unwrap_err();
    assert!(e.as_service_error().unwrap().is_not_found_exception());

    c.set_sms_attributes()
        .attributes("DefaultSMSType", "Transactional")
        .send()
        .await
        .unwrap();
    let sms = c
        .get_sms_attributes()
        .attributes("DefaultSMSType")
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(sms["DefaultSMSType"], "Transactional");
    let out = c
        .check_if_phone_number_is_opted_out()
        .phone_number("+15555550100")
        .send()
        .await
        .unwrap();
    assert!(!out.is_opted_out);
    c.opt_in_phone_number()
        .phone_number("+15555550100")
        .send()
        .await
        .unwrap();
    let opted = c.list_phone_numbers_opted_out().send().await.unwrap();
    assert!(opted.phone_numbers.unwrap_or_default().is_empty());
    c.publish()
        .phone_number("+15555550100")
        .message("text")
        .send()
        .await
        .unwrap();
    let status = c.get_sms_sandbox_account_status().send().await.unwrap();
    assert!(!status.is_in_sandbox);
    c.create_sms_sandbox_phone_number()
        .phone_number("+15555550101")
        .language_code(LanguageCodeString::EnUs)
        .send()
        .await
        .unwrap();
    c.verify_sms_sandbox_phone_number()
        .phone_number("+15555550101")
        .one_time_password("123456")
        .send()
        .await
        .unwrap();
    let nums = c
        .list_sms_sandbox_phone_numbers()
        .send()
        .await
        .unwrap()
        .phone_numbers;
    assert_eq!(nums[0].phone_number.as_deref(), Some("+15555550101"));
    assert_eq!(
        nums[0].status.as_ref().map(|s| s.as_str()),
        Some("Verified")
    );
    c.delete_sms_sandbox_phone_number()
        .phone_number("+15555550101")
        .send()
        .await
        .unwrap();
    let e = c
        .delete_sms_sandbox_phone_number()
        .phone_number("+15555550101")
        .send()
        .await
        .unwrap_err();
    assert!(
        e.as_service_error()
            .unwrap()
            .is_resource_not_found_exception(),
        "{e:?}"
    );
    let orig = c.list_origination_numbers().send().await.unwrap();
    assert!(orig.phone_numbers.unwrap_or_default().is_empty());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_http_notifications_verify_against_the_served_key() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = TestServer::start().await;
    let c = sns(&srv.endpoint());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/h", listener.local_addr().unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
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
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map(|v| v.trim().parse().unwrap())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let _ = tx.send(String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into());
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
    let arn = c
        .create_topic()
        .name("signed")
        .attributes("SignatureVersion", "2")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    c.subscribe()
        .topic_arn(&arn)
        .protocol("http")
        .endpoint(&url)
        .send()
        .await
        .unwrap();
    let conf: serde_json::Value = serde_json::from_str(
        &tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(conf["SignatureVersion"], "2");
    // A 1024-bit key (the default) signs 128 bytes: 172 characters of base64.
    assert_eq!(conf["Signature"].as_str().unwrap().len(), 172);
    assert!(conf["SigningCertURL"]
        .as_str()
        .unwrap()
        .starts_with(&srv.endpoint()));
    // The SubscribeURL is the broker's own query endpoint: a plain GET confirms.
    let subscribe_url = conf["SubscribeURL"].as_str().unwrap();
    let path = subscribe_url
        .strip_prefix(&srv.endpoint())
        .unwrap()
        .to_string();
    let resp = tokio::task::spawn_blocking({
        let addr = srv.addr;
        move || raw(addr, "GET", &path, &[], b"")
    })
    .await
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.text().contains("<SubscriptionArn>"), "{}", resp.text());
    let subs = c
        .list_subscriptions_by_topic()
        .topic_arn(&arn)
        .send()
        .await
        .unwrap()
        .subscriptions
        .unwrap();
    assert_ne!(
        subs[0].subscription_arn.as_deref(),
        Some("PendingConfirmation")
    );
    c.publish()
        .topic_arn(&arn)
        .message("signed body")
        .send()
        .await
        .unwrap();
    let n: serde_json::Value = serde_json::from_str(
        &tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(n["Message"], "signed body");
    assert_eq!(n["SignatureVersion"], "2");
    srv.stop().await;
}
