//! Support for this crate's doc examples (hidden from the docs): a way to drive one future on a
//! loop without the facade's tasks, which live in a crate above this one.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::EventLoop;

/// Runs `lp` until `future` completes. The future is polled from a loop callback (so the loop
/// is "running" for it, as inside a task) after every iteration; an iteration blocks in the
/// reactor until some I/O or timer is due, so this does not spin.
pub fn block_on<T: 'static>(lp: &EventLoop, future: impl Future<Output = T> + 'static) -> T {
    let future: Rc<RefCell<Pin<Box<dyn Future<Output = T>>>>> =
        Rc::new(RefCell::new(Box::pin(future)));
    let out = Rc::new(RefCell::new(None));
    loop {
        let (f, o) = (future.clone(), out.clone());
        lp.call_soon(move || {
            let mut cx = Context::from_waker(Waker::noop());
            if let Poll::Ready(value) = f.borrow_mut().as_mut().poll(&mut cx) {
                *o.borrow_mut() = Some(value);
            }
        })
        .expect("the loop is open");
        lp.run_once().expect("the loop can run");
        if let Some(value) = out.borrow_mut().take() {
            return value;
        }
        lp.run_once().expect("the loop can run");
    }
}
