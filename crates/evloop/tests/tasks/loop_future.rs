//! `LoopFuture`: results, errors, cancellation with a message, and done callbacks that never run
//! synchronously.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use evloop::{FutureError, InvalidState, LoopExt, create_task, sleep};

use evloop_test_support::vrun;

#[test]
fn loop_future_results_errors_and_callbacks() {
    vrun(async {
        let lp = evloop::get_running_loop().unwrap();
        let fut = lp.create_future::<u32>();
        assert!(matches!(
            fut.result(),
            Err(FutureError::InvalidState(InvalidState::ResultNotSet))
        ));
        let order = Rc::new(RefCell::new(Vec::new()));
        let o = order.clone();
        fut.add_done_callback(move |f| {
            o.borrow_mut()
                .push(format!("callback {:?}", f.result().ok()))
        })
        .unwrap();
        let setter = fut.clone();
        let o = order.clone();
        lp.call_soon(move || {
            setter.set_result(5).unwrap();
            o.borrow_mut().push("set".to_owned());
        })
        .unwrap();
        assert_eq!(fut.clone().await.unwrap(), 5);
        sleep(Duration::ZERO).await;
        assert_eq!(
            *order.borrow(),
            ["set", "callback Some(5)"],
            "never synchronous"
        );
        assert_eq!(fut.set_result(6), Err(InvalidState::AlreadyDone));
        assert!(!fut.cancel());
        assert_eq!(fut.result().unwrap(), 5);

        let failing = lp.create_future::<u32>();
        failing.set_error(std::fmt::Error).unwrap();
        assert!(matches!(failing.clone().await, Err(FutureError::Failed(_))));

        let cancelled = lp.create_future::<u32>();
        let waiter = create_task(cancelled.clone());
        sleep(Duration::ZERO).await;
        assert!(cancelled.cancel_with("no longer needed"));
        assert!(cancelled.cancelled());
        let Ok(Err(FutureError::Cancelled(c))) = waiter.await else {
            panic!("expected a cancelled future")
        };
        assert_eq!(c.message(), Some("no longer needed"));
    })
    .unwrap();
}
