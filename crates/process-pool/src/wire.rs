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

/// The largest frame body the channel carries, and the default of the pool's
/// `max_message_bytes`. A job whose argument or result encodes larger fails alone; a length prefix
/// that claims more is a broken channel, never an allocation of that size.
pub(crate) const MAX_FRAME: usize = 1 << 30;

/// A frame body over the limit: the job it belongs to fails with this, the pool goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLarge {
    /// The body's size in bytes.
    pub(crate) len: usize,
    /// The limit it exceeds.
    pub(crate) limit: usize,
}

impl TooLarge {
    /// The error text, naming what was too large (`"the argument"`, `"the result"`).
    pub(crate) fn describe(self, what: &str) -> String {
        format!(
            "{what} is too large for the job channel: it encodes to {} bytes, over the limit of {} bytes",
            self.len, self.limit
        )
    }
}

/// The length prefix for a body of `len` bytes, or the refusal when it is over `limit` (which
/// never exceeds [`MAX_FRAME`], so the prefix always fits its `u32` and is never truncated).
pub(crate) fn prefix_for(len: usize, limit: usize) -> Result<[u8; 4], TooLarge> {
    let limit = limit.min(MAX_FRAME);
    match u32::try_from(len) {
        Ok(prefix) if len <= limit => Ok(prefix.to_le_bytes()),
        _ => Err(TooLarge { len, limit }),
    }
}

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
        /// `max_message_bytes`: the largest job frame the worker accepts and result it sends.
        max_frame: u64,
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

/// Writes the length prefix of the frame that begins at `start`, or refuses a body over `limit`
/// (the buffer is then left as it was, for the caller to truncate).
pub(crate) fn finish_frame(buf: &mut [u8], start: usize, limit: usize) -> Result<(), TooLarge> {
    let prefix = prefix_for(buf.len() - start - 4, limit)?;
    buf[start..start + 4].copy_from_slice(&prefix);
    Ok(())
}

/// How much of a large body is allocated before its bytes have arrived: the buffer grows with
/// the data actually read beyond this, so a corrupt or hostile prefix costs no memory up front.
const EAGER_ALLOC: usize = 1 << 20;

/// Reads one frame body into `body` (reusing its allocation). `Ok(false)` is a clean end of stream
/// before the first byte of a frame; an end inside a frame (its prefix included) is
/// `UnexpectedEof`, and a prefix over `limit` is `InvalidData`: the channel is broken either way.
pub(crate) fn read_frame(
    reader: &mut impl Read,
    body: &mut Vec<u8>,
    limit: usize,
) -> io::Result<bool> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < prefix.len() {
        match reader.read(&mut prefix[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the channel ended inside a frame's length prefix",
                ));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_le_bytes(prefix) as usize;
    if len > limit.min(MAX_FRAME) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame claims {len} bytes, over the limit of {limit} bytes"),
        ));
    }
    body.clear();
    body.reserve(len.min(EAGER_ALLOC));
    let read = reader.take(len as u64).read_to_end(body)?;
    if read < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the channel ended after {read} of a frame's {len} bytes"),
        ));
    }
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
            finish_frame(&mut buf, start, MAX_FRAME).unwrap();
        }
        let mut reader = &buf[..];
        let mut body = Vec::new();
        for want in 0..3u64 {
            assert!(read_frame(&mut reader, &mut body, MAX_FRAME).unwrap());
            let (header, rest): (ToWorker<'_>, _) = split_body(&body).unwrap();
            assert!(matches!(header, ToWorker::Job { id, offset: -7, name: "f" } if id == want));
            assert_eq!(postcard::from_bytes::<u64>(rest).unwrap(), want * 10);
        }
        assert!(!read_frame(&mut reader, &mut body, MAX_FRAME).unwrap());
    }

    #[test]
    fn truncated_frame_is_an_error_not_eof() {
        let mut buf = Vec::new();
        let start = start_frame(&mut buf, &FromWorker::Ready);
        finish_frame(&mut buf, start, MAX_FRAME).unwrap();
        buf[0] = 9; // claims 9 bytes, has 1
        let mut body = Vec::new();
        let err = read_frame(&mut &buf[..], &mut body, MAX_FRAME).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_prefix_cut_short_is_a_broken_channel_not_a_clean_end() {
        let mut body = Vec::new();
        for cut in 1..4 {
            let prefix = 1u32.to_le_bytes();
            let err = read_frame(&mut &prefix[..cut], &mut body, MAX_FRAME).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "cut after {cut}");
        }
        assert!(!read_frame(&mut &[][..], &mut body, MAX_FRAME).unwrap());
    }

    #[test]
    fn oversized_length_is_refused() {
        let buf = u32::MAX.to_le_bytes();
        let mut body = Vec::new();
        let err = read_frame(&mut &buf[..], &mut body, MAX_FRAME).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // Under a lower limit too, before anything is allocated.
        let buf = 2000u32.to_le_bytes();
        let err = read_frame(&mut &buf[..], &mut body, 1000).unwrap_err();
        assert!(err.to_string().contains("2000") && err.to_string().contains("1000"));
        assert_eq!(body.capacity(), 0);
    }

    #[test]
    fn a_huge_prefix_allocates_only_what_arrives() {
        // Claims 1 GiB (the limit), then the stream ends after 3 bytes.
        let mut buf = (MAX_FRAME as u32).to_le_bytes().to_vec();
        buf.extend_from_slice(b"abc");
        let mut body = Vec::new();
        let err = read_frame(&mut &buf[..], &mut body, MAX_FRAME).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(body.capacity() <= EAGER_ALLOC, "{}", body.capacity());
    }

    #[test]
    fn bodies_over_the_limit_get_no_prefix_even_past_4_gib() {
        assert_eq!(prefix_for(10, 10), Ok(10u32.to_le_bytes()));
        assert_eq!(prefix_for(11, 10), Err(TooLarge { len: 11, limit: 10 }));
        // A length past u32::MAX used to be written as u32::MAX: a wrong prefix. Now refused.
        let huge = (5usize << 30) + 7;
        assert_eq!(
            prefix_for(huge, usize::MAX),
            Err(TooLarge {
                len: huge,
                limit: MAX_FRAME
            })
        );
        let text = TooLarge { len: 11, limit: 10 }.describe("the result");
        assert_eq!(
            text,
            "the result is too large for the job channel: it encodes to 11 bytes, over the limit of 10 bytes"
        );
    }
}
