//! The worker thread's loop: find a job, run it, sleep when there is none.
//!
//! Search order: the worker's own deque, then a batch from the global injector (taking a few at
//! once keeps submitters and workers from contending on the injector for every job), then the
//! other workers' deques. A worker declares itself idle *before* completing a job's future when
//! the queues look empty, so a caller that submits again as soon as it wakes finds this worker
//! idle and reuses it (sequential submit-and-wait runs on one thread, as Python's pool does).

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{Ordering, fence};
use std::sync::{Arc, MutexGuard};
use std::thread;

use crossbeam_deque::{Steal, Worker};

use crate::job::{QueuedJob, panic_message};
use crate::pool::{Lifecycle, PoolShared};
use crate::sleep::Woken;

/// How many jobs a worker moves from the injector to its own deque at once.
const BATCH: usize = 4;

/// How many times an idle worker yields its time slice, looking for work, before it sleeps.
/// Measured: 16 rounds are too short for a caller that goes through an async runtime's park
/// and unpark between jobs (12 µs per job instead of 5 µs); 64 rounds cost an idle transition
/// some tens of microseconds of CPU at most, once, and then the worker sleeps.
const YIELD_ROUNDS: usize = 64;

thread_local! {
    /// The pool (by address) and slot this thread works for, if it is a pool worker.
    static CURRENT: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// The slot of the current thread if it is a worker of `shared`.
pub(crate) fn current_slot(shared: &PoolShared) -> Option<usize> {
    let (pool, slot) = CURRENT.with(Cell::get);
    (pool == shared as *const PoolShared as usize).then_some(slot)
}

/// The body of a worker thread living in `slot`; `first` is the job its submit handed it.
pub(crate) fn run(shared: Arc<PoolShared>, slot: usize, first: Option<QueuedJob>) {
    CURRENT.with(|current| current.set((Arc::as_ptr(&shared) as usize, slot)));
    let deque = shared.slots[slot]
        .deque
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .expect("a slot's deque is free while no thread runs in it");

    let initialized = match &shared.initializer {
        None => Ok(()),
        Some(init) => catch_unwind(AssertUnwindSafe(|| init()))
            .unwrap_or_else(|payload| Err(panic_message(payload))),
    };
    let lifecycle = match initialized {
        Ok(()) => work(&shared, &deque, slot, first),
        Err(why) => {
            if let Some(job) = first {
                job.fail(crate::JobError::BrokenPool);
            }
            shared.break_pool(&why);
            shared.lock()
        }
    };
    exit(&shared, deque, slot, lifecycle);
}

/// Gives the slot back. The caller holds the lifecycle lock, so no submit can decide on the
/// thread count between our last look at the queues and the moment we stop counting.
fn exit(
    shared: &PoolShared,
    deque: Worker<QueuedJob>,
    slot: usize,
    mut lifecycle: MutexGuard<'_, Lifecycle>,
) {
    *shared.slots[slot]
        .deque
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(deque);
    shared.worker_exited(&mut lifecycle, slot);
}

/// Runs jobs until the pool terminates (and the queues are empty) or keep-alive retires us;
/// returns holding the lifecycle lock.
fn work<'a>(
    shared: &'a PoolShared,
    deque: &Worker<QueuedJob>,
    slot: usize,
    mut first: Option<QueuedJob>,
) -> MutexGuard<'a, Lifecycle> {
    let declared = Cell::new(false);
    let declare = || {
        shared.sleep.declare_idle();
        declared.set(true);
        // Pairs with the fence after a submitter's push (see `sleep`): from here on, either we
        // see its job or it sees us declared.
        fence(Ordering::SeqCst);
    };
    loop {
        // Read before searching: a job pushed before termination is then visible to the search.
        let terminating = shared.terminate.load(Ordering::SeqCst);
        if let Some(job) = first.take().or_else(|| find_job(shared, deque, slot)) {
            if declared.replace(false) {
                shared.sleep.undeclare();
            }
            // Jobs catch their own panics; this guards against a panicking waker or drop.
            let _ = catch_unwind(AssertUnwindSafe(|| {
                job.run(&mut || {
                    if deque.is_empty() && shared.injector.is_empty() {
                        declare();
                    }
                });
            }));
            continue;
        }
        if !declared.get() {
            declare();
            continue;
        }
        if terminating {
            shared.sleep.leave();
            return shared.lock();
        }
        // Before blocking, give the time slice away a few times (rayon-core does the same): in
        // a burst the next job usually arrives within a few microseconds, and catching it awake
        // saves the submitter a futex wake and us a futex wait. This is bounded; then we sleep.
        if (0..YIELD_ROUNDS).any(|_| {
            thread::yield_now();
            shared.has_work() || shared.terminate.load(Ordering::Relaxed)
        }) {
            continue;
        }
        match shared.sleep.wait(&shared.terminate, shared.keep_alive) {
            Woken::Token => declared.set(false),
            Woken::Terminate => {}
            Woken::TimedOut => {
                if !shared.sleep.try_undeclare() {
                    // A submitter claimed us meanwhile; its token is coming.
                    continue;
                }
                declared.set(false);
                // Decide under the lifecycle lock, which submit holds while pushing: either the
                // job is visible here, or the submit sees one thread fewer and starts another.
                let lifecycle = shared.lock();
                if !shared.has_work() && !shared.terminate.load(Ordering::SeqCst) {
                    return lifecycle;
                }
            }
        }
    }
}

/// The next job for this worker, if any queue has one.
fn find_job(shared: &PoolShared, deque: &Worker<QueuedJob>, slot: usize) -> Option<QueuedJob> {
    if let Some(job) = deque.pop() {
        return Some(job);
    }
    loop {
        let mut retry = false;
        match shared.injector.steal_batch_with_limit_and_pop(deque, BATCH) {
            Steal::Success(job) => return Some(job),
            Steal::Empty => {}
            Steal::Retry => retry = true,
        }
        for (other, victim) in shared.slots.iter().enumerate() {
            if other == slot {
                continue;
            }
            match victim.stealer.steal() {
                Steal::Success(job) => return Some(job),
                Steal::Empty => {}
                Steal::Retry => retry = true,
            }
        }
        if !retry {
            return None;
        }
    }
}
