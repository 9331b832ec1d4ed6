//! Context variables against CPython's expectations: `test_tasks.py`'s `test_context_1` to
//! `test_context_6` and `test_get_context`, `Lib/test/test_context.py`'s `ContextTest`, and the
//! done-callback rule of contract H2 (a callback runs in the context it was registered in).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use evloop::contextvars::{Context, ContextError, ContextVar, copy_context};
use evloop::{LoopExt, create_task, create_task_with_context, gather, sleep};
use evloop_test_support::{Rng, vrun};

static CVAR: ContextVar<&'static str> = ContextVar::with_default("cvar", "nope");
static NUM: ContextVar<u64> = ContextVar::new("num");
static VAR: ContextVar<&'static str> = ContextVar::new("var");

// test_tasks.py: test_context_1: a task runs in a copy of the context at create_task.
#[test]
fn context_1() {
    vrun(async {
        assert_eq!(CVAR.get(), Some("nope"));
        let subtask = create_task(async {
            sleep(Duration::from_millis(10)).await;
            assert_eq!(CVAR.get(), Some("nope"));
            CVAR.set("something else");
        });
        CVAR.set("yes");
        assert_eq!(CVAR.get(), Some("yes"));
        subtask.await.unwrap();
        assert_eq!(CVAR.get(), Some("yes"));
    })
    .unwrap();
    assert_eq!(CVAR.get(), Some("nope"));
}

// test_tasks.py: test_context_2: what a future's done callback sets does not pollute the task;
// the task keeps its values across its awaits.
#[test]
fn context_2() {
    vrun(async {
        let lp = evloop::get_running_loop().unwrap();
        assert_eq!(CVAR.get(), Some("nope"));
        let names = [
            ["yes0", "yes0-0", "yes1-0", "yes2-0"],
            ["yes1", "yes0-1", "yes1-1", "yes2-1"],
        ];
        for [outer, inner @ ..] in names {
            let fut = lp.create_future::<()>();
            fut.add_done_callback(|_| {
                CVAR.set("something else"); // must not reach the task
            })
            .unwrap();
            CVAR.set(outer);
            let setter = fut.clone();
            lp.call_soon(move || setter.set_result(()).unwrap())
                .unwrap();
            fut.await.unwrap();
            assert_eq!(CVAR.get(), Some(outer));
            for value in inner {
                CVAR.set(value);
                sleep(Duration::from_millis(1)).await;
                assert_eq!(CVAR.get(), Some(value));
            }
        }
    })
    .unwrap();
    assert_eq!(CVAR.get(), Some("nope"));
}

// test_tasks.py: test_context_3: a hundred tasks, each changing the variable and sleeping at
// random, each sees only its own values.
#[test]
fn context_3() {
    vrun(async {
        let mut rng = Rng::new(3);
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let num = rng.below(11);
                let delays = rng.take(10, 50);
                create_task(async move {
                    for (i, delay) in delays.into_iter().enumerate() {
                        NUM.set(num + i as u64);
                        sleep(Duration::from_millis(1 + delay)).await;
                        assert_eq!(NUM.get(), Some(num + i as u64));
                    }
                    Ok::<(), evloop::TaskError>(())
                })
            })
            .collect();
        gather(tasks).await.unwrap();
    })
    .unwrap();
    assert_eq!(NUM.get(), None);
}

// test_tasks.py: test_context_4 / test_context_5 / test_context_6: a task given a context runs
// in that context itself, so what it sets is seen in `ctx` afterwards ([None, 1, 2]).
#[test]
#[ignore = "open difference: create_task_with_context runs the task in a copy of the context; asyncio runs it in the Context object given, whose later reads see the task's sets"]
fn context_4() {
    static CV: ContextVar<u32> = ContextVar::new("cvar4");
    let ret = vrun(async {
        let coro = |val| async move {
            sleep(Duration::ZERO).await;
            CV.set(val);
        };
        let mut ret = Vec::new();
        let ctx = copy_context();
        ret.push(ctx.get(&CV));
        create_task_with_context(coro(1), &ctx).await.unwrap();
        ret.push(ctx.get(&CV));
        create_task_with_context(coro(2), &ctx).await.unwrap();
        ret.push(ctx.get(&CV));
        ret
    })
    .unwrap();
    assert_eq!(ret, [None, Some(1), Some(2)]);
}

// test_tasks.py: test_get_context: a task's context holds what the task set.
#[test]
fn get_context() {
    let seen = vrun(async {
        let mut ctx = Context::new();
        ctx.run(|| VAR.set("given"));
        let task = create_task_with_context(
            async {
                VAR.set("set by the task");
                sleep(Duration::ZERO).await;
            },
            &ctx,
        );
        sleep(Duration::ZERO).await;
        let during = task.get_context().get(&VAR);
        task.await.unwrap();
        during
    })
    .unwrap();
    assert_eq!(seen, Some("set by the task"));
}

// Contract H2: a done callback runs in the context current when it was registered (asyncio's
// add_done_callback copies the context then), whoever completes the future.
#[test]
fn done_callback_runs_in_the_context_it_was_registered_in() {
    let seen = vrun(async {
        let lp = evloop::get_running_loop().unwrap();
        let seen: Rc<RefCell<Vec<Option<&str>>>> = Rc::default();
        let fut = lp.create_future::<()>();
        VAR.set("registering");
        let sink = seen.clone();
        fut.add_done_callback(move |_| sink.borrow_mut().push(VAR.get()))
            .unwrap();
        let task = create_task(async {});
        let sink = seen.clone();
        task.add_done_callback(move || sink.borrow_mut().push(VAR.get()));
        // Completed from another context.
        let setter = fut.clone();
        let mut other = Context::new();
        other.run(|| VAR.set("completing"));
        lp.call_soon_with_context(move || setter.set_result(()).unwrap(), &other)
            .unwrap();
        task.await.unwrap();
        fut.await.unwrap();
        sleep(Duration::ZERO).await;
        seen.take()
    })
    .unwrap();
    assert_eq!(seen, [Some("registering"), Some("registering")]);
}

// test_context.py: test_context_run_4: contexts nest, and a copy taken inside one holds its
// variables.
#[test]
fn context_run_4() {
    let mut ctx1 = Context::new();
    let mut ctx2 = Context::new();
    let cur = ctx1.run(|| {
        assert_eq!(VAR.get(), None);
        VAR.set("spam");
        ctx2.run(|| assert_eq!(VAR.get(), None));
        assert_eq!(VAR.get(), Some("spam"));
        let cur = copy_context();
        assert_eq!(cur.len(), 1);
        assert_eq!(cur.get(&VAR), Some("spam"));
        cur
    });
    assert_eq!(ctx1.get(&VAR), Some("spam"));
    assert!(cur.contains(&VAR));
}

// test_context.py: test_context_run_5: a failing run leaves the outer context untouched.
#[test]
fn context_run_5() {
    let mut ctx = Context::new();
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ctx.run(|| {
            assert_eq!(VAR.get(), None);
            VAR.set("spam");
            panic!("ZeroDivisionError");
        })
    }));
    assert!(failed.is_err());
    assert_eq!(VAR.get(), None);
}

// test_context.py: test_context_getset_1: set/reset, old values, and a copy that keeps what was
// set when it was taken. (Resetting a token twice, "has already been used", cannot compile:
// `reset` consumes it, deliberate difference 19.)
#[test]
fn context_getset_1() {
    static C: ContextVar<&'static str> = ContextVar::new("c");
    let mut isolated = Context::new();
    isolated.run(|| {
        assert_eq!(C.get(), None);
        let t0 = C.set("42");
        assert_eq!(C.get(), Some("42"));
        assert_eq!(t0.old_value(), None, "Token.MISSING");
        let t = C.set("spam");
        assert_eq!(C.get(), Some("spam"));
        assert_eq!(t.old_value(), Some("42"));
        C.reset(t).unwrap();
        assert_eq!(C.get(), Some("42"));
        C.set("spam2");
        let ctx1 = copy_context();
        assert!(ctx1.contains(&C));
        C.reset(t0).unwrap();
        assert_eq!(C.get(), None);
        assert!(ctx1.contains(&C));
        assert_eq!(ctx1.get(&C), Some("spam2"));
        assert_eq!(ctx1.len(), 1);
        let ctx2 = copy_context();
        assert!(!ctx2.contains(&C));
        assert_eq!(ctx2.get(&C), None);
        assert!(ctx2.is_empty());
    });
}

// test_context.py: test_context_getset_2: a token of another variable ("by a different").
#[test]
fn context_getset_2() {
    static V1: ContextVar<i32> = ContextVar::new("v1");
    static V2: ContextVar<i32> = ContextVar::new("v2");
    let mut isolated = Context::new();
    isolated.run(|| {
        let t1 = V1.set(42);
        let error = V2.reset(t1).unwrap_err();
        assert_eq!(error, ContextError::DifferentVar);
        assert_eq!(
            error.to_string(),
            "Token was created by a different ContextVar"
        );
    });
}

// test_context.py: test_context_getset_4: a token made inside another context ("different
// Context").
#[test]
fn context_getset_4() {
    static C: ContextVar<i32> = ContextVar::with_default("c", 42);
    let mut ctx = Context::new();
    let tok = ctx.run(|| C.set(1));
    let error = C.reset(tok).unwrap_err();
    assert_eq!(error, ContextError::DifferentContext);
    assert!(error.to_string().contains("different Context"));
}

// test_context.py: test_context_getset_5: what a copy's run sets stays in the copy.
#[test]
fn context_getset_5() {
    static C: ContextVar<Vec<i32>> = ContextVar::new("c5");
    let mut isolated = Context::new();
    isolated.run(|| {
        C.set(Vec::new());
        copy_context().run(|| {
            C.set(Vec::new());
            let mut v = C.get().unwrap();
            v.push(42);
            C.set(v);
            assert_eq!(C.get().unwrap(), [42]);
        });
        assert_eq!(C.get().unwrap(), Vec::<i32>::new());
    });
}

// test_context.py: test_context_copy_1: a copy is independent of the original both ways.
#[test]
fn context_copy_1() {
    static C: ContextVar<i32> = ContextVar::with_default("c", 42);
    let mut ctx1 = Context::new();
    let mut ctx2 = ctx1.run(|| {
        C.set(10);
        let ctx2 = copy_context(); // ctx1.copy()
        assert_eq!(ctx2.get(&C), Some(10));
        C.set(20);
        assert_eq!(ctx2.get(&C), Some(10));
        ctx2
    });
    assert_eq!(ctx1.get(&C), Some(20));
    ctx2.run(|| {
        assert_eq!(C.get(), Some(10));
        C.set(30);
        assert_eq!(C.get(), Some(30));
    });
    assert_eq!(ctx1.get(&C), Some(20));
    assert_eq!(ctx2.get(&C), Some(30));
}
