//! `Task::cancel` on the task itself: when the request is delivered, what it carries, and
//! `catch_cancel` frames that take it, refuse it or let it pass (asyncio H4, H7).

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use evloop::{Cancelled, TaskError, catch_cancel, create_task, sleep};

use crate::HOUR;
use evloop_test_support::{DropFlag, vrun};

#[test]
fn cancel_before_start_never_runs_the_body() {
    let ran = Rc::new(Cell::new(false));
    let ran2 = ran.clone();
    let outcome = vrun(async move {
        let task = create_task(async move { ran2.set(true) });
        assert!(task.cancel());
        task.await
    })
    .unwrap();
    assert!(!ran.get());
    assert_eq!(outcome, Err(TaskError::Cancelled(Cancelled::new())));
}

#[test]
fn cancel_while_waiting_runs_destructors_and_carries_the_message() {
    let (dropped, flag) = DropFlag::new();
    let (outcome, cancelled, done) = vrun(async move {
        let task = create_task(async move {
            let _guard = flag;
            sleep(HOUR).await;
        });
        sleep(Duration::ZERO).await;
        assert!(task.cancel_with("stop now"));
        assert_eq!(task.cancelling(), 1);
        assert!(!task.cancelled(), "cancelled() only once the task ended");
        let any = task.any();
        let outcome = task.await;
        (outcome, any.cancelled(), any.done())
    })
    .unwrap();
    assert!(dropped.get());
    assert!(cancelled && done);
    let Err(TaskError::Cancelled(c)) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(c.message(), Some("stop now"));
}

#[test]
fn a_task_that_cancels_itself_and_returns_ends_cancelled() {
    // asyncio's _must_cancel: a request made during the last step is still delivered.
    let (value, cancelled, cancelling) = vrun(async {
        let task = create_task(async {
            evloop::current_task().unwrap().cancel();
            7
        });
        let any = task.any();
        let value = task.await;
        (value, any.cancelled(), any.cancelling())
    })
    .unwrap();
    assert_eq!(value, Err(TaskError::Cancelled(Cancelled::new())));
    assert!(cancelled);
    assert_eq!(cancelling, 1);
}

#[test]
fn cancel_on_a_done_task_returns_false() {
    vrun(async {
        let task = create_task(async { 1 });
        sleep(Duration::ZERO).await;
        assert!(task.done());
        assert!(!task.cancel());
    })
    .unwrap();
}

#[test]
fn catch_cancel_allows_async_cleanup_and_run_waits_for_it() {
    let cleaned = Rc::new(Cell::new(false));
    let cleaned2 = cleaned.clone();
    vrun(async move {
        create_task(async move {
            if catch_cancel(sleep(HOUR)).await.is_err() {
                // An awaited clean-up: impossible in a destructor.
                sleep(Duration::from_secs(5)).await;
                cleaned2.set(true);
            }
        })
        .detach();
        sleep(Duration::from_millis(1)).await;
        // main returns: run() cancels the task and must wait for its clean-up.
    })
    .unwrap();
    assert!(
        cleaned.get(),
        "run() returned before the task's clean-up finished"
    );
}

#[test]
fn a_caught_cancel_can_be_refused() {
    let outcome = vrun(async {
        let task = create_task(async {
            let first = catch_cancel(sleep(HOUR)).await;
            assert_eq!(first, Err(Cancelled::with_message("please")));
            let me = evloop::current_task().unwrap();
            assert_eq!(me.uncancel(), 0);
            "refused"
        });
        sleep(Duration::ZERO).await;
        task.cancel_with("please");
        task.await
    });
    assert_eq!(outcome.unwrap(), Ok("refused"));
}

#[test]
fn the_innermost_catch_cancel_takes_the_request() {
    let outcome = vrun(async {
        let task = create_task(async {
            let outer = catch_cancel(async {
                let inner = catch_cancel(sleep(HOUR)).await;
                ("inner", inner.is_err())
            })
            .await;
            outer.unwrap()
        });
        sleep(Duration::ZERO).await;
        task.cancel();
        task.await
    });
    assert_eq!(outcome.unwrap(), Ok(("inner", true)));
}

#[test]
fn an_uncaught_request_drops_the_whole_task_even_after_a_catch() {
    let outcome = vrun(async {
        let task = create_task(async {
            let _ = catch_cancel(sleep(Duration::from_secs(1))).await;
            sleep(HOUR).await; // not inside catch_cancel
            "unreachable"
        });
        sleep(Duration::from_secs(2)).await; // the first sleep finished normally
        task.cancel();
        task.await
    });
    assert_eq!(
        outcome.unwrap(),
        Err(TaskError::Cancelled(Cancelled::new()))
    );
}

#[test]
fn a_request_for_a_frame_dropped_unpolled_passes_to_the_task() {
    // The frame is dropped (here by a timeout) before it could take the request: the request
    // moves to the task, which then ends cancelled at its next await.
    let outcome = vrun(async {
        let task = create_task(async {
            let frame = catch_cancel(sleep(HOUR));
            let mut frame = Box::pin(frame);
            // Register the frame by polling it once, then drop it.
            std::future::poll_fn(|cx| {
                let _ = frame.as_mut().poll(cx);
                Poll::Ready(())
            })
            .await;
            evloop::current_task().unwrap().cancel();
            drop(frame);
            sleep(HOUR).await;
            "unreachable"
        });
        task.await
    });
    assert_eq!(
        outcome.unwrap(),
        Err(TaskError::Cancelled(Cancelled::new()))
    );
}
