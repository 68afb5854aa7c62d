//! Security of a real node process: mutual TLS on both ALPNs, certificate
//! kinds that are not interchangeable, the ACL, and hostile frames that
//! close their stream without harming the node.

mod support;

use std::time::Duration;

use cairn::proto::client::{self, Reply, Request, REQUEST_PAYLOAD_MAX};
use cairn::runtime::certs::{self, Credentials, SERVER_NAME};
use cairn::runtime::client::{Client, ClientError, ClientOptions};
use cairn::runtime::server::{CLOSE_REFUSED, STOP_BAD_FRAME};
use cairn::runtime::tls::{self, ALPN_CLIENT, ALPN_PEER};
use support::Cluster;

/// A client that gives up after two seconds of retries.
fn impatient(cluster: &Cluster, credentials: Credentials) -> Client {
    let mut options = ClientOptions::new(cluster.addrs.clone(), credentials);
    options.retry_for = Duration::from_secs(2);
    options.attempt_timeout = Duration::from_secs(2);
    Client::connect(options).expect("a client")
}

/// A raw QUIC connection to node 1 on `alpn`, presenting `credentials`.
async fn raw(cluster: &Cluster, credentials: &Credentials, alpn: &[u8]) -> quinn::Connection {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(tls::client_config(credentials, alpn).unwrap());
    endpoint
        .connect(cluster.addrs[0], SERVER_NAME)
        .unwrap()
        .await
        .expect("the TLS handshake completes on the client's side")
}

/// Sends `bytes` as a request on a new stream and returns the stream's
/// fate: the reply, or the code the node reset it with.
async fn exchange(connection: &quinn::Connection, bytes: &[u8]) -> Result<Reply, u64> {
    let (mut send, mut recv) = connection.open_bi().await.expect("a stream");
    // The node may stop the stream before all is written.
    let _ = send.write_all(bytes).await;
    let _ = send.finish();
    match tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(1 << 24)).await {
        Ok(Ok(bytes)) => Ok(client::decode_reply(&bytes).expect("a reply frame")),
        Ok(Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code)))) => {
            Err(code.into_inner())
        }
        Ok(Err(error)) => panic!("the stream failed otherwise: {error}"),
        Err(_) => panic!("the node neither answered nor closed the stream"),
    }
}

async fn healthy(cluster: &Cluster) {
    let produced = cluster
        .client("alice")
        .producer()
        .send(vec!["still here".into()])
        .await
        .expect("the node still serves");
    assert_eq!(produced.count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_certificate_is_refused() {
    let cluster = Cluster::start(1);
    cluster.leader().await;
    let anonymous = Credentials::anonymous(&cluster.certs().join("ca.pem")).unwrap();
    let result = impatient(&cluster, anonymous).status().await;
    assert!(
        matches!(
            result,
            Err(ClientError::Unavailable(_) | ClientError::Setup(_))
        ),
        "{result:?}"
    );
    healthy(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused() {
    let cluster = Cluster::start(1);
    cluster.leader().await;
    let other = tempfile::tempdir().unwrap();
    certs::init(other.path(), 1, &["alice".into()]).unwrap();
    let stranger = Credentials::load_named(other.path(), "client-alice").unwrap();
    let ours = cluster.credentials("alice");
    // It trusts our CA, so only its own certificate can fail it.
    let credentials = Credentials {
        roots: ours.roots,
        ..stranger
    };
    let result = impatient(&cluster, credentials).status().await;
    assert!(
        matches!(
            result,
            Err(ClientError::Unavailable(_) | ClientError::Setup(_))
        ),
        "{result:?}"
    );
    healthy(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_on_the_peer_alpn_is_refused() {
    let cluster = Cluster::start(1);
    cluster.leader().await;
    let connection = raw(&cluster, &cluster.credentials("alice"), ALPN_PEER).await;
    let reason = tokio::time::timeout(Duration::from_secs(5), connection.closed())
        .await
        .expect("the node closes the connection at once");
    match reason {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code.into_inner(), u64::from(CLOSE_REFUSED));
        }
        other => panic!("closed otherwise: {other}"),
    }
    healthy(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_certificate_on_the_client_alpn_is_refused() {
    let cluster = Cluster::start(1);
    cluster.leader().await;
    let node = Credentials::load_named(&cluster.certs(), "node-1").unwrap();
    let connection = raw(&cluster, &node, ALPN_CLIENT).await;
    let reason = tokio::time::timeout(Duration::from_secs(5), connection.closed())
        .await
        .expect("the node closes the connection at once");
    assert!(
        matches!(reason, quinn::ConnectionError::ApplicationClosed(ref c) if c.error_code.into_inner() == u64::from(CLOSE_REFUSED)),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_without_a_rule_is_unauthorized() {
    let cluster = Cluster::start(1);
    cluster.leader().await;
    let bob = cluster.client("bob");
    let produced = bob.producer().send(vec!["no".into()]).await;
    assert!(
        matches!(produced, Err(ClientError::Unauthorized { .. })),
        "{produced:?}"
    );
    let consumed = bob.consume(0, 10, 1 << 20).await;
    assert!(
        matches!(consumed, Err(ClientError::Unauthorized { .. })),
        "{consumed:?}"
    );
    // alice may produce and consume, not administer.
    let transfer = cluster.client("alice").transfer(1).await;
    assert!(
        matches!(transfer, Err(ClientError::Unauthorized { .. })),
        "{transfer:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_corrupt_and_cut_frames_close_only_their_stream() {
    let cluster = Cluster::start(1);
    cluster.leader().await;
    let connection = raw(&cluster, &cluster.credentials("alice"), ALPN_CLIENT).await;
    let header = |kind: u8, len: u32| {
        let mut bytes = vec![0xCA, 0x1E, 1, kind];
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes
    };
    let bad = u64::from(STOP_BAD_FRAME);

    // Claims more than a request may hold: refused on its header alone.
    assert_eq!(
        exchange(&connection, &header(8, REQUEST_PAYLOAD_MAX + 1)).await,
        Err(bad)
    );
    // Claims the frame limit and beyond.
    assert_eq!(exchange(&connection, &header(8, u32::MAX)).await, Err(bad));
    // Claims 4 MiB, sends a few bytes, ends.
    let mut cut = header(8, 4 << 20);
    cut.extend_from_slice(b"short");
    assert_eq!(exchange(&connection, &cut).await, Err(bad));
    // A flipped payload byte: the CRC fails.
    let mut corrupt = client::encode_request(&Request::Status);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x40;
    assert_eq!(exchange(&connection, &corrupt).await, Err(bad));
    // Garbage that is not a frame.
    assert_eq!(
        exchange(&connection, b"GET / HTTP/1.1\r\n\r\n").await,
        Err(bad)
    );
    // A reply where a request belongs.
    let reply = client::encode_reply(&Reply::Done);
    assert_eq!(exchange(&connection, &reply).await, Err(bad));

    // The same connection, and the node, still serve.
    let status = exchange(&connection, &client::encode_request(&Request::Status)).await;
    assert!(matches!(status, Ok(Reply::Status(_))), "{status:?}");
    healthy(&cluster).await;
}
