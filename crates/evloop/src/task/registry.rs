//! A loop's task host: its shared scheduler and its registry of live tasks, for `all_tasks()`,
//! `run()`'s shutdown, and dropping every live future on the loop thread when the loop closes.
//!
//! The registry is a slab: a task takes a slot at spawn and gives it back when it ends (from its
//! last step, see `step.rs`), so a finished task is referenced only by its own handles and is
//! freed with the last of them, never kept until some later sweep.
//!
//! The host is a loop extension, but spawning must not pay for a `TypeId`-keyed lookup each
//! time: the host last used on this thread is cached in a thread-local with its loop's id, so
//! `create_task` on the running loop costs one thread-local read and a `Weak` upgrade. The cache
//! holds a `Weak`, so it never keeps a loop's tasks alive past the loop.

use std::cell::{OnceCell, RefCell};
use std::rc::{Rc, Weak};
use std::sync::Arc;

use evloop_reactor::EventLoop;

use crate::error::Cancelled;
use crate::task::cell::{Status, TaskObject};
use crate::task::schedule::{LoopRef, LoopSchedule};

thread_local! {
    /// The host last used on this thread, and its loop's id (0: none).
    static CACHED: RefCell<(u64, Weak<TaskHost>)> = const { RefCell::new((0, Weak::new())) };
}

#[derive(Default)]
pub(crate) struct TaskHost {
    /// The loop's scheduler, shared by all its tasks (set when the host is first looked up).
    schedule: OnceCell<LoopRef>,
    tasks: RefCell<Slab>,
}

/// Live tasks by slot, and the free slots.
#[derive(Default)]
struct Slab {
    entries: Vec<Option<Arc<dyn TaskObject>>>,
    free: Vec<u32>,
}

/// The cached host of loop `loop_id`, if that is the one cached.
#[inline]
fn cached(loop_id: u64) -> Option<Rc<TaskHost>> {
    CACHED.with(|cached| {
        let cached = cached.borrow();
        if cached.0 == loop_id {
            cached.1.upgrade()
        } else {
            None
        }
    })
}

impl TaskHost {
    /// `lp`'s host.
    #[inline]
    pub(crate) fn of(lp: &EventLoop) -> Rc<TaskHost> {
        cached(lp.id()).unwrap_or_else(|| TaskHost::look_up(lp))
    }

    /// The running loop's host, if a loop runs on this thread.
    #[inline]
    pub(crate) fn running() -> Option<Rc<TaskHost>> {
        let id = EventLoop::running_id();
        if id == 0 {
            return None;
        }
        cached(id).or_else(|| EventLoop::with_running(|lp| lp.map(TaskHost::look_up)))
    }

    /// The slow path: the loop's extension, set up on first use, then cached.
    #[cold]
    fn look_up(lp: &EventLoop) -> Rc<TaskHost> {
        let host = lp.extension::<TaskHost>();
        if host.schedule.get().is_none() {
            let _ = host.schedule.set(Arc::new(LoopSchedule::new(lp)));
            let weak = Rc::downgrade(&host);
            lp.on_close(move || {
                if let Some(host) = weak.upgrade() {
                    host.abandon_all();
                }
            });
        }
        CACHED.with(|cached| *cached.borrow_mut() = (lp.id(), Rc::downgrade(&host)));
        host
    }

    /// The loop's scheduler, for a new task.
    pub(crate) fn schedule(&self) -> LoopRef {
        self.schedule.get().expect("set by look_up").clone()
    }

    /// Registers a new task; returns its slot.
    pub(crate) fn add(&self, task: Arc<dyn TaskObject>) -> u32 {
        let mut tasks = self.tasks.borrow_mut();
        match tasks.free.pop() {
            Some(slot) => {
                tasks.entries[slot as usize] = Some(task);
                slot
            }
            None => {
                let slot = u32::try_from(tasks.entries.len()).expect("fewer than 2^32 live tasks");
                tasks.entries.push(Some(task));
                slot
            }
        }
    }

    /// Lets go of the task at address `task` in `slot`, if it is still there (the registry may
    /// have been emptied by the loop's close since).
    fn remove(&self, slot: u32, task: *const ()) {
        let removed = {
            let mut tasks = self.tasks.borrow_mut();
            let entry = tasks.entries.get_mut(slot as usize);
            match entry {
                Some(entry)
                    if entry
                        .as_ref()
                        .is_some_and(|t| Arc::as_ptr(t).cast::<()>() == task) =>
                {
                    let removed = entry.take();
                    tasks.free.push(slot);
                    removed
                }
                _ => None,
            }
        };
        // Released with no borrow held (the step that ended the task still holds a reference,
        // so this never frees the cell here).
        drop(removed);
    }

    /// The tasks that are not done, in creation order.
    pub(crate) fn pending(&self) -> Vec<Arc<dyn TaskObject>> {
        let mut pending: Vec<_> = self
            .tasks
            .borrow()
            .entries
            .iter()
            .flatten()
            .filter(|t| t.status() == Status::Pending)
            .cloned()
            .collect();
        pending.sort_unstable_by_key(|t| t.id());
        pending
    }

    /// Drops every live future, on this (the loop's) thread.
    fn abandon_all(&self) {
        // Take the slab out first: a future's destructor may create or cancel tasks.
        loop {
            let tasks = std::mem::take(&mut *self.tasks.borrow_mut());
            if tasks.entries.is_empty() {
                break;
            }
            let mut tasks: Vec<_> = tasks.entries.into_iter().flatten().collect();
            tasks.sort_unstable_by_key(|t| t.id());
            for task in tasks {
                task.abandon(Cancelled::with_message("Event loop is closed"));
            }
        }
    }
}

/// A task of loop `loop_id` ended (see [`Schedule::release`](crate::task::schedule::Schedule)).
/// Tasks end in their loop's steps, so the host is the cached (or running) one; a loop closing
/// has already emptied its registry, and then there is nothing to release.
#[inline]
pub(crate) fn release(loop_id: u64, slot: u32, task: *const ()) {
    let host = cached(loop_id).or_else(|| {
        EventLoop::with_running(|lp| lp.filter(|lp| lp.id() == loop_id).map(TaskHost::look_up))
    });
    if let Some(host) = host {
        host.remove(slot, task);
    }
}

impl Drop for TaskHost {
    fn drop(&mut self) {
        // A loop dropped without close(): its live futures still go on this thread.
        self.abandon_all();
    }
}
