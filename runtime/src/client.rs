//! The client library: Cairn from Rust, over QUIC with mutual TLS.
//!
//! Owns finding the leader, carrying one request per stream, and retrying
//! through failovers: a [`Producer`] stamps each batch with its id and
//! sequence number and retries the same stamp until it hears where the
//! batch landed, so a failover loses nothing and duplicates nothing.
//! Consumes go to any node (committed records only). It must never retry
//! a batch under a new stamp, and never turn a refusal (unauthorized, out
//! of range) into a retry.
//!
//! ```no_run
//! # async fn example(credentials: cairn_runtime::certs::Credentials) -> Result<(), cairn_runtime::client::ClientError> {
//! use cairn_runtime::client::{Client, ClientOptions};
//! let client = Client::connect(ClientOptions::new(vec!["127.0.0.1:7401".parse().unwrap()], credentials))?;
//! let mut producer = client.producer();
//! let produced = producer.send(vec!["hello".into()]).await?;
//! let records = client.consume(produced.first, 100, 1 << 20).await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cairn_proto::client::{self, Failure, Reply, Request, Stamp, Status};
use cairn_proto::{FrameKind, FRAME_PAYLOAD_MAX};

use crate::certs::{Credentials, SERVER_NAME};
use crate::tls::{self, ALPN_CLIENT};
use crate::wire::read_frame;

/// How to reach a cluster.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Any of its nodes; the client finds the leader from there.
    pub nodes: Vec<SocketAddr>,
    /// The client certificate and the cluster CA.
    pub credentials: Credentials,
    /// How long a call keeps retrying through failovers before it gives
    /// up as unavailable.
    pub retry_for: Duration,
    /// How long one attempt waits for its answer (a follow adds its wait).
    pub attempt_timeout: Duration,
}

impl ClientOptions {
    /// Options with the defaults: retry for 30 s, 5 s per attempt.
    pub fn new(nodes: Vec<SocketAddr>, credentials: Credentials) -> ClientOptions {
        ClientOptions {
            nodes,
            credentials,
            retry_for: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(5),
        }
    }
}

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// No node could be reached or none could serve in time.
    Unavailable(String),
    /// The principal may not do this.
    Unauthorized {
        /// The principal.
        principal: String,
        /// The permission it lacks.
        needs: String,
    },
    /// The offset is outside the committed, retained records.
    OutOfRange {
        /// The first retained offset.
        first: u64,
        /// The offset after the last committed record.
        next: u64,
    },
    /// The node refused the request (malformed, refused change, ...).
    Refused(String),
    /// The client could not be set up (certificates, socket).
    Setup(String),
    /// The node answered with something this client did not ask for.
    Protocol(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Unavailable(why) => write!(f, "cluster unavailable: {why}"),
            ClientError::Unauthorized { principal, needs } => {
                write!(f, "unauthorized: {principal} lacks the {needs} permission")
            }
            ClientError::OutOfRange { first, next } => write!(
                f,
                "offset out of range: the log holds offsets {first} to {next} (exclusive)"
            ),
            ClientError::Refused(why) => write!(f, "refused: {why}"),
            ClientError::Setup(why) => write!(f, "client setup: {why}"),
            ClientError::Protocol(why) => write!(f, "protocol error: {why}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Where a batch landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Produced {
    /// Its first record's offset.
    pub first: u64,
    /// Its records, at `first .. first + count`.
    pub count: u32,
}

/// Committed records at consecutive offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Records {
    /// The first record's offset.
    pub first: u64,
    /// The records.
    pub records: Vec<Bytes>,
    /// The offset to ask for next.
    pub next: u64,
}

/// A failed attempt: worth retrying elsewhere, or final.
enum Attempt {
    Retry {
        why: String,
        leader: Option<SocketAddr>,
    },
    Final(ClientError),
}

/// A connection to a cluster; cheap to clone, usable from many tasks.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: quinn::Endpoint,
    options: ClientOptions,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    connections: BTreeMap<SocketAddr, quinn::Connection>,
    leader: Option<SocketAddr>,
    /// The node to try next when no leader is known.
    next: usize,
}

impl Client {
    /// A client of the cluster at `options.nodes`. Connections are made
    /// on first use.
    pub fn connect(options: ClientOptions) -> Result<Client, ClientError> {
        if options.nodes.is_empty() {
            return Err(ClientError::Setup("no node address given".into()));
        }
        let bind: SocketAddr = if options.nodes[0].is_ipv6() {
            "[::]:0".parse().expect("a valid address")
        } else {
            "0.0.0.0:0".parse().expect("a valid address")
        };
        let mut endpoint = quinn::Endpoint::client(bind)
            .map_err(|error| ClientError::Setup(format!("bind {bind}: {error}")))?;
        let config = tls::client_config(&options.credentials, ALPN_CLIENT)
            .map_err(|error| ClientError::Setup(error.to_string()))?;
        endpoint.set_default_client_config(config);
        Ok(Client {
            inner: Arc::new(Inner {
                endpoint,
                options,
                state: Mutex::new(State::default()),
            }),
        })
    }

    /// A new idempotent producer, with a random id.
    pub fn producer(&self) -> Producer {
        Producer {
            client: self.clone(),
            id: rand::random(),
            sequence: 1,
        }
    }

    /// Committed records from `from`, from any node.
    pub async fn consume(
        &self,
        from: u64,
        max_records: u32,
        max_bytes: u32,
    ) -> Result<Records, ClientError> {
        let request = Request::Consume {
            from,
            max_records,
            max_bytes,
        };
        self.records(request, Duration::ZERO).await
    }

    /// Like `consume`, but waits up to `wait` for a record at `from`.
    pub async fn follow(
        &self,
        from: u64,
        max_records: u32,
        max_bytes: u32,
        wait: Duration,
    ) -> Result<Records, ClientError> {
        let wait_ms = wait.as_millis().min(u128::from(client::FOLLOW_WAIT_MS_MAX)) as u32;
        let request = Request::Follow {
            from,
            max_records,
            max_bytes,
            wait_ms,
        };
        self.records(request, Duration::from_millis(wait_ms.into()))
            .await
    }

    async fn records(&self, request: Request, wait: Duration) -> Result<Records, ClientError> {
        match self.call(&request, false, wait).await? {
            Reply::Records {
                first,
                records,
                next,
            } => Ok(Records {
                first,
                records,
                next,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// One node's view of the cluster (the leader's when known).
    pub async fn status(&self) -> Result<Status, ClientError> {
        match self.call(&Request::Status, false, Duration::ZERO).await? {
            Reply::Status(status) => Ok(status),
            other => Err(unexpected(&other)),
        }
    }

    /// The status of the node at `addr`, without retrying elsewhere.
    pub async fn status_of(&self, addr: SocketAddr) -> Result<Status, ClientError> {
        match self.attempt(addr, &Request::Status, Duration::ZERO).await {
            Ok(Reply::Status(status)) => Ok(status),
            Ok(other) => Err(unexpected(&other)),
            Err(Attempt::Final(error)) => Err(error),
            Err(Attempt::Retry { why, .. }) => Err(ClientError::Unavailable(why)),
        }
    }

    /// Hands leadership to voter `to`.
    pub async fn transfer(&self, to: u64) -> Result<(), ClientError> {
        self.done(Request::Transfer { to }).await
    }

    /// Removes `node` from the cluster.
    pub async fn remove(&self, node: u64) -> Result<(), ClientError> {
        self.done(Request::Remove { node }).await
    }

    async fn done(&self, request: Request) -> Result<(), ClientError> {
        match self.call(&request, true, Duration::ZERO).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends `request` until a node answers it for good: to the leader if
    /// `leader` (following redirects), else to any node; retrying on lost
    /// connections, elections and busy nodes until `retry_for` runs out.
    async fn call(
        &self,
        request: &Request,
        leader: bool,
        wait: Duration,
    ) -> Result<Reply, ClientError> {
        let deadline = tokio::time::Instant::now() + self.inner.options.retry_for;
        let mut backoff = Duration::from_millis(20);
        loop {
            let target = self.target(leader);
            let why = match self.attempt(target, request, wait).await {
                Ok(reply) => return Ok(reply),
                Err(Attempt::Final(error)) => return Err(error),
                Err(Attempt::Retry { why, leader: hint }) => {
                    let redirected = hint.is_some_and(|hint| hint != target);
                    self.learn(target, hint);
                    if redirected {
                        continue;
                    }
                    why
                }
            };
            if tokio::time::Instant::now() + backoff > deadline {
                return Err(ClientError::Unavailable(why));
            }
            tracing::debug!(%target, %why, "retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// The node to ask: the known leader (when wanted), else the next.
    fn target(&self, leader: bool) -> SocketAddr {
        let state = self.inner.state.lock().expect("client state lock");
        if leader {
            if let Some(addr) = state.leader {
                return addr;
            }
        }
        let nodes = &self.inner.options.nodes;
        nodes[state.next % nodes.len()]
    }

    /// What an attempt at `asked` taught: the leader is at `hint`, or, if
    /// none, that `asked` should be passed over next time.
    fn learn(&self, asked: SocketAddr, hint: Option<SocketAddr>) {
        let mut state = self.inner.state.lock().expect("client state lock");
        match hint {
            Some(leader) => state.leader = Some(leader),
            None => {
                if state.leader == Some(asked) {
                    state.leader = None;
                }
                state.next = state.next.wrapping_add(1);
            }
        }
    }

    async fn connection(&self, addr: SocketAddr) -> Result<quinn::Connection, String> {
        if let Some(connection) = self
            .inner
            .state
            .lock()
            .expect("client state lock")
            .connections
            .get(&addr)
            .filter(|c| c.close_reason().is_none())
            .cloned()
        {
            return Ok(connection);
        }
        let connecting = self
            .inner
            .endpoint
            .connect(addr, SERVER_NAME)
            .map_err(|error| error.to_string())?;
        let connection = tokio::time::timeout(self.inner.options.attempt_timeout, connecting)
            .await
            .map_err(|_| format!("{addr}: connection timed out"))?
            .map_err(|error| format!("{addr}: {error}"))?;
        self.inner
            .state
            .lock()
            .expect("client state lock")
            .connections
            .insert(addr, connection.clone());
        Ok(connection)
    }

    /// One request to one node.
    async fn attempt(
        &self,
        addr: SocketAddr,
        request: &Request,
        wait: Duration,
    ) -> Result<Reply, Attempt> {
        let retry = |why: String| Attempt::Retry { why, leader: None };
        let connection = self.connection(addr).await.map_err(|why| {
            if why.contains("refused") || why.contains("certificate") {
                Attempt::Final(ClientError::Setup(why))
            } else {
                retry(why)
            }
        })?;
        let exchange = async {
            let (mut send, mut recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
            send.write_all(&client::encode_request(request))
                .await
                .map_err(|e| e.to_string())?;
            send.finish().map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            match read_frame(&mut recv, FRAME_PAYLOAD_MAX, &mut buf).await {
                Ok(Some(FrameKind::Reply)) => client::decode_reply(&buf).map_err(|e| e.to_string()),
                Ok(other) => Err(format!("expected a reply frame, got {other:?}")),
                Err(error) => Err(error.to_string()),
            }
        };
        let reply = tokio::time::timeout(self.inner.options.attempt_timeout + wait, exchange)
            .await
            .map_err(|_| retry(format!("{addr}: no answer in time")))?
            .map_err(|why| retry(format!("{addr}: {why}")))?;
        match reply {
            Reply::Failed(failure) => Err(match failure {
                Failure::NotLeader { leader } => Attempt::Retry {
                    why: format!("{addr} is not the leader"),
                    leader: leader.and_then(|info| info.addr.parse().ok()),
                },
                Failure::Lost => retry("the batch was lost to a change of leader".into()),
                Failure::OutOfOrder { expected } => retry(format!(
                    "{addr} expected sequence {expected}: it lags the leader"
                )),
                Failure::Busy => retry(format!("{addr} is busy")),
                Failure::Unavailable { reason } => retry(format!("{addr}: {reason}")),
                Failure::Unauthorized { principal, needs } => {
                    Attempt::Final(ClientError::Unauthorized { principal, needs })
                }
                Failure::OutOfRange { first, next } => {
                    Attempt::Final(ClientError::OutOfRange { first, next })
                }
                Failure::Stale { last } => Attempt::Final(ClientError::Refused(format!(
                    "stale batch: the producer's last sequence is {last}"
                ))),
                Failure::BadRequest { reason } | Failure::Refused { reason } => {
                    Attempt::Final(ClientError::Refused(reason))
                }
            }),
            reply => Ok(reply),
        }
    }
}

fn unexpected(reply: &Reply) -> ClientError {
    ClientError::Protocol(format!("unexpected answer {reply:?}"))
}

/// An idempotent producer: one batch at a time, each retried under its
/// stamp until it is answered. Run many producers for many in flight.
pub struct Producer {
    client: Client,
    id: u64,
    sequence: u64,
}

impl Producer {
    /// The producer's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Appends `records` as one batch and returns where they landed, once
    /// committed. A batch answered is stored exactly once, whatever
    /// failovers happened meanwhile.
    pub async fn send(&mut self, records: Vec<Bytes>) -> Result<Produced, ClientError> {
        let request = Request::Produce {
            stamp: Some(Stamp {
                producer: self.id,
                sequence: self.sequence,
            }),
            records,
        };
        match self.client.call(&request, true, Duration::ZERO).await {
            Ok(Reply::Produced { first, count }) => {
                self.sequence += 1;
                Ok(Produced { first, count })
            }
            Ok(other) => Err(unexpected(&other)),
            // A batch not answered may or may not be stored: its stamp must
            // not be reused for other records, so the producer moves on to
            // a fresh id.
            Err(error) => {
                self.id = rand::random();
                self.sequence = 1;
                Err(error)
            }
        }
    }
}
