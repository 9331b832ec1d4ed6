//! CPython's `test_waitfor.py` and `test_timeouts.py` (3.12/3.13), ported to `wait_for` /
//! `timeout`. evloop's timeout races a timer and drops the inner future on expiry (deliberate
//! difference 7), so CPython tests whose inner coroutine catches the timeout's cancellation are
//! ignored with that reason.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use evloop::{
    Cancelled, LoopExt, ReturnWhen, TaskError, TimeoutError, catch_cancel, create_task,
    current_task, sleep, timeout, wait, wait_for,
};
use evloop_test_support::vrun;

/// CPython's `_EPSILON`: a timeout that passes `timeout > 0` and costs nothing.
const EPSILON: Duration = Duration::from_micros(100);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

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
