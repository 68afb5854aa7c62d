//! The client commands: produce, consume, tail, cluster.

use std::fmt;
use std::io::{BufRead, Write};
use std::time::Duration;

use bytes::Bytes;
use cairn_proto::client::Status;
use cairn_runtime::client::Records;
use clap::{Args, Subcommand, ValueEnum};

use super::{CliError, Connect};

/// The most bytes of records one produce request carries.
const BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Buffered standard output. A closed pipe (`| head`) ends the process
/// quietly, as it would a shell tool.
pub struct Out {
    out: std::io::BufWriter<std::io::Stdout>,
}

impl Out {
    /// Standard output, buffered.
    pub fn new() -> Out {
        Out {
            out: std::io::BufWriter::new(std::io::stdout()),
        }
    }

    /// Writes one line.
    pub fn line(&mut self, line: fmt::Arguments<'_>) -> Result<(), CliError> {
        let written = self
            .out
            .write_fmt(line)
            .and_then(|()| self.out.write_all(b"\n"));
        self.check(written)
    }

    /// Writes raw bytes and a newline.
    pub fn raw(&mut self, bytes: &[u8]) -> Result<(), CliError> {
        let written = self
            .out
            .write_all(bytes)
            .and_then(|()| self.out.write_all(b"\n"));
        self.check(written)
    }

    /// Flushes what is buffered.
    pub fn flush(&mut self) -> Result<(), CliError> {
        let flushed = self.out.flush();
        self.check(flushed)
    }

    fn check(&mut self, result: std::io::Result<()>) -> Result<(), CliError> {
        match result {
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
            other => Ok(other?),
        }
    }
}

/// How `produce` reads standard input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// Each line is a record.
    Lines,
    /// Each line is a JSON value, checked, stored as written.
    Json,
}

/// `cairn produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    connect: Connect,
    /// A record to produce instead of reading stdin (repeatable).
    #[arg(long)]
    value: Vec<String>,
    /// How stdin is read.
    #[arg(long, env = "CAIRN_INPUT_FORMAT", value_enum, default_value_t = InputFormat::Lines)]
    format: InputFormat,
    /// The most records per batch.
    #[arg(long, env = "CAIRN_BATCH", default_value_t = 1000)]
    batch: usize,
}

/// Produces the records and prints each one's offset, a line each.
pub async fn produce(args: ProduceArgs) -> Result<(), CliError> {
    if args.batch == 0 {
        return Err(CliError::Usage("--batch must be at least 1".into()));
    }
    let client = args.connect.client()?;
    let mut producer = client.producer();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, CliError>>(4 * args.batch);
    if args.value.is_empty() {
        let format = args.format;
        tokio::task::spawn_blocking(move || read_stdin(format, &tx));
    } else {
        for value in args.value {
            // The channel holds them all: it was sized for a batch or more.
            if tx.try_send(Ok(Bytes::from(value))).is_err() {
                return Err(CliError::Usage(
                    "too many --value records; use stdin".into(),
                ));
            }
        }
        drop(tx);
    }
    let mut out = Out::new();
    let mut batch: Vec<Bytes> = Vec::new();
    let mut ended = false;
    while !ended {
        // Wait for one record, then take whatever else is ready.
        match rx.recv().await {
            Some(record) => batch.push(record?),
            None => break,
        }
        let mut bytes = batch[0].len();
        while batch.len() < args.batch && bytes < BATCH_BYTES_MAX {
            match rx.try_recv() {
                Ok(record) => {
                    let record = record?;
                    bytes += record.len();
                    batch.push(record);
                }
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    ended = true;
                    break;
                }
            }
        }
        let produced = producer.send(std::mem::take(&mut batch)).await?;
        for offset in produced.first..produced.first + u64::from(produced.count) {
            out.line(format_args!("{offset}"))?;
        }
        out.flush()?;
    }
    Ok(())
}

fn read_stdin(format: InputFormat, tx: &tokio::sync::mpsc::Sender<Result<Bytes, CliError>>) {
    let stdin = std::io::stdin();
    for (number, line) in stdin.lock().lines().enumerate() {
        let record = match line {
            Ok(line) => match format {
                InputFormat::Lines => Ok(Bytes::from(line)),
                InputFormat::Json => match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(_) => Ok(Bytes::from(line)),
                    Err(error) => Err(CliError::Usage(format!(
                        "stdin line {}: not JSON: {error}",
                        number + 1
                    ))),
                },
            },
            Err(error) => Err(CliError::Other(format!("stdin: {error}"))),
        };
        let failed = record.is_err();
        if tx.blocking_send(record).is_err() || failed {
            return;
        }
    }
}

/// How records are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// `{"offset":N,"value":"..."}` a line each (`"value_hex"` for bytes
    /// that are not UTF-8).
    Json,
    /// The record's bytes and a newline.
    Raw,
}

/// Where to start reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// The first retained record.
    Start,
    /// After the last committed record.
    End,
    /// This offset.
    At(u64),
    /// This many records before the end.
    Back(u64),
}

fn parse_from(text: &str) -> Result<Position, String> {
    match text {
        "start" => Ok(Position::Start),
        "end" => Ok(Position::End),
        _ => if let Some(back) = text.strip_prefix('-') {
            back.parse().map(Position::Back)
        } else {
            text.parse().map(Position::At)
        }
        .map_err(|_| format!("{text:?} is not start, end, an offset or -N")),
    }
}

impl Position {
    fn offset(self, status: &Status) -> u64 {
        match self {
            Position::Start => status.first_offset,
            Position::End => status.commit_offset,
            Position::At(offset) => offset,
            Position::Back(back) => status
                .commit_offset
                .saturating_sub(back)
                .max(status.first_offset),
        }
    }
}

/// `cairn consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    connect: Connect,
    /// Where to start: start, end, an offset, or -N (N before the end).
    #[arg(long, env = "CAIRN_FROM", value_parser = parse_from, allow_hyphen_values = true, default_value = "start")]
    from: Position,
    /// The most records to print [default: up to the end of the log as
    /// it was when the command began].
    #[arg(long)]
    count: Option<u64>,
    /// How records are printed.
    #[arg(long, env = "CAIRN_OUTPUT_FORMAT", value_enum, default_value_t = OutputFormat::Json)]
    format: OutputFormat,
}

fn print(out: &mut Out, format: OutputFormat, records: &Records) -> Result<(), CliError> {
    for (i, record) in records.records.iter().enumerate() {
        let offset = records.first + i as u64;
        match format {
            OutputFormat::Raw => out.raw(record)?,
            OutputFormat::Json => match std::str::from_utf8(record) {
                Ok(text) => out.line(format_args!(
                    "{{\"offset\":{offset},\"value\":{}}}",
                    serde_json::Value::from(text)
                ))?,
                Err(_) => {
                    let hex: String = record.iter().map(|b| format!("{b:02x}")).collect();
                    out.line(format_args!(
                        "{{\"offset\":{offset},\"value_hex\":\"{hex}\"}}"
                    ))?
                }
            },
        }
    }
    Ok(())
}

/// Prints committed records from `--from`, up to `--count` or to the end.
pub async fn consume(args: ConsumeArgs) -> Result<(), CliError> {
    let client = args.connect.client()?;
    let status = client.status().await?;
    let mut next = args.from.offset(&status);
    let end = match args.count {
        Some(count) => next.saturating_add(count),
        None => status.commit_offset,
    };
    if next > end && args.count.is_none() {
        // Past the end: the node says how far the log goes.
        client.consume(next, 1, 1).await?;
    }
    let mut out = Out::new();
    while next < end {
        let want = (end - next).min(u64::from(u32::MAX)) as u32;
        let records = if args.count.is_some() {
            client
                .follow(next, want, 1 << 20, Duration::from_secs(10))
                .await?
        } else {
            client.consume(next, want, 1 << 20).await?
        };
        if records.records.is_empty() && args.count.is_none() {
            break;
        }
        print(&mut out, args.format, &records)?;
        next = records.next;
    }
    out.flush()
}

/// `cairn tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    connect: Connect,
    /// Where to start: start, end, an offset, or -N.
    #[arg(long, env = "CAIRN_FROM", value_parser = parse_from, allow_hyphen_values = true, default_value = "end")]
    from: Position,
    /// How records are printed.
    #[arg(long, env = "CAIRN_OUTPUT_FORMAT", value_enum, default_value_t = OutputFormat::Json)]
    format: OutputFormat,
}

/// Follows the log until interrupted, printing records as they commit.
pub async fn tail(args: TailArgs) -> Result<(), CliError> {
    let client = args.connect.client()?;
    let status = client.status().await?;
    let mut next = args.from.offset(&status);
    let mut out = Out::new();
    loop {
        let records = client
            .follow(next, 10_000, 1 << 20, Duration::from_secs(10))
            .await?;
        print(&mut out, args.format, &records)?;
        out.flush()?;
        next = records.next;
    }
}

/// `cairn cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    connect: Connect,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Each node's role, term, leader and offsets.
    Status,
    /// The members, their roles and gossip's word on them.
    Members,
    /// The leader.
    Leader,
    /// Hand leadership to a voter.
    Transfer {
        /// The voter's id.
        to: u64,
    },
    /// Remove a node from the cluster.
    Remove {
        /// The node's id.
        node: u64,
    },
}

/// Shows or changes the cluster.
pub async fn cluster(args: ClusterArgs) -> Result<(), CliError> {
    let client = args.connect.client()?;
    let mut out = Out::new();
    match args.command {
        ClusterCommand::Status => {
            let status = client.status().await?;
            out.line(format_args!(
                "{:<6} {:<22} {:<10} {:>6} {:>8} {:>12} {:>12}",
                "node", "address", "role", "term", "leader", "first", "commit"
            ))?;
            for member in &status.members {
                let addr = member.node.addr.parse().ok();
                let line = match addr {
                    Some(addr) => client.status_of(addr).await.ok(),
                    None => None,
                };
                match line {
                    Some(s) => out.line(format_args!(
                        "{:<6} {:<22} {:<10} {:>6} {:>8} {:>12} {:>12}",
                        s.node.id,
                        s.node.addr,
                        s.role,
                        s.term,
                        s.leader.map_or("-".to_string(), |l| l.id.to_string()),
                        s.first_offset,
                        s.commit_offset
                    ))?,
                    None => out.line(format_args!(
                        "{:<6} {:<22} {:<10}",
                        member.node.id, member.node.addr, "unreachable"
                    ))?,
                }
            }
        }
        ClusterCommand::Members => {
            let status = client.status().await?;
            out.line(format_args!(
                "{:<6} {:<22} {:<8} {:<8}",
                "node", "address", "raft", "gossip"
            ))?;
            for member in &status.members {
                out.line(format_args!(
                    "{:<6} {:<22} {:<8} {:<8}",
                    member.node.id, member.node.addr, member.role, member.state
                ))?;
            }
        }
        ClusterCommand::Leader => {
            let status = client.status().await?;
            match status.leader {
                Some(leader) => out.line(format_args!("{} {}", leader.id, leader.addr))?,
                None => return Err(CliError::Unavailable("no leader known".into())),
            }
        }
        ClusterCommand::Transfer { to } => {
            client.transfer(to).await?;
            out.line(format_args!("leadership is moving to node {to}"))?;
        }
        ClusterCommand::Remove { node } => {
            client.remove(node).await?;
            out.line(format_args!("node {node} removed"))?;
        }
    }
    out.flush()
}
