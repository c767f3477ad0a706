//! The checkpoint file (`checkpoint.ckp`): the newest snapshot of service-derived state.
//!
//! Layout: a 16-byte file header (`"MPONDCKP"`, version u32, reserved u32 = 0) followed by
//! exactly one record frame whose `offset` field is `upto` (records `< upto` are reflected in
//! the snapshot), whose `timestamp` is the write time and whose payload is the snapshot.
//! Nothing may follow the frame.
//!
//! Crash behaviour: written with [`atomic_write`](super::fsutil::atomic_write), so after a
//! crash the file is either the previous checkpoint or the new one; a leftover
//! `checkpoint.ckp.tmp` is deleted by recovery.

use std::path::Path;

use super::error::LogError;
use super::fsutil::{self, SegmentIo};
use super::record::{self, FrameError};

/// File name of the checkpoint.
pub const CHECKPOINT_FILE: &str = "checkpoint.ckp";
/// Magic opening the checkpoint file.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"MPONDCKP";
/// Checkpoint file format version.
pub const CHECKPOINT_VERSION: u32 = 1;
/// Length of the checkpoint file header; the frame starts here.
pub const CHECKPOINT_HEADER_LEN: usize = 16;
/// Record kind used for the checkpoint frame.
pub const CHECKPOINT_KIND: u8 = 0;

/// File header plus frame header, and the frame's CRC: what surrounds the snapshot.
fn parts(upto: u64, now_ms: u64, data: &[u8]) -> (Vec<u8>, [u8; record::RECORD_CRC_LEN]) {
    let (frame_head, crc) = record::frame_parts(CHECKPOINT_KIND, now_ms, upto, data);
    let mut head = Vec::with_capacity(CHECKPOINT_HEADER_LEN + frame_head.len());
    head.extend_from_slice(&CHECKPOINT_MAGIC);
    head.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
    head.extend_from_slice(&0u32.to_le_bytes());
    head.extend_from_slice(&frame_head);
    (head, crc)
}

/// Parses a checkpoint file image into `(upto, data)`.
pub(crate) fn decode(path: &Path, b: &[u8]) -> Result<(u64, Vec<u8>), LogError> {
    if b.len() < CHECKPOINT_HEADER_LEN || b[..8] != CHECKPOINT_MAGIC {
        return Err(LogError::corrupt(path, 0, "bad checkpoint header"));
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[8..12]);
    let version = u32::from_le_bytes(v);
    if version != CHECKPOINT_VERSION {
        return Err(LogError::UnsupportedVersion {
            path: path.into(),
            offset: 8,
            found: version,
        });
    }
    let frame = &b[CHECKPOINT_HEADER_LEN..];
    match record::decode(frame) {
        Ok((h, payload)) if h.frame_len() == frame.len() as u64 => Ok((h.offset, payload.to_vec())),
        Ok(_) => Err(LogError::corrupt(
            path,
            CHECKPOINT_HEADER_LEN as u64,
            "trailing bytes after checkpoint frame",
        )),
        Err(FrameError::UnsupportedVersion(v)) => Err(LogError::UnsupportedVersion {
            path: path.into(),
            offset: CHECKPOINT_HEADER_LEN as u64,
            found: v as u32,
        }),
        Err(e) => Err(LogError::corrupt(
            path,
            CHECKPOINT_HEADER_LEN as u64,
            e.describe(),
        )),
    }
}

pub(crate) fn write(
    io: &dyn SegmentIo,
    dir: &Path,
    upto: u64,
    data: &[u8],
) -> Result<(), LogError> {
    if data.len() > record::MAX_PAYLOAD_LEN as usize {
        return Err(LogError::InvalidArgument(
            "checkpoint larger than 1 GiB".into(),
        ));
    }
    // Written in three pieces, not copied into one frame buffer: a snapshot can be tens of
    // megabytes, and the copy cost as much CPU and memory as the write.
    let (head, crc) = parts(upto, fsutil::now_ms(), data);
    fsutil::atomic_write_parts(io, dir, CHECKPOINT_FILE, &[&head, data, &crc], true)
}

pub(crate) fn read(dir: &Path) -> Result<Option<(u64, Vec<u8>)>, LogError> {
    let path = dir.join(CHECKPOINT_FILE);
    match std::fs::read(&path) {
        Ok(b) => decode(&path, &b).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::io(&path, e)),
    }
}
