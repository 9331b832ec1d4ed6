//! The parts of CPython's `test_events.py` / `test_base_events.py` that the ordering and
//! ownership contracts rest on: one FIFO for `call_soon` and `call_soon_threadsafe`, and a future
//! of one loop refused by another.

use std::sync::{Arc, Barrier, Mutex};

use evloop::{EventLoop, FutureError, LoopExt};

/// CPython's `callback(arg)`: records `arg`, stops the loop after the second.
fn recorder(
    lp: &EventLoop,
    results: &Arc<Mutex<Vec<&'static str>>>,
    arg: &'static str,
) -> impl FnOnce() + Send + 'static {
    let (results, remote) = (results.clone(), lp.remote());
    move || {
        let mut results = results.lock().unwrap();
        results.push(arg);
        if results.len() >= 2 {
            remote.stop().unwrap();
        }
    }
}

// test_events.py: test_call_soon_threadsafe_same_thread
#[test]
fn call_soon_threadsafe_same_thread() {
    let lp = EventLoop::new().unwrap();
    let results = Arc::new(Mutex::new(Vec::new()));
    lp.remote()
        .call_soon_threadsafe(recorder(&lp, &results, "hello"))
        .unwrap();
    lp.call_soon(recorder(&lp, &results, "world")).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(*results.lock().unwrap(), ["hello", "world"]);
    lp.close().unwrap();
}

// test_events.py: test_call_soon_threadsafe: a call from another thread that happens before a
// call_soon runs before it.
#[test]
fn call_soon_threadsafe() {
    let lp = EventLoop::new().unwrap();
    let results = Arc::new(Mutex::new(Vec::new()));
    let (remote, hello) = (lp.remote(), recorder(&lp, &results, "hello"));
    let released = Arc::new(Barrier::new(2));
    let lock = released.clone();
    let t = std::thread::spawn(move || {
        remote.call_soon_threadsafe(hello).unwrap();
        lock.wait();
    });
    released.wait();
    lp.call_soon(recorder(&lp, &results, "world")).unwrap();
    lp.run_forever().unwrap();
    t.join().unwrap();
    assert_eq!(*results.lock().unwrap(), ["hello", "world"]);
    lp.close().unwrap();
}

// test_base_events.py: test_run_until_complete_loop: a future of another loop is refused
// (asyncio: ValueError; evloop: the error as the output, deliberate difference 21).
#[test]
fn run_until_complete_loop() {
    let lp = EventLoop::new().unwrap();
    let other_loop = EventLoop::new().unwrap();
    let task = lp.create_future::<()>();
    let outcome = other_loop.run_until_complete(task).unwrap();
    assert!(matches!(outcome, Err(FutureError::DifferentLoop(_))));
    other_loop.close().unwrap();
    lp.close().unwrap();
}
