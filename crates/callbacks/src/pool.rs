//! A per-thread stack of free handle blocks, so that scheduling a callback does not cost a
//! `malloc` and running it a `free`.
//!
//! Most callbacks capture a few words, so their [`Handle`](crate::Handle) fits one fixed-size
//! block. Under a burst (a million `call_soon`s before the loop runs) glibc serves such blocks
//! from its slow paths, about 230 instructions per malloc/free pair; taking a block off this stack
//! and putting it back is a handful. The stack keeps the blocks of the thread's peak number of
//! live handles, as glibc's own bins would, and returns them to the allocator when the thread
//! exits. Blocks freed after that (a handle outliving the thread's destructors) go straight back
//! to the allocator: every block is an ordinary allocation of [`BLOCK`], so either way is sound.

use std::alloc::Layout;
use std::cell::UnsafeCell;
use std::ptr::NonNull;

use crate::prefetch::prefetch;

/// Size and alignment of a pooled block: a handle's 32-byte header plus a callback of up to 32
/// bytes.
pub(crate) const BLOCK: Layout = match Layout::from_size_align(64, 16) {
    Ok(layout) => layout,
    Err(_) => panic!("a valid layout"),
};

/// How many blocks ahead of the one handed out [`alloc`] prefetches.
const PREFETCH_AHEAD: usize = 4;

/// The free blocks, as a stack of pointers rather than a list threaded through the blocks: the
/// blocks come back in the order they were freed, scattered over the heap, and a stack lets
/// `alloc` ask for the block it will hand out a few calls from now instead of waiting for each in
/// turn.
struct Pool {
    free: UnsafeCell<Vec<NonNull<u8>>>,
}

impl Pool {
    /// # Safety
    ///
    /// No other reference to the stack may be alive: the callers below run no code that could
    /// come back to the pool while they hold it.
    #[allow(clippy::mut_from_ref)]
    unsafe fn stack(&self) -> &mut Vec<NonNull<u8>> {
        // SAFETY: the caller's exclusivity, on the pool's own thread.
        unsafe { &mut *self.free.get() }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for block in self.free.get_mut().drain(..) {
            // SAFETY: every block on the stack was allocated with `BLOCK` and is owned by it.
            unsafe { std::alloc::dealloc(block.as_ptr(), BLOCK) };
        }
    }
}

thread_local! {
    static POOL: Pool = const { Pool { free: UnsafeCell::new(Vec::new()) } };
}

/// A block of [`BLOCK`] layout: a recycled one if the thread has one.
#[inline]
pub(crate) fn alloc() -> NonNull<u8> {
    let recycled = POOL
        .try_with(|pool| {
            // SAFETY: nothing below reaches the pool again.
            let stack = unsafe { pool.stack() };
            let block = stack.pop()?;
            if let Some(ahead) = stack.len().checked_sub(PREFETCH_AHEAD) {
                prefetch(stack[ahead].as_ptr());
            }
            Some(block)
        })
        .ok()
        .flatten();
    recycled.unwrap_or_else(fresh)
}

#[cold]
fn fresh() -> NonNull<u8> {
    // SAFETY: BLOCK has a non-zero size.
    let ptr = unsafe { std::alloc::alloc(BLOCK) };
    NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(BLOCK))
}

/// Gives a block back.
///
/// # Safety
///
/// `block` came from [`alloc`] (on any thread) and nothing uses it any more.
#[inline]
pub(crate) unsafe fn free(block: NonNull<u8>) {
    let kept = POOL.try_with(|pool| {
        // SAFETY: nothing below reaches the pool again (growing the stack calls the global
        // allocator, never a handle).
        unsafe { pool.stack() }.push(block);
    });
    if kept.is_err() {
        // SAFETY: the thread's pool is gone; the block is an ordinary BLOCK allocation.
        unsafe { std::alloc::dealloc(block.as_ptr(), BLOCK) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_block_is_reused_first() {
        let a = alloc();
        // SAFETY: `a` came from `alloc` and is not used afterwards.
        unsafe { free(a) };
        let b = alloc();
        assert_eq!(a, b);
        // SAFETY: as above.
        unsafe { free(b) };
    }

    #[test]
    fn blocks_freed_on_another_thread_stay_sound() {
        let blocks: Vec<usize> = (0..100).map(|_| alloc().as_ptr() as usize).collect();
        std::thread::spawn(move || {
            for block in blocks {
                // SAFETY: each came from `alloc` and is used by nobody else.
                unsafe { free(NonNull::new(block as *mut u8).unwrap()) };
            }
        })
        .join()
        .unwrap();
    }
}
