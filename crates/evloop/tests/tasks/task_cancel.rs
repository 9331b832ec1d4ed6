//! Cancellation that travels down the await chain, as asyncio's does (contracts H4, H6, H7, H8,
//! H10): `Task.cancel()` cancels what the task is suspended on, and comes back through it.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use evloop::{
    Cancelled, FutureError, LoopExt, ReturnWhen, TaskError, catch_cancel, create_task,
    current_task, gather, gather_settled, shield, sleep, timeout, wait,
};
use evloop_test_support::{DropFlag, vrun};

const HOUR: Duration = Duration::from_secs(3600);

fn cancelled(message: &str) -> TaskError {
    TaskError::Cancelled(Cancelled::with_message(message))
}

#[test]
fn cancelling_a_task_cancels_the_loop_future_it_awaits() {
    let (outcome, future_state) = vrun(async {
        let lp = evloop::get_running_loop().unwrap();
        let fut = lp.create_future::<u32>();
        let awaited = fut.clone();
        let task = create_task(awaited);
        sleep(Duration::ZERO).await;
        assert!(task.cancel_with("stop"));
        let outcome = task.await;
        (outcome, fut.result())
    })
    .unwrap();
    assert_eq!(outcome.unwrap_err(), cancelled("stop"));
    assert!(
        matches!(future_state, Err(FutureError::Cancelled(c)) if c.message() == Some("stop")),
        "the awaited future itself is cancelled, with the message"
    );
}

#[test]
fn a_loop_future_cancelled_through_its_awaiter_reaches_the_awaiters_catch_cancel() {
    let (caught, fut_cancelled) = vrun(async {
        let lp = evloop::get_running_loop().unwrap();
        let fut = lp.create_future::<u32>();
        let awaited = fut.clone();
        let task = create_task(async move { catch_cancel(awaited).await });
        sleep(Duration::ZERO).await;
        task.cancel_with("m");
        (task.await.unwrap(), fut.cancelled())
    })
    .unwrap();
    assert_eq!(caught.unwrap_err(), Cancelled::with_message("m"));
    assert!(fut_cancelled);
}

#[test]
fn cancelling_a_task_cancels_the_task_it_awaits() {
    let (outer, inner_cancelled) = vrun(async {
        let inner = create_task(sleep(HOUR));
        let inner_any = inner.any();
        let outer = create_task(inner);
        sleep(Duration::ZERO).await;
        outer.cancel_with("both");
        let outer = outer.await;
        (outer, inner_any.cancelled())
    })
    .unwrap();
    assert_eq!(outer, Err(cancelled("both")));
    assert!(inner_cancelled, "the awaited task is cancelled too");
}

#[test]
fn an_awaited_task_that_catches_its_cancellation_gives_the_awaiter_its_value() {
    // asyncio: the awaiter is cancelled only through what it awaits; a refusal is a value.
    let (outer, outer_cancelling) = vrun(async {
        let inner = create_task(async {
            match catch_cancel(sleep(HOUR)).await {
                Ok(()) => 0,
                Err(_) => {
                    sleep(Duration::from_millis(5)).await; // async clean-up
                    42
                }
            }
        });
        let outer = create_task(inner);
        let outer_any = outer.any();
        sleep(Duration::ZERO).await;
        outer.cancel();
        (outer.await, outer_any.cancelling())
    })
    .unwrap();
    assert_eq!(outer, Ok(Ok(42)));
    assert_eq!(outer_cancelling, 1);
}

#[test]
fn cancelling_a_task_awaiting_gather_cancels_every_child_including_tasks_passed_in() {
    let (outcome, states) = vrun(async {
        let a = create_task(sleep(HOUR));
        let b = create_task(sleep(HOUR));
        let quick = create_task(async {});
        let handles = [a.any(), b.any(), quick.any()];
        let outer = create_task(async move { gather(vec![a, b, quick]).await });
        sleep(Duration::ZERO).await;
        sleep(Duration::ZERO).await;
        outer.cancel_with("all");
        let outcome = outer.await;
        let states: Vec<bool> = handles.iter().map(|t| t.cancelled()).collect();
        (outcome, states)
    })
    .unwrap();
    assert_eq!(outcome, Err(cancelled("all")));
    assert_eq!(
        states,
        [true, true, false],
        "the finished child is left alone"
    );
}

#[test]
fn a_gather_whose_children_catch_the_cancellation_still_cancels_its_awaiter() {
    // asyncio's gather: "If gather is being cancelled we must propagate the cancellation
    // regardless of return_exceptions".
    let outcome = vrun(async {
        let child = || async {
            let _ = catch_cancel(sleep(HOUR)).await;
            Ok::<_, TaskError>(1)
        };
        let outer = create_task(async move { gather_settled(vec![child(), child()]).await });
        sleep(Duration::ZERO).await;
        sleep(Duration::ZERO).await;
        outer.cancel();
        outer.await
    })
    .unwrap();
    assert_eq!(outcome, Err(TaskError::Cancelled(Cancelled::new())));
}

#[test]
fn a_gather_child_cancelled_from_elsewhere_is_a_value_for_the_awaiter() {
    // asyncio H6: the outer future raises CancelledError but is not itself cancelled; in evloop
    // the awaiter gets the child's cancellation as the gather's error, and is not cancelled.
    let outcome = vrun(async {
        let child = create_task(sleep(HOUR));
        let child_any = child.any();
        let outer = create_task(async move { gather(vec![child]).await });
        sleep(Duration::ZERO).await;
        sleep(Duration::ZERO).await;
        child_any.cancel();
        outer.await
    })
    .unwrap();
    assert_eq!(outcome, Ok(Err(TaskError::Cancelled(Cancelled::new()))));
}

#[test]
fn shield_stops_the_propagation() {
    let (outer, finished) = vrun(async {
        let finished = Rc::new(Cell::new(false));
        let flag = finished.clone();
        let inner = create_task(async move {
            sleep(Duration::from_millis(10)).await;
            flag.set(true);
        });
        let inner_any = inner.any();
        let outer = create_task(shield(inner));
        sleep(Duration::ZERO).await;
        outer.cancel();
        let outer = outer.await;
        assert!(!inner_any.cancelled());
        sleep(Duration::from_millis(20)).await;
        (outer, finished.get())
    })
    .unwrap();
    assert_eq!(outer, Err(TaskError::Cancelled(Cancelled::new())));
    assert!(finished, "the shielded task ran to its end");
}

#[test]
fn wait_does_not_cancel_what_it_waits_on() {
    let (outer, child_cancelled) = vrun(async {
        let child = create_task(sleep(Duration::from_millis(10)));
        let child_any = child.any();
        let outer = create_task(async move {
            wait(vec![child], ReturnWhen::AllCompleted, None)
                .await
                .map(drop)
        });
        sleep(Duration::ZERO).await;
        outer.cancel();
        let outer = outer.await;
        sleep(Duration::from_millis(20)).await;
        (outer, child_any.cancelled())
    })
    .unwrap();
    assert!(outer.unwrap_err().is_cancelled());
    assert!(!child_cancelled);
}

#[test]
fn a_foreign_future_is_dropped_at_its_await_point() {
    struct Forever(#[allow(dead_code)] DropFlag);
    impl Future for Forever {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            Poll::Pending
        }
    }
    let (dropped, outcome) = vrun(async {
        let (dropped, guard) = DropFlag::new();
        let task = create_task(Forever(guard));
        sleep(Duration::ZERO).await;
        task.cancel();
        (dropped, task.await)
    })
    .unwrap();
    assert!(dropped.get());
    assert!(outcome.unwrap_err().is_cancelled());
}

#[test]
fn a_task_that_cancels_itself_before_awaiting_a_task_cancels_that_task() {
    // CPython's test_cancel_awaited_task: a request made while the task runs is handed to what
    // it then blocks on.
    let (outer, nested_cancelled, fut_cancelled) = vrun(async {
        let lp = evloop::get_running_loop().unwrap();
        let fut = lp.create_future::<()>();
        let awaited = fut.clone();
        let nested = Rc::new(Cell::new(None));
        let slot = nested.clone();
        let outer = create_task(async move {
            let nested_task = create_task(awaited);
            slot.set(Some(nested_task.any()));
            sleep(Duration::ZERO).await;
            current_task().unwrap().cancel();
            nested_task.await
        });
        let outer = outer.await;
        let nested = nested.take().unwrap();
        (outer, nested.cancelled(), fut.cancelled())
    })
    .unwrap();
    assert!(outer.unwrap_err().is_cancelled());
    assert!(nested_cancelled);
    assert!(fut_cancelled);
}

#[test]
fn a_cancel_requested_by_a_callback_before_the_tasks_step_is_delivered() {
    let outcome = vrun(async {
        let lp = evloop::get_running_loop().unwrap();
        let slot: Rc<Cell<Option<evloop::AnyTask>>> = Rc::default();
        let target = slot.clone();
        // Queued before the task's first step, so it runs first in the same iteration.
        lp.call_soon(move || {
            target.take().unwrap().cancel();
        })
        .unwrap();
        let task = create_task(async { 5 });
        slot.set(Some(task.any()));
        task.await
    })
    .unwrap();
    assert!(outcome.unwrap_err().is_cancelled());
}

#[test]
fn cancel_after_done_returns_false_and_changes_nothing() {
    vrun(async {
        let task = create_task(async { 1 });
        sleep(Duration::ZERO).await;
        assert!(!task.cancel());
        assert_eq!(task.cancelling(), 0);
        assert!(!task.cancelled());
        assert_eq!(task.await, Ok(1));
    })
    .unwrap();
}

#[test]
fn uncancel_back_to_zero_withdraws_an_undelivered_request() {
    let (returned, awaited) = vrun(async {
        let returned = create_task(async {
            let me = current_task().unwrap();
            me.cancel();
            assert_eq!(me.uncancel(), 0);
            "kept"
        });
        let awaited = create_task(async {
            let me = current_task().unwrap();
            me.cancel();
            me.uncancel();
            sleep(Duration::ZERO).await; // the request would land here
            "kept"
        });
        (returned.await, awaited.await)
    })
    .unwrap();
    assert_eq!(returned, Ok("kept"));
    assert_eq!(awaited, Ok("kept"));
}

#[test]
fn uncancel_above_zero_keeps_the_request() {
    let outcome = vrun(async {
        let task = create_task(async {
            let me = current_task().unwrap();
            me.cancel();
            me.cancel();
            assert_eq!(me.uncancel(), 1);
            sleep(Duration::ZERO).await;
        });
        task.await
    })
    .unwrap();
    assert!(outcome.unwrap_err().is_cancelled());
}

#[test]
fn a_caught_cancellation_is_re_raised_with_one_call() {
    let (outcome, outer_saw) = vrun(async {
        let outer_saw = Rc::new(Cell::new(None));
        let seen = outer_saw.clone();
        let task = create_task(async move {
            let inner = catch_cancel(async {
                match catch_cancel(sleep(HOUR)).await {
                    Ok(()) => {}
                    Err(cancelled) => cancelled.raise::<()>().await,
                }
            })
            .await;
            seen.set(Some(inner.clone()));
            if let Err(cancelled) = inner {
                cancelled.raise::<()>().await;
            }
        });
        sleep(Duration::ZERO).await;
        task.cancel_with("up");
        (task.await, outer_saw.take())
    })
    .unwrap();
    assert_eq!(outer_saw, Some(Err(Cancelled::with_message("up"))));
    assert_eq!(outcome, Err(cancelled("up")));
}

#[test]
fn a_timeout_cancels_the_task_it_awaits() {
    let (outcome, inner_cancelled) = vrun(async {
        let inner = create_task(sleep(HOUR));
        let inner_any = inner.any();
        let outcome = timeout(Duration::from_millis(10), inner).await;
        sleep(Duration::ZERO).await;
        (outcome.map(drop), inner_any.cancelled())
    })
    .unwrap();
    assert_eq!(outcome, Err(evloop::TimeoutError));
    assert!(
        inner_cancelled,
        "asyncio's wait_for cancels the awaited task on timeout"
    );
}

#[test]
fn an_abandoned_awaitable_does_not_lose_the_cancellation() {
    /// Polls the loop future unless `other` is ready, like a foreign `select!` that takes another
    /// branch: the future the request was handed to is then never polled again.
    struct Race<F> {
        fut: F,
        other: Rc<Cell<bool>>,
    }
    impl<F: Future + Unpin> Future for Race<F> {
        type Output = &'static str;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<&'static str> {
            if self.other.get() {
                return Poll::Ready("other");
            }
            match Pin::new(&mut self.fut).poll(cx) {
                Poll::Ready(_) => Poll::Ready("future"),
                Poll::Pending => Poll::Pending,
            }
        }
    }
    let (outcome, after_race) = vrun(async {
        let lp = evloop::get_running_loop().unwrap();
        let fut = lp.create_future::<()>();
        let other = Rc::new(Cell::new(false));
        let after_race = Rc::new(Cell::new(false));
        let (flag, reached) = (other.clone(), after_race.clone());
        let task = create_task(async move {
            let winner = Race { fut, other: flag }.await;
            assert_eq!(winner, "other");
            reached.set(true);
            sleep(HOUR).await; // the request lands here at the latest
        });
        sleep(Duration::ZERO).await;
        other.set(true);
        task.cancel();
        (task.await, after_race.get())
    })
    .unwrap();
    assert!(outcome.unwrap_err().is_cancelled());
    assert!(after_race);
}

#[test]
fn awaiting_a_task_from_inside_itself_is_refused() {
    let outcome = vrun(async {
        let slot: Rc<Cell<Option<evloop::Task<()>>>> = Rc::default();
        let inside = slot.clone();
        let task = create_task(async move {
            sleep(Duration::ZERO).await;
            if let Some(me) = inside.take() {
                let _ = me.await;
            }
        });
        let any = task.any();
        slot.set(Some(task));
        sleep(Duration::from_millis(1)).await;
        any
    })
    .unwrap();
    assert!(outcome.panicked(), "asyncio: 'Task cannot await on itself'");
}
