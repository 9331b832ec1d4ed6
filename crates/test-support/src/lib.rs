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

use evloop::{AnyTask, EventLoop, ExceptionContext, LoopExt, RunError, Runner};

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

/// A loop of the test's own with a virtual clock (CPython's `new_test_loop()`); close it at the
/// end.
///
/// ```
/// let lp = evloop_test_support::test_loop();
/// assert!(lp.has_virtual_clock());
/// lp.close().unwrap();
/// ```
pub fn test_loop() -> EventLoop {
    EventLoop::builder()
        .virtual_clock(true)
        .build()
        .expect("a loop can be built")
}

/// CPython's `test_utils.run_briefly(loop)`: runs `lp` until a trivial task is done, which lets
/// every step and callback already queued run once.
///
/// ```
/// use evloop::LoopExt;
///
/// let lp = evloop_test_support::test_loop();
/// let task = lp.create_task(async { 5 }).unwrap();
/// evloop_test_support::run_briefly(&lp);
/// assert!(task.done());
/// lp.close().unwrap();
/// ```
pub fn run_briefly(lp: &EventLoop) {
    lp.run_until_complete(async {})
        .expect("the loop runs a trivial task");
}

/// Completes once `task` is done, whoever owns its handle (asyncio's `await asyncio.wait([t])`).
///
/// ```
/// use evloop::LoopExt;
///
/// let lp = evloop_test_support::test_loop();
/// let task = lp.create_task(evloop::sleep(std::time::Duration::from_secs(1))).unwrap();
/// let any = task.any();
/// lp.run_until_complete(evloop_test_support::until_done(any.clone())).unwrap();
/// assert!(any.done());
/// lp.close().unwrap();
/// ```
pub async fn until_done(task: AnyTask) {
    let fut = evloop::get_running_loop()
        .expect("inside a running loop")
        .create_future::<()>();
    let setter = fut.clone();
    task.add_done_callback(move || {
        let _ = setter.set_result(());
    });
    let _ = fut.await;
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

const ISOLATED_ENV: &str = "EVLOOP_TEST_ISOLATED";

/// Runs `body` in a child process of its own: this test binary re-executed with
/// `<name> --exact`, for tests that change signal dispositions, rlimits or the fd table. In the
/// child, runs `body`; in the parent, asserts that the child ran exactly that test and passed.
///
/// ```no_run
/// #[test]
/// fn changes_a_signal_disposition() {
///     evloop_test_support::isolated("changes_a_signal_disposition", || {
///         // ... install a handler, raise the signal ...
///     });
/// }
/// ```
pub fn isolated(name: &str, body: impl FnOnce()) {
    if !in_child(name) {
        body();
    }
}

/// The other form of [`isolated`]: `if in_child("name") { return; }` at the top of test `name`.
/// In the parent it runs the child, asserts it passed, and returns true; in the child (where the
/// test's body must run) it returns false.
pub fn in_child(name: &str) -> bool {
    if std::env::var(ISOLATED_ENV).as_deref() == Ok(name) {
        return false;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(ISOLATED_ENV, name)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "isolated test {name} failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "isolated test {name} did not run:\n{stdout}"
    );
    true
}

/// [`vrun`] with a deadline of `limit` (virtual time, so free) on `main`: a main still waiting by
/// then panics ("main finished within ...: no deadlock"), so a deadlock fails the test at once
/// instead of hanging it.
///
/// After such a failure the loop is not closed: tasks that refused their cancellation and block
/// again (a broken primitive under test) would make closing wait forever.
///
/// ```
/// use std::time::Duration;
///
/// let hung = evloop_test_support::vrun_within(Duration::from_secs(60), async {
///     std::future::pending::<()>().await
/// });
/// assert!(hung.is_err());
/// ```
pub fn vrun_within<F: Future + 'static>(
    limit: std::time::Duration,
    main: F,
) -> Result<F::Output, RunError>
where
    F::Output: 'static,
{
    let mut runner = Runner::with_builder(EventLoop::builder().virtual_clock(true));
    let outcome = runner.run(async move {
        evloop::timeout(limit, main)
            .await
            .unwrap_or_else(|_| panic!("main finished within {limit:?}: no deadlock"))
    });
    if outcome.is_err() {
        std::mem::forget(runner);
        return outcome;
    }
    let closed = runner.close();
    closed.and(outcome)
}

/// A small deterministic generator (xorshift64*), so that "random" races replay exactly.
///
/// ```
/// let mut rng = evloop_test_support::Rng::new(7);
/// let draws: Vec<u64> = (0..3).map(|_| rng.below(10)).collect();
/// assert_eq!(draws, evloop_test_support::Rng::new(7).take(3, 10));
/// assert!(draws.iter().all(|&d| d < 10));
/// ```
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (0 counts as 1).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// The next `count` values in `0..n`.
    pub fn take(&mut self, count: usize, n: u64) -> Vec<u64> {
        (0..count).map(|_| self.below(n)).collect()
    }
}
