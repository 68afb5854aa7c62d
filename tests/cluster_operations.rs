//! Operating real node processes: metrics, liveness and readiness over
//! HTTP, and a graceful stop on SIGTERM that hands leadership over.

mod support;

use std::time::Duration;

use support::{http_get, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_report_metrics_and_readiness() {
    let cluster = Cluster::start(3);
    cluster.leader().await;
    cluster
        .client("alice")
        .producer()
        .send(vec!["counted".into()])
        .await
        .expect("a produce");
    for (i, &addr) in cluster.metrics.iter().enumerate() {
        let mut ready = false;
        for _ in 0..100 {
            if http_get(addr, "/readyz").is_ok_and(|(code, _)| code == 200) {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "node {} becomes ready\n{}", i + 1, cluster.logs());
        assert_eq!(http_get(addr, "/livez").unwrap().0, 200);
        assert_eq!(http_get(addr, "/nothing").unwrap().0, 404);
        let (code, text) = http_get(addr, "/metrics").unwrap();
        assert_eq!(code, 200);
        for name in [
            "cairn_raft_term ",
            "cairn_raft_role{state=\"leader\"}",
            "cairn_log_commit_offset ",
            "cairn_disk_sync_seconds_count ",
            "cairn_gossip_members{state=\"alive\"} 3",
            "cairn_rejected_connections_total ",
        ] {
            assert!(
                text.contains(name),
                "node {} lacks {name:?}:\n{text}",
                i + 1
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_leadership_over_and_exits_zero() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let status = cluster.terminate(leader, Duration::from_secs(10));
    assert!(status.success(), "exit status {status}\n{}", cluster.logs());
    let log = std::fs::read_to_string(cluster.dir.path().join(format!("node-{leader}.1.log")))
        .expect("the node's log");
    assert!(
        log.contains("leadership handed over") && !log.contains("to=None"),
        "the leader handed over:\n{log}"
    );
    let next = cluster.leader().await;
    assert_ne!(next, leader);
    let produced = cluster
        .client("alice")
        .producer()
        .send(vec!["after".into()])
        .await;
    assert!(produced.is_ok(), "{produced:?}\n{}", cluster.logs());
}
