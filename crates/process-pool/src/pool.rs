//! The pool: a queue of encoded jobs, worker processes that take them, and one reader thread per
//! worker that completes the futures.
//!
//! There is no manager thread. Whoever changes the state (a `submit`, or a reader that has just
//! received results) "pumps" it: moves queued jobs to workers with room, starting workers lazily up
//! to `max_workers`. Frames are written outside the state lock, under a per-worker write lock, and
//! futures are completed outside the state lock too, so a done-callback may submit again.
//!
//! A worker takes a second and further jobs before the first is answered (pipelining), which is what
//! makes many jobs in flight cheap: the worker finds the next job already buffered and answers a
//! burst with one `write`. Pipelining is bounded by [`PIPELINE_DEPTH`] jobs and [`PIPELINE_BYTES`]
//! unread bytes per worker; the byte bound keeps every write after the first small enough for the
//! socket buffer, so a parent thread writing to a worker can never wait on that worker while the
//! worker waits on the parent. A job sent to a worker is *running* in the `concurrent.futures`
//! sense (it can no longer be cancelled), like a job in Python's call queue.

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
use std::time::{Duration, Instant};

use evloop_thread_pool::future::{JobFuture, JobPromise, Timeout, job_channel};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Broken, POOL_NOT_USABLE, ProcessPoolError, TERMINATED_ABRUPTLY};
use crate::spawn;
use crate::trampoline::{self, Trampoline, assert_zst};
use crate::wire::{self, FromWorker, Outcome, ToWorker};

/// Most jobs a worker holds at once (running plus buffered). With 2, a worker finds its next job
/// waiting when it finishes one, and `shutdown(cancel_futures=true)` on a one-worker pool leaves
/// exactly two jobs to finish, as Python's call queue of `max_workers + 1` does.
pub(crate) const PIPELINE_DEPTH: usize = 2;

/// Most unread job bytes a worker may hold beyond its first job.
pub(crate) const PIPELINE_BYTES: usize = 32 * 1024;

/// The future of one process-pool job: the shared `concurrent.futures`-style future of
/// `evloop-thread-pool`, with this crate's error.
pub type ProcessFuture<T> = JobFuture<T, ProcessPoolError>;

/// A job after encoding, seen by the pool without its result type.
trait Job: Send {
    /// Claims the job for running; `false` if it was cancelled while queued.
    fn start(&self) -> bool;
    /// Completes the future with the worker's encoded value or an error.
    fn finish(self: Box<Self>, outcome: Result<&[u8], ProcessPoolError>);
    /// Cancels a job that never left the queue.
    fn cancel(self: Box<Self>);
}

struct Typed<R>(JobPromise<R, ProcessPoolError>);

impl<R: DeserializeOwned + Send + 'static> Job for Typed<R> {
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

struct Queued {
    id: u64,
    frame: Vec<u8>,
    job: Box<dyn Job>,
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

struct Worker {
    key: u64,
    pid: u32,
    /// `None` once the reader has taken it to reap the process.
    child: Option<Child>,
    channel: Arc<Channel>,
    running: Vec<(u64, usize, Box<dyn Job>)>,
    unread_bytes: usize,
    sent: u64,
    closing: bool,
}

struct State {
    queue: VecDeque<Queued>,
    workers: Vec<Worker>,
    /// Worker processes started and not yet reaped.
    live: usize,
    readers: Vec<JoinHandle<()>>,
    next_worker: u64,
    shutdown: bool,
    broken: Option<Broken>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled whenever a worker process has been reaped.
    reaped: Condvar,
    next_job: AtomicU64,
    max_workers: usize,
    initializer: Option<(i64, &'static str)>,
    max_tasks: Option<u64>,
    /// `max_message_bytes`: the largest encoded argument or result (frame body) of a job.
    max_frame: usize,
}

thread_local! {
    /// The pool (by the address of its `Shared`) whose reader thread this is, if any: a done
    /// callback run by a reader may drop the last handle of its own pool, and that drop must
    /// not wait for this very thread.
    static READER_OF: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Work to do once the state lock is released: frames to write (coalesced per worker) and jobs to
/// fail because the pool broke. Neither may happen under the lock: a write can take a while, and
/// failing a future runs its done-callbacks, which may call back into the pool.
#[derive(Default)]
struct Outbox {
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

    fn flush(self) {
        for (channel, bytes) in self.writes {
            channel.write(&bytes);
        }
        for job in self.failed {
            let broken = Broken::new(TERMINATED_ABRUPTLY, self.cause.clone());
            job.finish(Err(ProcessPoolError::BrokenProcessPool(broken)));
        }
    }
}

/// Configures a [`ProcessPool`]; Python's `ProcessPoolExecutor(...)` arguments.
///
/// ```
/// use evloop_process_pool::ProcessPool;
/// let err = ProcessPool::builder().max_workers(0).build().unwrap_err();
/// assert_eq!(err.to_string(), "max_workers must be greater than 0");
/// ```
#[derive(Debug, Clone, Default)]
pub struct ProcessPoolBuilder {
    max_workers: Option<usize>,
    initializer: Option<(i64, &'static str)>,
    max_tasks_per_child: Option<usize>,
    max_message_bytes: Option<usize>,
}

impl ProcessPoolBuilder {
    /// The most worker processes at once (default: the number of CPUs). 0 is refused by `build`
    /// with "max_workers must be greater than 0".
    ///
    /// ```
    /// let pool = evloop_process_pool::ProcessPool::builder().max_workers(2).build().unwrap();
    /// assert_eq!(pool.max_workers(), 2);
    /// ```
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = Some(n);
        self
    }

    /// A plain function (fn item or capture-free closure) run once in every worker before its first
    /// job. If it panics, the worker reports "Exception in initializer:" on stderr and exits, and the
    /// pool is broken, as in Python.
    ///
    /// ```
    /// fn setup() {}
    /// let pool = evloop_process_pool::ProcessPool::builder().initializer(setup).build().unwrap();
    /// # drop(pool);
    /// ```
    pub fn initializer<F: Fn() + Send + Sync + 'static>(mut self, f: F) -> Self {
        const { assert_zst::<F>() };
        let _ = f;
        let entry: Trampoline = trampoline::init::<F>;
        self.initializer = Some((trampoline::offset_of(entry), trampoline::init_name::<F>()));
        self
    }

    /// A worker exits after this many jobs and a fresh one replaces it when needed. 0 is refused by
    /// `build` with "max_tasks_per_child must be >= 1".
    ///
    /// ```
    /// let err = evloop_process_pool::ProcessPool::builder().max_tasks_per_child(0).build();
    /// assert_eq!(err.unwrap_err().to_string(), "max_tasks_per_child must be >= 1");
    /// ```
    pub fn max_tasks_per_child(mut self, n: usize) -> Self {
        self.max_tasks_per_child = Some(n);
        self
    }

    /// The largest encoded argument or result a job may have, in bytes (default and maximum:
    /// 1 GiB). A job over it fails alone with [`ProcessPoolError::Serialization`] naming the size
    /// and the limit; the pool goes on. 0 and values over 1 GiB are refused by `build`.
    ///
    /// ```no_run
    /// # fn main() {
    /// # evloop_process_pool::init();
    /// use evloop_process_pool::ProcessPoolError;
    /// let pool = evloop_process_pool::ProcessPool::builder()
    ///     .max_message_bytes(1024)
    ///     .build()
    ///     .unwrap();
    /// let err = pool.submit(|v: Vec<u8>| v.len(), vec![0; 4096]).unwrap().wait();
    /// assert!(matches!(err, Err(ProcessPoolError::Serialization(m)) if m.contains("limit of")));
    /// # }
    /// ```
    pub fn max_message_bytes(mut self, n: usize) -> Self {
        self.max_message_bytes = Some(n);
        self
    }

    /// Checks the settings and creates the pool. No process starts until the first job.
    ///
    /// In a process started as a worker whose `main` did not call [`init`](crate::init) first,
    /// this fails with [`ProcessPoolError::InitMissing`] rather than start workers of workers.
    ///
    /// ```
    /// let pool = evloop_process_pool::ProcessPool::builder().build().unwrap();
    /// assert!(pool.worker_pids().is_empty());
    /// ```
    pub fn build(self) -> Result<ProcessPool, ProcessPoolError> {
        let max_workers = self
            .max_workers
            .unwrap_or_else(evloop_thread_pool::process_cpu_count);
        if max_workers == 0 {
            return Err(ProcessPoolError::InvalidArgument(
                "max_workers must be greater than 0",
            ));
        }
        if self.max_tasks_per_child == Some(0) {
            return Err(ProcessPoolError::InvalidArgument(
                "max_tasks_per_child must be >= 1",
            ));
        }
        let max_frame = self.max_message_bytes.unwrap_or(wire::MAX_FRAME);
        if max_frame == 0 || max_frame > wire::MAX_FRAME {
            return Err(ProcessPoolError::InvalidArgument(
                "max_message_bytes must be between 1 and 1073741824 (1 GiB)",
            ));
        }
        if std::env::var_os(spawn::ENV).is_some() {
            return Err(ProcessPoolError::InitMissing);
        }
        Ok(ProcessPool {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    workers: Vec::new(),
                    live: 0,
                    readers: Vec::new(),
                    next_worker: 0,
                    shutdown: false,
                    broken: None,
                }),
                reaped: Condvar::new(),
                next_job: AtomicU64::new(0),
                max_workers,
                initializer: self.initializer,
                max_tasks: self.max_tasks_per_child.map(|n| n as u64),
                max_frame,
            }),
        })
    }
}

/// A pool of worker processes running plain Rust functions: `concurrent.futures.ProcessPoolExecutor`.
///
/// Workers are fresh executions of this program, so the program must call [`init`](crate::init)
/// first thing in `main` (see the crate docs). Dropping the pool is `shutdown(true, false)`.
///
/// ```no_run
/// use evloop_process_pool::ProcessPool;
///
/// fn square(x: u64) -> u64 { x * x }
///
/// fn main() {
///     evloop_process_pool::init(); // the Rust form of `if __name__ == '__main__'`
///     let pool = ProcessPool::new();
///     assert_eq!(pool.submit(square, 7).unwrap().wait(), Ok(49));
/// }
/// ```
pub struct ProcessPool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ProcessPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessPool")
            .field("max_workers", &self.shared.max_workers)
            .field("workers", &self.worker_pids())
            .finish()
    }
}

impl Default for ProcessPool {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessPool {
    /// A pool with the default settings: one worker per CPU, no initializer, workers never retire.
    ///
    /// ```
    /// let pool = evloop_process_pool::ProcessPool::new();
    /// assert!(pool.max_workers() >= 1);
    /// ```
    pub fn new() -> Self {
        ProcessPoolBuilder::default()
            .build()
            .expect("the default settings are valid")
    }

    /// Starts configuring a pool.
    ///
    /// ```
    /// let pool = evloop_process_pool::ProcessPool::builder().max_workers(3).build().unwrap();
    /// assert_eq!(pool.max_workers(), 3);
    /// ```
    pub fn builder() -> ProcessPoolBuilder {
        ProcessPoolBuilder::default()
    }

    /// The configured maximum number of worker processes.
    ///
    /// ```
    /// assert!(evloop_process_pool::ProcessPool::new().max_workers() >= 1);
    /// ```
    pub fn max_workers(&self) -> usize {
        self.shared.max_workers
    }

    /// The process ids of the workers alive now (Python's `_processes` keys), for diagnostics.
    ///
    /// ```
    /// assert!(evloop_process_pool::ProcessPool::new().worker_pids().is_empty());
    /// ```
    pub fn worker_pids(&self) -> Vec<u32> {
        let st = self.shared.lock();
        st.workers
            .iter()
            .filter(|w| w.child.is_some())
            .map(|w| w.pid)
            .collect()
    }

    /// Schedules `f(arg)` in a worker process and returns its future.
    ///
    /// `f` must be a plain function: a fn item or a closure that captures nothing (anything else
    /// does not compile). `arg` and the result travel through serde and postcard; a value that
    /// fails to encode or decode fails this job only, with [`ProcessPoolError::Serialization`].
    /// A panic in `f` fails the job with [`ProcessPoolError::Panicked`] and the worker lives on.
    ///
    /// Errors: [`ProcessPoolError::Shutdown`] after `shutdown`, or
    /// [`ProcessPoolError::BrokenProcessPool`] once a worker has died abruptly.
    ///
    /// ```no_run
    /// # fn main() {
    /// # evloop_process_pool::init();
    /// let pool = evloop_process_pool::ProcessPool::new();
    /// let future = pool.submit(|s: String| s.len(), "four".to_string()).unwrap();
    /// assert_eq!(future.wait(), Ok(4));
    /// # }
    /// ```
    pub fn submit<F, A, R>(&self, f: F, arg: A) -> Result<ProcessFuture<R>, ProcessPoolError>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        const { assert_zst::<F>() };
        let _ = f;
        let entry: Trampoline = trampoline::job::<F, A, R>;
        self.enqueue(entry, trampoline::job_name::<F, A, R>(), &arg)
    }

    /// Runs `f` over `items` in chunks of `chunksize` items per job and returns the results in input
    /// order. Everything is submitted at once; dropping the iterator cancels the jobs that have not
    /// started. A failed chunk yields its error once and ends the iteration (Python re-raises).
    ///
    /// `chunksize == 0` is refused with "chunksize must be >= 1.".
    ///
    /// ```no_run
    /// # fn main() {
    /// # evloop_process_pool::init();
    /// let pool = evloop_process_pool::ProcessPool::new();
    /// let squares: Result<Vec<u64>, _> = pool.map(|x: u64| x * x, 0..10, 3).unwrap().collect();
    /// assert_eq!(squares.unwrap(), (0..10).map(|x| x * x).collect::<Vec<_>>());
    /// # }
    /// ```
    pub fn map<F, A, R, I>(
        &self,
        f: F,
        items: I,
        chunksize: usize,
    ) -> Result<MapResults<R>, ProcessPoolError>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        const { assert_zst::<F>() };
        let _ = f;
        if chunksize == 0 {
            return Err(ProcessPoolError::InvalidArgument("chunksize must be >= 1."));
        }
        let entry: Trampoline = trampoline::chunk::<F, A, R>;
        let name = trampoline::chunk_name::<F, A, R>();
        let mut futures = VecDeque::new();
        let mut chunk = Vec::with_capacity(chunksize);
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            chunk.extend(items.by_ref().take(chunksize));
            match self.enqueue::<Vec<R>, Vec<A>>(entry, name, &chunk) {
                Ok(future) => futures.push_back(future),
                Err(e) => {
                    futures.iter().for_each(|f: &ProcessFuture<Vec<R>>| {
                        f.cancel();
                    });
                    return Err(e);
                }
            }
            chunk.clear();
        }
        Ok(MapResults {
            futures,
            current: Vec::new().into_iter(),
            failed: false,
        })
    }

    fn enqueue<R, A>(
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
                        job: Box::new(Typed(promise)),
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

    /// Python's `shutdown(wait, cancel_futures=...)`: refuses new jobs; with `cancel_futures`
    /// cancels the jobs no worker has taken yet (taken ones finish); the rest still run. With `wait`
    /// it returns once every worker has exited and been reaped. Idempotent.
    ///
    /// ```
    /// let pool = evloop_process_pool::ProcessPool::new();
    /// pool.shutdown(true, false);
    /// pool.shutdown(true, true);
    /// assert!(pool.worker_pids().is_empty());
    /// ```
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        self.begin_shutdown(cancel_futures);
        if wait {
            let _ = self.join(None);
        }
    }

    /// `shutdown(wait = true)` bounded by `timeout`: `Err(Timeout)` if workers were still running
    /// then. They keep running their taken jobs and are reaped when they exit.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = evloop_process_pool::ProcessPool::new();
    /// assert!(pool.shutdown_timeout(Duration::from_secs(5)).is_ok());
    /// ```
    pub fn shutdown_timeout(&self, timeout: Duration) -> Result<(), Timeout> {
        self.begin_shutdown(false);
        self.join(Instant::now().checked_add(timeout))
    }

    fn begin_shutdown(&self, cancel_futures: bool) {
        let mut cancelled = Vec::new();
        let mut outbox = Outbox::default();
        {
            let mut st = self.shared.lock();
            st.shutdown = true;
            if cancel_futures {
                cancelled.extend(st.queue.drain(..).map(|q| q.job));
            }
            self.shared.pump(&mut st, &mut outbox);
            Shared::close_idle(&mut st);
        }
        outbox.flush();
        cancelled.into_iter().for_each(|job| job.cancel());
    }

    fn join(&self, deadline: Option<Instant>) -> Result<(), Timeout> {
        // A done callback on one of our reader threads that drops the pool: that reader reaps
        // its worker only after the callback returns, so wait for the others only.
        let on_reader = READER_OF.with(|r| r.get()) == Arc::as_ptr(&self.shared) as usize;
        let allowed = usize::from(on_reader);
        let mut st = self.shared.lock();
        while st.live > allowed {
            st = match deadline {
                None => self
                    .shared
                    .reaped
                    .wait(st)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let left = deadline
                        .checked_duration_since(Instant::now())
                        .ok_or(Timeout)?;
                    self.shared
                        .reaped
                        .wait_timeout(st, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        let me = std::thread::current().id();
        let readers = std::mem::take(&mut st.readers);
        drop(st);
        // Every other process is reaped, so each other reader is past its last use of the
        // state; our own thread (if we are a reader) finishes by itself.
        readers
            .into_iter()
            .filter(|r| r.thread().id() != me)
            .for_each(|r| {
                let _ = r.join();
            });
        Ok(())
    }
}

impl Drop for ProcessPool {
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}

/// The results of [`ProcessPool::map`], in input order.
///
/// ```no_run
/// # fn main() {
/// # evloop_process_pool::init();
/// let pool = evloop_process_pool::ProcessPool::new();
/// let mut results = pool.map(|x: i32| -x, [1, 2], 1).unwrap();
/// assert_eq!(results.next(), Some(Ok(-1)));
/// # }
/// ```
pub struct MapResults<R> {
    pub(crate) futures: VecDeque<ProcessFuture<Vec<R>>>,
    pub(crate) current: std::vec::IntoIter<R>,
    pub(crate) failed: bool,
}

impl<R> std::fmt::Debug for MapResults<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapResults")
            .field("chunks_left", &self.futures.len())
            .finish()
    }
}

impl<R> Iterator for MapResults<R> {
    type Item = Result<R, ProcessPoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(value) = self.current.next() {
                return Some(Ok(value));
            }
            if self.failed {
                return None;
            }
            match self.futures.pop_front()?.wait() {
                Ok(values) => self.current = values.into_iter(),
                Err(e) => {
                    self.failed = true;
                    self.futures.drain(..).for_each(|f| {
                        f.cancel();
                    });
                    return Some(Err(e));
                }
            }
        }
    }
}

impl<R> Drop for MapResults<R> {
    fn drop(&mut self) {
        for future in &self.futures {
            future.cancel();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn can_take(&self, w: &Worker) -> bool {
        !w.closing && w.child.is_some() && self.max_tasks.is_none_or(|max| w.sent < max)
    }

    /// Moves queued jobs to workers, starting workers as needed. Called with the state locked; the
    /// frames go into `outbox` for writing after the lock is released.
    fn pump(self: &Arc<Self>, st: &mut State, outbox: &mut Outbox) {
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
        st.workers.push(Worker {
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
    fn close_idle(st: &mut State) {
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
                    Shared::close_idle(&mut st);
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
                Shared::close_idle(&mut st);
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
