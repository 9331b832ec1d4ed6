//! Recording what reaches a loop's exception handler, instead of printing it, so that a test
//! can assert on each report.

use std::cell::RefCell;
use std::rc::Rc;

/// One report that reached the exception handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The context's message.
    pub message: String,
    /// The error's text, if the context had one.
    pub exception: Option<String>,
    /// The task description, if the context named a task.
    pub task: Option<String>,
    /// Whether the context named a callback handle.
    pub handle: bool,
}

/// What a recording handler has seen so far.
pub type Reports = Rc<RefCell<Vec<Report>>>;

/// Installs on a loop an exception handler that records every report in the [`Reports`] it
/// returns. `record_reports!(lp)` is for the facade's loop (`evloop::EventLoop`);
/// `record_reports!(lp, evloop_reactor)` names the crate whose `EventLoop` and
/// `ExceptionContext` the loop has, so that the crates beneath the facade use it too (a macro
/// expands in the caller's crate: test-support does not depend on theirs).
///
/// ```
/// let lp = evloop::EventLoop::new().unwrap();
/// let reports = evloop_test_support::record_reports!(lp, evloop);
/// lp.call_soon(|| panic!("boom")).unwrap();
/// lp.run_once().unwrap();
/// assert_eq!(reports.borrow()[0].exception.as_deref(), Some("panic: boom"));
/// assert!(reports.borrow()[0].handle);
/// ```
#[macro_export]
macro_rules! record_reports {
    ($lp:expr) => {
        $crate::record_reports!($lp, evloop)
    };
    ($lp:expr, $krate:ident) => {{
        let reports: $crate::Reports = ::std::default::Default::default();
        let sink = reports.clone();
        $lp.set_exception_handler(Some(::std::rc::Rc::new(
            move |_: &$krate::EventLoop, ctx: &$krate::ExceptionContext| {
                sink.borrow_mut().push($crate::Report {
                    message: ctx.message.clone(),
                    exception: ctx.exception.as_ref().map(|e| e.to_string()),
                    task: ctx.task.clone(),
                    handle: ctx.handle.is_some(),
                })
            },
        )));
        reports
    }};
}
