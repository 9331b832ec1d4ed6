//! The executor's behaviour: Python's `ThreadPoolExecutor` contracts (D1-D7 of the contracts
//! document). Tests that count OS threads run in a child process of their own (`isolated`) and
//! count only threads named with their own prefix.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use evloop_test_support::procfs::{cpu_ticks_of_threads_named, thread_count, thread_names};
use evloop_test_support::{block_on, eventually, isolated, threads_named};
use evloop_thread_pool::future::{JobState, as_completed};
use evloop_thread_pool::{BuildError, JobError, ThreadPoolExecutor, default_max_workers};

const LONG: Duration = Duration::from_secs(30);

/// A pool with one worker held busy until the returned sender is used (or dropped).
fn blocked_pool(
    prefix: &str,
) -> (
    ThreadPoolExecutor,
    mpsc::Sender<()>,
    evloop_thread_pool::JobFuture<()>,
) {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .thread_name_prefix(prefix)
        .build()
        .unwrap();
    let (release, gate) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel();
    let blocker = pool
        .submit(move || {
            started_tx.send(()).unwrap();
            let _ = gate.recv();
        })
        .unwrap();
    started.recv_timeout(LONG).unwrap();
    (pool, release, blocker)
}

/// Runs `job` as `workers` jobs that all wait at one barrier before they finish, so that the pool
/// must run them on that many threads at once; returns their results in submission order.
fn on_workers_at_once<T: Send + 'static>(
    pool: &ThreadPoolExecutor,
    workers: usize,
    job: impl Fn() -> T + Clone + Send + 'static,
) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(workers));
    let futures: Vec<_> = (0..workers)
        .map(|_| {
            let (barrier, job) = (Arc::clone(&barrier), job.clone());
            pool.submit(move || {
                let out = job();
                barrier.wait();
                out
            })
            .unwrap()
        })
        .collect();
    futures.into_iter().map(|f| f.wait().unwrap()).collect()
}

mod config;
mod futures;
mod initializer;
mod jobs;
mod races;
mod shutdown;
