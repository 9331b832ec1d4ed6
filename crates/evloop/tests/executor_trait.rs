//! The `Executor` trait: `run_in_executor` takes either pool and any user executor; a user
//! executor completes its promise from wherever the job ran, and cancellation and abandonment
//! reach it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use evloop::executor::{Call, Executor, Job, call};
use evloop::thread_pool::JobError;
use evloop::thread_pool::future::{JobFuture, job_channel};
use evloop::{ExecutorError, ExecutorExt, ProcessPool, ThreadPoolExecutor};

evloop::process_pool::test_worker!();

fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn both_pools_take_a_call_through_run_in_executor() {
    let processes = ProcessPool::builder().max_workers(1).build().unwrap();
    let threads = ThreadPoolExecutor::with_max_workers(1).unwrap();
    let (a, b) = evloop::run(async move {
        let lp = evloop::get_running_loop().unwrap();
        let a = lp.run_in_executor(&processes, call(square, 7)).unwrap();
        let b = lp.run_in_executor(&threads, call(square, 8)).unwrap();
        (a.await.unwrap(), b.await.unwrap())
    })
    .unwrap();
    assert_eq!((a, b), (49, 64));
}

/// A user executor: one thread per job, the way a custom pool or a remote queue completes the
/// promise from elsewhere.
struct ThreadPerJob;

impl<J: Job> Executor<J> for ThreadPerJob {
    type Output = J::Output;
    type Error = JobError;

    fn submit(&self, job: J) -> Result<JobFuture<J::Output, JobError>, ExecutorError> {
        let (promise, future) = job_channel();
        std::thread::spawn(move || {
            if promise.set_running_or_notify_cancel() {
                promise.complete(Ok(job.run()));
            }
        });
        Ok(future)
    }
}

#[test]
fn a_user_executor_runs_closures_and_calls() {
    let mine = ThreadPerJob;
    let (a, b) = evloop::run(async move {
        let lp = evloop::get_running_loop().unwrap();
        let a = lp.run_in_executor(&mine, || "closure").unwrap().await;
        let b = lp.run_in_executor(&mine, call(square, 3)).unwrap().await;
        (a.unwrap(), b.unwrap())
    })
    .unwrap();
    assert_eq!((a, b), ("closure", 9));
}

/// Holds each job's promise until told to start: the test can cancel before the job runs.
struct Deferred {
    held: std::sync::Mutex<Vec<Box<dyn FnOnce() + Send>>>,
}

impl<J: Job> Executor<J> for Deferred {
    type Output = J::Output;
    type Error = JobError;

    fn submit(&self, job: J) -> Result<JobFuture<J::Output, JobError>, ExecutorError> {
        let (promise, future) = job_channel();
        self.held.lock().unwrap().push(Box::new(move || {
            if promise.set_running_or_notify_cancel() {
                promise.complete(Ok(job.run()));
            }
        }));
        Ok(future)
    }
}

#[test]
fn dropping_the_loop_future_cancels_a_user_job_that_has_not_started() {
    let deferred = Arc::new(Deferred {
        held: std::sync::Mutex::new(Vec::new()),
    });
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let executor = deferred.clone();
    evloop::run(async move {
        let lp = evloop::get_running_loop().unwrap();
        let future = lp
            .run_in_executor(&executor, move || flag.store(true, Ordering::SeqCst))
            .unwrap();
        drop(future);
    })
    .unwrap();
    for job in deferred.held.lock().unwrap().drain(..) {
        job();
    }
    assert!(!ran.load(Ordering::SeqCst), "a cancelled job must not run");
}

/// Drops every promise: the awaiting task gets an error instead of waiting forever.
struct Forgetful;

impl Executor<Call<fn(u64) -> u64, u64>> for Forgetful {
    type Output = u64;
    type Error = JobError;

    fn submit(
        &self,
        _job: Call<fn(u64) -> u64, u64>,
    ) -> Result<JobFuture<u64, JobError>, ExecutorError> {
        let (_promise, future) = job_channel();
        Ok(future)
    }
}

#[test]
fn a_promise_dropped_without_a_result_completes_the_future_with_an_error() {
    let error = evloop::run(async {
        let lp = evloop::get_running_loop().unwrap();
        let f: fn(u64) -> u64 = square;
        lp.run_in_executor(&Forgetful, call(f, 2)).unwrap().await
    })
    .unwrap()
    .unwrap_err();
    assert_eq!(error, JobError::Abandoned);
}

struct Refusing;

impl<J: Job> Executor<J> for Refusing {
    type Output = J::Output;
    type Error = JobError;

    fn submit(&self, _job: J) -> Result<JobFuture<J::Output, JobError>, ExecutorError> {
        Err(ExecutorError::Rejected("queue unreachable".to_owned()))
    }
}

#[test]
fn a_refusal_is_the_executors_own_message() {
    let error = evloop::run(async {
        let lp = evloop::get_running_loop().unwrap();
        lp.run_in_executor(&Refusing, || ()).map(drop).unwrap_err()
    })
    .unwrap();
    assert_eq!(error.to_string(), "queue unreachable");
}
