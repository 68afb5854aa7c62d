//! `cairn serve` (one node) and `cairn dev` (a local cluster).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_core::config::LogConfig;
use cairn_core::ids::NodeId;
use cairn_core::raft::machine::RaftConfig;
use cairn_runtime::acl::{Acl, Permission, Rule};
use cairn_runtime::certs::{self, Credentials};
use cairn_runtime::client::{Client, ClientOptions};
use cairn_runtime::server::{self, Running, ServeOptions};
use clap::Args;
use serde::Deserialize;

use super::commands::Out;
use super::profile::Profile;
use super::{resolve, CliError};

/// `cairn serve`: every flag may also come from the config file.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServeArgs {
    /// A TOML file with any of these settings, by flag name (`data-dir =
    /// "..."`); flags and environment variables win over it.
    #[arg(long, env = "CAIRN_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Where the node keeps its log and state.
    #[arg(long, env = "CAIRN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The UDP address to listen on [default: 127.0.0.1:7401].
    #[arg(long, env = "CAIRN_LISTEN")]
    listen: Option<String>,
    /// The address peers reach this node at [default: the listen address].
    #[arg(long, env = "CAIRN_ADVERTISE")]
    advertise: Option<String>,
    /// Addresses of nodes to join through, comma-separated.
    #[arg(long, env = "CAIRN_JOIN", value_delimiter = ',')]
    #[serde(default)]
    join: Vec<String>,
    /// The founding voters' ids, comma-separated, the same on each of
    /// them; other nodes join by gossip as learners.
    #[arg(long, env = "CAIRN_BOOTSTRAP", value_delimiter = ',')]
    #[serde(default)]
    bootstrap: Vec<u64>,
    /// Voters to keep as nodes join and leave [default: 3].
    #[arg(long, env = "CAIRN_VOTERS")]
    voters: Option<usize>,
    /// Seconds gossip must hold a node dead before it is removed [default: 60].
    #[arg(long, env = "CAIRN_DEAD_AFTER_SECS")]
    dead_after_secs: Option<u64>,
    /// The cluster CA certificate.
    #[arg(long, env = "CAIRN_CA")]
    ca: Option<PathBuf>,
    /// This node's certificate (its id is in it).
    #[arg(long, env = "CAIRN_CERT")]
    cert: Option<PathBuf>,
    /// This node's key.
    #[arg(long, env = "CAIRN_KEY")]
    key: Option<PathBuf>,
    /// The ACL file; the node does not start without a readable one.
    #[arg(long, env = "CAIRN_ACL")]
    acl: Option<PathBuf>,
    /// Serve Prometheus `/metrics`, `/livez` and `/readyz` over HTTP here.
    #[arg(long, env = "CAIRN_METRICS")]
    metrics: Option<String>,
    /// Bytes per log segment [default: 128 MiB].
    #[arg(long, env = "CAIRN_SEGMENT_BYTES")]
    segment_bytes: Option<u64>,
}

impl ServeArgs {
    /// The flags over the config file.
    fn merged(self) -> Result<ServeArgs, CliError> {
        let Some(path) = &self.config else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|error| CliError::Usage(format!("config {}: {error}", path.display())))?;
        let file: ServeArgs = toml::from_str(&text).map_err(|error| {
            CliError::Usage(format!("config {}: {}", path.display(), error.message()))
        })?;
        Ok(ServeArgs {
            config: self.config,
            data_dir: self.data_dir.or(file.data_dir),
            listen: self.listen.or(file.listen),
            advertise: self.advertise.or(file.advertise),
            join: if self.join.is_empty() {
                file.join
            } else {
                self.join
            },
            bootstrap: if self.bootstrap.is_empty() {
                file.bootstrap
            } else {
                self.bootstrap
            },
            voters: self.voters.or(file.voters),
            dead_after_secs: self.dead_after_secs.or(file.dead_after_secs),
            ca: self.ca.or(file.ca),
            cert: self.cert.or(file.cert),
            key: self.key.or(file.key),
            acl: self.acl.or(file.acl),
            metrics: self.metrics.or(file.metrics),
            segment_bytes: self.segment_bytes.or(file.segment_bytes),
        })
    }

    fn options(self) -> Result<ServeOptions, CliError> {
        let args = self.merged()?;
        let need = |value: Option<PathBuf>, flag: &str| {
            value.ok_or_else(|| CliError::Usage(format!("--{flag} is required")))
        };
        let credentials = Credentials::load(
            &need(args.ca, "ca")?,
            &need(args.cert, "cert")?,
            &need(args.key, "key")?,
        )?;
        let acl = Acl::load(&need(args.acl, "acl")?).map_err(|e| CliError::Other(e.to_string()))?;
        let listen = one_addr(args.listen.as_deref().unwrap_or("127.0.0.1:7401"))?;
        let advertise = args.advertise.as_deref().map(one_addr).transpose()?;
        let mut log = LogConfig::default();
        if let Some(bytes) = args.segment_bytes {
            log.segment_bytes = bytes;
        }
        Ok(ServeOptions {
            data_dir: need(args.data_dir, "data-dir")?,
            listen,
            advertise,
            join: resolve(&args.join)?,
            bootstrap: args.bootstrap.into_iter().map(NodeId).collect(),
            voters: args.voters.unwrap_or(3),
            dead_after: Duration::from_secs(args.dead_after_secs.unwrap_or(60)),
            credentials,
            acl,
            insecure_clients: false,
            log,
            raft: RaftConfig::default(),
            gossip: server::GOSSIP,
            metrics: args.metrics.as_deref().map(one_addr).transpose()?,
        })
    }
}

fn one_addr(name: &str) -> Result<SocketAddr, CliError> {
    resolve(&[name.to_string()])?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::Usage(format!("{name:?} resolves to no address")))
}

fn start_error(error: server::ServeError) -> CliError {
    CliError::Other(format!("node failed: {error}"))
}

/// Waits for Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs one node until a signal, then stops it gracefully.
pub async fn serve(args: ServeArgs) -> Result<(), CliError> {
    let options = args.options()?;
    if options.data_dir.as_os_str().is_empty() {
        return Err(CliError::Usage("--data-dir is empty".into()));
    }
    let running = server::start(options).await.map_err(start_error)?;
    tracing::info!(node = %running.id, addr = %running.addr, metrics = ?running.metrics_addr, "serving; SIGTERM or Ctrl-C stops");
    let stopper = running.stopper();
    let wait = running.wait();
    tokio::pin!(wait);
    tokio::select! {
        result = &mut wait => return result.map_err(start_error),
        () = stop_signal() => {}
    }
    let _ = stopper.send(true);
    wait.await.map_err(start_error)
}

/// `cairn dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Nodes in the cluster.
    #[arg(long, env = "CAIRN_DEV_NODES", default_value_t = 3)]
    nodes: u64,
    /// Keep data and certificates here instead of a temporary directory
    /// (kept after the cluster stops).
    #[arg(long, env = "CAIRN_DEV_DIR")]
    dir: Option<PathBuf>,
    /// Where to write the connection profile [default:
    /// $XDG_CONFIG_HOME/cairn/profile.toml].
    #[arg(long, env = "CAIRN_PROFILE")]
    profile: Option<PathBuf>,
    /// INSECURE: let clients in without a certificate, allowed everything.
    #[arg(long)]
    insecure_dev: bool,
}

/// Starts a local cluster, writes the profile, waits for Ctrl-C.
pub async fn dev(args: DevArgs) -> Result<(), CliError> {
    if !(1..=9).contains(&args.nodes) {
        return Err(CliError::Usage("--nodes must be 1 to 9".into()));
    }
    let temporary;
    let dir: PathBuf = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temporary = tempfile::Builder::new().prefix("cairn-dev-").tempdir()?;
            temporary.path().to_path_buf()
        }
    };
    let certs_dir = dir.join("certs");
    if !certs_dir.join("ca.pem").exists() {
        certs::init(&certs_dir, args.nodes, &["dev".into()])?;
    }
    let acl = Acl::new(vec![Rule {
        principal: "dev".into(),
        permissions: vec![Permission::Produce, Permission::Consume, Permission::Admin],
    }]);
    let mut out = Out::new();
    if args.insecure_dev {
        eprintln!("cairn dev: WARNING: --insecure-dev: clients connect WITHOUT a certificate and may do ANYTHING. Never use this outside your own machine.");
    }
    let mut nodes: Vec<Running> = Vec::new();
    for id in 1..=args.nodes {
        let options = ServeOptions {
            data_dir: dir.join(format!("node-{id}")),
            listen: "127.0.0.1:0".parse().expect("a valid address"),
            advertise: None,
            join: nodes.first().map(|n| vec![n.addr]).unwrap_or_default(),
            bootstrap: (1..=args.nodes).map(NodeId).collect(),
            voters: args.nodes.min(5) as usize,
            dead_after: Duration::from_secs(60),
            credentials: Credentials::load_named(&certs_dir, &format!("node-{id}"))?,
            acl: acl.clone(),
            insecure_clients: args.insecure_dev,
            log: LogConfig::default(),
            raft: RaftConfig::default(),
            gossip: server::GOSSIP,
            metrics: None,
        };
        nodes.push(server::start(options).await.map_err(start_error)?);
    }
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
    let profile = Profile {
        nodes: addrs.clone(),
        ca: certs_dir.join("ca.pem"),
        cert: (!args.insecure_dev).then(|| certs_dir.join("client-dev.pem")),
        key: (!args.insecure_dev).then(|| certs_dir.join("client-dev.key")),
    };
    let leader = wait_for_leader(&profile).await;
    let profile_path = args.profile.clone().or_else(Profile::default_path);
    if let Some(path) = &profile_path {
        profile.write(path)?;
    }
    out.line(format_args!(
        "cairn dev: {} nodes up on {}; leader: {}",
        nodes.len(),
        addrs.join(", "),
        leader.map_or("none yet".to_string(), |id| format!("node {id}"))
    ))?;
    out.line(format_args!("  data and certificates: {}", dir.display()))?;
    match &profile_path {
        Some(path) => out.line(format_args!(
            "  profile: {} (the other commands use it; no flags needed)",
            path.display()
        ))?,
        None => out.line(format_args!(
            "  no profile written (no HOME); connect with --connect {} --ca {}",
            addrs.join(","),
            profile.ca.display()
        ))?,
    }
    out.line(format_args!("  try, in another terminal:"))?;
    out.line(format_args!(
        "    seq 1000 | cargo run --release -- produce"
    ))?;
    out.line(format_args!(
        "    cargo run --release -- consume --from start"
    ))?;
    out.line(format_args!("    cargo run --release -- cluster status"))?;
    out.line(format_args!("  Ctrl-C stops the cluster."))?;
    out.flush()?;
    stop_signal().await;
    out.line(format_args!("cairn dev: stopping"))?;
    out.flush()?;
    let mut failed = None;
    for node in nodes {
        if let Err(error) = node.stop().await {
            failed = Some(start_error(error));
        }
    }
    if let Some(path) = &profile_path {
        // Only our own profile is removed: another cluster may have
        // written its own since.
        if Profile::find(Some(path)).ok().flatten().as_ref() == Some(&profile) {
            let _ = std::fs::remove_file(path);
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Waits up to 10 s for a leader; its id, if one was found.
async fn wait_for_leader(profile: &Profile) -> Option<u64> {
    let ca: &Path = &profile.ca;
    let credentials = match (&profile.cert, &profile.key) {
        (Some(cert), Some(key)) => Credentials::load(ca, cert, key).ok()?,
        _ => Credentials::anonymous(ca).ok()?,
    };
    let nodes = resolve(&profile.nodes).ok()?;
    let mut options = ClientOptions::new(nodes, credentials);
    options.retry_for = Duration::from_secs(1);
    let client = Client::connect(options).ok()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if let Ok(status) = client.status().await {
            if let Some(leader) = status.leader {
                return Some(leader.id);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}
