//! One node over QUIC and files: the core's `Node`, driven for real.
//!
//! Owns the node's tasks: the loop that owns the `Node` and turns its
//! outputs into effects, the disk thread that performs its file operations
//! in order, the links that carry its messages to peers, and the
//! connections it accepts (peers' Raft streams and gossip datagrams,
//! clients' requests). It must never make a protocol decision: every
//! choice (who leads, what is committed, what to write, who is a member)
//! is the core's; this module only performs effects and feeds back what
//! happened. Every queue between tasks is bounded, except the disk's,
//! which the core bounds by its own limits on work in progress.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use bytes::Bytes;
use cairn_core::config::LogConfig;
use cairn_core::gossip::machine::{Gossip, GossipConfig, Output as GossipOutput};
use cairn_core::gossip::member::State as GossipState;
use cairn_core::gossip::message::Meta;
use cairn_core::ids::{ClientId, IoId, NodeId, Offset, RequestId};
use cairn_core::log::disk::{DiskError, DiskOp, DiskOutcome, DiskRequest};
use cairn_core::log::entry::Stamp;
use cairn_core::log::machine::Log;
use cairn_core::log::recovery;
use cairn_core::node::machine::{ClientError, Node, Output, Reply, Request};
use cairn_core::node::membership::MembershipPolicy;
use cairn_core::raft::machine::{Output as RaftOutput, RaftConfig, Role};
use cairn_core::raft::membership::Change;
use cairn_core::raft::message::Message;
use cairn_core::raft::quorum::{Configuration, Voters};
use cairn_core::raft::state;
use cairn_core::time::{Duration, Instant};
use cairn_proto::client::{self, Failure, NodeInfo};
use cairn_proto::frame::{self, decode_payload};
use cairn_proto::{FrameKind, FRAME_HEADER_BYTES, FRAME_PAYLOAD_MAX};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

use crate::acl::{Acl, Permission};
use crate::certs::{Credentials, Identity, SERVER_NAME};
use crate::disk::FileDriver;
use crate::metrics::{Metrics, StateLabel};
use crate::tls::{self, ALPN_CLIENT, ALPN_PEER};
use crate::wire::read_frame;

/// QUIC close code: the peer is not allowed on this ALPN.
pub const CLOSE_REFUSED: u32 = 1;
/// QUIC close code: the node is stopping.
pub const CLOSE_STOPPING: u32 = 2;
/// Stream stop code: the frame on it was oversized, damaged or not a
/// request.
pub const STOP_BAD_FRAME: u32 = 3;

/// Messages queued for one peer while its link is busy or reconnecting;
/// past this they are dropped (Raft and gossip both recover from loss).
const LINK_QUEUE: usize = 4096;
/// Inputs queued for the node loop; senders wait past this.
const INPUT_QUEUE: usize = 4096;

/// What a node needs to run.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Where its log, Raft state and gossip incarnation live.
    pub data_dir: PathBuf,
    /// The UDP address it listens on.
    pub listen: SocketAddr,
    /// The address its peers reach it at (default: `listen`).
    pub advertise: Option<SocketAddr>,
    /// Nodes to join through, by address.
    pub join: Vec<SocketAddr>,
    /// The founding voters, the same list on each of them; a node not in
    /// it starts with no configuration and joins by gossip as a learner.
    pub bootstrap: Vec<NodeId>,
    /// The voters gossip-driven membership keeps (3 or 5).
    pub voters: usize,
    /// How long gossip must hold a member dead before it is removed.
    pub dead_after: StdDuration,
    /// Its node certificate, key and the cluster CA.
    pub credentials: Credentials,
    /// Who may do what.
    pub acl: Acl,
    /// Let clients in without a certificate, allowed everything: `cairn
    /// dev --insecure-dev` only.
    pub insecure_clients: bool,
    /// The log's settings.
    pub log: LogConfig,
    /// Raft's timing.
    pub raft: RaftConfig,
    /// Gossip's timing.
    pub gossip: GossipConfig,
    /// Where to serve `/metrics`, `/livez` and `/readyz` over HTTP.
    pub metrics: Option<SocketAddr>,
}

/// The gossip timing of a real node: memberlist's LAN defaults, a probe
/// every second.
pub const GOSSIP: GossipConfig = GossipConfig {
    probe_interval: Duration::from_millis(1000),
    probe_timeout: Duration::from_millis(500),
    indirect_probes: 3,
    push_pull_interval: Duration::from_secs(30),
    lifeguard: true,
    datagram_bytes: cairn_core::limits::GOSSIP_DATAGRAM_BYTES_MAX,
};

/// Why a node could not start or stopped.
#[derive(Debug)]
pub enum ServeError {
    /// Its certificate does not name a node.
    NotANode(String),
    /// TLS could not be set up.
    Tls(tls::TlsError),
    /// The data directory could not be opened, read or written.
    Io {
        /// What was being done.
        what: String,
        /// What failed.
        error: std::io::Error,
    },
    /// The core refused the recovered state or the configuration.
    Core(cairn_core::Error),
    /// The disk failed under the running node; it stopped.
    Disk(DiskError),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::NotANode(what) => write!(f, "the node certificate names no node: {what}"),
            ServeError::Tls(error) => error.fmt(f),
            ServeError::Io { what, error } => write!(f, "{what}: {error}"),
            ServeError::Core(error) => write!(f, "{error}"),
            ServeError::Disk(error) => write!(f, "disk failed, node stopped: {error}"),
        }
    }
}

impl std::error::Error for ServeError {}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let what = what.into();
    move |error| ServeError::Io { what, error }
}

/// A running node.
pub struct Running {
    /// Its id, from its certificate.
    pub id: NodeId,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    /// Where its metrics are served, if they are.
    pub metrics_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl Running {
    /// Stops the node gracefully and waits for it.
    pub async fn stop(self) -> Result<(), ServeError> {
        let _ = self.stop.send(true);
        self.wait().await
    }

    /// Waits until the node stops (on its own: a disk failure).
    pub async fn wait(self) -> Result<(), ServeError> {
        match self.task.await {
            Ok(result) => result,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_) => Ok(()),
        }
    }

    /// A handle that stops the node when told.
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

/// The node's clock: monotonic, starting at the wall time of the start, so
/// that retention by age holds roughly across restarts.
#[derive(Clone, Copy)]
struct Clock {
    base: Instant,
    start: std::time::Instant,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            base: crate::log::now(),
            start: std::time::Instant::now(),
        }
    }

    fn now(&self) -> Instant {
        self.base + Duration::from_nanos(self.start.elapsed().as_nanos() as u64)
    }

    fn at(&self, instant: Instant) -> tokio::time::Instant {
        let since = instant.as_nanos().saturating_sub(self.base.as_nanos());
        tokio::time::Instant::from_std(self.start + StdDuration::from_nanos(since))
    }
}

/// What reaches the node loop.
enum Input {
    /// A Raft message from a peer.
    Peer { from: NodeId, message: Message },
    /// Gossip bytes (a datagram or a state frame) from a peer.
    Gossip { from: NodeId, bytes: Bytes },
    /// A client's request, already authorized.
    Client {
        request: client::Request,
        reply: oneshot::Sender<client::Reply>,
    },
    /// A node was reached at `addr`: a join address answered, or a peer
    /// dialed in from there.
    Reached {
        id: NodeId,
        addr: SocketAddr,
        join: bool,
    },
}

/// What a peer link carries.
enum Outgoing {
    /// A Raft frame, on the link's one ordered stream.
    Raft(Bytes),
    /// A gossip datagram.
    Datagram(Bytes),
    /// A gossip state frame, on a stream of its own.
    State(Bytes),
}

struct Link {
    queue: mpsc::Sender<Outgoing>,
    addr: watch::Sender<SocketAddr>,
}

/// What the accepting tasks share.
struct Shared {
    inputs: mpsc::Sender<Input>,
    acl: Acl,
    insecure_clients: bool,
    metrics: Arc<Metrics>,
}

/// Starts a node: recovers its state from `data_dir`, binds its port,
/// and runs until stopped.
pub async fn start(options: ServeOptions) -> Result<Running, ServeError> {
    let id = match options.credentials.identity() {
        Ok(Identity::Node(id)) => id,
        Ok(other) => return Err(ServeError::NotANode(other.to_string())),
        Err(error) => return Err(ServeError::NotANode(error.to_string())),
    };
    let clock = Clock::new();
    let log_dir = options.data_dir.join("log");
    let driver = FileDriver::open(&log_dir).map_err(io(format!("open {}", log_dir.display())))?;
    let (recovered_state, log) = {
        let image = driver
            .image()
            .map_err(io(format!("read {}", log_dir.display())))?;
        let files = image.files();
        let recovered_state = state::recover(&files).map_err(ServeError::Core)?;
        let recovered = recovery::recover(&files).map_err(ServeError::Core)?;
        for note in &recovered.notes {
            tracing::info!(?note, "log recovery");
        }
        let log =
            Log::new(options.log.clone(), recovered, clock.now()).map_err(ServeError::Core)?;
        (recovered_state, log)
    };
    let incarnation_path = options.data_dir.join("gossip.incarnation");
    let incarnation = read_incarnation(&incarnation_path)?;
    let bootstrap = if options.bootstrap.contains(&id) {
        Configuration::simple(Voters(options.bootstrap.iter().copied().collect()))
    } else {
        Configuration::default()
    };
    let now = clock.now();
    let mut node = Node::new(
        id,
        options.raft.clone(),
        bootstrap,
        recovered_state,
        log,
        rand::random(),
        now,
    );

    let server = tls::server_config(&options.credentials, options.insecure_clients)
        .map_err(ServeError::Tls)?;
    let mut endpoint = quinn::Endpoint::server(server, options.listen)
        .map_err(io(format!("listen on {}", options.listen)))?;
    endpoint.set_default_client_config(
        tls::client_config(&options.credentials, ALPN_PEER).map_err(ServeError::Tls)?,
    );
    let addr = endpoint
        .local_addr()
        .map_err(io("read the bound address"))?;
    let advertise = options.advertise.unwrap_or(addr);
    let meta = Meta {
        addr: advertise.to_string(),
        role: "storage".into(),
        tags: BTreeMap::new(),
    };
    let gossip = Gossip::new(id, options.gossip, incarnation, meta, rand::random(), now)
        .map_err(ServeError::Core)?;
    node.start_gossip(
        now,
        gossip,
        MembershipPolicy {
            voters: options.voters,
            dead_after: Duration::from_nanos(options.dead_after.as_nanos() as u64),
        },
    );

    let metrics = Arc::new(Metrics::new());
    let (inputs, input_rx) = mpsc::channel(INPUT_QUEUE);
    let shared = Arc::new(Shared {
        inputs: inputs.clone(),
        acl: options.acl.clone(),
        insecure_clients: options.insecure_clients,
        metrics: metrics.clone(),
    });
    let (stop, stop_rx) = watch::channel(false);
    let metrics_addr = match options.metrics {
        Some(at) => Some(
            crate::metrics::serve(at, metrics.clone(), stop_rx.clone())
                .await
                .map_err(io(format!("serve metrics on {at}")))?,
        ),
        None => None,
    };
    tokio::spawn(accept(endpoint.clone(), shared.clone(), stop_rx.clone()));
    for &join in &options.join {
        if join != advertise && join != addr {
            tokio::spawn(find(
                endpoint.clone(),
                join,
                inputs.clone(),
                stop_rx.clone(),
            ));
        }
    }
    let (disk_tx, disk_rx) = std::sync::mpsc::channel::<DiskRequest>();
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let disk = std::thread::Builder::new()
        .name(format!("cairn-disk-{id}"))
        .spawn({
            let metrics = metrics.clone();
            move || disk_thread(driver, disk_rx, done_tx, &metrics)
        })
        .map_err(io("start the disk thread"))?;
    tracing::info!(node = %id, %addr, %advertise, "node started");
    let driver = Driver {
        id,
        node,
        clock,
        endpoint,
        disk: Some(disk_tx),
        links: BTreeMap::new(),
        addrs: BTreeMap::from([(id, advertise)]),
        pending: BTreeMap::new(),
        next_request: RequestId(1),
        incarnation_path,
        data_dir: options.data_dir.clone(),
        metrics: metrics.clone(),
        stop_rx: stop_rx.clone(),
        refresh_at: tokio::time::Instant::now(),
    };
    let task = tokio::spawn(async move {
        let result = driver.run(input_rx, done_rx).await;
        // The disk thread ends once its queue is dropped and empty.
        let joined = tokio::task::spawn_blocking(move || disk.join()).await;
        if let Ok(Err(panic)) = joined {
            std::panic::resume_unwind(panic);
        }
        result
    });
    Ok(Running {
        id,
        addr,
        metrics,
        metrics_addr,
        stop,
        task,
    })
}

/// Performs disk requests in order and reports each completion.
fn disk_thread(
    mut driver: FileDriver,
    requests: std::sync::mpsc::Receiver<DiskRequest>,
    done: mpsc::UnboundedSender<(IoId, Result<DiskOutcome, DiskError>)>,
    metrics: &Metrics,
) {
    while let Ok(request) = requests.recv() {
        let started = std::time::Instant::now();
        let result = driver.perform(&request.op);
        if let DiskOp::Sync { .. } | DiskOp::SyncDir = request.op {
            metrics
                .sync_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        if done.send((request.io, result)).is_err() {
            return;
        }
    }
}

fn read_incarnation(path: &Path) -> Result<Option<u64>, ServeError> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| ServeError::Io {
            what: format!("read {}", path.display()),
            error: std::io::Error::new(std::io::ErrorKind::InvalidData, "not a number"),
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(ServeError::Io {
            what: format!("read {}", path.display()),
            error,
        }),
    }
}

/// Makes `incarnation` durable: a new file, synced, renamed over the old,
/// and the directory synced.
fn persist_incarnation(path: &Path, dir: &Path, incarnation: u64) -> std::io::Result<()> {
    use std::io::Write;
    let temporary = path.with_extension("new");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(incarnation.to_string().as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// How often the gauges are refreshed.
const REFRESH_EVERY: StdDuration = StdDuration::from_millis(250);
/// How long a stopping leader waits for its successor before it leaves.
const HAND_OVER_GRACE: StdDuration = StdDuration::from_secs(2);
/// How long a stopping node keeps running after it tells gossip it leaves,
/// so that the news goes out and the disk finishes.
const LEAVE_GRACE: StdDuration = StdDuration::from_millis(300);

/// Where a node is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Stopping: leadership is being handed over, until a deadline.
    HandingOver {
        until: tokio::time::Instant,
    },
    /// Stopping: gossip was told; the node exits at the deadline.
    Leaving {
        until: tokio::time::Instant,
    },
}

impl Phase {
    fn until(self) -> Option<tokio::time::Instant> {
        match self {
            Phase::Serving => None,
            Phase::HandingOver { until } | Phase::Leaving { until } => Some(until),
        }
    }
}

/// The loop that owns the node.
struct Driver {
    id: NodeId,
    node: Node,
    clock: Clock,
    endpoint: quinn::Endpoint,
    /// The disk thread's queue; dropped to stop it.
    disk: Option<std::sync::mpsc::Sender<DiskRequest>>,
    links: BTreeMap<NodeId, Link>,
    /// Where each known node listens.
    addrs: BTreeMap<NodeId, SocketAddr>,
    pending: BTreeMap<RequestId, oneshot::Sender<client::Reply>>,
    next_request: RequestId,
    incarnation_path: PathBuf,
    data_dir: PathBuf,
    metrics: Arc<Metrics>,
    stop_rx: watch::Receiver<bool>,
    /// When the gauges are next refreshed.
    refresh_at: tokio::time::Instant,
}

impl Driver {
    async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Input>,
        mut done: mpsc::UnboundedReceiver<(IoId, Result<DiskOutcome, DiskError>)>,
    ) -> Result<(), ServeError> {
        let mut stop_rx = self.stop_rx.clone();
        let mut phase = Phase::Serving;
        let result = loop {
            if let Err(error) = self.drain() {
                break Err(error);
            }
            let now = tokio::time::Instant::now();
            phase = match phase {
                Phase::HandingOver { until } if now >= until || !self.node.raft().is_leader() => {
                    tracing::info!(node = %self.id, "leaving gossip");
                    self.node.leave_gossip(self.clock.now());
                    Phase::Leaving {
                        until: now + LEAVE_GRACE,
                    }
                }
                Phase::Leaving { until } if now >= until => break Ok(()),
                phase => phase,
            };
            if let Err(error) = self.drain() {
                break Err(error);
            }
            if now >= self.refresh_at {
                self.refresh();
                self.refresh_at = now + REFRESH_EVERY;
            }
            let deadline = [
                self.node.poll_timeout().map(|at| self.clock.at(at)),
                phase.until(),
                Some(self.refresh_at),
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                completion = done.recv() => {
                    let Some((io, result)) = completion else { break Ok(()) };
                    if let Err(error) = &result {
                        tracing::error!(%error, "disk operation failed");
                    }
                    self.node.handle_disk(self.clock.now(), io, result);
                }
                changed = stop_rx.changed(), if phase == Phase::Serving => {
                    // A dropped handle stops the node too.
                    if changed.is_err() || *stop_rx.borrow() {
                        phase = self.begin_stop();
                    }
                }
                input = inputs.recv() => {
                    let Some(input) = input else { break Ok(()) };
                    self.input(input);
                }
                () = sleep => self.node.handle_timeout(self.clock.now()),
            }
        };
        self.shut_down();
        result
    }

    /// Writes what the node is into its gauges.
    fn refresh(&self) {
        let metrics = &self.metrics;
        let raft = self.node.raft();
        let role = role_name(raft.role());
        for state in ["leader", "candidate", "follower"] {
            metrics
                .role
                .get_or_create(&StateLabel { state })
                .set(i64::from(state == role));
        }
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        metrics.term.set(gauge(raft.term().get()));
        metrics.commit_index.set(gauge(raft.commit().get()));
        metrics
            .first_offset
            .set(gauge(raft.log().first_offset().get()));
        metrics.commit_offset.set(gauge(raft.commit_offset().get()));
        let mut counts: BTreeMap<&'static str, i64> = ["alive", "suspect", "dead", "left"]
            .into_iter()
            .map(|s| (s, 0))
            .collect();
        *counts.entry("alive").or_default() += 1;
        if let Some(gossip) = self.node.gossip() {
            for (_, status) in gossip.members() {
                *counts.entry(gossip_state(status.state)).or_default() += 1;
            }
        }
        for (state, count) in counts {
            metrics
                .members
                .get_or_create(&StateLabel { state })
                .set(count);
        }
        let ready = raft.configuration().is_member(self.id)
            && raft.leader().is_some()
            && raft.log().durable_index() >= raft.commit();
        metrics
            .ready
            .store(ready, std::sync::atomic::Ordering::Relaxed);
    }

    /// Stops taking connections (the accept loop watches the same signal)
    /// and, if this node leads, hands leadership to a caught-up voter.
    fn begin_stop(&mut self) -> Phase {
        let to = self.node.hand_over(self.clock.now());
        tracing::info!(node = %self.id, to = ?to, "stopping; leadership handed over");
        Phase::HandingOver {
            until: tokio::time::Instant::now() + HAND_OVER_GRACE,
        }
    }

    /// Answers what waits, lets the disk thread finish its queue (it ends
    /// when the queue is dropped), and closes every connection.
    fn shut_down(&mut self) {
        self.disk = None;
        for (_, reply) in std::mem::take(&mut self.pending) {
            let _ = reply.send(client::Reply::Failed(Failure::Unavailable {
                reason: "the node is stopping".into(),
            }));
        }
        self.links.clear();
        self.endpoint.close(CLOSE_STOPPING.into(), b"stopping");
        tracing::info!(node = %self.id, "node stopped");
    }

    fn input(&mut self, input: Input) {
        let now = self.clock.now();
        match input {
            Input::Peer { from, message } => {
                if !self.knows(from) {
                    self.metrics.dropped_strangers.inc();
                    tracing::debug!(%from, "Raft message from a non-member dropped");
                    return;
                }
                self.node.handle(now, from, message);
            }
            Input::Gossip { from, bytes } => {
                if let Err(error) = self.node.handle_gossip(now, from, &bytes) {
                    self.metrics.bad_frames.inc();
                    tracing::debug!(%from, %error, "bad gossip dropped");
                }
            }
            Input::Client { request, reply } => self.request(now, request, reply),
            Input::Reached { id, addr, join } => {
                if id == self.id {
                    return;
                }
                if join || !self.addrs.contains_key(&id) {
                    self.learn(id, addr);
                }
                if join {
                    self.node.join_gossip(now, &[id]);
                }
            }
        }
    }

    /// Whether `from` may speak Raft to this node: a member of its
    /// configuration, or of its gossip (a leader adding this node).
    fn knows(&self, from: NodeId) -> bool {
        self.node.raft().configuration().is_member(from)
            || self
                .node
                .gossip()
                .and_then(|gossip| gossip.status(from))
                .is_some_and(|status| {
                    matches!(status.state, GossipState::Alive | GossipState::Suspect)
                })
    }

    fn learn(&mut self, id: NodeId, addr: SocketAddr) {
        if id == self.id {
            return;
        }
        self.addrs.insert(id, addr);
        if let Some(link) = self.links.get(&id) {
            link.addr
                .send_if_modified(|old| std::mem::replace(old, addr) != addr);
        }
    }

    fn request(
        &mut self,
        now: Instant,
        request: client::Request,
        reply: oneshot::Sender<client::Reply>,
    ) {
        self.metrics.client_requests.inc();
        let request = match request {
            client::Request::Status => {
                let _ = reply.send(client::Reply::Status(self.status()));
                return;
            }
            client::Request::Produce { stamp, records } => {
                self.metrics.produce_requests.inc();
                Request::Produce {
                    records,
                    stamp: stamp.map(|s| Stamp {
                        producer: s.producer,
                        sequence: s.sequence,
                    }),
                }
            }
            client::Request::Consume {
                from,
                max_records,
                max_bytes,
            } => Request::Consume {
                from: Offset(from),
                max_records,
                max_bytes,
            },
            client::Request::Follow {
                from,
                max_records,
                max_bytes,
                wait_ms,
            } => Request::Follow {
                from: Offset(from),
                max_records,
                max_bytes,
                wait: Duration::from_millis(u64::from(wait_ms.min(client::FOLLOW_WAIT_MS_MAX))),
            },
            client::Request::Transfer { to } => Request::Transfer { to: NodeId(to) },
            client::Request::Remove { node } => {
                Request::ChangeMembership(Change::Remove(NodeId(node)))
            }
        };
        let id = self.next_request;
        self.next_request = id.next();
        self.pending.insert(id, reply);
        self.node.request(now, ClientId(1), id, request);
    }

    fn info(&self, id: NodeId) -> NodeInfo {
        NodeInfo {
            id: id.get(),
            addr: self
                .addrs
                .get(&id)
                .map(|addr| addr.to_string())
                .unwrap_or_default(),
        }
    }

    fn status(&self) -> client::Status {
        let raft = self.node.raft();
        let role = role_name(raft.role());
        let configuration = raft.configuration();
        let mut ids: Vec<NodeId> = configuration.members().collect();
        if let Some(gossip) = self.node.gossip() {
            ids.extend(gossip.members().map(|(id, _)| id));
        }
        ids.push(self.id);
        ids.sort_unstable();
        ids.dedup();
        let members = ids
            .into_iter()
            .map(|id| {
                let role = if configuration.is_voter(id) {
                    "voter"
                } else if configuration.is_member(id) {
                    "learner"
                } else {
                    "none"
                };
                let state = if id == self.id {
                    "alive"
                } else {
                    match self.node.gossip().and_then(|g| g.status(id)) {
                        Some(status) => gossip_state(status.state),
                        None => "unknown",
                    }
                };
                client::Member {
                    node: self.info(id),
                    role: role.into(),
                    state: state.into(),
                }
            })
            .collect();
        client::Status {
            node: self.info(self.id),
            role: role.into(),
            term: raft.term().get(),
            leader: raft.leader().map(|id| self.info(id)),
            first_offset: raft.log().first_offset().get(),
            commit_offset: raft.commit_offset().get(),
            members,
        }
    }

    /// Performs every output the node has.
    fn drain(&mut self) -> Result<(), ServeError> {
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Raft(RaftOutput::Send(envelope)) => {
                    let mut frame = Vec::new();
                    frame::encode(&mut frame, FrameKind::Raft, &envelope.message);
                    self.send(envelope.to, Outgoing::Raft(frame.into()));
                }
                Output::Raft(RaftOutput::Disk(request)) => {
                    if let Some(disk) = &self.disk {
                        // The thread lives until the queue is dropped.
                        let _ = disk.send(request);
                    }
                }
                Output::Raft(RaftOutput::Stopped(error)) => return Err(ServeError::Disk(error)),
                Output::Raft(RaftOutput::BecameLeader { term }) => {
                    tracing::info!(node = %self.id, %term, "became leader");
                }
                Output::Raft(RaftOutput::SteppedDown { term }) => {
                    tracing::info!(node = %self.id, %term, "stepped down");
                }
                Output::Raft(RaftOutput::Configured {
                    index,
                    configuration,
                }) => {
                    tracing::info!(node = %self.id, %index, %configuration, "configuration");
                }
                Output::Raft(other) => tracing::trace!(?other, "raft"),
                Output::Reply { id, reply, .. } => {
                    let answer = self.answer(reply);
                    if let Some(waiting) = self.pending.remove(&id) {
                        let _ = waiting.send(answer);
                    }
                }
                Output::Gossip(GossipOutput::Send { to, datagram }) => {
                    self.send(to, Outgoing::Datagram(datagram.into()));
                }
                Output::Gossip(GossipOutput::SendState { to, frame }) => {
                    self.send(to, Outgoing::State(frame.into()));
                }
                Output::Gossip(GossipOutput::Persist { incarnation }) => {
                    persist_incarnation(&self.incarnation_path, &self.data_dir, incarnation)
                        .map_err(io("persist the gossip incarnation"))?;
                }
                Output::Gossip(GossipOutput::Meta { member, meta }) => {
                    match meta.meta.addr.parse::<SocketAddr>() {
                        Ok(addr) => self.learn(member, addr),
                        Err(_) => {
                            tracing::warn!(%member, addr = %meta.meta.addr, "unusable address in gossip")
                        }
                    }
                }
                Output::Gossip(GossipOutput::Member { member, status, .. }) => {
                    tracing::info!(node = %self.id, %member, state = gossip_state(status.state), incarnation = status.incarnation, "member");
                }
                Output::Gossip(GossipOutput::Event(event)) => {
                    tracing::debug!(?event, "gossip event")
                }
            }
        }
        Ok(())
    }

    /// The client's answer to a core reply.
    fn answer(&self, reply: Reply) -> client::Reply {
        match reply {
            Reply::Produced { first, count } => {
                self.metrics.produced_records.inc_by(u64::from(count));
                client::Reply::Produced {
                    first: first.get(),
                    count,
                }
            }
            Reply::Records { records, next } => {
                let first = records.first().map_or(next, |(offset, _)| *offset);
                debug_assert!(
                    records
                        .iter()
                        .enumerate()
                        .all(|(i, (offset, _))| offset.get() == first.get() + i as u64),
                    "records come at consecutive offsets"
                );
                client::Reply::Records {
                    first: first.get(),
                    records: records.into_iter().map(|(_, record)| record).collect(),
                    next: next.get(),
                }
            }
            Reply::Transferring { .. } | Reply::Changed { .. } => client::Reply::Done,
            Reply::Leader { leader, .. } => client::Reply::Failed(Failure::NotLeader {
                leader: leader.map(|id| self.info(id)),
            }),
            Reply::Members { .. } => client::Reply::Status(self.status()),
            Reply::Failed(error) => client::Reply::Failed(match error {
                ClientError::NotLeader { leader } => Failure::NotLeader {
                    leader: leader.map(|id| self.info(id)),
                },
                ClientError::Lost => Failure::Lost,
                ClientError::OutOfRange { first, next } => Failure::OutOfRange {
                    first: first.get(),
                    next: next.get(),
                },
                ClientError::OutOfOrder { expected } => Failure::OutOfOrder { expected },
                ClientError::Stale { last } => Failure::Stale { last },
                ClientError::Busy => Failure::Busy,
                ClientError::Rejected(error) => Failure::BadRequest {
                    reason: error.to_string(),
                },
                ClientError::Refused(refused) => Failure::Refused {
                    reason: refused.to_string(),
                },
            }),
        }
    }

    /// Queues `outgoing` on the link to `to`, dialing it if new; drops it
    /// if the link is full or the address unknown.
    fn send(&mut self, to: NodeId, outgoing: Outgoing) {
        if !self.links.contains_key(&to) {
            let Some(&addr) = self.addrs.get(&to) else {
                self.metrics.dropped_sends.inc();
                return;
            };
            let (queue, rx) = mpsc::channel(LINK_QUEUE);
            let (addr_tx, addr_rx) = watch::channel(addr);
            tokio::spawn(link(self.endpoint.clone(), to, addr_rx, rx));
            self.links.insert(
                to,
                Link {
                    queue,
                    addr: addr_tx,
                },
            );
        }
        let link = self.links.get(&to).expect("the link was just made");
        if link.queue.try_send(outgoing).is_err() {
            self.metrics.dropped_sends.inc();
        }
    }
}

fn role_name(role: &Role) -> &'static str {
    match role {
        Role::Leader { .. } => "leader",
        Role::Candidate { .. } | Role::PreCandidate { .. } => "candidate",
        Role::Follower { .. } => "follower",
    }
}

fn gossip_state(state: GossipState) -> &'static str {
    match state {
        GossipState::Alive => "alive",
        GossipState::Suspect => "suspect",
        GossipState::Dead => "dead",
        GossipState::Left => "left",
    }
}

/// Dials `addr` as a peer; the node there must be `expect`, if given.
async fn dial(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    expect: Option<NodeId>,
) -> Result<(quinn::Connection, NodeId), String> {
    let connecting = endpoint
        .connect(addr, SERVER_NAME)
        .map_err(|error| error.to_string())?;
    let connection = connecting.await.map_err(|error| error.to_string())?;
    match tls::peer(&connection) {
        Ok(Some(Identity::Node(id))) if expect.is_none_or(|want| want == id) => {
            Ok((connection, id))
        }
        other => {
            connection.close(CLOSE_REFUSED.into(), b"not the node expected");
            Err(format!("{addr} is not the node expected: {other:?}"))
        }
    }
}

/// Finds which node answers at a join address, retrying until one does.
async fn find(
    endpoint: quinn::Endpoint,
    addr: SocketAddr,
    inputs: mpsc::Sender<Input>,
    stop: watch::Receiver<bool>,
) {
    let mut backoff = StdDuration::from_millis(100);
    while !*stop.borrow() {
        match dial(&endpoint, addr, None).await {
            Ok((connection, id)) => {
                connection.close(0u32.into(), b"found");
                let _ = inputs
                    .send(Input::Reached {
                        id,
                        addr,
                        join: true,
                    })
                    .await;
                return;
            }
            Err(error) => tracing::debug!(%addr, %error, "join address not reached yet"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(StdDuration::from_secs(2));
    }
}

/// Carries one peer's messages: one connection, one ordered stream for
/// Raft, datagrams for gossip; redialed after a loss or an address change.
async fn link(
    endpoint: quinn::Endpoint,
    to: NodeId,
    mut addr: watch::Receiver<SocketAddr>,
    mut queue: mpsc::Receiver<Outgoing>,
) {
    let mut backoff = StdDuration::from_millis(50);
    loop {
        let target = *addr.borrow_and_update();
        let connection = tokio::select! {
            dialed = dial(&endpoint, target, Some(to)) => dialed,
            changed = addr.changed() => match changed {
                Ok(()) => continue,
                Err(_) => return,
            },
        };
        match connection {
            Ok((connection, _)) => {
                backoff = StdDuration::from_millis(50);
                let mut raft: Option<quinn::SendStream> = None;
                loop {
                    tokio::select! {
                        outgoing = queue.recv() => {
                            let Some(outgoing) = outgoing else { return };
                            if let Err(error) = carry(&connection, &mut raft, outgoing).await {
                                tracing::debug!(%to, %error, "link lost");
                                break;
                            }
                        }
                        changed = addr.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            break;
                        }
                        _ = connection.closed() => break,
                    }
                }
            }
            Err(error) => tracing::debug!(%to, %error, "peer not reached"),
        }
        // Messages that wait meanwhile are kept up to the queue's bound;
        // Raft and gossip retry what is lost.
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            changed = addr.changed() => if changed.is_err() { return },
        }
        backoff = (backoff * 2).min(StdDuration::from_secs(1));
        if queue.is_closed() {
            return;
        }
    }
}

async fn carry(
    connection: &quinn::Connection,
    raft: &mut Option<quinn::SendStream>,
    outgoing: Outgoing,
) -> Result<(), String> {
    match outgoing {
        Outgoing::Raft(frame) => {
            if raft.is_none() {
                *raft = Some(connection.open_uni().await.map_err(|e| e.to_string())?);
            }
            let stream = raft.as_mut().expect("opened above");
            stream.write_chunk(frame).await.map_err(|e| e.to_string())
        }
        Outgoing::Datagram(datagram) => match connection.send_datagram(datagram) {
            Ok(()) => Ok(()),
            Err(quinn::SendDatagramError::ConnectionLost(error)) => Err(error.to_string()),
            // Too large or not supported: gossip's loss to bear.
            Err(error) => {
                tracing::debug!(%error, "gossip datagram not sent");
                Ok(())
            }
        },
        Outgoing::State(frame) => {
            let mut stream = connection.open_uni().await.map_err(|e| e.to_string())?;
            stream.write_chunk(frame).await.map_err(|e| e.to_string())?;
            stream.finish().map_err(|e| e.to_string())
        }
    }
}

/// Accepts connections until the node stops.
async fn accept(endpoint: quinn::Endpoint, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            _ = stop.changed() => return,
        };
        let Some(incoming) = incoming else { return };
        tokio::spawn(admit(incoming, shared.clone()));
    }
}

/// Completes a handshake and sends the connection where its ALPN and
/// certificate say, or refuses it before reading anything from it.
async fn admit(incoming: quinn::Incoming, shared: Arc<Shared>) {
    let remote = incoming.remote_address();
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(error) => {
            shared.metrics.rejected_connections.inc();
            tracing::info!(%remote, %error, "connection refused in the handshake");
            return;
        }
    };
    let alpn = tls::alpn(&connection);
    let who = tls::peer(&connection);
    let refuse = |why: &'static str| {
        shared.metrics.rejected_connections.inc();
        tracing::info!(%remote, why, "connection refused");
        connection.close(CLOSE_REFUSED.into(), why.as_bytes());
    };
    match (alpn.as_deref(), who) {
        (Some(ALPN_PEER), Ok(Some(Identity::Node(id)))) => {
            let _ = shared
                .inputs
                .send(Input::Reached {
                    id,
                    addr: remote,
                    join: false,
                })
                .await;
            peer_connection(connection, id, shared).await;
        }
        (Some(ALPN_PEER), _) => refuse("the peer ALPN takes node certificates only"),
        (Some(ALPN_CLIENT), Ok(Some(Identity::Client(principal)))) => {
            client_connection(connection, Some(principal), shared).await;
        }
        (Some(ALPN_CLIENT), Ok(None)) if shared.insecure_clients => {
            client_connection(connection, None, shared).await;
        }
        (Some(ALPN_CLIENT), _) => refuse("the client ALPN takes client certificates only"),
        _ => refuse("unknown ALPN"),
    }
}

/// Reads a peer's datagrams and streams into the node loop.
async fn peer_connection(connection: quinn::Connection, from: NodeId, shared: Arc<Shared>) {
    let datagrams = {
        let connection = connection.clone();
        let shared = shared.clone();
        async move {
            while let Ok(bytes) = connection.read_datagram().await {
                // Gossip bears loss: a full loop drops rather than waits.
                let _ = shared.inputs.try_send(Input::Gossip { from, bytes });
            }
        }
    };
    tokio::spawn(datagrams);
    while let Ok(stream) = connection.accept_uni().await {
        tokio::spawn(peer_stream(stream, from, shared.clone()));
    }
}

async fn peer_stream(mut stream: quinn::RecvStream, from: NodeId, shared: Arc<Shared>) {
    let mut buf = Vec::new();
    loop {
        let kind = match read_frame(&mut stream, FRAME_PAYLOAD_MAX, &mut buf).await {
            Ok(Some(kind)) => kind,
            Ok(None) => return,
            Err(error) => {
                shared.metrics.bad_frames.inc();
                tracing::debug!(%from, %error, "peer stream closed");
                let _ = stream.stop(STOP_BAD_FRAME.into());
                return;
            }
        };
        let input = match kind {
            FrameKind::Raft => match decode_payload(kind, &buf[FRAME_HEADER_BYTES..]) {
                Ok(message) => Input::Peer { from, message },
                Err(error) => {
                    shared.metrics.bad_frames.inc();
                    tracing::debug!(%from, %error, "malformed Raft message");
                    let _ = stream.stop(STOP_BAD_FRAME.into());
                    return;
                }
            },
            FrameKind::GossipState => Input::Gossip {
                from,
                bytes: Bytes::copy_from_slice(&buf),
            },
            _ => {
                shared.metrics.bad_frames.inc();
                let _ = stream.stop(STOP_BAD_FRAME.into());
                return;
            }
        };
        if shared.inputs.send(input).await.is_err() {
            return;
        }
    }
}

/// Serves a client: one request per bidirectional stream.
async fn client_connection(
    connection: quinn::Connection,
    principal: Option<String>,
    shared: Arc<Shared>,
) {
    let principal: Arc<Option<String>> = Arc::new(principal);
    while let Ok((send, recv)) = connection.accept_bi().await {
        tokio::spawn(client_stream(send, recv, principal.clone(), shared.clone()));
    }
}

/// What a request needs.
fn needs(request: &client::Request) -> Permission {
    match request {
        client::Request::Produce { .. } => Permission::Produce,
        client::Request::Consume { .. }
        | client::Request::Follow { .. }
        | client::Request::Status => Permission::Consume,
        client::Request::Transfer { .. } | client::Request::Remove { .. } => Permission::Admin,
    }
}

async fn client_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    principal: Arc<Option<String>>,
    shared: Arc<Shared>,
) {
    let mut buf = Vec::new();
    let request = match read_frame(&mut recv, client::REQUEST_PAYLOAD_MAX, &mut buf).await {
        Ok(Some(FrameKind::Request)) => {
            match decode_payload::<client::Request>(FrameKind::Request, &buf[FRAME_HEADER_BYTES..])
            {
                Ok(request) => Some(request),
                Err(error) => {
                    tracing::debug!(%error, "malformed request");
                    None
                }
            }
        }
        Ok(_) => None,
        Err(error) => {
            tracing::debug!(%error, "bad request frame");
            None
        }
    };
    drop(buf);
    let Some(request) = request else {
        shared.metrics.bad_frames.inc();
        let _ = recv.stop(STOP_BAD_FRAME.into());
        let _ = send.reset(STOP_BAD_FRAME.into());
        return;
    };
    let span = tracing::debug_span!(
        "request",
        kind = request_kind(&request),
        principal = principal.as_deref().unwrap_or("anonymous"),
    );
    async move {
        let started = std::time::Instant::now();
        let kind = request_kind(&request);
        let reply = answer(request, &principal, &shared).await;
        tracing::debug!(
            kind,
            micros = started.elapsed().as_micros() as u64,
            ok = !matches!(reply, client::Reply::Failed(_)),
            "answered"
        );
        let frame = client::encode_reply(&reply);
        if send.write_all(&frame).await.is_ok() {
            let _ = send.finish();
        }
    }
    .instrument(span)
    .await;
}

fn request_kind(request: &client::Request) -> &'static str {
    match request {
        client::Request::Produce { .. } => "produce",
        client::Request::Consume { .. } => "consume",
        client::Request::Follow { .. } => "follow",
        client::Request::Status => "status",
        client::Request::Transfer { .. } => "transfer",
        client::Request::Remove { .. } => "remove",
    }
}

/// Checks the ACL, then asks the node loop.
async fn answer(
    request: client::Request,
    principal: &Option<String>,
    shared: &Shared,
) -> client::Reply {
    match principal.as_ref() {
        Some(principal) if !shared.acl.allows(principal, needs(&request)) => {
            shared.metrics.unauthorized.inc();
            client::Reply::Failed(Failure::Unauthorized {
                principal: principal.clone(),
                needs: needs(&request).to_string(),
            })
        }
        _ => {
            let (tx, rx) = oneshot::channel();
            let asked = shared
                .inputs
                .send(Input::Client { request, reply: tx })
                .await;
            match (asked, rx.await) {
                (Ok(()), Ok(reply)) => reply,
                _ => client::Reply::Failed(Failure::Unavailable {
                    reason: "the node is stopping".into(),
                }),
            }
        }
    }
}
