//! `run()`'s executor step without the `thread-pool` feature: a loop without executors has no
//! default executor to join.

use evloop_reactor::EventLoop;

/// Nothing to join: see the module docs.
pub(crate) fn join_default_on_exit(_lp: &EventLoop) -> Result<(), crate::RunError> {
    Ok(())
}
