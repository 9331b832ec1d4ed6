//! The synchronization primitives of the cross-thread queue, from loom under `cfg(loom)`.
//!
//! The loom model tests (`cargo xtask loom`) build this crate with `--cfg loom`, so the real
//! `RemoteQueue` code runs on loom's mutex and atomics and the model explores its interleavings;
//! every other build uses std's.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};
