//! Kinesis state across `kill -9`: resharded lineage, closed and open shards, retention, tags,
//! consumers, records with their sequence numbers and arrival times, and iterators issued
//! before the kill (they keep working: they carry all their state and are under 5 minutes old).

mod common;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{ScalingType, ShardIteratorType};
use common::*;

async fn drain(c: &aws_sdk_kinesis::Client, iterator: String) -> Vec<(String, Vec<u8>, i64)> {
    let r = c
        .get_records()
        .shard_iterator(iterator)
        .send()
        .await
        .unwrap();
    r.records
        .into_iter()
        .map(|r| {
            (
                r.sequence_number,
                r.data.into_inner(),
                r.approximate_arrival_timestamp
                    .unwrap()
                    .to_millis()
                    .unwrap(),
            )
        })
        .collect()
}

async fn iterator(c: &aws_sdk_kinesis::Client, shard: &str) -> String {
    c.get_shard_iterator()
        .stream_name("k9")
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reshard_lineage_records_and_iterators_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::spawn(dir.path(), &[]);
    let c = kinesis(&b.endpoint());
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/k9";
    c.create_stream()
        .stream_name("k9")
        .shard_count(2)
        .send()
        .await
        .unwrap();
    for i in 0..50 {
        c.put_record()
            .stream_name("k9")
            .partition_key(format!("k{i}"))
            .data(Blob::new(format!("before-{i}")))
            .send()
            .await
            .unwrap();
    }
    c.update_shard_count()
        .stream_name("k9")
        .target_shard_count(3)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap();
    for i in 0..50 {
        c.put_record()
            .stream_name("k9")
            .partition_key(format!("k{i}"))
            .data(Blob::new(format!("after-{i}")))
            .send()
            .await
            .unwrap();
    }
    c.increase_stream_retention_period()
        .stream_name("k9")
        .retention_period_hours(100)
        .send()
        .await
        .unwrap();
    c.add_tags_to_stream()
        .stream_name("k9")
        .tags("owner", "me")
        .send()
        .await
        .unwrap();
    c.register_stream_consumer()
        .stream_arn(arn)
        .consumer_name("reader")
        .send()
        .await
        .unwrap();
    let shards = c
        .list_shards()
        .stream_name("k9")
        .send()
        .await
        .unwrap()
        .shards
        .unwrap();
    let mut before = Vec::new();
    let mut old_iterators = Vec::new();
    for s in &shards {
        let it = iterator(&c, &s.shard_id).await;
        old_iterators.push(it.clone());
        before.push(drain(&c, it).await);
    }
    let max_seq: u128 = before
        .iter()
        .flatten()
        .map(|(s, _, _)| s.parse::<u128>().unwrap())
        .max()
        .unwrap();
    assert_eq!(before.iter().map(Vec::len).sum::<usize>(), 100);
    b.kill9();

    let b = Broker::spawn(dir.path(), &[]);
    let c = kinesis(&b.endpoint());
    let again = c
        .list_shards()
        .stream_name("k9")
        .send()
        .await
        .unwrap()
        .shards
        .unwrap();
    assert_eq!(again, shards, "shards, hash ranges, lineage and closures");
    for ((s, expected), old) in shards.iter().zip(&before).zip(old_iterators) {
        assert_eq!(&drain(&c, iterator(&c, &s.shard_id).await).await, expected);
        assert_eq!(&drain(&c, old).await, expected, "pre-kill iterator");
    }
    let d = c
        .describe_stream_summary()
        .stream_name("k9")
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap();
    assert_eq!(d.retention_period_hours, 100);
    assert_eq!(d.open_shard_count, 3);
    assert_eq!(d.consumer_count, Some(1));
    let tags = c
        .list_tags_for_stream()
        .stream_name("k9")
        .send()
        .await
        .unwrap()
        .tags;
    assert_eq!(tags.len(), 1);
    // Numbers issued after the restart are above every number issued before it.
    for i in 0..20 {
        let r = c
            .put_record()
            .stream_name("k9")
            .partition_key(format!("k{i}"))
            .data(Blob::new("late"))
            .send()
            .await
            .unwrap();
        assert!(r.sequence_number.parse::<u128>().unwrap() > max_seq);
    }
    b.kill9();
}
