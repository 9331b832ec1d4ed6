//! Socket tricks for tests of what a peer's misbehaviour does to a transport.

use std::os::fd::AsRawFd;

/// Sets SO_LINGER to zero, so that dropping `stream` sends RST instead of FIN: the peer sees
/// "connection reset" rather than an orderly end of stream.
///
/// ```
/// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
/// evloop_test_support::reset_on_close(&client);
/// ```
pub fn reset_on_close(stream: &std::net::TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on an open socket with a live linger struct of the right size.
    let ret = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(ret, 0, "setsockopt(SO_LINGER)");
}
