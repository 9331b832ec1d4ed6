//! Per-loop extensions: typed state the layers above attach to a loop (the facade's task
//! registry, its default executor) without this crate knowing their types.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::rc::Rc;

use super::EventLoop;

/// A hasher for `TypeId` keys, which are already hashes: the extension lookup is on the path of
/// every task spawn, and SipHash would be most of its cost.
#[derive(Default)]
pub(super) struct TypeIdHasher(u64);

impl std::hash::Hasher for TypeIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not the path `TypeId` takes today; a plain FNV-1a keeps any other encoding correct.
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 ^= value;
    }
}

pub(super) type Extensions =
    HashMap<TypeId, Rc<dyn Any>, std::hash::BuildHasherDefault<TypeIdHasher>>;

impl EventLoop {
    /// Per-loop state of type `T`, created with `T::default()` on first use.
    ///
    /// This is how the layers above attach their own state (a task registry, a default executor)
    /// to a loop without this crate knowing their types.
    ///
    /// ```
    /// use std::cell::Cell;
    /// let lp = evloop_reactor::EventLoop::new().unwrap();
    /// lp.extension::<Cell<u32>>().set(7);
    /// assert_eq!(lp.extension::<Cell<u32>>().get(), 7);
    /// ```
    pub fn extension<T: Default + 'static>(&self) -> Rc<T> {
        let key = TypeId::of::<T>();
        if let Some(found) = self.inner.extensions.borrow().get(&key) {
            return found.clone().downcast::<T>().expect("keyed by TypeId");
        }
        let value: Rc<T> = Rc::new(T::default());
        self.inner
            .extensions
            .borrow_mut()
            .insert(key, value.clone() as Rc<dyn Any>);
        value
    }
}
