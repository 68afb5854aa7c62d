//! The command line's shape, its errors and exit codes, and dispatch.

mod commands;
mod profile;
mod serve;

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use cairn_runtime::certs::{CertError, Credentials};
use cairn_runtime::client::{Client, ClientError, ClientOptions};
use clap::{Args, Parser, Subcommand, ValueEnum};

pub use commands::{ClusterArgs, ConsumeArgs, ProduceArgs, TailArgs};
pub use serve::{DevArgs, ServeArgs};

/// Exit code: any other error.
pub const EXIT_ERROR: u8 = 1;
/// Exit code: bad usage (clap uses it too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the principal may not do this.
pub const EXIT_UNAUTHORIZED: u8 = 3;
/// Exit code: no node could serve.
pub const EXIT_UNAVAILABLE: u8 = 4;
/// Exit code: the offset is outside the log.
pub const EXIT_OUT_OF_RANGE: u8 = 5;

/// Cairn: a replicated, append-only commit log.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about, propagate_version = true)]
pub struct Cli {
    /// How logs are written to stderr.
    #[arg(long, env = "CAIRN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// For people.
    Pretty,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one node.
    Serve(Box<ServeArgs>),
    /// Run a local cluster with generated certificates, until Ctrl-C.
    Dev(DevArgs),
    /// Append records: lines (or JSON Lines) from stdin, or --value.
    Produce(ProduceArgs),
    /// Read committed records.
    Consume(ConsumeArgs),
    /// Follow the log: print records as they commit.
    Tail(TailArgs),
    /// See and manage the cluster.
    Cluster(ClusterArgs),
    /// Certificates for a cluster.
    Certs(CertsArgs),
}

impl Command {
    /// Nodes say what they do; client commands speak only of trouble.
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Command::Serve(_) | Command::Dev(_) => "info",
            _ => "warn",
        }
    }
}

/// `cairn certs`.
#[derive(Debug, Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    command: CertsCommand,
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Write a new CA with node and client certificates.
    Init {
        /// The directory to write to (created; must not hold a CA).
        #[arg(long, env = "CAIRN_CERTS_DIR", default_value = "certs")]
        dir: PathBuf,
        /// Node certificates to write, for nodes 1 to N.
        #[arg(long, env = "CAIRN_CERTS_NODES", default_value_t = 3)]
        nodes: u64,
        /// Client principals to write certificates for.
        #[arg(long, env = "CAIRN_CERTS_CLIENTS", value_delimiter = ',')]
        clients: Vec<String>,
    },
}

/// How a client command reaches the cluster; what is not given comes from
/// the connection profile (`cairn dev` writes one).
#[derive(Clone, Debug, Args)]
pub struct Connect {
    /// Node addresses, `host:port`, comma-separated.
    #[arg(long, env = "CAIRN_CONNECT", value_delimiter = ',', global = true)]
    pub connect: Vec<String>,
    /// The cluster CA certificate (PEM).
    #[arg(long, env = "CAIRN_CA", global = true)]
    pub ca: Option<PathBuf>,
    /// The client certificate (PEM).
    #[arg(long, env = "CAIRN_CERT", global = true)]
    pub cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, env = "CAIRN_KEY", global = true)]
    pub key: Option<PathBuf>,
    /// The connection profile [default: $XDG_CONFIG_HOME/cairn/profile.toml].
    #[arg(long, env = "CAIRN_PROFILE", global = true)]
    pub profile: Option<PathBuf>,
}

impl Connect {
    /// A client, from the flags and the profile.
    pub fn client(&self) -> Result<Client, CliError> {
        let profile = profile::Profile::find(self.profile.as_deref())?;
        let pick = |flag: &Option<PathBuf>, from: fn(&profile::Profile) -> Option<PathBuf>| {
            flag.clone().or_else(|| profile.as_ref().and_then(from))
        };
        let nodes: Vec<String> = if self.connect.is_empty() {
            profile
                .as_ref()
                .map(|p| p.nodes.clone())
                .unwrap_or_default()
        } else {
            self.connect.clone()
        };
        if nodes.is_empty() {
            return Err(CliError::Usage(
                "no cluster to connect to: give --connect (or CAIRN_CONNECT), or start `cairn dev`, which writes a profile".into(),
            ));
        }
        let nodes = resolve(&nodes)?;
        let ca = pick(&self.ca, |p| Some(p.ca.clone()))
            .ok_or_else(|| CliError::Usage("no CA certificate: give --ca".into()))?;
        let cert = pick(&self.cert, |p| p.cert.clone());
        let key = pick(&self.key, |p| p.key.clone());
        let credentials = match (cert, key) {
            (Some(cert), Some(key)) => Credentials::load(&ca, &cert, &key)?,
            (None, None) => Credentials::anonymous(&ca)?,
            _ => {
                return Err(CliError::Usage(
                    "give both --cert and --key, or neither".into(),
                ))
            }
        };
        Ok(Client::connect(ClientOptions::new(nodes, credentials))?)
    }
}

/// Resolves `host:port` names to addresses.
pub fn resolve(names: &[String]) -> Result<Vec<SocketAddr>, CliError> {
    let mut addrs = Vec::new();
    for name in names {
        let found = name
            .to_socket_addrs()
            .map_err(|error| CliError::Usage(format!("bad address {name:?}: {error}")))?;
        addrs.extend(found.take(1));
    }
    Ok(addrs)
}

/// Why a command failed, sorted by exit code.
#[derive(Debug)]
pub enum CliError {
    /// Bad flags or input.
    Usage(String),
    /// The principal may not do this.
    Unauthorized(String),
    /// No node could serve.
    Unavailable(String),
    /// The offset is outside the log.
    OutOfRange(String),
    /// Anything else.
    Other(String),
}

impl CliError {
    /// The process's exit code for this error.
    pub fn code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Unauthorized(_) => EXIT_UNAUTHORIZED,
            CliError::Unavailable(_) => EXIT_UNAVAILABLE,
            CliError::OutOfRange(_) => EXIT_OUT_OF_RANGE,
            CliError::Other(_) => EXIT_ERROR,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(what)
            | CliError::Unauthorized(what)
            | CliError::Unavailable(what)
            | CliError::OutOfRange(what)
            | CliError::Other(what) => f.write_str(what),
        }
    }
}

impl From<ClientError> for CliError {
    fn from(error: ClientError) -> Self {
        let text = error.to_string();
        match error {
            ClientError::Unauthorized { .. } => CliError::Unauthorized(text),
            ClientError::Unavailable(_) => CliError::Unavailable(text),
            ClientError::OutOfRange { .. } => CliError::OutOfRange(text),
            ClientError::Refused(_) | ClientError::Setup(_) | ClientError::Protocol(_) => {
                CliError::Other(text)
            }
        }
    }
}

impl From<CertError> for CliError {
    fn from(error: CertError) -> Self {
        CliError::Other(error.to_string())
    }
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> Self {
        CliError::Other(error.to_string())
    }
}

/// Sets up logging to stderr: `RUST_LOG` if set, else `default` for Cairn.
pub fn logging(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

/// Runs one command.
pub async fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Serve(args) => serve::serve(*args).await,
        Command::Dev(args) => serve::dev(args).await,
        Command::Produce(args) => commands::produce(args).await,
        Command::Consume(args) => commands::consume(args).await,
        Command::Tail(args) => commands::tail(args).await,
        Command::Cluster(args) => commands::cluster(args).await,
        Command::Certs(CertsArgs {
            command:
                CertsCommand::Init {
                    dir,
                    nodes,
                    clients,
                },
        }) => {
            let written = cairn_runtime::certs::init(&dir, nodes, &clients)?;
            let mut out = commands::Out::new();
            for file in written.files {
                out.line(format_args!("{}", file.display()))?;
            }
            Ok(())
        }
    }
}
