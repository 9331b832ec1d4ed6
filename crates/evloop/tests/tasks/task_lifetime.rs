//! A task's future is dropped on the loop thread when the task ends or its loop closes, and wakers
//! that outlive either are harmless.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use evloop::{EventLoop, LoopError, LoopExt, sleep};

use crate::HOUR;

/// A future that stores the waker it was polled with, and never completes on its own.
struct StoreWaker(Arc<Mutex<Option<Waker>>>);

impl Future for StoreWaker {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        *self.0.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[test]
fn wakers_used_after_the_task_ended_and_after_the_loop_closed_are_harmless() {
    let slot = Arc::new(Mutex::new(None::<Waker>));
    let capture = Rc::new(());
    let held = capture.clone();
    let store = slot.clone();
    let lp = EventLoop::new().unwrap();
    // A task that ends (cancelled) while its waker lives on elsewhere.
    let task = lp
        .create_task(async move {
            let _held = held;
            StoreWaker(store).await;
        })
        .unwrap();
    let stopper = lp.clone();
    lp.call_later(Duration::from_millis(5), move || stopper.stop())
        .unwrap();
    lp.run_forever().unwrap();
    let waker = slot.lock().unwrap().clone().expect("polled once");
    task.cancel();
    lp.stop();
    lp.run_forever().unwrap();
    assert!(task.done());
    assert_eq!(Rc::strong_count(&capture), 1, "the future was dropped");
    // After the end: wake on this thread and from another one.
    waker.wake_by_ref();
    let w = waker.clone();
    std::thread::spawn(move || w.wake()).join().unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    // After close: wake and drop from another thread (the last references go there).
    drop(task);
    lp.close().unwrap();
    let w = waker.clone();
    std::thread::spawn(move || {
        w.wake_by_ref();
        w.wake();
    })
    .join()
    .unwrap();
    drop(waker);
    slot.lock().unwrap().take();
}

#[test]
fn closing_the_loop_drops_pending_futures_on_the_loop_thread() {
    let capture = Rc::new(());
    let held = capture.clone();
    let lp = EventLoop::new().unwrap();
    let task = lp
        .create_task(async move {
            let _held = held;
            sleep(HOUR).await;
        })
        .unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(Rc::strong_count(&capture), 2);
    lp.close().unwrap();
    assert_eq!(Rc::strong_count(&capture), 1);
    assert!(task.cancelled());
    assert_eq!(lp.create_task(async {}).unwrap_err(), LoopError::Closed);
}
