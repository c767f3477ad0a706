//! Kinesis through aws-sdk-kinesis (JSON 1.1), raw CBOR, and across `kill -9`.

mod common;

use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType, StreamStatus};
use common::*;

async fn active_stream(c: &aws_sdk_kinesis::Client, name: &str, shards: i32) {
    c.create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .unwrap();
    for _ in 0..200 {
        let d = c
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .unwrap();
        if d.stream_description_summary.unwrap().stream_status == StreamStatus::Active {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("stream {name} never became ACTIVE");
}

async fn read_all(
    c: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
    it: ShardIteratorType,
    seq: Option<&str>,
) -> Vec<(String, Vec<u8>)> {
    let mut req = c
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(it);
    if let Some(s) = seq {
        req = req.starting_sequence_number(s);
    }
    let mut iter = req.send().await.unwrap().shard_iterator;
    let mut out = Vec::new();
    while let Some(i) = iter {
        let r = c
            .get_records()
            .shard_iterator(i)
            .limit(10_000)
            .send()
            .await
            .unwrap();
        let n = r.records.len();
        out.extend(
            r.records
                .into_iter()
                .map(|r| (r.sequence_number, r.data.into_inner())),
        );
        if n == 0 || r.millis_behind_latest == Some(0) && n < 10_000 {
            break;
        }
        iter = r.next_shard_iterator;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_records_and_every_iterator_type() {
    let srv = TestServer::start().await;
    let c = kinesis(&srv.endpoint());
    active_stream(&c, "events", 1).await;
    let listed = c.list_streams().send().await.unwrap();
    assert_eq!(listed.stream_names, vec!["events".to_string()]);
    let d = c
        .describe_stream()
        .stream_name("events")
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    assert_eq!(d.shards.len(), 1);
    assert_eq!(d.shards[0].shard_id, "shardId-000000000000");
    assert_eq!(
        d.shards[0]
            .hash_key_range
            .as_ref()
            .unwrap()
            .starting_hash_key,
        "0"
    );
    assert_eq!(
        d.shards[0].hash_key_range.as_ref().unwrap().ending_hash_key,
        u128::MAX.to_string()
    );

    let mut seqs = Vec::new();
    for i in 0..5 {
        let r = c
            .put_record()
            .stream_name("events")
            .partition_key("k")
            .data(Blob::new(format!("r{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.shard_id, "shardId-000000000000");
        seqs.push(r.sequence_number);
    }
    let nums: Vec<u128> = seqs.iter().map(|s| s.parse().unwrap()).collect();
    assert!(nums.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let shard = "shardId-000000000000";
    let all = read_all(&c, "events", shard, ShardIteratorType::TrimHorizon, None).await;
    assert_eq!(
        all.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>(),
        (0..5)
            .map(|i| format!("r{i}").into_bytes())
            .collect::<Vec<_>>()
    );
    assert_eq!(all.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(), seqs);
    let at = read_all(
        &c,
        "events",
        shard,
        ShardIteratorType::AtSequenceNumber,
        Some(&seqs[2]),
    )
    .await;
    assert_eq!(at.len(), 3);
    assert_eq!(at[0].0, seqs[2]);
    let after = read_all(
        &c,
        "events",
        shard,
        ShardIteratorType::AfterSequenceNumber,
        Some(&seqs[2]),
    )
    .await;
    assert_eq!(after.len(), 2);
    let latest = read_all(&c, "events", shard, ShardIteratorType::Latest, None).await;
    assert!(latest.is_empty());
    let ts = c
        .get_shard_iterator()
        .stream_name("events")
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .timestamp(DateTime::from_secs(0))
        .send()
        .await
        .unwrap();
    let r = c
        .get_records()
        .shard_iterator(ts.shard_iterator.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.records.len(), 5);

    // Errors the SDK maps to typed variants.
    let err = c
        .describe_stream()
        .stream_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    let err = c
        .create_stream()
        .stream_name("events")
        .shard_count(1)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_in_use_exception(), "{err:?}");
    let err = c
        .get_shard_iterator()
        .stream_name("events")
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number("1234")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_argument_exception(), "{err:?}");
    // Not matching the model's pattern `0|([1-9]\d{0,128})` is a ValidationException on AWS.
    let err = c
        .get_shard_iterator()
        .stream_name("events")
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number("12x")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    use aws_sdk_kinesis::error::ProvideErrorMetadata;
    assert_eq!(err.code(), Some("ValidationException"), "{err:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_records_routes_by_md5_of_the_partition_key() {
    let srv = TestServer::start().await;
    let c = kinesis(&srv.endpoint());
    active_stream(&c, "routed", 4).await;
    let mut req = c.put_records().stream_name("routed");
    for i in 0..100 {
        req = req.records(
            PutRecordsRequestEntry::builder()
                .partition_key(format!("pk-{i}"))
                .data(Blob::new(vec![i as u8]))
                .build()
                .unwrap(),
        );
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.failed_record_count, Some(0));
    assert_eq!(r.records.len(), 100);
    for (i, rec) in r.records.iter().enumerate() {
        use md5::{Digest, Md5};
        let h = u128::from_be_bytes(Md5::digest(format!("pk-{i}").as_bytes()).into());
        let expected = (h / (u128::MAX / 4 + 1)) as usize;
        assert_eq!(
            rec.shard_id.as_deref(),
            Some(format!("shardId-{expected:012}").as_str()),
            "record {i}"
        );
    }
    srv.stop().await;
}

#[test]
fn cbor_put_is_read_by_json_and_json_put_by_cbor() {
    use ciborium::Value as C;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt.block_on(TestServer::start());
    let c = kinesis(&srv.endpoint());
    rt.block_on(active_stream(&c, "mixed", 1));
    let cbor = |v: C| {
        let mut out = Vec::new();
        ciborium::ser::into_writer(&v, &mut out).unwrap();
        out
    };
    let text = |s: &str| C::Text(s.into());
    let body = cbor(C::Map(vec![
        (text("StreamName"), text("mixed")),
        (text("PartitionKey"), text("p")),
        (text("Data"), C::Bytes(vec![0, 1, 2, 255])),
    ]));
    let r = json_post(
        srv.addr,
        "Kinesis_20131202.PutRecord",
        "application/x-amz-cbor-1.1",
        &body,
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.header("content-type"), Some("application/x-amz-cbor-1.1"));
    // JSON reads what CBOR wrote.
    let all = rt.block_on(read_all(
        &c,
        "mixed",
        "shardId-000000000000",
        ShardIteratorType::TrimHorizon,
        None,
    ));
    assert_eq!(all[0].1, vec![0, 1, 2, 255]);
    // JSON writes, CBOR reads: Data comes back as a byte string, the time as a tag-1 epoch.
    rt.block_on(
        c.put_record()
            .stream_name("mixed")
            .partition_key("p")
            .data(Blob::new(b"json".to_vec()))
            .send(),
    )
    .unwrap();
    let body = cbor(C::Map(vec![
        (text("StreamName"), text("mixed")),
        (text("ShardId"), text("shardId-000000000000")),
        (text("ShardIteratorType"), text("TRIM_HORIZON")),
    ]));
    let r = json_post(
        srv.addr,
        "Kinesis_20131202.GetShardIterator",
        "application/x-amz-cbor-1.1",
        &body,
    );
    let v: C = ciborium::de::from_reader(&r.body[..]).unwrap();
    let get = |v: &C, k: &str| {
        v.as_map()
            .unwrap()
            .iter()
            .find(|(mk, _)| mk.as_text() == Some(k))
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let iterator = get(&v, "ShardIterator");
    let r = json_post(
        srv.addr,
        "Kinesis_20131202.GetRecords",
        "application/x-amz-cbor-1.1",
        &cbor(C::Map(vec![(text("ShardIterator"), iterator)])),
    );
    assert_eq!(r.status, 200);
    let v: C = ciborium::de::from_reader(&r.body[..]).unwrap();
    let records = get(&v, "Records");
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(get(&records[1], "Data"), C::Bytes(b"json".to_vec()));
    // AWS's CBOR timestamps are integer epoch milliseconds (the Java SDK parses them with
    // Long.parseLong), not RFC 8949's seconds.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i128;
    match get(&records[1], "ApproximateArrivalTimestamp") {
        C::Tag(1, inner) => {
            let ms = i128::from(inner.as_integer().expect("an integer"));
            assert!((now_ms - ms).abs() < 60_000, "epoch millis, got {ms}");
        }
        other => panic!("a tag-1 timestamp, got {other:?}"),
    }
    // And requests carry them the same way: AT_TIMESTAMP a minute ago finds both records.
    let minute_ago = C::Integer(((now_ms - 60_000) as i64).into());
    let body = cbor(C::Map(vec![
        (text("StreamName"), text("mixed")),
        (text("ShardId"), text("shardId-000000000000")),
        (text("ShardIteratorType"), text("AT_TIMESTAMP")),
        (text("Timestamp"), C::Tag(1, Box::new(minute_ago))),
    ]));
    let r = json_post(
        srv.addr,
        "Kinesis_20131202.GetShardIterator",
        "application/x-amz-cbor-1.1",
        &body,
    );
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let v: C = ciborium::de::from_reader(&r.body[..]).unwrap();
    let r = json_post(
        srv.addr,
        "Kinesis_20131202.GetRecords",
        "application/x-amz-cbor-1.1",
        &cbor(C::Map(vec![(
            text("ShardIterator"),
            get(&v, "ShardIterator"),
        )])),
    );
    let v: C = ciborium::de::from_reader(&r.body[..]).unwrap();
    assert_eq!(get(&v, "Records").as_array().unwrap().len(), 2);
    rt.block_on(srv.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_shard_closes_the_parent_and_lists_children() {
    let srv = TestServer::start().await;
    let c = kinesis(&srv.endpoint());
    active_stream(&c, "split", 1).await;
    c.put_record()
        .stream_name("split")
        .partition_key("a")
        .data(Blob::new("before"))
        .send()
        .await
        .unwrap();
    c.split_shard()
        .stream_name("split")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((u128::MAX / 2 + 1).to_string())
        .send()
        .await
        .unwrap();
    let mut shards = Vec::new();
    for _ in 0..200 {
        let r = c.list_shards().stream_name("split").send().await;
        if let Ok(r) = r {
            shards = r.shards.unwrap_or_default();
            if shards.len() == 3 {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(shards.len(), 3);
    let parent = &shards[0];
    assert!(parent
        .sequence_number_range
        .as_ref()
        .unwrap()
        .ending_sequence_number
        .is_some());
    for child in &shards[1..] {
        assert_eq!(
            child.parent_shard_id.as_deref(),
            Some("shardId-000000000000")
        );
    }
    // The parent still serves its record, then ends with its children.
    let it = c
        .get_shard_iterator()
        .stream_name("split")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let mut it = Some(it);
    let mut got = Vec::new();
    let mut children = Vec::new();
    for _ in 0..5 {
        let Some(i) = it.take() else { break };
        let r = c.get_records().shard_iterator(i).send().await.unwrap();
        got.extend(r.records.into_iter().map(|r| r.data.into_inner()));
        children.extend(r.child_shards.unwrap_or_default());
        it = r.next_shard_iterator;
    }
    assert_eq!(got, vec![b"before".to_vec()]);
    assert!(
        it.is_none(),
        "a closed shard's last page has no NextShardIterator"
    );
    assert_eq!(children.len(), 2);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_and_sequence_numbers_survive_sigkill_across_many_segments() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::spawn(dir.path(), &["--segment-bytes", "1048576"]);
    let c = kinesis(&b.endpoint());
    active_stream(&c, "replay", 1).await;
    let total = 100_000usize;
    let mut seqs = Vec::with_capacity(total);
    for chunk in 0..total / 500 {
        let mut req = c.put_records().stream_name("replay");
        for i in 0..500 {
            let n = chunk * 500 + i;
            req = req.records(
                PutRecordsRequestEntry::builder()
                    .partition_key("p")
                    .data(Blob::new(format!("{n:08}")))
                    .build()
                    .unwrap(),
            );
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.failed_record_count, Some(0));
        seqs.extend(r.records.into_iter().map(|r| r.sequence_number.unwrap()));
    }
    b.kill9();

    let b = Broker::spawn(dir.path(), &["--segment-bytes", "1048576"]);
    let c = kinesis(&b.endpoint());
    let shard = "shardId-000000000000";
    let all = read_all(&c, "replay", shard, ShardIteratorType::TrimHorizon, None).await;
    assert_eq!(all.len(), total);
    assert_eq!(all.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(), seqs);
    assert_eq!(all[77_777].1, b"00077777".to_vec());
    let from = read_all(
        &c,
        "replay",
        shard,
        ShardIteratorType::AtSequenceNumber,
        Some(&seqs[99_990]),
    )
    .await;
    assert_eq!(from.len(), 10);
    let next = c
        .put_record()
        .stream_name("replay")
        .partition_key("p")
        .data(Blob::new("after"))
        .send()
        .await
        .unwrap();
    assert!(
        next.sequence_number.parse::<u128>().unwrap()
            > seqs.last().unwrap().parse::<u128>().unwrap()
    );
    b.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_throughput_figures_throttle_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::spawn(dir.path(), &["--kinesis-limits", "records=2"]);
    let c = kinesis(&b.endpoint());
    active_stream(&c, "tight", 1).await;
    let mut req = c.put_records().stream_name("tight");
    for i in 0..5 {
        req = req.records(
            PutRecordsRequestEntry::builder()
                .partition_key(format!("k{i}"))
                .data(Blob::new("x"))
                .build()
                .unwrap(),
        );
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.failed_record_count, Some(3), "{r:?}");
    let throttled: Vec<_> = r
        .records
        .iter()
        .filter_map(|e| e.error_code.as_deref())
        .collect();
    assert!(
        throttled
            .iter()
            .all(|c| *c == "ProvisionedThroughputExceededException"),
        "{throttled:?}"
    );
    b.kill9();
}
