//! The access list: which client principal may do what.
//!
//! Owns the ACL file's format and the one check. The file is TOML:
//!
//! ```toml
//! [[allow]]
//! principal = "alice"          # a client certificate's principal, or "*"
//! permissions = ["produce", "consume"]
//!
//! [[allow]]
//! principal = "ops"
//! permissions = ["admin"]      # cluster transfer and remove
//! ```
//!
//! No matching rule means deny. It must never allow on a doubt: a missing,
//! unreadable or malformed file is an error at start (the node does not
//! run), never an empty or permissive list.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// What a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Append records.
    Produce,
    /// Read and follow records, and see the cluster's status.
    Consume,
    /// Move leadership and remove nodes.
    Admin,
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Permission::Produce => "produce",
            Permission::Consume => "consume",
            Permission::Admin => "admin",
        })
    }
}

/// One rule: a principal (or `*`, anyone with a client certificate) and
/// what it may do.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The principal, or `*`.
    pub principal: String,
    /// What it may do.
    pub permissions: Vec<Permission>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    allow: Vec<Rule>,
}

/// The rules, in the file's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acl {
    rules: Vec<Rule>,
}

/// Why an ACL file could not be used.
#[derive(Debug)]
pub enum AclError {
    /// It could not be read (missing, unreadable).
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// It is not a valid ACL.
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        error: String,
    },
}

impl fmt::Display for AclError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AclError::Read { path, error } => {
                write!(
                    f,
                    "ACL file {}: {error} (a node does not run without its ACL)",
                    path.display()
                )
            }
            AclError::Parse { path, error } => write!(f, "ACL file {}: {error}", path.display()),
        }
    }
}

impl std::error::Error for AclError {}

impl Acl {
    /// An ACL of these rules.
    pub fn new(rules: Vec<Rule>) -> Acl {
        Acl { rules }
    }

    /// Reads and checks an ACL file.
    pub fn load(path: &Path) -> Result<Acl, AclError> {
        let text = std::fs::read_to_string(path).map_err(|error| AclError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Acl::parse(&text).map_err(|error| AclError::Parse {
            path: path.to_path_buf(),
            error,
        })
    }

    /// Parses an ACL's text.
    pub fn parse(text: &str) -> Result<Acl, String> {
        let file: File = toml::from_str(text).map_err(|error| error.message().to_string())?;
        if let Some(rule) = file
            .allow
            .iter()
            .find(|rule| rule.principal != "*" && !crate::certs::valid_name(&rule.principal))
        {
            return Err(format!("bad principal {:?}", rule.principal));
        }
        Ok(Acl { rules: file.allow })
    }

    /// Whether `principal` may do what `needs` names.
    pub fn allows(&self, principal: &str, needs: Permission) -> bool {
        self.rules.iter().any(|rule| {
            (rule.principal == "*" || rule.principal == principal)
                && rule.permissions.contains(&needs)
        })
    }

    /// Whether any rule names `principal` at all.
    pub fn knows(&self, principal: &str) -> bool {
        self.rules
            .iter()
            .any(|rule| rule.principal == "*" || rule.principal == principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_matching_rule_denies() {
        let acl = Acl::parse(
            "[[allow]]\nprincipal = \"alice\"\npermissions = [\"produce\", \"consume\"]\n\
             [[allow]]\nprincipal = \"*\"\npermissions = [\"consume\"]\n",
        )
        .unwrap();
        assert!(acl.allows("alice", Permission::Produce));
        assert!(acl.allows("bob", Permission::Consume));
        assert!(!acl.allows("bob", Permission::Produce));
        assert!(!acl.allows("alice", Permission::Admin));
        assert!(!Acl::default().allows("alice", Permission::Consume));
    }

    #[test]
    fn a_bad_file_is_an_error_not_an_empty_list() {
        assert!(Acl::parse("[[allow]]\nprincipal = \"a\"\npermissions = [\"fly\"]\n").is_err());
        assert!(Acl::parse("[[allow]]\nprincipal = \"a b\"\npermissions = []\n").is_err());
        assert!(Acl::parse("allow = 3").is_err());
        let missing = Acl::load(Path::new("/nonexistent/acl.toml"));
        assert!(matches!(missing, Err(AclError::Read { .. })));
    }
}
