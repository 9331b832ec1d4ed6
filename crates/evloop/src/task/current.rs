//! Which task is being polled on this thread right now (asyncio's `current_task`).

use std::cell::RefCell;
use std::sync::Arc;

use crate::task::cell::TaskObject;

thread_local! {
    static CURRENT: RefCell<Option<Arc<dyn TaskObject>>> = const { RefCell::new(None) };
}

/// Marks a task as current for the duration of its poll, restoring the previous one after.
pub(crate) struct CurrentGuard {
    previous: Option<Arc<dyn TaskObject>>,
}

impl CurrentGuard {
    pub(crate) fn enter(task: Arc<dyn TaskObject>) -> CurrentGuard {
        let previous = CURRENT.with(|current| current.borrow_mut().replace(task));
        CurrentGuard { previous }
    }
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let ours = CURRENT.with(|current| std::mem::replace(&mut *current.borrow_mut(), previous));
        drop(ours);
    }
}

/// The task being polled on this thread, if any.
pub(crate) fn current() -> Option<Arc<dyn TaskObject>> {
    CURRENT.with(|current| current.borrow().clone())
}
