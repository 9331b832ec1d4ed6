//! The executor: submission, lazy thread start, shutdown.
//!
//! Submissions go to one global crossbeam `Injector`; each worker slot owns a deque (workers
//! take batches from the injector into it) and publishes its `Stealer`, so an idle worker can
//! take over jobs that a busy one had grabbed. The deques are created with the pool, one per
//! possible worker, so stealers never change and searching needs no lock.
//!
//! `submit` holds the lifecycle mutex for the push and the thread-count decision, as Python's
//! `_shutdown_lock` does: that is what makes "submit after shutdown fails" and "a job pushed
//! before shutdown still runs" exact, and it is uncontended unless several threads submit.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_deque::{Injector, Steal, Stealer, Worker};

use crate::builder::{Initializer, ThreadPoolBuilder};
use crate::future::{JobCell, JobFuture, TimeoutError};
use crate::job::{Closure, QueuedJob};
use crate::map::Map;
use crate::sleep::Sleep;
use crate::sync::AtomicBool;
use crate::worker;
use crate::{BuildError, JobError};

/// A pool of worker threads running closures, with Python's `ThreadPoolExecutor` semantics.
///
/// Threads start lazily: a submit starts one only when no idle worker can take the job and
/// fewer than `max_workers` run. Jobs are awaited through [`JobFuture`], which works on any
/// async runtime and also blocks.
///
/// Dropping the executor calls [`shutdown(true, false)`](ThreadPoolExecutor::shutdown): it
/// waits for queued and running jobs to finish and joins every thread. Use
/// [`shutdown_timeout`](ThreadPoolExecutor::shutdown_timeout) first for a bounded wait.
///
/// ```
/// use evloop_thread_pool::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::new();
/// let squares: Vec<u64> = pool
///     .map(|x: u64| x * x, 1..=4)
///     .unwrap()
///     .map(Result::unwrap)
///     .collect();
/// assert_eq!(squares, [1, 4, 9, 16]);
/// ```
pub struct ThreadPoolExecutor {
    shared: Arc<PoolShared>,
}

/// State shared by the executor handle and its workers.
pub(crate) struct PoolShared {
    pub(crate) injector: Injector<QueuedJob>,
    pub(crate) slots: Box<[Slot]>,
    pub(crate) sleep: Sleep,
    /// Set (under the lifecycle lock) by shutdown or a broken pool: workers exit once the
    /// queues are empty.
    pub(crate) terminate: AtomicBool,
    pub(crate) lifecycle: Mutex<Lifecycle>,
    /// Signalled when the last worker exits.
    all_exited: Condvar,
    pub(crate) max_workers: usize,
    prefix: String,
    pub(crate) initializer: Option<Initializer>,
    pub(crate) keep_alive: Option<Duration>,
}

/// One possible worker: its deque (taken by the thread that runs in the slot) and its stealer.
pub(crate) struct Slot {
    pub(crate) deque: Mutex<Option<Worker<QueuedJob>>>,
    pub(crate) stealer: Stealer<QueuedJob>,
}

pub(crate) struct Lifecycle {
    shutdown: bool,
    broken: bool,
    /// Workers started and not yet exited.
    pub(crate) live: usize,
    /// Threads started so far: the next thread's name suffix.
    started: usize,
    pub(crate) free_slots: Vec<usize>,
    /// Join handles by slot; a slot's old handle is joined when the slot is reused.
    handles: Vec<Option<JoinHandle<()>>>,
}

impl PoolShared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Lifecycle> {
        self.lifecycle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether any queue holds a job (a snapshot).
    pub(crate) fn has_work(&self) -> bool {
        !self.injector.is_empty() || self.slots.iter().any(|slot| !slot.stealer.is_empty())
    }

    /// Takes every queued job out of the injector and the worker deques.
    fn drain(&self, mut each: impl FnMut(QueuedJob)) {
        loop {
            let mut retry = false;
            loop {
                match self.injector.steal() {
                    Steal::Success(job) => each(job),
                    Steal::Empty => break,
                    Steal::Retry => retry = true,
                }
            }
            for slot in self.slots.iter() {
                loop {
                    match slot.stealer.steal() {
                        Steal::Success(job) => each(job),
                        Steal::Empty => break,
                        Steal::Retry => retry = true,
                    }
                }
            }
            if !retry {
                return;
            }
        }
    }

    /// A worker's initializer failed: refuse new work, fail what is queued, stop the workers.
    pub(crate) fn break_pool(&self, why: &str) {
        // Python logs this at CRITICAL level on the `concurrent.futures` logger.
        eprintln!("evloop-thread-pool: Exception in initializer: {why}");
        {
            let mut lifecycle = self.lock();
            lifecycle.broken = true;
            self.terminate.store(true, Ordering::SeqCst);
        }
        self.drain(|job| job.fail(JobError::BrokenPool));
        self.sleep.wake_all();
    }

    /// Called by a worker as its last act.
    pub(crate) fn worker_exited(&self, lifecycle: &mut Lifecycle, slot: usize) {
        lifecycle.live -= 1;
        lifecycle.free_slots.push(slot);
        if lifecycle.live == 0 {
            self.all_exited.notify_all();
        }
    }

    /// Starts a worker in a free slot, running `first` before anything else. Called with the
    /// lifecycle lock held and `live` below `max_workers`.
    fn spawn_worker(self: &Arc<Self>, lifecycle: &mut Lifecycle, first: Option<QueuedJob>) {
        let slot = lifecycle
            .free_slots
            .pop()
            .expect("a free slot exists while live < max_workers");
        if let Some(old) = lifecycle.handles[slot].take() {
            // The retired thread released the slot as its very last act: this join is short.
            let _ = old.join();
        }
        let name = format!("{}_{}", self.prefix, lifecycle.started);
        let shared = Arc::clone(self);
        // The job comes back if the thread cannot start.
        let handed = Arc::new(Mutex::new(first));
        let taken = Arc::clone(&handed);
        match thread::Builder::new().name(name).spawn(move || {
            let first = taken.lock().unwrap_or_else(|e| e.into_inner()).take();
            worker::run(shared, slot, first)
        }) {
            Ok(handle) => {
                lifecycle.started += 1;
                lifecycle.live += 1;
                lifecycle.handles[slot] = Some(handle);
            }
            Err(error) => {
                lifecycle.free_slots.push(slot);
                eprintln!("evloop-thread-pool: cannot start a worker thread: {error}");
                if let Some(job) = handed.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    self.injector.push(job);
                }
                if lifecycle.live == 0 {
                    // Nobody would ever run the queued jobs: fail them rather than lose them.
                    self.drain(|job| job.fail(JobError::Abandoned));
                }
            }
        }
    }

    /// Waits until every worker has exited (or `deadline` passes), then joins the threads.
    fn join(&self, deadline: Option<Instant>) -> Result<(), TimeoutError> {
        let me = worker::current_slot(self);
        // A job that shuts its own pool down cannot wait for its own thread.
        let allowed = usize::from(me.is_some());
        let mut lifecycle = self.lock();
        while lifecycle.live > allowed {
            lifecycle = match deadline {
                None => self
                    .all_exited
                    .wait(lifecycle)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let left = deadline
                        .checked_duration_since(Instant::now())
                        .filter(|left| !left.is_zero())
                        .ok_or(TimeoutError)?;
                    self.all_exited
                        .wait_timeout(lifecycle, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        let handles: Vec<_> = lifecycle
            .handles
            .iter_mut()
            .enumerate()
            .filter(|(slot, _)| Some(*slot) != me)
            .filter_map(|(_, handle)| handle.take())
            .collect();
        drop(lifecycle);
        for handle in handles {
            // Workers catch job panics, so a join error means a bug in the pool itself; the
            // thread is gone either way.
            let _ = handle.join();
        }
        Ok(())
    }
}

impl ThreadPoolExecutor {
    /// A pool with the default configuration (see [`ThreadPoolBuilder`]).
    ///
    /// ```
    /// use evloop_thread_pool::{ThreadPoolExecutor, default_max_workers};
    ///
    /// let pool = ThreadPoolExecutor::new();
    /// assert_eq!(pool.max_workers(), default_max_workers());
    /// ```
    pub fn new() -> Self {
        ThreadPoolBuilder::new()
            .build()
            .expect("the default configuration is valid")
    }

    /// A builder to configure the pool.
    ///
    /// ```
    /// use evloop_thread_pool::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::builder().max_workers(1).build().unwrap();
    /// assert_eq!(pool.submit(|| 1 + 1).unwrap().wait(), Ok(2));
    /// ```
    pub fn builder() -> ThreadPoolBuilder {
        ThreadPoolBuilder::new()
    }

    /// A pool with `max_workers` threads at most and otherwise the defaults.
    ///
    /// ```
    /// use evloop_thread_pool::{BuildError, ThreadPoolExecutor};
    ///
    /// assert_eq!(ThreadPoolExecutor::with_max_workers(3).unwrap().max_workers(), 3);
    /// assert_eq!(ThreadPoolExecutor::with_max_workers(0).unwrap_err(), BuildError::ZeroWorkers);
    /// ```
    pub fn with_max_workers(max_workers: usize) -> Result<Self, BuildError> {
        ThreadPoolBuilder::new().max_workers(max_workers).build()
    }

    pub(crate) fn from_config(
        max_workers: usize,
        prefix: String,
        initializer: Option<Initializer>,
        keep_alive: Option<Duration>,
    ) -> Self {
        let slots = (0..max_workers)
            .map(|_| {
                let deque = Worker::new_fifo();
                Slot {
                    stealer: deque.stealer(),
                    deque: Mutex::new(Some(deque)),
                }
            })
            .collect();
        ThreadPoolExecutor {
            shared: Arc::new(PoolShared {
                injector: Injector::new(),
                slots,
                sleep: Sleep::new(),
                terminate: AtomicBool::new(false),
                lifecycle: Mutex::new(Lifecycle {
                    shutdown: false,
                    broken: false,
                    live: 0,
                    started: 0,
                    // Popped from the end: slot 0 first.
                    free_slots: (0..max_workers).rev().collect(),
                    handles: (0..max_workers).map(|_| None).collect(),
                }),
                all_exited: Condvar::new(),
                max_workers,
                prefix,
                initializer,
                keep_alive,
            }),
        }
    }

    /// The most threads this pool starts.
    ///
    /// ```
    /// use evloop_thread_pool::ThreadPoolExecutor;
    ///
    /// assert_eq!(ThreadPoolExecutor::with_max_workers(5).unwrap().max_workers(), 5);
    /// ```
    pub fn max_workers(&self) -> usize {
        self.shared.max_workers
    }

    /// How many worker threads are alive now.
    ///
    /// ```
    /// use evloop_thread_pool::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new();
    /// assert_eq!(pool.num_threads(), 0); // lazy
    /// pool.submit(|| ()).unwrap().wait().unwrap();
    /// assert_eq!(pool.num_threads(), 1);
    /// ```
    pub fn num_threads(&self) -> usize {
        self.shared.lock().live
    }

    /// Schedules `f` on a worker thread and returns the future of its result.
    ///
    /// Fails with [`JobError::Shutdown`] after [`shutdown`](Self::shutdown) and with
    /// [`JobError::BrokenPool`] after an initializer failed. A panic in `f` completes the future
    /// with [`JobError::Panicked`]; the worker survives.
    ///
    /// ```
    /// use evloop_thread_pool::{JobError, ThreadPoolExecutor};
    ///
    /// let pool = ThreadPoolExecutor::new();
    /// let ok = pool.submit(|| "fine").unwrap();
    /// let bad = pool.submit(|| -> u8 { panic!("boom") }).unwrap();
    /// assert_eq!(ok.wait(), Ok("fine"));
    /// assert_eq!(bad.wait(), Err(JobError::Panicked("boom".into())));
    /// ```
    pub fn submit<F, R>(&self, f: F) -> Result<JobFuture<R>, JobError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let state: Arc<JobCell<R, JobError, Closure<F>>> =
            Arc::new(JobCell::new(Closure::new(Some(f))));
        let future = JobFuture::from_shared(state.clone());
        self.push(QueuedJob::new(state))?;
        Ok(future)
    }

    fn push(&self, job: QueuedJob) -> Result<(), JobError> {
        let shared = &self.shared;
        let mut lifecycle = shared.lock();
        if lifecycle.broken {
            return Err(JobError::BrokenPool);
        }
        if lifecycle.shutdown {
            return Err(JobError::Shutdown);
        }
        shared.injector.push(job);
        // Pairs with the fence a worker makes after declaring itself idle (see `sleep`).
        std::sync::atomic::fence(Ordering::SeqCst);
        if shared.sleep.wake_one_idle() || lifecycle.live >= shared.max_workers {
            return Ok(());
        }
        // A new thread starts holding the oldest queued job, so by the time submit returns that
        // job is taken, as it is in Python once `Thread.start()` has returned: a
        // `shutdown(cancel_futures = true)` right after cancels only what no thread holds. Start
        // a thread only if a job is still queued: an idle worker that was still awake may have
        // taken ours already (and un-declared itself before we could claim it).
        let first = loop {
            match shared.injector.steal() {
                Steal::Success(job) => break Some(job),
                Steal::Empty => break None,
                Steal::Retry => {}
            }
        };
        if first.is_some() || shared.has_work() {
            shared.spawn_worker(&mut lifecycle, first);
        }
        Ok(())
    }

    /// Submits `f(item)` for every item at once and yields the results in input order (Python's
    /// `Executor.map`). Dropping the iterator early cancels the jobs that have not started.
    ///
    /// ```
    /// use evloop_thread_pool::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new();
    /// let lengths: Vec<usize> = pool
    ///     .map(|s: &str| s.len(), ["a", "bcd", "ef"])
    ///     .unwrap()
    ///     .collect::<Result<_, _>>()
    ///     .unwrap();
    /// assert_eq!(lengths, [1, 3, 2]);
    /// ```
    pub fn map<F, I, R>(&self, f: F, items: I) -> Result<Map<R>, JobError>
    where
        F: Fn(I::Item) -> R + Send + Sync + 'static,
        I: IntoIterator,
        I::Item: Send + 'static,
        R: Send + 'static,
    {
        let f = Arc::new(f);
        let mut futures = std::collections::VecDeque::new();
        for item in items {
            let f = Arc::clone(&f);
            match self.submit(move || f(item)) {
                Ok(future) => futures.push_back(future),
                Err(error) => {
                    for future in &futures {
                        future.cancel();
                    }
                    return Err(error);
                }
            }
        }
        Ok(Map::new(futures))
    }

    /// Shuts the pool down (Python's `shutdown(wait, cancel_futures=...)`); idempotent.
    ///
    /// Later submits fail with [`JobError::Shutdown`]. With `cancel_futures`, jobs that have not
    /// started are cancelled; otherwise they still run. With `wait`, this returns once every
    /// job has finished and every thread is joined; without it, at once.
    ///
    /// ```
    /// use evloop_thread_pool::{JobError, ThreadPoolExecutor};
    ///
    /// let pool = ThreadPoolExecutor::new();
    /// let queued = pool.submit(|| 7).unwrap();
    /// pool.shutdown(true, false);
    /// assert_eq!(queued.wait(), Ok(7));
    /// assert_eq!(pool.num_threads(), 0);
    /// assert_eq!(pool.submit(|| 8).unwrap_err(), JobError::Shutdown);
    /// ```
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        self.begin_shutdown(cancel_futures);
        if wait {
            // Without a deadline the join cannot time out.
            let _ = self.shared.join(None);
        }
    }

    /// Shuts down like `shutdown(wait = false, cancel_futures = false)`, then waits at most
    /// `timeout` for the threads to finish. `Ok(())` if every thread was joined, `Err(TimeoutError)`
    /// if time ran out; the remaining jobs keep running and dropping the executor waits for them.
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop_thread_pool::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new();
    /// let job = pool.submit(|| std::thread::sleep(Duration::from_millis(10))).unwrap();
    /// assert!(pool.shutdown_timeout(Duration::from_secs(30)).is_ok());
    /// assert!(job.done());
    /// ```
    pub fn shutdown_timeout(&self, timeout: Duration) -> Result<(), TimeoutError> {
        self.begin_shutdown(false);
        // An unrepresentable deadline means no deadline.
        self.shared.join(Instant::now().checked_add(timeout))
    }

    fn begin_shutdown(&self, cancel_futures: bool) {
        let shared = &self.shared;
        {
            let mut lifecycle = shared.lock();
            lifecycle.shutdown = true;
            shared.terminate.store(true, Ordering::SeqCst);
        }
        if cancel_futures {
            shared.drain(|job| job.cancel());
        }
        shared.sleep.wake_all();
    }
}

impl Default for ThreadPoolExecutor {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ThreadPoolExecutor {
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}

impl fmt::Debug for ThreadPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lifecycle = self.shared.lock();
        f.debug_struct("ThreadPoolExecutor")
            .field("thread_name_prefix", &self.shared.prefix)
            .field("max_workers", &self.shared.max_workers)
            .field("threads", &lifecycle.live)
            .field("shutdown", &lifecycle.shutdown)
            .field("broken", &lifecycle.broken)
            .finish()
    }
}
