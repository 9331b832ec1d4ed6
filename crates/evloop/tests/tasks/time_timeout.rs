//! `timeout` and `wait_for`: the deadline fails the wait only once the inner future is dropped.

use std::time::Duration;

use evloop::{TimeoutError, sleep, timeout};

use crate::HOUR;
use evloop_test_support::{DropFlag, vrun};

#[test]
fn timeout_fails_only_after_the_inner_future_was_dropped() {
    let (dropped, flag) = DropFlag::new();
    let seen = dropped.clone();
    let outcome = vrun(async move {
        let inner = async move {
            let _guard = flag;
            sleep(HOUR).await;
        };
        let result = timeout(Duration::from_secs(1), inner).await;
        (result, seen.get())
    })
    .unwrap();
    assert_eq!(outcome, (Err(TimeoutError), true));
    let fast = vrun(timeout(Duration::from_secs(1), async { 5 })).unwrap();
    assert_eq!(fast, Ok(5));
    let zero = vrun(evloop::wait_for(sleep(HOUR), Duration::ZERO)).unwrap();
    assert_eq!(zero, Err(TimeoutError));
}
