//! Helpers shared by evloop's tests and benches, so that each is written once.
//!
//! ```
//! let answer = evloop_test_support::vrun(async {
//!     evloop::sleep(std::time::Duration::from_secs(3600)).await; // no real time passes
//!     42
//! });
//! assert_eq!(answer.unwrap(), 42);
//! ```

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;

use evloop::{EventLoop, ExceptionContext, RunError, Runner};

/// Runs `main` as `evloop::run` would, on a loop with a virtual clock: long sleeps take no real
/// time and timer tests are exact.
pub fn vrun<F: Future + 'static>(main: F) -> Result<F::Output, RunError>
where
    F::Output: 'static,
{
    let mut runner = Runner::with_builder(EventLoop::builder().virtual_clock(true));
    let outcome = runner.run(main);
    let closed = runner.close();
    closed.and(outcome)
}

/// One report that reached the exception handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The context's message.
    pub message: String,
    /// The error's text, if the context had one.
    pub exception: Option<String>,
    /// The task description, if the context named a task.
    pub task: Option<String>,
}

/// What a [`record_reports`] handler has seen so far.
pub type Reports = Rc<RefCell<Vec<Report>>>;

/// Installs on `lp` an exception handler that records every report instead of printing it.
///
/// ```
/// let lp = evloop::EventLoop::new().unwrap();
/// let reports = evloop_test_support::record_reports(&lp);
/// lp.call_soon(|| panic!("boom")).unwrap();
/// lp.run_once().unwrap();
/// assert_eq!(reports.borrow()[0].exception.as_deref(), Some("panic: boom"));
/// ```
pub fn record_reports(lp: &EventLoop) -> Reports {
    let reports: Reports = Rc::default();
    let sink = reports.clone();
    lp.set_exception_handler(Some(Rc::new(
        move |_: &EventLoop, ctx: &ExceptionContext| {
            sink.borrow_mut().push(Report {
                message: ctx.message.clone(),
                exception: ctx.exception.as_ref().map(|e| e.to_string()),
                task: ctx.task.clone(),
            })
        },
    )));
    reports
}

/// [`record_reports`] on the running loop.
///
/// # Panics
///
/// Outside a running loop.
pub fn record_running_reports() -> Reports {
    record_reports(&evloop::get_running_loop().expect("inside a running loop"))
}

/// Sets its flag when dropped: proves that a future's destructors ran.
///
/// ```
/// let (flag, guard) = evloop_test_support::DropFlag::new();
/// drop(guard);
/// assert!(flag.get());
/// ```
pub struct DropFlag(Rc<Cell<bool>>);

impl DropFlag {
    /// A flag (initially false) and the guard that sets it.
    pub fn new() -> (Rc<Cell<bool>>, DropFlag) {
        let flag = Rc::new(Cell::new(false));
        (flag.clone(), DropFlag(flag))
    }
}

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}
