//! The loop's clock: the real monotonic clock, or a virtual one for tests.
//!
//! A virtual clock stands still while callbacks run and jumps straight to the next timer's
//! deadline when the loop has nothing else to do (tokio's `start_paused`, asyncio's test loop),
//! so timer tests are exact and take no real time on a noisy machine.

use std::cell::Cell;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) enum Clock {
    Real,
    Virtual { now: Cell<Instant> },
}

impl Clock {
    pub(crate) fn new(virtual_time: bool) -> Clock {
        if virtual_time {
            Clock::Virtual {
                now: Cell::new(Instant::now()),
            }
        } else {
            Clock::Real
        }
    }

    pub(crate) fn now(&self) -> Instant {
        match self {
            Clock::Real => Instant::now(),
            Clock::Virtual { now } => now.get(),
        }
    }

    pub(crate) fn is_virtual(&self) -> bool {
        matches!(self, Clock::Virtual { .. })
    }

    /// Moves virtual time forward to `when` (never backwards); no effect on the real clock.
    pub(crate) fn advance_to(&self, when: Instant) {
        if let Clock::Virtual { now } = self {
            if when > now.get() {
                now.set(when);
            }
        }
    }

    /// Moves virtual time forward by `by`; no effect on the real clock.
    pub(crate) fn advance(&self, by: Duration) {
        if let Clock::Virtual { now } = self {
            now.set(now.get() + by);
        }
    }
}
