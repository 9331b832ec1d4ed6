//! `TaskGroup`: the first failure cancels the siblings, every error is collected, and the
//! spawn rules of a group that is shutting down or finished.

use std::time::Duration;

use evloop::{ChildError, SpawnError, TaskError, TaskGroup, sleep, timeout};

use crate::HOUR;
use evloop_test_support::{DropFlag, vrun};

#[test]
fn task_group_first_failure_cancels_siblings_and_all_errors_are_collected() {
    let (sibling_dropped, flag) = DropFlag::new();
    let outcome = vrun(async move {
        let group = TaskGroup::<String>::new();
        group
            .spawn(async move {
                let _guard = flag;
                sleep(HOUR).await;
                Ok(())
            })
            .map(drop)
            .unwrap();
        group
            .spawn(async {
                sleep(Duration::from_secs(1)).await;
                Err::<(), _>("first".to_owned())
            })
            .map(drop)
            .unwrap();
        group
            .spawn(async {
                sleep(Duration::from_secs(1)).await;
                if true {
                    panic!("second");
                }
                Ok(())
            })
            .map(drop)
            .unwrap();
        let late = group.spawn(async { Ok(()) });
        assert!(late.is_ok(), "still accepting before any failure");
        group.join().await
    })
    .unwrap();
    assert!(sibling_dropped.get());
    let errors = outcome.unwrap_err().errors;
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.contains(&ChildError::Failed("first".to_owned())));
    assert!(errors.contains(&ChildError::Panicked(evloop::Panic::new("second"))));
}

/// A child cancelled before its first poll never runs its body, and must still be counted out:
/// otherwise `join` waits for it forever.
#[test]
fn task_group_join_ends_when_a_child_is_cancelled_before_it_starts() {
    let outcome = vrun(async {
        let group = TaskGroup::<String>::new();
        let child = group.spawn(async { Ok(1) }).unwrap();
        assert!(child.cancel());
        // Virtual clock: a hang shows as a timeout after an hour that takes no real time.
        let joined = timeout(HOUR, group.join()).await;
        (joined, child.await)
    })
    .unwrap();
    assert_eq!(outcome.0, Ok(Ok(())));
    assert!(matches!(outcome.1, Err(TaskError::Cancelled(_))));
}

#[test]
fn task_group_success_and_spawn_rules() {
    vrun(async {
        let group = TaskGroup::<String>::new();
        let a = group.spawn(async { Ok(1) }).unwrap();
        let b = group
            .spawn(async {
                sleep(Duration::from_secs(1)).await;
                Ok(2)
            })
            .unwrap();
        assert_eq!(group.join().await, Ok(()));
        assert_eq!(a.await, Ok(Some(1)));
        assert_eq!(b.await, Ok(Some(2)));

        let failing = TaskGroup::<String>::new();
        failing
            .spawn(async { Err::<(), _>("x".to_owned()) })
            .unwrap()
            .detach();
        sleep(Duration::ZERO).await;
        sleep(Duration::ZERO).await;
        assert_eq!(
            failing.spawn(async { Ok(()) }).unwrap_err(),
            SpawnError::ShuttingDown
        );
        let display = failing.join().await.unwrap_err().to_string();
        assert!(display.starts_with("unhandled errors in a TaskGroup (1 sub-exception)"));
    })
    .unwrap();
}
