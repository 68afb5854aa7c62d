//! Configuration of the core's machines, validated once at startup.
//!
//! Owns the knobs an operator may turn and the rules that make a set of knobs
//! sane. It must never let a nonsensical value reach a machine: `validate()`
//! rejects it with the field's name and why.

use crate::error::{ConfigError, Error};
use crate::limits::{SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN};
use crate::time::Duration;

/// How the log lays out and retains its segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// A segment rolls over before its store would grow past this many bytes.
    pub segment_bytes: u64,
    /// Delete the oldest segments while the log holds more bytes than this.
    pub retention_bytes: Option<u64>,
    /// Delete a segment once its newest entry is older than this.
    pub retention_age: Option<Duration>,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes: 128 * 1024 * 1024,
            retention_bytes: None,
            retention_age: None,
        }
    }
}

impl LogConfig {
    /// Checks every field and the relations between them.
    pub fn validate(&self) -> Result<(), Error> {
        let reject = |field, reason| Err(Error::Config(ConfigError { field, reason }));
        if self.segment_bytes < SEGMENT_BYTES_MIN {
            return reject("segment_bytes", "is below SEGMENT_BYTES_MIN (4096)");
        }
        if self.segment_bytes > SEGMENT_BYTES_MAX {
            return reject("segment_bytes", "is above SEGMENT_BYTES_MAX (2 GiB)");
        }
        if let Some(retention) = self.retention_bytes {
            if retention < self.segment_bytes {
                return reject(
                    "retention_bytes",
                    "is smaller than one segment, so the log could hold no sealed segment",
                );
            }
        }
        if self.retention_age == Some(Duration::ZERO) {
            return reject(
                "retention_age",
                "is zero, which would delete every sealed segment at once",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: each nonsensical value is rejected by name; sane ones pass.
    #[test]
    fn validate_table() {
        let ok = LogConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        let cases: Vec<(LogConfig, &str)> = vec![
            (
                LogConfig {
                    segment_bytes: 100,
                    ..ok.clone()
                },
                "segment_bytes",
            ),
            (
                LogConfig {
                    segment_bytes: 1 << 40,
                    ..ok.clone()
                },
                "segment_bytes",
            ),
            (
                LogConfig {
                    retention_bytes: Some(1024),
                    ..ok.clone()
                },
                "retention_bytes",
            ),
            (
                LogConfig {
                    retention_age: Some(Duration::ZERO),
                    ..ok.clone()
                },
                "retention_age",
            ),
        ];
        for (config, field) in cases {
            match config.validate() {
                Err(Error::Config(error)) => assert_eq!(error.field, field),
                other => panic!("{field}: expected a config error, got {other:?}"),
            }
        }
    }
}
