//! `shield`: cancelling the outer task leaves the inner one running.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use evloop::{create_task, shield, sleep};

use evloop_test_support::vrun;

#[test]
fn shield_keeps_the_inner_task_running_when_the_outer_is_cancelled() {
    let finished = Rc::new(Cell::new(false));
    let finished2 = finished.clone();
    vrun(async move {
        let outer = create_task(shield(async move {
            sleep(Duration::from_secs(5)).await;
            finished2.set(true);
        }));
        sleep(Duration::from_secs(1)).await;
        outer.cancel();
        assert!(outer.await.unwrap_err().is_cancelled());
        sleep(Duration::from_secs(10)).await;
    })
    .unwrap();
    assert!(finished.get());
}
