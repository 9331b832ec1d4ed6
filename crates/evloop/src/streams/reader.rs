//! `StreamReader`: the bytes a connection received, read with asyncio's calls.
//!
//! The transport's protocol feeds it (`data_received` appends, EOF and errors are recorded);
//! a task reads from it and waits when it needs more. Past twice the limit buffered, the
//! transport is paused, and resumed once the reader is back under the limit, so a fast sender
//! cannot make a slow reader's memory grow without bound (asyncio's rule).

use std::cell::RefCell;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::{Poll, Waker};

use evloop_reactor::transport::Transport;

use super::StoredError;
use super::errors::{IncompleteReadError, LimitOverrunError, StreamError};

/// asyncio's `_DEFAULT_LIMIT`: 64 KiB.
pub const DEFAULT_LIMIT: usize = 64 * 1024;

struct State {
    data: Vec<u8>,
    start: usize,
    limit: usize,
    eof: bool,
    error: Option<StoredError>,
    transport: Option<Transport>,
    paused: bool,
    /// Bumped by every feed (data, EOF, error): what a waiting reader waits for.
    fed: u64,
    waiter: Option<Waker>,
    waiting: bool,
}

impl State {
    fn buffered(&self) -> &[u8] {
        &self.data[self.start..]
    }

    fn consume(&mut self, n: usize) -> Vec<u8> {
        let out = self.data[self.start..self.start + n].to_vec();
        self.start += n;
        if self.start == self.data.len() {
            self.data.clear();
            self.start = 0;
        } else if self.start > self.data.len() / 2 {
            self.data.drain(..self.start);
            self.start = 0;
        }
        out
    }

    fn clear(&mut self) {
        self.data.clear();
        self.start = 0;
    }

    fn take_all(&mut self) -> Vec<u8> {
        let n = self.buffered().len();
        self.consume(n)
    }

    fn wake(&mut self) {
        self.fed += 1;
        if let Some(waker) = self.waiter.take() {
            waker.wake();
        }
    }

    /// asyncio's `_maybe_resume_transport`.
    fn resume_if_drained(&mut self) -> Option<Transport> {
        if self.paused && self.buffered().len() <= self.limit {
            self.paused = false;
            return self.transport.clone();
        }
        None
    }
}

/// The reading side of a stream connection (asyncio's `StreamReader`). Clones share it.
///
/// ```
/// use evloop::streams::StreamReader;
///
/// evloop::run(async {
///     let reader = StreamReader::new();
///     reader.feed_data(b"line one\nline two\nrest");
///     reader.feed_eof();
///     assert_eq!(reader.readline().await.unwrap(), b"line one\n");
///     assert_eq!(reader.readuntil(b"two").await.unwrap(), b"line two");
///     assert_eq!(reader.readexactly(1).await.unwrap(), b"\n");
///     let short = reader.readexactly(10).await.unwrap_err();
///     assert_eq!(short.to_string(), "4 bytes read on a total of 10 expected bytes");
///     assert!(reader.at_eof());
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct StreamReader {
    state: Rc<RefCell<State>>,
}

impl Default for StreamReader {
    fn default() -> Self {
        StreamReader::new()
    }
}

impl StreamReader {
    /// A reader with the default 64 KiB limit, fed by hand or by a stream protocol.
    pub fn new() -> StreamReader {
        StreamReader::with_limit(DEFAULT_LIMIT)
    }

    /// A reader whose lines (and `readuntil` chunks) may be at most `limit` bytes.
    pub fn with_limit(limit: usize) -> StreamReader {
        StreamReader {
            state: Rc::new(RefCell::new(State {
                data: Vec::new(),
                start: 0,
                limit,
                eof: false,
                error: None,
                transport: None,
                paused: false,
                fed: 0,
                waiter: None,
                waiting: false,
            })),
        }
    }

    pub(crate) fn set_transport(&self, transport: Transport) {
        self.state.borrow_mut().transport = Some(transport);
    }

    /// Appends received bytes (what the protocol does on `data_received`). Past twice the
    /// limit, the transport is paused.
    pub fn feed_data(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let pause = {
            let mut state = self.state.borrow_mut();
            state.data.extend_from_slice(data);
            state.wake();
            if !state.paused && state.buffered().len() > 2 * state.limit {
                state.paused = state.transport.is_some();
                state.transport.clone()
            } else {
                None
            }
        };
        if let Some(transport) = pause {
            transport.pause_reading();
        }
    }

    /// Records EOF: reads return what is buffered, then nothing.
    pub fn feed_eof(&self) {
        let mut state = self.state.borrow_mut();
        state.eof = true;
        state.wake();
    }

    /// Records the connection's error: every read from now on fails with it.
    pub fn set_exception(&self, error: &io::Error) {
        let mut state = self.state.borrow_mut();
        state.error = Some(StoredError::of(error));
        state.wake();
    }

    /// The recorded error, if any (asyncio's `exception()`).
    pub fn exception(&self) -> Option<io::Error> {
        self.state
            .borrow()
            .error
            .as_ref()
            .map(StoredError::to_error)
    }

    /// Whether EOF was fed and everything was read.
    pub fn at_eof(&self) -> bool {
        let state = self.state.borrow();
        state.eof && state.buffered().is_empty()
    }

    /// Bytes buffered, not yet read.
    pub fn buffered_len(&self) -> usize {
        self.state.borrow().buffered().len()
    }

    fn check_error(&self) -> Result<(), StreamError> {
        match &self.state.borrow().error {
            Some(error) => Err(StreamError::Io(error.to_error())),
            None => Ok(()),
        }
    }

    fn resume_if_drained(&self) {
        let resume = self.state.borrow_mut().resume_if_drained();
        if let Some(transport) = resume {
            transport.resume_reading();
        }
    }

    /// asyncio's `_wait_for_data`: until something is fed. One waiter at a time.
    async fn wait_for_data(&self, what: &str) -> Result<(), StreamError> {
        let (start, resume) = {
            let mut state = self.state.borrow_mut();
            if state.waiting {
                return Err(StreamError::Runtime(format!(
                    "{what}() called while another coroutine is already waiting for incoming data"
                )));
            }
            if state.eof {
                return Ok(());
            }
            state.waiting = true;
            // A paused transport would never deliver what we wait for.
            let resume = state.paused.then(|| state.transport.clone()).flatten();
            state.paused = false;
            (state.fed, resume)
        };
        if let Some(transport) = resume {
            transport.resume_reading();
        }
        struct Waiting<'a>(&'a RefCell<State>);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                let mut state = self.0.borrow_mut();
                state.waiting = false;
                state.waiter = None;
            }
        }
        let _waiting = Waiting(&self.state);
        poll_fn(|cx| {
            let mut state = self.state.borrow_mut();
            if state.fed != start {
                return Poll::Ready(Ok(()));
            }
            state.waiter = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Up to `n` bytes: what is buffered, or the next bytes to arrive; empty at EOF
    /// (asyncio's `read(n)`).
    pub async fn read(&self, n: usize) -> Result<Vec<u8>, StreamError> {
        self.check_error()?;
        if n == 0 {
            return Ok(Vec::new());
        }
        loop {
            {
                let state = self.state.borrow();
                if !state.buffered().is_empty() || state.eof {
                    break;
                }
            }
            self.wait_for_data("read").await?;
            self.check_error()?;
        }
        let out = {
            let mut state = self.state.borrow_mut();
            let take = n.min(state.buffered().len());
            state.consume(take)
        };
        self.resume_if_drained();
        Ok(out)
    }

    /// Everything up to EOF (asyncio's `read(-1)`).
    pub async fn read_to_end(&self) -> Result<Vec<u8>, StreamError> {
        let mut out = Vec::new();
        loop {
            let limit = self.state.borrow().limit.max(1);
            let chunk = self.read(limit).await?;
            if chunk.is_empty() {
                return Ok(out);
            }
            out.extend_from_slice(&chunk);
        }
    }

    /// Exactly `n` bytes; at EOF before that, [`IncompleteReadError`] with what was read.
    pub async fn readexactly(&self, n: usize) -> Result<Vec<u8>, StreamError> {
        self.check_error()?;
        if n == 0 {
            return Ok(Vec::new());
        }
        loop {
            {
                let mut state = self.state.borrow_mut();
                if state.buffered().len() >= n {
                    break;
                }
                if state.eof {
                    let partial = state.take_all();
                    return Err(IncompleteReadError {
                        partial,
                        expected: Some(n),
                    }
                    .into());
                }
            }
            self.wait_for_data("readexactly").await?;
            self.check_error()?;
        }
        let out = self.state.borrow_mut().consume(n);
        self.resume_if_drained();
        Ok(out)
    }

    /// Up to and including `separator`. At EOF first: [`IncompleteReadError`] with the rest;
    /// past the limit: [`LimitOverrunError`] (the data stays buffered), as asyncio.
    pub async fn readuntil(&self, separator: &[u8]) -> Result<Vec<u8>, StreamError> {
        if separator.is_empty() {
            return Err(StreamError::Value(
                "Separator should be at least one-byte string".into(),
            ));
        }
        self.check_error()?;
        let seplen = separator.len();
        let mut offset = 0;
        let found = loop {
            {
                let mut state = self.state.borrow_mut();
                let buffered = state.buffered();
                let buflen = buffered.len();
                if buflen >= offset + seplen {
                    if let Some(at) = find(&buffered[offset..], separator) {
                        break offset + at;
                    }
                    offset = buflen + 1 - seplen;
                    if offset > state.limit {
                        return Err(LimitOverrunError {
                            message: "Separator is not found, and chunk exceed the limit".into(),
                            consumed: offset,
                        }
                        .into());
                    }
                }
                if state.eof {
                    let partial = state.take_all();
                    return Err(IncompleteReadError {
                        partial,
                        expected: None,
                    }
                    .into());
                }
            }
            self.wait_for_data("readuntil").await?;
            self.check_error()?;
        };
        if found > self.state.borrow().limit {
            return Err(LimitOverrunError {
                message: "Separator is found, but chunk is longer than limit".into(),
                consumed: found,
            }
            .into());
        }
        let out = self.state.borrow_mut().consume(found + seplen);
        self.resume_if_drained();
        Ok(out)
    }

    /// A line, `\n` included; at EOF, the rest (possibly empty). A line over the limit is
    /// dropped from the buffer and reported as asyncio's `ValueError`, with the same text.
    pub async fn readline(&self) -> Result<Vec<u8>, StreamError> {
        match self.readuntil(b"\n").await {
            Ok(line) => Ok(line),
            Err(StreamError::IncompleteRead(partial)) => Ok(partial.partial),
            Err(StreamError::LimitOverrun(overrun)) => {
                {
                    let mut state = self.state.borrow_mut();
                    let rest = &state.buffered()[overrun.consumed.min(state.buffered().len())..];
                    if rest.starts_with(b"\n") {
                        state.consume(overrun.consumed + 1);
                    } else {
                        state.clear();
                    }
                }
                self.resume_if_drained();
                Err(StreamError::Value(overrun.message))
            }
            Err(other) => Err(other),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() == 1 {
        return haystack.iter().position(|&b| b == needle[0]);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.borrow();
        f.debug_struct("StreamReader")
            .field("buffered", &state.buffered().len())
            .field("limit", &state.limit)
            .field("eof", &state.eof)
            .field("paused", &state.paused)
            .finish()
    }
}
