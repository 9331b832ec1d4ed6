//! Signal deliveries as a `futures_core::Stream`: the async form of `add_signal_handler`, for a
//! server that waits for SIGTERM or SIGHUP in a `select` next to its other work.

use std::cell::RefCell;
use std::fmt;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use evloop_reactor::{EventLoop, SignalError};
use futures_core::Stream;

/// The deliveries of one signal on a loop, as a `Stream` of the signal number: one item per
/// time the loop's handler ran (signals that arrive together may be merged into one, as with
/// any Unix signal handler). It never ends by itself.
///
/// While it lives it *is* the signal's handler (`add_signal_handler`): it replaces an earlier
/// handler of that signal, and dropping it removes the handler and restores the default
/// disposition (`remove_signal_handler`), so do not mix it with another handler for the same
/// signal.
///
/// ```
/// use futures_util::StreamExt;
/// use evloop::SignalStream;
///
/// let got = evloop::run(async {
///     let lp = evloop::get_running_loop().unwrap();
///     let mut hangups = SignalStream::new(&lp, libc::SIGUSR1).unwrap();
///     // SAFETY: raising a signal that now has a handler.
///     unsafe { libc::raise(libc::SIGUSR1) };
///     hangups.next().await
/// });
/// assert_eq!(got.unwrap(), Some(libc::SIGUSR1));
/// ```
pub struct SignalStream {
    lp: EventLoop,
    signal: i32,
    deliveries: Rc<RefCell<Deliveries>>,
}

#[derive(Default)]
struct Deliveries {
    pending: u64,
    waker: Option<Waker>,
}

impl SignalStream {
    /// Starts handling `signal` on `lp`. Errors, as `add_signal_handler`'s: "invalid signal
    /// number N", "sig N cannot be caught", "Event loop is closed".
    pub fn new(lp: &EventLoop, signal: i32) -> Result<SignalStream, SignalError> {
        let deliveries = Rc::new(RefCell::new(Deliveries::default()));
        let handler = Rc::clone(&deliveries);
        lp.add_signal_handler(signal, move || {
            let waker = {
                let mut deliveries = handler.borrow_mut();
                deliveries.pending += 1;
                deliveries.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        })?;
        Ok(SignalStream {
            lp: lp.clone(),
            signal,
            deliveries,
        })
    }

    /// The signal number.
    pub fn signal(&self) -> i32 {
        self.signal
    }
}

impl Stream for SignalStream {
    type Item = i32;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<i32>> {
        let mut deliveries = self.deliveries.borrow_mut();
        if deliveries.pending > 0 {
            deliveries.pending -= 1;
            return Poll::Ready(Some(self.signal));
        }
        match &deliveries.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => deliveries.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for SignalStream {
    fn drop(&mut self) {
        self.lp.remove_signal_handler(self.signal);
    }
}

impl fmt::Debug for SignalStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalStream")
            .field("signal", &self.signal)
            .field("pending", &self.deliveries.borrow().pending)
            .finish()
    }
}
