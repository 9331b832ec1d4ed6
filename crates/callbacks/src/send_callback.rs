//! A `FnOnce() + Send` that carries small closures inline: what `call_soon_threadsafe` sends.
//!
//! A callback crossing threads used to be a `Box<dyn FnOnce() + Send>`: a `malloc` on the
//! sending thread and a `free` on the loop's, on every round trip, and glibc makes a block freed
//! by another thread expensive for its owner. Closures of up to three words (a channel, an `Arc`,
//! a few values: nearly all of them) travel inside the queue entry instead; bigger ones are still
//! boxed.

use std::fmt;
use std::mem::{MaybeUninit, align_of, size_of};

/// Inline storage: three words.
type Storage = MaybeUninit<[usize; 3]>;

struct VTable {
    /// Moves the closure out of the storage and calls it.
    call: unsafe fn(*mut Storage),
    /// Drops the closure in place.
    drop: unsafe fn(*mut Storage),
}

/// How a closure of type `F` is held: inline when it fits, else as a `Box<F>` (one word).
struct Held<F>(F);

impl<F: FnOnce() + Send + 'static> Held<F> {
    const INLINE: bool =
        size_of::<F>() <= size_of::<Storage>() && align_of::<F>() <= align_of::<Storage>();

    const VTABLE: VTable = VTable {
        call: Held::<F>::call,
        drop: Held::<F>::drop,
    };

    /// # Safety
    ///
    /// `storage` holds an `F` (inline) or a `Box<F>`, written by `SendCallback::new`, used
    /// exactly once from here on.
    unsafe fn call(storage: *mut Storage) {
        if Self::INLINE {
            // SAFETY: per the contract, an `F` is stored inline.
            let f = unsafe { storage.cast::<F>().read() };
            f();
        } else {
            // SAFETY: per the contract, a `Box<F>` is stored.
            let f = unsafe { storage.cast::<Box<F>>().read() };
            f();
        }
    }

    /// # Safety
    ///
    /// As for [`call`](Held::call).
    unsafe fn drop(storage: *mut Storage) {
        // SAFETY: per the contract, the stored value is of the type read here.
        unsafe {
            if Self::INLINE {
                storage.cast::<F>().drop_in_place();
            } else {
                storage.cast::<Box<F>>().drop_in_place();
            }
        }
    }
}

/// A `FnOnce() + Send + 'static` in four words, with no allocation when the closure is at most
/// three words.
///
/// ```
/// use evloop_callbacks::SendCallback;
/// use std::sync::mpsc;
///
/// let (tx, rx) = mpsc::channel();
/// let callback = SendCallback::new(move || tx.send(42).unwrap());
/// std::thread::spawn(move || callback.call()).join().unwrap();
/// assert_eq!(rx.recv().unwrap(), 42);
/// ```
pub struct SendCallback {
    storage: Storage,
    vtable: &'static VTable,
}

// SAFETY: `new` only accepts `Send` closures, and the storage holds nothing else.
unsafe impl Send for SendCallback {}

impl SendCallback {
    /// Wraps `f`, inline if it is small enough, boxed otherwise.
    #[inline]
    pub fn new<F: FnOnce() + Send + 'static>(f: F) -> SendCallback {
        let mut storage = Storage::uninit();
        let at = storage.as_mut_ptr();
        if Held::<F>::INLINE {
            // SAFETY: INLINE checked that an `F` fits the storage's size and alignment.
            unsafe { at.cast::<F>().write(f) };
        } else {
            // SAFETY: a `Box<F>` is one pointer, which fits three words.
            unsafe { at.cast::<Box<F>>().write(Box::new(f)) };
        }
        SendCallback {
            storage,
            vtable: &Held::<F>::VTABLE,
        }
    }

    /// Calls the closure, consuming it.
    #[inline]
    pub fn call(self) {
        let mut this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the storage holds what `new` wrote for this vtable; ManuallyDrop keeps our
        // Drop from using it a second time.
        unsafe { (this.vtable.call)(this.storage.as_mut_ptr().cast()) }
    }
}

impl Drop for SendCallback {
    fn drop(&mut self) {
        // SAFETY: the storage holds what `new` wrote for this vtable, not yet consumed (`call`
        // skips this drop).
        unsafe { (self.vtable.drop)(self.storage.as_mut_ptr().cast()) }
    }
}

impl fmt::Debug for SendCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendCallback")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct CountDrops(Arc<AtomicUsize>);
    impl Drop for CountDrops {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Small closures (inline) and big ones (boxed) each run once or drop once, on any thread.
    #[test]
    fn inline_and_boxed_closures_run_or_drop_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let ran = Arc::new(AtomicUsize::new(0));
        let small = {
            let (guard, ran) = (CountDrops(drops.clone()), ran.clone());
            SendCallback::new(move || {
                drop(guard);
                ran.fetch_add(1, Ordering::Relaxed);
            })
        };
        let big = {
            let (guard, ran) = (([9u64; 8], CountDrops(drops.clone())), ran.clone());
            SendCallback::new(move || {
                assert_eq!(guard.0.iter().sum::<u64>(), 72);
                drop(guard);
                ran.fetch_add(1, Ordering::Relaxed);
            })
        };
        const { assert!(Held::<fn()>::INLINE) };
        std::thread::spawn(move || {
            small.call();
            big.call();
        })
        .join()
        .unwrap();
        assert_eq!(ran.load(Ordering::Relaxed), 2);
        assert_eq!(drops.load(Ordering::Relaxed), 2);

        let unrun_small = SendCallback::new({
            let guard = CountDrops(drops.clone());
            move || drop(guard)
        });
        let unrun_big = SendCallback::new({
            let guard = ([0u8; 64], CountDrops(drops.clone()));
            move || drop(guard)
        });
        drop((unrun_small, unrun_big));
        assert_eq!(drops.load(Ordering::Relaxed), 4);
        assert_eq!(ran.load(Ordering::Relaxed), 2);
    }
}
