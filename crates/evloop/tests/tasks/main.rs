//! Tasks, futures, combinators and run(): asyncio's coroutine-layer contracts (sections B3, G, H),
//! cancellation down the await chain, loop ownership and reports, the task dump.
//! One test binary, a module per area (tokio's `tests/` naming: `task_*`, `combinators_*`,
//! `time_*`), so that CI links it once.

mod combinators_gather;
mod combinators_shield;
mod combinators_wait;
mod error_texts;
mod loop_future;
mod runner;
mod task_cancel;
mod task_cancel_request;
mod task_cell;
mod task_dump;
mod task_edges;
mod task_group;
mod task_lifetime;
mod task_spawn;
mod time_timeout;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use evloop::{EventLoop, ExceptionContext, RunError, Runner};

/// Runs `main` on a loop with a virtual clock: long sleeps take no real time.
fn vrun<F: Future + 'static>(main: F) -> Result<F::Output, RunError>
where
    F::Output: 'static,
{
    let mut runner = Runner::with_builder(EventLoop::builder().virtual_clock(true));
    let outcome = runner.run(main);
    let closed = runner.close();
    closed.and(outcome)
}

const HOUR: Duration = Duration::from_secs(3600);

/// Sets a flag when dropped: proves a future's destructors ran.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

type Reports = Rc<RefCell<Vec<(String, Option<String>)>>>;

/// Installs a recording exception handler on the running loop.
fn record_reports() -> Reports {
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
