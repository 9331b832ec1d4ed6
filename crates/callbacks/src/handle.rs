//! Handles: a scheduled callback that whoever holds the handle can cancel.
//!
//! A handle is one allocation holding the callback itself, its state and where it was scheduled.
//! The loop's queue and the user's `Handle` share that allocation (an `Rc`), so cancelling through
//! the handle is seen by the queue without any lookup, and the callback (with everything it
//! captured) is dropped at the moment of cancellation rather than when its turn would have come.

use std::cell::Cell;
use std::fmt;
use std::panic::Location;
use std::rc::Rc;

use crate::context::{Scope, Snapshot};

/// The handle was cancelled (it may also have run before that, as asyncio allows).
const CANCELLED: u8 = 1;
/// The callback has been taken out to run; it can never run again.
const CONSUMED: u8 = 2;
/// The handle sits in a [`TimerHeap`](crate::TimerHeap); cancelling it must be counted there.
const IN_HEAP: u8 = 4;

/// The type-erased part of a handle: what the queues need from any callback.
trait Slot {
    fn state(&self) -> &Cell<u8>;
    /// Takes the callback out and calls it. The caller has already marked the slot consumed.
    fn take_and_call(&self);
    /// Drops the callback and everything it captured.
    fn drop_callback(&self);
    fn callback_name(&self) -> &'static str;
    fn location(&self) -> &'static Location<'static>;
    fn context(&self) -> Option<&Snapshot>;
}

struct CallbackSlot<F> {
    state: Cell<u8>,
    location: &'static Location<'static>,
    /// The context current when the callback was scheduled: it runs in a copy of it.
    context: Option<Snapshot>,
    callback: Cell<Option<F>>,
}

impl<F: FnOnce() + 'static> Slot for CallbackSlot<F> {
    fn state(&self) -> &Cell<u8> {
        &self.state
    }

    fn take_and_call(&self) {
        if let Some(callback) = self.callback.take() {
            callback();
        }
    }

    fn drop_callback(&self) {
        // `take` moves the closure out before it is dropped, so a destructor that touches this
        // handle again (cancel, say) finds a consistent, already-empty slot.
        drop(self.callback.take());
    }

    fn callback_name(&self) -> &'static str {
        std::any::type_name::<F>()
    }

    fn location(&self) -> &'static Location<'static> {
        self.location
    }

    fn context(&self) -> Option<&Snapshot> {
        self.context.as_ref()
    }
}

/// A callback scheduled on a loop: asyncio's `Handle`.
///
/// Cloning a handle is cheap and every clone refers to the same scheduled callback. The callback
/// runs at most once, and never after [`cancel`](Handle::cancel).
///
/// ```
/// use evloop_callbacks::Handle;
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// let hits = Rc::new(Cell::new(0));
/// let h = Handle::new({
///     let hits = hits.clone();
///     move || hits.set(hits.get() + 1)
/// });
/// assert!(h.run());
/// assert!(!h.run(), "a callback runs at most once");
/// assert_eq!(hits.get(), 1);
/// ```
#[derive(Clone)]
pub struct Handle {
    slot: Rc<dyn Slot>,
}

impl Handle {
    /// Wraps `callback` in a handle, remembering the caller's source location for reports.
    #[track_caller]
    #[inline]
    pub fn new(callback: impl FnOnce() + 'static) -> Handle {
        Handle::with_location(callback, Location::caller())
    }

    /// Wraps `callback` in a handle that reports `location` as where it was scheduled (for
    /// callbacks that crossed a thread before being wrapped).
    ///
    /// ```
    /// use std::panic::Location;
    /// let here = Location::caller();
    /// let h = evloop_callbacks::Handle::with_location(|| (), here);
    /// assert_eq!(h.location(), here);
    /// ```
    #[inline]
    pub fn with_location(
        callback: impl FnOnce() + 'static,
        location: &'static Location<'static>,
    ) -> Handle {
        Handle::with_context(callback, location, Snapshot::capture())
    }

    /// Wraps `callback` in a handle that runs in a copy of `context` (asyncio's
    /// `call_soon(cb, context=ctx)`) and reports `location` as where it was scheduled.
    ///
    /// ```
    /// use evloop_callbacks::{Context, ContextVar, Handle};
    /// use std::panic::Location;
    ///
    /// static V: ContextVar<u8> = ContextVar::new("v");
    /// let mut ctx = Context::new();
    /// ctx.run(|| V.set(1));
    /// let h = Handle::with_context(|| assert_eq!(V.get(), Some(1)), Location::caller(), ctx.snapshot());
    /// assert!(h.within_context(|| h.run()));
    /// ```
    #[inline]
    pub fn with_context(
        callback: impl FnOnce() + 'static,
        location: &'static Location<'static>,
        context: Option<crate::Snapshot>,
    ) -> Handle {
        Handle {
            slot: Rc::new(CallbackSlot {
                state: Cell::new(0),
                location,
                context,
                callback: Cell::new(Some(callback)),
            }),
        }
    }

    /// Calls `f` inside (a copy of) the context the callback was scheduled in: the loop runs the
    /// callback, and reports its failure, this way. While no context variable was ever set in
    /// the process this costs two loads; should the first `set` happen inside `f`, what it set
    /// is dropped afterwards, as a callback's own copy would be.
    ///
    /// ```
    /// let h = evloop_callbacks::Handle::new(|| ());
    /// assert!(h.within_context(|| h.run()));
    /// ```
    #[inline]
    pub fn within_context<R>(&self, f: impl FnOnce() -> R) -> R {
        if crate::context::in_use() {
            let _scope = Scope::enter(self.slot.context().cloned());
            f()
        } else {
            let result = f();
            crate::context::forget_first_use();
            result
        }
    }

    /// The context the callback will run in (a copy of it), as asyncio's `Handle.get_context()`.
    ///
    /// ```
    /// let h = evloop_callbacks::Handle::new(|| ());
    /// assert!(h.get_context().is_empty());
    /// ```
    pub fn get_context(&self) -> crate::Context {
        crate::Context::from_snapshot(self.slot.context().cloned())
    }

    /// Cancels the callback: it will not run, and what it captured is dropped now.
    ///
    /// Idempotent. As in asyncio, cancelling a handle that already ran only sets the flag.
    ///
    /// ```
    /// use evloop_callbacks::Handle;
    /// use std::rc::Rc;
    ///
    /// let captured = Rc::new(());
    /// let h = Handle::new({
    ///     let captured = captured.clone();
    ///     move || drop(captured)
    /// });
    /// h.cancel();
    /// assert!(h.cancelled());
    /// assert_eq!(Rc::strong_count(&captured), 1, "dropped at cancel time");
    /// assert!(!h.run());
    /// ```
    pub fn cancel(&self) {
        self.cancel_reporting();
    }

    /// Cancels and says whether this call did it and the handle was in a timer heap.
    pub(crate) fn cancel_reporting(&self) -> bool {
        let state = self.slot.state();
        let old = state.get();
        if old & CANCELLED != 0 {
            return false;
        }
        state.set(old | CANCELLED);
        self.slot.drop_callback();
        old & (IN_HEAP | CONSUMED) == IN_HEAP
    }

    /// Whether [`cancel`](Handle::cancel) was called.
    ///
    /// ```
    /// let h = evloop_callbacks::Handle::new(|| ());
    /// assert!(!h.cancelled());
    /// h.cancel();
    /// assert!(h.cancelled());
    /// ```
    pub fn cancelled(&self) -> bool {
        self.slot.state().get() & CANCELLED != 0
    }

    /// Runs the callback unless it was cancelled or already ran; says whether it ran.
    ///
    /// A panic in the callback propagates to the caller (the loop catches it and reports it); the
    /// handle counts as run either way.
    ///
    /// ```
    /// let h = evloop_callbacks::Handle::new(|| println!("hello"));
    /// assert!(h.run());
    /// ```
    pub fn run(&self) -> bool {
        let state = self.slot.state();
        let old = state.get();
        if old & (CANCELLED | CONSUMED) != 0 {
            return false;
        }
        state.set(old | CONSUMED);
        self.slot.take_and_call();
        true
    }

    /// The callback's type name, which for a closure names the function that created it.
    ///
    /// ```
    /// let h = evloop_callbacks::Handle::new(|| ());
    /// assert!(h.callback_name().contains("{{closure}}"));
    /// ```
    pub fn callback_name(&self) -> &'static str {
        self.slot.callback_name()
    }

    /// Where the callback was scheduled (the caller of `Handle::new` or of the loop's `call_*`).
    ///
    /// ```
    /// let h = evloop_callbacks::Handle::new(|| ());
    /// assert_eq!(h.location().line(), line!() - 1);
    /// ```
    pub fn location(&self) -> &'static Location<'static> {
        self.slot.location()
    }

    /// Whether two handles refer to the same scheduled callback.
    ///
    /// ```
    /// let h = evloop_callbacks::Handle::new(|| ());
    /// assert!(h.ptr_eq(&h.clone()));
    /// assert!(!h.ptr_eq(&evloop_callbacks::Handle::new(|| ())));
    /// ```
    pub fn ptr_eq(&self, other: &Handle) -> bool {
        std::ptr::addr_eq(Rc::as_ptr(&self.slot), Rc::as_ptr(&other.slot))
    }

    /// Drops the callback without running it and without marking the handle cancelled: what a
    /// closing loop does to work it will never run.
    pub fn discard(&self) {
        let state = self.slot.state();
        state.set(state.get() | CONSUMED);
        self.slot.drop_callback();
    }

    pub(crate) fn set_in_heap(&self, in_heap: bool) {
        let state = self.slot.state();
        let old = state.get();
        state.set(if in_heap {
            old | IN_HEAP
        } else {
            old & !IN_HEAP
        });
    }
}

/// Formats like asyncio's repr: `<Handle path::to::{{closure}} at src/main.rs:10:5>`.
impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.cancelled() { "cancelled " } else { "" };
        write!(
            f,
            "<Handle {state}{} at {}>",
            self.callback_name(),
            self.location()
        )
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_is_idempotent_and_drops_the_capture_once() {
        struct CountDrops(Rc<Cell<u32>>);
        impl Drop for CountDrops {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
            }
        }
        let drops = Rc::new(Cell::new(0));
        let guard = CountDrops(drops.clone());
        let h = Handle::new(move || drop(guard));
        h.cancel();
        h.cancel();
        assert_eq!(drops.get(), 1);
        assert!(!h.run());
        assert_eq!(drops.get(), 1);
    }

    #[test]
    fn a_destructor_that_cancels_its_own_handle_is_harmless() {
        struct CancelOnDrop(Rc<Cell<Option<Handle>>>);
        impl Drop for CancelOnDrop {
            fn drop(&mut self) {
                if let Some(h) = self.0.take() {
                    h.cancel();
                }
            }
        }
        let cell = Rc::new(Cell::new(None));
        let guard = CancelOnDrop(cell.clone());
        let h = Handle::new(move || drop(guard));
        cell.set(Some(h.clone()));
        h.cancel();
        assert!(h.cancelled());
    }

    #[test]
    fn cancel_after_run_only_sets_the_flag() {
        let h = Handle::new(|| ());
        assert!(h.run());
        h.cancel();
        assert!(h.cancelled());
        assert!(!h.run());
    }

    #[test]
    fn a_panicking_callback_is_consumed() {
        let h = Handle::new(|| panic!("boom"));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.run()));
        assert!(caught.is_err());
        assert!(!h.run());
    }

    #[test]
    fn debug_names_the_callback_and_its_location() {
        let h = Handle::new(|| ());
        let text = format!("{h:?}");
        assert!(text.starts_with("<Handle "), "{text}");
        assert!(text.contains("handle.rs"), "{text}");
        h.cancel();
        assert!(format!("{h}").contains("cancelled"));
    }
}
