//! The loop's default executor: created lazily, replaced by `set_default_executor`, joined off
//! the loop thread by `shutdown_default_executor`, let go without waiting by `close()`.
//!
//! The state lives in the loop (an `EventLoop::extension`), so each loop has its own default
//! pool, as in asyncio. Two details follow asyncio exactly because programs observe them: the
//! "shutdown called" flag is set even when no default executor exists, and it survives
//! `set_default_executor` (contracts C2, C3).

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use evloop_reactor::{EventLoop, ExceptionContext};
use evloop_thread_pool::{JobError, ThreadPoolExecutor, job_channel};

use crate::error::ExecutorError;

/// asyncio's `THREAD_JOIN_TIMEOUT`: how long `run()` waits for the default executor.
pub(crate) const THREAD_JOIN_TIMEOUT: Duration = Duration::from_secs(300);

/// The thread name prefix of the default executor (asyncio uses `asyncio`).
pub(crate) const DEFAULT_PREFIX: &str = "evloop";

/// Per-loop default-executor state.
#[derive(Default)]
pub(crate) struct DefaultExecutor {
    executor: RefCell<Option<Arc<ThreadPoolExecutor>>>,
    /// `shutdown_default_executor` was called: the default executor is refused from now on.
    shutdown_called: Cell<bool>,
    /// The close hook is registered (once per loop).
    hooked: Cell<bool>,
    /// Join helpers, with the address of the pool each one joins. One left running by a
    /// timed-out (or dropped) shutdown is joined by a later shutdown of the same pool that
    /// succeeds, so `run()` leaves no thread behind.
    helpers: RefCell<Vec<(usize, JoinHandle<()>)>>,
}

impl DefaultExecutor {
    pub(crate) fn of(lp: &EventLoop) -> std::rc::Rc<DefaultExecutor> {
        lp.extension::<DefaultExecutor>()
    }

    /// Runs `submit` with the default executor, creating it first if needed.
    pub(crate) fn with<T>(
        &self,
        lp: &EventLoop,
        submit: impl FnOnce(&ThreadPoolExecutor) -> T,
    ) -> Result<T, ExecutorError> {
        if self.shutdown_called.get() {
            return Err(ExecutorError::ExecutorShutdown);
        }
        if let Some(executor) = self.executor.borrow().as_deref() {
            return Ok(submit(executor));
        }
        let executor = ThreadPoolExecutor::builder()
            .thread_name_prefix(DEFAULT_PREFIX)
            .build()
            .expect("the default configuration is valid");
        let executor = Arc::new(executor);
        let out = submit(&executor);
        self.install(lp, executor);
        Ok(out)
    }

    /// Makes `executor` the default and returns the previous one.
    pub(crate) fn install(
        &self,
        lp: &EventLoop,
        executor: Arc<ThreadPoolExecutor>,
    ) -> Option<Arc<ThreadPoolExecutor>> {
        let previous = self.executor.replace(Some(executor));
        // Registered after the swap: on a closed loop the hook runs at once and lets the new
        // executor go, as close() would have.
        if !self.hooked.replace(true) {
            let state = DefaultExecutor::of(lp);
            lp.on_close(move || state.release());
        }
        previous
    }

    pub(crate) fn exists(&self) -> bool {
        self.executor.borrow().is_some()
    }

    /// `loop.close()`: shut the default executor down without waiting for it.
    fn release(&self) {
        let Some(executor) = self.executor.take() else {
            return;
        };
        executor.shutdown(false, false);
        let helpers = std::mem::take(&mut *self.helpers.borrow_mut());
        // Dropping the last handle to a pool joins its threads; if jobs still run, let a
        // detached thread do that so close() does not wait (asyncio's shutdown(wait=False)).
        match Arc::try_unwrap(executor) {
            Ok(pool) if pool.num_threads() > 0 || !helpers.is_empty() => {
                let reaper = thread::Builder::new()
                    .name("evloop-executor-reaper".into())
                    .spawn(move || {
                        drop(pool);
                        for (_, helper) in helpers {
                            let _ = helper.join();
                        }
                    });
                if let Err(error) = reaper {
                    // No thread to wait in: leave the pool's threads to finish on their own.
                    drop(error);
                }
            }
            Ok(_idle_pool) => {}
            // Someone else (the caller of set_default_executor) owns it too.
            Err(_shared) => {}
        }
    }
}

/// `shutdown_default_executor(timeout)`: joins the default executor on a helper thread while
/// the loop keeps running; on timeout reports the warning and returns without joining.
pub(crate) async fn shutdown_default(lp: EventLoop, timeout: Option<Duration>) {
    let state = DefaultExecutor::of(&lp);
    state.shutdown_called.set(true);
    let Some(executor) = state.executor.borrow().clone() else {
        return;
    };
    // With a virtual clock the limit would otherwise pass at once: the join is real work.
    let _hold = lp.has_virtual_clock().then(|| lp.remote().hold_clock());
    let (promise, joined) = job_channel::<(), JobError>();
    let joiner = executor.clone();
    let helper = thread::Builder::new()
        .name("evloop-executor-join".into())
        .spawn(move || {
            joiner.shutdown(true, false);
            drop(joiner);
            promise.complete(Ok(()));
        });
    match helper {
        // Kept in the state at once: if this future is dropped (its task cancelled) or times
        // out, a later shutdown that succeeds still joins the helper.
        Ok(helper) => state
            .helpers
            .borrow_mut()
            .push((Arc::as_ptr(&executor) as usize, helper)),
        Err(_) => {
            // The OS refuses a thread: join here rather than not at all.
            executor.shutdown(true, false);
            forget_if_current(&state, &executor);
            return;
        }
    }
    let in_time = match timeout {
        None => {
            let _ = joined.await;
            true
        }
        Some(limit) => crate::time::timeout(limit, joined).await.is_ok(),
    };
    if in_time {
        // The helpers of this pool have completed their promises or are about to: short
        // joins. A helper still joining a pool that set_default_executor replaced is left to
        // close() (asyncio does not wait for a replaced executor either).
        let id = Arc::as_ptr(&executor) as usize;
        let helpers = std::mem::take(&mut *state.helpers.borrow_mut());
        let (done, pending): (Vec<_>, Vec<_>) = helpers
            .into_iter()
            .partition(|(pool, helper)| *pool == id || helper.is_finished());
        *state.helpers.borrow_mut() = pending;
        for (_, helper) in done {
            let _ = helper.join();
        }
        forget_if_current(&state, &executor);
    } else {
        let limit = timeout.unwrap_or_default();
        lp.call_exception_handler(
            ExceptionContext::new(timeout_message(limit))
                .with_severity(evloop_reactor::Severity::Warning),
        );
        // asyncio's shutdown(wait=False); the helper may not have got that far yet.
        executor.shutdown(false, false);
    }
}

/// Drops the loop's reference to a pool that has been joined (dropping it is then immediate),
/// unless `set_default_executor` replaced it meanwhile.
fn forget_if_current(state: &DefaultExecutor, executor: &Arc<ThreadPoolExecutor>) {
    let mut current = state.executor.borrow_mut();
    if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, executor)) {
        *current = None;
    }
}

/// asyncio's warning, with its typo ("finishing joining") fixed, and the seconds written the
/// way Python writes a float (`0.5`, `2.0`, `300.0`).
pub(crate) fn timeout_message(limit: Duration) -> String {
    format!(
        "The executor did not finish joining its threads within {} seconds.",
        python_float(limit.as_secs_f64())
    )
}

/// Python's `repr(float)`: the shortest text that reads back as the same value, with `.0` on
/// whole numbers. Rust's `Debug` for `f64` is the same algorithm, exponents aside.
fn python_float(x: f64) -> String {
    format!("{x:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_written_like_python_floats() {
        assert_eq!(
            timeout_message(Duration::from_millis(500)),
            "The executor did not finish joining its threads within 0.5 seconds."
        );
        assert_eq!(python_float(2.0), "2.0");
        assert_eq!(python_float(THREAD_JOIN_TIMEOUT.as_secs_f64()), "300.0");
        assert_eq!(python_float(0.05), "0.05");
        assert_eq!(python_float(0.1 + 0.2), "0.30000000000000004");
    }
}
