//! `run()`'s Ctrl-C handling without the `signal` feature: there is no loop signal handler, so
//! SIGINT keeps its default disposition and ends the process, as in a program without asyncio.
//! Mirrors `sigint.rs`'s interface (CI's feature check builds this variant).

use evloop_reactor::EventLoop;

use crate::task::AnyTask;

/// Never installed: see the module docs.
pub(crate) struct SigintGuard;

/// What `sigint.rs` reports after a run; never made here.
pub(crate) struct Interrupts {
    pub(crate) count: u32,
    pub(crate) cancelled_main: bool,
}

impl SigintGuard {
    pub(crate) fn install(_lp: &EventLoop, _main: AnyTask) -> Option<SigintGuard> {
        None
    }

    pub(crate) fn finish(self) -> Interrupts {
        Interrupts {
            count: 0,
            cancelled_main: false,
        }
    }
}
