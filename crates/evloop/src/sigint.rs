//! Ctrl-C under `run()` (asyncio G6).
//!
//! While the main task runs, SIGINT is handled on the loop: the first Ctrl-C cancels the main
//! task (a main that catches the cancellation and returns still gives its value), a second one
//! stops the loop at once. Either way `run()` then reports [`RunError::Interrupted`], asyncio's
//! `KeyboardInterrupt`. The handling is installed only on the main thread and only while SIGINT
//! has its default disposition (someone else's handler is left alone), and the default is
//! restored when the main task is done, before the shutdown sequence runs.
//!
//! [`RunError::Interrupted`]: crate::RunError::Interrupted

use std::cell::Cell;
use std::rc::Rc;

use evloop_reactor::EventLoop;

use crate::AnyTask;

/// The installed Ctrl-C handling of one `Runner::run`.
pub(crate) struct SigintGuard {
    lp: EventLoop,
    interrupts: Rc<Cell<u32>>,
    /// Whether a Ctrl-C's cancel reached the main task (it was not done yet).
    cancelled_main: Rc<Cell<bool>>,
}

/// What the Ctrl-C handling saw during one run.
pub(crate) struct Interrupts {
    /// How many Ctrl-Cs arrived.
    pub(crate) count: u32,
    /// Whether the first one cancelled the main task.
    pub(crate) cancelled_main: bool,
}

impl SigintGuard {
    /// Installs the handling for `main` on `lp`, if this is the main thread and SIGINT has its
    /// default disposition.
    pub(crate) fn install(lp: &EventLoop, main: AnyTask) -> Option<SigintGuard> {
        if !on_main_thread() || !evloop_reactor::has_default_disposition(libc::SIGINT) {
            return None;
        }
        let interrupts = Rc::new(Cell::new(0u32));
        let cancelled_main = Rc::new(Cell::new(false));
        let (count, cancelled, on_loop) = (interrupts.clone(), cancelled_main.clone(), lp.clone());
        lp.add_signal_handler(libc::SIGINT, move || {
            count.set(count.get() + 1);
            if count.get() == 1 && !main.done() {
                cancelled.set(main.cancel());
            } else {
                // The second Ctrl-C (or one after main finished) interrupts at once.
                on_loop.stop();
            }
        })
        .ok()?;
        Some(SigintGuard {
            lp: lp.clone(),
            interrupts,
            cancelled_main,
        })
    }

    /// Restores the default disposition; says what arrived.
    pub(crate) fn finish(self) -> Interrupts {
        self.lp.remove_signal_handler(libc::SIGINT);
        Interrupts {
            count: self.interrupts.get(),
            cancelled_main: self.cancelled_main.get(),
        }
    }
}

/// Whether this is the process's main thread: its thread id equals the process id (a thread
/// merely named "main" does not qualify).
fn on_main_thread() -> bool {
    // SAFETY: gettid and getpid take no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) == libc::c_long::from(libc::getpid()) }
}
