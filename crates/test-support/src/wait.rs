//! Waiting without an event loop: a condition that other threads or processes make true, and a
//! future polled to completion on this thread.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long [`eventually`] waits: generous, for a loaded CI machine; a condition that never
/// holds fails after it instead of hanging the test.
const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `condition` until it holds; panics ("timed out waiting for: `what`") if it still does
/// not after a generous deadline.
///
/// ```
/// let start = std::time::Instant::now();
/// evloop_test_support::eventually("a moment passed", || start.elapsed().as_millis() > 1);
/// ```
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// A minimal executor: polls `future` on this thread, parking between polls. Proves that a
/// future needs no particular runtime.
///
/// ```
/// assert_eq!(evloop_test_support::block_on(async { 6 * 7 }), 42);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

/// How many times a [`counting_waker`]'s waker was woken.
#[derive(Debug, Default)]
pub struct WakeCount(std::sync::atomic::AtomicUsize);

impl WakeCount {
    /// The wake-ups so far (`wake` and `wake_by_ref` alike).
    pub fn get(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A waker that only counts its wake-ups, and the count to read them from: what a unit test of
/// a future or a waiter list needs to check who was woken, and how often.
///
/// ```
/// let (count, waker) = evloop_test_support::counting_waker();
/// waker.wake_by_ref();
/// waker.wake();
/// assert_eq!(count.get(), 2);
/// ```
pub fn counting_waker() -> (Arc<WakeCount>, Waker) {
    let count = Arc::new(WakeCount::default());
    (count.clone(), Waker::from(count))
}
