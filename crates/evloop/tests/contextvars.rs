//! Context variables follow callbacks and tasks as asyncio's do (contracts A2, C1, C4, F3, G2).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evloop::contextvars::{Context, ContextError, ContextVar, copy_context};
use evloop::{
    EventLoop, ExceptionContext, ExecutorExt, LoopExt, Runner, create_task,
    create_task_with_context, sleep, to_thread,
};
use evloop_test_support::vrun;

/// What callbacks saw, in order.
type Seen<T> = Rc<RefCell<Vec<T>>>;

static REQUEST: ContextVar<u32> = ContextVar::new("request");
static COLOR: ContextVar<&'static str> = ContextVar::with_default("color", "red");

#[test]
fn a_task_runs_in_a_copy_of_the_context_current_at_create_task() {
    let (child_saw, parent_after) = vrun(async {
        REQUEST.set(1);
        let child = create_task(async {
            let saw = REQUEST.get();
            REQUEST.set(99); // the child's own copy
            sleep(Duration::ZERO).await;
            (saw, REQUEST.get())
        });
        REQUEST.set(2); // after create_task: not seen by the child
        let child_saw = child.await.unwrap();
        (child_saw, REQUEST.get())
    })
    .unwrap();
    assert_eq!(
        child_saw,
        (Some(1), Some(99)),
        "kept across the child's steps"
    );
    assert_eq!(parent_after, Some(2));
}

#[test]
fn a_task_can_be_given_a_context() {
    let seen = vrun(async {
        let mut ctx = Context::new();
        ctx.run(|| COLOR.set("blue"));
        let given = create_task_with_context(async { COLOR.get() }, &ctx);
        let current = create_task(async { COLOR.get() });
        (given.await.unwrap(), current.await.unwrap())
    })
    .unwrap();
    assert_eq!(seen, (Some("blue"), Some("red")));
}

#[test]
fn callbacks_capture_the_context_when_scheduled_and_run_in_a_copy() {
    let seen = vrun(async {
        let lp = evloop::get_running_loop().unwrap();
        let seen: Seen<(&str, Option<u32>)> = Rc::default();
        REQUEST.set(7);
        let (a, b, c) = (seen.clone(), seen.clone(), seen.clone());
        lp.call_soon(move || {
            a.borrow_mut().push(("soon", REQUEST.get()));
            REQUEST.set(100); // stays in the callback's copy
        })
        .unwrap();
        lp.call_later(Duration::from_millis(1), move || {
            b.borrow_mut().push(("later", REQUEST.get()))
        })
        .unwrap();
        lp.call_at(lp.time(), move || {
            c.borrow_mut().push(("at", REQUEST.get()))
        })
        .unwrap();
        REQUEST.set(8); // after scheduling: not seen by the callbacks
        sleep(Duration::from_millis(5)).await;
        let mut seen = seen.take();
        seen.push(("task", REQUEST.get()));
        seen
    })
    .unwrap();
    assert_eq!(
        seen,
        [
            ("soon", Some(7)),
            ("at", Some(7)),
            ("later", Some(7)),
            ("task", Some(8))
        ]
    );
}

#[test]
fn callbacks_can_be_given_a_context() {
    let seen = vrun(async {
        let lp = evloop::get_running_loop().unwrap();
        let mut ctx = Context::new();
        ctx.run(|| REQUEST.set(5));
        let seen: Rc<RefCell<Vec<Option<u32>>>> = Rc::default();
        let (a, b) = (seen.clone(), seen.clone());
        lp.call_soon_with_context(move || a.borrow_mut().push(REQUEST.get()), &ctx)
            .unwrap();
        lp.call_at_with_context(lp.time(), move || b.borrow_mut().push(REQUEST.get()), &ctx)
            .unwrap();
        sleep(Duration::from_millis(1)).await;
        seen.take()
    })
    .unwrap();
    assert_eq!(seen, [Some(5), Some(5)]);
}

#[test]
fn call_soon_threadsafe_runs_in_the_calling_threads_context() {
    let seen = vrun(async {
        let remote = evloop::get_running_loop().unwrap().remote();
        let seen = Arc::new(Mutex::new(None));
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut ctx = Context::new();
            ctx.run(|| {
                REQUEST.set(31);
                remote
                    .call_soon_threadsafe(move || *sink.lock().unwrap() = Some(REQUEST.get()))
                    .unwrap();
            });
        })
        .join()
        .unwrap();
        sleep(Duration::from_millis(1)).await;
        seen.lock().unwrap().take()
    })
    .unwrap();
    assert_eq!(seen, Some(Some(31)));
}

#[test]
fn to_thread_copies_the_context_and_run_in_executor_does_not() {
    let (to_thread_saw, executor_saw) = evloop::run(async {
        REQUEST.set(12);
        let to_thread_saw = to_thread(|| REQUEST.get()).await.unwrap();
        let lp = evloop::get_running_loop().unwrap();
        let executor_saw = lp
            .run_in_executor(None, || REQUEST.get())
            .unwrap()
            .await
            .unwrap();
        (to_thread_saw, executor_saw)
    })
    .unwrap();
    assert_eq!(to_thread_saw, Some(12));
    assert_eq!(
        executor_saw, None,
        "asyncio's run_in_executor does not copy contextvars"
    );
}

#[test]
fn a_runner_keeps_one_context_across_its_runs() {
    // CPython's test_run_keeps_context.
    let mut runner = Runner::with_builder(EventLoop::builder().virtual_clock(true));
    runner
        .run(async {
            REQUEST.set(3);
        })
        .unwrap();
    let second = runner.run(async { REQUEST.get() }).unwrap();
    runner.close().unwrap();
    assert_eq!(second, Some(3));
    assert_eq!(REQUEST.get(), None, "the caller's context is untouched");
}

#[test]
fn the_exception_handler_runs_in_the_context_of_what_failed() {
    let seen = vrun(async {
        let lp = evloop::get_running_loop().unwrap();
        let seen: Seen<(String, Option<u32>)> = Rc::default();
        let sink = seen.clone();
        lp.set_exception_handler(Some(Rc::new(
            move |_: &EventLoop, ctx: &ExceptionContext| {
                sink.borrow_mut().push((ctx.message.clone(), REQUEST.get()))
            },
        )));
        REQUEST.set(1);
        lp.call_soon(|| panic!("callback")).unwrap();
        REQUEST.set(2);
        let task = create_task(async {
            REQUEST.set(3);
            sleep(Duration::ZERO).await;
            panic!("task");
        });
        sleep(Duration::from_millis(1)).await;
        drop(task); // unretrieved: reported when the handle goes
        REQUEST.set(4);
        seen.take()
    })
    .unwrap();
    assert!(seen[0].0.starts_with("Exception in callback"), "{seen:?}");
    assert_eq!(seen[0].1, Some(1));
    assert_eq!(seen[1].0, "Task exception was never retrieved");
    assert_eq!(seen[1].1, Some(3), "the task's own context");
}

#[test]
fn a_token_resets_across_steps_of_one_task_but_not_in_another_context() {
    let outcome = vrun(async {
        let token = REQUEST.set(1);
        sleep(Duration::ZERO).await;
        REQUEST.set(2);
        sleep(Duration::ZERO).await;
        let other = Context::new().run(|| REQUEST.set(5));
        let refused = REQUEST.reset(other);
        REQUEST.reset(token).unwrap();
        (refused, REQUEST.get())
    })
    .unwrap();
    assert_eq!(outcome, (Err(ContextError::DifferentContext), None));
    assert_eq!(
        ContextError::DifferentVar.to_string(),
        "Token was created by a different ContextVar"
    );
}

#[test]
fn copy_context_is_a_snapshot() {
    let mut outer = Context::new();
    outer.run(|| {
        REQUEST.set(1);
        let snapshot = copy_context();
        REQUEST.set(2);
        assert_eq!(snapshot.get(&REQUEST), Some(1));
        assert_eq!(snapshot.len(), 1);
    });
}

#[test]
fn a_task_reports_its_context() {
    let value = vrun(async {
        let task = create_task(async {
            REQUEST.set(9);
            sleep(Duration::from_secs(1)).await;
        });
        sleep(Duration::from_millis(1)).await;
        let value = task.get_context().get(&REQUEST);
        task.abort();
        value
    })
    .unwrap();
    assert_eq!(value, Some(9));
}

#[test]
fn run_until_complete_starts_from_the_callers_context() {
    let lp = EventLoop::builder().virtual_clock(true).build().unwrap();
    let mut ctx = Context::new();
    let seen = ctx.run(|| {
        COLOR.set("green");
        lp.run_until_complete(async { COLOR.get() }).unwrap()
    });
    lp.close().unwrap();
    assert_eq!(seen, Some("green"));
}
