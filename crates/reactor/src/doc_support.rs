//! Support for this crate's doc examples (hidden from the docs): a way to drive one future on a
//! loop without the facade's tasks, which live in a crate above this one.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use crate::{EventLoop, RemoteHandle};

/// The future's waker: it marks the future for a poll and, from any thread, makes sure the
/// loop's next iteration does not block.
struct Woken {
    flag: AtomicBool,
    remote: RemoteHandle,
}

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.flag.store(true, Ordering::SeqCst);
        // A closed loop has nothing left to run the poll on; the caller's run_once says so.
        let _ = self.remote.call_soon_threadsafe(|| {});
    }
}

/// Runs `lp` until `future` completes. The future is polled from a loop callback (so the loop
/// is "running" for it, as inside a task) whenever it was woken; in between, iterations block
/// in the reactor until some I/O, timer or wake-up is due, so this does not spin.
///
/// The wake-up counts, not the iteration: a future completed by a callback that runs in the
/// same iteration as its poll, after it, is polled again at once instead of waiting for an
/// event that already happened.
pub fn block_on<T: 'static>(lp: &EventLoop, future: impl Future<Output = T> + 'static) -> T {
    let future: Rc<RefCell<Pin<Box<dyn Future<Output = T>>>>> =
        Rc::new(RefCell::new(Box::pin(future)));
    let out = Rc::new(RefCell::new(None));
    let woken = Arc::new(Woken {
        flag: AtomicBool::new(true),
        remote: lp.remote(),
    });
    let waker = Waker::from(woken.clone());
    loop {
        if woken.flag.swap(false, Ordering::SeqCst) {
            let (f, o, waker) = (future.clone(), out.clone(), waker.clone());
            lp.call_soon(move || {
                let mut cx = Context::from_waker(&waker);
                if let Poll::Ready(value) = f.borrow_mut().as_mut().poll(&mut cx) {
                    *o.borrow_mut() = Some(value);
                }
            })
            .expect("the loop is open");
        }
        lp.run_once().expect("the loop can run");
        if let Some(value) = out.borrow_mut().take() {
            return value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    /// The shape of a child's exit seen through its pidfd: the event is already there at the
    /// poll that runs the future's first poll, so its callback runs after it in that same
    /// iteration, completes the future, and leaves nothing that would ever wake the loop again.
    #[test]
    fn a_completion_in_the_iteration_of_the_poll_is_not_missed() {
        let lp = EventLoop::builder().virtual_clock(true).build().unwrap();
        let (mut writer, reader) = UnixStream::pair().unwrap();
        writer.write_all(b"x").unwrap();
        let done = Rc::new(Cell::new(false));
        let waiting = Rc::new(RefCell::new(None::<Waker>));
        let (d, w, l, fd) = (
            done.clone(),
            waiting.clone(),
            lp.clone(),
            reader.as_raw_fd(),
        );
        let mut reader = reader;
        lp.add_reader(fd, move || {
            reader.read_exact(&mut [0]).unwrap();
            l.remove_reader(fd);
            d.set(true);
            if let Some(waker) = w.borrow_mut().take() {
                waker.wake();
            }
        })
        .unwrap();
        // Had the wake-up been lost, the idle loop's virtual clock would jump to this timer.
        let rescued = Rc::new(Cell::new(false));
        let r = rescued.clone();
        lp.call_later(Duration::from_secs(3600), move || r.set(true))
            .unwrap();
        let d = done.clone();
        let future = std::future::poll_fn(move |cx| {
            if d.get() {
                return Poll::Ready(7);
            }
            *waiting.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        });
        assert_eq!(block_on(&lp, future), 7);
        assert!(
            !rescued.get(),
            "the wake-up was lost: only the timer ended the wait"
        );
    }
}
