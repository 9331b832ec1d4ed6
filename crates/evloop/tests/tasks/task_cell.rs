//! What the task cell keeps and how it is reached: the current task (a borrowed pointer while it
//! is polled), local wakes through the running loop's thread-local pointer and wakes from other
//! threads, the lazily allocated cold part (names, cancel requests, `catch_cancel` frames, done
//! callbacks, unreported panics), and the loop's extensions keyed by `TypeId`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use evloop::{Cancelled, EventLoop, LoopExt, TaskError, catch_cancel, sleep};

/// A future that parks once, handing its waker out, and finishes on the next poll.
fn park_once(out: Rc<RefCell<Option<Waker>>>) -> impl std::future::Future<Output = ()> {
    let mut parked = false;
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        if parked {
            return Poll::Ready(());
        }
        parked = true;
        *out.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    })
}

#[test]
fn current_task_is_the_task_being_polled_and_none_outside() {
    assert!(evloop::current_task().is_none());
    let ids = evloop::run(async {
        let me = evloop::current_task().unwrap().id();
        let child = evloop::create_task(async {
            let inside = evloop::current_task().unwrap().id();
            sleep(Duration::ZERO).await;
            (inside, evloop::current_task().unwrap().id())
        });
        let child_id = child.any().id();
        let (first, second) = child.await.unwrap();
        assert_eq!(
            evloop::current_task().unwrap().id(),
            me,
            "restored after awaiting"
        );
        (me, child_id, first, second)
    })
    .unwrap();
    assert_ne!(ids.0, ids.1);
    assert_eq!((ids.2, ids.3), (ids.1, ids.1));
    assert!(evloop::current_task().is_none());
}

#[test]
fn names_default_and_set() {
    evloop::run(async {
        let task = evloop::create_task(async {});
        assert_eq!(task.name(), format!("Task-{}", task.any().id()));
        task.set_name("worker");
        assert_eq!(task.name(), "worker");
        assert_eq!(task.any().name(), "worker");
        task.await.unwrap();
    })
    .unwrap();
}

#[test]
fn cancel_before_start_never_runs_the_body_and_carries_the_message() {
    let ran = Rc::new(Cell::new(false));
    let outcome = evloop::run({
        let ran = ran.clone();
        async move {
            let task = evloop::create_task(async move { ran.set(true) });
            assert!(task.cancel_with("not now"));
            task.await
        }
    })
    .unwrap();
    assert_eq!(
        outcome,
        Err(TaskError::Cancelled(Cancelled::with_message("not now")))
    );
    assert!(!ran.get());
}

#[test]
fn a_request_goes_to_the_innermost_active_frame() {
    let log = evloop::run(async {
        let worker = evloop::create_task(async {
            let mut log = Vec::new();
            let outer = catch_cancel(async {
                // The inner frame has finished and left before the request comes: the request
                // must go to the outer frame, the innermost one still active.
                let inner = catch_cancel(async {}).await;
                assert!(inner.is_ok());
                sleep(Duration::from_secs(3600)).await;
            })
            .await;
            log.push(format!("outer: {outer:?}"));
            sleep(Duration::from_millis(1)).await;
            log.push("cleaned up".to_string());
            log
        });
        sleep(Duration::ZERO).await;
        sleep(Duration::ZERO).await;
        assert!(worker.cancel_with("bye"));
        assert_eq!(worker.cancelling(), 1);
        worker.await.unwrap()
    })
    .unwrap();
    assert_eq!(
        log[0],
        format!("outer: {:?}", Err::<(), _>(Cancelled::with_message("bye")))
    );
    assert_eq!(log[1], "cleaned up");
}

#[test]
fn an_uncaught_request_drops_the_task_at_its_await_point() {
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let dropped = Rc::new(Cell::new(false));
    let outcome = evloop::run({
        let dropped = dropped.clone();
        async move {
            let task = evloop::create_task(async move {
                let _flag = Flag(dropped);
                sleep(Duration::from_secs(3600)).await;
            });
            sleep(Duration::ZERO).await;
            task.cancel();
            task.await
        }
    })
    .unwrap();
    assert_eq!(outcome, Err(TaskError::Cancelled(Cancelled::new())));
    assert!(dropped.get());
}

#[test]
fn done_callbacks_run_later_not_synchronously() {
    let order = Rc::new(RefCell::new(Vec::new()));
    evloop::run({
        let order = order.clone();
        async move {
            let task = evloop::create_task(async {});
            let o = order.clone();
            task.add_done_callback(move || o.borrow_mut().push("while pending"));
            sleep(Duration::ZERO).await;
            sleep(Duration::ZERO).await;
            assert!(task.done());
            let o = order.clone();
            task.add_done_callback(move || o.borrow_mut().push("after done"));
            order.borrow_mut().push("added");
            sleep(Duration::ZERO).await;
        }
    })
    .unwrap();
    assert_eq!(*order.borrow(), ["while pending", "added", "after done"]);
}

#[test]
fn an_unawaited_panic_reaches_the_exception_handler() {
    let reports = Rc::new(RefCell::new(Vec::new()));
    let lp = EventLoop::new().unwrap();
    let seen = reports.clone();
    lp.set_exception_handler(Some(Rc::new(
        move |_: &EventLoop, ctx: &evloop::ExceptionContext| {
            seen.borrow_mut().push(ctx.message.clone());
        },
    )));
    lp.run_until_complete(async {
        evloop::create_task(async { panic!("lost") }).detach();
        sleep(Duration::ZERO).await;
        sleep(Duration::ZERO).await;
    })
    .unwrap();
    lp.close().unwrap();
    assert_eq!(*reports.borrow(), ["Task exception was never retrieved"]);
}

#[test]
fn wakers_after_the_task_ended_and_after_the_loop_closed_are_no_ops() {
    let lp = EventLoop::new().unwrap();
    let slot = Rc::new(RefCell::new(None));
    let task = lp.create_task(park_once(slot.clone())).unwrap();
    lp.run_until_complete(sleep(Duration::ZERO)).unwrap();
    let waker: Waker = slot.borrow_mut().take().expect("the task parked");
    // The loop is not running: this wake goes through the thread-safe queue.
    waker.wake_by_ref();
    lp.run_until_complete(task).unwrap().unwrap();
    waker.wake_by_ref(); // the task is done: a no-op
    lp.close().unwrap();
    waker.wake_by_ref(); // the loop is closed: a no-op
    let other_thread = waker.clone();
    std::thread::spawn(move || other_thread.wake())
        .join()
        .unwrap();
    drop(waker);
}

#[test]
fn a_wake_from_another_thread_reaches_the_running_loop() {
    let lp = EventLoop::new().unwrap();
    let out = lp
        .run_until_complete(async {
            let slot = Rc::new(RefCell::new(None));
            let parked = evloop::create_task(park_once(slot.clone()));
            sleep(Duration::ZERO).await;
            let waker = slot.borrow_mut().take().unwrap();
            std::thread::spawn(move || waker.wake()).join().unwrap();
            parked.await.unwrap();
            "woken"
        })
        .unwrap();
    assert_eq!(out, "woken");
    lp.close().unwrap();
}

#[test]
fn a_task_woken_while_another_loop_runs_here_waits_for_its_own_loop() {
    let a = EventLoop::new().unwrap();
    let b = EventLoop::new().unwrap();
    let slot = Rc::new(RefCell::new(None));
    let done = Rc::new(Cell::new(false));
    let task = a
        .create_task({
            let (slot, done) = (slot.clone(), done.clone());
            async move {
                park_once(slot).await;
                done.set(true);
            }
        })
        .unwrap();
    a.run_until_complete(sleep(Duration::ZERO)).unwrap();
    let waker = slot.borrow_mut().take().expect("the task parked on loop a");
    // Loop b runs on this thread and the task of loop a is woken inside it: it must not land in
    // b's ready queue.
    b.run_until_complete(async move { waker.wake() }).unwrap();
    assert!(!done.get());
    a.run_until_complete(task).unwrap().unwrap();
    assert!(done.get());
    a.close().unwrap();
    b.close().unwrap();
}

#[test]
fn extensions_of_different_types_are_distinct() {
    let lp = EventLoop::new().unwrap();
    lp.extension::<Cell<u32>>().set(1);
    lp.extension::<Cell<u64>>().set(2);
    lp.extension::<RefCell<String>>().borrow_mut().push('x');
    assert_eq!(lp.extension::<Cell<u32>>().get(), 1);
    assert_eq!(lp.extension::<Cell<u64>>().get(), 2);
    assert_eq!(*lp.extension::<RefCell<String>>().borrow(), "x");
    lp.close().unwrap();
}
