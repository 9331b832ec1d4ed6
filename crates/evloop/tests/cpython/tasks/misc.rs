//! Bare `create_task`, cancelling a task awaiting `gather`, the traceback logger after cancel, and the first step's queueing.

use super::*;

// test_bare_create_task / test_bare_create_named_task
#[test]
fn bare_create_named_task() {
    let name = vrun(async {
        let task = create_task(async { current_task().unwrap().name() });
        task.set_name("No-op");
        task.await.unwrap()
    })
    .unwrap();
    assert_eq!(name, "No-op");
}

// test_cancel_gather_2: a task cancelled while it awaits a gather ends cancelled with the
// message, and so does the task awaiting it.
#[test]
fn cancel_gather_2() {
    for message in [None, Some("my message")] {
        let outcome = vrun(async move {
            let qwe = create_task(async {
                let mut time = Duration::ZERO;
                loop {
                    time += ms(50);
                    let _ = evloop::gather_settled(vec![async {
                        sleep(ms(50)).await;
                        Ok::<(), TaskError>(())
                    }])
                    .await;
                    if time > Duration::from_secs(1) {
                        return;
                    }
                }
            });
            sleep(ms(200)).await;
            match message {
                Some(m) => qwe.cancel_with(m),
                None => qwe.cancel(),
            };
            qwe.await
        })
        .unwrap();
        assert_eq!(outcome, Err(cancelled(message)));
    }
}

// test_tb_logger_not_called_after_cancel: asyncio's cancel() on a task that already failed
// marks its exception as retrieved (`__log_traceback = False`), so nothing is logged.
#[test]
fn tb_logger_not_called_after_cancel() {
    let mut runner = evloop::Runner::with_builder(EventLoop::builder().virtual_clock(true));
    let reports = record_reports(&runner.get_loop().unwrap());
    runner
        .run(async {
            let task = create_task(async { panic!("TypeError") });
            sleep(ms(50)).await;
            task.cancel();
            drop(task);
        })
        .unwrap();
    runner.close().unwrap();
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
}

// Task.__init__ queues the first step with call_soon (contract H3), so a task created before the
// loop runs steps in the loop's first iteration, before a call_soon made after it: what every
// CPython test that creates a task and then calls run_briefly() relies on.
#[test]
fn first_step_is_queued_as_call_soon_even_before_the_loop_runs() {
    let lp = test_loop();
    let log: Rc<RefCell<Vec<&str>>> = Rc::default();
    let (a, b, c) = (log.clone(), log.clone(), log.clone());
    lp.call_soon(move || a.borrow_mut().push("soon before"))
        .unwrap();
    let task = lp
        .create_task(async move { b.borrow_mut().push("task") })
        .unwrap();
    lp.call_soon(move || c.borrow_mut().push("soon after"))
        .unwrap();
    lp.run_once().unwrap();
    assert_eq!(*log.borrow(), ["soon before", "task", "soon after"]);
    assert!(task.done());
    lp.close().unwrap();
}
