//! Real `cairn serve` processes on loopback, for the multi-process tests.
//!
//! Owns starting, killing and restarting node processes with generated
//! certificates, and clients that reach them. It must never share state
//! with a node but through its files and its port, as a deployment would.

#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
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
        let mut cluster = Cluster {
            dir,
            addrs,
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
