//! Event: set wakes every waiter, clear, wait with a timeout, and the loop a primitive is bound to.

use super::*;

#[test]
fn event_set_wakes_every_waiter_and_later_waits_return_at_once() {
    vrun_within(DAY, async {
        let event = Event::new();
        let woken = Rc::new(Cell::new(0));
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let (event, woken) = (event.clone(), woken.clone());
                create_task(async move {
                    event.wait().await;
                    woken.set(woken.get() + 1);
                })
            })
            .collect();
        settle().await;
        assert_eq!(woken.get(), 0);
        assert!(!event.is_set());
        event.set();
        assert!(event.is_set());
        for waiter in waiters {
            waiter.await.unwrap();
        }
        assert_eq!(woken.get(), 3);
        // Set: no waiting at all.
        assert!(timeout(Duration::ZERO, event.wait()).await.is_ok());
        event.clear();
        assert!(timeout(Duration::ZERO, event.wait()).await.is_err());
    })
    .unwrap();
}

#[test]
fn an_event_waiter_woken_then_cleared_still_returns() {
    vrun_within(DAY, async {
        let event = Event::new();
        let waiter = create_task({
            let event = event.clone();
            async move { event.wait().await }
        });
        settle().await;
        event.set();
        event.clear(); // before the waiter has run: asyncio's waiter still returns True
        waiter.await.unwrap();
        assert!(!event.is_set());
    })
    .unwrap();
}

#[test]
fn an_event_wait_that_times_out_leaves_no_waiter_behind() {
    vrun_within(DAY, async {
        let event = Event::new();
        assert!(timeout(ms(10), event.wait()).await.is_err());
        assert_eq!(format!("{event:?}"), "Event { set: false, waiters: 0 }");
    })
    .unwrap();
}

/// Leaks on purpose (a run that fails makes `vrun_within` forget its runner), so `cargo xtask
/// asan` excludes it by name from the LeakSanitizer run.
#[test]
fn a_primitive_is_bound_to_the_loop_it_was_first_waited_on() {
    let event = Event::new();
    let first = event.clone();
    vrun_within(DAY, async move {
        timeout(ms(1), first.wait()).await.unwrap_err()
    })
    .unwrap();
    let outcome = vrun_within(DAY, async move {
        timeout(ms(1), event.wait()).await.unwrap_err()
    });
    match outcome {
        Err(RunError::Task(TaskError::Panicked(panic))) => {
            assert_eq!(panic.message(), "Event is bound to a different event loop")
        }
        other => panic!("expected a panic, got {other:?}"),
    }
}
