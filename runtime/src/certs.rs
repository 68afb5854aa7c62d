//! Certificates: a cluster CA, node certificates and client certificates.
//!
//! Owns their generation (`cairn certs init`, with rcgen), the names they
//! carry and how those names are read back. A node certificate names its
//! node as the URI `cairn://node/<id>` and serves the DNS name
//! [`SERVER_NAME`]; a client certificate names its principal as
//! `cairn://client/<name>` and can only authenticate a client (no server
//! use, no node URI). So a client certificate can never pass for a node,
//! and a node's identity is its certificate, whatever address it has.
//! It must never hand out a private key it did not write with owner-only
//! permissions.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use cairn_core::ids::NodeId;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The DNS name every node certificate serves, and every dialer asks for:
/// nodes are told apart by their node URI, not by a host name.
pub const SERVER_NAME: &str = "cairn-node";

const NODE_URI: &str = "cairn://node/";
const CLIENT_URI: &str = "cairn://client/";

/// Who a certificate speaks for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Identity {
    /// A node of the cluster.
    Node(NodeId),
    /// A client, by principal name.
    Client(String),
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Node(id) => write!(f, "node {id}"),
            Identity::Client(name) => write!(f, "client {name}"),
        }
    }
}

/// Why certificates could not be made, read or understood.
#[derive(Debug)]
pub enum CertError {
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// A PEM file held nothing usable.
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
    /// Generation failed.
    Generate(rcgen::Error),
    /// A principal name is not `[A-Za-z0-9._-]{1,64}`.
    BadName(String),
    /// A certificate names no node and no client, or is not X.509.
    NoIdentity(String),
    /// The directory already holds a CA: nothing was overwritten.
    Exists(PathBuf),
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            CertError::Pem { path, what } => write!(f, "{}: {what}", path.display()),
            CertError::Generate(error) => write!(f, "certificate generation failed: {error}"),
            CertError::BadName(name) => write!(
                f,
                "bad principal name {name:?}: use 1 to 64 of A-Z a-z 0-9 . _ -"
            ),
            CertError::NoIdentity(what) => write!(f, "certificate names no node or client: {what}"),
            CertError::Exists(path) => write!(
                f,
                "{} already exists; remove the directory or choose another",
                path.display()
            ),
        }
    }
}

impl std::error::Error for CertError {}

impl From<rcgen::Error> for CertError {
    fn from(error: rcgen::Error) -> Self {
        CertError::Generate(error)
    }
}

/// A certificate chain and its key, as loaded for TLS.
#[derive(Debug)]
pub struct Credentials {
    /// The cluster CA's certificates (the trust roots).
    pub roots: Vec<CertificateDer<'static>>,
    /// This party's certificate chain, leaf first (empty: anonymous).
    pub chain: Vec<CertificateDer<'static>>,
    /// Its private key (`None`: anonymous).
    pub key: Option<PrivateKeyDer<'static>>,
}

impl Clone for Credentials {
    fn clone(&self) -> Self {
        Credentials {
            roots: self.roots.clone(),
            chain: self.chain.clone(),
            key: self.key.as_ref().map(PrivateKeyDer::clone_key),
        }
    }
}

impl Credentials {
    /// Loads a CA certificate, a certificate chain and its key from PEM
    /// files.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Credentials, CertError> {
        let roots = read_certs(ca)?;
        let chain = read_certs(cert)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|error| CertError::Pem {
            path: key.to_path_buf(),
            what: error.to_string(),
        })?;
        Ok(Credentials {
            roots,
            chain,
            key: Some(key),
        })
    }

    /// Trusts the CA in `ca` and presents no certificate: for nodes that
    /// let clients in without one (`cairn dev --insecure-dev`).
    pub fn anonymous(ca: &Path) -> Result<Credentials, CertError> {
        Ok(Credentials {
            roots: read_certs(ca)?,
            chain: Vec::new(),
            key: None,
        })
    }

    /// Loads the files `cairn certs init` wrote for `name` (`node-1`,
    /// `client-alice`) in `dir`.
    pub fn load_named(dir: &Path, name: &str) -> Result<Credentials, CertError> {
        Credentials::load(
            &dir.join("ca.pem"),
            &dir.join(format!("{name}.pem")),
            &dir.join(format!("{name}.key")),
        )
    }

    /// Who the leaf certificate speaks for.
    pub fn identity(&self) -> Result<Identity, CertError> {
        let leaf = self
            .chain
            .first()
            .ok_or_else(|| CertError::NoIdentity("empty chain".into()))?;
        identity(leaf)
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let pem = |what: String| CertError::Pem {
        path: path.to_path_buf(),
        what,
    };
    let bytes = fs::read(path).map_err(|error| CertError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem(error.to_string()))?;
    if certs.is_empty() {
        return Err(pem("no certificate in the file".into()));
    }
    Ok(certs)
}

/// Who a (verified) certificate speaks for: its node URI or client URI.
pub fn identity(cert: &CertificateDer<'_>) -> Result<Identity, CertError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|error| CertError::NoIdentity(error.to_string()))?;
    let sans = parsed
        .subject_alternative_name()
        .map_err(|error| CertError::NoIdentity(error.to_string()))?
        .ok_or_else(|| CertError::NoIdentity("no subject alternative name".into()))?;
    for name in &sans.value.general_names {
        if let x509_parser::extensions::GeneralName::URI(uri) = name {
            if let Some(id) = uri.strip_prefix(NODE_URI) {
                if let Ok(id) = id.parse::<u64>() {
                    if id > 0 {
                        return Ok(Identity::Node(NodeId(id)));
                    }
                }
            } else if let Some(principal) = uri.strip_prefix(CLIENT_URI) {
                if valid_name(principal) {
                    return Ok(Identity::Client(principal.to_string()));
                }
            }
        }
    }
    Err(CertError::NoIdentity("no cairn:// URI".into()))
}

/// Whether `name` may name a client: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// What `init` wrote.
#[derive(Debug)]
pub struct Written {
    /// Every file, in the order written.
    pub files: Vec<PathBuf>,
}

/// A CA able to sign: its certificate and key.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// Writes a new CA to `dir`, with certificates for nodes `1..=nodes` and
/// for each client in `clients`. Refuses a directory that holds a CA
/// already: a second CA would split the cluster.
pub fn init(dir: &Path, nodes: u64, clients: &[String]) -> Result<Written, CertError> {
    if let Some(bad) = clients.iter().find(|name| !valid_name(name)) {
        return Err(CertError::BadName(bad.clone()));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| CertError::Io { path, error }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let ca_path = dir.join("ca.pem");
    if ca_path.exists() {
        return Err(CertError::Exists(ca_path));
    }
    let mut written = Written { files: Vec::new() };
    let ca = new_ca("Cairn cluster CA")?;
    write(&ca_path, ca.cert.pem().as_bytes(), false, &mut written)?;
    write(
        &dir.join("ca.key"),
        ca.key.serialize_pem().as_bytes(),
        true,
        &mut written,
    )?;
    for id in 1..=nodes {
        let (cert, key) = node_cert(&ca, NodeId(id))?;
        write(
            &dir.join(format!("node-{id}.pem")),
            cert.as_bytes(),
            false,
            &mut written,
        )?;
        write(
            &dir.join(format!("node-{id}.key")),
            key.as_bytes(),
            true,
            &mut written,
        )?;
    }
    for name in clients {
        let (cert, key) = client_cert(&ca, name)?;
        write(
            &dir.join(format!("client-{name}.pem")),
            cert.as_bytes(),
            false,
            &mut written,
        )?;
        write(
            &dir.join(format!("client-{name}.key")),
            key.as_bytes(),
            true,
            &mut written,
        )?;
    }
    Ok(written)
}

fn new_ca(name: &str) -> Result<Ca, CertError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = named(name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(Ca { cert, key })
}

fn named(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Cairn");
    name.push(DnType::CommonName, common_name);
    name
}

/// A node's certificate: serves [`SERVER_NAME`], authenticates as both
/// server and client (it dials its peers), names its node.
fn node_cert(ca: &Ca, id: NodeId) -> Result<(String, String), CertError> {
    let mut params = CertificateParams::new(vec![SERVER_NAME.to_string()])?;
    params.distinguished_name = named(&format!("node-{}", id.get()));
    params
        .subject_alt_names
        .push(SanType::URI(format!("{NODE_URI}{}", id.get()).try_into()?));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca.cert, &ca.key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A client's certificate: client authentication only, names its
/// principal.
fn client_cert(ca: &Ca, principal: &str) -> Result<(String, String), CertError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = named(principal);
    params
        .subject_alt_names
        .push(SanType::URI(format!("{CLIENT_URI}{principal}").try_into()?));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca.cert, &ca.key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write(path: &Path, bytes: &[u8], secret: bool, written: &mut Written) -> Result<(), CertError> {
    let io = |error| CertError::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    written.files.push(path.to_path_buf());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_node_and_client_identities() {
        let dir = tempfile::tempdir().unwrap();
        let written = init(dir.path(), 2, &["alice".into()]).unwrap();
        assert_eq!(written.files.len(), 2 + 4 + 2);
        let node = Credentials::load_named(dir.path(), "node-2").unwrap();
        assert_eq!(node.identity().unwrap(), Identity::Node(NodeId(2)));
        let alice = Credentials::load_named(dir.path(), "client-alice").unwrap();
        assert_eq!(alice.identity().unwrap(), Identity::Client("alice".into()));
        assert_eq!(alice.roots, node.roots, "one CA signs both");
    }

    #[test]
    fn init_refuses_bad_names_and_an_existing_ca() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            init(dir.path(), 1, &["a/b".into()]),
            Err(CertError::BadName(_))
        ));
        init(dir.path(), 1, &[]).unwrap();
        assert!(matches!(
            init(dir.path(), 1, &[]),
            Err(CertError::Exists(_))
        ));
    }

    #[test]
    fn keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), 1, &[]).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("node-1.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "no one but the owner reads a key");
        }
    }
}
