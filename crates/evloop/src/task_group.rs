//! `TaskGroup`: structured concurrency with asyncio 3.11's semantics.
//!
//! Children are tasks. The first child that fails (returns `Err` or panics) cancels its
//! siblings; [`TaskGroup::join`] waits until every child is done and returns every failure
//! together. A task cancelled while it waits in `join` cancels the children, waits for them, and
//! is then cancelled (asyncio's `__aexit__`). A group dropped before it was joined cancels the
//! children still running, so no child outlives its group unnoticed.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::error::{Cancelled, Panic};
use crate::task::{
    AnyTask, Cancellable, Task, Waiter, create_task, register_waiter, resolve_delegation,
};

/// One child's failure, as collected by [`TaskGroup::join`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildError<E> {
    /// The child returned `Err`.
    Failed(E),
    /// The child panicked.
    Panicked(Panic),
}

impl<E: fmt::Display> fmt::Display for ChildError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildError::Failed(error) => error.fmt(f),
            ChildError::Panicked(panic) => panic.fmt(f),
        }
    }
}

/// Every failure of a group's children (asyncio's `ExceptionGroup('unhandled errors in a
/// TaskGroup', ...)`), in the order they happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskGroupError<E> {
    /// The failures.
    pub errors: Vec<ChildError<E>>,
}

impl<E: fmt::Display> fmt::Display for TaskGroupError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        let plural = if n == 1 { "" } else { "s" };
        write!(
            f,
            "unhandled errors in a TaskGroup ({n} sub-exception{plural})"
        )?;
        for error in &self.errors {
            write!(f, "\n  {error}")?;
        }
        Ok(())
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for TaskGroupError<E> {}

/// Why [`TaskGroup::spawn`] refused a child (asyncio's texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpawnError {
    /// The group was joined already.
    #[error("TaskGroup is finished")]
    Finished,
    /// A child failed and the group is cancelling the rest.
    #[error("TaskGroup is shutting down")]
    ShuttingDown,
}

struct GroupState<E> {
    children: RefCell<Vec<AnyTask>>,
    running: Cell<usize>,
    errors: RefCell<Vec<ChildError<E>>>,
    aborting: Cell<bool>,
    joined: Cell<bool>,
    joiner: RefCell<Option<Waker>>,
}

impl<E: 'static> GroupState<E> {
    /// Cancels the siblings from a callback, as asyncio's TaskGroup does from its done callback:
    /// children already ready in this iteration still take their step (and may fail too).
    fn abort_soon(state: &Rc<GroupState<E>>) {
        let state = state.clone();
        if let Ok(lp) = evloop_reactor::get_running_loop() {
            // A closed loop has already dropped the siblings.
            let _ = lp.call_soon(move || state.abort());
        }
    }
}

impl<E> GroupState<E> {
    fn abort(&self) {
        if self.aborting.replace(true) {
            return;
        }
        let children = self.children.borrow().clone();
        for child in children {
            child.cancel();
        }
    }

    fn child_ended(&self) {
        self.running.set(self.running.get() - 1);
        if let Some(waker) = self.joiner.borrow_mut().take() {
            waker.wake();
        }
    }
}

/// A group of child tasks that succeed or fail together (asyncio's `TaskGroup`).
///
/// ```
/// use evloop::{ChildError, TaskGroup, sleep};
/// use std::time::Duration;
///
/// let outcome = evloop::run(async {
///     let group = TaskGroup::<String>::new();
///     group.spawn(async {
///         sleep(Duration::from_secs(3600)).await; // cancelled by the sibling's failure
///         Ok(())
///     }).unwrap();
///     group.spawn(async { Err::<(), _>("Stop this thing".to_owned()) }).unwrap();
///     group.join().await
/// });
/// let errors = outcome.unwrap().unwrap_err().errors;
/// assert_eq!(errors, [ChildError::Failed("Stop this thing".to_owned())]);
/// ```
pub struct TaskGroup<E: 'static> {
    state: Rc<GroupState<E>>,
}

impl<E: 'static> Default for TaskGroup<E> {
    fn default() -> Self {
        TaskGroup::new()
    }
}

impl<E: 'static> TaskGroup<E> {
    /// An empty group.
    pub fn new() -> TaskGroup<E> {
        TaskGroup {
            state: Rc::new(GroupState {
                children: RefCell::new(Vec::new()),
                running: Cell::new(0),
                errors: RefCell::new(Vec::new()),
                aborting: Cell::new(false),
                joined: Cell::new(false),
                joiner: RefCell::new(None),
            }),
        }
    }

    /// Starts `future` as a child task on the running loop.
    pub fn spawn<F, T>(&self, future: F) -> Result<Task<Option<T>>, SpawnError>
    where
        F: Future<Output = Result<T, E>> + 'static,
        T: 'static,
    {
        if self.state.joined.get() {
            return Err(SpawnError::Finished);
        }
        if self.state.aborting.get() {
            return Err(SpawnError::ShuttingDown);
        }
        let state = self.state.clone();
        self.state.running.set(self.state.running.get() + 1);
        // Counts the child out however it ends: value, error, panic or cancellation. Made here
        // and moved into the future, not made inside it: a child cancelled before its first poll
        // never runs its body, and join would otherwise wait for it forever.
        let ended = ChildGuard(state.clone());
        let task = create_task(async move {
            let ended = ended;
            let outcome = CatchPanic { future }.await;
            let value = match outcome {
                Ok(Ok(value)) => Some(value),
                Ok(Err(error)) => {
                    state.errors.borrow_mut().push(ChildError::Failed(error));
                    GroupState::abort_soon(&state);
                    None
                }
                Err(panic) => {
                    state.errors.borrow_mut().push(ChildError::Panicked(panic));
                    GroupState::abort_soon(&state);
                    None
                }
            };
            drop(ended);
            value
        });
        self.state.children.borrow_mut().push(task.any());
        Ok(task)
    }

    /// Waits for every child; `Ok` if none failed, else every failure together.
    pub async fn join(self) -> Result<(), TaskGroupError<E>> {
        self.state.joined.set(true);
        JoinAll {
            state: self.state.clone(),
        }
        .await;
        let errors = std::mem::take(&mut *self.state.errors.borrow_mut());
        if errors.is_empty() {
            Ok(())
        } else {
            Err(TaskGroupError { errors })
        }
    }
}

impl<E: 'static> Drop for TaskGroup<E> {
    fn drop(&mut self) {
        // Dropped without join (or while join was pending: the awaiting task was cancelled):
        // the children go too, as asyncio cancels them when the `async with` body fails.
        if self.state.running.get() > 0 {
            let children = self.state.children.borrow().clone();
            for child in children {
                child.cancel();
            }
        }
    }
}

struct ChildGuard<E>(Rc<GroupState<E>>);

impl<E> Drop for ChildGuard<E> {
    fn drop(&mut self) {
        self.0.child_ended();
    }
}

struct JoinAll<E> {
    state: Rc<GroupState<E>>,
}

impl<E> GroupState<E> {
    fn id(self: &Rc<Self>) -> usize {
        Rc::as_ptr(self).cast::<()>() as usize
    }
}

/// A task suspended in `join` that is cancelled cancels the children and is cancelled in turn
/// once they have all ended, as asyncio's `__aexit__` waits for them before it re-raises; if a
/// child failed, the failures are returned instead (asyncio raises the ExceptionGroup).
impl<E: 'static> Cancellable for GroupState<E> {
    fn cancel_from_waiter(self: Rc<Self>, _: &Cancelled) -> bool {
        let running = self.running.get() > 0;
        self.abort();
        running
    }

    fn is_done(&self) -> bool {
        self.running.get() == 0
    }

    fn on_done(&self, wake: Rc<dyn Fn()>) {
        for child in self.children.borrow().iter().filter(|child| !child.done()) {
            let wake = wake.clone();
            child.add_done_callback(move || wake());
        }
    }

    fn awaited(&self) -> crate::dump::Awaited {
        crate::dump::Awaited::TaskGroup(self.children.borrow().iter().map(AnyTask::id).collect())
    }
}

impl<E: 'static> Future for JoinAll<E> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let state = &self.state;
        if state.running.get() == 0 {
            let cancelled = state.errors.borrow().is_empty();
            if resolve_delegation(state.id(), cancelled) {
                return Poll::Pending;
            }
            return Poll::Ready(());
        }
        *state.joiner.borrow_mut() = Some(cx.waker().clone());
        register_waiter(state.id(), || Waiter::Other(state.clone()));
        Poll::Pending
    }
}

impl<E> Drop for JoinAll<E> {
    fn drop(&mut self) {
        if self.state.running.get() > 0 {
            // The joining task was cancelled: cancel the children (asyncio: the parent's
            // cancellation propagates into the group).
            self.state.abort();
        }
    }
}

/// Turns a panic inside `future` into an `Err(Panic)`, so the group can record it.
struct CatchPanic<F> {
    future: F,
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, Panic>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: never moved out of the pinned CatchPanic.
        let future = unsafe { self.map_unchecked_mut(|this| &mut this.future) };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(Panic::from_payload(payload))),
        }
    }
}
