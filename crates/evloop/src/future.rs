//! Loop futures: asyncio's `Future`, a one-shot result that code sets and tasks await.
//!
//! Unlike a `Task`, nothing drives a `LoopFuture`: some callback calls `set_result`,
//! `set_error` or `cancel`. Clones share the one future, so one side can set it while several
//! others await it; done callbacks are always scheduled with `call_soon`, never run inside the
//! call that completed the future (asyncio H2). A task awaiting one is suspended on it: cancelling
//! the task cancels the future, and the task is then cancelled through it (asyncio H4).

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use evloop_reactor::{EventLoop, LoopError, Wakers};

use crate::error::{Cancelled, FutureError, InvalidState};
use crate::task::{Cancellable, Waiter, different_loop, register_waiter, resolve_delegation};

enum State<T> {
    Pending,
    Done(Result<T, FutureError>),
}

type DoneCallback<T> = Box<dyn FnOnce(&LoopFuture<T>)>;

struct Inner<T> {
    lp: EventLoop,
    /// Where it was made (`create_future`'s caller): the task dump's "suspended at".
    created_at: &'static std::panic::Location<'static>,
    state: State<T>,
    waiters: Wakers,
    callbacks: Vec<DoneCallback<T>>,
}

/// A settable one-shot future bound to a loop (asyncio's `loop.create_future()`).
///
/// ```
/// use evloop::LoopExt;
///
/// let value = evloop::run(async {
///     let lp = evloop::get_running_loop().unwrap();
///     let fut = lp.create_future::<u32>();
///     let setter = fut.clone();
///     lp.call_soon(move || setter.set_result(42).unwrap()).unwrap();
///     fut.await
/// });
/// assert_eq!(value.unwrap().unwrap(), 42);
/// ```
pub struct LoopFuture<T> {
    inner: Rc<RefCell<Inner<T>>>,
}

impl<T> Clone for LoopFuture<T> {
    fn clone(&self) -> Self {
        LoopFuture {
            inner: self.inner.clone(),
        }
    }
}

impl<T: 'static> LoopFuture<T> {
    #[track_caller]
    pub(crate) fn new(lp: &EventLoop) -> LoopFuture<T> {
        LoopFuture {
            inner: Rc::new(RefCell::new(Inner {
                lp: lp.clone(),
                created_at: std::panic::Location::caller(),
                state: State::Pending,
                waiters: Wakers::default(),
                callbacks: Vec::new(),
            })),
        }
    }

    /// Whether a result, an error or a cancellation is in.
    pub fn done(&self) -> bool {
        matches!(self.inner.borrow().state, State::Done(_))
    }

    /// Whether the future was cancelled.
    pub fn cancelled(&self) -> bool {
        matches!(
            self.inner.borrow().state,
            State::Done(Err(FutureError::Cancelled(_)))
        )
    }

    /// Sets the result; "invalid state" if the future is already done.
    pub fn set_result(&self, value: T) -> Result<(), InvalidState> {
        self.complete(Ok(value))
    }

    /// Sets an error; "invalid state" if the future is already done.
    pub fn set_error(
        &self,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> Result<(), InvalidState> {
        self.complete(Err(FutureError::Failed(std::sync::Arc::new(error))))
    }

    /// Cancels the future; false if it is already done.
    pub fn cancel(&self) -> bool {
        self.cancel_with_state(Cancelled::new())
    }

    /// Cancels the future with a message; false if it is already done.
    pub fn cancel_with(&self, message: impl Into<String>) -> bool {
        self.cancel_with_state(Cancelled::with_message(message))
    }

    fn cancel_with_state(&self, cancelled: Cancelled) -> bool {
        self.complete(Err(FutureError::Cancelled(cancelled)))
            .is_ok()
    }

    fn complete(&self, outcome: Result<T, FutureError>) -> Result<(), InvalidState> {
        complete(&self.inner, outcome)
    }

    /// Schedules `callback(self)` with `call_soon` once the future is done (at once if it is), in
    /// the context current now (asyncio H2: the context it was registered with).
    pub fn add_done_callback(
        &self,
        callback: impl FnOnce(&LoopFuture<T>) + 'static,
    ) -> Result<(), LoopError> {
        let lp = {
            let mut inner = self.inner.borrow_mut();
            if !matches!(inner.state, State::Done(_)) {
                let mut context = evloop_reactor::copy_context();
                inner
                    .callbacks
                    .push(Box::new(move |fut| context.run(|| callback(fut))));
                return Ok(());
            }
            inner.lp.clone()
        };
        let me = self.clone();
        lp.call_soon(move || callback(&me)).map(drop)
    }

    /// The loop the future belongs to.
    pub fn get_loop(&self) -> EventLoop {
        self.inner.borrow().lp.clone()
    }
}

/// Sets the outcome of the future behind `inner`: wakes its awaiters and schedules its done
/// callbacks (each gets a handle to the future).
fn complete<T: 'static>(
    inner: &Rc<RefCell<Inner<T>>>,
    outcome: Result<T, FutureError>,
) -> Result<(), InvalidState> {
    let (waiters, callbacks, lp) = {
        let mut state = inner.borrow_mut();
        if matches!(state.state, State::Done(_)) {
            return Err(InvalidState::AlreadyDone);
        }
        state.state = State::Done(outcome);
        (
            state.waiters.take(),
            std::mem::take(&mut state.callbacks),
            state.lp.clone(),
        )
    };
    waiters.wake_all();
    for callback in callbacks {
        let me = LoopFuture {
            inner: inner.clone(),
        };
        // A closed loop drops the callback, as close() drops asyncio's _ready.
        let _ = lp.call_soon(move || callback(&me));
    }
    Ok(())
}

impl<T: Clone + 'static> LoopFuture<T> {
    /// The result: the value, the error, `Cancelled`, or "Result is not set." while pending.
    pub fn result(&self) -> Result<T, FutureError> {
        match &self.inner.borrow().state {
            State::Pending => Err(FutureError::InvalidState(InvalidState::ResultNotSet)),
            State::Done(outcome) => outcome.clone(),
        }
    }
}

impl<T: Clone + 'static> Future for LoopFuture<T> {
    type Output = Result<T, FutureError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut inner = self.inner.borrow_mut();
        let running = EventLoop::running_id();
        if running != 0 && running != inner.lp.id() {
            // Only its own loop's callbacks can complete it: refuse instead of hanging.
            return Poll::Ready(Err(FutureError::DifferentLoop(different_loop(&describe(
                &inner.state,
            )))));
        }
        match &inner.state {
            State::Done(outcome) => {
                let cancelled = matches!(outcome, Err(FutureError::Cancelled(_)));
                let outcome = outcome.clone();
                drop(inner);
                if resolve_delegation(self.waiter_id(), cancelled) {
                    return Poll::Pending;
                }
                Poll::Ready(outcome)
            }
            State::Pending => {
                inner.waiters.register(cx.waker());
                drop(inner);
                register_waiter(self.waiter_id(), || Waiter::Other(self.inner.clone()));
                Poll::Pending
            }
        }
    }
}

impl<T: 'static> LoopFuture<T> {
    fn waiter_id(&self) -> usize {
        Rc::as_ptr(&self.inner).cast::<()>() as usize
    }
}

/// A task's cancellation reaching a future it awaits cancels the future (asyncio H4).
impl<T: 'static> Cancellable for RefCell<Inner<T>> {
    fn cancel_from_waiter(self: Rc<Self>, cancelled: &Cancelled) -> bool {
        complete(&self, Err(FutureError::Cancelled(cancelled.clone()))).is_ok()
    }

    fn is_done(&self) -> bool {
        matches!(self.borrow().state, State::Done(_))
    }

    fn on_done(&self, wake: Rc<dyn Fn()>) {
        let mut inner = self.borrow_mut();
        match inner.state {
            State::Pending => inner.callbacks.push(Box::new(move |_| wake())),
            State::Done(_) => {
                let lp = inner.lp.clone();
                drop(inner);
                let _ = lp.call_soon(move || wake());
            }
        }
    }

    fn awaited(&self) -> crate::dump::Awaited {
        crate::dump::Awaited::Future {
            what: format!("LoopFuture<{}>", std::any::type_name::<T>()),
            made_at: self.borrow().created_at,
        }
    }
}

fn describe<T>(state: &State<T>) -> String {
    let state = match state {
        State::Pending => "pending",
        State::Done(Ok(_)) => "finished",
        State::Done(Err(FutureError::Cancelled(_))) => "cancelled",
        State::Done(Err(_)) => "failed",
    };
    format!("<LoopFuture {state}>")
}

impl<T> fmt::Debug for LoopFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe(&self.inner.borrow().state))
    }
}
