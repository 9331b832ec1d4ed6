//! The ready queue: callbacks that will run in this loop iteration or the next, in FIFO order.
//!
//! Besides plain [`Handle`]s the queue carries [`TaskRef`]s: an executor's "poll this task"
//! message as one pointer and a vtable. A task woken on the loop thread is thereby queued without
//! allocating a handle for every wake-up, which is the hottest path of an async program.

use std::collections::VecDeque;
use std::fmt;
use std::ptr::NonNull;

use crate::Handle;

/// How to run and drop the object behind a [`TaskRef`].
#[derive(Debug)]
pub struct TaskRefVTable {
    /// Consumes the reference and runs the task (polls it once, for an executor's task).
    pub run: unsafe fn(NonNull<()>),
    /// Consumes the reference without running the task.
    pub drop: unsafe fn(NonNull<()>),
    /// Describes the task for reports (asyncio's task repr), without consuming the reference.
    /// Called only on the thread the reference is delivered to for running, while it is alive.
    pub describe: unsafe fn(NonNull<()>) -> String,
    /// A short name for reports, such as "Task".
    pub name: &'static str,
}

/// An owned, type-erased reference to a runnable task: a thin pointer plus a static vtable.
///
/// Dropping a `TaskRef` without running it calls the vtable's `drop`, so nothing is leaked when
/// a loop closes with tasks still queued.
///
/// ```
/// use evloop_callbacks::{TaskRef, TaskRefVTable};
/// use std::ptr::NonNull;
///
/// // A boxed closure as the task, to show the contract.
/// type Job = Box<dyn FnOnce() + Send>;
/// unsafe fn run(ptr: NonNull<()>) {
///     // SAFETY: `ptr` came from `Box::into_raw` of a `Box<Job>` in `job_ref`.
///     let job = unsafe { Box::from_raw(ptr.cast::<Job>().as_ptr()) };
///     job();
/// }
/// unsafe fn drop_job(ptr: NonNull<()>) {
///     // SAFETY: as in `run`.
///     drop(unsafe { Box::from_raw(ptr.cast::<Job>().as_ptr()) });
/// }
/// unsafe fn describe(_: NonNull<()>) -> String {
///     "<Job>".to_owned()
/// }
/// static VTABLE: TaskRefVTable = TaskRefVTable { run, drop: drop_job, describe, name: "Job" };
///
/// fn job_ref(job: Job) -> TaskRef {
///     let ptr = NonNull::from(Box::leak(Box::new(job))).cast();
///     // SAFETY: the vtable's functions expect exactly this pointer type, and a `Job` is `Send`,
///     // so running or dropping it on any thread is sound.
///     unsafe { TaskRef::from_raw(ptr, &VTABLE) }
/// }
///
/// let task = job_ref(Box::new(|| println!("polled")));
/// task.run();
/// ```
pub struct TaskRef {
    ptr: NonNull<()>,
    vtable: &'static TaskRefVTable,
}

impl TaskRef {
    /// Builds a reference from a raw pointer and the functions that consume it.
    ///
    /// # Safety
    ///
    /// `vtable.drop` must be sound to call once with `ptr` from any thread (a `TaskRef` is `Send`:
    /// a remote queue may carry it, or drop it when the loop has closed). `vtable.run` must be
    /// sound to call once with `ptr` on the thread that the reference is delivered to for running
    /// (an executor's task may require its own loop's thread: it must then only be queued on that
    /// loop, which runs it there). Nothing else may consume `ptr`.
    pub unsafe fn from_raw(ptr: NonNull<()>, vtable: &'static TaskRefVTable) -> TaskRef {
        TaskRef { ptr, vtable }
    }

    /// Takes the reference apart into what [`from_raw`](TaskRef::from_raw) took, giving up
    /// ownership: the caller must rebuild it (or otherwise consume the pointer) exactly once.
    ///
    /// Code that may panic while holding the parts holds no value with a destructor, so the
    /// compiler keeps them in registers (see `ReadyQueue`'s stored form).
    ///
    /// ```
    /// # use evloop_callbacks::{TaskRef, TaskRefVTable};
    /// # use std::ptr::NonNull;
    /// # unsafe fn nothing(_: NonNull<()>) {}
    /// # unsafe fn describe(_: NonNull<()>) -> String { String::new() }
    /// # static VTABLE: TaskRefVTable =
    /// #     TaskRefVTable { run: nothing, drop: nothing, describe, name: "Nop" };
    /// let task = unsafe { TaskRef::from_raw(NonNull::dangling(), &VTABLE) };
    /// let (ptr, vtable) = task.into_raw_parts();
    /// // SAFETY: the parts were just taken from a reference, and are rebuilt once.
    /// let task = unsafe { TaskRef::from_raw(ptr, vtable) };
    /// assert_eq!(task.name(), "Nop");
    /// ```
    #[inline]
    pub fn into_raw_parts(self) -> (NonNull<()>, &'static TaskRefVTable) {
        let this = std::mem::ManuallyDrop::new(self);
        (this.ptr, this.vtable)
    }

    /// Runs the task, consuming the reference.
    pub fn run(self) {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `from_raw`'s contract makes `run` callable once with `ptr`; ManuallyDrop keeps
        // our Drop from consuming the pointer a second time.
        unsafe { (this.vtable.run)(this.ptr) }
    }

    /// The vtable's name for this kind of task.
    pub fn name(&self) -> &'static str {
        self.vtable.name
    }

    /// The task's description for reports (the vtable's `describe`).
    pub fn describe(&self) -> String {
        // SAFETY: `from_raw`'s contract: `describe` is sound while the reference is alive, on the
        // thread it is delivered to for running, which is where the loop calls this.
        unsafe { (self.vtable.describe)(self.ptr) }
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        // SAFETY: `from_raw`'s contract; a TaskRef is consumed exactly once, by `run` or here.
        unsafe { (self.vtable.drop)(self.ptr) }
    }
}

// SAFETY: `from_raw` requires the vtable functions to be sound from any thread holding the
// reference; the pointer itself is only an opaque token.
unsafe impl Send for TaskRef {}

impl fmt::Debug for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} {:p}>", self.vtable.name, self.ptr)
    }
}

/// One entry of the ready queue.
#[derive(Debug)]
pub enum Ready {
    /// A callback scheduled with `call_soon` (or a due timer); skipped if cancelled by then.
    Handle(Handle),
    /// A task to poll.
    Task(TaskRef),
}

impl Ready {
    /// Drops the work without running it: a handle's callback is dropped even where the `Handle`
    /// is still held elsewhere, and a task reference is released.
    pub fn discard(self) {
        if let Ready::Handle(handle) = self {
            handle.discard();
        }
    }
}

/// How many entries ahead [`ReadyQueue::pop`] prefetches: enough to cover a miss while the
/// entries in between run, few enough that the line is still cached when its turn comes.
const PREFETCH_AHEAD: usize = 8;

/// A [`Ready`] as the queue stores it: the same two words without a destructor. A pushed
/// `Ready` (which has one) had to sit in memory for the unwind path of the deque's growth and
/// was copied from there with one 16-byte load of two 8-byte stores, which the CPU cannot
/// forward: every task wake-up stalled on it. The queue drops what is left in its `Drop`.
#[derive(Clone, Copy, Debug)]
enum Stored {
    Handle(NonNull<u8>),
    Task(NonNull<()>, &'static TaskRefVTable),
}

impl Stored {
    /// # Safety
    ///
    /// `self` was stored by [`push_handle`](ReadyQueue::push_handle) or
    /// [`push_task`](ReadyQueue::push_task), which gave up what it owns, and is turned back once.
    #[inline]
    unsafe fn into_ready(self) -> Ready {
        match self {
            // SAFETY: the caller's contract: the raw handle is the one `into_raw` gave up.
            Stored::Handle(raw) => Ready::Handle(unsafe { Handle::from_raw(raw) }),
            Stored::Task(ptr, vtable) => Ready::Task(TaskRef { ptr, vtable }),
        }
    }

    #[inline]
    fn prefetch(&self) {
        match *self {
            Stored::Handle(raw) => crate::prefetch::prefetch(raw.as_ptr()),
            Stored::Task(ptr, _) => crate::prefetch::prefetch(ptr.as_ptr()),
        }
    }
}

/// The FIFO of ready work (asyncio's `_ready`).
///
/// The loop runs it in batches: it notes [`len`](ReadyQueue::len) at the start of a batch and
/// pops exactly that many entries, so work queued by the batch waits for the next iteration.
///
/// ```
/// use evloop_callbacks::{Handle, Ready, ReadyQueue};
///
/// let mut queue = ReadyQueue::new();
/// queue.push_handle(Handle::new(|| print!("a ")));
/// queue.push_handle(Handle::new(|| print!("b ")));
/// let batch = queue.len();
/// for _ in 0..batch {
///     if let Some(Ready::Handle(h)) = queue.pop() {
///         h.run();
///     }
/// }
/// assert!(queue.is_empty());
/// ```
#[derive(Debug, Default)]
pub struct ReadyQueue {
    entries: VecDeque<Stored>,
}

impl ReadyQueue {
    /// An empty queue.
    pub fn new() -> ReadyQueue {
        ReadyQueue::default()
    }

    /// Appends a callback.
    #[inline]
    pub fn push_handle(&mut self, handle: Handle) {
        self.entries.push_back(Stored::Handle(handle.into_raw()));
    }

    /// Appends a task to poll.
    #[inline]
    pub fn push_task(&mut self, task: TaskRef) {
        let (ptr, vtable) = task.into_raw_parts();
        self.entries.push_back(Stored::Task(ptr, vtable));
    }

    /// Takes the oldest entry.
    #[inline]
    pub fn pop(&mut self) -> Option<Ready> {
        // A burst of entries points at blocks all over the heap: ask for the one a few turns
        // ahead while this one runs.
        if let Some(ahead) = self.entries.get(PREFETCH_AHEAD) {
            ahead.prefetch();
        }
        // SAFETY: every stored entry was pushed by push_handle / push_task and leaves the queue
        // once, here.
        self.entries
            .pop_front()
            .map(|stored| unsafe { stored.into_ready() })
    }

    /// How many entries are queued.
    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is queued.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry without running it, discarding each (see [`Ready::discard`]).
    pub fn clear(&mut self) {
        let mut all = self.take_all();
        while let Some(entry) = all.pop() {
            entry.discard();
        }
    }

    /// Takes every entry out, leaving the queue empty, for the caller to discard (with
    /// [`pop`](ReadyQueue::pop)) once it holds no borrow that a callback's destructor could need
    /// (a loop's `close()`).
    pub fn take_all(&mut self) -> ReadyQueue {
        std::mem::take(self)
    }
}

impl Drop for ReadyQueue {
    fn drop(&mut self) {
        /// Finishes the drain during the unwind if an entry's destructor panics, so the entries
        /// after it are still released, as a deque of owned entries releases them.
        struct Rest<'a>(&'a mut ReadyQueue);
        impl Drop for Rest<'_> {
            fn drop(&mut self) {
                while self.0.pop().is_some() {}
            }
        }
        let rest = Rest(self);
        while rest.0.pop().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    fn drain(queue: &mut ReadyQueue) {
        while let Some(entry) = queue.pop() {
            match entry {
                Ready::Handle(h) => {
                    h.run();
                }
                Ready::Task(t) => t.run(),
            }
        }
    }

    #[test]
    fn fifo_and_exactly_once_across_many_callbacks() {
        let n = if cfg!(miri) { 2_000 } else { 100_000 };
        let seen = Rc::new(RefCell::new(Vec::with_capacity(n)));
        let mut queue = ReadyQueue::new();
        let handles: Vec<Handle> = (0..n)
            .map(|i| {
                let seen = seen.clone();
                let h = Handle::new(move || seen.borrow_mut().push(i));
                queue.push_handle(h.clone());
                h
            })
            .collect();
        // Queue every handle a second time: a handle runs at most once however often it is queued.
        for h in &handles {
            queue.push_handle(h.clone());
        }
        drain(&mut queue);
        let seen = seen.borrow();
        assert_eq!(seen.len(), n);
        assert!(seen.iter().copied().eq(0..n));
    }

    #[test]
    fn cancelled_entries_are_skipped_and_their_captures_dropped() {
        let ran = Rc::new(Cell::new(0));
        let capture = Rc::new(());
        let mut queue = ReadyQueue::new();
        let keep = Handle::new({
            let ran = ran.clone();
            move || ran.set(ran.get() + 1)
        });
        let cancel = Handle::new({
            let ran = ran.clone();
            let capture = capture.clone();
            move || {
                drop(capture);
                ran.set(ran.get() + 100);
            }
        });
        queue.push_handle(cancel.clone());
        queue.push_handle(keep);
        cancel.cancel();
        assert_eq!(Rc::strong_count(&capture), 1);
        drain(&mut queue);
        assert_eq!(ran.get(), 1);
    }

    struct Counter {
        runs: Rc<Cell<u32>>,
        drops: Rc<Cell<u32>>,
    }
    unsafe fn run_counter(ptr: NonNull<()>) {
        // SAFETY: made by `counter_ref` from a Box<Counter>.
        let c = unsafe { Box::from_raw(ptr.cast::<Counter>().as_ptr()) };
        c.runs.set(c.runs.get() + 1);
        c.drops.set(c.drops.get() + 1);
    }
    unsafe fn drop_counter(ptr: NonNull<()>) {
        // SAFETY: made by `counter_ref` from a Box<Counter>.
        let c = unsafe { Box::from_raw(ptr.cast::<Counter>().as_ptr()) };
        c.drops.set(c.drops.get() + 1);
    }
    static COUNTER_VTABLE: TaskRefVTable = TaskRefVTable {
        run: run_counter,
        drop: drop_counter,
        describe: describe_counter,
        name: "Counter",
    };
    unsafe fn describe_counter(_: NonNull<()>) -> String {
        "<Counter>".to_owned()
    }
    fn counter_ref(runs: &Rc<Cell<u32>>, drops: &Rc<Cell<u32>>) -> TaskRef {
        let boxed = Box::new(Counter {
            runs: runs.clone(),
            drops: drops.clone(),
        });
        // SAFETY: the vtable consumes exactly a Box<Counter>; the test stays on one thread.
        unsafe { TaskRef::from_raw(NonNull::from(Box::leak(boxed)).cast(), &COUNTER_VTABLE) }
    }

    #[test]
    fn task_refs_run_once_or_are_dropped_once() {
        let runs = Rc::new(Cell::new(0));
        let drops = Rc::new(Cell::new(0));
        let mut queue = ReadyQueue::new();
        queue.push_task(counter_ref(&runs, &drops));
        queue.push_task(counter_ref(&runs, &drops));
        let Some(Ready::Task(first)) = queue.pop() else {
            panic!("expected a task")
        };
        assert_eq!(first.name(), "Counter");
        first.run();
        queue.clear();
        assert_eq!((runs.get(), drops.get()), (1, 2));
    }

    /// The queue stores entries without their destructors: dropping it must release what
    /// they own, once, and taking its entries out must move them, not copy them.
    #[test]
    fn dropping_the_queue_or_what_take_all_took_releases_every_entry_once() {
        let runs = Rc::new(Cell::new(0));
        let drops = Rc::new(Cell::new(0));
        let captured = Rc::new(());
        let mut queue = ReadyQueue::new();
        for _ in 0..3 {
            queue.push_task(counter_ref(&runs, &drops));
            let captured = captured.clone();
            queue.push_handle(Handle::new(move || drop(captured)));
        }
        let taken = queue.take_all();
        assert!(queue.is_empty());
        assert_eq!(taken.len(), 6);
        queue.push_task(counter_ref(&runs, &drops));
        drop(taken);
        assert_eq!((drops.get(), Rc::strong_count(&captured)), (3, 1));
        drop(queue);
        assert_eq!((runs.get(), drops.get()), (0, 4));
    }

    #[test]
    fn entries_after_one_whose_destructor_panics_are_still_released() {
        struct PanicsOnDrop;
        impl Drop for PanicsOnDrop {
            fn drop(&mut self) {
                panic!("a destructor panics");
            }
        }
        let captured = Rc::new(());
        let mut queue = ReadyQueue::new();
        let bomb = PanicsOnDrop;
        queue.push_handle(Handle::new(move || drop(bomb)));
        for _ in 0..3 {
            let captured = captured.clone();
            queue.push_handle(Handle::new(move || drop(captured)));
        }
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(queue)));
        assert!(dropped.is_err(), "the destructor's panic comes through");
        assert_eq!(
            Rc::strong_count(&captured),
            1,
            "the other entries were released"
        );
    }

    #[test]
    fn interleaves_handles_and_tasks_in_push_order() {
        let order = Rc::new(RefCell::new(String::new()));
        let runs = Rc::new(Cell::new(0));
        let drops = Rc::new(Cell::new(0));
        let mut queue = ReadyQueue::new();
        queue.push_handle(Handle::new({
            let order = order.clone();
            move || order.borrow_mut().push('a')
        }));
        queue.push_task(counter_ref(&runs, &drops));
        queue.push_handle(Handle::new({
            let order = order.clone();
            let runs = runs.clone();
            move || {
                assert_eq!(runs.get(), 1, "the task ran before this callback");
                order.borrow_mut().push('c');
            }
        }));
        drain(&mut queue);
        assert_eq!(*order.borrow(), "ac");
    }
}
