//! Thin wrappers over the libc calls that neither std nor mio offer on
//! non-blocking sockets: `send` with `MSG_NOSIGNAL`, `sendmsg`, socket
//! options such as `SO_LINGER`, `sendfile`, a listener bound with
//! `SO_REUSEPORT`. Raw socket work of the crate lives here and nowhere else.
//!
//! Every call goes through [`syscall!`], which turns the C convention
//! (`-1` and `errno`) into an [`io::Result`]. The macro does not hide any
//! `unsafe`: callers write the `unsafe` block themselves, with its
//! `// SAFETY:` comment, so no unsound call hides behind a safe-looking
//! macro.

use std::io::{self, IoSlice};
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

pub(crate) use greenio_runtime::syscall;

/// Flags of every `send` we make: never raise `SIGPIPE` (a reset peer gives
/// `EPIPE`, i.e. `ErrorKind::BrokenPipe`), and never block.
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;

/// `send(2)` with [`SEND_FLAGS`].
///
/// Made through `syscall(2)` rather than libc's `send`: once a process has a
/// second thread (the runtime's watchdog, the blocking pool), glibc wraps
/// every cancellation point such as `send` and `recv` in
/// `pthread_enable/disable_asynccancel`, ~30 instructions per call on the
/// hottest path of a server. Our sockets are non-blocking and green threads
/// are never cancelled through pthreads, so the raw call is equivalent.
pub(crate) fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid slice for `buf.len()` bytes for the duration
    // of the call; the kernel only reads from it. sendto with a null
    // address is send(2).
    let n = syscall!(unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd,
            buf.as_ptr(),
            buf.len(),
            SEND_FLAGS,
            std::ptr::null::<libc::sockaddr>(),
            0 as libc::socklen_t,
        )
    })?;
    Ok(n as usize)
}

/// `recv(2)` without flags, through `syscall(2)` for the reason given at
/// [`send`].
pub(crate) fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid, writable slice for `buf.len()` bytes for the
    // duration of the call; recvfrom with null address pointers is recv(2).
    let n = syscall!(unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd,
            buf.as_mut_ptr(),
            buf.len(),
            0 as libc::c_int,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        )
    })?;
    Ok(n as usize)
}

/// `sendmsg(2)` of several buffers with [`SEND_FLAGS`] (a `writev` that
/// cannot raise `SIGPIPE`).
pub(crate) fn send_vectored(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: an all-zero `msghdr` is a valid value (null pointers, zero
    // lengths).
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    // `IoSlice` is guaranteed ABI-compatible with `iovec` on Unix; the kernel
    // only reads through the pointer. IOV_MAX bounds the count.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len().min(libc::UIO_MAXIOV as usize) as _;
    // SAFETY: `msg` points to `msg_iovlen` valid iovecs that outlive the
    // call; no name or control buffers are passed. Through `syscall(2)`
    // for the reason given at [`send`].
    let n = syscall!(unsafe {
        libc::syscall(
            libc::SYS_sendmsg,
            fd,
            &msg as *const libc::msghdr,
            SEND_FLAGS,
        )
    })?;
    Ok(n as usize)
}

/// Sets an integer-like socket option.
pub(crate) fn setsockopt<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: T,
) -> io::Result<()> {
    // SAFETY: `value` lives on our stack for the call and its exact size is
    // passed; the kernel validates level/name/size.
    syscall!(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Reads a socket option of plain-old-data type `T`.
pub(crate) fn getsockopt<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<T> {
    let mut value = mem::MaybeUninit::<T>::zeroed();
    let mut len = mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is writable for `len` bytes; the kernel writes at most
    // `len` bytes and updates `len`.
    syscall!(unsafe { libc::getsockopt(fd, level, name, value.as_mut_ptr().cast(), &mut len) })?;
    // SAFETY: the buffer was zero-initialised, and every `T` used here
    // (`c_int`, `linger`) is valid for any bit pattern.
    Ok(unsafe { value.assume_init() })
}

/// `SO_LINGER`: `None` turns lingering off (close returns at once and the
/// kernel sends queued data in the background); `Some(0)` makes `close`
/// discard queued data and send a RST.
pub(crate) fn set_linger(fd: RawFd, linger: Option<Duration>) -> io::Result<()> {
    let value = libc::linger {
        l_onoff: linger.is_some() as libc::c_int,
        l_linger: linger.map_or(0, |d| {
            d.as_secs().min(libc::c_int::MAX as u64) as libc::c_int
        }),
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, value)
}

/// Reads `SO_LINGER`.
pub(crate) fn linger(fd: RawFd) -> io::Result<Option<Duration>> {
    let value: libc::linger = getsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER)?;
    Ok((value.l_onoff != 0).then(|| Duration::from_secs(value.l_linger.max(0) as u64)))
}

/// Largest count one `sendfile(2)` call accepts on Linux.
pub(crate) const SENDFILE_MAX: usize = 0x7fff_f000;

/// One `sendfile(2)` call: up to `count` bytes of `file` at `*offset` to
/// `sock`, advancing `*offset`.
pub(crate) fn sendfile(
    sock: RawFd,
    file: RawFd,
    offset: &mut libc::off_t,
    count: usize,
) -> io::Result<usize> {
    // SAFETY: both descriptors are open for the call (the caller holds
    // them); `offset` is a valid, exclusive pointer.
    let n = syscall!(unsafe { libc::sendfile(sock, file, offset, count.min(SENDFILE_MAX)) })?;
    Ok(n as usize)
}

/// Re-issues `listen(2)` with a larger backlog (Linux adjusts the backlog of
/// a listening socket in place; the kernel caps it at `somaxconn`).
pub(crate) fn listen(fd: RawFd, backlog: libc::c_int) -> io::Result<()> {
    // SAFETY: `fd` is a socket the caller owns; listen takes no pointers.
    syscall!(unsafe { libc::listen(fd, backlog) })?;
    Ok(())
}

/// A non-blocking listening socket bound to `addr` with `SO_REUSEADDR` and
/// `SO_REUSEPORT` set before `bind`, so that several can share the port.
pub(crate) fn bind_reuse_port(
    addr: SocketAddr,
    backlog: libc::c_int,
) -> io::Result<std::net::TcpListener> {
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let kind = libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
    // SAFETY: socket takes no pointers; the result is checked.
    let fd = syscall!(unsafe { libc::socket(domain, kind, 0) })?;
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let raw = fd.as_raw_fd();
    for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
        setsockopt(raw, libc::SOL_SOCKET, opt, 1 as libc::c_int)?;
    }
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a
            // sockaddr_in.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a
            // sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    let storage_ptr = (&storage as *const libc::sockaddr_storage).cast();
    // SAFETY: `storage` holds a valid address of `len` bytes for the call.
    syscall!(unsafe { libc::bind(raw, storage_ptr, len as libc::socklen_t) })?;
    listen(raw, backlog)?;
    Ok(std::net::TcpListener::from(fd))
}
