//! The bus against a real NATS server (`NATS_URL`, default nats://127.0.0.1:4222). Each test has
//! its own subject prefix, so its own stream, and deletes the stream at the end.

use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use linkage_bus::{Bus, BusConfig, BusError, Delivered, ENVELOPE_VERSION, Envelope};
use serde_json::json;
use uuid::Uuid;

async fn bus() -> Bus {
    let config = BusConfig {
        url: std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
        prefix: format!("t{}", Uuid::new_v4().simple()),
        replicas: 1,
        duplicate_window: Duration::from_secs(60),
    };
    Bus::connect(config).await.expect("connecting to NATS")
}

fn envelope(position: i64) -> Envelope {
    Envelope {
        envelope_version: ENVELOPE_VERSION,
        event_id: Uuid::now_v7(),
        global_position: position,
        tx_id: 1000 + position,
        aggregate_type: "appeal".into(),
        aggregate_id: format!("a{}", position % 3),
        sequence: position,
        event_type: "AppealFiled".into(),
        event_version: "1".into(),
        recorded_at: Utc::now(),
        payload: json!({"n": position}),
        metadata: json!({"correlation_id": format!("c-{position}")}),
        hash: format!("{position:064x}"),
        prev_hash: None,
    }
}

async fn replay_all(bus: &Bus) -> Vec<Result<Delivered, BusError>> {
    bus.replay().await.expect("replay").collect().await
}

#[tokio::test]
async fn publishes_in_order_and_drops_duplicates_by_event_id() {
    let bus = bus().await;
    let events: Vec<_> = (1..=5).map(envelope).collect();
    let sequences = bus.publish(&events).await.unwrap();
    assert_eq!(sequences, vec![1, 2, 3, 4, 5]);

    // Republishing (as after a crash before the checkpoint) stores nothing new and answers
    // with the original sequences.
    let again = bus.publish(&events[2..]).await.unwrap();
    assert_eq!(again, vec![3, 4, 5]);
    let more = bus.publish(&[envelope(6)]).await.unwrap();
    assert_eq!(more, vec![6]);
    assert_eq!(bus.last_sequence().await.unwrap(), 6);
    assert_eq!(
        bus.last_published()
            .await
            .unwrap()
            .map(|e| e.global_position),
        Some(6)
    );

    let replayed: Vec<_> = replay_all(&bus)
        .await
        .into_iter()
        .map(|d| d.unwrap())
        .collect();
    assert_eq!(
        replayed
            .iter()
            .map(|d| d.stream_sequence)
            .collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert_eq!(replayed[0].envelope, events[0]);
    assert_eq!(
        replayed
            .iter()
            .map(|d| d.envelope.global_position)
            .collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    bus.delete_stream().await.unwrap();
}

#[tokio::test]
async fn an_empty_stream_replays_nothing() {
    let bus = bus().await;
    assert_eq!(bus.last_sequence().await.unwrap(), 0);
    assert!(bus.last_published().await.unwrap().is_none());
    assert!(replay_all(&bus).await.is_empty());
    bus.delete_stream().await.unwrap();
}

#[tokio::test]
async fn a_large_batch_is_published_in_order() {
    let bus = bus().await;
    // More than the client's in-flight ack window.
    let events: Vec<_> = (1..=6_000).map(envelope).collect();
    let sequences = bus.publish(&events).await.unwrap();
    assert_eq!(sequences, (1..=6_000).collect::<Vec<u64>>());
    let replayed = replay_all(&bus).await;
    assert_eq!(replayed.len(), 6_000);
    for (i, d) in replayed.into_iter().enumerate() {
        assert_eq!(d.unwrap().envelope.global_position, i as i64 + 1);
    }
    bus.delete_stream().await.unwrap();
}

#[tokio::test]
async fn a_durable_consumer_resumes_after_its_last_ack() {
    let bus = bus().await;
    let events: Vec<_> = (1..=10).map(envelope).collect();
    bus.publish(&events).await.unwrap();

    let mut consumer = bus.consumer("reader").await.unwrap();
    let first = consumer.fetch(4, Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        first.iter().map(|d| d.stream_sequence).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    consumer.ack_through(&first[3]).await.unwrap();
    // Delivered but never acked: must come again to the next reader of this durable.
    let second = consumer.fetch(3, Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        second.iter().map(|d| d.stream_sequence).collect::<Vec<_>>(),
        vec![5, 6, 7]
    );
    drop(consumer);
    bus.delete_consumer("reader").await.unwrap();
    bus.delete_consumer("reader").await.unwrap(); // missing is fine

    // The un-acked part of a durable is redelivered to the next connection that binds it.
    let mut consumer = bus.consumer("reader2").await.unwrap();
    let got = consumer.fetch(100, Duration::from_secs(1)).await.unwrap();
    assert_eq!(got.len(), 10);
    consumer.ack_through(&got[5]).await.unwrap();
    drop(consumer);

    let reconnected = Bus::connect(bus.config().clone()).await.unwrap();
    let mut consumer = reconnected.consumer("reader2").await.unwrap();
    // The un-acked 7..=10 were delivered to the old consumer and come back once their ack wait
    // (30 s) runs out; wait for them with a deadline.
    let mut redelivered = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while redelivered.len() < 4 && tokio::time::Instant::now() < deadline {
        redelivered.extend(consumer.fetch(100, Duration::from_secs(2)).await.unwrap());
    }
    assert_eq!(
        redelivered
            .iter()
            .map(|d| d.stream_sequence)
            .collect::<Vec<_>>(),
        vec![7, 8, 9, 10]
    );
    consumer.ack_through(&redelivered[3]).await.unwrap();
    assert!(
        consumer
            .fetch(100, Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty()
    );
    bus.delete_stream().await.unwrap();
}

#[tokio::test]
async fn fetch_waits_for_the_first_message() {
    let bus = bus().await;
    let mut consumer = bus.consumer("waiter").await.unwrap();
    assert!(
        consumer
            .fetch(10, Duration::from_millis(100))
            .await
            .unwrap()
            .is_empty()
    );
    let publisher = bus.clone();
    let task = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        publisher
            .publish(&[envelope(1), envelope(2)])
            .await
            .unwrap();
    });
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while got.len() < 2 && tokio::time::Instant::now() < deadline {
        got.extend(consumer.fetch(10, Duration::from_secs(5)).await.unwrap());
    }
    task.await.unwrap();
    assert_eq!(
        got.iter().map(|d| d.stream_sequence).collect::<Vec<_>>(),
        vec![1, 2]
    );
    consumer.ack_through(&got[1]).await.unwrap();
    bus.delete_stream().await.unwrap();
}

#[tokio::test]
async fn garbage_is_skipped_by_fetch_and_reported_by_replay() {
    let bus = bus().await;
    bus.publish(&[envelope(1)]).await.unwrap();
    publish_raw(&bus, b"not an envelope").await;
    bus.publish(&[envelope(3)]).await.unwrap();
    publish_raw(&bus, b"{\"trailing\": true}").await;

    let mut consumer = bus.consumer("skipper").await.unwrap();
    let got = consumer.fetch(100, Duration::from_secs(1)).await.unwrap();
    // Garbage between envelopes is left for the ack of a later envelope to cover.
    assert_eq!(consumer.progress().await.unwrap().ack_floor, 0);
    assert_eq!(
        got.iter().map(|d| d.stream_sequence).collect::<Vec<_>>(),
        vec![1, 3]
    );
    consumer.ack_through(&got[1]).await.unwrap();
    // The trailing garbage follows the ack floor now: it is terminated, not redelivered. (The
    // termination is not confirmed by the server: wait for it to land.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut progress = consumer.progress().await.unwrap();
    while progress.ack_floor < 4 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        progress = consumer.progress().await.unwrap();
    }
    assert_eq!(progress.ack_floor, 4);
    assert_eq!(progress.ack_pending, 0);
    drop(consumer);
    let mut consumer = bus.consumer("skipper").await.unwrap();
    assert!(
        consumer
            .fetch(100, Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty()
    );

    let replayed = replay_all(&bus).await;
    assert_eq!(replayed.len(), 4);
    assert!(matches!(
        replayed[1],
        Err(BusError::Decode {
            stream_sequence: 2,
            ..
        })
    ));
    assert_eq!(replayed[2].as_ref().unwrap().stream_sequence, 3);
    bus.delete_stream().await.unwrap();
}

/// A message on the events subjects that did not come from `Bus::publish`.
async fn publish_raw(bus: &Bus, body: &'static [u8]) {
    // A second envelope-less publisher: the raw NATS client is private to the bus, so go
    // through a plain connection of our own.
    let client = async_nats_client(bus).await;
    let js = async_nats::jetstream::new(client);
    js.publish(
        format!("{}.events.appeal.Garbage", bus.config().prefix),
        body.into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

async fn async_nats_client(bus: &Bus) -> async_nats::Client {
    async_nats::connect(bus.config().url.as_str())
        .await
        .unwrap()
}
