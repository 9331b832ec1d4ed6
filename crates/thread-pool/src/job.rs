//! Type-erased jobs as they sit in the queues.
//!
//! A queued job is a user closure plus the promise of its future, boxed once. The worker needs
//! more than "call it": it has to run the closure, then do its idle bookkeeping *before* the
//! future completes (so that a caller who submits again straight after waking finds this worker
//! already idle and reuses it instead of starting a thread), and a draining pool has to cancel
//! or fail jobs without running them. Hence a small trait instead of `Box<dyn FnOnce()>`.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::JobError;
use crate::future::JobPromise;

/// A queued job.
pub(crate) trait Job: Send {
    /// Runs the job unless it was cancelled. `before_complete` is called after the closure
    /// returned and before the future completes.
    fn run(self: Box<Self>, before_complete: &mut dyn FnMut());

    /// Cancels the job without running it (`shutdown(cancel_futures = true)`).
    fn cancel(self: Box<Self>);

    /// Fails the job without running it (a broken pool).
    fn fail(self: Box<Self>, error: JobError);
}

/// The form in which jobs travel through the deques.
pub(crate) type BoxedJob = Box<dyn Job>;

/// A closure and the promise it fulfils.
pub(crate) struct Task<F, R> {
    pub(crate) f: F,
    pub(crate) promise: JobPromise<R, JobError>,
}

impl<F, R> Job for Task<F, R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    fn run(self: Box<Self>, before_complete: &mut dyn FnMut()) {
        let Task { f, promise } = *self;
        if !promise.set_running_or_notify_cancel() {
            return;
        }
        let result = catch_unwind(AssertUnwindSafe(f))
            .map_err(|payload| JobError::Panicked(panic_message(payload)));
        before_complete();
        promise.complete(result);
    }

    fn cancel(self: Box<Self>) {
        self.promise.cancel();
    }

    fn fail(self: Box<Self>, error: JobError) {
        let Task { f, promise } = *self;
        drop(f);
        promise.complete(Err(error));
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
