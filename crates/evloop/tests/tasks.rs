//! Tasks, futures, combinators and run(): asyncio's coroutine-layer contracts (sections B3, G, H).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use evloop::{
    Cancelled, ChildError, EventLoop, ExceptionContext, FutureError, InvalidState, LoopError,
    LoopExt, ReturnWhen, RunError, Runner, SpawnError, TaskError, TaskGroup, TimeoutError,
    catch_cancel, create_task, gather, gather_settled, shield, sleep, timeout, wait, yield_now,
};

/// Runs `main` on a loop with a virtual clock: long sleeps take no real time.
fn vrun<F: Future + 'static>(main: F) -> Result<F::Output, RunError>
where
    F::Output: 'static,
{
    let mut runner = Runner::with_builder(EventLoop::builder().virtual_clock(true));
    let outcome = runner.run(main);
    let closed = runner.close();
    closed.and(outcome)
}

const HOUR: Duration = Duration::from_secs(3600);

/// Sets a flag when dropped: proves a future's destructors ran.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

type Reports = Rc<RefCell<Vec<(String, Option<String>)>>>;

/// Installs a recording exception handler on the running loop.
fn record_reports() -> Reports {
    let reports: Reports = Rc::default();
    let sink = reports.clone();
    evloop::get_running_loop()
        .unwrap()
        .set_exception_handler(Some(Rc::new(
            move |_: &EventLoop, ctx: &ExceptionContext| {
                sink.borrow_mut().push((
                    ctx.message.clone(),
                    ctx.exception.as_ref().map(|e| e.to_string()),
                ))
            },
        )));
    reports
}

#[test]
fn error_texts_are_asyncios() {
    assert_eq!(
        evloop::get_running_loop().unwrap_err().to_string(),
        "no running event loop"
    );
    assert_eq!(
        RunError::StoppedBeforeComplete.to_string(),
        "Event loop stopped before Future completed."
    );
    assert_eq!(RunError::RunnerClosed.to_string(), "Runner is closed");
    assert_eq!(
        RunError::NestedRunnerRun.to_string(),
        "Runner.run() cannot be called from a running event loop"
    );
    assert_eq!(
        RunError::NestedRun.to_string(),
        "evloop::run() cannot be called from a running event loop"
    );
    assert_eq!(InvalidState::ResultNotSet.to_string(), "Result is not set.");
    assert_eq!(InvalidState::AlreadyDone.to_string(), "invalid state");
    assert_eq!(
        evloop::EmptyWait.to_string(),
        "Set of Tasks/Futures is empty."
    );
    assert_eq!(SpawnError::Finished.to_string(), "TaskGroup is finished");
    assert_eq!(
        SpawnError::ShuttingDown.to_string(),
        "TaskGroup is shutting down"
    );
}

#[test]
fn create_task_outside_a_loop_panics_at_the_callers_line_and_says_what_to_do() {
    let location = Arc::new(Mutex::new(None));
    let seen = location.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        *seen.lock().unwrap() = info.location().map(|l| (l.file().to_owned(), l.line()));
    }));
    let line = line!() + 1;
    let caught = std::panic::catch_unwind(|| create_task(async {}).detach());
    std::panic::set_hook(previous);
    let Err(payload) = caught else {
        panic!("create_task outside a loop should panic")
    };
    let message = evloop::Panic::from_payload(payload);
    assert!(
        message.message().contains("no running event loop"),
        "{message}"
    );
    assert!(
        message.message().contains("inside evloop::run"),
        "{message}"
    );
    let (file, at) = location.lock().unwrap().clone().unwrap();
    assert!(file.ends_with("tests/tasks.rs"), "{file}");
    assert_eq!(at, line);
}

#[test]
fn cancel_before_start_never_runs_the_body() {
    let ran = Rc::new(Cell::new(false));
    let ran2 = ran.clone();
    let outcome = vrun(async move {
        let task = create_task(async move { ran2.set(true) });
        assert!(task.cancel());
        task.await
    })
    .unwrap();
    assert!(!ran.get());
    assert_eq!(outcome, Err(TaskError::Cancelled(Cancelled::new())));
}

#[test]
fn cancel_while_waiting_runs_destructors_and_carries_the_message() {
    let dropped = Rc::new(Cell::new(false));
    let flag = DropFlag(dropped.clone());
    let (outcome, cancelled, done) = vrun(async move {
        let task = create_task(async move {
            let _guard = flag;
            sleep(HOUR).await;
        });
        sleep(Duration::ZERO).await;
        assert!(task.cancel_with("stop now"));
        assert_eq!(task.cancelling(), 1);
        assert!(!task.cancelled(), "cancelled() only once the task ended");
        let any = task.any();
        let outcome = task.await;
        (outcome, any.cancelled(), any.done())
    })
    .unwrap();
    assert!(dropped.get());
    assert!(cancelled && done);
    let Err(TaskError::Cancelled(c)) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(c.message(), Some("stop now"));
}

#[test]
fn a_task_that_cancels_itself_and_returns_ends_cancelled() {
    // asyncio's _must_cancel: a request made during the last step is still delivered.
    let (value, cancelled, cancelling) = vrun(async {
        let task = create_task(async {
            evloop::current_task().unwrap().cancel();
            7
        });
        let any = task.any();
        let value = task.await;
        (value, any.cancelled(), any.cancelling())
    })
    .unwrap();
    assert_eq!(value, Err(TaskError::Cancelled(Cancelled::new())));
    assert!(cancelled);
    assert_eq!(cancelling, 1);
}

#[test]
fn cancel_on_a_done_task_returns_false() {
    vrun(async {
        let task = create_task(async { 1 });
        sleep(Duration::ZERO).await;
        assert!(task.done());
        assert!(!task.cancel());
    })
    .unwrap();
}

#[test]
fn catch_cancel_allows_async_cleanup_and_run_waits_for_it() {
    let cleaned = Rc::new(Cell::new(false));
    let cleaned2 = cleaned.clone();
    vrun(async move {
        create_task(async move {
            if catch_cancel(sleep(HOUR)).await.is_err() {
                // An awaited clean-up: impossible in a destructor.
                sleep(Duration::from_secs(5)).await;
                cleaned2.set(true);
            }
        })
        .detach();
        sleep(Duration::from_millis(1)).await;
        // main returns: run() cancels the task and must wait for its clean-up.
    })
    .unwrap();
    assert!(
        cleaned.get(),
        "run() returned before the task's clean-up finished"
    );
}

#[test]
fn a_caught_cancel_can_be_refused() {
    let outcome = vrun(async {
        let task = create_task(async {
            let first = catch_cancel(sleep(HOUR)).await;
            assert_eq!(first, Err(Cancelled::with_message("please")));
            let me = evloop::current_task().unwrap();
            assert_eq!(me.uncancel(), 0);
            "refused"
        });
        sleep(Duration::ZERO).await;
        task.cancel_with("please");
        task.await
    });
    assert_eq!(outcome.unwrap(), Ok("refused"));
}

#[test]
fn the_innermost_catch_cancel_takes_the_request() {
    let outcome = vrun(async {
        let task = create_task(async {
            let outer = catch_cancel(async {
                let inner = catch_cancel(sleep(HOUR)).await;
                ("inner", inner.is_err())
            })
            .await;
            outer.unwrap()
        });
        sleep(Duration::ZERO).await;
        task.cancel();
        task.await
    });
    assert_eq!(outcome.unwrap(), Ok(("inner", true)));
}

#[test]
fn an_uncaught_request_drops_the_whole_task_even_after_a_catch() {
    let outcome = vrun(async {
        let task = create_task(async {
            let _ = catch_cancel(sleep(Duration::from_secs(1))).await;
            sleep(HOUR).await; // not inside catch_cancel
            "unreachable"
        });
        sleep(Duration::from_secs(2)).await; // the first sleep finished normally
        task.cancel();
        task.await
    });
    assert_eq!(
        outcome.unwrap(),
        Err(TaskError::Cancelled(Cancelled::new()))
    );
}

#[test]
fn a_request_for_a_frame_dropped_unpolled_passes_to_the_task() {
    // The frame is dropped (here by a timeout) before it could take the request: the request
    // moves to the task, which then ends cancelled at its next await.
    let outcome = vrun(async {
        let task = create_task(async {
            let frame = catch_cancel(sleep(HOUR));
            let mut frame = Box::pin(frame);
            // Register the frame by polling it once, then drop it.
            std::future::poll_fn(|cx| {
                let _ = frame.as_mut().poll(cx);
                Poll::Ready(())
            })
            .await;
            evloop::current_task().unwrap().cancel();
            drop(frame);
            sleep(HOUR).await;
            "unreachable"
        });
        task.await
    });
    assert_eq!(
        outcome.unwrap(),
        Err(TaskError::Cancelled(Cancelled::new()))
    );
}

/// A future that stores the waker it was polled with, and never completes on its own.
struct StoreWaker(Arc<Mutex<Option<Waker>>>);

impl Future for StoreWaker {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        *self.0.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[test]
fn wakers_used_after_the_task_ended_and_after_the_loop_closed_are_harmless() {
    let slot = Arc::new(Mutex::new(None::<Waker>));
    let capture = Rc::new(());
    let held = capture.clone();
    let store = slot.clone();
    let lp = EventLoop::new().unwrap();
    // A task that ends (cancelled) while its waker lives on elsewhere.
    let task = lp
        .create_task(async move {
            let _held = held;
            StoreWaker(store).await;
        })
        .unwrap();
    let stopper = lp.clone();
    lp.call_later(Duration::from_millis(5), move || stopper.stop())
        .unwrap();
    lp.run_forever().unwrap();
    let waker = slot.lock().unwrap().clone().expect("polled once");
    task.cancel();
    lp.stop();
    lp.run_forever().unwrap();
    assert!(task.done());
    assert_eq!(Rc::strong_count(&capture), 1, "the future was dropped");
    // After the end: wake on this thread and from another one.
    waker.wake_by_ref();
    let w = waker.clone();
    std::thread::spawn(move || w.wake()).join().unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    // After close: wake and drop from another thread (the last references go there).
    drop(task);
    lp.close().unwrap();
    let w = waker.clone();
    std::thread::spawn(move || {
        w.wake_by_ref();
        w.wake();
    })
    .join()
    .unwrap();
    drop(waker);
    slot.lock().unwrap().take();
}

#[test]
fn closing_the_loop_drops_pending_futures_on_the_loop_thread() {
    let capture = Rc::new(());
    let held = capture.clone();
    let lp = EventLoop::new().unwrap();
    let task = lp
        .create_task(async move {
            let _held = held;
            sleep(HOUR).await;
        })
        .unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(Rc::strong_count(&capture), 2);
    lp.close().unwrap();
    assert_eq!(Rc::strong_count(&capture), 1);
    assert!(task.cancelled());
    assert_eq!(lp.create_task(async {}).unwrap_err(), LoopError::Closed);
}

#[test]
fn a_hundred_thousand_concurrent_tasks() {
    let total = vrun(async {
        let tasks: Vec<_> = (0..100_000u64)
            .map(|i| {
                create_task(async move {
                    sleep(Duration::from_millis(i % 100)).await;
                    i
                })
            })
            .collect();
        assert!(evloop::all_tasks().len() >= 100_000);
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap();
        }
        total
    })
    .unwrap();
    assert_eq!(total, (0..100_000u64).sum());
}

#[test]
fn zero_sleeps_interleave_two_tasks() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let log2 = log.clone();
    vrun(async move {
        let step = |name: &'static str, log: Rc<RefCell<Vec<String>>>| async move {
            for i in 1..=2 {
                log.borrow_mut().push(format!("{name}{i}"));
                sleep(Duration::ZERO).await;
            }
        };
        let a = create_task(step("a", log2.clone()));
        let b = create_task(step("b", log2.clone()));
        a.await.unwrap();
        b.await.unwrap();
    })
    .unwrap();
    assert_eq!(*log.borrow(), ["a1", "b1", "a2", "b2"]);
}

#[test]
fn yield_now_lets_other_tasks_run() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let (l1, l2) = (log.clone(), log.clone());
    vrun(async move {
        let a = create_task(async move {
            l1.borrow_mut().push("a1");
            yield_now().await;
            l1.borrow_mut().push("a2");
        });
        let b = create_task(async move { l2.borrow_mut().push("b1") });
        a.await.unwrap();
        b.await.unwrap();
    })
    .unwrap();
    assert_eq!(*log.borrow(), ["a1", "b1", "a2"]);
}

#[test]
fn timeout_fails_only_after_the_inner_future_was_dropped() {
    let dropped = Rc::new(Cell::new(false));
    let flag = DropFlag(dropped.clone());
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
    let dropped = Rc::new(Cell::new(false));
    let flag = DropFlag(dropped.clone());
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

#[test]
fn task_group_first_failure_cancels_siblings_and_all_errors_are_collected() {
    let sibling_dropped = Rc::new(Cell::new(false));
    let flag = DropFlag(sibling_dropped.clone());
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

#[test]
fn a_panic_reaches_the_awaiter() {
    let outcome = vrun(async {
        let task = create_task(async {
            sleep(Duration::from_secs(1)).await;
            panic!("task blew up");
        });
        task.await
    })
    .unwrap();
    assert_eq!(
        outcome.unwrap_err(),
        TaskError::Panicked(evloop::Panic::new("task blew up"))
    );
}

#[test]
fn an_unawaited_panic_reaches_the_exception_handler() {
    let reports = vrun(async {
        let reports = record_reports();
        create_task(async { panic!("nobody listens") }).detach();
        // A handle dropped later, with the panic unretrieved, is reported too.
        let kept = create_task(async { panic!("dropped unread") });
        sleep(Duration::from_secs(1)).await;
        drop(kept);
        reports
    })
    .unwrap();
    let reports = reports.borrow();
    assert_eq!(reports.len(), 2, "{reports:?}");
    for (message, _) in reports.iter() {
        assert_eq!(message, "Task exception was never retrieved");
    }
    assert_eq!(reports[0].1.as_deref(), Some("panic: nobody listens"));
    assert_eq!(reports[1].1.as_deref(), Some("panic: dropped unread"));
}

/// Leaks on purpose (it forgets a task handle, see below), so `cargo xtask asan` excludes it by
/// name from the LeakSanitizer run.
#[test]
fn run_cancels_leftover_tasks_waits_for_them_and_reports_their_panics() {
    let dropped = Rc::new(Cell::new(false));
    let flag = DropFlag(dropped.clone());
    let reports = Rc::new(RefCell::new(None::<Reports>));
    let slot = reports.clone();
    vrun(async move {
        *slot.borrow_mut() = Some(record_reports());
        create_task(async move {
            let _guard = flag;
            sleep(HOUR).await;
        })
        .detach();
        let _kept = create_task(async {
            let _ = catch_cancel(sleep(HOUR)).await;
            if true {
                panic!("panicked while cleaning up");
            }
        });
        sleep(Duration::from_secs(1)).await;
        std::mem::forget(_kept); // keep the handle's slot alive: the shutdown reports it
    })
    .unwrap();
    assert!(dropped.get());
    let reports = reports.borrow_mut().take().unwrap();
    let reports = reports.borrow();
    assert!(
        reports.iter().any(
            |(m, e)| m == "unhandled exception during evloop::run() shutdown"
                && e.as_deref() == Some("panic: panicked while cleaning up")
        ),
        "{reports:?}"
    );
}

#[test]
fn a_main_panic_reaches_the_caller_after_the_clean_up() {
    let dropped = Rc::new(Cell::new(false));
    let flag = DropFlag(dropped.clone());
    let outcome = vrun(async move {
        create_task(async move {
            let _guard = flag;
            sleep(HOUR).await;
        })
        .detach();
        sleep(Duration::from_secs(1)).await;
        panic!("main failed");
    });
    assert!(dropped.get());
    assert_eq!(
        outcome.unwrap_err(),
        RunError::Task(TaskError::Panicked(evloop::Panic::new("main failed")))
    );
}

#[test]
fn nested_run_is_refused() {
    let outcome = evloop::run(async {
        let nested = evloop::run(async { 1 });
        let mut runner = Runner::new();
        let nested_runner = runner.run(async { 2 });
        (nested, nested_runner)
    })
    .unwrap();
    assert_eq!(outcome.0.unwrap_err(), RunError::NestedRun);
    assert_eq!(outcome.1.unwrap_err(), RunError::NestedRunnerRun);
}

#[test]
fn runner_reuses_its_loop_and_refuses_after_close() {
    let mut runner = Runner::new();
    let first = runner.get_loop().unwrap();
    let leftover = runner
        .run(async {
            create_task(sleep(HOUR)).detach();
            evloop::get_running_loop().unwrap().id()
        })
        .unwrap();
    assert_eq!(leftover, first.id());
    let second = runner.run(async { evloop::all_tasks().len() }).unwrap();
    assert_eq!(
        second, 2,
        "the leftover task and this main are both pending"
    );
    runner.close().unwrap();
    assert!(first.is_closed());
    runner.close().unwrap();
    assert_eq!(runner.run(async {}).unwrap_err(), RunError::RunnerClosed);
    assert_eq!(runner.get_loop().unwrap_err(), RunError::RunnerClosed);
    // Drop closes too.
    let lp = {
        let mut runner = Runner::new();
        runner.run(async {}).unwrap();
        runner.get_loop().unwrap()
    };
    assert!(lp.is_closed());
}

#[test]
fn run_until_complete_stopped_early_then_resumed() {
    let lp = EventLoop::builder().virtual_clock(true).build().unwrap();
    let stopper = lp.clone();
    let outcome = lp.run_until_complete(async move {
        stopper.stop();
        sleep(Duration::from_secs(1)).await;
        "finished"
    });
    assert_eq!(outcome.unwrap_err(), RunError::StoppedBeforeComplete);
    // The first task finishes during this run; its (disarmed) callback must not stop it.
    let value = lp
        .run_until_complete(async {
            sleep(Duration::from_secs(5)).await;
            "second"
        })
        .unwrap();
    assert_eq!(value, "second");
    lp.close().unwrap();
    assert_eq!(
        lp.run_until_complete(async {}).unwrap_err(),
        RunError::Loop(LoopError::Closed)
    );
}

#[test]
fn task_names_current_task_and_all_tasks() {
    vrun(async {
        let me = evloop::current_task().unwrap();
        assert!(me.name().starts_with("Task-"));
        let task = create_task(sleep(HOUR));
        assert_eq!(task.name(), format!("Task-{}", task.any().id()));
        task.set_name("sleeper");
        assert_eq!(task.name(), "sleeper");
        let names: Vec<String> = evloop::all_tasks().iter().map(|t| t.name()).collect();
        assert!(names.contains(&"sleeper".to_owned()));
        assert!(names.contains(&me.name()));
        task.abort();
        sleep(Duration::ZERO).await;
        let names: Vec<String> = evloop::all_tasks().iter().map(|t| t.name()).collect();
        assert!(!names.contains(&"sleeper".to_owned()));
    })
    .unwrap();
    assert!(evloop::current_task().is_none());
    assert!(evloop::all_tasks().is_empty());
}

#[test]
fn dropping_a_task_handle_does_not_cancel_it() {
    let finished = Rc::new(Cell::new(false));
    let finished2 = finished.clone();
    vrun(async move {
        drop(create_task(async move {
            sleep(Duration::from_secs(1)).await;
            finished2.set(true);
        }));
        sleep(Duration::from_secs(2)).await;
    })
    .unwrap();
    assert!(finished.get());
}

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
