//! Operations: Prometheus metrics, liveness and readiness over HTTP.
//!
//! Owns the node's metrics (prometheus-client) and the small HTTP server
//! that shows them: `/metrics` (OpenMetrics text), `/livez` (the process
//! answers) and `/readyz` (a member of a cluster with a known leader, and
//! caught up: its log durable through its commit index). It must never
//! hold the node: the node loop writes what it knows here, the HTTP tasks
//! only read.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

/// A label naming a state (`role`, gossip's member state).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// The state.
    pub state: &'static str,
}

/// Every metric of a node.
pub struct Metrics {
    registry: Registry,
    /// 1 for the node's Raft role, 0 for the others.
    pub role: Family<StateLabel, Gauge>,
    /// Its Raft term.
    pub term: Gauge,
    /// Its commit index.
    pub commit_index: Gauge,
    /// The first retained offset.
    pub first_offset: Gauge,
    /// The offset after the last committed record.
    pub commit_offset: Gauge,
    /// Produce requests taken.
    pub produce_requests: Counter,
    /// Records acknowledged to producers.
    pub produced_records: Counter,
    /// Client requests served, of every kind.
    pub client_requests: Counter,
    /// Disk syncs and how long each took, in seconds.
    pub sync_seconds: Histogram,
    /// Members by gossip's state, this node included (alive).
    pub members: Family<StateLabel, Gauge>,
    /// Connections refused: failed handshakes, wrong certificate kinds.
    pub rejected_connections: Counter,
    /// Raft messages from nodes that are not members, dropped.
    pub dropped_strangers: Counter,
    /// Messages to peers dropped: link full or address unknown.
    pub dropped_sends: Counter,
    /// Streams closed for an oversized, damaged or unexpected frame, and
    /// gossip bytes that did not decode.
    pub bad_frames: Counter,
    /// Client requests refused by the ACL.
    pub unauthorized: Counter,
    /// Whether `/readyz` says ready.
    pub ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// A node's metrics, registered under the prefix `cairn`.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("cairn");
        let metrics = Metrics {
            role: Family::default(),
            term: Gauge::default(),
            commit_index: Gauge::default(),
            first_offset: Gauge::default(),
            commit_offset: Gauge::default(),
            produce_requests: Counter::default(),
            produced_records: Counter::default(),
            client_requests: Counter::default(),
            sync_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            members: Family::default(),
            rejected_connections: Counter::default(),
            dropped_strangers: Counter::default(),
            dropped_sends: Counter::default(),
            bad_frames: Counter::default(),
            unauthorized: Counter::default(),
            ready: AtomicBool::new(false),
            registry: Registry::default(),
        };
        registry.register(
            "raft_role",
            "The node's Raft role (1 for its role)",
            metrics.role.clone(),
        );
        registry.register("raft_term", "The node's Raft term", metrics.term.clone());
        registry.register(
            "raft_commit_index",
            "The Raft commit index",
            metrics.commit_index.clone(),
        );
        registry.register(
            "log_first_offset",
            "The first retained offset",
            metrics.first_offset.clone(),
        );
        registry.register(
            "log_commit_offset",
            "The offset after the last committed record",
            metrics.commit_offset.clone(),
        );
        registry.register(
            "produce_requests",
            "Produce requests taken",
            metrics.produce_requests.clone(),
        );
        registry.register(
            "produced_records",
            "Records acknowledged to producers",
            metrics.produced_records.clone(),
        );
        registry.register(
            "client_requests",
            "Client requests served",
            metrics.client_requests.clone(),
        );
        registry.register(
            "disk_sync_seconds",
            "Disk syncs and their latency",
            metrics.sync_seconds.clone(),
        );
        registry.register(
            "gossip_members",
            "Members by gossip state",
            metrics.members.clone(),
        );
        registry.register(
            "rejected_connections",
            "Connections refused in or after the handshake",
            metrics.rejected_connections.clone(),
        );
        registry.register(
            "dropped_stranger_messages",
            "Raft messages from non-members, dropped",
            metrics.dropped_strangers.clone(),
        );
        registry.register(
            "dropped_sends",
            "Messages to peers dropped (link full or address unknown)",
            metrics.dropped_sends.clone(),
        );
        registry.register(
            "bad_frames",
            "Streams closed for a bad frame",
            metrics.bad_frames.clone(),
        );
        registry.register(
            "unauthorized_requests",
            "Client requests the ACL refused",
            metrics.unauthorized.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The metrics as OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// Serves `/metrics`, `/livez` and `/readyz` on `addr` until `stop`.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.changed() => return,
            };
            let Ok((stream, _)) = accepted else { continue };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, Infallible>(respond(&request, &metrics)) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Ok(bound)
}

fn respond(request: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, kind: &'static str, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", kind)
            .body(Full::new(Bytes::from(body)))
            .expect("a valid response")
    };
    let text = "text/plain; charset=utf-8";
    if request.method() != Method::GET {
        return reply(StatusCode::METHOD_NOT_ALLOWED, text, "GET only\n".into());
    }
    match request.uri().path() {
        "/metrics" => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        "/livez" => reply(StatusCode::OK, text, "ok\n".into()),
        "/readyz" => {
            if metrics.ready.load(Ordering::Relaxed) {
                reply(StatusCode::OK, text, "ready\n".into())
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    text,
                    "not ready: not a member with a known leader, or not caught up\n".into(),
                )
            }
        }
        _ => reply(StatusCode::NOT_FOUND, text, "not found\n".into()),
    }
}
