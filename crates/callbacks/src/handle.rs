//! Handles: a scheduled callback that whoever holds the handle can cancel.
//!
//! A handle is one block holding a small header (reference count, state, where it was
//! scheduled, its context) and the callback itself. The loop's queue and the user's `Handle`
//! share that block, so cancelling through the handle is seen by the queue without any lookup,
//! and the callback (with everything it captured) is dropped at the moment of cancellation rather
//! than when its turn would have come.
//!
//! The block is reference counted by hand rather than an `Rc<dyn ...>` so that it can come from
//! the thread's [pool](crate::pool) when the callback is small (almost always): `call_soon` then
//! costs no allocator call at all.

use std::alloc::Layout;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, offset_of};
use std::panic::Location;
use std::ptr::NonNull;

use crate::context::{Scope, Snapshot};
use crate::pool;

/// The handle was cancelled (it may also have run before that, as asyncio allows).
const CANCELLED: u8 = 1;
/// The callback has been taken out to run, or dropped; it can never run again.
const CONSUMED: u8 = 2;
/// The handle sits in a [`TimerHeap`](crate::TimerHeap); cancelling it must be counted there.
const IN_HEAP: u8 = 4;

/// The callback is still in its block exactly while neither flag is set: whoever sets the first
/// of them takes it out (to run it) or drops it, and sets the flag before that, so a destructor
/// that comes back to the handle finds it already empty.
const GONE: u8 = CANCELLED | CONSUMED;

/// What a block needs to know about the type of its callback.
struct VTable {
    /// Moves the callback out of the block and calls it.
    call: unsafe fn(NonNull<Header>),
    /// Drops the callback in place.
    drop_callback: unsafe fn(NonNull<Header>),
    callback_name: fn() -> &'static str,
    /// The block's layout, when it is not a pooled block.
    layout: Option<Layout>,
}

/// The type-independent start of every block.
#[repr(C)]
struct Header {
    refs: Cell<u32>,
    state: Cell<u8>,
    vtable: &'static VTable,
    location: &'static Location<'static>,
    /// The context current when the callback was scheduled: it runs in a copy of it.
    context: Option<Snapshot>,
}

#[repr(C)]
struct Block<F> {
    header: Header,
    callback: ManuallyDrop<F>,
}

impl<F: FnOnce() + 'static> Block<F> {
    const POOLED: bool = Layout::new::<Block<F>>().size() <= pool::BLOCK.size()
        && Layout::new::<Block<F>>().align() <= pool::BLOCK.align();

    const VTABLE: VTable = VTable {
        call: Block::<F>::call,
        drop_callback: Block::<F>::drop_callback,
        callback_name: std::any::type_name::<F>,
        layout: if Self::POOLED {
            None
        } else {
            Some(Layout::new::<Block<F>>())
        },
    };

    fn callback_ptr(header: NonNull<Header>) -> *mut F {
        // The header is the first field of a `Block<F>` (repr(C)), and `ManuallyDrop<F>` is laid
        // out as `F`: the callback sits at this offset inside the same allocation.
        header
            .as_ptr()
            .wrapping_byte_add(offset_of!(Block<F>, callback))
            .cast::<F>()
    }

    /// # Safety
    ///
    /// `header` starts a live `Block<F>` whose callback is still in place and will never be
    /// touched again (the caller has set a `GONE` flag).
    unsafe fn call(header: NonNull<Header>) {
        // SAFETY: the callback is in place and, by the flag, read exactly once.
        let callback = unsafe { Self::callback_ptr(header).read() };
        callback();
    }

    /// # Safety
    ///
    /// As for [`call`](Block::call).
    unsafe fn drop_callback(header: NonNull<Header>) {
        // SAFETY: the callback is in place and, by the flag, dropped exactly once.
        unsafe { Self::callback_ptr(header).drop_in_place() }
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
pub struct Handle {
    header: NonNull<Header>,
    /// A handle is as thread-bound as the `Rc`s its callback may capture.
    _not_send: PhantomData<*const ()>,
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
    pub fn with_context<F: FnOnce() + 'static>(
        callback: F,
        location: &'static Location<'static>,
        context: Option<crate::Snapshot>,
    ) -> Handle {
        Handle::from_block(Block {
            header: Header {
                refs: Cell::new(1),
                state: Cell::new(0),
                vtable: &Block::<F>::VTABLE,
                location,
                context,
            },
            callback: ManuallyDrop::new(callback),
        })
    }

    #[inline]
    fn from_block<F: FnOnce() + 'static>(block: Block<F>) -> Handle {
        let ptr = if Block::<F>::POOLED {
            pool::alloc().cast::<Block<F>>()
        } else {
            let layout = Layout::new::<Block<F>>();
            // SAFETY: a block has a non-zero size (the header).
            let raw = unsafe { std::alloc::alloc(layout) };
            NonNull::new(raw)
                .unwrap_or_else(|| std::alloc::handle_alloc_error(layout))
                .cast::<Block<F>>()
        };
        // SAFETY: `ptr` is a fresh allocation big and aligned enough for a `Block<F>` (POOLED
        // checks the pool's layout), owned by nobody else.
        unsafe { ptr.write(block) };
        Handle {
            header: ptr.cast::<Header>(),
            _not_send: PhantomData,
        }
    }

    /// Starts loading the handle's block into the cache (see [`prefetch`](crate::prefetch)).
    #[inline]
    pub(crate) fn prefetch(&self) {
        crate::prefetch::prefetch(self.header.as_ptr());
    }

    /// Gives up the handle's reference as a raw pointer (for the ready queue's stored form).
    #[inline]
    pub(crate) fn into_raw(self) -> NonNull<u8> {
        ManuallyDrop::new(self).header.cast()
    }

    /// Takes back a reference given up by [`into_raw`](Handle::into_raw).
    ///
    /// # Safety
    ///
    /// `raw` came from `into_raw` and is taken back once.
    #[inline]
    pub(crate) unsafe fn from_raw(raw: NonNull<u8>) -> Handle {
        Handle {
            header: raw.cast(),
            _not_send: PhantomData,
        }
    }

    #[inline]
    fn header(&self) -> &Header {
        // SAFETY: the block lives while any handle to it does.
        unsafe { self.header.as_ref() }
    }

    /// Takes the callback out to run it, or drops it, if it is still there; `flag` records why.
    #[inline]
    fn retire(&self, flag: u8, run: bool) -> bool {
        let header = self.header();
        let old = header.state.get();
        header.state.set(old | flag);
        if old & GONE != 0 {
            return false;
        }
        // SAFETY: no GONE flag was set, so the callback is in place; we set one above, so
        // nobody else (not even a re-entrant destructor) reaches it again.
        unsafe {
            if run {
                (header.vtable.call)(self.header);
            } else {
                (header.vtable.drop_callback)(self.header);
            }
        }
        true
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
            let _scope = Scope::enter(self.header().context.clone());
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
        crate::Context::from_snapshot(self.header().context.clone())
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
        let old = self.header().state.get();
        if old & CANCELLED != 0 {
            return false;
        }
        self.retire(CANCELLED, false);
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
    #[inline]
    pub fn cancelled(&self) -> bool {
        self.header().state.get() & CANCELLED != 0
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
    #[inline]
    pub fn run(&self) -> bool {
        self.retire(CONSUMED, true)
    }

    /// The callback's type name, which for a closure names the function that created it.
    ///
    /// ```
    /// let h = evloop_callbacks::Handle::new(|| ());
    /// assert!(h.callback_name().contains("{{closure}}"));
    /// ```
    pub fn callback_name(&self) -> &'static str {
        (self.header().vtable.callback_name)()
    }

    /// Where the callback was scheduled (the caller of `Handle::new` or of the loop's `call_*`).
    ///
    /// ```
    /// let h = evloop_callbacks::Handle::new(|| ());
    /// assert_eq!(h.location().line(), line!() - 1);
    /// ```
    pub fn location(&self) -> &'static Location<'static> {
        self.header().location
    }

    /// Whether two handles refer to the same scheduled callback.
    ///
    /// ```
    /// let h = evloop_callbacks::Handle::new(|| ());
    /// assert!(h.ptr_eq(&h.clone()));
    /// assert!(!h.ptr_eq(&evloop_callbacks::Handle::new(|| ())));
    /// ```
    pub fn ptr_eq(&self, other: &Handle) -> bool {
        self.header == other.header
    }

    /// Drops the callback without running it and without marking the handle cancelled: what a
    /// closing loop does to work it will never run.
    pub fn discard(&self) {
        self.retire(CONSUMED, false);
    }

    pub(crate) fn set_in_heap(&self, in_heap: bool) {
        let state = &self.header().state;
        let old = state.get();
        state.set(if in_heap {
            old | IN_HEAP
        } else {
            old & !IN_HEAP
        });
    }
}

impl Clone for Handle {
    #[inline]
    fn clone(&self) -> Handle {
        let refs = &self.header().refs;
        // As `Rc` does: a count about to wrap means leaked clones; abort rather than free early.
        let count = refs
            .get()
            .checked_add(1)
            .unwrap_or_else(|| std::process::abort());
        refs.set(count);
        Handle {
            header: self.header,
            _not_send: PhantomData,
        }
    }
}

impl Drop for Handle {
    #[inline]
    fn drop(&mut self) {
        let refs = &self.header().refs;
        let count = refs.get() - 1;
        refs.set(count);
        if count == 0 {
            self.free();
        }
    }
}

impl Handle {
    /// The last reference is gone: drop what the block holds and give the block back.
    #[inline(never)]
    fn free(&mut self) {
        /// Gives the block back when dropped, so that a callback whose destructor panics does
        /// not take its block with it.
        struct Release(NonNull<Header>);
        impl Drop for Release {
            fn drop(&mut self) {
                let header = self.0.as_ptr();
                // SAFETY: no other handle to the block exists; the context is dropped once,
                // here, and the block is released with the layout it was allocated with.
                unsafe {
                    let layout = (*header).vtable.layout;
                    std::ptr::drop_in_place(&raw mut (*header).context);
                    match layout {
                        None => pool::free(self.0.cast()),
                        Some(layout) => std::alloc::dealloc(header.cast(), layout),
                    }
                }
            }
        }
        let _release = Release(self.header);
        self.retire(CONSUMED, false);
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
    use std::rc::Rc;

    #[test]
    fn cancel_is_idempotent_and_drops_the_capture_once() {
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

    struct CountDrops(Rc<Cell<u32>>);
    impl Drop for CountDrops {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    /// Small captures take a pooled block, large or over-aligned ones their own allocation: each
    /// kind runs once, and an unrun callback is dropped once when its last handle goes.
    #[test]
    fn every_block_size_runs_once_and_drops_once() {
        #[repr(align(64))]
        struct Aligned(u8);
        let drops = Rc::new(Cell::new(0));
        let ran = Rc::new(Cell::new(0));
        let small = CountDrops(drops.clone());
        let big = ([7u64; 16], CountDrops(drops.clone()));
        let aligned = (Aligned(3), CountDrops(drops.clone()));
        let handles = [
            Handle::new({
                let ran = ran.clone();
                move || {
                    drop(small);
                    ran.set(ran.get() + 1);
                }
            }),
            Handle::new({
                let ran = ran.clone();
                move || {
                    assert_eq!(big.0.iter().sum::<u64>(), 112);
                    drop(big);
                    ran.set(ran.get() + 1);
                }
            }),
            Handle::new({
                let ran = ran.clone();
                move || {
                    assert_eq!(aligned.0.0, 3);
                    assert_eq!(std::ptr::from_ref(&aligned.0) as usize % 64, 0);
                    drop(aligned);
                    ran.set(ran.get() + 1);
                }
            }),
        ];
        for h in &handles {
            assert!(h.clone().run());
            assert!(!h.run());
        }
        assert_eq!((ran.get(), drops.get()), (3, 3));

        let unrun = [
            Handle::new({
                let guard = CountDrops(drops.clone());
                move || drop(guard)
            }),
            Handle::new({
                let guard = ([0u8; 100], CountDrops(drops.clone()));
                move || drop(guard)
            }),
        ];
        let clones = unrun.clone();
        drop(unrun);
        assert_eq!(drops.get(), 3, "alive while a clone is");
        drop(clones);
        assert_eq!(drops.get(), 5, "dropped with the last handle");
    }

    #[test]
    fn a_callback_running_its_own_handle_runs_once() {
        let cell: Rc<Cell<Option<Handle>>> = Rc::new(Cell::new(None));
        let runs = Rc::new(Cell::new(0));
        let h = Handle::new({
            let (cell, runs) = (cell.clone(), runs.clone());
            move || {
                runs.set(runs.get() + 1);
                let me = cell.take().expect("set before running");
                assert!(!me.run(), "already consumed");
                me.cancel();
            }
        });
        cell.set(Some(h.clone()));
        assert!(h.run());
        assert_eq!(runs.get(), 1);
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
