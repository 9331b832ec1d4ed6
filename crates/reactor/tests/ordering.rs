//! One order for both kinds of `call_soon` (asyncio A2/A4: `call_soon_threadsafe` appends to the
//! same `_ready` deque as `call_soon`).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use evloop_reactor::EventLoop;

#[test]
fn a_threadsafe_call_made_first_on_the_loop_thread_runs_first() {
    let lp = EventLoop::new().unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let first = order.clone();
    lp.remote()
        .call_soon_threadsafe(move || first.lock().unwrap().push("threadsafe"))
        .unwrap();
    let second = order.clone();
    lp.call_soon(move || second.lock().unwrap().push("call_soon"))
        .unwrap();
    lp.run_once().unwrap();
    assert_eq!(*order.lock().unwrap(), ["threadsafe", "call_soon"]);
    lp.close().unwrap();
}

#[test]
fn a_threadsafe_call_that_happened_before_a_call_soon_runs_before_it() {
    let lp = EventLoop::new().unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let remote = lp.remote();
    let from_thread = order.clone();
    std::thread::spawn(move || {
        for i in 0..3 {
            let sink = from_thread.clone();
            remote
                .call_soon_threadsafe(move || sink.lock().unwrap().push(format!("thread {i}")))
                .unwrap();
        }
    })
    .join()
    .unwrap();
    let local: Rc<RefCell<()>> = Rc::default();
    let sink = order.clone();
    lp.call_soon(move || {
        let _keep = local;
        sink.lock().unwrap().push("loop".to_owned());
    })
    .unwrap();
    lp.run_once().unwrap();
    assert_eq!(
        *order.lock().unwrap(),
        ["thread 0", "thread 1", "thread 2", "loop"]
    );
    lp.close().unwrap();
}
