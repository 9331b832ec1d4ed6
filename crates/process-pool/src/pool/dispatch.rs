//! The dispatch machinery: the queue of encoded jobs, the parent's record of each worker, the
//! pump that moves jobs to workers (starting them lazily), and the reader thread of each worker,
//! which completes its futures, refills it, reaps it and judges its end (expected, or a break of
//! the pool). The protocol is the module docs of [`super`].

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use evloop_thread_pool::future::{JobPromise, job_channel};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ProcessFuture, ProcessPool};
use crate::error::{Broken, POOL_NOT_USABLE, ProcessPoolError, TERMINATED_ABRUPTLY};
use crate::spawn;
use crate::trampoline::{self, Trampoline};
use crate::wire::{self, FromWorker, Outcome, ToWorker};

/// Most jobs a worker holds at once (running plus buffered). With 2, a worker finds its next job
/// waiting when it finishes one, and `shutdown(cancel_futures=true)` on a one-worker pool leaves
/// exactly two jobs to finish, as Python's call queue of `max_workers + 1` does.
const PIPELINE_DEPTH: usize = 2;

/// Most unread job bytes a worker may hold beyond its first job.
const PIPELINE_BYTES: usize = 32 * 1024;

/// A job after encoding, seen by the pool without its result type.
pub(super) trait Job: Send {
    /// Claims the job for running; `false` if it was cancelled while queued.
    fn start(&self) -> bool;
    /// Completes the future with the worker's encoded value or an error.
    fn finish(self: Box<Self>, outcome: Result<&[u8], ProcessPoolError>);
    /// Cancels a job that never left the queue.
    fn cancel(self: Box<Self>);
}

/// A queued job that knows its result type: it decodes the worker's bytes into `R`.
struct TypedJob<R>(JobPromise<R, ProcessPoolError>);

impl<R: DeserializeOwned + Send + 'static> Job for TypedJob<R> {
    fn start(&self) -> bool {
        self.0.set_running_or_notify_cancel()
    }
    fn finish(self: Box<Self>, outcome: Result<&[u8], ProcessPoolError>) {
        let result = outcome.and_then(|bytes| {
            crate::codec::decode(bytes).map_err(|e| {
                ProcessPoolError::Serialization(format!("cannot decode the result: {e}"))
            })
        });
        self.0.complete(result);
    }
    fn cancel(self: Box<Self>) {
        self.0.cancel();
    }
}

pub(super) struct Queued {
    id: u64,
    frame: Vec<u8>,
    pub(super) job: Box<dyn Job>,
}

/// The parent's end of one worker's channel. Writes take `write_lock` so frames never interleave.
struct Channel {
    stream: UnixStream,
    write_lock: Mutex<()>,
}

impl Channel {
    fn write(&self, bytes: &[u8]) {
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        // A failed write means the worker is gone; its reader sees the EOF and reports it.
        let _ = (&self.stream).write_all(bytes);
    }
}

/// The parent's record of one worker process (the child's side is `crate::worker`).
pub(super) struct WorkerRecord {
    key: u64,
    pub(super) pid: u32,
    /// `None` once the reader has taken it to reap the process.
    pub(super) child: Option<Child>,
    channel: Arc<Channel>,
    running: Vec<(u64, usize, Box<dyn Job>)>,
    unread_bytes: usize,
    sent: u64,
    closing: bool,
}

/// What the state lock guards: the queue, the workers, and the pool's lifecycle.
pub(super) struct State {
    pub(super) queue: VecDeque<Queued>,
    pub(super) workers: Vec<WorkerRecord>,
    /// Worker processes started and not yet reaped.
    pub(super) live: usize,
    pub(super) readers: Vec<JoinHandle<()>>,
    pub(super) next_worker: u64,
    pub(super) shutdown: bool,
    pub(super) broken: Option<Broken>,
}

/// State shared by the pool handle and its reader threads.
pub(super) struct PoolShared {
    pub(super) state: Mutex<State>,
    /// Signalled whenever a worker process has been reaped.
    pub(super) reaped: Condvar,
    pub(super) next_job: AtomicU64,
    pub(super) max_workers: usize,
    pub(super) initializer: Option<(i64, &'static str)>,
    pub(super) max_tasks: Option<u64>,
    /// `max_message_bytes`: the largest encoded argument or result (frame body) of a job.
    pub(super) max_frame: usize,
}

thread_local! {
    /// The pool (by the address of its `PoolShared`) whose reader thread this is, if any: a done
    /// callback run by a reader may drop the last handle of its own pool, and that drop must
    /// not wait for this very thread.
    pub(super) static READER_OF: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Work to do once the state lock is released: frames to write (coalesced per worker) and jobs to
/// fail because the pool broke. Neither may happen under the lock: a write can take a while, and
/// failing a future runs its done-callbacks, which may call back into the pool.
#[derive(Default)]
pub(super) struct Outbox {
    writes: Vec<(Arc<Channel>, Vec<u8>)>,
    failed: Vec<Box<dyn Job>>,
    cause: Option<String>,
}

impl Outbox {
    fn push(&mut self, channel: &Arc<Channel>, frame: Vec<u8>) {
        match self.writes.last_mut() {
            Some((last, bytes)) if Arc::ptr_eq(last, channel) => bytes.extend_from_slice(&frame),
            _ => self.writes.push((Arc::clone(channel), frame)),
        }
    }

    pub(super) fn flush(self) {
        for (channel, bytes) in self.writes {
            channel.write(&bytes);
        }
        for job in self.failed {
            let broken = Broken::new(TERMINATED_ABRUPTLY, self.cause.clone());
            job.finish(Err(ProcessPoolError::BrokenProcessPool(broken)));
        }
    }
}

impl ProcessPool {
    /// Encodes one job and queues it (or fails its future at once if the argument is too
    /// large or cannot be encoded), then pumps.
    pub(super) fn enqueue<R, A>(
        &self,
        entry: Trampoline,
        name: &'static str,
        arg: &A,
    ) -> Result<ProcessFuture<R>, ProcessPoolError>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned + Send + 'static,
    {
        let id = self.shared.next_job.fetch_add(1, Ordering::Relaxed);
        let mut frame = Vec::with_capacity(64);
        let start = wire::start_frame(
            &mut frame,
            &ToWorker::Job {
                id,
                offset: trampoline::offset_of(entry),
                name,
            },
        );
        let encoded = crate::codec::encode(arg, frame)
            .map_err(|e| format!("cannot encode the argument: {e}"));
        let (promise, future) = job_channel::<R, ProcessPoolError>();
        let mut outbox = Outbox::default();
        {
            let mut st = self.shared.lock();
            if let Some(broken) = &st.broken {
                return Err(ProcessPoolError::BrokenProcessPool(Broken::new(
                    POOL_NOT_USABLE,
                    broken.cause().map(str::to_owned),
                )));
            }
            if st.shutdown {
                return Err(ProcessPoolError::Shutdown);
            }
            let encoded = encoded.and_then(|mut frame| {
                wire::finish_frame(&mut frame, start, self.shared.max_frame)
                    .map(|()| frame)
                    .map_err(|too| too.describe("the argument"))
            });
            match encoded {
                Ok(frame) => {
                    st.queue.push_back(Queued {
                        id,
                        frame,
                        job: Box::new(TypedJob(promise)),
                    });
                    self.shared.pump(&mut st, &mut outbox);
                }
                Err(e) => {
                    drop(st);
                    promise.complete(Err(ProcessPoolError::Serialization(e)));
                    return Ok(future);
                }
            }
        }
        outbox.flush();
        Ok(future)
    }
}

impl PoolShared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn can_take(&self, w: &WorkerRecord) -> bool {
        !w.closing && w.child.is_some() && self.max_tasks.is_none_or(|max| w.sent < max)
    }

    /// Moves queued jobs to workers, starting workers as needed. Called with the state locked; the
    /// frames go into `outbox` for writing after the lock is released.
    pub(super) fn pump(self: &Arc<Self>, st: &mut State, outbox: &mut Outbox) {
        st.readers.retain(|r| !r.is_finished());
        while let Some(front) = st.queue.front() {
            if st.broken.is_some() {
                return;
            }
            let len = front.frame.len();
            let idle = st
                .workers
                .iter()
                .position(|w| w.running.is_empty() && self.can_take(w));
            let target = match idle {
                Some(i) => i,
                None if st.live < self.max_workers => match self.start_worker(st, outbox) {
                    Some(i) => i,
                    None => return,
                },
                None => {
                    let best = st
                        .workers
                        .iter()
                        .enumerate()
                        .filter(|(_, w)| {
                            self.can_take(w)
                                && w.running.len() < PIPELINE_DEPTH
                                && w.unread_bytes + len <= PIPELINE_BYTES
                        })
                        .min_by_key(|(_, w)| w.running.len());
                    match best {
                        Some((i, _)) => i,
                        None => return,
                    }
                }
            };
            let Some(item) = st.queue.pop_front() else {
                return;
            };
            if !item.job.start() {
                continue; // cancelled while queued: its future already says so
            }
            let w = &mut st.workers[target];
            w.sent += 1;
            w.unread_bytes += len;
            w.running.push((item.id, len, item.job));
            outbox.push(&w.channel, item.frame);
        }
    }

    /// Starts one worker and its reader; on failure breaks the pool.
    fn start_worker(self: &Arc<Self>, st: &mut State, outbox: &mut Outbox) -> Option<usize> {
        let token = spawn::new_token();
        let started = spawn::spawn(token).and_then(|(child, stream)| {
            let mut hello = Vec::new();
            let start = wire::start_frame(
                &mut hello,
                &ToWorker::Hello {
                    token,
                    exe: spawn::exe_identity(),
                    initializer: self.initializer,
                    max_tasks: self.max_tasks,
                    max_frame: self.max_frame as u64,
                },
            );
            wire::finish_frame(&mut hello, start, wire::MAX_FRAME)
                .expect("a hello is a few dozen bytes");
            // The first frame on a fresh socket: it fits the empty buffer, so this cannot block,
            // and writing it here (under the state lock) puts it before any job.
            (&stream).write_all(&hello)?;
            let reader = stream.try_clone()?;
            Ok((child, stream, reader))
        });
        let (mut child, stream, reader) = match started {
            Ok(parts) => parts,
            Err(e) => {
                self.break_pool(st, outbox, format!("cannot start a worker process: {e}"));
                return None;
            }
        };
        let key = st.next_worker;
        st.next_worker += 1;
        let channel = Arc::new(Channel {
            stream,
            write_lock: Mutex::new(()),
        });
        let shared = Arc::clone(self);
        let handle = std::thread::Builder::new()
            .name(format!("evloop-pp-reader-{}", child.id()))
            .spawn(move || shared.read_worker(key, reader));
        let handle = match handle {
            Ok(h) => h,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                self.break_pool(st, outbox, format!("cannot start a reader thread: {e}"));
                return None;
            }
        };
        st.readers.push(handle);
        st.live += 1;
        st.workers.push(WorkerRecord {
            key,
            pid: child.id(),
            child: Some(child),
            channel,
            running: Vec::new(),
            unread_bytes: 0,
            sent: 0,
            closing: false,
        });
        Some(st.workers.len() - 1)
    }

    /// Marks the pool broken, kills every worker, and moves every queued and running job to
    /// `outbox`, which fails them with [`TERMINATED_ABRUPTLY`] once the lock is released.
    fn break_pool(&self, st: &mut State, outbox: &mut Outbox, cause: String) {
        if st.broken.is_none() {
            st.broken = Some(Broken::new(POOL_NOT_USABLE, Some(cause.clone())));
        }
        outbox.cause = Some(cause);
        let failed = &mut outbox.failed;
        for w in &mut st.workers {
            failed.extend(w.running.drain(..).map(|(_, _, job)| job));
            w.unread_bytes = 0;
            if let Some(child) = &mut w.child {
                // The child is not reaped yet (its reader takes it out first), so its pid is ours.
                let _ = child.kill();
            }
        }
        failed.extend(st.queue.drain(..).map(|q| q.job));
    }

    /// Half-closes the channel of every worker with nothing to do once the pool is shut down and
    /// the queue is empty; the worker reads EOF and exits.
    pub(super) fn close_idle(st: &mut State) {
        if !st.shutdown || !st.queue.is_empty() {
            return;
        }
        for w in &mut st.workers {
            if w.running.is_empty() && !w.closing {
                w.closing = true;
                let _ = w.channel.stream.shutdown(Shutdown::Write);
            }
        }
    }

    /// The reader thread of one worker: completes its jobs, refills it, and reaps it.
    fn read_worker(self: Arc<Self>, key: u64, stream: UnixStream) {
        READER_OF.with(|r| r.set(Arc::as_ptr(&self) as usize));
        let mut reader = BufReader::with_capacity(64 * 1024, &stream);
        let mut body = Vec::new();
        let mut init_failure = None;
        let mut protocol_error = None;
        let mut handshaken = false;
        loop {
            match wire::read_frame(&mut reader, &mut body, self.max_frame) {
                Ok(true) => {}
                // A worker that died with jobs unread resets the connection: that is an EOF too.
                Ok(false) => break,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => {
                    protocol_error = Some(e.to_string());
                    break;
                }
            }
            let (msg, payload): (FromWorker<'_>, _) = match wire::split_body(&body) {
                Ok(parts) => parts,
                Err(e) => {
                    protocol_error = Some(e.to_string());
                    break;
                }
            };
            match msg {
                FromWorker::Ready => handshaken = true,
                FromWorker::InitFailed(why) => {
                    handshaken = true;
                    init_failure = Some(why.to_owned());
                }
                FromWorker::Done { id, outcome } => {
                    let job = {
                        let mut st = self.lock();
                        st.workers.iter_mut().find(|w| w.key == key).and_then(|w| {
                            let at = w.running.iter().position(|(job_id, _, _)| *job_id == id)?;
                            let (_, len, job) = w.running.swap_remove(at);
                            w.unread_bytes -= len;
                            Some(job)
                        })
                    };
                    // None: the pool broke meanwhile and already failed this job.
                    if let Some(job) = job {
                        job.finish(match outcome {
                            Outcome::Ok => Ok(payload),
                            Outcome::Panicked(m) => Err(ProcessPoolError::Panicked(m.to_owned())),
                            Outcome::Serialization(m) => {
                                Err(ProcessPoolError::Serialization(m.to_owned()))
                            }
                        });
                    }
                }
            }
            if reader.buffer().is_empty() {
                // End of a burst: refill this worker (and any other) in one go.
                let mut outbox = Outbox::default();
                let busy = {
                    let mut st = self.lock();
                    self.pump(&mut st, &mut outbox);
                    PoolShared::close_idle(&mut st);
                    st.workers
                        .iter()
                        .any(|w| w.key == key && !w.running.is_empty())
                };
                outbox.flush();
                if busy {
                    // More results are due soon: poll briefly instead of sleeping. Not when idle,
                    // so a lone caller waiting for its result is not kept off the CPU.
                    wire::spin_until_readable(stream.as_raw_fd());
                }
            }
        }
        if protocol_error.is_some() {
            // A worker that speaks garbage is as good as dead; make sure it is.
            let mut st = self.lock();
            if let Some(child) = st
                .workers
                .iter_mut()
                .find(|w| w.key == key)
                .and_then(|w| w.child.as_mut())
            {
                let _ = child.kill();
            }
        }
        let ended = match (init_failure, protocol_error) {
            (Some(why), _) => Ended::InitFailed(why),
            (None, Some(why)) => Ended::Broken(why),
            (None, None) if !handshaken => Ended::BeforeHandshake,
            (None, None) => Ended::Eof,
        };
        self.reap(key, ended);
    }

    /// After a worker's channel closed: reaps the process and decides whether its exit was expected
    /// (shutdown, `max_tasks_per_child`) or breaks the pool.
    fn reap(self: &Arc<Self>, key: u64, ended: Ended) {
        let (mut child, expected) = {
            let mut st = self.lock();
            let Some(at) = st.workers.iter().position(|w| w.key == key) else {
                return;
            };
            let w = &mut st.workers[at];
            let expected = matches!(ended, Ended::Eof)
                && w.running.is_empty()
                && (w.closing || self.max_tasks.is_some_and(|max| w.sent >= max));
            let Some(child) = w.child.take() else { return };
            (child, expected)
        };
        let status = child.wait();
        let mut outbox = Outbox::default();
        {
            let mut st = self.lock();
            if let Some(at) = st.workers.iter().position(|w| w.key == key) {
                let w = st.workers.swap_remove(at);
                // Normally empty; jobs still here died with the worker.
                outbox
                    .failed
                    .extend(w.running.into_iter().map(|(_, _, job)| job));
            }
            st.live -= 1;
            if !expected && st.broken.is_none() {
                let cause = ended.cause(child.id(), &status);
                self.break_pool(&mut st, &mut outbox, cause);
            } else {
                self.pump(&mut st, &mut outbox);
                PoolShared::close_idle(&mut st);
            }
            self.reaped.notify_all();
        }
        outbox.flush();
    }
}

/// How a worker's channel ended, as its reader saw it.
enum Ended {
    /// A clean end of stream after the handshake.
    Eof,
    /// The worker's initializer (or its handshake check) failed with this message.
    InitFailed(String),
    /// The channel broke: garbage, a frame over the limit, or an end inside a frame.
    Broken(String),
    /// The worker went away before it said anything: it never reached [`init`](crate::init).
    BeforeHandshake,
}

/// What a pool-breaking report names when the program forgot the entry check.
pub(crate) const INIT_HINT: &str = "a program that uses a process pool must call \
     evloop_process_pool::init() first thing in main, before anything that creates a pool \
     (evloop::run() calls it for you; test binaries use evloop_process_pool::test_worker!())";

impl Ended {
    /// The cause a broken pool reports for a worker that ended this way with `status`.
    fn cause(self, pid: u32, status: &std::io::Result<std::process::ExitStatus>) -> String {
        let exit = match status {
            Ok(s) => match (s.code(), s.signal()) {
                (Some(code), _) => format!("worker {pid} exited with code {code}"),
                (None, Some(sig)) => format!(
                    "worker {pid} was killed by signal {sig}{}",
                    signal_name(sig).map_or(String::new(), |n| format!(" ({n})"))
                ),
                _ => format!("worker {pid} exited: {s}"),
            },
            Err(e) => format!("worker {pid} could not be reaped: {e}"),
        };
        let died = status.as_ref().is_ok_and(|s| !s.success());
        match self {
            Ended::InitFailed(why) => why,
            // A worker killed mid-frame breaks the channel too; its death is the real cause.
            Ended::Broken(why) if died => format!("{exit} (the channel broke: {why})"),
            Ended::Broken(why) => format!("the job channel of worker {pid} broke: {why}"),
            // One that exits by itself before saying a word ran the program's main instead of
            // the worker (a signal is just a kill, whoever sent it).
            Ended::BeforeHandshake if status.as_ref().is_ok_and(|s| s.code().is_some()) => {
                format!("{exit} before its handshake: {INIT_HINT}")
            }
            Ended::BeforeHandshake => exit,
            Ended::Eof => exit,
        }
    }
}

/// The usual name of the signals that end workers, for reports.
fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGPIPE => "SIGPIPE",
        _ => return None,
    })
}
