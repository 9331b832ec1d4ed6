//! A hint to the CPU to start loading a cache line that will be needed shortly.
//!
//! Work at scale walks memory in an order the allocator did not choose: a million timers fire
//! in deadline order, not in the order their handles were allocated, and a recycled block comes
//! back from wherever it was freed. Each such touch is a cache (and, on a VM, a costly TLB) miss
//! that the CPU would otherwise wait for in turn. Asking for the next few lines while the current
//! one is worked on overlaps those waits.

/// Asks for the cache line holding `ptr` (for reading and writing soon). A no-op where the
/// architecture has no such hint.
#[inline(always)]
pub(crate) fn prefetch<T>(ptr: *const T) {
    // (Miri has no cache to warm and cannot run the intrinsic.)
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: SSE is part of the x86_64 baseline, so the instruction exists; a prefetch
        // never faults and reads nothing the program can observe, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(ptr.cast::<i8>()) };
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = ptr;
}
