//! CPython's gather and shield tests (`test_tasks.py`: `GatherTestsBase`,
//! `CoroutineGatherTests`, `FutureGatherTests`, `test_shield_gather`, `test_gather_shield`),
//! ported. A gather's children are tasks in evloop, so the futures CPython gathers directly are
//! awaited here by a child each (CPython's `CoroutineGatherTests.wrap_futures`).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use evloop::{
    Cancelled, FutureError, LoopExt, LoopFuture, TaskError, create_task, gather, gather_settled,
    shield, sleep,
};
use evloop_test_support::{run_briefly, test_loop, vrun};

/// How a gathered child failed, as the tests tell failures apart.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// An error set on the awaited future (CPython's `set_exception`), by its text.
    Failed(String),
    /// The child task was cancelled or panicked.
    Task(TaskError),
}

impl From<TaskError> for Failure {
    fn from(error: TaskError) -> Failure {
        Failure::Task(error)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Boom(&'static str);

/// CPython's `async def coro(fut=fut): return await fut`: a cancelled future cancels the child.
fn wrap<T: Clone + 'static>(
    fut: &LoopFuture<T>,
) -> impl Future<Output = Result<T, Failure>> + use<T> {
    let fut = fut.clone();
    async move {
        match fut.await {
            Ok(value) => Ok(value),
            Err(FutureError::Cancelled(cancelled)) => cancelled.raise().await,
            Err(other) => Err(Failure::Failed(other.to_string())),
        }
    }
}

fn futures<T: 'static>(n: usize) -> Vec<LoopFuture<T>> {
    let lp = evloop::get_running_loop().unwrap();
    (0..n).map(|_| lp.create_future()).collect()
}

// GatherTestsBase.test_success (_check_success): argument order, and not done until all are.
#[test]
fn success() {
    vrun(async {
        let fs = futures::<i32>(3);
        let outer = create_task(gather(fs.iter().map(wrap)));
        fs[1].set_result(1).unwrap();
        fs[0].set_result(2).unwrap();
        sleep(Duration::ZERO).await;
        sleep(Duration::ZERO).await;
        assert!(!outer.done());
        fs[2].set_result(3).unwrap();
        assert_eq!(outer.await.unwrap(), Ok(vec![2, 1, 3]));
    })
    .unwrap();
}

// test_success for the tuple form (asyncio's gather(a, b, c) of different types).
#[test]
fn success_tuple() {
    let values = vrun(async {
        let (a, b) = (futures::<i32>(1), futures::<&str>(1));
        let outer = create_task(evloop::gather!(wrap(&a[0]), wrap(&b[0])));
        b[0].set_result("one").unwrap();
        a[0].set_result(2).unwrap();
        outer.await.unwrap()
    })
    .unwrap();
    assert_eq!(values, Ok((2, "one")));
}

// GatherTestsBase.test_result_exception_success
#[test]
fn result_exception_success() {
    let outcomes = vrun(async {
        let fs = futures::<i32>(3);
        let outer = create_task(gather_settled(fs.iter().map(wrap)));
        fs[1].set_result(1).unwrap();
        fs[0].set_result(2).unwrap();
        fs[2].set_result(3).unwrap();
        outer.await.unwrap()
    })
    .unwrap();
    assert_eq!(outcomes, [Ok(2), Ok(1), Ok(3)]);
}

// GatherTestsBase.test_one_exception: the first error is the gather's at once; the rest of the
// children's outcomes change nothing.
#[test]
fn one_exception() {
    vrun(async {
        let fs = futures::<i32>(5);
        let outer = create_task(gather(fs.iter().map(wrap)));
        fs[0].set_result(1).unwrap();
        fs[1].set_error(Boom("ZeroDivisionError")).unwrap();
        sleep(Duration::ZERO).await;
        sleep(Duration::ZERO).await;
        assert!(outer.done());
        // Does nothing.
        fs[2].set_result(3).unwrap();
        fs[3].cancel();
        fs[4].set_error(Boom("RuntimeError")).unwrap();
        assert_eq!(
            outer.await.unwrap(),
            Err(Failure::Failed("ZeroDivisionError".into()))
        );
    })
    .unwrap();
}

// GatherTestsBase.test_return_exceptions
#[test]
fn return_exceptions() {
    let outcomes = vrun(async {
        let fs = futures::<i32>(4);
        let outer = create_task(gather_settled(fs.iter().map(wrap)));
        fs[1].set_result(1).unwrap();
        fs[2].set_error(Boom("ZeroDivisionError")).unwrap();
        fs[0].set_result(3).unwrap();
        sleep(Duration::ZERO).await;
        sleep(Duration::ZERO).await;
        assert!(!outer.done());
        fs[3].set_error(Boom("RuntimeError")).unwrap();
        outer.await.unwrap()
    })
    .unwrap();
    assert_eq!(
        outcomes,
        [
            Ok(3),
            Ok(1),
            Err(Failure::Failed("ZeroDivisionError".into())),
            Err(Failure::Failed("RuntimeError".into()))
        ]
    );
}

// FutureGatherTests.test_one_cancellation: a child cancelled from elsewhere makes the gather
// fail with the cancellation; the gather's awaiter is not cancelled.
#[test]
fn one_cancellation() {
    vrun(async {
        let fs = futures::<i32>(5);
        let outer = create_task(gather(fs.iter().map(wrap)));
        let outer_any = outer.any();
        fs[0].set_result(1).unwrap();
        fs[1].cancel();
        sleep(Duration::ZERO).await;
        sleep(Duration::ZERO).await;
        assert!(outer.done());
        assert!(!outer_any.cancelled());
        // Does nothing.
        fs[2].set_result(3).unwrap();
        fs[3].cancel();
        fs[4].set_error(Boom("RuntimeError")).unwrap();
        assert_eq!(
            outer.await.unwrap(),
            Err(Failure::Task(TaskError::Cancelled(Cancelled::new())))
        );
    })
    .unwrap();
}

// FutureGatherTests.test_result_exception_one_cancellation
#[test]
fn result_exception_one_cancellation() {
    let outcomes = vrun(async {
        let fs = futures::<i32>(6);
        let outer = create_task(gather_settled(fs.iter().map(wrap)));
        fs[0].set_result(1).unwrap();
        fs[1].set_error(Boom("ZeroDivisionError")).unwrap();
        fs[2].cancel();
        sleep(Duration::ZERO).await;
        sleep(Duration::ZERO).await;
        assert!(!outer.done());
        fs[3].set_result(3).unwrap();
        fs[4].cancel();
        fs[5].set_error(Boom("RuntimeError")).unwrap();
        outer.await.unwrap()
    })
    .unwrap();
    let cancelled = Err(Failure::Task(TaskError::Cancelled(Cancelled::new())));
    assert_eq!(
        outcomes,
        [
            Ok(1),
            Err(Failure::Failed("ZeroDivisionError".into())),
            cancelled.clone(),
            Ok(3),
            cancelled,
            Err(Failure::Failed("RuntimeError".into()))
        ]
    );
}

// FutureGatherTests.test_constructor_empty_sequence_use_running_loop: gather() of nothing is [].
#[test]
fn constructor_empty_sequence() {
    let values = vrun(gather(
        Vec::<std::future::Ready<Result<u8, TaskError>>>::new(),
    ))
    .unwrap();
    assert_eq!(values, Ok(vec![]));
}

// CoroutineGatherTests.test_constructor_without_loop: "no running event loop".
#[test]
fn constructor_without_loop() {
    let refused = std::panic::catch_unwind(|| {
        drop(gather(vec![async { Ok::<_, TaskError>("abc") }]));
    })
    .unwrap_err();
    let text = refused
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(text.contains("no running event loop"), "{text}");
}

// CoroutineGatherTests.test_cancellation_broadcast: cancelling outer() cancels all children,
// and through them the future they wait on.
#[test]
fn cancellation_broadcast() {
    let lp = test_loop();
    let waiter = lp.create_future::<()>();
    let proof = Rc::new(Cell::new(0));
    let inner = |w: LoopFuture<()>, p: Rc<Cell<i32>>| async move {
        w.await
            .map_err(|_| TaskError::Cancelled(Cancelled::new()))?;
        p.set(p.get() + 1);
        Ok::<(), TaskError>(())
    };
    let child1 = lp
        .create_task(inner(waiter.clone(), proof.clone()))
        .unwrap();
    let child2 = lp
        .create_task(inner(waiter.clone(), proof.clone()))
        .unwrap();
    let (c1, c2) = (child1.any(), child2.any());
    let p = proof.clone();
    let f = lp
        .create_task(async move {
            gather(vec![child1, child2]).await?;
            p.set(p.get() + 100);
            Ok::<(), TaskError>(())
        })
        .unwrap();
    run_briefly(&lp);
    assert!(f.cancel());
    assert!(
        lp.run_until_complete(f)
            .unwrap()
            .unwrap_err()
            .is_cancelled()
    );
    assert!(waiter.cancelled());
    assert!(c1.cancelled());
    assert!(c2.cancelled());
    run_briefly(&lp);
    assert_eq!(proof.get(), 0);
    lp.close().unwrap();
}

// test_shield_gather: the shielded gather goes on when its awaiter is cancelled.
#[test]
fn shield_gather() {
    let lp = test_loop();
    let (child1, child2) = (lp.create_future::<i32>(), lp.create_future::<i32>());
    type Outcome = Option<Result<Vec<i32>, Failure>>;
    let parent: Rc<RefCell<Outcome>> = Rc::default();
    let (a, b, result) = (child1.clone(), child2.clone(), parent.clone());
    let outer = lp
        .create_task(async move {
            let _ = shield(async move {
                let values = gather(vec![wrap(&a), wrap(&b)]).await;
                *result.borrow_mut() = Some(values);
            })
            .await;
        })
        .unwrap();
    run_briefly(&lp);
    outer.cancel();
    run_briefly(&lp);
    assert!(outer.cancelled());
    child1.set_result(1).unwrap();
    child2.set_result(2).unwrap();
    run_briefly(&lp);
    run_briefly(&lp);
    assert_eq!(*parent.borrow(), Some(Ok(vec![1, 2])));
    lp.close().unwrap();
}

// test_gather_shield: cancelling the gather cancels the shields, not what they shield.
#[test]
fn gather_shield() {
    let lp = test_loop();
    let (child1, child2) = (lp.create_future::<i32>(), lp.create_future::<i32>());
    let (a, b) = (child1.clone(), child2.clone());
    let parent = lp
        .create_task(async move { gather(vec![shield(wrap(&a)), shield(wrap(&b))]).await })
        .unwrap();
    run_briefly(&lp);
    parent.cancel();
    run_briefly(&lp);
    assert!(parent.cancelled());
    assert!(!child1.cancelled() && !child2.cancelled());
    child1.set_result(1).unwrap();
    child2.set_result(2).unwrap();
    run_briefly(&lp);
    lp.close().unwrap();
}

// test_cancel_gather_1's point, for the task awaiting a gather: once every child is done, a
// cancel still ends the awaiting task cancelled at its next step (asyncio's Task.cancel sets
// _must_cancel when the gathering future refuses), and no child is touched.
#[test]
fn cancel_gather_after_the_children_are_done() {
    let lp = test_loop();
    let fut = lp.create_future::<i32>();
    let child = wrap(&fut);
    let gather_task = lp
        .create_task(async move { gather(vec![child]).await })
        .unwrap();
    run_briefly(&lp);
    let canceller = gather_task.any();
    fut.add_done_callback(move |_| {
        canceller.cancel();
    })
    .unwrap();
    fut.set_result(42).unwrap();
    let outcome = lp.run_until_complete(gather_task).unwrap();
    assert_eq!(outcome, Err(TaskError::Cancelled(Cancelled::new())));
    lp.close().unwrap();
}
