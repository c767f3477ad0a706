//! Filesystem helpers: the narrow write trait through which every log file is written
//! (segments, index files, checkpoints — so tests can inject faults into any of them), atomic
//! file replacement, directory fsync and the directory lock.
//!
//! Crash behaviour: [`atomic_write`] leaves either the old file or the complete new one under
//! the final name (plus possibly a `*.tmp` file, which recovery deletes). Nothing here keeps
//! state in memory.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::error::LogError;

/// Suffix of temporary files; any such file found at open is a leftover of a crash.
pub const TMP_SUFFIX: &str = ".tmp";
/// Name of the lock file inside a log directory.
pub const LOCK_FILE: &str = "LOCK";

/// The only operations the log performs on a file it writes (segments, `.idx`/`.tix`,
/// checkpoints). Production uses [`StdIo`]; tests wrap it to inject ENOSPC/EIO at chosen
/// points.
pub trait SegmentFile: Send + Sync {
    /// Writes all of `buf` at byte `pos` (pwrite). A failure may leave a prefix written.
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// Writes `buf` at `pos` followed by `zeros` zero bytes (at most a page), as one write
    /// where the platform can (pwritev): a page partly written by a separate second write
    /// would be read from the disk first if it is not cached. A failure may leave a prefix
    /// written.
    fn write_padded_at(&self, buf: &[u8], zeros: usize, pos: u64) -> io::Result<()> {
        self.write_at(buf, pos)?;
        if zeros > 0 {
            self.write_at(&ZEROS[..zeros.min(ZEROS.len())], pos + buf.len() as u64)?;
        }
        Ok(())
    }
    /// Reads exactly `buf.len()` bytes at `pos` (pread).
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()>;
    /// fdatasync: data and the metadata needed to read it back (the file size) are durable.
    fn sync_data(&self) -> io::Result<()>;
    /// Starts writeback of `[pos, pos + len)` without waiting for it (Linux
    /// `sync_file_range(SYNC_FILE_RANGE_WRITE)`). Only a hint that keeps the page cache from
    /// piling up dirty data for the next fdatasync to wait on; it promises no durability.
    fn start_writeback(&self, pos: u64, len: u64) -> io::Result<()> {
        let _ = (pos, len);
        Ok(())
    }
    /// `syncfs`: makes every file of this file's filesystem durable, data and metadata, and
    /// reports a failure of the filesystem's sync or a writeback error of a file there since
    /// this handle last asked. Used for a commit round that spans several logs of one
    /// filesystem (see `group::SharedSync`). `Unsupported` where the platform cannot report
    /// such errors; the committer then fdatasyncs each log.
    fn sync_filesystem(&self) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
    /// After a [`SegmentFile::sync_filesystem`]: waits for any writeback of this file and
    /// reports a writeback error of it that this handle has not reported yet (Linux
    /// `sync_file_range` with `WAIT_BEFORE | WRITE | WAIT_AFTER`, which checks the same
    /// per-handle error state as fdatasync, without a device flush). An error reported here
    /// is not reported again: the caller must treat it as a failed fdatasync. `Unsupported`
    /// where it cannot tell.
    fn check_written(&self) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Drops the clean page-cache pages of `[pos, pos + len)` (Linux
    /// `posix_fadvise(POSIX_FADV_DONTNEED)`). Only a hint: a later read fetches them again.
    fn drop_cached(&self, pos: u64, len: u64) -> io::Result<()> {
        let _ = (pos, len);
        Ok(())
    }
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Current file length.
    fn len(&self) -> io::Result<u64>;
    /// True if the file has no bytes.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// The zeros of [`SegmentFile::write_padded_at`].
static ZEROS: [u8; 4096] = [0; 4096];

/// Opens files for writing. `create` creates (or truncates) the file.
pub trait SegmentIo: Send + Sync {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn SegmentFile>>;
}

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdIo;

struct StdFile(File);

impl SegmentFile for StdFile {
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.0.write_all_at(buf, pos)
    }
    #[cfg(target_os = "linux")]
    fn write_padded_at(&self, buf: &[u8], zeros: usize, pos: u64) -> io::Result<()> {
        if zeros == 0 {
            return self.write_at(buf, pos);
        }
        let zeros = &ZEROS[..zeros.min(ZEROS.len())];
        let mut done = 0;
        while done < buf.len() + zeros.len() {
            let (a, b) = match buf.get(done..) {
                Some(rest) if !rest.is_empty() => (rest, zeros),
                _ => (&zeros[done - buf.len()..], &[][..]),
            };
            let at = libc::off_t::try_from(pos + done as u64)
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            let iov = [io::IoSlice::new(a), io::IoSlice::new(b)];
            // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix (std documents it);
            // both slices outlive the call, which only reads them.
            let rc = unsafe {
                libc::pwritev(
                    self.0.as_raw_fd(),
                    iov.as_ptr().cast::<libc::iovec>(),
                    2,
                    at,
                )
            };
            match rc {
                n if n > 0 => done += n as usize,
                0 => return Err(io::ErrorKind::WriteZero.into()),
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, pos)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    #[cfg(target_os = "linux")]
    fn start_writeback(&self, pos: u64, len: u64) -> io::Result<()> {
        self.sync_range(pos, len, libc::SYNC_FILE_RANGE_WRITE)
    }
    #[cfg(target_os = "linux")]
    fn sync_filesystem(&self) -> io::Result<()> {
        if !syncfs_reports_errors() {
            return Err(io::ErrorKind::Unsupported.into());
        }
        // SAFETY: a plain syscall on an owned, open descriptor; no memory is passed.
        Self::check(unsafe { libc::syncfs(self.0.as_raw_fd()) })
    }
    #[cfg(target_os = "linux")]
    fn check_written(&self) -> io::Result<()> {
        // Length 0: to the end of the file.
        self.sync_range(
            0,
            0,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        )
    }
    #[cfg(target_os = "linux")]
    fn drop_cached(&self, pos: u64, len: u64) -> io::Result<()> {
        // SAFETY: a plain syscall on an owned, open descriptor; no memory is passed.
        let rc = unsafe {
            libc::posix_fadvise(
                self.0.as_raw_fd(),
                pos as libc::off_t,
                len as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            )
        };
        // posix_fadvise returns the error number instead of setting errno.
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(rc))
        }
    }
}

/// Whether `syncfs` reports errors: Linux 5.17 and later. From 5.8 it reports files'
/// writeback errors, but until 5.17 it dropped the filesystem's own sync result (on ext4
/// without a journal, the device flush), and returned 0 when that failed.
#[cfg(target_os = "linux")]
fn syncfs_reports_errors() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut parts = release
            .trim()
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        (major, minor) >= (5, 17)
    })
}

impl StdFile {
    #[cfg(target_os = "linux")]
    fn check(rc: libc::c_int) -> io::Result<()> {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// `sync_file_range` of `[pos, pos + len)` with `flags`.
    #[cfg(target_os = "linux")]
    fn sync_range(&self, pos: u64, len: u64, flags: libc::c_uint) -> io::Result<()> {
        // SAFETY: a plain syscall on an owned, open descriptor; no memory is passed.
        Self::check(unsafe {
            libc::sync_file_range(
                self.0.as_raw_fd(),
                pos as libc::off64_t,
                len as libc::off64_t,
                flags,
            )
        })
    }
}

impl SegmentIo for StdIo {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn SegmentFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(create)
            .open(path)?;
        Ok(Arc::new(StdFile(f)))
    }
}

/// The filesystem of `dir` (its `st_dev`) if one `syncfs` there makes durable exactly what an
/// fdatasync of each file would: local block filesystems whose `syncfs` is their full sync
/// (ext4, xfs) and tmpfs (where neither makes anything durable). Not network or FUSE
/// filesystems (there an fdatasync asks the server; a `syncfs` may only write pages to it),
/// overlayfs, or btrfs (whose `syncfs` is a whole transaction commit).
pub fn shared_sync_filesystem(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    const EXT4: i64 = 0xEF53;
    const XFS: i64 = 0x5846_5342;
    const TMPFS: i64 = 0x0102_1994;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `path` is a valid NUL-terminated string and `st` a zeroed struct statfs that
    // the call only writes.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let kind = st.f_type as i64;
    if ![EXT4, XFS, TMPFS].contains(&kind) {
        return None;
    }
    std::fs::metadata(dir).ok().map(|m| m.dev())
}

/// fsyncs a directory so that creations, renames and unlinks inside it are durable.
pub fn fsync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io(dir, e))
}

/// Replaces `dir/name` with `bytes` atomically: write `name.tmp` through `io`, fdatasync it
/// (data and size), rename over `name`, and (if `sync_dir`) fsync the directory. On a failure
/// before the rename the old file is untouched and the temp file is removed (best effort;
/// recovery deletes leftovers).
pub fn atomic_write(
    io: &dyn SegmentIo,
    dir: &Path,
    name: &str,
    bytes: &[u8],
    sync_dir: bool,
) -> Result<(), LogError> {
    atomic_write_parts(io, dir, name, &[bytes], sync_dir)
}

/// [`atomic_write`] of the concatenation of `parts`.
pub fn atomic_write_parts(
    io: &dyn SegmentIo,
    dir: &Path,
    name: &str,
    parts: &[&[u8]],
    sync_dir: bool,
) -> Result<(), LogError> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let dst = dir.join(name);
    let res = io.open(&tmp, true).and_then(|f| {
        let mut pos = 0u64;
        for p in parts {
            f.write_at(p, pos)?;
            pos += p.len() as u64;
        }
        f.sync_data()
    });
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(LogError::io(&tmp, e));
    }
    std::fs::rename(&tmp, &dst).map_err(|e| LogError::io(&dst, e))?;
    if sync_dir {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Suffix a log directory takes while it is being removed ([`remove_dir`]).
pub const DELETING_SUFFIX: &str = ".deleting";

/// Removes a whole directory (a deleted queue's or stream's logs) so that no crash leaves a
/// partly deleted one under its own name: renames it to `<name>.deleting`, fsyncs the parent so
/// the rename is durable, then deletes the renamed tree. A crash mid-delete leaves a
/// `*.deleting` directory, which `verify` skips and the services' start-up sweeps remove;
/// before, it left a log with segments missing from its middle, which `verify` reported as
/// corrupt. "Already gone" is success.
pub fn remove_dir(path: &Path) -> Result<(), LogError> {
    let mut doomed = path.as_os_str().to_owned();
    doomed.push(DELETING_SUFFIX);
    let doomed = std::path::PathBuf::from(doomed);
    let mut renamed = std::fs::rename(path, &doomed);
    if renamed.is_err() && path.exists() && doomed.exists() {
        // An earlier removal of a directory of this name stopped part-way.
        let _ = std::fs::remove_dir_all(&doomed);
        renamed = std::fs::rename(path, &doomed);
    }
    match renamed {
        Ok(()) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fsync_dir(parent)?;
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(LogError::io(path, e)),
    }
    match std::fs::remove_dir_all(&doomed) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io(&doomed, e)),
    }
}

/// Removes a file, treating "already gone" as success.
pub fn remove_if_exists(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io(path, e)),
    }
}

/// An exclusive `flock` on `dir/LOCK`, held for the lifetime of an open log. Two writers on
/// one directory would corrupt it, and mmap'd readers rely on nobody else truncating files.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Acquires the lock, retrying briefly: a just-dropped handle in this process may still be
    /// releasing it from a background thread.
    pub fn acquire(dir: &Path) -> Result<DirLock, LogError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| LogError::io(&path, e))?;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            // SAFETY: flock on a valid, owned file descriptor; no memory is involved.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(DirLock { _file: file });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::WouldBlock {
                return Err(LogError::io(&path, err));
            }
            if Instant::now() >= deadline {
                return Err(LogError::Locked {
                    path: dir.to_path_buf(),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
