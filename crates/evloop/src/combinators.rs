//! Waiting on several things at once: `gather`, `gather!`, `gather_settled`, `wait`, `shield`.
//!
//! As in asyncio, each child runs as its own task, so a child goes on running when the
//! combinator that started it returns early (the first error of `gather`). A task suspended on a
//! gather is cancelled as asyncio's is (H6): every child not done is cancelled, and the awaiting
//! task is cancelled through the gather once a child ends cancelled or all have ended (even if
//! they caught their cancellation). Dropping an unfinished gather cancels its children too.
//! `wait` never cancels what it waits on (H7), and `shield` stops a cancellation at its door
//! (H10).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::error::{Cancelled, TaskError};
use crate::task::{
    AnyTask, Cancellable, Task, Waiter, create_task, register_waiter, resolve_delegation,
};
use crate::time::{Sleep, sleep};

/// How a gather child failed: cancelled (which a cancelled gather turns back into its awaiter's
/// cancellation), or otherwise.
#[doc(hidden)]
pub enum Failure<E> {
    Cancelled(Cancelled),
    Other(E),
}

impl<E: From<TaskError>> Failure<E> {
    fn into_error(self) -> E {
        match self {
            Failure::Cancelled(cancelled) => E::from(TaskError::Cancelled(cancelled)),
            Failure::Other(error) => error,
        }
    }
}

/// What a gather shares with the task that awaits it: its children, so that the task's
/// cancellation can reach them (asyncio's `_GatheringFuture.cancel`).
pub(crate) struct GatherChildren {
    children: Vec<AnyTask>,
    cancel_requested: Cell<bool>,
}

impl GatherChildren {
    fn new(children: Vec<AnyTask>) -> Rc<GatherChildren> {
        Rc::new(GatherChildren {
            children,
            cancel_requested: Cell::new(false),
        })
    }

    fn id(self: &Rc<Self>) -> usize {
        Rc::as_ptr(self).cast::<()>() as usize
    }

    /// The end of a gather, as its awaiter sees it: `Pending` if the gather was cancelled on the
    /// awaiting task's behalf (the task is then cancelled at this await), else `outcome`.
    fn finish<R>(self: &Rc<Self>, outcome: R, cancelled: bool) -> Poll<R> {
        if resolve_delegation(self.id(), cancelled || self.cancel_requested.get()) {
            Poll::Pending
        } else {
            Poll::Ready(outcome)
        }
    }

    fn suspend<R>(self: &Rc<Self>) -> Poll<R> {
        register_waiter(self.id(), || Waiter::Other(self.clone()));
        Poll::Pending
    }
}

impl Cancellable for GatherChildren {
    fn cancel_from_waiter(self: Rc<Self>, cancelled: &Cancelled) -> bool {
        let mut any = false;
        for child in &self.children {
            any |= child.cancel_as(cancelled.clone());
        }
        if any {
            self.cancel_requested.set(true);
        }
        any
    }

    fn is_done(&self) -> bool {
        self.children.iter().all(AnyTask::done)
    }

    fn on_done(&self, wake: Rc<dyn Fn()>) {
        for child in self.children.iter().filter(|child| !child.done()) {
            let wake = wake.clone();
            child.add_done_callback(move || wake());
        }
    }

    fn awaited(&self) -> crate::dump::Awaited {
        crate::dump::Awaited::Gather(self.children.iter().map(AnyTask::id).collect())
    }
}

/// One child of a gather: its task until it finishes, then its outcome.
#[doc(hidden)]
pub struct GatherSlot<T, E> {
    task: Option<Task<Result<T, E>>>,
    outcome: Option<Result<T, Failure<E>>>,
}

// A slot stores finished values; it never pins them, so it is Unpin whatever T is.
impl<T, E> Unpin for GatherSlot<T, E> {}

impl<T: 'static, E: From<TaskError> + 'static> GatherSlot<T, E> {
    #[doc(hidden)]
    pub fn new(task: Task<Result<T, E>>) -> Self {
        GatherSlot {
            task: Some(task),
            outcome: None,
        }
    }

    fn any(&self) -> Option<AnyTask> {
        self.task.as_ref().map(Task::any)
    }

    /// Polls the child (without taking part in cancellation: the gather does); `Ready` once its
    /// outcome is in.
    fn poll_slot(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(task) = self.task.as_mut() else {
            return Poll::Ready(());
        };
        let Poll::Ready(outcome) = task.poll_quiet(cx) else {
            return Poll::Pending;
        };
        self.task = None;
        self.outcome = Some(match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(Failure::Other(error)),
            Err(TaskError::Cancelled(cancelled)) => Err(Failure::Cancelled(cancelled)),
            Err(other) => Err(Failure::Other(E::from(other))),
        });
        Poll::Ready(())
    }

    /// The child's failure, taken out, if it failed.
    fn take_failure(&mut self) -> Option<Failure<E>> {
        match self.outcome.take()? {
            Ok(value) => {
                self.outcome = Some(Ok(value));
                None
            }
            Err(failure) => Some(failure),
        }
    }

    fn cancel(&self) {
        if let Some(task) = &self.task {
            task.cancel();
        }
    }

    fn take_value(&mut self) -> T {
        match self.outcome.take() {
            Some(Ok(value)) => value,
            _ => unreachable!("gather slot polled to completion"),
        }
    }

    fn take_outcome(&mut self) -> Result<T, E> {
        self.outcome
            .take()
            .expect("gather slot polled to completion")
            .map_err(Failure::into_error)
    }
}

/// Runs every future as a task and collects their `Ok` values in argument order (asyncio's
/// `gather`). The first `Err` (or a child's panic or cancellation, as `E::from(TaskError)`) is
/// returned at once, and the other children keep running. Cancelling the task that awaits the
/// gather cancels every child not done, and then the task itself (asyncio H6).
///
/// # Panics
///
/// Outside a running loop: the children are started as tasks when `gather` is called.
///
/// ```
/// use evloop::{TaskError, gather, sleep};
/// use std::time::Duration;
///
/// let values = evloop::run(async {
///     gather((1..=3u64).map(|i| async move {
///         sleep(Duration::from_millis(10 * (4 - i))).await;
///         Ok::<_, TaskError>(i)
///     }))
///     .await
/// });
/// assert_eq!(values.unwrap().unwrap(), [1, 2, 3]);
/// ```
#[track_caller]
pub fn gather<I, F, T, E>(futures: I) -> Gather<T, E>
where
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, E>> + 'static,
    T: 'static,
    E: From<TaskError> + 'static,
{
    Gather::start(futures, false)
}

/// Runs every future as a task and returns every outcome in argument order, failures included
/// (asyncio's `gather(..., return_exceptions=True)`). A cancellation of the awaiting task
/// reaches the children and then the task, as with [`gather`](fn@gather).
///
/// ```
/// use evloop::{TaskError, gather_settled};
/// use std::future::Future;
/// use std::pin::Pin;
///
/// type Job = Pin<Box<dyn Future<Output = Result<u32, TaskError>>>>;
/// let outcomes = evloop::run(async {
///     let jobs: Vec<Job> = vec![Box::pin(async { Ok(1) }), Box::pin(async { panic!("two") })];
///     gather_settled(jobs).await
/// })
/// .unwrap();
/// assert_eq!(outcomes[0], Ok(1));
/// assert!(outcomes[1].as_ref().unwrap_err().is_panic());
/// ```
#[track_caller]
pub fn gather_settled<I, F, T, E>(futures: I) -> GatherSettled<T, E>
where
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, E>> + 'static,
    T: 'static,
    E: From<TaskError> + 'static,
{
    GatherSettled {
        gather: Gather::start(futures, true),
    }
}

/// The future returned by [`gather`](fn@gather).
#[must_use = "futures do nothing unless awaited"]
pub struct Gather<T, E> {
    slots: Vec<GatherSlot<T, E>>,
    children: Rc<GatherChildren>,
    settled: bool,
    finished: bool,
}

impl<T: 'static, E: From<TaskError> + 'static> Gather<T, E> {
    #[track_caller]
    fn start<I, F>(futures: I, settled: bool) -> Gather<T, E>
    where
        I: IntoIterator<Item = F>,
        F: Future<Output = Result<T, E>> + 'static,
    {
        let slots: Vec<_> = futures
            .into_iter()
            .map(|f| GatherSlot::new(create_task(f)))
            .collect();
        let children = GatherChildren::new(slots.iter().filter_map(GatherSlot::any).collect());
        Gather {
            slots,
            children,
            settled,
            finished: false,
        }
    }

    /// Polls every unfinished child; `Ready` once all are done, or (not settled) at the first
    /// failure, which is returned.
    fn poll_children(&mut self, cx: &mut Context<'_>) -> Poll<Option<Failure<E>>> {
        let mut pending = false;
        for slot in &mut self.slots {
            if slot.poll_slot(cx).is_pending() {
                pending = true;
            } else if !self.settled
                && let Some(failure) = slot.take_failure()
            {
                return Poll::Ready(Some(failure));
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(None)
        }
    }
}

impl<T: 'static, E: From<TaskError> + 'static> Future for Gather<T, E> {
    type Output = Result<Vec<T>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match this.poll_children(cx) {
            Poll::Pending => this.children.suspend(),
            Poll::Ready(failure) => {
                // The others keep running: finished, so Drop does not cancel them.
                this.finished = true;
                match failure {
                    Some(Failure::Cancelled(cancelled)) => this
                        .children
                        .finish(Err(E::from(TaskError::Cancelled(cancelled))), true),
                    Some(Failure::Other(error)) => this.children.finish(Err(error), false),
                    None => {
                        let values = this.slots.iter_mut().map(GatherSlot::take_value).collect();
                        this.children.finish(Ok(values), false)
                    }
                }
            }
        }
    }
}

impl<T, E> Drop for Gather<T, E> {
    fn drop(&mut self) {
        if !self.finished {
            for slot in &self.slots {
                if let Some(task) = &slot.task {
                    task.cancel();
                }
            }
        }
    }
}

/// The future returned by [`gather_settled`].
#[must_use = "futures do nothing unless awaited"]
pub struct GatherSettled<T, E> {
    gather: Gather<T, E>,
}

impl<T: 'static, E: From<TaskError> + 'static> Future for GatherSettled<T, E> {
    type Output = Vec<Result<T, E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let gather = &mut self.gather;
        match gather.poll_children(cx) {
            Poll::Pending => gather.children.suspend(),
            Poll::Ready(_) => {
                gather.finished = true;
                let outcomes = gather
                    .slots
                    .iter_mut()
                    .map(GatherSlot::take_outcome)
                    .collect();
                gather.children.finish(outcomes, false)
            }
        }
    }
}

/// Polls a tuple of gather slots (the machinery behind [`gather!`](crate::gather!)).
#[doc(hidden)]
pub trait GatherTuple {
    type Output;
    type Error;
    /// `Ready(Err)` at the first failure, `Ready(Ok)` once all are done.
    fn poll_all(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Output, Failure<Self::Error>>>;
    fn cancel_all(&self);
    fn tasks(&self) -> Vec<AnyTask>;
}

macro_rules! gather_tuple {
    ($($idx:tt $T:ident),+) => {
        impl<E: From<TaskError> + 'static, $($T: 'static),+> GatherTuple for ($(GatherSlot<$T, E>,)+) {
            type Output = ($($T,)+);
            type Error = E;
            fn poll_all(&mut self, cx: &mut Context<'_>) -> Poll<Result<Self::Output, Failure<E>>> {
                let mut pending = false;
                $(
                    if self.$idx.poll_slot(cx).is_pending() {
                        pending = true;
                    } else if let Some(failure) = self.$idx.take_failure() {
                        return Poll::Ready(Err(failure));
                    }
                )+
                if pending {
                    return Poll::Pending;
                }
                Poll::Ready(Ok(($(self.$idx.take_value(),)+)))
            }
            fn cancel_all(&self) {
                $(self.$idx.cancel();)+
            }
            fn tasks(&self) -> Vec<AnyTask> {
                [$(self.$idx.any(),)+].into_iter().flatten().collect()
            }
        }
    };
}

gather_tuple!(0 A);
gather_tuple!(0 A, 1 B);
gather_tuple!(0 A, 1 B, 2 C);
gather_tuple!(0 A, 1 B, 2 C, 3 D);
gather_tuple!(0 A, 1 B, 2 C, 3 D, 4 F);
gather_tuple!(0 A, 1 B, 2 C, 3 D, 4 F, 5 G);
gather_tuple!(0 A, 1 B, 2 C, 3 D, 4 F, 5 G, 6 H);
gather_tuple!(0 A, 1 B, 2 C, 3 D, 4 F, 5 G, 6 H, 7 I);

/// The future returned by [`gather!`](crate::gather!).
#[doc(hidden)]
#[must_use = "futures do nothing unless awaited"]
pub struct GatherAll<S: GatherTuple> {
    slots: S,
    children: Rc<GatherChildren>,
    finished: bool,
}

impl<S: GatherTuple> GatherAll<S> {
    #[doc(hidden)]
    pub fn new(slots: S) -> Self {
        let children = GatherChildren::new(slots.tasks());
        GatherAll {
            slots,
            children,
            finished: false,
        }
    }
}

impl<S: GatherTuple> Unpin for GatherAll<S> {}

impl<S: GatherTuple> Future for GatherAll<S>
where
    S::Error: From<TaskError>,
{
    type Output = Result<S::Output, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Poll::Ready(outcome) = this.slots.poll_all(cx) else {
            return this.children.suspend();
        };
        this.finished = true;
        match outcome {
            Ok(values) => this.children.finish(Ok(values), false),
            Err(Failure::Cancelled(cancelled)) => this
                .children
                .finish(Err(S::Error::from(TaskError::Cancelled(cancelled))), true),
            Err(Failure::Other(error)) => this.children.finish(Err(error), false),
        }
    }
}

impl<S: GatherTuple> Drop for GatherAll<S> {
    fn drop(&mut self) {
        if !self.finished {
            self.slots.cancel_all();
        }
    }
}

/// Gathers futures of different output types into a tuple, in argument order (asyncio's
/// `gather(a, b, c)`); each must return `Result<_, E>` for one `E: From<TaskError>`.
///
/// ```
/// use evloop::TaskError;
///
/// let (n, s) = evloop::run(async {
///     evloop::gather!(async { Ok::<_, TaskError>(1) }, async { Ok("two") }).await
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!((n, s), (1, "two"));
/// ```
#[macro_export]
macro_rules! gather {
    ($($future:expr),+ $(,)?) => {
        $crate::__private::GatherAll::new((
            $($crate::__private::GatherSlot::new($crate::create_task($future)),)+
        ))
    };
}

/// When [`wait`] returns (asyncio's `return_when`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReturnWhen {
    /// As soon as any task finishes.
    FirstCompleted,
    /// As soon as any task panics (Rust's exception); otherwise when all are done.
    FirstException,
    /// When every task is done.
    #[default]
    AllCompleted,
}

/// [`wait`] was given nothing to wait for (asyncio's text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Set of Tasks/Futures is empty.")]
pub struct EmptyWait;

/// Waits until `return_when` is met or `timeout` passes, and splits the tasks into
/// `(done, pending)` (asyncio's `wait`). It never fails on timeout; done tasks keep their
/// results (await them or `take_result`).
///
/// ```
/// use evloop::{ReturnWhen, create_task, sleep, wait};
/// use std::time::Duration;
///
/// evloop::run(async {
///     let fast = create_task(async { sleep(Duration::from_millis(1)).await; "fast" });
///     let slow = create_task(async { sleep(Duration::from_secs(3600)).await; "slow" });
///     let (done, pending) = wait(vec![fast, slow], ReturnWhen::FirstCompleted, None).await.unwrap();
///     assert_eq!((done.len(), pending.len()), (1, 1));
///     pending.into_iter().for_each(|t| t.abort());
/// })
/// .unwrap();
/// ```
pub async fn wait<T: 'static>(
    tasks: Vec<Task<T>>,
    return_when: ReturnWhen,
    timeout: Option<Duration>,
) -> Result<(Vec<Task<T>>, Vec<Task<T>>), EmptyWait> {
    if tasks.is_empty() {
        return Err(EmptyWait);
    }
    let waker: Rc<RefCell<Option<Waker>>> = Rc::default();
    for task in &tasks {
        let waker = waker.clone();
        task.add_done_callback(move || {
            if let Some(waker) = waker.borrow().as_ref() {
                waker.wake_by_ref();
            }
        });
    }
    WaitUntil {
        tasks: &tasks,
        return_when,
        waker,
        timer: timeout.map(sleep),
    }
    .await;
    Ok(tasks.into_iter().partition(Task::done))
}

struct WaitUntil<'a, T> {
    tasks: &'a [Task<T>],
    return_when: ReturnWhen,
    waker: Rc<RefCell<Option<Waker>>>,
    timer: Option<Sleep>,
}

impl<T> Future for WaitUntil<'_, T> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let done = self.tasks.iter().filter(|t| t.done()).count();
        let met = match self.return_when {
            ReturnWhen::FirstCompleted => done > 0,
            ReturnWhen::FirstException => {
                done == self.tasks.len() || self.tasks.iter().any(Task::panicked)
            }
            ReturnWhen::AllCompleted => done == self.tasks.len(),
        };
        if met {
            return Poll::Ready(());
        }
        if let Some(timer) = self.timer.as_mut() {
            if Pin::new(timer).poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        *self.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Runs `future` as a task that a cancellation of the awaiter does not reach (asyncio's
/// `shield`): dropping or cancelling the `Shield` leaves the inner task running.
///
/// ```
/// use std::time::Duration;
/// let survived = evloop::run(async {
///     let flag = std::rc::Rc::new(std::cell::Cell::new(false));
///     let f = flag.clone();
///     let outer = evloop::create_task(evloop::shield(async move {
///         evloop::sleep(Duration::from_millis(5)).await;
///         f.set(true);
///     }));
///     evloop::sleep(Duration::ZERO).await;
///     outer.cancel();
///     evloop::sleep(Duration::from_millis(20)).await;
///     flag.get()
/// });
/// assert!(survived.unwrap());
/// ```
pub fn shield<F>(future: F) -> Shield<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    Shield {
        task: create_task(future),
    }
}

/// The future returned by [`shield`].
#[must_use = "futures do nothing unless awaited"]
pub struct Shield<T> {
    task: Task<T>,
}

impl<T: 'static> Future for Shield<T> {
    type Output = Result<T, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Polled quietly: the awaiting task is not suspended on the inner task, so cancelling the
        // awaiter never reaches it.
        self.task.poll_quiet(cx)
    }
}
