//! Three nodes in one process, on loopback, with generated certificates:
//! the server and the client library end to end.

use std::time::Duration;

use cairn_core::config::LogConfig;
use cairn_core::ids::NodeId;
use cairn_core::raft::machine::RaftConfig;
use cairn_runtime::acl::{Acl, Permission, Rule};
use cairn_runtime::certs::{self, Credentials};
use cairn_runtime::client::{Client, ClientError, ClientOptions};
use cairn_runtime::server::{self, Running, ServeOptions};

fn options(dir: &std::path::Path, id: u64, join: Vec<std::net::SocketAddr>) -> ServeOptions {
    ServeOptions {
        data_dir: dir.join(format!("data-{id}")),
        listen: "127.0.0.1:0".parse().unwrap(),
        advertise: None,
        join,
        bootstrap: vec![NodeId(1), NodeId(2), NodeId(3)],
        voters: 3,
        dead_after: Duration::from_secs(60),
        credentials: Credentials::load_named(&dir.join("certs"), &format!("node-{id}")).unwrap(),
        acl: Acl::new(vec![Rule {
            principal: "alice".into(),
            permissions: vec![Permission::Produce, Permission::Consume],
        }]),
        insecure_clients: false,
        log: LogConfig::default(),
        raft: RaftConfig::default(),
        gossip: server::GOSSIP,
        metrics: None,
    }
}

async fn cluster(dir: &std::path::Path) -> Vec<Running> {
    certs::init(&dir.join("certs"), 3, &["alice".into(), "bob".into()]).unwrap();
    let first = server::start(options(dir, 1, vec![])).await.unwrap();
    let join = vec![first.addr];
    let mut nodes = vec![first];
    for id in 2..=3 {
        nodes.push(server::start(options(dir, id, join.clone())).await.unwrap());
    }
    nodes
}

fn client(dir: &std::path::Path, nodes: &[Running], name: &str) -> Client {
    let credentials = Credentials::load_named(&dir.join("certs"), name).unwrap();
    let addrs = nodes.iter().map(|n| n.addr).collect();
    Client::connect(ClientOptions::new(addrs, credentials)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_across_three_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = cluster(dir.path()).await;
    let alice = client(dir.path(), &nodes, "client-alice");
    let mut producer = alice.producer();
    for i in 0..100u64 {
        let produced = producer
            .send(vec![format!("record {i}").into()])
            .await
            .unwrap();
        assert_eq!((produced.first, produced.count), (i, 1));
    }
    let mut next = 0;
    let mut seen = Vec::new();
    while next < 100 {
        let records = alice.consume(next, 1000, 1 << 20).await.unwrap();
        assert_eq!(records.first, next);
        seen.extend(records.records);
        next = records.next;
    }
    for (i, record) in seen.iter().enumerate() {
        assert_eq!(record, format!("record {i}").as_bytes());
    }
    let bob = client(dir.path(), &nodes, "client-bob");
    let refused = bob.producer().send(vec!["no".into()]).await;
    assert!(
        matches!(refused, Err(ClientError::Unauthorized { .. })),
        "{refused:?}"
    );
    for node in nodes {
        node.stop().await.unwrap();
    }
}
