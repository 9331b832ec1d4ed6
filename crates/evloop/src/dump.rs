//! The task dump: a printable snapshot of a loop's pending tasks and what each is suspended on,
//! as a tree of who awaits whom (what asyncio 3.14's `python -m asyncio pstree` shows). It is
//! read from the waiter record each task keeps for cancellation, so taking it costs the tasks
//! nothing until it is asked for.
//!
//! From a running program: [`TaskDump::print_on_signal`] prints it to stderr on a signal
//! (`kill -USR1 <pid>`), or any task can `eprintln!("{}", evloop::task_dump())`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::panic::Location;

use evloop_reactor::EventLoop;

use crate::task::tasks_of;

/// What a pending task is suspended on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Awaited {
    /// Another task, by id (awaiting its `Task` handle).
    Task(u64),
    /// A [`gather`](fn@crate::gather) of these tasks, by id.
    Gather(Vec<u64>),
    /// A [`TaskGroup`](crate::TaskGroup)'s `join()`, with its children by id.
    TaskGroup(Vec<u64>),
    /// A [`LoopFuture`](crate::LoopFuture), with where it was made (`create_future`'s caller).
    Future {
        /// Its type, `LoopFuture<T>`.
        what: String,
        /// Where it was made.
        made_at: &'static Location<'static>,
    },
}

/// One pending task of a [`TaskDump`].
#[derive(Debug, Clone)]
pub struct TaskEntry {
    /// The task's id (`Task-N`'s N).
    pub id: u64,
    /// The task's name.
    pub name: String,
    /// Where `create_task` was called.
    pub created_at: &'static Location<'static>,
    /// The evloop awaitable it is suspended on; `None` when that is nothing evloop can name (a
    /// sleep, a timeout, an I/O wait, a foreign future, several at once) or the task is
    /// scheduled to run.
    pub awaiting: Option<Awaited>,
}

/// A snapshot of a loop's pending tasks; `Display` prints them as a tree of who awaits whom.
///
/// ```
/// use std::time::Duration;
/// use evloop::LoopExt;
///
/// let dump = evloop::run(async {
///     let lp = evloop::get_running_loop().unwrap();
///     let never = lp.create_future::<u32>();
///     let waiting = never.clone();
///     let child = evloop::create_task(async move { waiting.await });
///     child.set_name("child");
///     let parent = evloop::create_task(async move { child.await });
///     parent.set_name("parent");
///     evloop::sleep(Duration::from_millis(1)).await;
///     let dump = evloop::task_dump();
///     parent.cancel();
///     dump
/// })
/// .unwrap();
/// let text = dump.to_string();
/// assert!(text.contains("parent (Task-"), "{text}");
/// assert!(text.contains("  awaits child (Task-"), "{text}");
/// assert!(text.contains("awaits LoopFuture<u32> made at"), "{text}");
/// ```
#[derive(Debug, Clone)]
pub struct TaskDump {
    /// The pending tasks, in creation order.
    pub tasks: Vec<TaskEntry>,
}

/// The running loop's task dump (empty outside a loop): [`all_tasks`](crate::all_tasks) with
/// what each task awaits.
pub fn task_dump() -> TaskDump {
    match evloop_reactor::get_running_loop().ok() {
        Some(lp) => TaskDump::of(&lp),
        None => TaskDump { tasks: Vec::new() },
    }
}

impl TaskDump {
    /// The pending tasks of `lp` (call it on the loop's thread).
    pub fn of(lp: &EventLoop) -> TaskDump {
        let mut tasks: Vec<TaskEntry> = tasks_of(lp)
            .into_iter()
            .map(|task| TaskEntry {
                id: task.id(),
                name: task.name(),
                created_at: task.created_at(),
                awaiting: task.awaiting(),
            })
            .collect();
        tasks.sort_by_key(|t| t.id);
        TaskDump { tasks }
    }

    /// Prints the running loop's task dump to stderr whenever `signal` arrives, for a program
    /// that seems stuck (`kill -USR1 <pid>`). It is that signal's handler, as
    /// `add_signal_handler` (and so replaces another).
    ///
    /// ```no_run
    /// evloop::run(async {
    ///     let lp = evloop::get_running_loop().unwrap();
    ///     evloop::TaskDump::print_on_signal(&lp, libc::SIGUSR1).unwrap();
    ///     // ... the program ...
    /// })
    /// .unwrap();
    /// ```
    #[cfg(feature = "signal")]
    pub fn print_on_signal(lp: &EventLoop, signal: i32) -> Result<(), crate::SignalError> {
        lp.add_signal_handler(signal, || {
            // The handler runs on the loop thread while the loop runs.
            eprintln!("{}", task_dump());
        })
    }

    fn write_task(
        &self,
        f: &mut fmt::Formatter<'_>,
        by_id: &HashMap<u64, &TaskEntry>,
        task: &TaskEntry,
        depth: usize,
        shown: &mut HashSet<u64>,
    ) -> fmt::Result {
        let indent = "  ".repeat(depth * 2);
        writeln!(
            f,
            "{indent}{} (Task-{}) created at {}",
            task.name, task.id, task.created_at
        )?;
        if !shown.insert(task.id) {
            return Ok(()); // a cycle cannot happen, but never print forever
        }
        let children: Vec<u64> = match &task.awaiting {
            None => {
                writeln!(
                    f,
                    "{indent}  awaits nothing evloop can name (a sleep, I/O, a foreign future) or is scheduled"
                )?;
                Vec::new()
            }
            Some(Awaited::Future { what, made_at }) => {
                writeln!(f, "{indent}  awaits {what} made at {made_at}")?;
                Vec::new()
            }
            Some(Awaited::Task(id)) => {
                match by_id.get(id) {
                    Some(child) => writeln!(f, "{indent}  awaits {} (Task-{id})", child.name)?,
                    None => writeln!(f, "{indent}  awaits Task-{id}, which is done")?,
                }
                vec![*id]
            }
            Some(Awaited::Gather(ids)) => {
                writeln!(f, "{indent}  awaits gather of {} tasks", ids.len())?;
                ids.clone()
            }
            Some(Awaited::TaskGroup(ids)) => {
                writeln!(f, "{indent}  joins a TaskGroup of {} tasks", ids.len())?;
                ids.clone()
            }
        };
        for id in children {
            if let Some(child) = by_id.get(&id) {
                self.write_task(f, by_id, child, depth + 1, shown)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for TaskDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let by_id: HashMap<u64, &TaskEntry> = self.tasks.iter().map(|t| (t.id, t)).collect();
        let awaited: HashSet<u64> = self
            .tasks
            .iter()
            .flat_map(|t| match &t.awaiting {
                Some(Awaited::Task(id)) => vec![*id],
                Some(Awaited::Gather(ids) | Awaited::TaskGroup(ids)) => ids.clone(),
                _ => Vec::new(),
            })
            .collect();
        writeln!(f, "{} pending tasks", self.tasks.len())?;
        let mut shown = HashSet::new();
        for root in self.tasks.iter().filter(|t| !awaited.contains(&t.id)) {
            self.write_task(f, &by_id, root, 0, &mut shown)?;
        }
        // Tasks only reachable through a cycle (none in practice) still get a line.
        for task in &self.tasks {
            if !shown.contains(&task.id) {
                self.write_task(f, &by_id, task, 0, &mut shown)?;
            }
        }
        Ok(())
    }
}
