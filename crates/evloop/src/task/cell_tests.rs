//! The cell's state machine apart from any loop: a scheduler that only collects the queued steps,
//! which the tests then run by hand.
use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::panic::Location;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::thread::{self, ThreadId};

use super::*;
use crate::task::current;
use evloop_reactor::TaskRef;

/// Collects queued steps; `run_all` runs them in order, as a loop would.
#[derive(Clone, Default)]
struct Steps(Arc<Mutex<Vec<TaskRef>>>);

impl Schedule for Steps {
    fn schedule(&self, task: TaskRef) {
        self.0.lock().unwrap().push(task);
    }
    fn loop_id(&self) -> u64 {
        0
    }
    fn release(&self, _slot: u32, _task: *const ()) {}
}

impl Steps {
    fn queued(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn run_all(&self) {
        loop {
            let next = self.0.lock().unwrap().pop();
            match next {
                Some(task) => task.run(),
                None => break,
            }
        }
    }
}

#[track_caller]
fn spawn<F>(future: F) -> (Arc<TaskCell<F, Steps>>, Steps)
where
    F: Future + 'static,
    F::Output: 'static,
{
    let steps = Steps::default();
    let cell = TaskCell::new(future, 1, steps.clone(), Location::caller(), None);
    cell.schedule_first();
    (cell, steps)
}

#[test]
fn a_wake_after_the_task_is_done_queues_nothing() {
    let kept: Rc<RefCell<Option<Waker>>> = Rc::default();
    let slot = kept.clone();
    let (cell, steps) = spawn(poll_fn(move |cx| {
        *slot.borrow_mut() = Some(cx.waker().clone());
        Poll::Ready(5)
    }));
    steps.run_all();
    assert_eq!(cell.take_output(), Some(Ok(5)));
    let waker = kept.borrow_mut().take().unwrap();
    waker.wake_by_ref();
    waker.wake();
    assert_eq!(steps.queued(), 0);
}

#[test]
fn a_wake_from_another_thread_during_the_poll_is_not_lost() {
    let polls = Rc::new(Cell::new(0));
    let count = polls.clone();
    let (cell, steps) = spawn(poll_fn(move |cx| {
        count.set(count.get() + 1);
        if count.get() == 2 {
            return Poll::Ready(());
        }
        let waker = cx.waker().clone();
        thread::spawn(move || waker.wake()).join().unwrap();
        Poll::Pending
    }));
    steps.run_all();
    assert_eq!(
        polls.get(),
        2,
        "the wake during the first poll queued a second step"
    );
    assert_eq!(cell.status(), Status::Finished);
}

#[test]
fn a_cancel_during_the_poll_ends_the_task_at_that_step() {
    let (cell, steps) = spawn(poll_fn(|_| {
        current::current()
            .unwrap()
            .cancel(Cancelled::with_message("self"));
        Poll::<()>::Pending
    }));
    steps.run_all();
    assert_eq!(cell.status(), Status::Cancelled);
    assert_eq!(
        cell.take_output(),
        Some(Err(TaskError::Cancelled(Cancelled::with_message("self"))))
    );
}

#[test]
fn the_last_reference_released_on_another_thread_drops_nothing_there() {
    struct Witness(Arc<Mutex<Option<ThreadId>>>, #[allow(dead_code)] Rc<()>);
    impl Drop for Witness {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = Some(thread::current().id());
        }
    }
    let dropped_on = Arc::new(Mutex::new(None));
    let witness = Witness(dropped_on.clone(), Rc::new(()));
    let kept: Arc<Mutex<Option<Waker>>> = Arc::default();
    let slot = kept.clone();
    let (cell, steps) = spawn(poll_fn(move |cx| {
        let _witness = &witness; // a !Send future
        *slot.lock().unwrap() = Some(cx.waker().clone());
        Poll::<Rc<()>>::Pending
    }));
    steps.run_all();
    assert!(cell.cancel(Cancelled::new()));
    steps.run_all(); // the cancelled step drops the future here
    cell.handle_dropped(); // what the `Task` handle's drop does: the output goes too
    drop(cell);
    assert_eq!(*dropped_on.lock().unwrap(), Some(thread::current().id()));
    // Only the waker is left: the cell is freed on another thread, with nothing !Send in it.
    let waker = kept.lock().unwrap().take().unwrap();
    thread::spawn(move || drop(waker)).join().unwrap();
}

#[test]
fn a_panicking_destructor_is_caught_and_the_future_is_dropped_once() {
    struct Bomb(Arc<AtomicUsize>);
    impl Future for Bomb {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            Poll::Pending
        }
    }
    impl Drop for Bomb {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
            panic!("boom in drop");
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let (cell, steps) = spawn(Bomb(drops.clone()));
    steps.run_all();
    cell.cancel(Cancelled::new());
    steps.run_all();
    assert_eq!(cell.status(), Status::Cancelled);
    drop(cell);
    assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped exactly once");
}

#[test]
fn a_pinned_future_is_dropped_where_it_was_polled() {
    /// Records where it was pinned; its drop says whether it is still there.
    struct Pinned {
        at: Cell<usize>,
        same_place: Rc<Cell<Option<bool>>>,
    }
    impl Future for Pinned {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            self.at.set(&*self as *const Pinned as usize);
            Poll::Pending
        }
    }
    impl Drop for Pinned {
        fn drop(&mut self) {
            self.same_place
                .set(Some(self.at.get() == self as *const Pinned as usize));
        }
    }
    let same_place = Rc::new(Cell::new(None));
    let (cell, steps) = spawn(Pinned {
        at: Cell::new(0),
        same_place: same_place.clone(),
    });
    steps.run_all();
    cell.cancel(Cancelled::new());
    steps.run_all();
    assert_eq!(
        same_place.get(),
        Some(true),
        "a pinned future must not move, even to be dropped"
    );
}

#[test]
fn the_cell_of_a_task_that_sleeps_zero_fits_in_a_112_byte_chunk() {
    use crate::task::schedule::LoopRef;
    fn allocation<F: Future>(_: &F) -> usize {
        // The Arc's allocation: two counts, then the cell.
        2 * std::mem::size_of::<usize>() + std::mem::size_of::<TaskCell<F, LoopRef>>()
    }
    // glibc serves up to 104 bytes from its 112-byte chunks, up to 120 from its 128-byte ones.
    let span = if cfg!(feature = "tracing") { 40 } else { 0 };
    let bare = crate::sleep(std::time::Duration::ZERO);
    assert!(std::mem::size_of_val(&bare) <= 32);
    assert!(
        allocation(&bare) <= 104 + span,
        "{} bytes",
        allocation(&bare)
    );
    // An async block around it adds its own state.
    let wrapped = async { crate::sleep(std::time::Duration::ZERO).await };
    assert!(std::mem::size_of_val(&wrapped) <= 40);
    assert!(
        allocation(&wrapped) <= 120 + span,
        "{} bytes",
        allocation(&wrapped)
    );
}
