//! The connection profile: where a cluster is and how to prove who we are.
//!
//! `cairn dev` writes one; every client command reads it for what its
//! flags do not say. It must never be trusted past its parse: a profile
//! that does not parse is an error, not an empty one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::CliError;

/// A cluster's addresses and a client's certificate files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Node addresses, `host:port`.
    pub nodes: Vec<String>,
    /// The cluster CA certificate.
    pub ca: PathBuf,
    /// The client certificate, if the cluster wants one.
    pub cert: Option<PathBuf>,
    /// Its key.
    pub key: Option<PathBuf>,
}

impl Profile {
    /// `$XDG_CONFIG_HOME/cairn/profile.toml`, or `~/.config/cairn/profile.toml`.
    pub fn default_path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
        Some(base.join("cairn").join("profile.toml"))
    }

    /// The profile at `explicit` (which must exist), or at the default
    /// path if there is one there.
    pub fn find(explicit: Option<&Path>) -> Result<Option<Profile>, CliError> {
        let path = match explicit {
            Some(path) => path.to_path_buf(),
            None => match Profile::default_path() {
                Some(path) if path.exists() => path,
                _ => return Ok(None),
            },
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|error| CliError::Usage(format!("profile {}: {error}", path.display())))?;
        toml::from_str(&text).map(Some).map_err(|error| {
            CliError::Usage(format!("profile {}: {}", path.display(), error.message()))
        })
    }

    /// Writes the profile to `path`, creating its directory.
    pub fn write(&self, path: &Path) -> Result<(), CliError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = toml::to_string(self).map_err(|error| CliError::Other(error.to_string()))?;
        std::fs::write(path, text)?;
        Ok(())
    }
}
