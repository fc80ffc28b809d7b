//! Unix domain sockets: [`UnixListener`], [`UnixStream`] and
//! [`UnixDatagram`], mirroring [`std::os::unix::net`].
//!
//! Stream writes use `send(MSG_NOSIGNAL)`: writing to a closed peer returns
//! `BrokenPipe` and never raises `SIGPIPE`.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use greenio_runtime::io::Ready;

use crate::source::Pollable;
use crate::sys;

/// A Unix domain socket server.
///
/// Mirrors [`std::os::unix::net::UnixListener`];
/// [`accept`](Self::accept) parks the green thread. The socket file is not
/// removed on drop (as with std).
///
/// # Examples
///
/// ```
/// use greenio::net::{UnixListener, UnixStream};
/// use std::io::{Read, Write};
///
/// greenio::run(|| {
///     let dir = std::env::temp_dir().join(format!("greenio-unix-doc-{}", std::process::id()));
///     std::fs::create_dir_all(&dir).unwrap();
///     let path = dir.join("sock");
///     let _ = std::fs::remove_file(&path);
///     let l = UnixListener::bind(&path).unwrap();
///     let p2 = path.clone();
///     greenio::spawn(move || UnixStream::connect(&p2).unwrap().write_all(b"hi").unwrap());
///     let (mut s, _) = l.accept().unwrap();
///     let mut got = String::new();
///     s.read_to_string(&mut got).unwrap();
///     assert_eq!(got, "hi");
///     std::fs::remove_dir_all(&dir).unwrap();
/// });
/// ```
pub struct UnixListener {
    inner: Pollable<mio::net::UnixListener>,
}

impl UnixListener {
    /// Creates a listener bound to `path`.
    ///
    /// # Errors
    ///
    /// `AddrInUse` if the file exists; the error of `socket`/`bind`/`listen`.
    ///
    /// # Examples
    ///
    /// See [`UnixListener`].
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        let l = mio::net::UnixListener::bind(path)?;
        sys::listen(l.as_raw_fd(), 1024)?;
        Ok(UnixListener {
            inner: Pollable::new(l),
        })
    }

    /// Wraps a std listener, switching it to non-blocking mode.
    ///
    /// # Errors
    ///
    /// The error of `set_nonblocking`.
    ///
    /// # Examples
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("greenio-unix-fromstd-{}", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let std_l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    /// let l = greenio::net::UnixListener::from_std(std_l).unwrap();
    /// assert!(l.local_addr().unwrap().as_pathname().is_some());
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        Ok(UnixListener {
            inner: Pollable::new(mio::net::UnixListener::from_std(listener)),
        })
    }

    /// Accepts a connection, parking until one arrives.
    ///
    /// # Errors
    ///
    /// The error of `accept4` (e.g. `EMFILE`); outside a green thread, an
    /// error naming `greenio::run` when none is pending.
    ///
    /// # Examples
    ///
    /// See [`UnixListener`].
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (s, a) = self.inner.do_io(Ready::READABLE, None, |l| l.accept())?;
        Ok((UnixStream::from_mio(s), a))
    }

    /// An endless iterator of accepted connections.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::{UnixListener, UnixStream};
    /// greenio::run(|| {
    ///     let path = std::env::temp_dir().join(format!("greenio-unix-inc-{}", std::process::id()));
    ///     let _ = std::fs::remove_file(&path);
    ///     let l = UnixListener::bind(&path).unwrap();
    ///     let p2 = path.clone();
    ///     greenio::spawn(move || for _ in 0..2 { UnixStream::connect(&p2).unwrap(); });
    ///     assert_eq!(l.incoming().take(2).filter(Result::is_ok).count(), 2);
    ///     std::fs::remove_file(&path).unwrap();
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
    /// See [`from_std`](Self::from_std).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
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
    /// let path = std::env::temp_dir().join(format!("greenio-unix-err-{}", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let l = greenio::net::UnixListener::bind(&path).unwrap();
    /// assert!(l.take_error().unwrap().is_none());
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.get_ref().take_error()
    }

    /// A second handle on the same listening socket.
    ///
    /// # Errors
    ///
    /// The error of `fcntl(F_DUPFD_CLOEXEC)`.
    ///
    /// # Examples
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("greenio-unix-clone-{}", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let l = greenio::net::UnixListener::bind(&path).unwrap();
    /// assert!(l.try_clone().is_ok());
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        let fd = self.inner.get_ref().as_fd().try_clone_to_owned()?;
        // SAFETY: `fd` is a freshly duplicated, owned descriptor of this
        // listening socket, already non-blocking (the flag is shared).
        let l = unsafe { mio::net::UnixListener::from_raw_fd(fd.into_raw_fd()) };
        Ok(UnixListener {
            inner: self.inner.duplicate(l),
        })
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("addr", &self.local_addr().ok())
            .field("fd", &self.inner.fd())
            .finish()
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.fd()
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.get_ref().as_fd()
    }
}

/// The iterator of [`UnixListener::incoming`]; it never returns `None`.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<UnixStream>;
    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A Unix domain stream connection.
///
/// Mirrors [`std::os::unix::net::UnixStream`], with [`Read`] and [`Write`]
/// for `UnixStream` and `&UnixStream`.
///
/// # Examples
///
/// ```
/// use greenio::net::UnixStream;
/// use std::io::{Read, Write};
///
/// greenio::run(|| {
///     let (mut a, mut b) = UnixStream::pair().unwrap();
///     a.write_all(b"over the pair").unwrap();
///     drop(a);
///     let mut got = String::new();
///     b.read_to_string(&mut got).unwrap();
///     assert_eq!(got, "over the pair");
/// });
/// ```
pub struct UnixStream {
    inner: Pollable<mio::net::UnixStream>,
}

impl UnixStream {
    fn from_mio(s: mio::net::UnixStream) -> UnixStream {
        UnixStream {
            inner: Pollable::new(s),
        }
    }

    /// Connects to the socket at `path`. When the listener's backlog is
    /// full, retries with a short back-off (parking the green thread)
    /// until it has room, as a blocking connect would wait.
    ///
    /// # Errors
    ///
    /// `NotFound`, `ConnectionRefused` (no listener), and the like.
    ///
    /// # Examples
    ///
    /// See [`UnixListener`].
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let mut backoff = Duration::from_millis(1);
        loop {
            match mio::net::UnixStream::connect(path.as_ref()) {
                Ok(s) => return Ok(UnixStream::from_mio(s)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    greenio_runtime::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A connected pair of sockets.
    ///
    /// # Errors
    ///
    /// The error of `socketpair` (e.g. out of descriptors).
    ///
    /// # Examples
    ///
    /// See [`UnixStream`].
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((UnixStream::from_mio(a), UnixStream::from_mio(b)))
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
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let a = greenio::net::UnixStream::from_std(a).unwrap();
    /// assert!(a.peer_addr().is_ok());
    /// ```
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        Ok(UnixStream::from_mio(mio::net::UnixStream::from_std(stream)))
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// The error of `getsockname`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, _b) = greenio::net::UnixStream::pair().unwrap();
    /// assert!(a.local_addr().unwrap().is_unnamed());
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// The error of `getpeername`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, _b) = greenio::net::UnixStream::pair().unwrap();
    /// assert!(a.peer_addr().unwrap().is_unnamed());
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// Shuts down the read half, the write half, or both.
    ///
    /// # Errors
    ///
    /// The error of `shutdown(2)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// greenio::run(|| {
    ///     let (a, mut b) = greenio::net::UnixStream::pair().unwrap();
    ///     a.shutdown(std::net::Shutdown::Write).unwrap();
    ///     assert_eq!(b.read(&mut [0; 4]).unwrap(), 0);
    /// });
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.get_ref().shutdown(how)
    }

    /// Bounds each read; expiry gives `ErrorKind::TimedOut`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, like std.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// use std::time::Duration;
    /// greenio::run(|| {
    ///     let (mut a, _b) = greenio::net::UnixStream::pair().unwrap();
    ///     a.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    ///     assert_eq!(a.read(&mut [0; 4]).unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    ///     assert_eq!(a.read_timeout().unwrap(), Some(Duration::from_millis(10)));
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
    /// See [`set_read_timeout`](Self::set_read_timeout).
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.inner.read_timeout())
    }

    /// Bounds each write that cannot make progress.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, like std.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let (a, _b) = greenio::net::UnixStream::pair().unwrap();
    /// a.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    /// assert_eq!(a.write_timeout().unwrap(), Some(Duration::from_secs(2)));
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
    /// let (a, _b) = greenio::net::UnixStream::pair().unwrap();
    /// assert!(a.take_error().unwrap().is_none());
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.get_ref().take_error()
    }

    /// A second handle on the same connection, with its own registration
    /// (one green thread reads while another writes).
    ///
    /// # Errors
    ///
    /// The error of `fcntl(F_DUPFD_CLOEXEC)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// greenio::run(|| {
    ///     let (a, mut b) = greenio::net::UnixStream::pair().unwrap();
    ///     let mut w = a.try_clone().unwrap();
    ///     greenio::spawn(move || w.write_all(b"x").unwrap()).join().unwrap();
    ///     let mut buf = [0; 1];
    ///     b.read_exact(&mut buf).unwrap();
    ///     assert_eq!(&buf, b"x");
    /// });
    /// ```
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        let fd = self.inner.get_ref().as_fd().try_clone_to_owned()?;
        // SAFETY: `fd` is a freshly duplicated, owned descriptor of this
        // stream socket, already non-blocking (the flag is shared).
        let s = unsafe { mio::net::UnixStream::from_raw_fd(fd.into_raw_fd()) };
        Ok(UnixStream {
            inner: self.inner.duplicate(s),
        })
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
        let want: usize = bufs.iter().map(|b| b.len()).sum();
        if want == 0 {
            return Ok(0);
        }
        let fd = self.inner.fd();
        self.inner
            .do_io(Ready::WRITABLE, self.inner.write_timeout(), |_| {
                sys::send_vectored(fd, bufs)
            })
    }
}

impl Read for UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_impl(buf)
    }
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.read_vectored_impl(bufs)
    }
}

impl Read for &UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_impl(buf)
    }
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.read_vectored_impl(bufs)
    }
}

impl Write for UnixStream {
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

impl Write for &UnixStream {
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

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .field("fd", &self.inner.fd())
            .finish()
    }
}

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.fd()
    }
}

impl AsFd for UnixStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.get_ref().as_fd()
    }
}

impl IntoRawFd for UnixStream {
    fn into_raw_fd(self) -> RawFd {
        self.inner.into_inner().into_raw_fd()
    }
}

/// A Unix domain datagram socket.
///
/// Mirrors [`std::os::unix::net::UnixDatagram`]; receives park until a
/// datagram arrives, sends park while the peer's queue is full.
///
/// # Examples
///
/// ```
/// use greenio::net::UnixDatagram;
///
/// greenio::run(|| {
///     let (a, b) = UnixDatagram::pair().unwrap();
///     a.send(b"one").unwrap();
///     a.send(b"two").unwrap();
///     let mut buf = [0; 8];
///     let n = b.recv(&mut buf).unwrap();
///     assert_eq!(&buf[..n], b"one");
///     let n = b.recv(&mut buf).unwrap();
///     assert_eq!(&buf[..n], b"two");
/// });
/// ```
pub struct UnixDatagram {
    inner: Pollable<mio::net::UnixDatagram>,
}

impl UnixDatagram {
    fn from_mio(s: mio::net::UnixDatagram) -> UnixDatagram {
        UnixDatagram {
            inner: Pollable::new(s),
        }
    }

    /// A socket bound to `path`.
    ///
    /// # Errors
    ///
    /// `AddrInUse` if the file exists; the error of `socket`/`bind`.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::UnixDatagram;
    /// greenio::run(|| {
    ///     let path = std::env::temp_dir().join(format!("greenio-dgram-doc-{}", std::process::id()));
    ///     let _ = std::fs::remove_file(&path);
    ///     let server = UnixDatagram::bind(&path).unwrap();
    ///     let client = UnixDatagram::unbound().unwrap();
    ///     client.send_to(b"hello", &path).unwrap();
    ///     let mut buf = [0; 8];
    ///     let (n, _from) = server.recv_from(&mut buf).unwrap();
    ///     assert_eq!(&buf[..n], b"hello");
    ///     std::fs::remove_file(&path).unwrap();
    /// });
    /// ```
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram::from_mio(mio::net::UnixDatagram::bind(path)?))
    }

    /// A socket bound to no address.
    ///
    /// # Errors
    ///
    /// The error of `socket`.
    ///
    /// # Examples
    ///
    /// See [`bind`](Self::bind).
    pub fn unbound() -> io::Result<UnixDatagram> {
        Ok(UnixDatagram::from_mio(mio::net::UnixDatagram::unbound()?))
    }

    /// A connected pair of sockets.
    ///
    /// # Errors
    ///
    /// The error of `socketpair`.
    ///
    /// # Examples
    ///
    /// See [`UnixDatagram`].
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = mio::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_mio(a), UnixDatagram::from_mio(b)))
    }

    /// Wraps a std socket, switching it to non-blocking mode.
    ///
    /// # Errors
    ///
    /// The error of `set_nonblocking`.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = std::os::unix::net::UnixDatagram::unbound().unwrap();
    /// assert!(greenio::net::UnixDatagram::from_std(s).is_ok());
    /// ```
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        socket.set_nonblocking(true)?;
        Ok(UnixDatagram::from_mio(mio::net::UnixDatagram::from_std(
            socket,
        )))
    }

    /// Sets the default peer of [`send`](Self::send)/[`recv`](Self::recv).
    ///
    /// # Errors
    ///
    /// The error of `connect(2)` (e.g. `NotFound`, `ConnectionRefused`).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::UnixDatagram;
    /// greenio::run(|| {
    ///     let path = std::env::temp_dir().join(format!("greenio-dgram-conn-{}", std::process::id()));
    ///     let _ = std::fs::remove_file(&path);
    ///     let server = UnixDatagram::bind(&path).unwrap();
    ///     let client = UnixDatagram::unbound().unwrap();
    ///     client.connect(&path).unwrap();
    ///     client.send(b"x").unwrap();
    ///     assert_eq!(server.recv(&mut [0; 4]).unwrap(), 1);
    ///     std::fs::remove_file(&path).unwrap();
    /// });
    /// ```
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.inner.get_ref().connect(path)
    }

    /// Sends a datagram to the connected peer.
    ///
    /// # Errors
    ///
    /// `NotConnected`, `ConnectionRefused` (peer gone), `TimedOut` after
    /// the write timeout.
    ///
    /// # Examples
    ///
    /// See [`UnixDatagram`].
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner
            .do_io(Ready::WRITABLE, self.inner.write_timeout(), |s| s.send(buf))
    }

    /// Receives a datagram, parking until one arrives.
    ///
    /// # Errors
    ///
    /// `TimedOut` after the read timeout.
    ///
    /// # Examples
    ///
    /// See [`UnixDatagram`].
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner
            .do_io(Ready::READABLE, self.inner.read_timeout(), |s| s.recv(buf))
    }

    /// Sends a datagram to the socket at `path`.
    ///
    /// # Errors
    ///
    /// `NotFound`, `ConnectionRefused`; `TimedOut` after the write timeout.
    ///
    /// # Examples
    ///
    /// See [`bind`](Self::bind).
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        self.inner
            .do_io(Ready::WRITABLE, self.inner.write_timeout(), |s| {
                s.send_to(buf, path)
            })
    }

    /// Receives a datagram and its sender's address.
    ///
    /// # Errors
    ///
    /// `TimedOut` after the read timeout.
    ///
    /// # Examples
    ///
    /// See [`bind`](Self::bind).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner
            .do_io(Ready::READABLE, self.inner.read_timeout(), |s| {
                s.recv_from(buf)
            })
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// The error of `getsockname`.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = greenio::net::UnixDatagram::unbound().unwrap();
    /// assert!(s.local_addr().unwrap().is_unnamed());
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// The connected peer's address.
    ///
    /// # Errors
    ///
    /// `NotConnected` when not connected.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, _b) = greenio::net::UnixDatagram::pair().unwrap();
    /// assert!(a.peer_addr().is_ok());
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// Shuts down reads, writes or both.
    ///
    /// # Errors
    ///
    /// The error of `shutdown(2)`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, _b) = greenio::net::UnixDatagram::pair().unwrap();
    /// a.shutdown(std::net::Shutdown::Both).unwrap();
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.get_ref().shutdown(how)
    }

    /// Bounds each receive; expiry gives `ErrorKind::TimedOut`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, like std.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// greenio::run(|| {
    ///     let (a, _b) = greenio::net::UnixDatagram::pair().unwrap();
    ///     a.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    ///     assert_eq!(a.recv(&mut [0; 4]).unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    ///     assert_eq!(a.read_timeout().unwrap(), Some(Duration::from_millis(10)));
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
    /// See [`set_read_timeout`](Self::set_read_timeout).
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.inner.read_timeout())
    }

    /// Bounds each send while the peer's queue is full.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, like std.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let (a, _b) = greenio::net::UnixDatagram::pair().unwrap();
    /// a.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    /// assert_eq!(a.write_timeout().unwrap(), Some(Duration::from_secs(1)));
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
    /// let s = greenio::net::UnixDatagram::unbound().unwrap();
    /// assert!(s.take_error().unwrap().is_none());
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.get_ref().take_error()
    }

    /// A second handle on the same socket, with its own registration.
    ///
    /// # Errors
    ///
    /// The error of `fcntl(F_DUPFD_CLOEXEC)`.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = greenio::net::UnixDatagram::unbound().unwrap();
    /// assert!(s.try_clone().is_ok());
    /// ```
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        let fd = self.inner.get_ref().as_fd().try_clone_to_owned()?;
        // SAFETY: `fd` is a freshly duplicated, owned descriptor of this
        // datagram socket, already non-blocking (the flag is shared).
        let s = unsafe { mio::net::UnixDatagram::from_raw_fd(fd.into_raw_fd()) };
        Ok(UnixDatagram {
            inner: self.inner.duplicate(s),
        })
    }
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixDatagram")
            .field("local", &self.local_addr().ok())
            .field("fd", &self.inner.fd())
            .finish()
    }
}

impl AsRawFd for UnixDatagram {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.fd()
    }
}

impl AsFd for UnixDatagram {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.get_ref().as_fd()
    }
}
