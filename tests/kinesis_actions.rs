//! Every Kinesis action through aws-sdk-kinesis, so each output is checked against the SDK's
//! own deserializers (shapes, types, enums), plus throughput limits through the broker flag.

mod common;

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    EncryptionType, MetricsName, MinimumThroughputBillingCommitmentInput,
    MinimumThroughputBillingCommitmentInputStatus, PutRecordsRequestEntry, ScalingType,
    ShardFilter, ShardFilterType, ShardIteratorType, StreamMode, StreamModeDetails, StreamStatus,
};
use common::*;

const ACCOUNT: &str = "000000000000";

fn arn(name: &str) -> String {
    format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_configuration_actions() {
    let srv = TestServer::start().await;
    let c = kinesis(&srv.endpoint());
    c.create_stream()
        .stream_name("cfg")
        .shard_count(2)
        .tags("team", "a")
        .send()
        .await
        .unwrap();
    let s = c
        .describe_stream_summary()
        .stream_name("cfg")
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap();
    assert_eq!(s.stream_status, StreamStatus::Active);
    assert_eq!(s.open_shard_count, 2);
    assert_eq!(s.retention_period_hours, 24);
    assert_eq!(s.stream_arn, arn("cfg"));
    assert_eq!(s.encryption_type, Some(EncryptionType::None));
    assert_eq!(s.max_record_size_in_kib, Some(1024));
    assert_eq!(
        s.stream_mode_details.unwrap().stream_mode,
        StreamMode::Provisioned
    );
    assert!(s.stream_creation_timestamp.secs() > 1_600_000_000);

    c.increase_stream_retention_period()
        .stream_name("cfg")
        .retention_period_hours(72)
        .send()
        .await
        .unwrap();
    c.decrease_stream_retention_period()
        .stream_arn(arn("cfg"))
        .retention_period_hours(48)
        .send()
        .await
        .unwrap();
    let err = c
        .increase_stream_retention_period()
        .stream_name("cfg")
        .retention_period_hours(24)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_argument_exception(), "{err:?}");

    c.start_stream_encryption()
        .stream_name("cfg")
        .encryption_type(EncryptionType::Kms)
        .key_id("alias/aws/kinesis")
        .send()
        .await
        .unwrap();
    let d = c
        .describe_stream()
        .stream_name("cfg")
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    assert_eq!(d.encryption_type, Some(EncryptionType::Kms));
    assert_eq!(d.key_id.as_deref(), Some("alias/aws/kinesis"));
    assert_eq!(d.retention_period_hours, 48);
    let put = c
        .put_record()
        .stream_name("cfg")
        .partition_key("p")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.encryption_type, Some(EncryptionType::Kms));
    c.stop_stream_encryption()
        .stream_name("cfg")
        .encryption_type(EncryptionType::Kms)
        .key_id("alias/aws/kinesis")
        .send()
        .await
        .unwrap();

    let m = c
        .enable_enhanced_monitoring()
        .stream_name("cfg")
        .shard_level_metrics(MetricsName::IncomingBytes)
        .shard_level_metrics(MetricsName::OutgoingRecords)
        .send()
        .await
        .unwrap();
    assert_eq!(m.current_shard_level_metrics.unwrap_or_default(), vec![]);
    assert_eq!(m.desired_shard_level_metrics.unwrap_or_default().len(), 2);
    let m = c
        .disable_enhanced_monitoring()
        .stream_name("cfg")
        .shard_level_metrics(MetricsName::All)
        .send()
        .await
        .unwrap();
    assert_eq!(m.desired_shard_level_metrics.unwrap_or_default(), vec![]);

    c.update_max_record_size()
        .stream_arn(arn("cfg"))
        .max_record_size_in_kib(4096)
        .send()
        .await
        .unwrap();
    let big = vec![7u8; 3 << 20];
    c.put_record()
        .stream_name("cfg")
        .partition_key("p")
        .data(Blob::new(big.clone()))
        .send()
        .await
        .unwrap();

    // Tags, both APIs.
    c.add_tags_to_stream()
        .stream_name("cfg")
        .tags("env", "test")
        .send()
        .await
        .unwrap();
    c.tag_resource()
        .resource_arn(arn("cfg"))
        .tags("x", "1")
        .send()
        .await
        .unwrap();
    let t = c
        .list_tags_for_stream()
        .stream_name("cfg")
        .send()
        .await
        .unwrap();
    assert_eq!(t.tags.len(), 3);
    assert!(!t.has_more_tags);
    c.remove_tags_from_stream()
        .stream_name("cfg")
        .tag_keys("env")
        .send()
        .await
        .unwrap();
    c.untag_resource()
        .resource_arn(arn("cfg"))
        .tag_keys("x")
        .send()
        .await
        .unwrap();
    let t = c
        .list_tags_for_resource()
        .resource_arn(arn("cfg"))
        .send()
        .await
        .unwrap();
    let tags = t.tags.unwrap_or_default();
    assert_eq!(tags.len(), 1);
    assert_eq!(tags[0].key, "team");
    assert_eq!(tags[0].value.as_deref(), Some("a"));

    // Resource policies.
    let policy = r#"{"Version":"2012-10-17","Statement":[]}"#;
    c.put_resource_policy()
        .resource_arn(arn("cfg"))
        .policy(policy)
        .send()
        .await
        .unwrap();
    let p = c
        .get_resource_policy()
        .resource_arn(arn("cfg"))
        .send()
        .await
        .unwrap();
    assert_eq!(p.policy, policy);
    c.delete_resource_policy()
        .resource_arn(arn("cfg"))
        .send()
        .await
        .unwrap();

    // Limits and account settings.
    let l = c.describe_limits().send().await.unwrap();
    assert_eq!(l.open_shard_count, 2);
    assert_eq!(l.shard_limit, 20_000);
    assert_eq!(l.on_demand_stream_count, 0);
    let a = c.describe_account_settings().send().await.unwrap();
    assert!(a.minimum_throughput_billing_commitment.is_some());
    let a = c
        .update_account_settings()
        .minimum_throughput_billing_commitment(
            MinimumThroughputBillingCommitmentInput::builder()
                .status(MinimumThroughputBillingCommitmentInputStatus::Enabled)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let commit = a.minimum_throughput_billing_commitment.unwrap();
    assert!(commit.started_at.is_some());

    // Mode switch and warm throughput.
    c.update_stream_mode()
        .stream_arn(arn("cfg"))
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let w = c
        .update_stream_warm_throughput()
        .stream_name("cfg")
        .warm_throughput_mibps(50)
        .send()
        .await
        .unwrap();
    assert_eq!(w.warm_throughput.unwrap().target_mibps, Some(50));

    let listed = c.list_streams().send().await.unwrap();
    assert_eq!(listed.stream_names, vec!["cfg".to_string()]);
    assert!(!listed.has_more_streams);
    let summaries = listed.stream_summaries.unwrap_or_default();
    assert_eq!(summaries[0].stream_status, StreamStatus::Active);

    c.delete_stream().stream_name("cfg").send().await.unwrap();
    let err = c
        .describe_stream()
        .stream_name("cfg")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resharding_and_shard_listing() {
    let srv = TestServer::start().await;
    let c = kinesis(&srv.endpoint());
    c.create_stream()
        .stream_name("rs")
        .shard_count(2)
        .send()
        .await
        .unwrap();
    let u = c
        .update_shard_count()
        .stream_name("rs")
        .target_shard_count(3)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap();
    assert_eq!(u.current_shard_count, Some(2));
    assert_eq!(u.target_shard_count, Some(3));
    let open = c
        .list_shards()
        .stream_name("rs")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AtLatest)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .shards
        .unwrap_or_default();
    assert_eq!(open.len(), 3);
    for s in &open {
        assert!(s.parent_shard_id.is_some());
        assert!(s
            .sequence_number_range
            .as_ref()
            .unwrap()
            .ending_sequence_number
            .is_none());
    }
    // Page through all shards one at a time.
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = c.list_shards().max_results(1);
        req = match &token {
            Some(t) => req.next_token(t),
            None => req.stream_name("rs"),
        };
        let r = req.send().await.unwrap();
        ids.extend(r.shards.unwrap_or_default().into_iter().map(|s| s.shard_id));
        token = r.next_token;
        if token.is_none() {
            break;
        }
    }
    let all = c
        .list_shards()
        .stream_name("rs")
        .send()
        .await
        .unwrap()
        .shards
        .unwrap_or_default();
    assert_eq!(ids.len(), all.len());
    assert!(all.len() > 3);

    // Merge two adjacent open shards.
    let mut open = open;
    open.sort_by_key(|s| {
        s.hash_key_range
            .as_ref()
            .unwrap()
            .starting_hash_key
            .parse::<u128>()
            .unwrap()
    });
    c.merge_shards()
        .stream_name("rs")
        .shard_to_merge(&open[0].shard_id)
        .adjacent_shard_to_merge(&open[1].shard_id)
        .send()
        .await
        .unwrap();
    let d = c
        .describe_stream()
        .stream_name("rs")
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    let child = d.shards.last().unwrap();
    assert_eq!(
        child.parent_shard_id.as_deref(),
        Some(open[0].shard_id.as_str())
    );
    assert_eq!(
        child.adjacent_parent_shard_id.as_deref(),
        Some(open[1].shard_id.as_str())
    );
    let err = c
        .merge_shards()
        .stream_name("rs")
        .shard_to_merge(&open[0].shard_id)
        .adjacent_shard_to_merge(&open[1].shard_id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_argument_exception(), "{err:?}");

    // Reading a closed parent to its end yields its children and no next iterator.
    let it = c
        .get_shard_iterator()
        .stream_name("rs")
        .shard_id(&open[0].shard_id)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let r = c.get_records().shard_iterator(it).send().await.unwrap();
    assert!(r.next_shard_iterator.is_none());
    let kids = r.child_shards.unwrap_or_default();
    assert_eq!(kids.len(), 1);
    assert_eq!(kids[0].parent_shards.len(), 2);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_and_subscribe() {
    let srv = TestServer::start().await;
    let c = kinesis(&srv.endpoint());
    c.create_stream()
        .stream_name("fan")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    let reg = c
        .register_stream_consumer()
        .stream_arn(arn("fan"))
        .consumer_name("app")
        .send()
        .await
        .unwrap()
        .consumer
        .unwrap();
    assert_eq!(reg.consumer_name, "app");
    let d = c
        .describe_stream_consumer()
        .consumer_arn(&reg.consumer_arn)
        .send()
        .await
        .unwrap()
        .consumer_description
        .unwrap();
    assert_eq!(d.stream_arn, arn("fan"));
    assert_eq!(d.consumer_status.as_str(), "ACTIVE");
    let l = c
        .list_stream_consumers()
        .stream_arn(arn("fan"))
        .send()
        .await
        .unwrap();
    assert_eq!(l.consumers.unwrap_or_default().len(), 1);
    let err = c
        .delete_stream()
        .stream_name("fan")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_in_use_exception(), "{err:?}");
    c.deregister_stream_consumer()
        .consumer_arn(&reg.consumer_arn)
        .send()
        .await
        .unwrap();
    let err = c
        .describe_stream_consumer()
        .consumer_arn(&reg.consumer_arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    c.delete_stream().stream_name("fan").send().await.unwrap();
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_limits_with_the_broker_flag() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::spawn(dir.path(), &["--kinesis-limits"]);
    // The SDK retries throttling errors itself; turn that off to see them.
    let c = kinesis(&b.endpoint());
    let c = aws_sdk_kinesis::Client::from_conf(
        c.config()
            .to_builder()
            .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
            .build(),
    );
    c.create_stream()
        .stream_name("hot")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    // 1,000 records/s per shard: some record of ten quick 500-record batches is refused.
    let mut refused = None;
    for _ in 0..10 {
        let mut req = c.put_records().stream_name("hot");
        for i in 0..500 {
            req = req.records(
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("k{i}"))
                    .data(Blob::new("x"))
                    .build()
                    .unwrap(),
            );
        }
        let r = req.send().await.unwrap();
        if r.failed_record_count.unwrap_or(0) > 0 {
            refused = r
                .records
                .into_iter()
                .find(|e| e.error_code.is_some())
                .and_then(|e| e.error_code);
            break;
        }
    }
    assert_eq!(
        refused.as_deref(),
        Some("ProvisionedThroughputExceededException")
    );
    // Five GetRecords calls per second per shard.
    let it = c
        .get_shard_iterator()
        .stream_name("hot")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::Latest)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let mut throttled = false;
    for _ in 0..20 {
        match c.get_records().shard_iterator(&it).send().await {
            Ok(_) => {}
            Err(e) => {
                let e = e.into_service_error();
                assert!(e.is_provisioned_throughput_exceeded_exception(), "{e:?}");
                assert_eq!(e.code(), Some("ProvisionedThroughputExceededException"));
                throttled = true;
                break;
            }
        }
    }
    assert!(throttled);
    b.kill9();
}
