//! CPython's `Lib/test/test_asyncio/test_taskgroups.py` (3.12/3.13), ported. evloop's group is
//! joined with `join()` instead of `async with` (deliberate difference 9): the "body" of a
//! CPython test is the code between `TaskGroup::new()` and `join()`, and a child's failure is an
//! `Err` (`ZeroDivisionError` here is `Err("ZeroDivisionError")`).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use super::ms;
use evloop::{
    Cancelled, ChildError, SpawnError, Task, TaskError, TaskGroup, TaskGroupError, catch_cancel,
    create_task, current_task, sleep,
};
use evloop_test_support::vrun;

type Group = TaskGroup<&'static str>;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn failed(errors: &[&'static str]) -> TaskGroupError<&'static str> {
    TaskGroupError {
        errors: errors.iter().map(|e| ChildError::Failed(*e)).collect(),
    }
}

/// CPython's `async def foo(): await asyncio.sleep(t); return v`.
async fn value_after(t: Duration, v: i32) -> Result<i32, &'static str> {
    sleep(t).await;
    Ok(v)
}

/// CPython's `async def foo1(): await asyncio.sleep(t); 1 / 0`.
async fn fail_after(t: Duration) -> Result<(), &'static str> {
    sleep(t).await;
    Err("ZeroDivisionError")
}

/// A child that counts its cancellation in `num` and re-raises it (CPython's `foo` of
/// test_cancellation).
fn counts_cancel(
    num: &Rc<Cell<u32>>,
    t: Duration,
) -> impl Future<Output = Result<(), &'static str>> + 'static {
    let num = num.clone();
    async move {
        if let Err(cancelled) = catch_cancel(sleep(t)).await {
            num.set(num.get() + 1);
            cancelled.raise::<()>().await;
        }
        Ok(())
    }
}

/// CPython's `await asyncio.sleep(0.1); self.assertFalse(r.done()); r.cancel(msg); await r`.
async fn cancel_after_100ms<T: 'static>(r: Task<T>, message: Option<&str>) -> Result<T, TaskError> {
    sleep(ms(100)).await;
    assert!(!r.done());
    match message {
        Some(message) => r.cancel_with(message),
        None => r.cancel(),
    };
    r.await
}

/// test_taskgroup_01 and _02: two children, the second started after `pause` if given.
fn two_children(pause: Option<Duration>) {
    let (t1, t2) = vrun(async move {
        let g = Group::new();
        let mut t1 = g.spawn(value_after(ms(100), 42)).unwrap();
        if let Some(pause) = pause {
            sleep(pause).await;
        }
        let mut t2 = g.spawn(value_after(ms(200), 11)).unwrap();
        g.join().await.unwrap();
        (t1.take_result(), t2.take_result())
    })
    .unwrap();
    assert_eq!(t1, Some(Ok(Some(42))));
    assert_eq!(t2, Some(Ok(Some(11))));
}

// test_taskgroup_01
#[test]
fn taskgroup_01() {
    two_children(None);
}

// test_taskgroup_02: a child started after the body slept.
#[test]
fn taskgroup_02() {
    two_children(Some(ms(150)));
}

// test_taskgroup_03: a child cancelled explicitly; everything else goes on.
#[test]
fn taskgroup_03() {
    let (t1_cancelled, t2) = vrun(async {
        let g = Group::new();
        let t1 = g.spawn(value_after(secs(1), 42)).unwrap();
        sleep(ms(150)).await;
        t1.cancel();
        let mut t2 = g.spawn(value_after(ms(200), 11)).unwrap();
        g.join().await.unwrap();
        (t1.cancelled(), t2.take_result())
    })
    .unwrap();
    assert!(t1_cancelled);
    assert_eq!(t2, Some(Ok(Some(11))));
}

// test_taskgroup_04: a failing child cancels its sibling; the failures come out together.
#[test]
fn taskgroup_04() {
    let (outcome, num, t2_cancel, t2_cancelled) = vrun(async {
        let num = Rc::new(Cell::new(0));
        let t2_cancel = Rc::new(Cell::new(0));
        let t2: Rc<Cell<Option<Task<Option<()>>>>> = Rc::default();
        let (n, slot, seen) = (num.clone(), t2.clone(), t2_cancel.clone());
        let runner = create_task(async move {
            let g = Group::new();
            g.spawn(fail_after(ms(100))).unwrap().detach();
            let n2 = n.clone();
            let foo2 = async move {
                if let Err(cancelled) = catch_cancel(sleep(secs(1))).await {
                    seen.set(1);
                    cancelled.raise::<()>().await;
                }
                n2.set(n2.get() + 1);
                Ok(())
            };
            slot.set(Some(g.spawn(foo2).unwrap()));
            g.join().await?;
            n.set(n.get() + 10);
            Ok::<(), TaskGroupError<&str>>(())
        });
        let outcome = runner.await.unwrap();
        let t2 = t2.take().unwrap();
        (outcome, num.get(), t2_cancel.get(), t2.cancelled())
    })
    .unwrap();
    assert_eq!(outcome, Err(failed(&["ZeroDivisionError"])));
    assert_eq!(num, 0);
    assert_eq!(t2_cancel, 1);
    assert!(t2_cancelled);
}

// test_cancel_children_on_child_error: the first failure cancels the siblings and the body.
#[test]
#[ignore = "deliberate difference 9 falls short: a child's failure cancels its siblings but not the parent task's body (asyncio cancels the parent)"]
fn cancel_children_on_child_error() {
    let runner_cancel = vrun(async {
        let num = Rc::new(Cell::new(0));
        let runner_cancel = Rc::new(Cell::new(false));
        let flag = runner_cancel.clone();
        let runner = create_task(async move {
            let g = Group::new();
            for _ in 0..3 {
                g.spawn(fail_after(ms(100))).unwrap().detach();
            }
            g.spawn(counts_cancel(&num, secs(5))).unwrap().detach();
            if let Err(cancelled) = catch_cancel(sleep(secs(10))).await {
                flag.set(true);
                cancelled.raise::<()>().await;
            }
            g.join().await
        });
        let _ = runner.await;
        runner_cancel.get()
    })
    .unwrap();
    assert!(runner_cancel);
}

// test_cancellation: cancelling the task that waits in join() cancels the children, waits for
// them, and ends the task cancelled with the message.
#[test]
fn cancellation() {
    let (outcome, num) = vrun(async {
        let num = Rc::new(Cell::new(0));
        let counter = num.clone();
        let r = create_task(async move {
            let g = Group::new();
            for _ in 0..5 {
                g.spawn(counts_cancel(&counter, secs(5))).unwrap().detach();
            }
            g.join().await
        });
        (cancel_after_100ms(r, Some("test")).await, num.get())
    })
    .unwrap();
    assert_eq!(
        outcome,
        Err(TaskError::Cancelled(Cancelled::with_message("test")))
    );
    assert_eq!(
        num, 5,
        "every child finished cancelling before the runner ended"
    );
}

// test_taskgroup_07: the body's own wait is cancelled too, and the children are cancelled
// (evloop's dropped group cannot wait for them, but they take their cancellation before the
// runner's awaiter resumes).
#[test]
fn taskgroup_07() {
    let num = vrun(async {
        let num = Rc::new(Cell::new(0));
        let counter = num.clone();
        let r = create_task(async move {
            let g = Group::new();
            for _ in 0..5 {
                g.spawn(counts_cancel(&counter, secs(5))).unwrap().detach();
            }
            if let Err(cancelled) = catch_cancel(sleep(secs(10))).await {
                counter.set(counter.get() + 10);
                cancelled.raise::<()>().await;
            }
            g.join().await
        });
        sleep(ms(100)).await;
        r.cancel();
        let _ = r.await;
        num.get()
    })
    .unwrap();
    assert_eq!(num, 15);
}

// test_cancellation_in_body: children failing at the moment the runner is cancelled; the
// runner ends cancelled with the message.
#[test]
fn cancellation_in_body() {
    let outcome = vrun(async {
        let r = create_task(async {
            let g = Group::new();
            for _ in 0..5 {
                g.spawn(fail_after(ms(100))).unwrap().detach();
            }
            g.join().await
        });
        cancel_after_100ms(r, Some("test")).await
    })
    .unwrap();
    assert_eq!(
        outcome,
        Err(TaskError::Cancelled(Cancelled::with_message("test")))
    );
}

// test_taskgroup_09: the body fails after the children started; they are cancelled by the time
// the failure reaches the caller.
#[test]
#[ignore = "deliberate difference 9 falls short: a group dropped by a failing body cancels its children but cannot wait for them (no async drop)"]
fn taskgroup_09() {
    let (t1, t2) = vrun(async {
        let (t1, t2) = (Rc::new(Cell::new(None)), Rc::new(Cell::new(None)));
        let (s1, s2) = (t1.clone(), t2.clone());
        let runner = async move {
            let g = Group::new();
            s1.set(Some(g.spawn(value_after(secs(1), 42)).unwrap().any()));
            s2.set(Some(g.spawn(value_after(secs(2), 11)).unwrap().any()));
            sleep(ms(100)).await;
            Err::<(), _>("ZeroDivisionError")?;
            g.join().await.map_err(|_| "group")
        };
        assert_eq!(runner.await, Err("ZeroDivisionError"));
        let (t1, t2) = (t1.take().unwrap(), t2.take().unwrap());
        (t1.cancelled(), t2.cancelled())
    })
    .unwrap();
    assert!(t1, "cancelled by the time the failure reaches the caller");
    assert!(t2);
}

// test_taskgroup_11 / test_taskgroup_12: nested groups, the runner cancelled while the inner
// children fail.
#[test]
fn taskgroup_12() {
    let outcome = vrun(async {
        let r = create_task(async {
            let g1 = Group::new();
            g1.spawn(async {
                sleep(secs(10)).await;
                Ok(())
            })
            .unwrap()
            .detach();
            let g2 = Group::new();
            for _ in 0..5 {
                g2.spawn(fail_after(ms(100))).unwrap().detach();
            }
            let inner = g2.join().await;
            (inner, g1.join().await)
        });
        cancel_after_100ms(r, None).await
    })
    .unwrap();
    assert!(outcome.unwrap_err().is_cancelled());
}

/// The runner of test_taskgroup_15 and _16: a child fails while the body, cancelled, cleans up
/// for 0.5 s and re-raises.
async fn crash_soon_runner() -> Result<(), TaskGroupError<&'static str>> {
    let g1 = Group::new();
    g1.spawn(fail_after(ms(300))).unwrap().detach();
    if let Err(cancelled) = catch_cancel(sleep(secs(10))).await {
        sleep(ms(500)).await;
        cancelled.raise::<()>().await;
    }
    g1.join().await
}

// test_taskgroup_15
#[test]
fn taskgroup_15() {
    let outcome =
        vrun(async { cancel_after_100ms(create_task(crash_soon_runner()), None).await }).unwrap();
    assert!(outcome.unwrap_err().is_cancelled());
}

// test_taskgroup_16: the same, one task further down.
#[test]
fn taskgroup_16() {
    let outcome = vrun(async {
        let r = create_task(async { create_task(crash_soon_runner()).await });
        cancel_after_100ms(r, None).await
    })
    .unwrap();
    assert!(outcome.unwrap_err().is_cancelled());
}

// test_taskgroup_17: a group with no children, its body cancelled.
#[test]
fn taskgroup_17() {
    let (outcome, num) = vrun(async {
        let num = Rc::new(Cell::new(0));
        let counter = num.clone();
        let r = create_task(async move {
            let g = Group::new();
            if let Err(cancelled) = catch_cancel(sleep(secs(10))).await {
                counter.set(counter.get() + 10);
                cancelled.raise::<()>().await;
            }
            g.join().await
        });
        (cancel_after_100ms(r, None).await, num.get())
    })
    .unwrap();
    assert!(outcome.unwrap_err().is_cancelled());
    assert_eq!(num, 10);
}

// test_taskgroup_22: the runner cancelled while it joins two sleeping children.
#[test]
fn taskgroup_22() {
    let (outcome, children) = vrun(async {
        let children: Rc<Cell<Option<[evloop::AnyTask; 2]>>> = Rc::default();
        let slot = children.clone();
        let r = create_task(async move {
            let g = Group::new();
            let a = g.spawn(value_after(secs(1), 42)).unwrap().any();
            let b = g.spawn(value_after(secs(2), 11)).unwrap().any();
            slot.set(Some([a, b]));
            g.join().await
        });
        sleep(ms(50)).await;
        r.cancel();
        (r.await, children.take().unwrap())
    })
    .unwrap();
    assert!(outcome.unwrap_err().is_cancelled());
    assert!(children.iter().all(evloop::AnyTask::cancelled));
}

// test_taskgroup_task_name
#[test]
fn taskgroup_task_name() {
    let name = vrun(async {
        let g = Group::new();
        let t = g
            .spawn(async { Ok(current_task().unwrap().name()) })
            .unwrap();
        t.set_name("yolo");
        assert_eq!(t.name(), "yolo");
        let mut t = t;
        g.join().await.unwrap();
        t.take_result()
    })
    .unwrap();
    assert_eq!(name, Some(Ok(Some("yolo".to_owned()))));
}

// test_taskgroup_no_create_task_after_failure (from the body, since children cannot reach the
// group): "TaskGroup is shutting down".
#[test]
fn taskgroup_no_create_task_after_failure() {
    let (refused, outcome) = vrun(async {
        let g = Group::new();
        g.spawn(fail_after(ms(1))).unwrap().detach();
        g.spawn(async {
            sleep(secs(1)).await;
            Ok(())
        })
        .unwrap()
        .detach();
        sleep(ms(10)).await;
        let refused = g.spawn(fail_after(ms(1))).map(drop);
        (refused, g.join().await)
    })
    .unwrap();
    assert_eq!(refused, Err(SpawnError::ShuttingDown));
    assert_eq!(
        SpawnError::ShuttingDown.to_string(),
        "TaskGroup is shutting down"
    );
    assert_eq!(outcome, Err(failed(&["ZeroDivisionError"])));
}

// test_cancelling_level_preserved / test_cancellation_does_not_leak_out_of_tg: a group's
// failure leaves the parent task uncancelled, and it goes on.
#[test]
fn cancellation_does_not_leak_out_of_tg() {
    let (outcome, cancelling, went_on) = vrun(async {
        let g = Group::new();
        g.spawn(fail_after(Duration::ZERO)).unwrap().detach();
        let outcome = g.join().await;
        let cancelling = current_task().unwrap().cancelling();
        sleep(Duration::ZERO).await;
        (outcome, cancelling, true)
    })
    .unwrap();
    assert_eq!(outcome, Err(failed(&["ZeroDivisionError"])));
    assert_eq!(cancelling, 0);
    assert!(went_on);
    assert_eq!(
        failed(&["ZeroDivisionError"]).to_string(),
        "unhandled errors in a TaskGroup (1 sub-exception)\n  ZeroDivisionError"
    );
}

// A group waited on by wait_for: on expiry the children are cancelled and TimeoutError comes
// once they have ended (the group is what join() is suspended on).
#[test]
fn wait_for_a_joining_group_waits_for_its_children() {
    let (outcome, num) = vrun(async {
        let num = Rc::new(Cell::new(0));
        let g = Group::new();
        for _ in 0..3 {
            g.spawn(counts_cancel(&num, secs(5))).unwrap().detach();
        }
        let outcome = evloop::wait_for(g.join(), ms(10)).await;
        (outcome, num.get())
    })
    .unwrap();
    assert_eq!(outcome, Err(evloop::TimeoutError));
    assert_eq!(num, 3);
}

// test_cancellation with children whose clean-up takes time: the runner ends after them (asyncio's
// `__aexit__` waits for the children before it re-raises the cancellation).
#[test]
fn cancellation_waits_for_the_childrens_async_clean_up() {
    let (outcome, num) = vrun(async {
        let num = Rc::new(Cell::new(0));
        let counter = num.clone();
        let r = create_task(async move {
            let g = Group::new();
            for _ in 0..5 {
                let counter = counter.clone();
                g.spawn(async move {
                    if let Err(cancelled) = catch_cancel(sleep(secs(5))).await {
                        sleep(ms(5)).await;
                        counter.set(counter.get() + 1);
                        cancelled.raise::<()>().await;
                    }
                    Ok(())
                })
                .unwrap()
                .detach();
            }
            g.join().await
        });
        sleep(ms(100)).await;
        r.cancel_with("test");
        (r.await, num.get())
    })
    .unwrap();
    assert_eq!(
        outcome,
        Err(TaskError::Cancelled(Cancelled::with_message("test")))
    );
    assert_eq!(num, 5);
}
