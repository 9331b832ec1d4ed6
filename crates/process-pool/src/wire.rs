//! The job channel's wire format: length-prefixed postcard frames.
//!
//! A frame is a little-endian `u32` body length followed by the body. A body is a postcard-encoded
//! header, and for jobs and successful results the postcard-encoded argument or value follows the
//! header directly in the same buffer. That keeps one allocation per frame and lets the worker
//! decode the header, then hand the untouched rest to the job's trampoline.
//!
//! The channel is a socket of its own (never stdin or stdout), so nothing a job prints can end up in
//! it.

use std::io::{self, Read};

use serde::{Deserialize, Serialize};

/// Bodies larger than this are refused: a corrupt length must not make us allocate gigabytes.
pub(crate) const MAX_FRAME: usize = 1 << 30;

/// Parent to worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToWorker<'a> {
    /// First frame on every channel: proves the worker was started by this pool and runs this
    /// executable, and names the initializer.
    Hello {
        /// The one-shot token also passed in the environment.
        token: u64,
        /// `(st_dev, st_ino)` of the parent's executable.
        exe: (u64, u64),
        /// The initializer's trampoline offset and type name.
        initializer: Option<(i64, &'a str)>,
        /// `max_tasks_per_child`: the worker exits by itself after this many jobs.
        max_tasks: Option<u64>,
    },
    /// One job; its encoded argument follows the header.
    Job {
        /// Pool-wide job id, echoed in the result.
        id: u64,
        /// The trampoline's offset from the anchor function.
        offset: i64,
        /// The trampoline's type name, checked by the trampoline itself.
        name: &'a str,
    },
}

/// Worker to parent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromWorker<'a> {
    /// The handshake passed and the initializer (if any) returned.
    Ready,
    /// The handshake or the initializer failed; the worker exits after sending this.
    InitFailed(&'a str),
    /// A job ended; on success its encoded value follows the header.
    Done {
        /// The job id from [`ToWorker::Job`].
        id: u64,
        /// How it ended.
        outcome: Outcome<'a>,
    },
}

/// How a job ended in the worker.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum Outcome<'a> {
    /// The encoded value follows.
    Ok,
    /// The function panicked with this message.
    Panicked(&'a str),
    /// The argument could not be decoded or the value could not be encoded.
    Serialization(&'a str),
}

/// Starts a frame in `buf`: reserves the length prefix and encodes `header` after it. Finish it with
/// [`finish_frame`] once the payload (if any) has been appended.
pub(crate) fn start_frame<T: Serialize>(buf: &mut Vec<u8>, header: &T) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    // Encoding into a Vec cannot fail for our own header types.
    postcard::to_io(header, &mut *buf).expect("encoding a frame header into a Vec");
    start
}

/// Writes the length prefix of the frame that begins at `start`.
pub(crate) fn finish_frame(buf: &mut [u8], start: usize) {
    let len = u32::try_from(buf.len() - start - 4).unwrap_or(u32::MAX);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Reads one frame body into `body` (reusing its allocation). `Ok(false)` is a clean end of stream
/// before the first byte of a frame.
pub(crate) fn read_frame(reader: &mut impl Read, body: &mut Vec<u8>) -> io::Result<bool> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    body.clear();
    body.resize(len, 0);
    reader.read_exact(body)?;
    Ok(true)
}

/// How long a reader that has just run out of input polls before it blocks. One blocking wake-up on
/// a loaded or virtualized machine costs tens of microseconds; a round trip has three of them, and
/// in a request-response rhythm the next frame usually arrives within this window.
const SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// Polls `fd` for input for up to [`SPIN`] without blocking, so the following blocking read finds
/// data more often and the thread skips a sleep and wake-up.
pub(crate) fn spin_until_readable(fd: std::os::fd::RawFd) {
    let start = std::time::Instant::now();
    while start.elapsed() < SPIN {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid pollfd for the call; a zero timeout never blocks.
        if unsafe { libc::poll(&mut pfd, 1, 0) } != 0 {
            return; // readable, hung up, or an error: the read will tell
        }
        std::hint::spin_loop();
    }
}

/// Splits a body into its header and the payload that follows it.
pub(crate) fn split_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> io::Result<(T, &'a [u8])> {
    postcard::take_from_bytes(body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_payload() {
        let mut buf = Vec::new();
        for id in 0..3u64 {
            let start = start_frame(
                &mut buf,
                &ToWorker::Job {
                    id,
                    offset: -7,
                    name: "f",
                },
            );
            postcard::to_io(&(id * 10), &mut buf).unwrap();
            finish_frame(&mut buf, start);
        }
        let mut reader = &buf[..];
        let mut body = Vec::new();
        for want in 0..3u64 {
            assert!(read_frame(&mut reader, &mut body).unwrap());
            let (header, rest): (ToWorker<'_>, _) = split_body(&body).unwrap();
            assert!(matches!(header, ToWorker::Job { id, offset: -7, name: "f" } if id == want));
            assert_eq!(postcard::from_bytes::<u64>(rest).unwrap(), want * 10);
        }
        assert!(!read_frame(&mut reader, &mut body).unwrap());
    }

    #[test]
    fn truncated_frame_is_an_error_not_eof() {
        let mut buf = Vec::new();
        let start = start_frame(&mut buf, &FromWorker::Ready);
        finish_frame(&mut buf, start);
        buf[0] = 9; // claims 9 bytes, has 1
        let mut body = Vec::new();
        assert!(read_frame(&mut &buf[..], &mut body).is_err());
    }

    #[test]
    fn oversized_length_is_refused() {
        let buf = u32::MAX.to_le_bytes();
        let mut body = Vec::new();
        let err = read_frame(&mut &buf[..], &mut body).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
