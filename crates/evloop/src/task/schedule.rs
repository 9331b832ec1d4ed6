//! Where a woken task goes: the seam between the task cell's state machine and the loop.
//!
//! The cell decides *whether* a wake-up queues a step (at most once until the step starts,
//! never after the task is done); a [`Schedule`] decides *where* the step is queued. On a loop
//! that is [`LoopSchedule`]: the ready queue directly when the loop runs on this thread, its
//! thread-safe remote queue otherwise. Tests give the cell a scheduler of their own, so the state
//! machine is exercised apart from any loop (async-task's `Schedule`, tokio's mock scheduler).

use std::sync::Arc;

use evloop_reactor::{EventLoop, RemoteHandle, TaskRef};

/// Queues a task's next step.
///
/// `schedule` is called from any thread a waker is used on; the reference it gets must end up
/// run (polled) only on the thread of the loop the task belongs to, or be dropped anywhere.
pub(crate) trait Schedule: Send + Sync + 'static {
    /// Queues `task`'s next step.
    fn schedule(&self, task: TaskRef);
    /// The id of the loop the task belongs to (0 for none).
    fn loop_id(&self) -> u64;
    /// The task (at address `task`) has ended, on the loop thread: its registry slot `slot` is
    /// free, and the registry's reference to it goes.
    fn release(&self, slot: u32, task: *const ());
}

/// What a task cell holds of its loop: one pointer to the loop's scheduler, shared by all its
/// tasks (a spawn counts one reference instead of copying the loop's handles).
pub(crate) type LoopRef = Arc<LoopSchedule>;

/// A loop's scheduler: the fast path on the loop's own thread, the remote queue otherwise.
pub(crate) struct LoopSchedule {
    loop_id: u64,
    remote: RemoteHandle,
}

impl LoopSchedule {
    pub(crate) fn new(lp: &EventLoop) -> LoopSchedule {
        LoopSchedule {
            loop_id: lp.id(),
            remote: lp.remote(),
        }
    }
}

impl Schedule for LoopRef {
    #[inline]
    fn schedule(&self, task: TaskRef) {
        // Loop thread, loop running: straight into the ready queue, with no lock and no
        // reference-counted loop handle.
        if let Err(task) = EventLoop::schedule_task_if_running(self.loop_id, task) {
            // Another thread, or the loop is not running: through the thread-safe queue, which
            // wakes the loop only if it is blocked. A closed loop hands the reference back and
            // it is released here, which never drops the future (see the cell's module doc).
            let _ = self.remote.schedule_task(task);
        }
    }

    fn loop_id(&self) -> u64 {
        self.loop_id
    }

    #[inline]
    fn release(&self, slot: u32, task: *const ()) {
        crate::task::registry::release(self.loop_id, slot, task);
    }
}
