//! Propagation through awaited tasks and `wait()`, and `shield()`.

use super::*;

// test_yield_future_passes_cancel: cancelling outer() cancels inner() cancels the waiter.
#[test]
fn yield_future_passes_cancel() {
    let lp = test_loop();
    let waiter = lp.create_future::<()>();
    let proof = Rc::new(Cell::new(0));
    let (w, p) = (waiter.clone(), proof.clone());
    let inner = async move {
        match catch_cancel(w).await {
            Err(cancelled) => {
                p.set(p.get() + 1);
                cancelled.raise::<()>().await
            }
            Ok(_) => panic!("got past the waiter in inner()"),
        }
    };
    let p = proof.clone();
    let f = lp
        .create_task(async move {
            match catch_cancel(inner).await {
                Err(_) => p.set(p.get() + 100), // the expected path
                Ok(()) => p.set(p.get() + 10),
            }
        })
        .unwrap();
    run_briefly(&lp);
    f.cancel();
    lp.run_until_complete(f).unwrap().unwrap();
    assert_eq!(proof.get(), 101);
    assert!(waiter.cancelled());
    lp.close().unwrap();
}

/// Cancels `outer` once it waits, checks that it ends cancelled, then releases `waiter` for what
/// it left running.
fn cancel_outer_then_release(lp: &EventLoop, outer: Task<()>, waiter: &evloop::LoopFuture<()>) {
    run_briefly(lp);
    outer.cancel();
    assert_ends_cancelled(lp, outer);
    waiter.set_result(()).unwrap();
    run_briefly(lp);
}

// test_yield_wait_does_not_shield_cancel: cancelling outer() makes wait() return early and
// leaves inner() running.
#[test]
fn yield_wait_does_not_shield_cancel() {
    let lp = test_loop();
    let waiter = lp.create_future::<()>();
    let proof = Rc::new(Cell::new(0));
    let (w, p) = (waiter.clone(), proof.clone());
    let p_outer = proof.clone();
    let f = lp
        .create_task(async move {
            let inner = create_task(async move {
                w.await.unwrap();
                p.set(p.get() + 1);
            });
            let _ = wait(vec![inner], ReturnWhen::AllCompleted, None).await;
            p_outer.set(p_outer.get() + 100);
        })
        .unwrap();
    cancel_outer_then_release(&lp, f, &waiter);
    assert_eq!(proof.get(), 1);
    lp.close().unwrap();
}

// test_shield_result
#[test]
fn shield_result() {
    let lp = test_loop();
    let inner = lp.create_future::<i32>();
    let outer = shield_on(&lp, inner.clone());
    inner.set_result(42).unwrap();
    assert_eq!(
        lp.run_until_complete(outer)
            .unwrap()
            .unwrap()
            .unwrap()
            .unwrap(),
        42
    );
    lp.close().unwrap();
}

/// `asyncio.shield(fut)` made outside the loop, as CPython's shield tests do.
fn shield_on<T: 'static>(
    lp: &EventLoop,
    inner: impl std::future::Future<Output = T> + 'static,
) -> Task<Result<T, TaskError>> {
    let outer: Rc<RefCell<Option<evloop::Shield<T>>>> = Rc::default();
    let slot = outer.clone();
    lp.run_until_complete(async move {
        *slot.borrow_mut() = Some(shield(inner));
    })
    .unwrap();
    let shielded = outer.take().unwrap();
    lp.create_task(shielded).unwrap()
}

// test_shield_exception
#[test]
fn shield_exception() {
    let lp = test_loop();
    let inner = lp.create_future::<i32>();
    let outer = shield_on(&lp, inner.clone());
    run_briefly(&lp);
    inner.set_error(std::fmt::Error).unwrap();
    run_briefly(&lp);
    let outcome = lp.run_until_complete(outer).unwrap().unwrap().unwrap();
    assert!(matches!(outcome, Err(FutureError::Failed(_))));
    lp.close().unwrap();
}

// test_shield_cancel_inner: the inner future's cancellation reaches the shield's awaiter (as a
// value: difference 6).
#[test]
fn shield_cancel_inner() {
    let lp = test_loop();
    let inner = lp.create_future::<i32>();
    let outer = shield_on(&lp, inner.clone());
    run_briefly(&lp);
    inner.cancel();
    run_briefly(&lp);
    let outcome = lp.run_until_complete(outer).unwrap().unwrap().unwrap();
    assert!(matches!(outcome, Err(FutureError::Cancelled(_))));
    lp.close().unwrap();
}

// test_shield_cancel_outer / test_shield_cancel_outer_result: cancelling the awaiter cancels
// it, not the inner future, and a result set afterwards is reported nowhere.
#[test]
fn shield_cancel_outer() {
    let lp = test_loop();
    let reports = record_reports(&lp);
    let inner = lp.create_future::<i32>();
    let outer = shield_on(&lp, inner.clone());
    run_briefly(&lp);
    outer.cancel();
    run_briefly(&lp);
    assert!(outer.cancelled());
    assert!(!inner.cancelled());
    inner.set_result(1).unwrap();
    run_briefly(&lp);
    run_briefly(&lp);
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
    lp.close().unwrap();
}

// test_shield_cancel_outer_exception: the shielded work failing after its awaiter was
// cancelled is reported once (a panic is evloop's unhandled exception: difference 2).
#[test]
fn shield_cancel_outer_exception() {
    let lp = test_loop();
    let reports = record_reports(&lp);
    let inner = lp.create_future::<i32>();
    let awaited = inner.clone();
    let outer = shield_on(&lp, async move {
        let _ = awaited.await;
        panic!("foo");
    });
    run_briefly(&lp);
    outer.cancel();
    run_briefly(&lp);
    inner.set_result(1).unwrap();
    run_briefly(&lp);
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].message, "Task exception was never retrieved");
    drop(outer);
    lp.close().unwrap();
}

// test_shield_effect: cancelling outer() does not affect inner().
#[test]
fn shield_effect() {
    let lp = test_loop();
    let waiter = lp.create_future::<()>();
    let proof = Rc::new(Cell::new(0));
    let (w, p, p_outer) = (waiter.clone(), proof.clone(), proof.clone());
    let f = lp
        .create_task(async move {
            let _ = shield(async move {
                w.await.unwrap();
                p.set(p.get() + 1);
            })
            .await;
            p_outer.set(p_outer.get() + 100);
        })
        .unwrap();
    cancel_outer_then_release(&lp, f, &waiter);
    assert_eq!(proof.get(), 1);
    lp.close().unwrap();
}
