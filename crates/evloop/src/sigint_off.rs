//! `run()`'s Ctrl-C handling without the `signal` feature: there is no loop signal handler, so
//! SIGINT keeps its default disposition and ends the process, as in a program without asyncio.

use evloop_reactor::EventLoop;

use crate::task::AnyTask;

/// Never installed: see the module docs.
pub(crate) struct SigintGuard;

impl SigintGuard {
    pub(crate) fn install(_lp: &EventLoop, _main: AnyTask) -> Option<SigintGuard> {
        None
    }

    pub(crate) fn finish(self) -> u32 {
        0
    }
}
