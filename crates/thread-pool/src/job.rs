//! Type-erased jobs as they sit in the queues.
//!
//! A job's closure lives in the same allocation as its future's state (one allocation per job):
//! the queue holds an `Arc` of that state seen as a [`Job`], the caller holds it seen as a
//! `JobFuture`. The worker needs more than "call it": it runs the closure, then does its idle
//! bookkeeping *before* the future completes (so that a caller who submits again straight after
//! waking finds this worker already idle and reuses it instead of starting a thread), and a
//! draining pool cancels or fails jobs without running them. [`QueuedJob`] is the unique handle
//! that moves through the deques; dropping it unrun completes the future with
//! [`JobError::Abandoned`], so no job is ever lost silently.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use crate::JobError;
use crate::future::JobCell;

/// What a worker can do with a queued job.
pub(crate) trait Job: Send + Sync {
    /// Runs the job unless it was cancelled. `before_complete` is called after the closure
    /// returned and before the future completes.
    fn run(&self, before_complete: &mut dyn FnMut());

    /// Cancels the job without running it (`shutdown(cancel_futures = true)`).
    fn cancel(&self);

    /// Fails the job without running it (a broken pool, or a job nobody can run).
    fn fail(&self, error: JobError);
}

/// The closure of a job, taken out exactly once by whoever runs, cancels or fails it. The lock
/// is never contended: only the single `QueuedJob` handle reaches it.
pub(crate) type Closure<F> = Mutex<Option<F>>;

fn take<F>(closure: &Closure<F>) -> Option<F> {
    closure.lock().unwrap_or_else(|e| e.into_inner()).take()
}

impl<F, R> Job for JobCell<R, JobError, Closure<F>>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    fn run(&self, before_complete: &mut dyn FnMut()) {
        let Some(f) = take(&self.payload) else {
            return;
        };
        if !self.set_running_or_notify_cancel() {
            return;
        }
        let result = catch_unwind(AssertUnwindSafe(f))
            .map_err(|payload| JobError::Panicked(panic_message(payload)));
        before_complete();
        self.complete(result);
    }

    fn cancel(&self) {
        JobCell::cancel(self);
        drop(take(&self.payload));
    }

    fn fail(&self, error: JobError) {
        drop(take(&self.payload));
        self.complete(Err(error));
    }
}

/// The unique handle of a queued job.
pub(crate) struct QueuedJob(Option<Arc<dyn Job>>);

impl QueuedJob {
    pub(crate) fn new(job: Arc<dyn Job>) -> Self {
        QueuedJob(Some(job))
    }

    pub(crate) fn run(mut self, before_complete: &mut dyn FnMut()) {
        if let Some(job) = self.0.take() {
            job.run(before_complete);
        }
    }

    pub(crate) fn cancel(mut self) {
        if let Some(job) = self.0.take() {
            job.cancel();
        }
    }

    pub(crate) fn fail(mut self, error: JobError) {
        if let Some(job) = self.0.take() {
            job.fail(error);
        }
    }
}

impl Drop for QueuedJob {
    fn drop(&mut self) {
        if let Some(job) = self.0.take() {
            job.fail(JobError::Abandoned);
        }
    }
}

/// The text of a panic payload (`panic!` gives `&str` or `String`).
pub(crate) fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(message) => (*message).to_owned(),
            Err(_) => "Box<dyn Any>".to_owned(),
        },
    }
}
