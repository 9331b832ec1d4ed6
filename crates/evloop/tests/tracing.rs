//! The `tracing` feature: each task runs in a span with its id, name and creation site;
//! exception-handler reports are events at the report's level (a slow callback warns, a panic
//! nobody retrieved is an error); thread-pool jobs run in a span under the submitting task's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evloop::{EventLoop, ExecutorExt, LoopExt};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

#[derive(Debug, Clone, Default)]
struct SpanSeen {
    name: &'static str,
    fields: HashMap<String, String>,
    parent: Option<u64>,
    entered_on: Vec<std::thread::ThreadId>,
}

#[derive(Debug, Clone)]
struct EventSeen {
    level: Level,
    target: String,
    fields: HashMap<String, String>,
    span: Option<u64>,
}

#[derive(Default)]
struct Seen {
    spans: HashMap<u64, SpanSeen>,
    events: Vec<EventSeen>,
    next: u64,
}

/// Records spans and events; tracks the current span per thread.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Seen>>);

thread_local! {
    static STACK: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

fn current() -> Option<u64> {
    STACK.with(|s| s.borrow().last().copied())
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut seen = self.0.lock().unwrap();
        seen.next += 1;
        let id = seen.next;
        let mut span = SpanSeen {
            name: attrs.metadata().name(),
            parent: attrs.parent().map(Id::into_u64).or_else(|| {
                if attrs.is_contextual() {
                    current()
                } else {
                    None
                }
            }),
            ..SpanSeen::default()
        };
        attrs.record(&mut Fields(&mut span.fields));
        seen.spans.insert(id, span);
        Id::from_u64(id)
    }
    fn record(&self, id: &Id, values: &Record<'_>) {
        let mut seen = self.0.lock().unwrap();
        if let Some(span) = seen.spans.get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut span.fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().events.push(EventSeen {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            fields,
            span: current(),
        });
    }
    fn enter(&self, id: &Id) {
        STACK.with(|s| s.borrow_mut().push(id.into_u64()));
        let mut seen = self.0.lock().unwrap();
        if let Some(span) = seen.spans.get_mut(&id.into_u64()) {
            span.entered_on.push(std::thread::current().id());
        }
    }
    fn exit(&self, _: &Id) {
        STACK.with(|s| s.borrow_mut().pop());
    }
}

fn recorded(body: impl FnOnce()) -> Seen {
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), body);
    std::mem::take(&mut *recorder.0.lock().unwrap())
}

#[test]
fn events_inside_a_task_carry_its_span() {
    let seen = recorded(|| {
        evloop::run(async {
            let worker = evloop::create_task(async {
                evloop::sleep(Duration::from_millis(1)).await;
                tracing::info!(step = 2, "inside the worker");
            });
            worker.set_name("worker");
            worker.await.unwrap();
        })
        .unwrap();
    });
    let event = seen
        .events
        .iter()
        .find(|e| {
            e.fields
                .get("message")
                .is_some_and(|m| m == "inside the worker")
        })
        .expect("the event was recorded");
    let span = &seen.spans[&event.span.expect("inside a span")];
    assert_eq!(span.name, "task");
    assert_eq!(span.fields["name"], "worker");
    assert!(span.fields["created_at"].contains("tracing.rs"), "{span:?}");
    assert!(span.fields["id"].parse::<u64>().is_ok(), "{span:?}");
    // The worker was created inside the main task: its span is the main task's child.
    let parent = &seen.spans[&span.parent.expect("a parent span")];
    assert_eq!(parent.name, "task");
}

#[test]
fn reports_are_events_at_their_level() {
    let seen = recorded(|| {
        let lp = EventLoop::builder().debug(true).build().unwrap();
        lp.set_slow_callback_duration(Duration::from_millis(1));
        lp.run_until_complete(async {
            let lp = evloop::get_running_loop().unwrap();
            lp.call_soon(|| std::thread::sleep(Duration::from_millis(5)))
                .unwrap();
            let failing = evloop::create_task(async { panic!("nobody retrieves this") });
            evloop::sleep(Duration::from_millis(10)).await;
            drop(failing); // unretrieved: reported when the handle goes
            evloop::sleep(Duration::from_millis(1)).await;
        })
        .unwrap();
        lp.close().unwrap();
    });
    let from_evloop: Vec<&EventSeen> = seen
        .events
        .iter()
        .filter(|e| e.target == "evloop")
        .collect();
    let slow = from_evloop
        .iter()
        .find(|e| e.fields["message"].starts_with("Executing"))
        .expect("a slow-callback report");
    assert_eq!(slow.level, Level::WARN);
    let panic = from_evloop
        .iter()
        .find(|e| e.fields["message"] == "Task exception was never retrieved")
        .expect("an unretrieved-panic report");
    assert_eq!(panic.level, Level::ERROR);
    assert!(panic.fields["report"].contains("nobody retrieves this"));
}

#[test]
fn thread_pool_jobs_run_in_a_span_under_the_submitting_task() {
    let seen = recorded(|| {
        evloop::run(async {
            let lp = evloop::get_running_loop().unwrap();
            lp.run_in_executor(None, || 6 * 7).unwrap().await.unwrap();
        })
        .unwrap();
    });
    let (_, job) = seen
        .spans
        .iter()
        .find(|(_, s)| s.name == "executor_job")
        .expect("an executor_job span");
    let parent = &seen.spans[&job.parent.expect("a parent span")];
    assert_eq!(parent.name, "task");
    assert_eq!(job.entered_on.len(), 1);
    assert_ne!(
        job.entered_on[0],
        std::thread::current().id(),
        "entered on the worker"
    );
}
