//! A transport's write buffer and its water marks (asyncio's `_FlowControlMixin`).
//!
//! Bytes the kernel did not take are kept in one `Vec` with a read offset; the consumed prefix
//! is dropped when it is more than half the vector, so a steady trickle of writes neither
//! grows the buffer nor copies it on every partial send.

use super::TransportError;

/// asyncio's default high-water mark: 64 KiB.
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;
/// asyncio's default low-water mark: 16 KiB.
pub const DEFAULT_LOW_WATER: usize = DEFAULT_HIGH_WATER / 4;

/// asyncio's rules for `set_write_buffer_limits(high, low)`.
pub(crate) fn limits(
    high: Option<usize>,
    low: Option<usize>,
) -> Result<(usize, usize), TransportError> {
    let high = match (high, low) {
        (Some(high), _) => high,
        (None, Some(low)) => 4 * low,
        (None, None) => DEFAULT_HIGH_WATER,
    };
    let low = low.unwrap_or(high / 4);
    if high < low {
        return Err(TransportError::BadLimits { high, low });
    }
    Ok((high, low))
}

#[derive(Default)]
pub(crate) struct WriteBuffer {
    data: Vec<u8>,
    start: usize,
}

impl WriteBuffer {
    pub(crate) fn len(&self) -> usize {
        self.data.len() - self.start
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn pending(&self) -> &[u8] {
        &self.data[self.start..]
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
    }

    /// `n` bytes were written.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.data.len() {
            self.data.clear();
            self.start = 0;
        } else if self.start > self.data.len() / 2 {
            self.data.drain(..self.start);
            self.start = 0;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.data = Vec::new();
        self.start = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asyncio_limit_rules() {
        assert_eq!(limits(None, None), Ok((65536, 16384)));
        assert_eq!(limits(Some(100), None), Ok((100, 25)));
        assert_eq!(limits(None, Some(10)), Ok((40, 10)));
        assert_eq!(limits(Some(0), Some(0)), Ok((0, 0)));
        assert_eq!(
            limits(Some(1), Some(2)).unwrap_err().to_string(),
            "high (1) must be >= low (2) must be >= 0"
        );
    }

    #[test]
    fn consume_keeps_the_order_and_compacts() {
        let mut buf = WriteBuffer::default();
        buf.push(b"hello world");
        buf.consume(6);
        assert_eq!(buf.pending(), b"world");
        buf.push(b"!");
        assert_eq!(buf.pending(), b"world!");
        buf.consume(6);
        assert!(buf.is_empty());
        assert!(buf.data.capacity() > 0, "capacity kept for reuse");
    }
}
