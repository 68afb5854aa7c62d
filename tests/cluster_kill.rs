//! Real node processes, the leader killed with SIGKILL and restarted again
//! and again while a producer writes through the client library: every
//! acknowledged record must then be on every node exactly once, at dense
//! offsets, with the same bytes.

mod support;

use std::time::Duration;

use bytes::Bytes;
use support::Cluster;

/// Leaders killed in one run.
const KILLS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_leader_kills_exactly_once() {
    let mut cluster = Cluster::start(3);
    cluster.leader().await;
    let client = cluster.client("alice");

    // One producer, batch after batch; each batch acknowledged is kept.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut producer = client.producer();
    let task = tokio::spawn(async move {
        let mut acked: Vec<(u64, Vec<Bytes>)> = Vec::new();
        let mut batch = 0u64;
        while !*stopped.borrow() {
            let records: Vec<Bytes> = (0..5)
                .map(|r| Bytes::from(format!("batch {batch} record {r}")))
                .collect();
            let produced = producer
                .send(records.clone())
                .await
                .unwrap_or_else(|error| panic!("batch {batch} failed: {error}"));
            assert_eq!(produced.count, 5);
            acked.push((produced.first, records));
            batch += 1;
        }
        acked
    });

    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let leader = cluster.leader().await;
        cluster.kill(leader);
        tokio::time::sleep(Duration::from_millis(700)).await;
        cluster.start_node(leader);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send(true).expect("the producer listens");
    let acked = match tokio::time::timeout(Duration::from_secs(60), task).await {
        Ok(Ok(acked)) => acked,
        Ok(Err(panic)) => panic!("producer: {panic}\n{}", cluster.logs()),
        Err(_) => panic!("the producer hung\n{}", cluster.logs()),
    };
    assert!(
        acked.len() > 10,
        "the producer made progress: {} batches",
        acked.len()
    );

    // The log is the acknowledged batches, in order, each once.
    let mut expected: Vec<Bytes> = Vec::new();
    for (first, records) in &acked {
        assert_eq!(
            *first,
            expected.len() as u64,
            "batches land at dense offsets"
        );
        expected.extend(records.iter().cloned());
    }
    let total = expected.len() as u64;
    for (i, &addr) in cluster.addrs.iter().enumerate() {
        let node = cluster.client_of("alice", vec![addr]);
        let mut found: Vec<Bytes> = Vec::new();
        while (found.len() as u64) < total {
            let records = node
                .follow(found.len() as u64, 10_000, 1 << 20, Duration::from_secs(10))
                .await
                .unwrap_or_else(|error| panic!("node {} read: {error}\n{}", i + 1, cluster.logs()));
            assert!(
                !records.records.is_empty(),
                "node {} has {} of {total} records\n{}",
                i + 1,
                found.len(),
                cluster.logs()
            );
            assert_eq!(records.first, found.len() as u64);
            found.extend(records.records);
        }
        assert_eq!(
            found.len(),
            expected.len(),
            "node {} holds no extra record",
            i + 1
        );
        for (offset, (got, want)) in found.iter().zip(&expected).enumerate() {
            assert_eq!(got, want, "node {} offset {offset}", i + 1);
        }
        let status = node.status_of(addr).await.expect("status");
        assert_eq!(
            status.commit_offset,
            total,
            "node {} commits nothing more",
            i + 1
        );
    }
}
