//! `sleep()`, cancelling sleeping tasks and their waiters, and `current_task()`.

use super::*;

// test_sleep
#[test]
fn sleep_halves() {
    let (result, elapsed) = vrun(async {
        let lp = evloop::get_running_loop().unwrap();
        let start = lp.time();
        let sleeper = create_task(async {
            sleep(ms(50)).await;
            sleep(ms(50)).await;
            "yeah"
        });
        (sleeper.await, lp.time() - start)
    })
    .unwrap();
    assert_eq!(result, Ok("yeah"));
    assert_eq!(elapsed, ms(100));
}

// SleepTests.test_sleep_zero: sleep(0) lets a call_soon made before it run first.
#[test]
fn sleep_zero() {
    let result = vrun(async {
        let result = Rc::new(Cell::new(0));
        let inc = result.clone();
        evloop::get_running_loop()
            .unwrap()
            .call_soon(move || inc.set(inc.get() + 1))
            .unwrap();
        assert_eq!(result.get(), 0);
        sleep(Duration::ZERO).await;
        assert_eq!(result.get(), 1, "inc'ed by call_soon");
        result.get() + 10
    })
    .unwrap();
    assert_eq!(result, 11);
}

// test_task_cancel_sleeping_task: the awaiter of a task cancelled by someone else sees the
// cancellation (as a value: difference 6).
#[test]
fn task_cancel_sleeping_task() {
    let (answer, elapsed) = vrun(async {
        let lp = evloop::get_running_loop().unwrap();
        let start = lp.time();
        let sleeper = create_task(sleep(Duration::from_secs(5000)));
        let canceller = sleeper.any();
        lp.call_later(ms(100), move || {
            canceller.cancel();
        })
        .unwrap();
        let answer = match sleeper.await {
            Err(TaskError::Cancelled(_)) => "cancelled",
            _ => "slept in",
        };
        (answer, lp.time() - start)
    })
    .unwrap();
    assert_eq!(answer, "cancelled");
    assert_eq!(elapsed, ms(100));
}

// test_task_cancel_waiter_future
#[test]
fn task_cancel_waiter_future() {
    let lp = test_loop();
    let fut = lp.create_future::<()>();
    let awaited = fut.clone();
    let task = lp.create_task(awaited).unwrap();
    run_briefly(&lp);
    task.cancel();
    run_briefly(&lp);
    assert_ends_cancelled(&lp, task);
    assert!(fut.cancelled());
    lp.close().unwrap();
}

// test_current_task
#[test]
fn current_task_is_the_running_task() {
    let lp = test_loop();
    assert!(current_task().is_none());
    let id: Rc<Cell<u64>> = Rc::default();
    let seen = id.clone();
    let task = lp
        .create_task(async move { current_task().unwrap().id() == seen.get() })
        .unwrap();
    id.set(task.any().id());
    assert_eq!(lp.run_until_complete(task).unwrap(), Ok(true));
    assert!(current_task().is_none());
    lp.close().unwrap();
}

// test_current_task_with_interleaving_tasks
#[test]
fn current_task_with_interleaving_tasks() {
    let lp = test_loop();
    let (fut1, fut2) = (lp.create_future::<bool>(), lp.create_future::<bool>());
    let ids: Rc<Cell<(u64, u64)>> = Rc::default();
    let is = |which: usize, ids: &Rc<Cell<(u64, u64)>>| {
        let (one, two) = ids.get();
        current_task().unwrap().id() == if which == 1 { one } else { two }
    };
    let (f1, f2, i1) = (fut1.clone(), fut2.clone(), ids.clone());
    let task1 = lp
        .create_task(async move {
            assert!(is(1, &i1));
            f1.await.unwrap();
            assert!(is(1, &i1));
            f2.set_result(true).unwrap();
        })
        .unwrap();
    let (f1, f2, i2) = (fut1.clone(), fut2.clone(), ids.clone());
    let task2 = lp
        .create_task(async move {
            assert!(is(2, &i2));
            f1.set_result(true).unwrap();
            f2.await.unwrap();
            assert!(is(2, &i2));
        })
        .unwrap();
    ids.set((task1.any().id(), task2.any().id()));
    let (done, _) = lp
        .run_until_complete(wait(vec![task1, task2], ReturnWhen::AllCompleted, None))
        .unwrap()
        .unwrap();
    assert!(done.iter().all(|t| !t.panicked()));
    assert!(current_task().is_none());
    lp.close().unwrap();
}
