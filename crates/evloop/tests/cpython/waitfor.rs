//! CPython's `test_waitfor.py` and `test_timeouts.py` (3.12/3.13), ported to `wait_for` /
//! `timeout`. evloop's timeout races a timer and drops the inner future on expiry (deliberate
//! difference 7), so CPython tests whose inner coroutine catches the timeout's cancellation are
//! ignored with that reason.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use super::ms;
use evloop::{
    Cancelled, LoopExt, ReturnWhen, TaskError, TimeoutError, catch_cancel, create_task,
    current_task, sleep, timeout, wait, wait_for,
};
use evloop_test_support::{DropFlag, vrun};

/// CPython's `_EPSILON`: a timeout that passes `timeout > 0` and costs nothing.
const EPSILON: Duration = Duration::from_micros(100);

/// The loop's time now.
fn now() -> std::time::Instant {
    evloop::get_running_loop().unwrap().time()
}

/// CPython's `SlowTask`: runs for `TASK_TIMEOUT`, ignoring cancel requests.
struct SlowTask {
    exited: Rc<Cell<bool>>,
}

impl SlowTask {
    const TASK_TIMEOUT: Duration = Duration::from_millis(200);

    fn new() -> SlowTask {
        SlowTask {
            exited: Rc::default(),
        }
    }

    fn run(&self) -> impl Future<Output = ()> + 'static {
        let exited = self.exited.clone();
        async move {
            let exit_at = now() + Self::TASK_TIMEOUT;
            while now() < exit_at {
                let _ = catch_cancel(sleep(exit_at - now())).await;
            }
            exited.set(true);
        }
    }
}

// test_asyncio_wait_for_cancelled: cancelling the task running wait_for reaches the inner
// coroutine, which may ignore it.
#[test]
fn asyncio_wait_for_cancelled() {
    let exited = vrun(async {
        let t = SlowTask::new();
        let wait_for_task = create_task(wait_for(t.run(), SlowTask::TASK_TIMEOUT * 2));
        sleep(Duration::ZERO).await;
        wait_for_task.cancel();
        let _ = wait(vec![wait_for_task], ReturnWhen::AllCompleted, None).await;
        t.exited.get()
    })
    .unwrap();
    assert!(exited);
}

// test_asyncio_wait_for_timeout: the timeout's cancellation reaches the inner coroutine, which
// ignores it and runs to its end.
#[test]
#[ignore = "deliberate difference 7: the timeout drops the inner future; a catch_cancel inside it never sees the expiry"]
fn asyncio_wait_for_timeout() {
    let exited = vrun(async {
        let t = SlowTask::new();
        let _ = wait_for(t.run(), SlowTask::TASK_TIMEOUT / 2).await;
        t.exited.get()
    })
    .unwrap();
    assert!(exited);
}

// test_wait_for_timeout_less_then_0_or_0_future_done
#[test]
fn wait_for_timeout_0_future_done() {
    let (ret, elapsed) = vrun(async {
        let fut = evloop::get_running_loop().unwrap().create_future::<&str>();
        fut.set_result("done").unwrap();
        let t0 = now();
        let ret = wait_for(fut.clone(), Duration::ZERO).await;
        assert!(fut.done());
        (ret, now() - t0)
    })
    .unwrap();
    assert_eq!(ret.unwrap().unwrap(), "done");
    assert_eq!(elapsed, Duration::ZERO);
}

// test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started: asyncio never starts the
// coroutine. evloop polls it once, the only way to learn that a Rust future is done (deliberate
// difference 7): a coroutine with nothing to wait for gives its value.
#[test]
fn wait_for_timeout_0_coroutine_is_polled_once() {
    let (ret, started) = vrun(async {
        let started = Rc::new(Cell::new(false));
        let flag = started.clone();
        let ret = wait_for(async move { flag.set(true) }, Duration::ZERO).await;
        (ret, started.get())
    })
    .unwrap();
    assert_eq!(ret, Ok(()));
    assert!(started);
}

/// CPython's `foo()` of test_wait_for: sleeps 10 s, clearing `running` however it ends.
fn foo(running: &Rc<Cell<Option<bool>>>) -> impl Future<Output = &'static str> + 'static {
    let running = running.clone();
    async move {
        running.set(Some(true));
        let _clear = Clear(running);
        sleep(Duration::from_secs(10)).await;
        "done"
    }
}

struct Clear(Rc<Cell<Option<bool>>>);

impl Drop for Clear {
    fn drop(&mut self) {
        self.0.set(Some(false));
    }
}

// test_wait_for_timeout_less_then_0_or_0: wait_for(task, 0) cancels the task and returns only
// once it has finished cancelling.
#[test]
fn wait_for_timeout_0() {
    vrun(async {
        let running = Rc::new(Cell::new(None));
        let lp = evloop::get_running_loop().unwrap();
        let started = lp.create_future::<()>();
        let (flag, signal) = (running.clone(), started.clone());
        let fut = create_task(async move {
            signal.set_result(()).unwrap();
            foo(&flag).await
        });
        let fut_any = fut.any();
        started.await.unwrap();
        let t0 = now();
        assert_eq!(wait_for(fut, Duration::ZERO).await, Err(TimeoutError));
        assert!(fut_any.done());
        assert!(fut_any.cancelled(), "cancelled by the timeout");
        assert_eq!(running.get(), Some(false));
        assert_eq!(now() - t0, Duration::ZERO);
    })
    .unwrap();
}

// test_wait_for
#[test]
fn wait_for_task() {
    vrun(async {
        let running = Rc::new(Cell::new(None));
        let fut = create_task(foo(&running));
        let fut_any = fut.any();
        let t0 = now();
        assert_eq!(wait_for(fut, ms(100)).await, Err(TimeoutError));
        assert_eq!(now() - t0, ms(100));
        assert!(fut_any.done());
        assert!(fut_any.cancelled(), "cancelled by the timeout");
        assert_eq!(running.get(), Some(false));
    })
    .unwrap();
}

// test_wait_for_blocking: `timeout=None` is a plain await; the nearest evloop spelling is a
// deadline that never comes (asyncio accepts `inf`).
#[test]
fn wait_for_blocking() {
    let res = vrun(wait_for(async { "done" }, Duration::MAX)).unwrap();
    assert_eq!(res, Ok("done"));
    let slept = vrun(async {
        let inner = create_task(sleep(Duration::MAX));
        sleep(Duration::from_secs(3600)).await;
        let pending = !inner.done();
        inner.abort();
        pending
    })
    .unwrap();
    assert!(slept, "sleep(Duration::MAX) means never");
}

// test_wait_for_race_condition
#[test]
fn wait_for_race_condition() {
    let res = vrun(async {
        let lp = evloop::get_running_loop().unwrap();
        let fut = lp.create_future::<&str>();
        let setter = fut.clone();
        lp.call_later(ms(100), move || setter.set_result("ok").unwrap())
            .unwrap();
        wait_for(fut, ms(200)).await
    })
    .unwrap();
    assert_eq!(res.unwrap().unwrap(), "ok");
}

// test_wait_for_cancellation_race_condition
#[test]
#[ignore = "deliberate difference 7: the timeout drops the inner future, which cannot catch the expiry and return a value"]
fn wait_for_cancellation_race_condition() {
    let res = vrun(wait_for(
        async {
            assert!(catch_cancel(sleep(Duration::from_secs(1))).await.is_err());
            1
        },
        ms(10),
    ))
    .unwrap();
    assert_eq!(res, Ok(1));
}

/// CPython's `inner()` of test_wait_for_waits_for_task_cancellation: takes `EPSILON` to clean
/// up after a cancellation, then re-raises it; `task_done` is set however it ends.
fn slow_to_cancel(task_done: &Rc<Cell<bool>>) -> impl Future<Output = ()> + 'static {
    let task_done = task_done.clone();
    async move {
        let _done = SetOnDrop(task_done);
        if let Err(cancelled) = catch_cancel(sleep(Duration::from_secs(10))).await {
            sleep(EPSILON).await;
            cancelled.raise::<()>().await;
        }
    }
}

struct SetOnDrop(Rc<Cell<bool>>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

// test_wait_for_waits_for_task_cancellation
#[test]
fn wait_for_waits_for_task_cancellation() {
    let (res, task_done) = vrun(async {
        let task_done = Rc::new(Cell::new(false));
        let inner_task = create_task(slow_to_cancel(&task_done));
        let res = wait_for(inner_task, EPSILON).await;
        (res.map(drop), task_done.get())
    })
    .unwrap();
    assert_eq!(res, Err(TimeoutError));
    assert!(
        task_done,
        "TimeoutError comes after the task finished cancelling"
    );
}

// test_wait_for_waits_for_task_cancellation_w_timeout_0
#[test]
fn wait_for_waits_for_task_cancellation_w_timeout_0() {
    let (res, task_done) = vrun(async {
        let task_done = Rc::new(Cell::new(false));
        let inner_task = create_task(slow_to_cancel(&task_done));
        sleep(EPSILON).await;
        let res = wait_for(inner_task, Duration::ZERO).await;
        (res.map(drop), task_done.get())
    })
    .unwrap();
    assert_eq!(res, Err(TimeoutError));
    assert!(task_done);
}

// test_wait_for_reraises_exception_during_cancellation
#[test]
#[ignore = "deliberate difference 7: the awaiting future is dropped on expiry, so an error the awaited task raises while cancelling cannot replace the TimeoutError"]
fn wait_for_reraises_exception_during_cancellation() {
    let res = vrun(async {
        let inner_task = create_task(async {
            struct Foo;
            impl Drop for Foo {
                fn drop(&mut self) {
                    panic!("FooException");
                }
            }
            let _finally = Foo;
            sleep(ms(200)).await;
        });
        wait_for(inner_task, EPSILON).await
    })
    .unwrap();
    assert!(matches!(res, Ok(Err(TaskError::Panicked(_)))), "{res:?}");
}

// test_wait_for_self_cancellation: wait_for is cancellable even when the awaited task holds up
// its cancellation.
#[test]
fn wait_for_self_cancellation() {
    let (task, inner) = vrun(async {
        let inner_task = create_task(async {
            if catch_cancel(sleep(ms(300))).await.is_err()
                && catch_cancel(sleep(ms(300))).await.is_err()
            {
                sleep(ms(300)).await;
            }
            42
        });
        let inner_any = inner_task.any();
        // wait_for itself is cancellable even while the task holds up a cancellation.
        let waiting = create_task(wait_for(inner_task, ms(100)));
        waiting.cancel();
        let task = waiting.await.map(drop);
        evloop_test_support::until_done(inner_any.clone()).await;
        (task, inner_any.cancelled())
    })
    .unwrap();
    assert!(task.unwrap_err().is_cancelled());
    assert!(
        !inner,
        "the inner task ran to its end (asyncio: `await inner_task == 42`)"
    );
}

/// CPython's `_test_cancel_wait_for`: cancelling the wait cancels the awaited task too.
fn cancel_wait_for(limit: Duration) {
    let (wait_outcome, task_cancelled) = vrun(async move {
        let lp = evloop::get_running_loop().unwrap();
        let blocking = lp.create_future::<()>();
        let task = create_task(blocking); // its result is never set
        let task_any = task.any();
        let waiting = create_task(wait_for(task, limit));
        let canceller = waiting.any();
        lp.call_soon(move || {
            canceller.cancel();
        })
        .unwrap();
        let outcome = waiting.await.map(drop);
        (outcome, task_any.cancelled())
    })
    .unwrap();
    assert!(wait_outcome.unwrap_err().is_cancelled());
    assert!(task_cancelled, "Python issue #23219");
}

// test_cancel_blocking_wait_for (timeout None: a deadline that never comes)
#[test]
fn cancel_blocking_wait_for() {
    cancel_wait_for(Duration::MAX);
}

// test_cancel_wait_for
#[test]
fn cancel_wait_for_60() {
    cancel_wait_for(Duration::from_secs(60));
}

// test_wait_for_cancel_suppressed (gh-84849)
#[test]
#[ignore = "deliberate difference 7: the timeout drops the inner future, which cannot catch the expiry and return a value"]
fn wait_for_cancel_suppressed() {
    let res = vrun(wait_for(
        async {
            match catch_cancel(sleep(Duration::from_secs(10))).await {
                Err(_) => 42,
                Ok(()) => 0,
            }
        },
        ms(100),
    ))
    .unwrap();
    assert_eq!(res, Ok(42));
}

// test_wait_for_issue86296: a wait_for that completed leaves the task cancellable.
#[test]
fn wait_for_issue86296() {
    let (outcome, reached_end) = vrun(async {
        let reached = Rc::new(Cell::new(false));
        let flag = reached.clone();
        let task = create_task(async move {
            wait_for(async {}, Duration::from_secs(100)).await.unwrap();
            sleep(Duration::from_secs(1)).await;
            flag.set(true);
        });
        sleep(Duration::ZERO).await;
        assert!(!task.done());
        task.cancel();
        (task.await, reached.get())
    })
    .unwrap();
    assert!(outcome.unwrap_err().is_cancelled());
    assert!(!reached_end);
}

// test_timeouts.py: test_timeout_basic
#[test]
fn timeout_basic() {
    let res = vrun(timeout(ms(10), sleep(Duration::from_secs(10)))).unwrap();
    assert_eq!(res, Err(TimeoutError));
}

// test_timeouts.py: test_nested_timeouts: with one deadline, only the outermost raises
// TimeoutError; the inner one's block is cancelled.
#[test]
fn nested_timeouts() {
    let (res, inner_finished) = vrun(async {
        let finished = Rc::new(Cell::new(false));
        let flag = finished.clone();
        let res = timeout(ms(10), async move {
            let inner = timeout(ms(10), sleep(Duration::from_secs(10))).await;
            flag.set(true);
            inner
        })
        .await;
        (res, finished.get())
    })
    .unwrap();
    assert_eq!(res, Err(TimeoutError));
    assert!(!inner_finished, "the inner block did not return");
}

// test_timeouts.py: test_waiter_cancelled
#[test]
#[ignore = "deliberate difference 7: the timeout drops the inner future; a catch_cancel inside it never sees the expiry"]
fn waiter_cancelled() {
    let cancelled = vrun(async {
        let cancelled = Rc::new(Cell::new(false));
        let flag = cancelled.clone();
        let res = timeout(ms(10), async move {
            if let Err(c) = catch_cancel(sleep(Duration::from_secs(10))).await {
                flag.set(true);
                c.raise::<()>().await;
            }
        })
        .await;
        assert_eq!(res, Err(TimeoutError));
        cancelled.get()
    })
    .unwrap();
    assert!(cancelled);
}

// test_timeouts.py: test_timeout_not_called
#[test]
fn timeout_not_called() {
    let res = vrun(timeout(Duration::from_secs(10), sleep(ms(10)))).unwrap();
    assert_eq!(res, Ok(()));
}

// test_timeouts.py: test_timeout_zero and test_timeout_zero_sleep_zero
#[test]
fn timeout_zero() {
    let (res, res_zero, elapsed) = vrun(async {
        let t0 = now();
        let res = timeout(Duration::ZERO, sleep(Duration::from_secs(10))).await;
        let res_zero = timeout(Duration::ZERO, sleep(Duration::ZERO)).await;
        (res, res_zero, now() - t0)
    })
    .unwrap();
    assert_eq!(res, Err(TimeoutError));
    assert_eq!(res_zero, Err(TimeoutError));
    assert_eq!(elapsed, Duration::ZERO);
}

// test_timeouts.py: test_foreign_exception_passed (a panic is evloop's exception)
#[test]
fn foreign_exception_passed() {
    let outcome =
        vrun(async { create_task(timeout(ms(10), async { panic!("KeyError") })).await }).unwrap();
    assert!(outcome.unwrap_err().is_panic());
}

// test_timeouts.py: test_foreign_exception_on_timeout: an error raised while the block is
// cancelled (a panicking destructor) replaces the TimeoutError.
#[test]
fn foreign_exception_on_timeout() {
    struct Crash;
    impl Drop for Crash {
        fn drop(&mut self) {
            panic!("ZeroDivisionError");
        }
    }
    let outcome = vrun(async {
        create_task(timeout(ms(10), async {
            let _finally = Crash;
            sleep(Duration::from_secs(1)).await;
        }))
        .await
    })
    .unwrap();
    assert!(outcome.unwrap_err().is_panic());
}

// test_timeouts.py: test_foreign_cancel_doesnt_timeout_if_not_expired
#[test]
fn foreign_cancel_doesnt_timeout_if_not_expired() {
    let outcome = vrun(async {
        create_task(timeout(Duration::from_secs(10), async {
            current_task().unwrap().cancel();
            sleep(Duration::from_secs(10)).await;
        }))
        .await
    })
    .unwrap();
    assert_eq!(outcome, Err(TaskError::Cancelled(Cancelled::new())));
}

// test_timeouts.py: test_outer_task_is_not_cancelled
#[test]
fn outer_task_is_not_cancelled() {
    let (outcome, cancelled) = vrun(async {
        let task = create_task(async { timeout(ms(1), sleep(Duration::from_secs(10))).await });
        let any = task.any();
        (task.await, any.cancelled())
    })
    .unwrap();
    assert_eq!(outcome, Ok(Err(TimeoutError)));
    assert!(!cancelled);
}

// test_timeouts.py: test_nested_timeouts_concurrent: the outer, earlier deadline wins.
#[test]
fn nested_timeouts_concurrent() {
    let res = vrun(timeout(
        ms(2),
        timeout(ms(100), sleep(Duration::from_secs(1))),
    ))
    .unwrap();
    assert_eq!(res, Err(TimeoutError));
}

// test_timeouts.py: test_timeout_after_cancellation: a timeout in the clean-up of a caught
// cancellation still times out.
#[test]
fn timeout_after_cancellation() {
    let res = vrun(async {
        let caught = catch_cancel(async {
            current_task().unwrap().cancel();
            sleep(Duration::from_secs(1)).await; // work which will be cancelled
        })
        .await;
        assert!(caught.is_err());
        timeout(Duration::ZERO, sleep(Duration::from_secs(1))).await // some clean-up
    })
    .unwrap();
    assert_eq!(res, Err(TimeoutError));
}

// test_timeouts.py: test_cancel_in_timeout_after_cancellation
#[test]
fn cancel_in_timeout_after_cancellation() {
    let outcome = vrun(async {
        create_task(async {
            let caught = catch_cancel(async {
                current_task().unwrap().cancel();
                sleep(Duration::from_secs(1)).await;
            })
            .await;
            assert!(caught.is_err());
            timeout(Duration::from_secs(1), async {
                current_task().unwrap().cancel();
                sleep(Duration::from_secs(2)).await; // some clean-up
            })
            .await
        })
        .await
    })
    .unwrap();
    assert!(outcome.unwrap_err().is_cancelled());
}

// test_timeouts.py: test_timeout_disabled: no deadline at all, spelled as one that never comes.
#[test]
fn timeout_disabled() {
    let res = vrun(timeout(Duration::MAX, sleep(ms(10)))).unwrap();
    assert_eq!(res, Ok(()));
}

// A timeout that expires while its block waits on a loop future of a sibling branch must not
// cancel the sibling's future: only what the block itself waits on is cancelled.
#[test]
fn a_timeout_cancels_only_what_its_own_block_waits_on() {
    let (res, sibling_cancelled, dropped) = vrun(async {
        let lp = evloop::get_running_loop().unwrap();
        let sibling = lp.create_future::<()>();
        let mut theirs = std::pin::pin!(sibling.clone());
        let (dropped, guard) = DropFlag::new();
        let mut ours = std::pin::pin!(timeout(Duration::ZERO, async move {
            let _guard = guard;
            sleep(Duration::from_secs(1)).await;
        }));
        // A foreign select: the sibling is polled first, then the timeout, in one step.
        let res = std::future::poll_fn(|cx| {
            let _ = theirs.as_mut().poll(cx);
            ours.as_mut().poll(cx)
        })
        .await;
        (res, sibling.cancelled(), dropped.get())
    })
    .unwrap();
    assert_eq!(res, Err(TimeoutError));
    assert!(dropped);
    assert!(
        !sibling_cancelled,
        "the sibling's future is none of the timeout's business"
    );
}

// Contract H8 for a gather: wait_for(gather(..)) cancels the children and fails once they have
// all finished cancelling (here after a clean-up each).
#[test]
fn wait_for_a_gather_waits_for_its_children_to_finish_cancelling() {
    let (res, cleaned, elapsed) = vrun(async {
        let cleaned = Rc::new(Cell::new(0));
        let child = |cleaned: Rc<Cell<u32>>| async move {
            if let Err(cancelled) = catch_cancel(sleep(Duration::from_secs(10))).await {
                sleep(ms(5)).await;
                cleaned.set(cleaned.get() + 1);
                cancelled.raise::<()>().await;
            }
            Ok::<(), TaskError>(())
        };
        let t0 = now();
        let res = wait_for(
            evloop::gather(vec![child(cleaned.clone()), child(cleaned.clone())]),
            ms(10),
        )
        .await;
        (res.map(drop), cleaned.get(), now() - t0)
    })
    .unwrap();
    assert_eq!(res, Err(TimeoutError));
    assert_eq!(cleaned, 2, "both children finished their clean-up first");
    assert_eq!(elapsed, ms(15));
}
