//! Cancellation: `uncancel`, `cancel` with and without a message, catching and ignoring it, cancelling the current or an awaited task, stopping a run.

use super::*;

// test_uncancel_basic
#[test]
fn uncancel_basic() {
    let lp = test_loop();
    let t = lp
        .create_task(async {
            if catch_cancel(sleep(TEN)).await.is_err() {
                current_task().unwrap().uncancel();
                sleep(TEN).await;
            }
        })
        .unwrap();
    lp.run_until_complete(sleep(ms(10))).unwrap();
    // Cancel the first sleep.
    assert!(t.cancel());
    assert!(format!("{t:?}").contains(" cancelling "), "{t:?}");
    assert_eq!(t.cancelling(), 1);
    assert!(!t.cancelled(), "still not complete");
    lp.run_until_complete(sleep(ms(10))).unwrap();
    // After uncancel().
    assert!(!format!("{t:?}").contains(" cancelling "), "{t:?}");
    assert_eq!(t.cancelling(), 0);
    assert!(!t.cancelled());
    // Cancel the second sleep.
    assert!(t.cancel());
    assert_eq!(t.cancelling(), 1);
    let any = t.any();
    assert_eq!(lp.run_until_complete(t).unwrap(), Err(cancelled(None)));
    assert!(any.cancelled() && any.done());
    // uncancel is no longer effective once the task is complete.
    any.uncancel();
    assert!(any.cancelled() && any.done());
    lp.close().unwrap();
}

/// `make_request_with_timeout` of test_uncancel_structured_blocks: a structured block under a
/// hand-made timeout that cancels the task and uncancels it on the way out.
async fn make_request_with_timeout(sleep_for: Duration, timeout: Duration) -> (bool, bool, bool) {
    let task = current_task().unwrap();
    let lp = evloop::get_running_loop().unwrap();
    let timed_out = Rc::new(Cell::new(false));
    let finished = Rc::new(Cell::new(false));
    let (flag, target) = (timed_out.clone(), task.clone());
    let timeout_handle = lp
        .call_later(timeout, move || {
            flag.set(true);
            target.cancel();
        })
        .unwrap();
    let done = finished.clone();
    let block = catch_cancel(async move {
        sleep(sleep_for).await;
        done.set(true);
    })
    .await;
    timeout_handle.cancel();
    if let Err(cancelled) = block {
        // The five rules: our flag, our cancel, uncancel() back to 0, a CancelledError.
        if !(timed_out.get() && task.uncancel() == 0) {
            cancelled.raise::<()>().await;
        }
        // TimeoutError, caught by the caller: the outer code goes on.
    }
    let outer_code_reached = true;
    sleep(Duration::ZERO).await;
    (timed_out.get(), finished.get(), outer_code_reached)
}

// test_uncancel_structured_blocks
#[test]
fn uncancel_structured_blocks() {
    let lp = test_loop();
    let t1 = lp
        .create_task(make_request_with_timeout(TEN, ms(100)))
        .unwrap();
    let t1_any = t1.any();
    let (timed_out, finished, reached) = lp.run_until_complete(t1).unwrap().unwrap();
    assert!(timed_out);
    assert!(!finished, "it was cancelled");
    assert!(
        reached,
        "uncancelled after leaving the block, and went on to the end"
    );
    assert_eq!(
        t1_any.cancelling(),
        0,
        "no pending cancellation of the outer task"
    );

    let t2 = lp
        .create_task(make_request_with_timeout(Duration::ZERO, TEN))
        .unwrap();
    let t2_any = t2.any();
    let (timed_out, finished, reached) = lp.run_until_complete(t2).unwrap().unwrap();
    assert!(!timed_out && finished && reached);
    assert_eq!(t2_any.cancelling(), 0);
    lp.close().unwrap();
}

// test_uncancel_resets_must_cancel
#[test]
fn uncancel_resets_must_cancel() {
    let lp = test_loop();
    let fut = lp.create_future::<()>();
    let awaited = fut.clone();
    let task = lp
        .create_task(async move {
            awaited.await.unwrap();
            42
        })
        .unwrap();
    lp.run_until_complete(sleep(Duration::ZERO)).unwrap(); // the task waits for fut
    fut.set_result(()).unwrap(); // the task is runnable
    task.cancel();
    assert_eq!(task.cancelling(), 1);
    task.uncancel();
    assert_eq!(task.cancelling(), 0);
    assert_eq!(lp.run_until_complete(task).unwrap(), Ok(42));
    lp.close().unwrap();
}

// test_cancel
#[test]
fn cancel() {
    let lp = test_loop();
    let t = lp
        .create_task(async {
            sleep(TEN).await;
            12
        })
        .unwrap();
    let any = t.any();
    let canceller = any.clone();
    lp.call_soon(move || {
        canceller.cancel();
    })
    .unwrap();
    assert_eq!(lp.run_until_complete(t).unwrap(), Err(cancelled(None)));
    assert!(any.done() && any.cancelled());
    assert!(!any.cancel());
    lp.close().unwrap();
}

// test_cancel_with_message_then_future_result / _exception: the message reaches
// `result()` after `wait()`, for no message and a message.
#[test]
fn cancel_with_message_then_future_result() {
    for message in [None, Some("my message")] {
        let outcome = vrun(async move {
            let task = create_task(sleep(TEN));
            sleep(Duration::ZERO).await;
            match message {
                Some(m) => task.cancel_with(m),
                None => task.cancel(),
            };
            let (mut done, _) = wait(vec![task], ReturnWhen::AllCompleted, None)
                .await
                .unwrap();
            done[0].take_result()
        })
        .unwrap();
        assert_eq!(outcome, Some(Err(cancelled(message))));
    }
}

// test_cancel_with_message_before_starting_task
#[test]
fn cancel_with_message_before_starting_task() {
    let outcome = vrun(async {
        let task = create_task(sleep(TEN));
        // Deliberately no sleep here.
        task.cancel_with("my message");
        let (mut done, _) = wait(vec![task], ReturnWhen::AllCompleted, None)
            .await
            .unwrap();
        done[0].take_result()
    })
    .unwrap();
    assert_eq!(outcome, Some(Err(cancelled(Some("my message")))));
}

// test_cancel_yield
#[test]
fn cancel_yield() {
    let lp = test_loop();
    let t = lp
        .create_task(async {
            sleep(Duration::ZERO).await;
            sleep(Duration::ZERO).await;
            12
        })
        .unwrap();
    run_briefly(&lp); // start the coroutine
    t.cancel();
    assert_cancelled_for_good(&lp, t);
    lp.close().unwrap();
}

// test_cancel_inner_future: a future cancelled by someone else is a value for its awaiter
// (difference 6); re-raising it is asyncio's propagation, and the task ends cancelled.
#[test]
fn cancel_inner_future() {
    let lp = test_loop();
    let f = lp.create_future::<()>();
    let awaited = f.clone();
    let t = lp
        .create_task(async move {
            match awaited.await {
                Err(FutureError::Cancelled(c)) => c.raise().await,
                other => other.map(|()| 12),
            }
        })
        .unwrap();
    run_briefly(&lp); // start the task
    f.cancel();
    let any = t.any();
    assert_ends_cancelled(&lp, t);
    assert!(f.cancelled());
    assert!(any.cancelled());
    lp.close().unwrap();
}

// test_cancel_both_task_and_inner_future
#[test]
fn cancel_both_task_and_inner_future() {
    let lp = test_loop();
    let f = lp.create_future::<()>();
    let awaited = f.clone();
    let t = lp
        .create_task(async move { awaited.await.map(|()| 12) })
        .unwrap();
    run_briefly(&lp);
    f.cancel();
    t.cancel();
    let any = t.any();
    assert_ends_cancelled(&lp, t);
    assert!(any.done());
    assert!(f.cancelled());
    assert!(any.cancelled());
    lp.close().unwrap();
}

// test_cancel_task_catching
#[test]
fn cancel_task_catching() {
    let lp = test_loop();
    let (fut1, fut2) = (lp.create_future::<()>(), lp.create_future::<()>());
    let (a, b) = (fut1.clone(), fut2.clone());
    let t = lp
        .create_task(async move {
            a.await.unwrap();
            match catch_cancel(b).await {
                Err(_) => 42,
                Ok(_) => 0,
            }
        })
        .unwrap();
    run_briefly(&lp);
    fut1.set_result(()).unwrap();
    run_briefly(&lp);
    t.cancel();
    assert!(
        fut2.cancelled(),
        "the future waited on is cancelled at once"
    );
    let any = t.any();
    assert_eq!(lp.run_until_complete(t).unwrap(), Ok(42));
    assert!(!any.cancelled());
    lp.close().unwrap();
}

// test_cancel_task_ignoring
#[test]
fn cancel_task_ignoring() {
    let lp = test_loop();
    let (fut1, fut2, fut3) = (
        lp.create_future::<()>(),
        lp.create_future::<()>(),
        lp.create_future::<i32>(),
    );
    let (a, b, c) = (fut1.clone(), fut2.clone(), fut3.clone());
    let t = lp
        .create_task(async move {
            a.await.unwrap();
            let _ = catch_cancel(b).await;
            c.await.unwrap()
        })
        .unwrap();
    run_briefly(&lp);
    fut1.set_result(()).unwrap();
    run_briefly(&lp);
    t.cancel();
    assert!(fut2.cancelled());
    run_briefly(&lp);
    run_briefly(&lp);
    fut3.set_result(42).unwrap();
    let any = t.any();
    assert_eq!(lp.run_until_complete(t).unwrap(), Ok(42));
    assert!(!fut3.cancelled());
    assert!(!any.cancelled());
    lp.close().unwrap();
}

// test_cancel_current_task
#[test]
fn cancel_current_task() {
    let lp = test_loop();
    let start = lp.time();
    let t = lp
        .create_task(async {
            current_task().unwrap().cancel();
            // The sleep is cancelled at once.
            sleep(Duration::from_secs(100)).await;
            12
        })
        .unwrap();
    assert!(!t.cancelled());
    assert_cancelled_for_good(&lp, t);
    assert_eq!(lp.time(), start, "no time passed");
    lp.close().unwrap();
}

// test_cancel_at_end: the coroutine ends right after the task was cancelled.
#[test]
fn cancel_at_end() {
    let lp = test_loop();
    let t = lp
        .create_task(async {
            current_task().unwrap().cancel();
            12
        })
        .unwrap();
    assert_cancelled_for_good(&lp, t);
    lp.close().unwrap();
}

// test_cancel_awaited_task (bpo-34872)
#[test]
fn cancel_awaited_task() {
    let lp = test_loop();
    let fut = lp.create_future::<()>();
    let awaited = fut.clone();
    let nested: Rc<RefCell<Option<AnyTask>>> = Rc::default();
    let slot = nested.clone();
    let task = lp
        .create_task(async move {
            let nested_task = create_task(awaited);
            *slot.borrow_mut() = Some(nested_task.any());
            sleep(Duration::ZERO).await;
            current_task().unwrap().cancel();
            // Blocks on the nested task, which is cancelled at once.
            nested_task.await
        })
        .unwrap();
    let any = task.any();
    assert_ends_cancelled(&lp, task);
    assert!(any.cancelled());
    assert!(nested.borrow().as_ref().unwrap().cancelled());
    assert!(fut.cancelled());
    lp.close().unwrap();
}

// test_stop_while_run_in_complete
#[test]
fn stop_while_run_in_complete() {
    let lp = test_loop();
    let start = lp.time();
    let x = Rc::new(Cell::new(0));
    let (count, stopper) = (x.clone(), lp.clone());
    let t = lp
        .create_task(async move {
            while count.get() < 10 {
                sleep(ms(100)).await;
                count.set(count.get() + 1);
                if count.get() == 2 {
                    stopper.stop();
                }
            }
        })
        .unwrap();
    let any = t.any();
    let error = lp.run_until_complete(t).unwrap_err();
    assert_eq!(error, RunError::StoppedBeforeComplete);
    assert_eq!(
        error.to_string(),
        "Event loop stopped before Future completed."
    );
    assert!(!any.done());
    assert_eq!(x.get(), 2);
    assert_eq!(lp.time() - start, ms(200));
    any.cancel();
    lp.run_until_complete(until_done(any.clone())).unwrap();
    assert!(any.cancelled());
    lp.close().unwrap();
}
