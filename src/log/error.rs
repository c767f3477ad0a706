//! The single error type of the storage layer.
//!
//! Every error that concerns a file carries its path; corruption errors also carry the byte
//! offset inside that file so an operator can inspect it (`xxd -s OFFSET FILE`).

use std::io;
use std::path::PathBuf;

/// Errors returned by [`crate::log::Log`] and friends.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An operating-system I/O call failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// File or directory the call was about.
        path: PathBuf,
        /// The underlying error (ENOSPC, EIO, ...).
        #[source]
        source: io::Error,
    },
    /// Bytes on disk do not match what the format requires (bad magic, CRC, gap, ...).
    #[error("corrupt log data in {} at byte {offset}: {reason}", path.display())]
    Corrupt {
        /// File containing the bad bytes.
        path: PathBuf,
        /// Byte position of the bad structure inside `path`.
        offset: u64,
        /// Human-readable description.
        reason: String,
    },
    /// A structure carries a format version this build does not understand.
    #[error("unsupported format version {found} in {} at byte {offset}", path.display())]
    UnsupportedVersion {
        /// File containing the structure.
        path: PathBuf,
        /// Byte position of the structure.
        offset: u64,
        /// Version found on disk.
        found: u32,
    },
    /// An earlier fsync (or another unrecoverable write failure) failed; the on-disk state
    /// is unknown, so every later write is refused until the log is reopened.
    #[error("log is poisoned by an earlier write/fsync failure; reopen it")]
    Poisoned,
    /// Another process (or another open handle in this process) holds the log directory.
    #[error("log directory {} is locked by another user", path.display())]
    Locked {
        /// The directory.
        path: PathBuf,
    },
    /// The caller passed something the log cannot store or interpret.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The log was dropped while an append was still waiting.
    #[error("log closed before the operation completed")]
    Closed,
}

impl LogError {
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        LogError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        LogError::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// A copy for the other waiters of a failed group commit (`io::Error` is not `Clone`, so
    /// the copy keeps the kind and message of the original).
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            LogError::Io { path, source } => LogError::Io {
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            LogError::Corrupt {
                path,
                offset,
                reason,
            } => LogError::Corrupt {
                path: path.clone(),
                offset: *offset,
                reason: reason.clone(),
            },
            LogError::UnsupportedVersion {
                path,
                offset,
                found,
            } => LogError::UnsupportedVersion {
                path: path.clone(),
                offset: *offset,
                found: *found,
            },
            LogError::Poisoned => LogError::Poisoned,
            LogError::Locked { path } => LogError::Locked { path: path.clone() },
            LogError::InvalidArgument(s) => LogError::InvalidArgument(s.clone()),
            LogError::Closed => LogError::Closed,
        }
    }

    /// The `io::ErrorKind` if this is an I/O error.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            LogError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}
