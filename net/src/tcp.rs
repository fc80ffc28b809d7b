//! TCP: [`TcpListener`] and [`TcpStream`], mirroring `std::net`.
//!
//! Every call that would block parks only the calling green thread; see
//! the crate docs for the model and [`crate::source`]'s essay for the
//! readiness protocol.

use std::fmt;
use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, RawFd};
use std::time::Duration;

use greenio_runtime::io::Ready;

use crate::dns::{each_addr, ToSocketAddrs};
use crate::source::{deadline, finish_connect, is_not_connected, Pollable};
use crate::sys;

/// Backlog of listening sockets (the kernel caps it at `net.core.somaxconn`).
/// std and mio use 128, which drops SYNs under a burst of connects.
const BACKLOG: libc::c_int = 1024;

/// A TCP socket server, listening for connections.
///
/// Mirrors [`std::net::TcpListener`]; [`accept`](Self::accept) parks the
/// green thread until a connection arrives.
///
/// The listener is `Send` (create it anywhere, move it to another hub) but
/// not `Sync`; to accept on several hubs, give each its own handle with
/// [`try_clone`](Self::try_clone).
///
/// # Examples
///
/// ```
/// use greenio::net::{TcpListener, TcpStream};
/// use std::io::{Read, Write};
///
/// greenio::run(|| {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     greenio::spawn(move || {
///         let mut c = TcpStream::connect(addr).unwrap();
///         c.write_all(b"ping").unwrap();
///     });
///     let (mut s, _peer) = listener.accept().unwrap();
///     let mut buf = String::new();
///     s.read_to_string(&mut buf).unwrap();
///     assert_eq!(buf, "ping");
/// });
/// ```
pub struct TcpListener {
    inner: Pollable<mio::net::TcpListener>,
}

impl TcpListener {
    /// Creates a listener bound to `addr` (trying each resolved address in
    /// turn), with `SO_REUSEADDR` and a backlog of 1024.
    ///
    /// # Errors
    ///
    /// The error of the last address tried (e.g. `AddrInUse`), or of the
    /// name lookup.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = greenio::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// assert_ne!(l.local_addr().unwrap().port(), 0);
    /// ```
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(&addr, |a| {
            let l = mio::net::TcpListener::bind(*a)?;
            sys::listen(l.as_raw_fd(), BACKLOG)?;
            Ok(TcpListener {
                inner: Pollable::new(l),
            })
        })
    }

    /// Wraps a std listener (e.g. one configured with `SO_REUSEPORT`),
    /// switching it to non-blocking mode.
    ///
    /// # Errors
    ///
    /// The error of `set_nonblocking`.
    ///
    /// # Examples
    ///
    /// ```
    /// let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let l = greenio::net::TcpListener::from_std(std_l).unwrap();
    /// assert!(l.local_addr().is_ok());
    /// ```
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener {
            inner: Pollable::new(mio::net::TcpListener::from_std(listener)),
        })
    }

    /// Accepts a connection, parking until one arrives. The stream is
    /// non-blocking and close-on-exec.
    ///
    /// # Errors
    ///
    /// `EMFILE`/`ENFILE` (out of descriptors), `ECONNABORTED` and the like
    /// from `accept4`; outside a green thread, an error naming
    /// `greenio::run` when no connection is pending.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::{TcpListener, TcpStream};
    /// greenio::run(|| {
    ///     let l = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = l.local_addr().unwrap();
    ///     let c = greenio::spawn(move || TcpStream::connect(addr).unwrap());
    ///     let (_s, peer) = l.accept().unwrap();
    ///     assert_eq!(peer, c.join().unwrap().local_addr().unwrap());
    /// });
    /// ```
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (s, addr) = self.inner.do_io(Ready::READABLE, None, |l| l.accept())?;
        Ok((TcpStream::from_mio(s), addr))
    }

    /// An endless iterator of accepted connections (each
    /// [`accept`](Self::accept)'s result).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::{TcpListener, TcpStream};
    /// greenio::run(|| {
    ///     let l = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = l.local_addr().unwrap();
    ///     greenio::spawn(move || for _ in 0..3 { TcpStream::connect(addr).unwrap(); });
    ///     let n = l.incoming().take(3).filter(|s| s.is_ok()).count();
    ///     assert_eq!(n, 3);
    /// });
    /// ```
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    ///
    /// The error of `getsockname`.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = greenio::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// assert!(l.local_addr().unwrap().ip().is_loopback());
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// Sets `IP_TTL` for accepted and outgoing packets.
    ///
    /// # Errors
    ///
    /// The error of `setsockopt`.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = greenio::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// l.set_ttl(42).unwrap();
    /// assert_eq!(l.ttl().unwrap(), 42);
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.get_ref().set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    ///
    /// # Errors
    ///
    /// The error of `getsockopt`.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = greenio::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// assert!(l.ttl().unwrap() > 0);
    /// ```
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.get_ref().ttl()
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    ///
    /// # Errors
    ///
    /// The error of `getsockopt`.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = greenio::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// assert!(l.take_error().unwrap().is_none());
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.get_ref().take_error()
    }

    /// A second handle on the same listening socket (a duplicated
    /// descriptor with its own registration): give one to each hub.
    ///
    /// # Errors
    ///
    /// The error of `fcntl(F_DUPFD_CLOEXEC)` (e.g. out of descriptors).
    ///
    /// # Examples
    ///
    /// ```
    /// let l = greenio::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let l2 = l.try_clone().unwrap();
    /// assert_eq!(l.local_addr().unwrap(), l2.local_addr().unwrap());
    /// ```
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        let fd = self.inner.get_ref().as_fd().try_clone_to_owned()?;
        // SAFETY: `fd` is a freshly duplicated, owned descriptor of a
        // listening TCP socket, already non-blocking (the flag is shared).
        let l = unsafe { mio::net::TcpListener::from_raw_fd(fd.into_raw_fd()) };
        Ok(TcpListener {
            inner: self.inner.duplicate(l),
        })
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("addr", &self.local_addr().ok())
            .field("fd", &self.inner.fd())
            .finish()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.fd()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.get_ref().as_fd()
    }
}

impl IntoRawFd for TcpListener {
    fn into_raw_fd(self) -> RawFd {
        self.inner.into_inner().into_raw_fd()
    }
}

/// The iterator of [`TcpListener::incoming`]; it never returns `None`.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A TCP connection.
///
/// Mirrors [`std::net::TcpStream`]: [`Read`] and [`Write`] are implemented
/// for `TcpStream` and `&TcpStream`, so one green thread may read while
/// another writes through a shared reference (on one hub) or through a
/// [`try_clone`](Self::try_clone)d handle (on any hub).
///
/// Writes never raise `SIGPIPE`: writing to a reset peer returns
/// `BrokenPipe` or `ConnectionReset`. Dropping the stream closes it.
///
/// # Examples
///
/// ```
/// use greenio::net::{TcpListener, TcpStream};
/// use std::io::{BufRead, BufReader, Write};
///
/// greenio::run(|| {
///     let l = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = l.local_addr().unwrap();
///     greenio::spawn(move || {
///         let (s, _) = l.accept().unwrap();
///         let mut lines = BufReader::new(&s);
///         let mut line = String::new();
///         lines.read_line(&mut line).unwrap();
///         (&s).write_all(line.to_uppercase().as_bytes()).unwrap();
///     });
///     let mut c = TcpStream::connect(addr).unwrap();
///     c.write_all(b"hello\n").unwrap();
///     let mut reply = String::new();
///     BufReader::new(c).read_line(&mut reply).unwrap();
///     assert_eq!(reply, "HELLO\n");
/// });
/// ```
pub struct TcpStream {
    inner: Pollable<mio::net::TcpStream>,
}

impl TcpStream {
    fn from_mio(s: mio::net::TcpStream) -> TcpStream {
        TcpStream {
            inner: Pollable::new(s),
        }
    }

    /// Opens a connection to `addr`, trying each resolved address in turn
    /// until one accepts. Host names resolve on the blocking pool. The
    /// write timeout, if any, does not apply (use
    /// [`connect_timeout`](Self::connect_timeout)).
    ///
    /// # Errors
    ///
    /// The last address's error (`ConnectionRefused`, `TimedOut`...), the
    /// lookup's error, or an error naming `greenio::run` outside a green
    /// thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::{TcpListener, TcpStream};
    /// greenio::run(|| {
    ///     let l = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let port = l.local_addr().unwrap().port();
    ///     let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    ///     assert_eq!(s.peer_addr().unwrap().port(), port);
    /// });
    /// ```
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(&addr, |a| TcpStream::connect_addr(a, None))
    }

    /// Opens a connection to `addr`, giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// `TimedOut` when `timeout` passes; `InvalidInput` for a zero
    /// timeout; otherwise as [`connect`](Self::connect).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::{TcpListener, TcpStream};
    /// use std::time::Duration;
    /// greenio::run(|| {
    ///     let l = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = l.local_addr().unwrap();
    ///     let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    ///     assert_eq!(s.peer_addr().unwrap(), addr);
    /// });
    /// ```
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        TcpStream::connect_addr(addr, Some(timeout))
    }

    fn connect_addr(addr: &SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
        let deadline = deadline(timeout);
        let s = TcpStream::from_mio(mio::net::TcpStream::connect(*addr)?);
        finish_connect(
            &s.inner,
            deadline,
            |s| s.take_error(),
            |s| match s.peer_addr() {
                Ok(_) => Ok(true),
                Err(e) if is_not_connected(&e) => Ok(false),
                Err(e) => Err(e),
            },
        )?;
        Ok(s)
    }

    /// Wraps a connected std stream, switching it to non-blocking mode.
    ///
    /// # Errors
    ///
    /// The error of `set_nonblocking`.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    /// let s = greenio::net::TcpStream::from_std(c).unwrap();
    /// assert!(s.peer_addr().is_ok());
    /// ```
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        Ok(TcpStream::from_mio(mio::net::TcpStream::from_std(stream)))
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// `NotConnected` when the connection is gone.
    ///
    /// # Examples
    ///
    /// See [`connect`](Self::connect).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// The error of `getsockname`.
    ///
    /// # Examples
    ///
    /// See [`TcpListener::accept`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// Shuts down the read half, the write half (the peer reads EOF once it
    /// has read everything sent) or both.
    ///
    /// # Errors
    ///
    /// `NotConnected` when the connection is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::{TcpListener, TcpStream};
    /// use std::io::{Read, Write};
    /// use std::net::Shutdown;
    /// greenio::run(|| {
    ///     let l = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    ///     let (mut s, _) = l.accept().unwrap();
    ///     c.write_all(b"bye").unwrap();
    ///     c.shutdown(Shutdown::Write).unwrap();
    ///     let mut got = Vec::new();
    ///     s.read_to_end(&mut got).unwrap(); // ends at EOF
    ///     assert_eq!(got, b"bye");
    /// });
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.get_ref().shutdown(how)
    }

    /// Closes after the last reply: shuts down writing, then reads and
    /// discards what the peer still sends — at most `max_bytes`, for at most
    /// `limit` in all — until its end of stream. Closing with unread input
    /// makes the kernel answer with a reset, which can destroy the reply
    /// before the peer has read it; this is the lingering close servers use
    /// after an error answer.
    ///
    /// # Errors
    ///
    /// The error of `shutdown` or of a read; `TimedOut` once `limit` passes
    /// with the peer still sending or silent. Dropping the stream closes it
    /// either way.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::{TcpListener, TcpStream};
    /// use std::io::{Read, Write};
    /// use std::time::Duration;
    ///
    /// greenio::run(|| {
    ///     let l = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    ///     let (mut s, _) = l.accept().unwrap();
    ///     c.write_all(b"more input the server will not read").unwrap();
    ///     s.write_all(b"400 bad request").unwrap();
    ///     let closer = greenio::spawn(move || s.close_lingering(64 * 1024, Duration::from_secs(5)));
    ///     let mut reply = Vec::new();
    ///     c.read_to_end(&mut reply).unwrap(); // the reply survives, then EOF
    ///     assert_eq!(reply, b"400 bad request");
    ///     drop(c);
    ///     closer.join().unwrap().unwrap();
    /// });
    /// ```
    pub fn close_lingering(self, max_bytes: u64, limit: Duration) -> io::Result<()> {
        self.shutdown(Shutdown::Write)?;
        let deadline = greenio_runtime::wait::deadline_after(limit);
        let mut left = max_bytes;
        let mut sink = [0u8; 4096];
        while left > 0 {
            if let Some(d) = deadline {
                let now = std::time::Instant::now();
                if now >= d {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                self.set_read_timeout(Some(d - now))?;
            }
            let want = sink.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            match self.read_impl(&mut sink[..want])? {
                0 => return Ok(()),
                n => left -= n as u64,
            }
        }
        Ok(())
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    ///
    /// # Errors
    ///
    /// The error of `setsockopt`.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::{TcpListener, TcpStream};
    /// greenio::run(|| {
    ///     let l = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    ///     s.set_nodelay(true).unwrap();
    ///     assert!(s.nodelay().unwrap());
    /// });
    /// ```
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.get_ref().set_nodelay(nodelay)
    }

    /// Reads `TCP_NODELAY`.
    ///
    /// # Errors
    ///
    /// The error of `getsockopt`.
    ///
    /// # Examples
    ///
    /// See [`set_nodelay`](Self::set_nodelay).
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.get_ref().nodelay()
    }

    /// Sets `IP_TTL`.
    ///
    /// # Errors
    ///
    /// The error of `setsockopt`.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::{TcpListener, TcpStream};
    /// greenio::run(|| {
    ///     let l = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    ///     s.set_ttl(17).unwrap();
    ///     assert_eq!(s.ttl().unwrap(), 17);
    /// });
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.get_ref().set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    ///
    /// # Errors
    ///
    /// The error of `getsockopt`.
    ///
    /// # Examples
    ///
    /// See [`set_ttl`](Self::set_ttl).
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.get_ref().ttl()
    }

    /// Sets `SO_LINGER`. `Some(Duration::ZERO)` makes dropping the stream
    /// discard unsent data and send a RST (the peer sees
    /// `ConnectionReset`); `None` (the default) closes in the background.
    /// Other values would make `close` block the hub, so avoid them.
    ///
    /// # Errors
    ///
    /// The error of `setsockopt`.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::{TcpListener, TcpStream};
    /// use std::time::Duration;
    /// greenio::run(|| {
    ///     let l = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    ///     s.set_linger(Some(Duration::ZERO)).unwrap();
    ///     assert_eq!(s.linger().unwrap(), Some(Duration::ZERO));
    /// });
    /// ```
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        sys::set_linger(self.inner.fd(), linger)
    }

    /// Reads `SO_LINGER`.
    ///
    /// # Errors
    ///
    /// The error of `getsockopt`.
    ///
    /// # Examples
    ///
    /// See [`set_linger`](Self::set_linger).
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        sys::linger(self.inner.fd())
    }

    /// Bounds each read: a read that has not completed after `timeout`
    /// fails with `ErrorKind::TimedOut`. `None` waits forever.
    ///
    /// The timeout belongs to this handle (a [`try_clone`](Self::try_clone)
    /// starts with a copy).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, like std.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::{TcpListener, TcpStream};
    /// use std::io::{ErrorKind, Read};
    /// use std::time::Duration;
    /// greenio::run(|| {
    ///     let l = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let mut s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    ///     s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    ///     let err = s.read(&mut [0; 8]).unwrap_err();
    ///     assert_eq!(err.kind(), ErrorKind::TimedOut);
    /// });
    /// ```
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.set_timeout(Ready::READABLE, timeout)
    }

    /// The read timeout.
    ///
    /// # Errors
    ///
    /// Never; `io::Result` for std compatibility.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::{TcpListener, TcpStream};
    /// greenio::run(|| {
    ///     let l = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    ///     assert_eq!(s.read_timeout().unwrap(), None);
    /// });
    /// ```
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.inner.read_timeout())
    }

    /// Bounds each write (and [`sendfile`](Self::sendfile)): one that
    /// cannot make progress for `timeout` fails with `ErrorKind::TimedOut`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, like std.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::{TcpListener, TcpStream};
    /// use std::time::Duration;
    /// greenio::run(|| {
    ///     let l = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    ///     s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    ///     assert_eq!(s.write_timeout().unwrap(), Some(Duration::from_secs(1)));
    /// });
    /// ```
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.set_timeout(Ready::WRITABLE, timeout)
    }

    /// The write timeout.
    ///
    /// # Errors
    ///
    /// Never; `io::Result` for std compatibility.
    ///
    /// # Examples
    ///
    /// See [`set_write_timeout`](Self::set_write_timeout).
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.inner.write_timeout())
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    ///
    /// # Errors
    ///
    /// The error of `getsockopt`.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::{TcpListener, TcpStream};
    /// greenio::run(|| {
    ///     let l = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    ///     assert!(s.take_error().unwrap().is_none());
    /// });
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.get_ref().take_error()
    }

    /// A second handle on the same connection: a duplicated descriptor with
    /// its own registration, so one green thread can read while another
    /// writes, on the same hub or on different hubs. Closing one handle
    /// does not close the connection; use [`shutdown`](Self::shutdown).
    ///
    /// # Errors
    ///
    /// The error of `fcntl(F_DUPFD_CLOEXEC)` (e.g. out of descriptors).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::{TcpListener, TcpStream};
    /// use std::io::{Read, Write};
    /// greenio::run(|| {
    ///     let l = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    ///     let (mut s, _) = l.accept().unwrap();
    ///     let mut w = c.try_clone().unwrap();
    ///     let writer = greenio::spawn(move || w.write_all(b"ping").unwrap());
    ///     let mut buf = [0; 4];
    ///     s.read_exact(&mut buf).unwrap();
    ///     writer.join().unwrap();
    ///     assert_eq!(&buf, b"ping");
    /// });
    /// ```
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        let fd = self.inner.get_ref().as_fd().try_clone_to_owned()?;
        // SAFETY: `fd` is a freshly duplicated, owned descriptor of this
        // TCP socket, already non-blocking (the flag is shared).
        let s = unsafe { mio::net::TcpStream::from_raw_fd(fd.into_raw_fd()) };
        Ok(TcpStream {
            inner: self.inner.duplicate(s),
        })
    }

    /// Reads without removing the data from the receive queue, parking
    /// until some is available.
    ///
    /// # Errors
    ///
    /// As [`Read::read`].
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::{TcpListener, TcpStream};
    /// use std::io::{Read, Write};
    /// greenio::run(|| {
    ///     let l = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    ///     let (mut s, _) = l.accept().unwrap();
    ///     c.write_all(b"abc").unwrap();
    ///     let mut buf = [0; 3];
    ///     let n = s.peek(&mut buf).unwrap();
    ///     assert_eq!(&buf[..n], &b"abc"[..n]);
    ///     s.read_exact(&mut buf).unwrap();
    ///     assert_eq!(&buf, b"abc");
    /// });
    /// ```
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.inner
            .do_io(Ready::READABLE, self.inner.read_timeout(), |s| s.peek(buf))
    }

    /// Sends `len` bytes of `file` starting at `offset` with `sendfile(2)`:
    /// the kernel copies from the page cache to the socket, parking the
    /// green thread whenever the send buffer is full. Returns the bytes
    /// sent, fewer than `len` only if the file ends first. The file's own
    /// position is not used or changed.
    ///
    /// # Errors
    ///
    /// The socket's errors (`BrokenPipe`, `ConnectionReset`), `TimedOut`
    /// after the write timeout without progress, `InvalidInput` for an
    /// offset beyond `off_t`. Bytes sent before an error are not reported.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::{TcpListener, TcpStream};
    /// use std::io::{Read, Write};
    /// greenio::run(|| {
    ///     let path = std::env::temp_dir().join(format!("greenio-sendfile-doc-{}", std::process::id()));
    ///     std::fs::write(&path, b"0123456789").unwrap();
    ///     let file = std::fs::File::open(&path).unwrap();
    ///     let l = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    ///     let (mut s, _) = l.accept().unwrap();
    ///     assert_eq!(c.sendfile(&file, 2, 5).unwrap(), 5);
    ///     drop(c);
    ///     let mut got = Vec::new();
    ///     s.read_to_end(&mut got).unwrap();
    ///     assert_eq!(got, b"23456");
    ///     std::fs::remove_file(&path).unwrap();
    /// });
    /// ```
    pub fn sendfile(&self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        let mut off = libc::off_t::try_from(offset).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "sendfile offset too large")
        })?;
        let (sock, src) = (self.inner.fd(), file.as_raw_fd());
        let mut sent = 0;
        while sent < len {
            let n = self
                .inner
                .do_io(Ready::WRITABLE, self.inner.write_timeout(), |_| {
                    sys::sendfile(sock, src, &mut off, len - sent)
                })?;
            if n == 0 {
                break; // end of file
            }
            // A short count may mean a full send buffer or the end of the
            // file: never clear readiness on it (a writable socket would
            // never raise the edge we would then wait for).
            sent += n;
        }
        Ok(sent)
    }

    fn read_impl(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let (fd, want) = (self.inner.fd(), buf.len());
        self.inner
            .do_io_stream(Ready::READABLE, self.inner.read_timeout(), want, |_| {
                sys::recv(fd, buf)
            })
    }

    fn read_vectored_impl(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let want: usize = bufs.iter().map(|b| b.len()).sum();
        if want == 0 {
            return Ok(0);
        }
        self.inner
            .do_io_stream(Ready::READABLE, self.inner.read_timeout(), want, |mut s| {
                s.read_vectored(bufs)
            })
    }

    fn write_impl(&self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let fd = self.inner.fd();
        self.inner.do_io_stream(
            Ready::WRITABLE,
            self.inner.write_timeout(),
            buf.len(),
            |_| sys::send(fd, buf),
        )
    }

    fn write_vectored_impl(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // `send_vectored` passes at most UIO_MAXIOV buffers: a write of all
        // of those is complete even when later buffers remain.
        let sent = &bufs[..bufs.len().min(libc::UIO_MAXIOV as usize)];
        let want: usize = sent.iter().map(|b| b.len()).sum();
        if want == 0 && bufs.iter().all(|b| b.is_empty()) {
            return Ok(0);
        }
        let fd = self.inner.fd();
        self.inner
            .do_io_stream(Ready::WRITABLE, self.inner.write_timeout(), want, |_| {
                sys::send_vectored(fd, bufs)
            })
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_impl(buf)
    }
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.read_vectored_impl(bufs)
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_impl(buf)
    }
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.read_vectored_impl(bufs)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_impl(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_vectored_impl(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_impl(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_vectored_impl(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .field("fd", &self.inner.fd())
            .finish()
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.fd()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.get_ref().as_fd()
    }
}

impl IntoRawFd for TcpStream {
    fn into_raw_fd(self) -> RawFd {
        self.inner.into_inner().into_raw_fd()
    }
}
