//! SubscribeToShard over HTTP: the AWS event stream read by aws-sdk-kinesis's own event
//! receiver, validation errors as ordinary error responses, an error mid-stream as an exception
//! message, and the raw frames of a CBOR subscription decoded with our own decoder.

mod common;

use std::time::Duration;

use aws_sdk_kinesis::operation::subscribe_to_shard::SubscribeToShardOutput;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    ConsumerStatus, ShardIteratorType, StartingPosition, SubscribeToShardEventStream,
};
use common::*;
use millpond::protocol::eventstream;

const ACCOUNT: &str = "000000000000";
const SHARD: &str = "shardId-000000000000";

fn arn(name: &str) -> String {
    format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{name}")
}

/// Creates a one-shard stream with an ACTIVE consumer; returns the consumer ARN.
async fn stream_with_consumer(c: &aws_sdk_kinesis::Client, name: &str) -> String {
    c.create_stream()
        .stream_name(name)
        .shard_count(1)
        .send()
        .await
        .unwrap();
    let consumer = c
        .register_stream_consumer()
        .stream_arn(arn(name))
        .consumer_name("app")
        .send()
        .await
        .unwrap()
        .consumer
        .unwrap();
    for _ in 0..100 {
        let d = c
            .describe_stream_consumer()
            .consumer_arn(&consumer.consumer_arn)
            .send()
            .await
            .unwrap()
            .consumer_description
            .unwrap();
        if d.consumer_status == ConsumerStatus::Active {
            return consumer.consumer_arn;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("consumer never became ACTIVE");
}

fn trim_horizon() -> StartingPosition {
    StartingPosition::builder()
        .r#type(ShardIteratorType::TrimHorizon)
        .build()
        .unwrap()
}

/// A SubscribeToShard request for `consumer` on shard `shard` from `from`, ready to send.
fn subscribe(
    c: &aws_sdk_kinesis::Client,
    consumer: &str,
    shard: &str,
    from: StartingPosition,
) -> aws_sdk_kinesis::operation::subscribe_to_shard::builders::SubscribeToShardFluentBuilder {
    c.subscribe_to_shard()
        .consumer_arn(consumer)
        .shard_id(shard)
        .starting_position(from)
}

async fn put(c: &aws_sdk_kinesis::Client, stream: &str, data: &str) -> String {
    c.put_record()
        .stream_name(stream)
        .partition_key("k")
        .data(Blob::new(data.as_bytes()))
        .send()
        .await
        .unwrap()
        .sequence_number
}

/// Reads events until `want` records arrived in all (empty heartbeats may come in between),
/// keeping the last continuation number.
async fn recv_until(
    out: &mut SubscribeToShardOutput,
    want: usize,
    got: &mut Vec<(String, Vec<u8>)>,
    continuation: &mut String,
) {
    while got.len() < want {
        let ev = tokio::time::timeout(Duration::from_secs(10), out.event_stream.recv())
            .await
            .expect("an event in time")
            .expect("no stream error")
            .expect("stream still open");
        let SubscribeToShardEventStream::SubscribeToShardEvent(ev) = ev else {
            panic!("unexpected event {ev:?}");
        };
        assert_eq!(ev.millis_behind_latest, 0);
        assert!(ev.child_shards.is_none());
        for r in &ev.records {
            assert_eq!(r.partition_key.as_deref(), Some("k"));
            assert!(r.approximate_arrival_timestamp.is_some());
            got.push((r.sequence_number.clone(), r.data.as_ref().to_vec()));
        }
        *continuation = ev.continuation_sequence_number;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_receives_records_from_the_event_stream() {
    let srv = TestServer::start().await;
    let c = kinesis(&srv.endpoint());
    let consumer = stream_with_consumer(&c, "sub").await;
    let s1 = put(&c, "sub", "one").await;
    let s2 = put(&c, "sub", "two").await;

    let mut out = subscribe(&c, &consumer, SHARD, trim_horizon())
        .send()
        .await
        .unwrap();

    let mut got = Vec::new();
    let mut continuation = String::new();
    recv_until(&mut out, 2, &mut got, &mut continuation).await;
    assert_eq!(
        got,
        vec![(s1, b"one".to_vec()), (s2.clone(), b"two".to_vec())]
    );
    assert_eq!(continuation, s2);

    // A record put while subscribed arrives on the open stream.
    let s3 = put(&c, "sub", "three").await;
    recv_until(&mut out, 3, &mut got, &mut continuation).await;
    assert_eq!(got[2], (s3.clone(), b"three".to_vec()));
    assert_eq!(continuation, s3);
    drop(out);

    // The same consumer and shard again within 5 seconds of the first call: refused, as the
    // API reference says, whether or not the first connection is still open.
    let err = subscribe(&c, &consumer, SHARD, trim_horizon())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_in_use_exception(), "{err:?}");

    // Resuming after the continuation number (as another consumer, which has its own
    // subscription) starts with what came next.
    let other = c
        .register_stream_consumer()
        .stream_arn(arn("sub"))
        .consumer_name("resumer")
        .send()
        .await
        .unwrap()
        .consumer
        .unwrap()
        .consumer_arn;
    let s4 = put(&c, "sub", "four").await;
    let after_s3 = StartingPosition::builder()
        .r#type(ShardIteratorType::AfterSequenceNumber)
        .sequence_number(&s3)
        .build()
        .unwrap();
    let mut again = subscribe(&c, &other, SHARD, after_s3).send().await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), again.event_stream.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let SubscribeToShardEventStream::SubscribeToShardEvent(ev) = ev else {
        panic!("unexpected event {ev:?}");
    };
    assert_eq!(ev.records.len(), 1);
    assert_eq!(ev.records[0].sequence_number, s4);
    assert_eq!(ev.records[0].data.as_ref(), b"four");

    // Splitting the shard ends the stream with the children and no continuation (the SDK
    // fills the missing required member with ""), which is how consumers see a shard end.
    c.split_shard()
        .stream_name("sub")
        .shard_to_split(SHARD)
        .new_starting_hash_key("1000")
        .send()
        .await
        .unwrap();
    let last = loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), again.event_stream.recv())
            .await
            .expect("an event in time")
            .expect("no stream error")
            .expect("the children come before the end");
        let SubscribeToShardEventStream::SubscribeToShardEvent(ev) = ev else {
            panic!("unexpected event {ev:?}");
        };
        if ev.child_shards.is_some() {
            break ev;
        }
    };
    assert_eq!(last.child_shards.map(|c| c.len()), Some(2));
    assert_eq!(last.continuation_sequence_number, "");
    assert!(again.event_stream.recv().await.unwrap().is_none());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_are_ordinary_responses_and_failures_end_the_stream() {
    let srv = TestServer::start().await;
    let c = kinesis(&srv.endpoint());
    let consumer = stream_with_consumer(&c, "gone").await;

    let err = subscribe(&c, &consumer, "shardId-000000000007", trim_horizon())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    let no_number = StartingPosition::builder()
        .r#type(ShardIteratorType::AtSequenceNumber)
        .build()
        .unwrap();
    let err = subscribe(&c, &consumer, SHARD, no_number)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_argument_exception(), "{err:?}");

    // The stream is deleted under an open subscription: the event stream ends with the error.
    let mut out = subscribe(&c, &consumer, SHARD, trim_horizon())
        .send()
        .await
        .unwrap();
    let first = out.event_stream.recv().await.unwrap().unwrap();
    assert!(first.is_subscribe_to_shard_event(), "{first:?}");
    c.delete_stream()
        .stream_name("gone")
        .enforce_consumer_deletion(true)
        .send()
        .await
        .unwrap();
    let err = loop {
        match tokio::time::timeout(Duration::from_secs(15), out.event_stream.recv())
            .await
            .expect("the subscription notices the deletion")
        {
            Ok(Some(_heartbeat)) => continue,
            Ok(None) => panic!("stream ended without an exception"),
            Err(e) => break e.into_service_error(),
        }
    };
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    assert!(out.event_stream.recv().await.unwrap().is_none());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cbor_subscription_frames_decode_and_end_at_the_closed_shard() {
    let srv = TestServer::start().await;
    let c = kinesis(&srv.endpoint());
    let consumer = stream_with_consumer(&c, "raw").await;
    let s1 = put(&c, "raw", "hello").await;
    // Closing the shard makes the subscription end after its last records, so the raw client
    // can read the response to its end.
    c.split_shard()
        .stream_name("raw")
        .shard_to_split(SHARD)
        .new_starting_hash_key("1000")
        .send()
        .await
        .unwrap();

    let mut body = Vec::new();
    ciborium::ser::into_writer(
        &ciborium::Value::Map(vec![
            ("ConsumerARN".into(), consumer.as_str().into()),
            ("ShardId".into(), SHARD.into()),
            (
                "StartingPosition".into(),
                ciborium::Value::Map(vec![("Type".into(), "TRIM_HORIZON".into())]),
            ),
        ]),
        &mut body,
    )
    .unwrap();
    let addr = srv.addr;
    let resp = tokio::task::spawn_blocking(move || {
        raw(
            addr,
            "POST",
            "/",
            &[
                ("X-Amz-Target", "Kinesis_20131202.SubscribeToShard"),
                ("Content-Type", "application/x-amz-cbor-1.1"),
            ],
            &body,
        )
    })
    .await
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("content-type"),
        Some("application/vnd.amazon.eventstream")
    );
    let messages = eventstream::decode_all(&resp.body).unwrap();
    let cbor = "application/x-amz-cbor-1.1";
    let first = &messages[0];
    assert_eq!(first.header(":message-type"), Some("event"));
    assert_eq!(first.header(":event-type"), Some("initial-response"));
    assert_eq!(first.header(":content-type"), Some(cbor));

    let mut records = Vec::new();
    let mut children = None;
    for m in &messages[1..] {
        assert_eq!(m.header(":message-type"), Some("event"));
        assert_eq!(m.header(":event-type"), Some("SubscribeToShardEvent"));
        assert_eq!(m.header(":content-type"), Some(cbor));
        let ev: ciborium::Value = ciborium::de::from_reader(&m.payload[..]).unwrap();
        let field = |v: &ciborium::Value, name: &str| {
            v.as_map()
                .unwrap()
                .iter()
                .find(|(k, _)| k.as_text() == Some(name))
                .map(|(_, v)| v.clone())
        };
        for r in field(&ev, "Records").unwrap().as_array().unwrap() {
            // Blobs are byte strings and timestamps tag-1 epoch times, as AWS's CBOR has them.
            assert_eq!(
                field(r, "Data"),
                Some(ciborium::Value::Bytes(b"hello".to_vec()))
            );
            assert!(matches!(
                field(r, "ApproximateArrivalTimestamp"),
                Some(ciborium::Value::Tag(1, _))
            ));
            records.push(field(r, "SequenceNumber").unwrap().into_text().unwrap());
        }
        if let Some(c) = field(&ev, "ChildShards") {
            children = Some(c.as_array().unwrap().len());
        }
    }
    assert_eq!(records, vec![s1]);
    assert_eq!(children, Some(2), "the last event lists the child shards");

    // A validation error is an ordinary CBOR error response, not a stream.
    let mut body = Vec::new();
    ciborium::ser::into_writer(
        &ciborium::Value::Map(vec![("ShardId".into(), SHARD.into())]),
        &mut body,
    )
    .unwrap();
    let resp = tokio::task::spawn_blocking(move || {
        raw(
            addr,
            "POST",
            "/",
            &[
                ("X-Amz-Target", "Kinesis_20131202.SubscribeToShard"),
                ("Content-Type", "application/x-amz-cbor-1.1"),
            ],
            &body,
        )
    })
    .await
    .unwrap();
    assert_eq!(resp.status, 400);
    assert_eq!(resp.header("content-type"), Some(cbor));
    assert_eq!(resp.header("x-amzn-errortype"), Some("ValidationException"));
    srv.stop().await;
}

/// Over HTTP/2 (as AWS serves SubscribeToShard), each event reaches the client as it happens,
/// not when the response ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_frames_arrive_as_records_are_put() {
    use http_body_util::BodyExt;
    let srv = TestServer::start().await;
    let c = kinesis(&srv.endpoint());
    let consumer = stream_with_consumer(&c, "h2").await;
    let stream = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .expect("h2c handshake");
    tokio::spawn(conn);
    let doc = serde_json::json!({"ConsumerARN": consumer, "ShardId": SHARD,
                                 "StartingPosition": {"Type": "LATEST"}});
    let req = hyper::Request::post(format!("http://{}/", srv.addr))
        .header("x-amz-target", "Kinesis_20131202.SubscribeToShard")
        .header("content-type", "application/x-amz-json-1.1")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            doc.to_string(),
        )))
        .unwrap();
    let resp = send.send_request(req).await.expect("h2 response");
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.amazon.eventstream"
    );
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    // Reads frames until one whole message is buffered, and returns it.
    async fn next_message(
        body: &mut hyper::body::Incoming,
        buf: &mut Vec<u8>,
    ) -> eventstream::Message {
        loop {
            match eventstream::decode(buf) {
                Ok((m, used)) => {
                    buf.drain(..used);
                    return m;
                }
                Err(eventstream::DecodeError::Incomplete(_)) => {}
                Err(e) => panic!("bad frame: {e}"),
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
                .await
                .expect("a frame in time")
                .expect("body still open")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                buf.extend_from_slice(&data);
            }
        }
    }
    let first = next_message(&mut body, &mut buf).await;
    assert_eq!(first.header(":event-type"), Some("initial-response"));
    assert_eq!(first.header(":content-type"), Some("application/json"));
    assert_eq!(first.payload, b"{}");
    // At LATEST with nothing new, the first event is empty.
    let empty = next_message(&mut body, &mut buf).await;
    assert_eq!(empty.header(":event-type"), Some("SubscribeToShardEvent"));
    let ev: serde_json::Value = serde_json::from_slice(&empty.payload).unwrap();
    assert_eq!(ev["Records"], serde_json::json!([]));

    let seq = put(&c, "h2", "live").await;
    let m = next_message(&mut body, &mut buf).await;
    let ev: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(ev["Records"][0]["SequenceNumber"], seq.as_str());
    assert_eq!(ev["Records"][0]["Data"], "bGl2ZQ==");
    assert!(ev["Records"][0]["ApproximateArrivalTimestamp"].is_number());
    assert_eq!(ev["ContinuationSequenceNumber"], seq.as_str());
    drop(body);
    drop(send);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_subscriptions() {
    let srv = TestServer::start().await;
    let c = kinesis(&srv.endpoint());
    let consumer = stream_with_consumer(&c, "open").await;
    let mut out = subscribe(&c, &consumer, SHARD, trim_horizon())
        .send()
        .await
        .unwrap();
    out.event_stream.recv().await.unwrap().unwrap();
    // The client keeps reading; a graceful shutdown must not wait out the 5-minute subscription.
    let reader =
        tokio::spawn(async move { while let Ok(Some(_)) = out.event_stream.recv().await {} });
    tokio::time::timeout(Duration::from_secs(3), srv.stop())
        .await
        .expect("shutdown does not wait for open subscriptions");
    tokio::time::timeout(Duration::from_secs(3), reader)
        .await
        .expect("the client sees its stream end")
        .unwrap();
}
