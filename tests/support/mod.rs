//! Real `cairn serve` processes on loopback, for the multi-process tests.
//!
//! Owns starting, killing and restarting node processes with generated
//! certificates, and clients that reach them. It must never share state
//! with a node but through its files and its port, as a deployment would.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cairn::runtime::certs::{self, Credentials};
use cairn::runtime::client::{Client, ClientOptions};

/// The ACL every test cluster runs with: alice produces and consumes, ops
/// administers; bob has no rule.
pub const ACL: &str =
    "[[allow]]\nprincipal = \"alice\"\npermissions = [\"produce\", \"consume\"]\n\
                       [[allow]]\nprincipal = \"ops\"\npermissions = [\"admin\", \"consume\"]\n";

/// A cluster of node processes.
pub struct Cluster {
    /// Its directory: certificates, ACL, data, logs.
    pub dir: tempfile::TempDir,
    /// Each node's address, node `i + 1` at `addrs[i]`.
    pub addrs: Vec<SocketAddr>,
    /// Each node's metrics address (HTTP).
    pub metrics: Vec<SocketAddr>,
    /// Each node's process, while it runs.
    pub children: Vec<Option<Child>>,
    /// How many times each node was started (names its log file).
    starts: Vec<u32>,
}

/// A free UDP port on loopback (free when asked; a race with other
/// processes is possible but rare).
fn free_addr() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a loopback port");
    socket.local_addr().expect("a bound socket has an address")
}

/// A free TCP port on loopback.
fn free_tcp_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener
        .local_addr()
        .expect("a bound listener has an address")
}

/// `GET path` over HTTP/1.1: the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {text:?}")))?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Ok((code, body.to_string()))
}

impl Cluster {
    /// Writes certificates (nodes 1..=n; clients alice, bob, ops) and an
    /// ACL, and starts `n` nodes, all founding voters.
    pub fn start(n: u64) -> Cluster {
        let dir = tempfile::tempdir().expect("a temporary directory");
        certs::init(
            &dir.path().join("certs"),
            n,
            &["alice".into(), "bob".into(), "ops".into()],
        )
        .expect("certificates");
        std::fs::write(dir.path().join("acl.toml"), ACL).expect("write the ACL");
        let addrs = (0..n).map(|_| free_addr()).collect();
        let metrics = (0..n).map(|_| free_tcp_addr()).collect();
        let mut cluster = Cluster {
            dir,
            addrs,
            metrics,
            children: (0..n).map(|_| None).collect(),
            starts: vec![0; n as usize],
        };
        for id in 1..=n {
            cluster.start_node(id);
        }
        cluster
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts node `id` (again).
    pub fn start_node(&mut self, id: u64) {
        let i = (id - 1) as usize;
        self.starts[i] += 1;
        let log = std::fs::File::create(self.path(&format!("node-{id}.{}.log", self.starts[i])))
            .expect("a log file");
        let join: Vec<String> = self.addrs.iter().map(|a| a.to_string()).collect();
        let bootstrap: Vec<String> = (1..=self.addrs.len()).map(|i| i.to_string()).collect();
        let certs = self.path("certs");
        let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .arg("serve")
            .arg("--data-dir")
            .arg(self.path(&format!("data-{id}")))
            .arg("--listen")
            .arg(self.addrs[i].to_string())
            .arg("--join")
            .arg(join.join(","))
            .arg("--bootstrap")
            .arg(bootstrap.join(","))
            .arg("--ca")
            .arg(certs.join("ca.pem"))
            .arg("--cert")
            .arg(certs.join(format!("node-{id}.pem")))
            .arg("--key")
            .arg(certs.join(format!("node-{id}.key")))
            .arg("--acl")
            .arg(self.path("acl.toml"))
            .arg("--metrics")
            .arg(self.metrics[i].to_string())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start cairn serve");
        self.children[i] = Some(child);
    }

    /// Kills node `id` with SIGKILL and reaps it.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.children[(id - 1) as usize].take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
        }
    }

    /// Sends node `id` SIGTERM and waits (up to `within`) for it to exit;
    /// its exit status.
    pub fn terminate(&mut self, id: u64, within: Duration) -> std::process::ExitStatus {
        let mut child = self.children[(id - 1) as usize]
            .take()
            .expect("the node runs");
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "SIGTERM sent");
        let poll = Duration::from_millis(20);
        for _ in 0..=within.as_millis() / poll.as_millis() {
            if let Some(status) = child.try_wait().expect("poll the child") {
                return status;
            }
            std::thread::sleep(poll);
        }
        let _ = child.kill();
        panic!("node {id} did not exit within {within:?}\n{}", self.logs());
    }

    /// Credentials of a client named in `certs init`.
    pub fn credentials(&self, client: &str) -> Credentials {
        Credentials::load_named(&self.path("certs"), &format!("client-{client}"))
            .expect("client credentials")
    }

    /// A client of every node.
    pub fn client(&self, name: &str) -> Client {
        self.client_of(name, self.addrs.clone())
    }

    /// A client of the given nodes only.
    pub fn client_of(&self, name: &str, nodes: Vec<SocketAddr>) -> Client {
        let mut options = ClientOptions::new(nodes, self.credentials(name));
        options.retry_for = Duration::from_secs(30);
        Client::connect(options).expect("a client")
    }

    /// The certificates directory.
    pub fn certs(&self) -> PathBuf {
        self.path("certs")
    }

    /// Every node's log, for a failure message.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        let mut names: Vec<_> = std::fs::read_dir(self.dir.path())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        names.sort();
        for path in names
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
        {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            all.push_str(&format!("== {}\n", path.display()));
            for line in tail.into_iter().rev() {
                all.push_str(line);
                all.push('\n');
            }
        }
        all
    }

    /// Waits until some node names a leader; its id.
    pub async fn leader(&self) -> u64 {
        let client = self.client("ops");
        for _ in 0..300 {
            for &addr in &self.addrs {
                if let Ok(status) = client.status_of(addr).await {
                    if status.role == "leader" {
                        return status.node.id;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no leader within 30 s\n{}", self.logs());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
