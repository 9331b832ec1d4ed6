//! Name resolution as asyncio does it: `getaddrinfo` and `getnameinfo` run on the loop's
//! default executor, so a slow DNS server never blocks the loop.
//!
//! A host that is already an IP literal is answered on the loop thread without a job (asyncio's
//! `_ipaddr_info` shortcut), which is also what keeps `create_connection("127.0.0.1", ..)`
//! free of a thread hop.

use std::ffi::{CStr, CString};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use evloop_reactor::EventLoop;

use crate::ExecutorExt;
use crate::error::ExecutorError;

/// What `getaddrinfo` should look for (its `family`, `type`, `proto`, `flags`; 0 means any).
///
/// ```
/// let hints = evloop::AddrInfoHints::stream();
/// assert_eq!(hints.socktype, libc::SOCK_STREAM);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddrInfoHints {
    /// `AF_INET`, `AF_INET6` or 0.
    pub family: i32,
    /// `SOCK_STREAM`, `SOCK_DGRAM` or 0.
    pub socktype: i32,
    /// The protocol number, or 0.
    pub protocol: i32,
    /// `AI_PASSIVE`, `AI_CANONNAME`, ...
    pub flags: i32,
}

impl AddrInfoHints {
    /// Stream sockets of any family (what `create_connection` asks for).
    pub fn stream() -> AddrInfoHints {
        AddrInfoHints {
            socktype: libc::SOCK_STREAM,
            ..AddrInfoHints::default()
        }
    }

    /// Datagram sockets of any family.
    pub fn datagram() -> AddrInfoHints {
        AddrInfoHints {
            socktype: libc::SOCK_DGRAM,
            ..AddrInfoHints::default()
        }
    }
}

/// One answer of `getaddrinfo`: asyncio's `(family, type, proto, canonname, sockaddr)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrInfo {
    /// `AF_INET` or `AF_INET6`.
    pub family: i32,
    /// The socket type.
    pub socktype: i32,
    /// The protocol.
    pub protocol: i32,
    /// The canonical name, with `AI_CANONNAME`, on the first answer.
    pub canonname: Option<String>,
    /// The address.
    pub addr: SocketAddr,
}

/// Why a name could not be resolved.
///
/// ```
/// let e = evloop::ResolveError::Gai { code: -2, message: "Name or service not known".into() };
/// assert_eq!(e.to_string(), "[Errno -2] Name or service not known");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The resolver's own error (Python's `socket.gaierror`, with its text).
    #[error("[Errno {code}] {message}")]
    Gai {
        /// The `EAI_*` code.
        code: i32,
        /// `gai_strerror`'s text.
        message: String,
    },
    /// A host name with a NUL byte in it.
    #[error("embedded null character in host name")]
    BadName,
    /// The default executor refused the job (closed loop, shut down executor).
    #[error(transparent)]
    Executor(#[from] ExecutorError),
}

impl From<ResolveError> for std::io::Error {
    fn from(error: ResolveError) -> std::io::Error {
        std::io::Error::other(error)
    }
}

fn gai_error(code: i32) -> ResolveError {
    if code == libc::EAI_SYSTEM {
        let os = std::io::Error::last_os_error();
        return ResolveError::Gai {
            code,
            message: os.to_string(),
        };
    }
    // SAFETY: gai_strerror returns a pointer to a static, NUL-terminated string.
    let message = unsafe { CStr::from_ptr(libc::gai_strerror(code)) };
    ResolveError::Gai {
        code,
        message: message.to_string_lossy().into_owned(),
    }
}

/// Reads a `sockaddr` of `getaddrinfo`'s answer.
///
/// # Safety
///
/// `addr` must point to a valid `sockaddr` of at least `len` bytes.
unsafe fn socket_addr(addr: *const libc::sockaddr, len: libc::socklen_t) -> Option<SocketAddr> {
    // SAFETY: the caller guarantees `addr` is a valid sockaddr; the family says which
    // struct it is, and the length check makes the cast's read in bounds.
    unsafe {
        match i32::from((*addr).sa_family) {
            libc::AF_INET if len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
                let sin = &*(addr as *const libc::sockaddr_in);
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
                let sin6 = &*(addr as *const libc::sockaddr_in6);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// The blocking `getaddrinfo` call (run on an executor thread).
fn getaddrinfo_blocking(
    host: Option<CString>,
    port: u16,
    hints: AddrInfoHints,
) -> Result<Vec<AddrInfo>, ResolveError> {
    let service = CString::new(port.to_string()).expect("digits");
    // SAFETY: addrinfo is plain old data; zero is a valid "no hint" for every field.
    let mut c_hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    c_hints.ai_family = hints.family;
    c_hints.ai_socktype = hints.socktype;
    c_hints.ai_protocol = hints.protocol;
    c_hints.ai_flags = hints.flags;
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    let host_ptr = host.as_ref().map_or(std::ptr::null(), |h| h.as_ptr());
    // SAFETY: the strings are NUL-terminated and live across the call; `list` is an
    // out-pointer, freed below with freeaddrinfo.
    let code = unsafe { libc::getaddrinfo(host_ptr, service.as_ptr(), &c_hints, &mut list) };
    if code != 0 {
        return Err(gai_error(code));
    }
    let mut out = Vec::new();
    let mut node = list;
    while !node.is_null() {
        // SAFETY: `node` is an element of the list getaddrinfo returned, not yet freed.
        let info = unsafe { &*node };
        // SAFETY: ai_addr points to a sockaddr of ai_addrlen bytes, per getaddrinfo.
        if let Some(addr) = unsafe { socket_addr(info.ai_addr, info.ai_addrlen) } {
            let canonname = (!info.ai_canonname.is_null()).then(|| {
                // SAFETY: a non-null ai_canonname is a NUL-terminated string in the list.
                unsafe { CStr::from_ptr(info.ai_canonname) }
                    .to_string_lossy()
                    .into_owned()
            });
            out.push(AddrInfo {
                family: info.ai_family,
                socktype: info.ai_socktype,
                protocol: info.ai_protocol,
                canonname,
                addr,
            });
        }
        node = info.ai_next;
    }
    // SAFETY: `list` came from a successful getaddrinfo and is freed exactly once.
    unsafe { libc::freeaddrinfo(list) };
    Ok(out)
}

/// The answer for an IP literal, without asking the resolver.
fn literal(host: &str, port: u16, hints: AddrInfoHints) -> Option<Vec<AddrInfo>> {
    let ip: IpAddr = host.parse().ok()?;
    let family = if ip.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    if hints.family != 0 && hints.family != family {
        return None;
    }
    let kinds: &[(i32, i32)] = match hints.socktype {
        0 => &[
            (libc::SOCK_STREAM, libc::IPPROTO_TCP),
            (libc::SOCK_DGRAM, libc::IPPROTO_UDP),
        ],
        libc::SOCK_STREAM => &[(libc::SOCK_STREAM, libc::IPPROTO_TCP)],
        libc::SOCK_DGRAM => &[(libc::SOCK_DGRAM, libc::IPPROTO_UDP)],
        _ => return None,
    };
    Some(
        kinds
            .iter()
            .map(|&(socktype, protocol)| AddrInfo {
                family,
                socktype,
                protocol,
                canonname: None,
                addr: SocketAddr::new(ip, port),
            })
            .collect(),
    )
}

/// Resolves `host` (all local interfaces with `None` and `AI_PASSIVE`, loopback otherwise)
/// and `port` on `lp`'s default executor (asyncio's `loop.getaddrinfo`).
pub(crate) async fn getaddrinfo(
    lp: &EventLoop,
    host: Option<&str>,
    port: u16,
    hints: AddrInfoHints,
) -> Result<Vec<AddrInfo>, ResolveError> {
    if let Some(found) = host.and_then(|h| literal(h, port, hints)) {
        return Ok(found);
    }
    let host = match host {
        Some(host) => Some(CString::new(host).map_err(|_| ResolveError::BadName)?),
        None => None,
    };
    let job = lp.run_in_executor(None, move || getaddrinfo_blocking(host, port, hints))?;
    job.await.map_err(|e| ResolveError::Executor(e.into()))?
}

/// `getnameinfo` on the default executor (asyncio's `loop.getnameinfo`): `(host, service)`.
pub(crate) async fn getnameinfo(
    lp: &EventLoop,
    addr: SocketAddr,
    flags: i32,
) -> Result<(String, String), ResolveError> {
    let job = lp.run_in_executor(None, move || {
        let (storage, len) = evloop_reactor::transport::c_sockaddr(&addr);
        let mut host = [0 as libc::c_char; 1025];
        let mut service = [0 as libc::c_char; 32];
        // SAFETY: `storage` holds a sockaddr of `len` bytes; the buffers are writable and
        // their lengths are passed.
        let code = unsafe {
            libc::getnameinfo(
                &storage as *const _ as *const libc::sockaddr,
                len,
                host.as_mut_ptr(),
                host.len() as libc::socklen_t,
                service.as_mut_ptr(),
                service.len() as libc::socklen_t,
                flags,
            )
        };
        if code != 0 {
            return Err(gai_error(code));
        }
        let text = |buf: &[libc::c_char]| {
            // SAFETY: getnameinfo wrote a NUL-terminated string into the buffer.
            unsafe { CStr::from_ptr(buf.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        };
        Ok((text(&host), text(&service)))
    })?;
    job.await.map_err(|e| ResolveError::Executor(e.into()))?
}

impl fmt::Display for AddrInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)
    }
}
