//! The protocol between a transport and a stream pair (asyncio's `StreamReaderProtocol` with
//! its `FlowControlMixin`): received bytes go to the reader, flow control and the connection's
//! end to the state `drain` and `wait_closed` wait on.

use std::cell::{Cell, RefCell};
use std::io;
use std::task::Waker;

use evloop_reactor::Wakers;
use evloop_reactor::transport::{Protocol, Transport};

use super::StoredError;
use super::reader::StreamReader;

/// Flow control and the connection's end, shared by the protocol and the writer.
#[derive(Default)]
pub(crate) struct Flow {
    pub(crate) paused: Cell<bool>,
    pub(crate) lost: Cell<bool>,
    pub(crate) lost_error: RefCell<Option<StoredError>>,
    pub(crate) waiters: RefCell<Wakers>,
}

impl Flow {
    pub(crate) fn wake(&self) {
        let waiters = self.waiters.borrow_mut().take();
        waiters.wake_all();
    }

    pub(crate) fn wait(&self, waker: &Waker) {
        self.waiters.borrow_mut().register(waker);
    }
}

pub(crate) type OnConnect = Box<dyn FnOnce(&Transport)>;

pub(crate) struct StreamProtocol {
    pub(crate) reader: StreamReader,
    pub(crate) flow: std::rc::Rc<Flow>,
    /// The server's hook: makes the writer and starts the client-connected task.
    pub(crate) on_connect: Option<OnConnect>,
}

impl Protocol for StreamProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        self.reader.set_transport(transport.clone());
        if let Some(on_connect) = self.on_connect.take() {
            on_connect(transport);
        }
    }

    fn data_received(&mut self, data: &[u8]) {
        self.reader.feed_data(data);
    }

    fn eof_received(&mut self) -> bool {
        self.reader.feed_eof();
        // Keep the transport open: the writer may still send (asyncio's half-close).
        true
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        match &error {
            None => self.reader.feed_eof(),
            Some(error) => {
                self.reader.set_exception(error);
                *self.flow.lost_error.borrow_mut() = Some(StoredError::of(error));
            }
        }
        self.flow.lost.set(true);
        self.flow.wake();
    }

    fn pause_writing(&mut self) {
        self.flow.paused.set(true);
    }

    fn resume_writing(&mut self) {
        self.flow.paused.set(false);
        self.flow.wake();
    }
}
