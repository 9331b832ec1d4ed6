//! A per-thread free list of handle blocks, so that scheduling a callback does not cost a
//! `malloc` and running it a `free`.
//!
//! Most callbacks capture a few words, so their [`Handle`](crate::Handle) fits one fixed-size
//! block. Under a burst (a million `call_soon`s before the loop runs) glibc serves such blocks
//! from its slow paths, about 230 instructions per malloc/free pair; taking a block off this list
//! and putting it back is a handful. The list keeps the blocks of the thread's peak number of live
//! handles, as glibc's own bins would, and returns them to the allocator when the thread exits.
//! Blocks freed after that (a handle outliving the thread's destructors) go straight back to the
//! allocator: every block is an ordinary allocation of [`BLOCK`], so either way is sound.

use std::alloc::Layout;
use std::cell::Cell;
use std::ptr::NonNull;

/// Size and alignment of a pooled block: a handle's 32-byte header plus a callback of up to 32
/// bytes.
pub(crate) const BLOCK: Layout = match Layout::from_size_align(64, 16) {
    Ok(layout) => layout,
    Err(_) => panic!("a valid layout"),
};

/// The first word of a block on the free list.
struct Free {
    next: *mut Free,
}

struct Pool {
    head: Cell<*mut Free>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        let mut at = self.head.replace(std::ptr::null_mut());
        while !at.is_null() {
            // SAFETY: every block on the list was allocated with `BLOCK` and is owned by the
            // list; its first word is the link, written by `free`.
            unsafe {
                let next = (*at).next;
                std::alloc::dealloc(at.cast(), BLOCK);
                at = next;
            }
        }
    }
}

thread_local! {
    static POOL: Pool = const { Pool { head: Cell::new(std::ptr::null_mut()) } };
}

/// A block of [`BLOCK`] layout: a recycled one if the thread has one.
#[inline]
pub(crate) fn alloc() -> NonNull<u8> {
    let recycled = POOL
        .try_with(|pool| {
            let head = pool.head.get();
            if head.is_null() {
                return None;
            }
            // SAFETY: `head` is a block on the list (see `free`): its first word is the link.
            pool.head.set(unsafe { (*head).next });
            NonNull::new(head.cast::<u8>())
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
    let link = block.as_ptr().cast::<Free>();
    let kept = POOL.try_with(|pool| {
        // SAFETY: the caller gives the block up; BLOCK's size and alignment hold a `Free`.
        unsafe {
            link.write(Free {
                next: pool.head.get(),
            })
        };
        pool.head.set(link);
    });
    if kept.is_err() {
        // SAFETY: the thread's list is gone; the block is an ordinary BLOCK allocation.
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
