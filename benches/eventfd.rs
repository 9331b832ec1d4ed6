//! A bare blocking eventfd, the kernel object behind the loop's waker: the floor of a
//! cross-thread round trip (two of them ping-ponging between two plain threads), shared with
//! `#[path]` by the loop-engine bench and the `measure` workloads so both floors are the same.

use std::sync::Arc;

/// A blocking eventfd, the kernel object behind the loop's waker, used bare.
#[derive(Clone)]
pub(crate) struct EventFd(Arc<OwnedFd>);

struct OwnedFd(libc::c_int);

impl Drop for OwnedFd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor and close it once.
        unsafe { libc::close(self.0) };
    }
}

impl EventFd {
    pub(crate) fn new() -> EventFd {
        // SAFETY: plain system call; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        assert!(fd >= 0, "eventfd");
        EventFd(Arc::new(OwnedFd(fd)))
    }

    pub(crate) fn write(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64.
        let n = unsafe { libc::write(self.0.0, (&raw const one).cast(), 8) };
        assert_eq!(n, 8);
    }

    pub(crate) fn read(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64; blocks until the counter is non-zero.
        let n = unsafe { libc::read(self.0.0, (&raw mut value).cast(), 8) };
        assert_eq!(n, 8);
    }
}
