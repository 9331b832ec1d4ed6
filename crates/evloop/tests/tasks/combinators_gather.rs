//! `gather` and `gather_settled`: values in argument order, the first error at once while the
//! others keep running, children cancelled when the gather is dropped.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use evloop::{TaskError, TimeoutError, gather, gather_settled, sleep, timeout};

use crate::HOUR;
use evloop_test_support::{DropFlag, vrun};

#[test]
fn gather_returns_values_in_argument_order() {
    let values = vrun(async {
        gather([3u64, 1, 2].map(|s| async move {
            sleep(Duration::from_secs(s)).await;
            Ok::<_, TaskError>(s)
        }))
        .await
    })
    .unwrap();
    assert_eq!(values, Ok(vec![3, 1, 2]));
    let empty: Result<Vec<u8>, TaskError> =
        vrun(async { gather(Vec::<std::future::Ready<Result<u8, TaskError>>>::new()).await })
            .unwrap();
    assert_eq!(empty, Ok(vec![]));
}

/// A user error type for gather: its own failures, or a child's panic or cancellation.
#[derive(Debug, PartialEq)]
enum AppError {
    Stop(&'static str),
    Task(TaskError),
}

impl From<TaskError> for AppError {
    fn from(error: TaskError) -> Self {
        AppError::Task(error)
    }
}

#[test]
fn gather_returns_the_first_error_at_once_and_the_others_keep_running() {
    let finished = Rc::new(Cell::new(false));
    let (finished2, finished3) = (finished.clone(), finished.clone());
    let (outcome, at_return) = vrun(async move {
        let slow = async move {
            sleep(Duration::from_secs(10)).await;
            finished2.set(true);
            Ok::<_, AppError>(1)
        };
        let failing = async {
            sleep(Duration::from_secs(1)).await;
            Err::<(), _>(AppError::Stop("Stop this thing"))
        };
        let outcome = evloop::gather!(slow, failing).await;
        let sibling_done_at_return = finished3.get();
        sleep(Duration::from_secs(20)).await;
        (outcome, sibling_done_at_return)
    })
    .unwrap();
    assert_eq!(outcome, Err(AppError::Stop("Stop this thing")));
    assert!(
        !at_return,
        "gather returned at the first error, before the sibling finished"
    );
    assert!(
        finished.get(),
        "the sibling kept running after gather returned"
    );
}

#[test]
fn dropping_an_unfinished_gather_cancels_its_children() {
    let (dropped, flag) = DropFlag::new();
    vrun(async move {
        let child = async move {
            let _guard = flag;
            sleep(HOUR).await;
            Ok::<_, TaskError>(())
        };
        let outcome = timeout(Duration::from_secs(1), gather(vec![child])).await;
        assert_eq!(outcome.map(|_| ()), Err(TimeoutError));
        sleep(Duration::ZERO).await;
    })
    .unwrap();
    assert!(dropped.get());
}

#[test]
fn gather_settled_keeps_every_outcome_and_panics_become_errors() {
    type Job = Pin<Box<dyn Future<Output = Result<u8, TaskError>>>>;
    let outcomes = vrun(async {
        let jobs: Vec<Job> = vec![
            Box::pin(async { Ok(1) }),
            Box::pin(async { panic!("child panic") }),
            Box::pin(async { Ok(3) }),
        ];
        gather_settled(jobs).await
    })
    .unwrap();
    assert_eq!(outcomes[0], Ok(1));
    assert_eq!(
        outcomes[1],
        Err(TaskError::Panicked(evloop::Panic::new("child panic")))
    );
    assert_eq!(outcomes[2], Ok(3));
}
