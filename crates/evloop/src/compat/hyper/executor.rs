//! hyper's `Executor`: where hyper runs the futures it spawns (HTTP/2 streams, client
//! connection tasks), as tasks on an evloop loop.

use std::future::Future;

use evloop_reactor::{EventLoop, LoopError, RemoteHandle};

use crate::runner::LoopExt;

/// Spawns hyper's futures as tasks on a loop, from that loop's thread. `!Send` like the loop, so
/// it takes `!Send` futures (a service holding an `Rc`). After the loop closes, a spawned future
/// is dropped.
///
/// ```
/// use evloop::compat::hyper::LoopExecutor;
/// use hyper::rt::Executor;
///
/// evloop::run(async {
///     let executor = LoopExecutor::new().unwrap();
///     let shared = std::rc::Rc::new(std::cell::Cell::new(0));
///     let seen = shared.clone();
///     executor.execute(async move { seen.set(1) });
///     evloop::yield_now().await;
///     assert_eq!(shared.get(), 1);
/// })
/// .unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct LoopExecutor {
    lp: EventLoop,
}

impl LoopExecutor {
    /// An executor for the running loop; "no running event loop" outside one.
    pub fn new() -> Result<LoopExecutor, LoopError> {
        crate::get_running_loop().map(|lp| LoopExecutor { lp })
    }

    /// An executor for `lp`.
    pub fn for_loop(lp: &EventLoop) -> LoopExecutor {
        LoopExecutor { lp: lp.clone() }
    }
}

impl<F> hyper::rt::Executor<F> for LoopExecutor
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, future: F) {
        // A closed loop refuses the task and drops the future: nothing is left to run it.
        if let Ok(task) = self.lp.create_task(future) {
            task.detach();
        }
    }
}

/// Spawns `Send` futures as tasks on a loop from any thread (through its [`RemoteHandle`]), for
/// hyper clients that want a `Send + Sync` executor (hyper-util's pooled client).
///
/// ```
/// use evloop::compat::hyper::RemoteExecutor;
/// use hyper::rt::Executor;
///
/// evloop::run(async {
///     let executor = RemoteExecutor::new().unwrap();
///     let (tx, rx) = std::sync::mpsc::channel();
///     std::thread::spawn(move || executor.execute(async move { tx.send(7).unwrap() }))
///         .join()
///         .unwrap();
///     while rx.try_recv().is_err() {
///         evloop::sleep(std::time::Duration::from_millis(1)).await;
///     }
/// })
/// .unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct RemoteExecutor {
    remote: RemoteHandle,
}

impl RemoteExecutor {
    /// An executor for the running loop; "no running event loop" outside one.
    pub fn new() -> Result<RemoteExecutor, LoopError> {
        crate::get_running_loop().map(|lp| RemoteExecutor::for_loop(&lp))
    }

    /// An executor for `lp`.
    pub fn for_loop(lp: &EventLoop) -> RemoteExecutor {
        RemoteExecutor {
            remote: lp.remote(),
        }
    }
}

impl<F> hyper::rt::Executor<F> for RemoteExecutor
where
    F: Future + Send + 'static,
    F::Output: 'static,
{
    fn execute(&self, future: F) {
        // On a closed loop the callback (and the future in it) is dropped on this thread.
        let _ = self.remote.call_soon_threadsafe(move || {
            crate::create_task(future).detach();
        });
    }
}
