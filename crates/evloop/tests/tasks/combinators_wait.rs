//! `wait`: its three `ReturnWhen` modes, a timeout that is not an error, and the empty set refused.

use std::time::Duration;

use evloop::{ReturnWhen, create_task, sleep, wait};

use evloop_test_support::vrun;

#[test]
fn wait_modes_and_timeout() {
    vrun(async {
        let mk = |secs: u64, fail: bool| {
            create_task(async move {
                sleep(Duration::from_secs(secs)).await;
                if fail {
                    panic!("failed after {secs}");
                }
                secs
            })
        };
        let (done, pending) = wait(
            vec![mk(1, false), mk(5, false)],
            ReturnWhen::FirstCompleted,
            None,
        )
        .await
        .unwrap();
        assert_eq!((done.len(), pending.len()), (1, 1));
        let (done, pending) = wait(pending, ReturnWhen::AllCompleted, None).await.unwrap();
        assert_eq!((done.len(), pending.len()), (1, 0));

        let (done, pending) = wait(
            vec![mk(1, false), mk(2, true), mk(50, false)],
            ReturnWhen::FirstException,
            None,
        )
        .await
        .unwrap();
        assert_eq!((done.len(), pending.len()), (2, 1));
        assert!(done.iter().any(|t| t.panicked()));
        pending.into_iter().for_each(|t| t.abort());

        let (done, pending) = wait(
            vec![mk(100, false)],
            ReturnWhen::AllCompleted,
            Some(Duration::from_secs(1)),
        )
        .await
        .unwrap();
        assert_eq!(
            (done.len(), pending.len()),
            (0, 1),
            "a timeout is not an error"
        );
        let mut left = pending;
        let mut task = left.pop().unwrap();
        task.cancel();
        sleep(Duration::ZERO).await;
        assert!(task.take_result().unwrap().unwrap_err().is_cancelled());

        assert!(
            wait(
                Vec::<evloop::Task<()>>::new(),
                ReturnWhen::AllCompleted,
                None
            )
            .await
            .is_err()
        );
    })
    .unwrap();
}
