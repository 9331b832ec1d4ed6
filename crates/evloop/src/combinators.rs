//! Waiting on several things at once: `gather`, `gather!`, `wait`, `shield`.
//!
//! As in asyncio, each child runs as its own task, so a child goes on running when the
//! combinator that started it returns early (the first error of `gather`), and cancelling the
//! combinator (dropping it before it finished) cancels the children that are not done.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::error::TaskError;
use crate::task::{Task, create_task};
use crate::time::{Sleep, sleep};

/// One child of a gather: its task until it finishes, then its value.
#[doc(hidden)]
pub struct GatherSlot<T, E> {
    task: Option<Task<Result<T, E>>>,
    value: Option<T>,
}

// A slot stores finished values; it never pins them, so it is Unpin whatever T is.
impl<T, E> Unpin for GatherSlot<T, E> {}

impl<T, E: From<TaskError>> GatherSlot<T, E> {
    #[doc(hidden)]
    pub fn new(task: Task<Result<T, E>>) -> Self {
        GatherSlot {
            task: Some(task),
            value: None,
        }
    }

    /// Ok(true) when the value is in, Ok(false) while pending, Err on the child's failure.
    fn poll_slot(&mut self, cx: &mut Context<'_>) -> Result<bool, E> {
        let Some(task) = self.task.as_mut() else {
            return Ok(true);
        };
        match Pin::new(task).poll(cx) {
            Poll::Pending => Ok(false),
            Poll::Ready(outcome) => {
                self.task = None;
                match outcome {
                    Ok(Ok(value)) => {
                        self.value = Some(value);
                        Ok(true)
                    }
                    Ok(Err(error)) => Err(error),
                    Err(task_error) => Err(E::from(task_error)),
                }
            }
        }
    }

    fn cancel(&self) {
        if let Some(task) = &self.task {
            task.cancel();
        }
    }

    fn take(&mut self) -> T {
        self.value.take().expect("gather slot polled to completion")
    }
}

/// Runs every future as a task and collects their `Ok` values in argument order (asyncio's
/// `gather`). The first `Err` (or a child's panic or cancellation, as `E::from(TaskError)`) is
/// returned at once, and the other children keep running.
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
pub fn gather<I, F, T, E>(futures: I) -> Gather<T, E>
where
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, E>> + 'static,
    T: 'static,
    E: From<TaskError> + 'static,
{
    Gather {
        slots: futures
            .into_iter()
            .map(|f| GatherSlot::new(create_task(f)))
            .collect(),
        finished: false,
    }
}

/// The future returned by [`gather`](fn@gather).
#[must_use = "futures do nothing unless awaited"]
pub struct Gather<T, E> {
    slots: Vec<GatherSlot<T, E>>,
    finished: bool,
}

impl<T, E: From<TaskError>> Future for Gather<T, E> {
    type Output = Result<Vec<T>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut pending = false;
        for slot in &mut this.slots {
            match slot.poll_slot(cx) {
                Ok(true) => {}
                Ok(false) => pending = true,
                Err(error) => {
                    // The others keep running: finished, so Drop does not cancel them.
                    this.finished = true;
                    return Poll::Ready(Err(error));
                }
            }
        }
        if pending {
            return Poll::Pending;
        }
        this.finished = true;
        Poll::Ready(Ok(this.slots.iter_mut().map(GatherSlot::take).collect()))
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

/// Runs every future as a task and returns every outcome in argument order, failures included
/// (asyncio's `gather(..., return_exceptions=True)`).
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
pub async fn gather_settled<I, F, T, E>(futures: I) -> Vec<Result<T, E>>
where
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, E>> + 'static,
    T: 'static,
    E: From<TaskError> + 'static,
{
    let tasks: Vec<Task<Result<T, E>>> = futures.into_iter().map(create_task).collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.unwrap_or_else(|e| Err(E::from(e))));
    }
    outcomes
}

/// Polls a tuple of gather slots (the machinery behind [`gather!`](crate::gather!)).
#[doc(hidden)]
pub trait GatherTuple {
    type Output;
    type Error;
    fn poll_all(&mut self, cx: &mut Context<'_>) -> Poll<Result<Self::Output, Self::Error>>;
    fn cancel_all(&self);
}

macro_rules! gather_tuple {
    ($($idx:tt $T:ident),+) => {
        impl<E: From<TaskError>, $($T),+> GatherTuple for ($(GatherSlot<$T, E>,)+) {
            type Output = ($($T,)+);
            type Error = E;
            fn poll_all(&mut self, cx: &mut Context<'_>) -> Poll<Result<Self::Output, E>> {
                let mut pending = false;
                $(
                    match self.$idx.poll_slot(cx) {
                        Ok(true) => {}
                        Ok(false) => pending = true,
                        Err(error) => return Poll::Ready(Err(error)),
                    }
                )+
                if pending {
                    return Poll::Pending;
                }
                Poll::Ready(Ok(($(self.$idx.take(),)+)))
            }
            fn cancel_all(&self) {
                $(self.$idx.cancel();)+
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
    finished: bool,
}

impl<S: GatherTuple> GatherAll<S> {
    #[doc(hidden)]
    pub fn new(slots: S) -> Self {
        GatherAll {
            slots,
            finished: false,
        }
    }
}

impl<S: GatherTuple> Unpin for GatherAll<S> {}

impl<S: GatherTuple> Future for GatherAll<S> {
    type Output = Result<S::Output, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let outcome = self.slots.poll_all(cx);
        if outcome.is_ready() {
            self.finished = true;
        }
        outcome
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

impl<T> Future for Shield<T> {
    type Output = Result<T, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.task).poll(cx)
    }
}
