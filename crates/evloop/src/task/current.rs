//! Which task is being polled on this thread right now (asyncio's `current_task`).
//!
//! Setting the current task happens on every poll, so it must cost next to nothing: the
//! thread-local holds a borrowed pointer to the task being polled rather than an owned `Arc`
//! (which would be two atomic reference-count updates per poll). Only `current()`, which is
//! rare, takes a counted reference.

use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::task::cell::TaskObject;

thread_local! {
    static CURRENT: Cell<Option<NonNull<dyn TaskObject>>> = const { Cell::new(None) };
}

/// Marks a task as current for the duration of its poll, restoring the previous one after.
///
/// The guard borrows the task: it must not outlive the `Arc` it was made from, which the
/// lifetime enforces.
pub(crate) struct CurrentGuard<'a> {
    previous: Option<NonNull<dyn TaskObject>>,
    _task: std::marker::PhantomData<&'a Arc<dyn TaskObject>>,
}

impl<'a> CurrentGuard<'a> {
    pub(crate) fn enter(task: &'a (dyn TaskObject + 'static)) -> CurrentGuard<'a> {
        let previous = CURRENT.with(|current| current.replace(Some(NonNull::from(task))));
        CurrentGuard {
            previous,
            _task: std::marker::PhantomData,
        }
    }
}

impl Drop for CurrentGuard<'_> {
    fn drop(&mut self) {
        CURRENT.with(|current| current.set(self.previous));
    }
}

/// The task being polled on this thread, if any.
pub(crate) fn current() -> Option<Arc<dyn TaskObject>> {
    let ptr = CURRENT.with(Cell::get)?;
    // SAFETY: a pointer is in CURRENT only while a `CurrentGuard` lives, and the guard borrows a
    // task that lives inside an `Arc` (`TaskCell::step` runs on `self: &Arc<Self>`). So `ptr`
    // points into a live `Arc<dyn TaskObject>` allocation, and taking one more count of it is
    // sound; ManuallyDrop keeps the count we did not own from being released.
    let borrowed = std::mem::ManuallyDrop::new(unsafe { Arc::from_raw(ptr.as_ptr().cast_const()) });
    Some(Arc::clone(&borrowed))
}

/// Calls `f` with the task being polled on this thread, without taking a reference count.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&dyn TaskObject>) -> R) -> R {
    match CURRENT.with(Cell::get) {
        // SAFETY: as in `current`: the pointee lives at least as long as the `CurrentGuard` that
        // put it here, which outlives this call (guards are dropped in the poll that made them).
        Some(ptr) => f(Some(unsafe { ptr.as_ref() })),
        None => f(None),
    }
}
