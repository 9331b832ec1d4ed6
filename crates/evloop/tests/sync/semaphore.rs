//! Semaphore and BoundedSemaphore: admission in arrival order, a cancelled woken waiter gives its permit back, the bound.

use super::*;

#[test]
fn a_semaphore_admits_value_tasks_at_a_time_in_arrival_order() {
    vrun_within(DAY, async {
        let sem = Semaphore::new(2);
        let log = Log::default();
        let inside = Rc::new(Cell::new(0));
        let tasks: Vec<_> = (0..5)
            .map(|n| {
                let (sem, log, inside) = (sem.clone(), log.clone(), inside.clone());
                create_task(async move {
                    let _permit = sem.acquire().await;
                    inside.set(inside.get() + 1);
                    assert!(inside.get() <= 2);
                    log.borrow_mut().push(n.to_string());
                    sleep(ms(10)).await;
                    inside.set(inside.get() - 1);
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*log.borrow(), ["0", "1", "2", "3", "4"]);
        assert!(!sem.locked());
    })
    .unwrap();
}

#[test]
fn a_semaphore_waiter_cancelled_after_it_was_woken_gives_the_permit_back() {
    vrun_within(DAY, async {
        let sem = Semaphore::new(1);
        let permit = sem.acquire().await;
        let log = Log::default();
        let waiter = |name: &'static str| {
            let (sem, log) = (sem.clone(), log.clone());
            create_task(async move {
                let _permit = sem.acquire().await;
                log.borrow_mut().push(name.to_owned());
            })
        };
        let (a, b) = a_and_b(waiter).await;
        drop(permit); // a is woken with the permit taken for it ...
        assert!(
            sem.locked(),
            "asyncio: locked while the woken waiter has not run"
        );
        assert!(timeout(Duration::ZERO, sem.acquire()).await.is_err());
        a.cancel(); // ... and cancelled before it runs
        assert!(a.await.unwrap_err().is_cancelled());
        b.await.unwrap();
        assert_eq!(*log.borrow(), ["b"]);
        assert!(!sem.locked());
    })
    .unwrap();
}

#[test]
fn semaphore_release_and_forget_move_the_count_by_hand() {
    vrun_within(DAY, async {
        let sem = Semaphore::new(0);
        assert!(sem.locked());
        sem.release();
        assert!(!sem.locked());
        sem.acquire().await.forget();
        assert!(sem.locked());
        assert!(timeout(ms(5), sem.acquire()).await.is_err());
        sem.release();
        drop(sem.acquire().await);
        assert!(!sem.locked());
    })
    .unwrap();
}

#[test]
fn a_bounded_semaphore_refuses_to_rise_above_its_initial_value() {
    vrun_within(DAY, async {
        let reports = record_running_reports();
        let sem = BoundedSemaphore::new(1);
        assert_eq!(sem.release(), Err(ValueError::ReleasedTooManyTimes));
        let permit = sem.acquire().await;
        assert!(sem.locked());
        assert_eq!(sem.release(), Ok(())); // someone released the permit by hand ...
        drop(permit); // ... so the guard's release is one too many: reported, not applied
        let reported: Vec<_> = reports
            .borrow()
            .iter()
            .map(|r| (r.message.clone(), r.exception.clone()))
            .collect();
        assert_eq!(
            reported,
            [(
                "Exception when dropping a BoundedSemaphore permit".to_owned(),
                Some("BoundedSemaphore released too many times".to_owned())
            )]
        );
        assert_eq!(sem.release(), Err(ValueError::ReleasedTooManyTimes));
        drop(sem.acquire().await);
        assert_eq!(reports.borrow().len(), 1);
    })
    .unwrap();
}
