//! The job channel on its own: Python's future state machine, blocking and async waits,
//! callbacks and `as_completed`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use evloop_test_support::block_on;
use evloop_thread_pool::JobError;
use evloop_thread_pool::future::{JobState, as_completed, job_channel};

#[test]
fn state_machine_follows_python() {
    let (promise, future) = job_channel::<u8, JobError>();
    assert_eq!(future.state(), JobState::Pending);
    assert!(!future.done() && !future.running() && !future.cancelled());
    assert!(promise.set_running_or_notify_cancel());
    assert!(future.running());
    assert!(!future.cancel(), "a running job cannot be cancelled");
    promise.complete(Ok(5));
    assert!(future.done() && !future.cancelled());
    assert!(!future.cancel(), "a finished job cannot be cancelled");
    assert_eq!(future.wait(), Ok(5));
}

#[test]
fn cancel_while_pending_wins_and_is_idempotent() {
    let (promise, future) = job_channel::<u8, JobError>();
    assert!(future.cancel());
    assert!(future.cancel(), "cancel of a cancelled future returns true");
    assert!(future.done() && future.cancelled());
    assert!(promise.is_cancelled());
    assert!(!promise.set_running_or_notify_cancel());
    promise.complete(Ok(1)); // ignored
    assert_eq!(future.wait(), Err(JobError::Cancelled));
}

#[test]
fn dropped_promise_completes_with_abandoned() {
    let (promise, future) = job_channel::<u8, JobError>();
    let waiter = thread::spawn(move || future.wait());
    drop(promise);
    assert_eq!(waiter.join().unwrap(), Err(JobError::Abandoned));
}

#[test]
fn wait_timeout_times_out_and_leaves_future_usable() {
    let (promise, mut future) = job_channel::<u8, JobError>();
    let started = Instant::now();
    assert_eq!(future.wait_timeout(Duration::from_millis(50)), None);
    assert!(started.elapsed() >= Duration::from_millis(50));
    let completer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        promise.complete(Ok(9));
    });
    assert_eq!(future.wait_timeout(Duration::from_secs(30)), Some(Ok(9)));
    completer.join().unwrap();
}

#[test]
fn wait_timeout_zero_does_not_block() {
    let (promise, mut future) = job_channel::<u8, JobError>();
    assert_eq!(future.wait_timeout(Duration::ZERO), None);
    promise.complete(Ok(1));
    assert_eq!(future.wait_timeout(Duration::ZERO), Some(Ok(1)));
}

#[test]
fn awaitable_from_a_hand_written_block_on_with_cross_thread_wake() {
    for _ in 0..100 {
        let (promise, future) = job_channel::<u32, JobError>();
        let completer = thread::spawn(move || {
            assert!(promise.set_running_or_notify_cancel());
            promise.complete(Ok(42));
        });
        assert_eq!(block_on(future), Ok(42));
        completer.join().unwrap();
    }
}

#[test]
fn done_callback_runs_on_completing_thread_when_pending() {
    let (promise, future) = job_channel::<u32, JobError>();
    let (tx, rx) = mpsc::channel();
    future.add_done_callback(move |result| {
        tx.send((result.clone(), thread::current().name().map(str::to_owned)))
            .unwrap();
    });
    thread::Builder::new()
        .name("completer".into())
        .spawn(move || promise.complete(Ok(7)))
        .unwrap()
        .join()
        .unwrap();
    let (result, thread_name) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(result, Ok(7));
    assert_eq!(thread_name.as_deref(), Some("completer"));
    // The result is still there for the consumer.
    assert_eq!(future.wait(), Ok(7));
}

#[test]
fn done_callback_runs_at_once_when_already_done_and_in_order() {
    let (promise, future) = job_channel::<u32, JobError>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    for i in 0..3 {
        let seen = Arc::clone(&seen);
        future.add_done_callback(move |_| seen.lock().unwrap().push(i));
    }
    promise.complete(Ok(1));
    let seen2 = Arc::clone(&seen);
    let me = thread::current().id();
    future.add_done_callback(move |result| {
        assert_eq!(thread::current().id(), me);
        assert_eq!(result, &Ok(1));
        seen2.lock().unwrap().push(3);
    });
    assert_eq!(*seen.lock().unwrap(), [0, 1, 2, 3]);
}

#[test]
fn done_callback_sees_cancellation_and_panicking_callback_is_contained() {
    let (_promise, future) = job_channel::<u32, JobError>();
    let calls = Arc::new(AtomicUsize::new(0));
    future.add_done_callback(|_| panic!("callback panics"));
    let c = Arc::clone(&calls);
    future.add_done_callback(move |result| {
        assert_eq!(result, &Err(JobError::Cancelled));
        c.fetch_add(1, Ordering::SeqCst);
    });
    assert!(future.cancel());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn as_completed_yields_in_completion_order() {
    let channels: Vec<_> = (0..4).map(|_| job_channel::<usize, JobError>()).collect();
    let (promises, futures): (Vec<_>, Vec<_>) = channels.into_iter().unzip();
    let mut completed = as_completed(futures);
    assert_eq!(completed.len_hint(), 4);
    let order = [2, 0, 3, 1];
    let mut promises: Vec<_> = promises.into_iter().map(Some).collect();
    for &i in &order {
        promises[i].take().unwrap().complete(Ok(i));
        let future = completed.next().unwrap();
        assert!(future.done());
        assert_eq!(future.wait(), Ok(i));
    }
    assert!(completed.next().is_none());
}

#[test]
fn as_completed_includes_already_done_and_consumed_futures() {
    let (p1, f1) = job_channel::<u8, JobError>();
    let (p2, mut f2) = job_channel::<u8, JobError>();
    p1.complete(Ok(1));
    p2.complete(Ok(2));
    assert_eq!(f2.wait_timeout(Duration::ZERO), Some(Ok(2))); // result taken
    let yielded = as_completed([f1, f2]).count();
    assert_eq!(yielded, 2);
}

trait LenHint {
    fn len_hint(&self) -> usize;
}

impl<I: Iterator> LenHint for I {
    fn len_hint(&self) -> usize {
        self.size_hint().0
    }
}

#[test]
fn futures_and_promises_are_send_and_sync_when_their_contents_are() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<evloop_thread_pool::JobFuture<String>>();
    assert_send_sync::<evloop_thread_pool::JobPromise<String>>();
    assert_send_sync::<evloop_thread_pool::ThreadPoolExecutor>();
}

#[test]
fn completion_wakes_the_registered_waker_exactly_once() {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Wake, Waker};

    struct Counter(AtomicUsize);
    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    let waker = Waker::from(Arc::clone(&counter));
    let mut cx = Context::from_waker(&waker);
    let (promise, mut future) = job_channel::<u8, JobError>();
    assert!(Pin::new(&mut future).poll(&mut cx).is_pending());
    assert!(Pin::new(&mut future).poll(&mut cx).is_pending()); // re-poll keeps one waker
    thread::spawn(move || promise.complete(Ok(4)))
        .join()
        .unwrap();
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Ready(Ok(4)));
}

#[test]
fn cancel_from_another_thread_wakes_an_awaiting_task() {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    type Shared = Arc<Mutex<evloop_thread_pool::JobFuture<u8>>>;
    /// Awaits a future that another thread can reach (to cancel it) between polls.
    struct Polled(Shared);
    impl Future for Polled {
        type Output = Result<u8, JobError>;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            Pin::new(&mut *self.0.lock().unwrap()).poll(cx)
        }
    }

    let (_promise, future) = job_channel::<u8, JobError>();
    let shared: Shared = Arc::new(Mutex::new(future));
    let awaited = Polled(Arc::clone(&shared));
    let awaiter = thread::spawn(move || block_on(awaited));
    thread::sleep(Duration::from_millis(20));
    assert!(shared.lock().unwrap().cancel());
    assert_eq!(awaiter.join().unwrap(), Err(JobError::Cancelled));
}

#[test]
fn as_completed_async_form_wakes_across_threads() {
    let channels: Vec<_> = (0..3).map(|_| job_channel::<usize, JobError>()).collect();
    let (promises, futures): (Vec<_>, Vec<_>) = channels.into_iter().unzip();
    let mut completed = as_completed(futures);
    let completer = thread::spawn(move || {
        for (i, promise) in promises.into_iter().enumerate().rev() {
            thread::sleep(Duration::from_millis(5));
            promise.complete(Ok(i));
        }
    });
    let mut order = Vec::new();
    while let Some(future) = block_on(completed.next_async()) {
        order.push(future.wait().unwrap());
    }
    completer.join().unwrap();
    assert_eq!(order, [2, 1, 0]);
}
