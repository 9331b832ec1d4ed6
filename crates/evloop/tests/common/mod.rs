//! Helpers shared by the sync and queue contract tests.

#![allow(dead_code)]

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use evloop::{EventLoop, ExceptionContext, RunError, Runner};

/// Runs `main` on a loop with a virtual clock: long sleeps take no real time. A main still
/// unfinished after a virtual day panics, so a deadlock fails the test instead of hanging it.
pub(crate) fn vrun<F: Future + 'static>(main: F) -> Result<F::Output, RunError>
where
    F::Output: 'static,
{
    let mut runner = Runner::with_builder(EventLoop::builder().virtual_clock(true));
    let day = Duration::from_secs(86_400);
    let outcome = runner.run(async move {
        evloop::timeout(day, main)
            .await
            .expect("main finished within a virtual day: no deadlock")
    });
    if outcome.is_ok() {
        runner.close();
    } else {
        // A failed main may leave tasks that refused their cancel and block again (a broken
        // primitive under test): closing would wait for them forever. Fail instead of hanging.
        std::mem::forget(runner);
    }
    outcome
}

/// What the loop's exception handler was given: (message, exception text).
pub(crate) type Reports = Rc<RefCell<Vec<(String, Option<String>)>>>;

/// Installs a recording exception handler on the running loop.
pub(crate) fn record_reports() -> Reports {
    let reports: Reports = Rc::default();
    let sink = reports.clone();
    evloop::get_running_loop()
        .unwrap()
        .set_exception_handler(Some(Rc::new(
            move |_: &EventLoop, ctx: &ExceptionContext| {
                sink.borrow_mut().push((
                    ctx.message.clone(),
                    ctx.exception.as_ref().map(|e| e.to_string()),
                ))
            },
        )));
    reports
}

/// A small deterministic generator (xorshift64*), so that "random" races replay exactly.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
