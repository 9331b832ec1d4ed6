//! `wait()`: every `return_when`, errors, timeouts and tasks done in the same iteration.

use super::*;

// test_wait
#[test]
fn wait_all() {
    let elapsed = vrun(async {
        let lp = evloop::get_running_loop().unwrap();
        let start = lp.time();
        let a = create_task(sleep(ms(100)));
        let b = create_task(sleep(ms(150)));
        let (done, pending) = wait(vec![b, a], ReturnWhen::AllCompleted, None)
            .await
            .unwrap();
        assert_eq!((done.len(), pending.len()), (2, 0));
        lp.time() - start
    })
    .unwrap();
    assert_eq!(elapsed, ms(150));
}

// test_wait_errors: an empty set is refused with asyncio's text.
#[test]
fn wait_errors() {
    let outcome = vrun(wait(Vec::<Task<()>>::new(), ReturnWhen::AllCompleted, None)).unwrap();
    assert_eq!(
        outcome.map(drop).unwrap_err().to_string(),
        "Set of Tasks/Futures is empty."
    );
}

// test_wait_first_completed
#[test]
fn wait_first_completed() {
    vrun(async {
        let lp = evloop::get_running_loop().unwrap();
        let start = lp.time();
        let a = create_task(sleep(TEN));
        let b = create_task(sleep(ms(100)));
        let (b_any, a_any) = (b.any(), a.any());
        let (done, pending) = wait(vec![b, a], ReturnWhen::FirstCompleted, None)
            .await
            .unwrap();
        assert_eq!(done.len(), 1);
        assert!(done[0].any().ptr_eq(&b_any));
        assert!(pending[0].any().ptr_eq(&a_any));
        assert!(!a_any.done() && b_any.done());
        assert_eq!(lp.time() - start, ms(100));
        pending.into_iter().for_each(Task::abort);
    })
    .unwrap();
}

// test_wait_really_done: tasks that became done in the same iteration are in `done` too.
#[test]
fn wait_really_done() {
    let (done, pending) = vrun(async {
        let a = create_task(async { sleep(Duration::ZERO).await });
        let b = create_task(async {
            sleep(Duration::ZERO).await;
            sleep(Duration::ZERO).await;
        });
        let (done, pending) = wait(vec![b, a], ReturnWhen::FirstCompleted, None)
            .await
            .unwrap();
        (done.len(), pending.len())
    })
    .unwrap();
    assert_eq!((done, pending), (2, 0));
}

// test_wait_first_exception (a panic is evloop's exception: difference 2)
#[test]
fn wait_first_exception() {
    vrun(async {
        let lp = evloop::get_running_loop().unwrap();
        let start = lp.time();
        let a = create_task(sleep(TEN));
        let b = create_task(async { panic!("err") });
        let b_any = b.any();
        let (done, pending) = wait(vec![b, a], ReturnWhen::FirstException, None)
            .await
            .unwrap();
        assert_eq!((done.len(), pending.len()), (1, 1));
        assert!(done[0].any().ptr_eq(&b_any));
        assert_eq!(lp.time(), start);
        pending.into_iter().for_each(Task::abort);
        drop(done);
    })
    .unwrap();
}

// test_wait_first_exception_in_wait
#[test]
fn wait_first_exception_in_wait() {
    vrun(async {
        let lp = evloop::get_running_loop().unwrap();
        let start = lp.time();
        let a = create_task(sleep(TEN));
        let b = create_task(async {
            sleep(ms(10)).await;
            panic!("err")
        });
        let (done, pending) = wait(vec![b, a], ReturnWhen::FirstException, None)
            .await
            .unwrap();
        assert_eq!((done.len(), pending.len()), (1, 1));
        assert!(done[0].panicked());
        assert_eq!(lp.time() - start, ms(10));
        pending.into_iter().for_each(Task::abort);
    })
    .unwrap();
}

// test_wait_with_exception
#[test]
fn wait_with_exception() {
    vrun(async {
        let lp = evloop::get_running_loop().unwrap();
        let start = lp.time();
        let a = create_task(sleep(ms(100)));
        let b = create_task(async {
            sleep(ms(150)).await;
            panic!("really")
        });
        let (done, pending) = wait(vec![b, a], ReturnWhen::AllCompleted, None)
            .await
            .unwrap();
        assert_eq!((done.len(), pending.len()), (2, 0));
        assert_eq!(done.iter().filter(|t| t.panicked()).count(), 1);
        assert_eq!(lp.time() - start, ms(150));
    })
    .unwrap();
}

// test_wait_with_timeout
#[test]
fn wait_with_timeout() {
    vrun(async {
        let lp = evloop::get_running_loop().unwrap();
        let start = lp.time();
        let a = create_task(sleep(ms(100)));
        let b = create_task(sleep(ms(150)));
        let (a_any, b_any) = (a.any(), b.any());
        let (done, pending) = wait(vec![b, a], ReturnWhen::AllCompleted, Some(ms(110)))
            .await
            .unwrap();
        assert_eq!((done.len(), pending.len()), (1, 1));
        assert!(done[0].any().ptr_eq(&a_any) && pending[0].any().ptr_eq(&b_any));
        assert_eq!(lp.time() - start, ms(110));
        pending.into_iter().for_each(Task::abort);
    })
    .unwrap();
}

// test_wait_concurrent_complete: a task ending on the wait's deadline counts as done (the
// tasks are created before the loop runs, so their timers come first, as in CPython).
#[test]
fn wait_concurrent_complete() {
    let lp = test_loop();
    let start = lp.time();
    let a = lp.create_task(sleep(ms(100))).unwrap();
    let b = lp.create_task(sleep(ms(150))).unwrap();
    let a_any = a.any();
    let (done, pending) = lp
        .run_until_complete(wait(vec![b, a], ReturnWhen::AllCompleted, Some(ms(100))))
        .unwrap()
        .unwrap();
    assert_eq!((done.len(), pending.len()), (1, 1));
    assert!(done[0].any().ptr_eq(&a_any));
    assert_eq!(lp.time() - start, ms(100));
    pending.into_iter().for_each(Task::abort);
    lp.close().unwrap();
}
