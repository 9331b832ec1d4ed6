//! Condition: notify(n) and notify_all in order, cancellation after notify and while retaking the lock, wait_for, a foreign guard.

use super::*;

/// Spawns a task that waits once on `cond` and logs `name` when it returns with the lock.
fn cond_waiter(cond: &Condition, log: &Log, name: &'static str) -> Task<()> {
    let (cond, log) = (cond.clone(), log.clone());
    create_task(async move {
        let guard = cond.acquire().await;
        let guard = cond.wait(guard).await;
        assert!(guard.lock().locked());
        log.borrow_mut().push(name.to_owned());
    })
}

#[test]
fn notify_wakes_n_waiters_in_order_and_notify_all_the_rest() {
    vrun_within(DAY, async {
        let cond = Condition::new();
        let log = Log::default();
        let tasks: Vec<_> = ["a", "b", "c", "d"]
            .into_iter()
            .map(|name| cond_waiter(&cond, &log, name))
            .collect();
        settle().await;
        assert!(!cond.locked(), "wait gives the lock up");
        let guard = cond.acquire().await;
        cond.notify(&guard, 2);
        settle().await;
        assert!(log.borrow().is_empty(), "woken waiters wait for the lock");
        drop(guard);
        settle().await;
        assert_eq!(*log.borrow(), ["a", "b"]);
        let guard = cond.acquire().await;
        cond.notify_all(&guard);
        drop(guard);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*log.borrow(), ["a", "b", "c", "d"]);
    })
    .unwrap();
}

/// Waiters a and b; a is notified, then cancelled, either before it runs or while it waits to
/// take the lock back (which the notifier still holds). Either way b must get the notification.
async fn cancel_a_notified_waiter(while_retaking_the_lock: bool) {
    let cond = Condition::new();
    let log = Log::default();
    let (a, b) = a_and_b(|name| cond_waiter(&cond, &log, name)).await;
    let guard = cond.acquire().await;
    cond.notify(&guard, 1);
    if while_retaking_the_lock {
        settle().await; // a runs and queues for the lock we hold
        a.cancel();
        settle().await;
        assert_eq!(
            format!("{:?}", cond.lock()),
            "Lock { locked: true, waiters: 1 }",
            "a left the lock's queue, b joined it"
        );
        drop(guard);
    } else {
        drop(guard);
        a.cancel(); // before a has run
    }
    assert!(a.await.unwrap_err().is_cancelled());
    b.await.unwrap();
    assert_eq!(*log.borrow(), ["b"]);
    assert!(!cond.locked());
}

#[test]
fn a_condition_waiter_cancelled_after_notify_passes_the_notification_on() {
    vrun_within(DAY, cancel_a_notified_waiter(false)).unwrap();
}

#[test]
fn a_condition_waiter_cancelled_while_retaking_the_lock_passes_both_on() {
    vrun_within(DAY, cancel_a_notified_waiter(true)).unwrap();
}

#[test]
fn a_condition_wait_that_times_out_leaves_the_lock_free() {
    vrun_within(DAY, async {
        let cond = Condition::new();
        let guard = cond.acquire().await;
        assert!(timeout(ms(10), cond.wait(guard)).await.is_err());
        assert!(!cond.locked());
        assert_eq!(
            format!("{cond:?}"),
            "Condition { locked: false, waiters: 0 }"
        );
    })
    .unwrap();
}

#[test]
fn wait_for_returns_once_the_predicate_holds() {
    vrun_within(DAY, async {
        let lock = Lock::new();
        let cond = Condition::with_lock(&lock);
        let value = Rc::new(Cell::new(0));
        let checks = Rc::new(Cell::new(0));
        let consumer = create_task({
            let (cond, value, checks) = (cond.clone(), value.clone(), checks.clone());
            async move {
                let guard = cond.acquire().await;
                let guard = cond
                    .wait_for(guard, || {
                        checks.set(checks.get() + 1);
                        value.get() == 3
                    })
                    .await;
                drop(guard);
                value.get()
            }
        });
        for _ in 0..3 {
            sleep(ms(1)).await;
            let guard = lock.acquire().await; // the shared lock is the condition's
            value.set(value.get() + 1);
            cond.notify_all(&guard);
        }
        assert_eq!(consumer.await.unwrap(), 3);
        assert_eq!(
            checks.get(),
            4,
            "checked first, then after each notification"
        );
    })
    .unwrap();
}

/// Leaks on purpose (a run that fails makes `vrun_within` forget its runner), so `cargo xtask
/// asan` excludes it by name from the LeakSanitizer run.
#[test]
fn a_guard_of_another_lock_is_refused() {
    let outcome = vrun_within(DAY, async {
        let cond = Condition::new();
        let other = Lock::new();
        let guard = other.acquire().await;
        cond.notify(&guard, 1);
    });
    match outcome {
        Err(RunError::Task(TaskError::Panicked(panic))) => assert_eq!(
            panic.message(),
            "the guard holds a lock other than this Condition's"
        ),
        other => panic!("expected a panic, got {other:?}"),
    }
}
