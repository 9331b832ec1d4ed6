//! Starting a worker: a fresh execution of this binary with the job channel on an inherited fd.
//!
//! The channel is one end of a `socketpair`. Both ends are created close-on-exec, so no other child
//! of this process (ours or anybody's, started concurrently from another thread) can inherit them;
//! only in the forked child, between `fork` and `exec`, do we clear the flag on the worker's end.
//! The parent's copy of that end is closed as soon as the child is started, so the parent keeps
//! exactly one fd per live worker. stdin is `/dev/null`; stdout and stderr are inherited untouched.

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that makes a process a worker: `<fd>:<token in hex>`.
pub(crate) const ENV: &str = "EVLOOP_PROCESS_POOL_WORKER";

/// Where this executable can be run from again: `/proc/self/exe` names the running image even if
/// its path has since been replaced or deleted.
fn exe_path() -> io::Result<std::path::PathBuf> {
    let proc = std::path::Path::new("/proc/self/exe");
    if proc.exists() {
        Ok(proc.to_path_buf())
    } else {
        std::env::current_exe()
    }
}

/// `(st_dev, st_ino)` of the running executable; the worker must report the same pair.
pub(crate) fn exe_identity() -> (u64, u64) {
    static ID: OnceLock<(u64, u64)> = OnceLock::new();
    *ID.get_or_init(|| match exe_path().and_then(std::fs::metadata) {
        Ok(m) => (m.dev(), m.ino()),
        // Without /proc and without a path there is nothing to compare; (0, 0) on both sides is
        // still the same binary because the worker was started from the same place.
        Err(_) => (0, 0),
    })
}

/// A token no other process can guess: the std hasher is seeded randomly per process.
pub(crate) fn new_token() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.finish()
}

/// Moves `fd` above 2 if it is one of 0, 1, 2 (possible when this process started with stdin,
/// stdout or stderr closed): in the worker, stdio is set up after fork and would overwrite it;
/// in the parent, output meant for stdout or stderr would land in the channel.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC duplicates an fd we own onto the lowest free number >= 3.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if moved == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `moved` is a new fd that nothing else owns; the original closes with `fd`.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

/// Starts one worker and returns it with the parent's end of its channel.
pub(crate) fn spawn(token: u64) -> io::Result<(Child, UnixStream)> {
    let (parent_end, child_end) = UnixStream::pair()?;
    // Both ends: the parent's would otherwise become its own stdout or stderr once it has closed
    // them, and its next `println!` would write into the channel.
    let parent_end = UnixStream::from(above_stdio(parent_end.into())?);
    let child_end = above_stdio(child_end.into())?;
    let child_fd = child_end.as_raw_fd();
    let mut cmd = Command::new(exe_path()?);
    if let Some(arg0) = std::env::args_os().next() {
        cmd.arg0(arg0);
    }
    if let Some(args) = crate::testing::worker_args() {
        cmd.args(args);
    }
    cmd.env(ENV, format!("{child_fd}:{token:x}"))
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    // SAFETY: the closure only calls `fcntl`, which is async-signal-safe, on an fd that is open in
    // the child because it is open in the parent (the forked child has a copy of the fd table).
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(child_fd, libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(child_end);
    Ok((child, parent_end))
}
