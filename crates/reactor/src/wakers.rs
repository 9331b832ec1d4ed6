//! The wakers of everything awaiting one event (a future's outcome, a child's exit, a stream's
//! flow control), each task once.
//!
//! Nearly always exactly one task awaits, so the first waker is kept inline and only a second
//! awaiter allocates: a future made and awaited once per round trip (asyncio's
//! `create_future()` handed to another thread) then costs no allocation beyond itself.

use std::task::Waker;

/// A set of wakers, one per task, woken together when the event they await happens.
///
/// ```
/// use evloop_reactor::Wakers;
/// use std::task::Waker;
///
/// let mut waiting = Wakers::default();
/// waiting.register(Waker::noop());
/// waiting.register(Waker::noop()); // the same task: kept once
/// waiting.take().wake_all();
/// ```
#[derive(Default)]
pub struct Wakers {
    first: Option<Waker>,
    rest: Vec<Waker>,
}

impl Wakers {
    /// Adds `waker` unless one that wakes the same task is already there.
    pub fn register(&mut self, waker: &Waker) {
        match &self.first {
            None => self.first = Some(waker.clone()),
            Some(first) if first.will_wake(waker) => {}
            Some(_) => {
                if !self.rest.iter().any(|w| w.will_wake(waker)) {
                    self.rest.push(waker.clone());
                }
            }
        }
    }

    /// Takes every waker out, to wake once no borrow is held (a waker may run code that
    /// registers again).
    pub fn take(&mut self) -> Wakers {
        std::mem::take(self)
    }

    /// Wakes every waker, in the order they registered.
    pub fn wake_all(self) {
        if let Some(first) = self.first {
            first.wake();
        }
        for waker in self.rest {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::task::Wake;

    /// A waker that logs its number to a shared log.
    struct Logs(Arc<Mutex<Vec<u8>>>, u8);

    impl Wake for Logs {
        fn wake(self: Arc<Self>) {
            self.0.lock().unwrap().push(self.1);
        }
    }

    #[test]
    fn each_task_is_woken_once_in_registration_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let w: Vec<Waker> = (1..=3)
            .map(|n| Waker::from(Arc::new(Logs(log.clone(), n))))
            .collect();
        let mut set = Wakers::default();
        for waker in [&w[1], &w[0], &w[1], &w[2], &w[0]] {
            set.register(waker);
        }
        let taken = set.take();
        set.register(&w[2]);
        taken.wake_all();
        assert_eq!(*log.lock().unwrap(), vec![2, 1, 3]);
        set.wake_all();
        assert_eq!(
            *log.lock().unwrap(),
            vec![2, 1, 3, 3],
            "take() leaves an empty set"
        );
    }
}
