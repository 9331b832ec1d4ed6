//! The worker side: the entry check, the handshake, and the job loop.
//!
//! A worker is single-threaded as far as jobs go: it reads a frame, runs the job, writes the result.
//! Frames are read through a buffer and results are written through one that is flushed only when no
//! further job is already buffered, so a burst of small jobs costs one `read` and one `write` per
//! burst rather than per job.
//!
//! A second, tiny thread watches the channel for the parent hanging up. The job loop notices a hang-up
//! only between jobs; the watcher makes a worker whose parent died exit even in the middle of a long
//! job, so an orphaned worker never burns CPU for nobody.

use std::ffi::OsString;
use std::io::{self, BufReader, BufWriter, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::spawn::{ENV, exe_identity};
use crate::trampoline::{self, Failure, panic_message};
use crate::wire::{self, FromWorker, Outcome, ToWorker};

/// Set while a job runs, so the hang-up watcher knows whether the job loop will see the EOF itself.
static IN_JOB: AtomicBool = AtomicBool::new(false);

/// Becomes a worker if this process was started as one; returns at once otherwise.
pub(crate) fn check() {
    if let Some(value) = std::env::var_os(ENV) {
        if secure_execution() {
            refuse_secure_execution()
        }
        enter(value)
    }
}

/// Whether the kernel started this process in secure-execution mode (setuid, setgid or file
/// capabilities: `AT_SECURE`). Such a program runs with rights its caller lacks, so its
/// environment is the caller's to choose and must not make it run code at offsets from a channel.
fn secure_execution() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector the kernel gave this process; an unknown
    // type returns 0.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

fn refuse_secure_execution() -> ! {
    eprintln!(
        "evloop-process-pool: refusing to act as a pool worker: this process runs in \
         secure-execution mode (setuid, setgid or file capabilities), and {ENV} comes from \
         whoever started it"
    );
    std::process::exit(1)
}

fn enter(value: OsString) -> ! {
    // SAFETY: this runs first thing in `main` (or in the pool's dedicated test function), before the
    // program starts threads of its own; std's environment lock covers any Rust thread that may exist,
    // and no C code of ours reads the environment concurrently. Removing the variable keeps processes
    // that a job starts from mistaking themselves for workers.
    unsafe { std::env::remove_var(ENV) };
    let code = match serve(&value) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("evloop-process-pool worker {}: {e}", std::process::id());
            1
        }
    };
    let _ = io::stdout().flush();
    std::process::exit(code)
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Parses `<fd>:<token>` and checks that the fd really is an open socket.
fn channel(value: &OsString) -> io::Result<(UnixStream, RawFd, u64)> {
    let value = value
        .to_str()
        .ok_or_else(|| invalid("malformed worker variable"))?;
    let (fd, token) = value
        .split_once(':')
        .ok_or_else(|| invalid("malformed worker variable"))?;
    let fd: RawFd = fd.parse().map_err(|_| invalid("malformed worker fd"))?;
    let token = u64::from_str_radix(token, 16).map_err(|_| invalid("malformed worker token"))?;
    // SAFETY: `stat` is plain old data, for which all-zero bytes are a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat only writes into `st`, which we own; an fd that is not open gives EBADF.
    let fstat_ok = fd >= 0 && unsafe { libc::fstat(fd, &mut st) } == 0;
    if !fstat_ok || st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(invalid(
            "the worker channel is not an open socket (stale environment?)",
        ));
    }
    // SAFETY: the fd is open (checked above) and was inherited for this worker alone; nothing else
    // in this process owns it. Close-on-exec keeps it out of processes that jobs start.
    let stream = unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        UnixStream::from(OwnedFd::from_raw_fd(fd))
    };
    Ok((stream, fd, token))
}

/// Exits the process when the parent hangs up while a job is running.
fn watch_parent(fd: RawFd) {
    let spawned = std::thread::Builder::new()
        .name("evloop-pp-watch".into())
        .spawn(move || {
            loop {
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLRDHUP,
                    revents: 0,
                };
                // SAFETY: `pfd` is a valid pollfd for the duration of the call; the fd stays open for
                // the life of the process (the job loop owns it until `exit`).
                let n = unsafe { libc::poll(&mut pfd, 1, -1) };
                if n < 0 {
                    if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return;
                }
                if pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0 {
                    if IN_JOB.load(Ordering::SeqCst) {
                        // SAFETY: `_exit` is always safe to call; skipping destructors is the point.
                        unsafe { libc::_exit(0) };
                    }
                    return; // idle: the job loop reads the EOF and exits cleanly
                }
            }
        });
    // Without a watcher the worker still exits on EOF, just not in the middle of a job.
    drop(spawned);
}

fn send(writer: &mut impl Write, msg: &FromWorker<'_>) -> io::Result<()> {
    let mut buf = Vec::new();
    let start = wire::start_frame(&mut buf, msg);
    wire::finish_frame(&mut buf, start, wire::MAX_FRAME)
        .map_err(|too| invalid(too.describe("a control message")))?;
    writer.write_all(&buf)
}

fn serve(value: &OsString) -> io::Result<()> {
    let (stream, fd, token) = channel(value)?;
    let mut reader = BufReader::with_capacity(64 * 1024, &stream);
    let mut writer = BufWriter::with_capacity(64 * 1024, &stream);
    let mut body = Vec::new();
    if !wire::read_frame(&mut reader, &mut body, wire::MAX_FRAME)? {
        return Ok(()); // the pool went away before saying hello
    }
    let (hello, _): (ToWorker<'_>, _) = wire::split_body(&body)?;
    let ToWorker::Hello {
        token: sent,
        exe,
        initializer,
        max_tasks,
        max_frame,
    } = hello
    else {
        return Err(invalid("the first frame was not a hello"));
    };
    let refuse = if sent != token {
        Some("the pool's token does not match this worker's")
    } else if exe != exe_identity() {
        Some("this worker is not running the pool's executable")
    } else {
        None
    };
    if let Some(why) = refuse {
        send(&mut writer, &FromWorker::InitFailed(why))?;
        writer.flush()?;
        return Err(invalid(why));
    }
    // Only now, with the executable checked, may offsets be turned into functions.
    watch_parent(fd);
    if let Some((offset, name)) = initializer {
        // SAFETY: the offset was made by `offset_of` in the parent, and the check above proved
        // this process runs the same executable image.
        let init = unsafe { trampoline::from_offset(offset) };
        if let Err(failure) = call(init, name, &[], &mut Vec::new()) {
            let msg = match failure {
                Failure::Panicked(m) | Failure::Serialization(m) => m,
            };
            eprintln!("Exception in initializer:\n{msg}");
            send(&mut writer, &FromWorker::InitFailed(&msg))?;
            writer.flush()?;
            std::process::exit(1);
        }
    }
    send(&mut writer, &FromWorker::Ready)?;
    let limit = usize::try_from(max_frame).unwrap_or(usize::MAX);
    let mut done = 0u64;
    let mut out = Vec::new();
    loop {
        if max_tasks.is_some_and(|max| done >= max) {
            break;
        }
        if reader.buffer().is_empty() {
            // About to block for the next job: hand over every result written so far.
            writer.flush()?;
            wire::spin_until_readable(fd);
        }
        if !wire::read_frame(&mut reader, &mut body, limit)? {
            break;
        }
        let (job, input): (ToWorker<'_>, _) = wire::split_body(&body)?;
        let ToWorker::Job { id, offset, name } = job else {
            return Err(invalid("expected a job frame"));
        };
        // SAFETY: as for the initializer.
        let entry = unsafe { trampoline::from_offset(offset) };
        out.clear();
        let start = wire::start_frame(
            &mut out,
            &FromWorker::Done {
                id,
                outcome: Outcome::Ok,
            },
        );
        IN_JOB.store(true, Ordering::SeqCst);
        let result = call(entry, name, input, &mut out);
        IN_JOB.store(false, Ordering::SeqCst);
        // A result too large for the channel fails this job only, like one that cannot encode.
        let result = result.and_then(|()| {
            wire::finish_frame(&mut out, start, limit)
                .map_err(|too| Failure::Serialization(too.describe("the result")))
        });
        if let Err(failure) = result {
            let outcome = match &failure {
                Failure::Panicked(m) => Outcome::Panicked(m),
                Failure::Serialization(m) => Outcome::Serialization(m),
            };
            out.truncate(start);
            wire::start_frame(&mut out, &FromWorker::Done { id, outcome });
            wire::finish_frame(&mut out, start, wire::MAX_FRAME)
                .map_err(|too| invalid(too.describe("a job's error message")))?;
        }
        writer.write_all(&out)?;
        done += 1;
    }
    writer.flush()
}

/// Calls a trampoline; a panic that escapes it (from a `Serialize` impl, say) is still only a failed
/// job.
fn call(
    entry: trampoline::Trampoline,
    name: &str,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Failure> {
    match catch_unwind(AssertUnwindSafe(|| entry(name, input, out))) {
        Ok(result) => result,
        Err(payload) => Err(Failure::Panicked(panic_message(&*payload))),
    }
}
