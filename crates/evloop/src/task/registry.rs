//! The loop's list of tasks: for `all_tasks()`, `run()`'s shutdown, and dropping every live
//! future on the loop thread when the loop closes.
//!
//! Finished tasks are not removed one by one (that would need the registry at every completion);
//! the list is compacted whenever it doubles, which keeps it within twice the live tasks plus a
//! constant, at amortised O(1) per task.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use evloop_reactor::EventLoop;

use crate::error::Cancelled;
use crate::task::cell::{Status, TaskObject};

const MIN_COMPACT: usize = 64;

pub(crate) struct TaskRegistry {
    tasks: RefCell<Vec<Arc<dyn TaskObject>>>,
    compact_at: Cell<usize>,
    hooked: Cell<bool>,
}

impl Default for TaskRegistry {
    fn default() -> Self {
        TaskRegistry {
            tasks: RefCell::new(Vec::new()),
            compact_at: Cell::new(MIN_COMPACT),
            hooked: Cell::new(false),
        }
    }
}

impl TaskRegistry {
    pub(crate) fn of(lp: &EventLoop) -> std::rc::Rc<TaskRegistry> {
        let registry = lp.extension::<TaskRegistry>();
        if !registry.hooked.replace(true) {
            let weak = std::rc::Rc::downgrade(&registry);
            lp.on_close(move || {
                if let Some(registry) = weak.upgrade() {
                    registry.abandon_all();
                }
            });
        }
        registry
    }

    pub(crate) fn add(&self, task: Arc<dyn TaskObject>) {
        let mut tasks = self.tasks.borrow_mut();
        if tasks.len() >= self.compact_at.get() {
            tasks.retain(|t| t.status() == Status::Pending);
            self.compact_at.set((tasks.len() * 2).max(MIN_COMPACT));
        }
        tasks.push(task);
    }

    /// The tasks that are not done.
    pub(crate) fn pending(&self) -> Vec<Arc<dyn TaskObject>> {
        self.tasks
            .borrow()
            .iter()
            .filter(|t| t.status() == Status::Pending)
            .cloned()
            .collect()
    }

    /// Drops every live future, on this (the loop's) thread.
    fn abandon_all(&self) {
        // Take the list out first: a future's destructor may create or cancel tasks.
        loop {
            let tasks = std::mem::take(&mut *self.tasks.borrow_mut());
            if tasks.is_empty() {
                break;
            }
            for task in tasks {
                task.abandon(Cancelled::with_message("Event loop is closed"));
            }
        }
    }
}

impl Drop for TaskRegistry {
    fn drop(&mut self) {
        // A loop dropped without close(): its live futures still go on this thread.
        self.abandon_all();
    }
}
