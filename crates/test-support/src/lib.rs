//! Helpers shared by evloop's tests and benches, so that each is written once.
//!
//! Two halves, because the crates beneath the facade use it too (see the README):
//! - always there, on std and libc only: running a test in a child process of its own
//!   ([`in_child`], [`isolated`]), counting threads, fds and children from `/proc`
//!   ([`procfs`]), waiting for a condition ([`eventually`]), a thread-parking [`block_on`],
//!   [`DropFlag`], [`Rng`], a `harness = false` runner ([`run_named_tests`]), [`reset_on_close`]
//!   and the [`record_reports!`] macro;
//! - with the `evloop` feature, what needs the facade: [`vrun`], [`test_loop`],
//!   [`record_reports()`], [`until`], [`settle`] and the rest of [`looped`].
//!
//! ```
//! let answer = evloop_test_support::vrun(async {
//!     evloop::sleep(std::time::Duration::from_secs(3600)).await; // no real time passes
//!     42
//! });
//! assert_eq!(answer.unwrap(), 42);
//! ```

use std::cell::Cell;
use std::rc::Rc;

mod child;
mod harness;
mod net;
pub mod procfs;
mod reports;
mod rng;
mod wait;

#[cfg(feature = "evloop")]
pub mod looped;

pub use child::{child_command, in_child, is_child, isolated};
pub use harness::{NamedTest, run_named_tests};
#[cfg(feature = "evloop")]
pub use looped::*;
pub use net::reset_on_close;
pub use procfs::{open_fds, threads_named};
pub use reports::{Report, Reports};
pub use rng::Rng;
pub use wait::{WakeCount, block_on, counting_waker, eventually};

/// `n` milliseconds: the unit most timings in the tests (and CPython's) are written in.
///
/// ```
/// assert_eq!(evloop_test_support::ms(1500), std::time::Duration::from_secs_f64(1.5));
/// ```
pub fn ms(n: u64) -> std::time::Duration {
    std::time::Duration::from_millis(n)
}

/// Sets its flag when dropped: proves that a future's destructors ran.
///
/// ```
/// let (flag, guard) = evloop_test_support::DropFlag::new();
/// drop(guard);
/// assert!(flag.get());
/// ```
pub struct DropFlag(Rc<Cell<bool>>);

impl DropFlag {
    /// A flag (initially false) and the guard that sets it.
    pub fn new() -> (Rc<Cell<bool>>, DropFlag) {
        let flag = Rc::new(Cell::new(false));
        (flag.clone(), DropFlag(flag))
    }
}

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}
