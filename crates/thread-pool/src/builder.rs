//! Configuration of a [`ThreadPoolExecutor`], mirroring Python's constructor arguments.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::BuildError;
use crate::pool::ThreadPoolExecutor;

/// The initializer as the workers see it: an error is carried as its message.
pub(crate) type Initializer = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Numbers the pools built without a thread-name prefix, as Python's `ThreadPoolExecutor-N`.
static POOL_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The number of CPUs this process may run on: Python's `os.process_cpu_count()`, the CPU
/// affinity mask (`taskset`, `sched_setaffinity`), further capped by a cgroup CPU quota rounded
/// down (`docker --cpus=1.5` gives 1). At least 1.
///
/// ```
/// let n = evloop_thread_pool::process_cpu_count();
/// assert!(n >= 1);
/// ```
pub fn process_cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The default `max_workers`: `min(32, cpus + 4)`, Python's formula (I/O-bound jobs need more
/// threads than cores, but not without bound), with [`process_cpu_count`] as the CPUs.
///
/// ```
/// let n = evloop_thread_pool::default_max_workers();
/// assert_eq!(n, (evloop_thread_pool::process_cpu_count() + 4).min(32));
/// ```
pub fn default_max_workers() -> usize {
    (process_cpu_count() + 4).min(32)
}

/// Builds a [`ThreadPoolExecutor`].
///
/// ```
/// use std::time::Duration;
/// use evloop_thread_pool::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::builder()
///     .max_workers(4)
///     .thread_name_prefix("io")
///     .initializer(|| Ok::<(), String>(()))
///     .keep_alive(Duration::from_secs(60))
///     .build()
///     .unwrap();
/// let name = pool.submit(|| std::thread::current().name().unwrap().to_owned()).unwrap();
/// assert_eq!(name.wait().unwrap(), "io_0");
/// ```
#[must_use]
pub struct ThreadPoolBuilder {
    max_workers: Option<usize>,
    prefix: Option<String>,
    initializer: Option<Initializer>,
    keep_alive: Option<Duration>,
}

impl ThreadPoolBuilder {
    pub(crate) fn new() -> Self {
        ThreadPoolBuilder {
            max_workers: None,
            prefix: None,
            initializer: None,
            keep_alive: None,
        }
    }

    /// The most worker threads the pool will start. Default [`default_max_workers`]; 0 makes
    /// `build` fail with "max_workers must be greater than 0".
    ///
    /// ```
    /// use evloop_thread_pool::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::builder().max_workers(2).build().unwrap();
    /// assert_eq!(pool.max_workers(), 2);
    /// ```
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = Some(n);
        self
    }

    /// Names the threads `prefix_0`, `prefix_1`, ... (default prefix `ThreadPoolExecutor-N`,
    /// with N counting the pools built without a prefix). Linux shows only the first 15 bytes
    /// of a thread name in `/proc`.
    ///
    /// ```
    /// use evloop_thread_pool::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::builder().thread_name_prefix("db").build().unwrap();
    /// let name = pool.submit(|| std::thread::current().name().map(str::to_owned)).unwrap();
    /// assert_eq!(name.wait().unwrap().as_deref(), Some("db_0"));
    /// ```
    pub fn thread_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Runs `init` once on each worker thread before it takes any job. If it returns an error
    /// or panics, the pool is broken: queued jobs fail and `submit` fails, both with
    /// [`JobError::BrokenPool`](crate::JobError::BrokenPool).
    ///
    /// ```
    /// use evloop_thread_pool::{JobError, ThreadPoolExecutor};
    ///
    /// let pool = ThreadPoolExecutor::builder()
    ///     .initializer(|| Err::<(), _>("no database"))
    ///     .build()
    ///     .unwrap();
    /// let result = pool.submit(|| 1).unwrap().wait();
    /// assert_eq!(result, Err(JobError::BrokenPool));
    /// ```
    pub fn initializer<F, E>(mut self, init: F) -> Self
    where
        F: Fn() -> Result<(), E> + Send + Sync + 'static,
        E: fmt::Display,
    {
        self.initializer = Some(Arc::new(move || init().map_err(|e| e.to_string())));
        self
    }

    /// Lets a worker that stayed idle this long exit (a later submit starts a new one). By
    /// default workers live until shutdown, as in Python.
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop_thread_pool::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::builder()
    ///     .keep_alive(Duration::from_millis(10))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(pool.submit(|| 1).unwrap().wait(), Ok(1));
    /// ```
    pub fn keep_alive(mut self, idle: Duration) -> Self {
        self.keep_alive = Some(idle);
        self
    }

    /// Builds the pool. No thread starts until the first `submit`.
    ///
    /// ```
    /// use evloop_thread_pool::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::builder().build().unwrap();
    /// assert_eq!(pool.num_threads(), 0);
    /// ```
    pub fn build(self) -> Result<ThreadPoolExecutor, BuildError> {
        let max_workers = self.max_workers.unwrap_or_else(default_max_workers);
        if max_workers == 0 {
            return Err(BuildError::ZeroWorkers);
        }
        let prefix = self.prefix.unwrap_or_else(|| {
            format!(
                "ThreadPoolExecutor-{}",
                POOL_COUNTER.fetch_add(1, Ordering::Relaxed)
            )
        });
        Ok(ThreadPoolExecutor::from_config(
            max_workers,
            prefix,
            self.initializer,
            self.keep_alive,
        ))
    }
}

impl fmt::Debug for ThreadPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolBuilder")
            .field("max_workers", &self.max_workers)
            .field("thread_name_prefix", &self.prefix)
            .field("initializer", &self.initializer.is_some())
            .field("keep_alive", &self.keep_alive)
            .finish()
    }
}
