//! The pool's settings: Python's `ProcessPoolExecutor(...)` arguments, checked with its
//! messages before anything starts.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex};

use super::ProcessPool;
use super::dispatch::{PoolShared, State};
use crate::error::ProcessPoolError;
use crate::spawn;
use crate::trampoline::{self, Trampoline, assert_zst};
use crate::wire;

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
            shared: Arc::new(PoolShared {
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
