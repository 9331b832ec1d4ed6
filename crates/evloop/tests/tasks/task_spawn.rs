//! Spawning and running tasks: the loop runs them in order of readiness, a panic reaches
//! whoever awaits the task or else the exception handler, names and the task registry (asyncio
//! sections B3, G).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evloop::{TaskError, create_task, sleep, yield_now};

use crate::HOUR;
use evloop_test_support::{record_running_reports, vrun};

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
    assert!(file.ends_with("tests/tasks/task_spawn.rs"), "{file}");
    assert_eq!(at, line);
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
    assert_eq!(total, (0..100_000u64).sum::<u64>());
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
        let reports = record_running_reports();
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
    for report in reports.iter() {
        assert_eq!(report.message, "Task exception was never retrieved");
    }
    assert_eq!(
        reports[0].exception.as_deref(),
        Some("panic: nobody listens")
    );
    assert_eq!(
        reports[1].exception.as_deref(),
        Some("panic: dropped unread")
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

/// asyncio numbers tasks `Task-1`, `Task-2`... in creation order. Ids here stay in creation
/// order on each thread, and tasks created on several threads at once never share one.
#[test]
fn task_ids_follow_creation_order_on_a_thread_and_are_unique_across_threads() {
    fn ids(n: usize) -> Vec<u64> {
        vrun(async move {
            let tasks: Vec<_> = (0..n).map(|_| create_task(async {})).collect();
            let ids = tasks.iter().map(|t| t.any().id()).collect();
            for task in tasks {
                task.await.unwrap();
            }
            ids
        })
        .unwrap()
    }
    // More than a thread's block of ids, so that each thread takes several.
    let threads: Vec<_> = (0..4).map(|_| std::thread::spawn(|| ids(3000))).collect();
    let mut all = Vec::new();
    for thread in threads {
        let ids = thread.join().unwrap();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "creation order on a thread"
        );
        all.extend(ids);
    }
    let mut seen = all.clone();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), all.len(), "an id was given twice");
    let here = ids(3);
    assert_eq!(
        (here[1], here[2]),
        (here[0] + 1, here[0] + 2),
        "consecutive on one thread"
    );
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
