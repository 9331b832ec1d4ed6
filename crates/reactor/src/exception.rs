//! The exception handler: where everything that goes wrong without anyone awaiting it is reported.
//!
//! asyncio routes a failing callback, a task error nobody retrieved, a panic during shutdown and
//! its own warnings through one user-settable function; so does evloop. The default handler writes
//! one readable report to stderr; with the `tracing` feature, it emits a `tracing` event instead
//! when a subscriber is installed (a warning for warnings such as a slow callback, an error for
//! the rest, as asyncio's logger does).

use std::error::Error;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use evloop_callbacks::Handle;

use crate::{EventLoop, Panic};

/// A user exception handler: asyncio's `handler(loop, context)`.
pub type ExceptionHandler = Rc<dyn Fn(&EventLoop, &ExceptionContext)>;

/// What went wrong: asyncio's context dict as a struct, with the keys that apply to evloop.
///
/// ```
/// use evloop_reactor::{ExceptionContext, Panic};
///
/// let ctx = ExceptionContext::new("Exception in callback f")
///     .with_exception(Panic::new("nope"));
/// assert_eq!(ctx.message, "Exception in callback f");
/// assert!(ctx.render().contains("panic: nope"));
/// ```
#[derive(Default)]
pub struct ExceptionContext {
    /// A one-line description (asyncio's `message`).
    pub message: String,
    /// The error or caught panic (asyncio's `exception`).
    pub exception: Option<Box<dyn Error + 'static>>,
    /// The callback involved (asyncio's `handle`).
    pub handle: Option<Handle>,
    /// A description of the task involved (asyncio's `task`).
    pub task: Option<String>,
    /// A description of the future involved (asyncio's `future`).
    pub future: Option<String>,
    /// The context a failing custom handler was handling (asyncio's `context`, set only with
    /// "Unhandled error in exception handler").
    pub context: Option<Box<ExceptionContext>>,
    /// How serious it is: asyncio logs a slow callback (and its own warnings) as a warning and
    /// everything else as an error.
    pub severity: Severity,
}

/// How serious a report is (the level of asyncio's log record, and of the `tracing` event).
///
/// ```
/// use evloop_reactor::{ExceptionContext, Severity};
///
/// assert_eq!(ExceptionContext::new("boom").severity, Severity::Error);
/// let slow = ExceptionContext::new("Executing <Handle f> took 0.200 seconds")
///     .with_severity(Severity::Warning);
/// assert_eq!(slow.severity, Severity::Warning);
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Something went wrong (a panic nobody retrieved, a failing callback).
    #[default]
    Error,
    /// Worth knowing (a slow callback, an executor that did not join in time).
    Warning,
}

impl ExceptionContext {
    /// A context with just a message.
    pub fn new(message: impl Into<String>) -> ExceptionContext {
        ExceptionContext {
            message: message.into(),
            ..ExceptionContext::default()
        }
    }

    /// Sets the severity (an error by default).
    pub fn with_severity(mut self, severity: Severity) -> ExceptionContext {
        self.severity = severity;
        self
    }

    /// Sets the error.
    pub fn with_exception(mut self, error: impl Error + 'static) -> ExceptionContext {
        self.exception = Some(Box::new(error));
        self
    }

    /// Sets the handle.
    pub fn with_handle(mut self, handle: Handle) -> ExceptionContext {
        self.handle = Some(handle);
        self
    }

    /// Sets the task description.
    pub fn with_task(mut self, task: impl Into<String>) -> ExceptionContext {
        self.task = Some(task.into());
        self
    }

    /// Sets the future description.
    pub fn with_future(mut self, future: impl Into<String>) -> ExceptionContext {
        self.future = Some(future.into());
        self
    }

    /// The report the default handler prints: the message, then `key: value` lines in asyncio's
    /// (sorted) key order, then the error and its causes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let message = if self.message.is_empty() {
            "Unhandled exception in event loop"
        } else {
            &self.message
        };
        out.push_str(message);
        if let Some(context) = &self.context {
            let _ = write!(out, "\ncontext: {}", context.render().replace('\n', "\n  "));
        }
        if let Some(future) = &self.future {
            let _ = write!(out, "\nfuture: {future}");
        }
        if let Some(handle) = &self.handle {
            let _ = write!(out, "\nhandle: {handle:?}");
        }
        if let Some(task) = &self.task {
            let _ = write!(out, "\ntask: {task}");
        }
        if let Some(error) = &self.exception {
            let _ = write!(out, "\n{error}");
            let mut source = error.source();
            while let Some(cause) = source {
                let _ = write!(out, "\ncaused by: {cause}");
                source = cause.source();
            }
        }
        out
    }
}

impl fmt::Debug for ExceptionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// The loop's side of the handler: asyncio's `set_exception_handler`, `get_exception_handler`,
/// `default_exception_handler` and `call_exception_handler`.
impl EventLoop {
    /// Sets (or with `None`, removes) the exception handler.
    ///
    /// ```
    /// use evloop_reactor::EventLoop;
    /// use std::rc::Rc;
    ///
    /// let lp = EventLoop::new().unwrap();
    /// lp.set_exception_handler(Some(Rc::new(|_lp: &EventLoop, ctx: &evloop_reactor::ExceptionContext| {
    ///     println!("reported: {}", ctx.message);
    /// })));
    /// lp.call_soon(|| panic!("boom")).unwrap();
    /// lp.run_once().unwrap(); // prints "reported: Exception in callback ..."
    /// ```
    pub fn set_exception_handler(&self, handler: Option<ExceptionHandler>) {
        *self.exception_handler_slot().borrow_mut() = handler;
    }

    /// The current exception handler, if one was set.
    pub fn exception_handler(&self) -> Option<ExceptionHandler> {
        self.exception_handler_slot().borrow().clone()
    }

    /// asyncio's `default_exception_handler`: one report on stderr.
    pub fn default_exception_handler(&self, context: &ExceptionContext) {
        default_exception_handler(context);
    }

    /// Reports `context` through the exception handler, or the default one when none is set.
    ///
    /// A handler that panics is itself reported to the default handler ("Unhandled error in
    /// exception handler", with the original context); nothing escapes into the loop.
    pub fn call_exception_handler(&self, context: ExceptionContext) {
        let handler = self.exception_handler();
        let Some(handler) = handler else {
            default_exception_handler(&context);
            return;
        };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| handler(self, &context))) {
            let mut report = ExceptionContext::new("Unhandled error in exception handler")
                .with_exception(Panic::from_payload(payload));
            report.context = Some(Box::new(context));
            default_exception_handler(&report);
        }
    }
}

/// asyncio's `default_exception_handler`: one report on stderr. Never panics (a closed stderr
/// loses the report rather than taking the loop down). With the `tracing` feature and a
/// subscriber installed, the report is a `tracing` event (target `evloop`, level from
/// [`Severity`]) instead.
pub fn default_exception_handler(context: &ExceptionContext) {
    #[cfg(feature = "tracing")]
    if tracing_event(context) {
        return;
    }
    let mut report = context.render();
    report.push('\n');
    let _ = std::io::stderr().lock().write_all(report.as_bytes());
}

/// Emits the report as a `tracing` event if a subscriber is installed; false if none is (the
/// report then goes to stderr, so that it is never lost).
#[cfg(feature = "tracing")]
fn tracing_event(context: &ExceptionContext) -> bool {
    let subscribed =
        tracing::dispatcher::get_default(|d| !d.is::<tracing::subscriber::NoSubscriber>());
    if !subscribed {
        return false;
    }
    let report = context.render();
    match context.severity {
        Severity::Warning => tracing::warn!(target: "evloop", message = %context.message, report),
        Severity::Error => tracing::error!(target: "evloop", message = %context.message, report),
    }
    true
}
