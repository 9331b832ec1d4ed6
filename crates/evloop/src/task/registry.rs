//! A loop's task host: its shared scheduler and its registry of live tasks, for `all_tasks()`,
//! `run()`'s shutdown, and dropping every live future on the loop thread when the loop closes.
//!
//! The registry is a slab: a task takes a slot at spawn and gives it back when it ends (from its
//! last step, see `step.rs`), so a finished task is referenced only by its own handles and is
//! freed with the last of them, never kept until some later sweep.
//!
//! The host is a loop extension, but spawning must not pay for a `TypeId`-keyed lookup each
//! time: the host last used on this thread is cached in a thread-local with its loop's id, so
//! `create_task` on the running loop costs one thread-local read and a `Weak` upgrade. The cache
//! holds a `Weak`, so it never keeps a loop's tasks alive past the loop.

use std::cell::{OnceCell, RefCell};
use std::ptr::NonNull;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use evloop_reactor::EventLoop;

use crate::error::Cancelled;
use crate::task::cell::{Status, TaskObject};
use crate::task::schedule::{LoopRef, LoopSchedule};

thread_local! {
    /// The host last used on this thread, and its loop's id (0: none).
    static CACHED: RefCell<(u64, Weak<TaskHost>)> = const { RefCell::new((0, Weak::new())) };
}

#[derive(Default)]
pub(crate) struct TaskHost {
    /// The loop's scheduler, shared by all its tasks (set when the host is first looked up).
    schedule: OnceCell<LoopRef>,
    tasks: RefCell<Slab>,
}

/// Live tasks by slot; the free slots form a list threaded through the entries (a free slot
/// costs nothing beyond the entry it already is: the enum is the size of the pointer).
struct Slab {
    entries: Vec<Slot>,
    /// The first free slot, or [`NO_SLOT`].
    free_head: u32,
    live: usize,
}

/// A registry entry. A live one owns one count of its task's `Arc`, held as a raw pointer so
/// that the entry has no destructor: an `Arc` being filed is then never kept in memory for an
/// unwind path and copied out of it with a load the CPU cannot forward from the two stores that
/// put it there (a stall on every spawn). The slab's `Drop` releases what is left.
enum Slot {
    Live(NonNull<dyn TaskObject>),
    /// A free slot and the next free one ([`NO_SLOT`] at the end of the list).
    Free(u32),
}

impl Slot {
    fn live(task: Arc<dyn TaskObject>) -> Slot {
        // SAFETY: an Arc's pointer is never null.
        Slot::Live(unsafe { NonNull::new_unchecked(Arc::into_raw(task).cast_mut()) })
    }

    /// The task's `Arc`, taking over the entry's count.
    fn into_task(self) -> Option<Arc<dyn TaskObject>> {
        match self {
            // SAFETY: a live entry owns one count of the Arc its pointer came from (`live`).
            Slot::Live(task) => Some(unsafe { Arc::from_raw(task.as_ptr().cast_const()) }),
            Slot::Free(_) => None,
        }
    }

    /// A new `Arc` of a live entry's task (the entry keeps its own).
    fn task(&self) -> Option<Arc<dyn TaskObject>> {
        match self {
            Slot::Live(task) => {
                let task = task.as_ptr().cast_const();
                // SAFETY: the entry's count keeps the Arc alive; the new count is the clone's.
                unsafe {
                    Arc::increment_strong_count(task);
                    Some(Arc::from_raw(task))
                }
            }
            Slot::Free(_) => None,
        }
    }

    /// A live entry's task, borrowed from the entry.
    fn get(&self) -> Option<&dyn TaskObject> {
        match self {
            // SAFETY: the entry's count keeps the task alive while the entry is borrowed.
            Slot::Live(task) => Some(unsafe { task.as_ref() }),
            Slot::Free(_) => None,
        }
    }

    fn holds(&self, task: *const ()) -> bool {
        matches!(self, Slot::Live(t) if t.as_ptr().cast::<()>().cast_const() == task)
    }
}

const NO_SLOT: u32 = u32::MAX;

impl Default for Slab {
    fn default() -> Slab {
        Slab {
            entries: Vec::new(),
            free_head: NO_SLOT,
            live: 0,
        }
    }
}

impl Slab {
    /// Empties the slab, handing over its counts: the live tasks, collected first, so that one
    /// task's panicking destructor still lets the rest go when the caller drops them.
    fn take_live(&mut self) -> Vec<Arc<dyn TaskObject>> {
        self.free_head = NO_SLOT;
        self.live = 0;
        std::mem::take(&mut self.entries)
            .into_iter()
            .filter_map(Slot::into_task)
            .collect()
    }
}

impl Drop for Slab {
    fn drop(&mut self) {
        drop(self.take_live());
    }
}

/// The cached host of loop `loop_id`, if that is the one cached.
#[inline]
fn cached(loop_id: u64) -> Option<Rc<TaskHost>> {
    CACHED.with(|cached| {
        let cached = cached.borrow();
        if cached.0 == loop_id {
            cached.1.upgrade()
        } else {
            None
        }
    })
}

impl TaskHost {
    /// `lp`'s host.
    #[inline]
    pub(crate) fn of(lp: &EventLoop) -> Rc<TaskHost> {
        cached(lp.id()).unwrap_or_else(|| TaskHost::look_up(lp))
    }

    /// The running loop's host, if a loop runs on this thread.
    #[inline]
    pub(crate) fn running() -> Option<Rc<TaskHost>> {
        let id = EventLoop::running_id();
        if id == 0 {
            return None;
        }
        cached(id).or_else(|| EventLoop::with_running(|lp| lp.map(TaskHost::look_up)))
    }

    /// The slow path: the loop's extension, set up on first use, then cached.
    #[cold]
    fn look_up(lp: &EventLoop) -> Rc<TaskHost> {
        let host = lp.extension::<TaskHost>();
        if host.schedule.get().is_none() {
            let _ = host.schedule.set(Arc::new(LoopSchedule::new(lp)));
            let weak = Rc::downgrade(&host);
            lp.on_close(move || {
                if let Some(host) = weak.upgrade() {
                    host.abandon_all();
                }
            });
        }
        CACHED.with(|cached| *cached.borrow_mut() = (lp.id(), Rc::downgrade(&host)));
        host
    }

    /// The loop's scheduler, for a new task.
    pub(crate) fn schedule(&self) -> LoopRef {
        self.schedule.get().expect("set by look_up").clone()
    }

    /// Registers a new task; returns its slot.
    pub(crate) fn add(&self, task: Arc<dyn TaskObject>) -> u32 {
        let task = Slot::live(task);
        let Ok(mut tasks) = self.tasks.try_borrow_mut() else {
            drop(task.into_task());
            panic!("the task registry is already borrowed");
        };
        let head = tasks.free_head;
        if head == NO_SLOT {
            let Some(slot) = u32::try_from(tasks.entries.len())
                .ok()
                .filter(|&slot| slot != NO_SLOT)
            else {
                drop(tasks);
                drop(task.into_task());
                panic!("fewer than 2^32 - 1 live tasks");
            };
            tasks.entries.push(task);
            tasks.live += 1;
            return slot;
        }
        match std::mem::replace(&mut tasks.entries[head as usize], task) {
            Slot::Free(next) => tasks.free_head = next,
            Slot::Live(_) => unreachable!("the free list holds only free slots"),
        }
        tasks.live += 1;
        head
    }

    /// Lets go of the task at address `task` in `slot`, if it is still there (the registry may
    /// have been emptied by the loop's close since).
    fn remove(&self, slot: u32, task: *const ()) {
        let removed = {
            let mut tasks = self.tasks.borrow_mut();
            let tasks = &mut *tasks;
            match tasks.entries.get_mut(slot as usize) {
                Some(entry) if entry.holds(task) => {
                    let removed = std::mem::replace(entry, Slot::Free(tasks.free_head));
                    tasks.free_head = slot;
                    tasks.live -= 1;
                    if tasks.live == 0 {
                        // Every task ended: start over at slot 0 (keeping the buffer, as the
                        // ready queue does, for the next run's tasks).
                        tasks.free_head = NO_SLOT;
                        tasks.entries.clear();
                    }
                    Some(removed)
                }
                _ => None,
            }
        };
        // Released with no borrow held (the step that ended the task still holds a reference,
        // so this never frees the cell here).
        drop(removed.and_then(Slot::into_task));
    }

    /// The tasks that are not done, in creation order.
    pub(crate) fn pending(&self) -> Vec<Arc<dyn TaskObject>> {
        let mut pending: Vec<_> = self
            .tasks
            .borrow()
            .entries
            .iter()
            .filter(|slot| slot.get().is_some_and(|t| t.status() == Status::Pending))
            .filter_map(Slot::task)
            .collect();
        pending.sort_unstable_by_key(|t| t.id());
        pending
    }

    /// Drops every live future, on this (the loop's) thread.
    fn abandon_all(&self) {
        // Take the slab out first: a future's destructor may create or cancel tasks.
        loop {
            let mut tasks = self.tasks.borrow_mut().take_live();
            if tasks.is_empty() {
                break;
            }
            tasks.sort_unstable_by_key(|t| t.id());
            for task in tasks {
                task.abandon(Cancelled::with_message("Event loop is closed"));
            }
        }
    }
}

/// A task of loop `loop_id` ended (see [`Schedule::release`](crate::task::schedule::Schedule)).
/// Tasks end in their loop's steps, so the host is the cached (or running) one; a loop closing
/// has already emptied its registry, and then there is nothing to release.
#[inline]
pub(crate) fn release(loop_id: u64, slot: u32, task: *const ()) {
    let host = cached(loop_id).or_else(|| {
        EventLoop::with_running(|lp| lp.filter(|lp| lp.id() == loop_id).map(TaskHost::look_up))
    });
    if let Some(host) = host {
        host.remove(slot, task);
    }
}

impl Drop for TaskHost {
    fn drop(&mut self) {
        // A loop dropped without close(): its live futures still go on this thread.
        self.abandon_all();
    }
}
