//! A minimal single-threaded executor on the reactor's loop, for this crate's tests: the facade's
//! tasks do not exist here, and evloop-test-support cannot drive this crate's loop without
//! depending on it (see its README). The rest of the shared helpers come from there.

#![allow(dead_code, unreachable_pub)]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use evloop_reactor::{EventLoop, RemoteHandle};

type BoxFuture = Pin<Box<dyn Future<Output = ()>>>;

thread_local! {
    static TASKS: RefCell<HashMap<usize, Rc<RefCell<Option<BoxFuture>>>>> = RefCell::new(HashMap::new());
    static NEXT: Cell<usize> = const { Cell::new(1) };
}

struct TaskWaker {
    id: usize,
    remote: RemoteHandle,
    scheduled: AtomicBool,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            let me = self.clone();
            let _ = self.remote.call_soon_threadsafe(move || poll_task(&me));
        }
    }
}

fn poll_task(waker: &Arc<TaskWaker>) {
    waker.scheduled.store(false, Ordering::Release);
    let Some(slot) = TASKS.with(|t| t.borrow().get(&waker.id).cloned()) else {
        return;
    };
    let mut fut = slot.borrow_mut();
    let Some(f) = fut.as_mut() else { return };
    let w = Waker::from(waker.clone());
    if f.as_mut().poll(&mut Context::from_waker(&w)).is_ready() {
        *fut = None;
        drop(fut);
        TASKS.with(|t| t.borrow_mut().remove(&waker.id));
    }
}

/// The result slot of a spawned future.
pub struct JoinHandle<T>(Rc<RefCell<Option<T>>>);

impl<T> JoinHandle<T> {
    pub fn take(&self) -> Option<T> {
        self.0.borrow_mut().take()
    }
    pub fn is_done(&self) -> bool {
        self.0.borrow().is_some()
    }
}

/// Spawns `fut` on `lp` (polled first on the next iteration).
pub fn spawn<T: 'static>(lp: &EventLoop, fut: impl Future<Output = T> + 'static) -> JoinHandle<T> {
    let out = Rc::new(RefCell::new(None));
    let slot = out.clone();
    let id = NEXT.with(|n| {
        let id = n.get();
        n.set(id + 1);
        id
    });
    let boxed: BoxFuture = Box::pin(async move {
        let value = fut.await;
        *slot.borrow_mut() = Some(value);
    });
    TASKS.with(|t| {
        t.borrow_mut()
            .insert(id, Rc::new(RefCell::new(Some(boxed))))
    });
    let waker = Arc::new(TaskWaker {
        id,
        remote: lp.remote(),
        scheduled: AtomicBool::new(false),
    });
    waker.wake_by_ref();
    JoinHandle(out)
}

/// Runs `lp` until `fut` completes and returns its output.
pub fn block_on<T: 'static>(lp: &EventLoop, fut: impl Future<Output = T> + 'static) -> T {
    let stopper = lp.clone();
    let handle = spawn(lp, async move {
        let value = fut.await;
        stopper.stop();
        value
    });
    lp.run_forever().unwrap();
    handle
        .take()
        .expect("the loop stopped before the future completed")
}

/// Waits `delay` on the loop's clock.
pub async fn sleep(delay: Duration) {
    let lp = evloop_reactor::get_running_loop().expect("inside the loop");
    let fired = Rc::new(Cell::new(false));
    let waker: Rc<RefCell<Option<Waker>>> = Rc::default();
    let (f, w) = (fired.clone(), waker.clone());
    lp.call_later(delay, move || {
        f.set(true);
        if let Some(w) = w.borrow_mut().take() {
            w.wake();
        }
    })
    .unwrap();
    std::future::poll_fn(|cx| {
        if fired.get() {
            Poll::Ready(())
        } else {
            *waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    })
    .await
}
