//! The task dump: pending tasks with their names, creation sites and what each awaits, as a tree
//! of who awaits whom; printable on a signal from a running program.

use std::time::Duration;

use evloop::{Awaited, LoopExt, TaskDump};

#[test]
fn the_dump_is_a_tree_of_who_awaits_whom() {
    let (dump, future_line) = evloop::run(async {
        let lp = evloop::get_running_loop().unwrap();
        let future_line = line!() + 1;
        let never = lp.create_future::<u32>();
        let waiting = never.clone();
        let gathering = evloop::create_task(async move {
            let on_future = async move { Ok::<u32, anyhow::Error>(waiting.await?) };
            let sleeping = async {
                evloop::sleep(Duration::from_secs(3600)).await;
                Ok::<u32, anyhow::Error>(0)
            };
            let _ = evloop::gather([
                Box::pin(on_future)
                    as std::pin::Pin<
                        Box<dyn std::future::Future<Output = Result<u32, anyhow::Error>>>,
                    >,
                Box::pin(sleeping),
            ])
            .await;
        });
        gathering.set_name("gathering");
        let top = evloop::create_task(gathering);
        top.set_name("top");
        evloop::sleep(Duration::from_millis(5)).await;
        let dump = evloop::task_dump();
        top.cancel();
        (dump, future_line)
    })
    .unwrap();
    // main (taking the dump), top, gathering and the gather's two children.
    assert_eq!(dump.tasks.len(), 5, "{dump:?}");
    let by_name = |name: &str| dump.tasks.iter().find(|t| t.name == name).unwrap();
    let (top, gathering) = (by_name("top"), by_name("gathering"));
    assert_eq!(top.awaiting, Some(Awaited::Task(gathering.id)));
    let Some(Awaited::Gather(children)) = &gathering.awaiting else {
        panic!("gathering awaits {:?}", gathering.awaiting);
    };
    assert_eq!(children.len(), 2);
    let child = |id: u64| dump.tasks.iter().find(|t| t.id == id).unwrap();
    match &child(children[0]).awaiting {
        Some(Awaited::Future { what, made_at }) => {
            assert_eq!(what, "LoopFuture<u32>");
            assert_eq!(made_at.line(), future_line);
            assert!(made_at.file().ends_with("task_dump.rs"));
        }
        other => panic!("the first child awaits {other:?}"),
    }
    assert_eq!(
        child(children[1]).awaiting,
        None,
        "a sleep is not one of the named awaitables"
    );
    assert!(top.created_at.file().ends_with("task_dump.rs"));

    let text = dump.to_string();
    let line_of = |needle: String| {
        text.lines()
            .find(|l| l.contains(&needle))
            .unwrap_or_else(|| panic!("no {needle} in\n{text}"))
            .to_owned()
    };
    let indent = |line: String| line.len() - line.trim_start().len();
    // top, then the task it awaits one level in, then the gather's children another level in.
    assert_eq!(
        indent(line_of(format!("top (Task-{}) created at", top.id))),
        0
    );
    assert_eq!(
        indent(line_of(format!(
            "gathering (Task-{}) created at",
            gathering.id
        ))),
        4
    );
    for id in children {
        assert_eq!(indent(line_of(format!("(Task-{id}) created at"))), 8);
    }
    assert!(text.contains("awaits gather of 2 tasks"), "{text}");
    assert!(text.contains("awaits LoopFuture<u32> made at"), "{text}");
}

#[test]
fn outside_a_loop_the_dump_is_empty() {
    assert!(evloop::task_dump().tasks.is_empty());
    let lp = evloop::EventLoop::new().unwrap();
    assert!(TaskDump::of(&lp).tasks.is_empty());
    lp.close().unwrap();
}

const CHILD_ENV: &str = "EVLOOP_TASK_DUMP_CHILD";

/// A running program prints its dump on SIGUSR1 (in a child process: it changes a signal's
/// disposition).
#[test]
fn a_running_program_prints_its_dump_on_a_signal() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let lp = evloop::EventLoop::new().unwrap();
        lp.run_until_complete(async {
            let lp = evloop::get_running_loop().unwrap();
            TaskDump::print_on_signal(&lp, libc::SIGUSR1).unwrap();
            let stuck = evloop::create_task(lp.create_future::<()>());
            stuck.set_name("stuck-worker");
            evloop::sleep(Duration::from_millis(1)).await;
            // SAFETY: raising a signal that now has a handler.
            unsafe { libc::raise(libc::SIGUSR1) };
            evloop::sleep(Duration::from_millis(10)).await;
            stuck.cancel();
        })
        .unwrap();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "task_dump::a_running_program_prints_its_dump_on_a_signal",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("2 pending tasks"), "{stderr}");
    assert!(stderr.contains("stuck-worker (Task-"), "{stderr}");
    assert!(stderr.contains("awaits LoopFuture<()> made at"), "{stderr}");
}
