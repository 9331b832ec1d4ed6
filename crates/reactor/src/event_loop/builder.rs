//! How a loop is made: the [`Builder`]'s settings, and the construction of the loop's state (the
//! epoll instance, the waker's eventfd, the queues), with asyncio's defaults.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use evloop_callbacks::{ReadyQueue, TimerHeap};
use mio::{Events, Poll};

use super::{EventLoop, Extensions, Inner, WAKER_TOKEN};
use crate::clock::Clock;
use crate::io::IoState;
use crate::remote::RemoteShared;

/// asyncio's default `slow_callback_duration`.
const DEFAULT_SLOW_CALLBACK: Duration = Duration::from_millis(100);

static NEXT_LOOP_ID: AtomicU64 = AtomicU64::new(1);

/// Configures an [`EventLoop`] before it is built.
///
/// ```
/// use evloop_reactor::EventLoop;
///
/// let lp = EventLoop::builder().virtual_clock(true).debug(true).build().unwrap();
/// assert!(lp.get_debug());
/// ```
#[derive(Debug, Default, Clone)]
pub struct Builder {
    virtual_clock: bool,
    /// `None`: from the environment (`EVLOOP_DEBUG`), as asyncio reads `PYTHONASYNCIODEBUG`.
    debug: Option<bool>,
}

/// Whether `EVLOOP_DEBUG` asks for debug mode: set to anything but empty or `0` (asyncio takes
/// any non-empty `PYTHONASYNCIODEBUG`; `0` meaning "on" would surprise).
///
/// ```
/// let lp = evloop_reactor::EventLoop::new().unwrap();
/// assert_eq!(lp.get_debug(), evloop_reactor::debug_from_env());
/// ```
pub fn debug_from_env() -> bool {
    std::env::var_os("EVLOOP_DEBUG").is_some_and(|v| !v.is_empty() && v != "0")
}

impl Builder {
    /// Uses a virtual clock: time stands still while callbacks run and jumps to the next
    /// deadline whenever the loop would otherwise block with nothing else to wait for.
    pub fn virtual_clock(mut self, on: bool) -> Builder {
        self.virtual_clock = on;
        self
    }

    /// Starts in debug mode (slow callbacks are reported), or not, whatever `EVLOOP_DEBUG` says.
    /// Without this call the loop starts in debug mode when `EVLOOP_DEBUG` is set (to anything
    /// but empty or `0`).
    pub fn debug(mut self, on: bool) -> Builder {
        self.debug = Some(on);
        self
    }

    /// Builds the loop (this creates the epoll instance and the waker's eventfd).
    pub fn build(self) -> io::Result<EventLoop> {
        let poll = Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        let id = NEXT_LOOP_ID.fetch_add(1, Ordering::Relaxed);
        Ok(EventLoop {
            owner: true,
            inner: Rc::new(Inner {
                id,
                ready: RefCell::new(ReadyQueue::new()),
                timers: RefCell::new(TimerHeap::new()),
                shared: Arc::new(RemoteShared::new(waker, id)),
                poll: RefCell::new(poll),
                events: RefCell::new(Events::with_capacity(256)),
                remote_batch: RefCell::new(Vec::new()),
                clock: Clock::new(self.virtual_clock),
                running: Cell::new(false),
                stopping: Cell::new(false),
                closed: Cell::new(false),
                close_after_run: Cell::new(false),
                poll_failures: Cell::new(0),
                skip_polls_until: Cell::new(None),
                woken_by_remote: Cell::new(false),
                debug: Cell::new(self.debug.unwrap_or_else(debug_from_env)),
                slow_callback: Cell::new(DEFAULT_SLOW_CALLBACK),
                iterations: Cell::new(0),
                polls: Cell::new(0),
                exception_handler: RefCell::new(None),
                extensions: RefCell::new(Extensions::default()),
                close_hooks: RefCell::new(Vec::new()),
                io: IoState::default(),
            }),
        })
    }
}

impl EventLoop {
    /// A new loop with the real clock, not in debug mode.
    pub fn new() -> io::Result<EventLoop> {
        Builder::default().build()
    }

    /// A builder for a loop with other settings.
    pub fn builder() -> Builder {
        Builder::default()
    }
}
