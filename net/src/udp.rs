//! UDP: [`UdpSocket`], mirroring [`std::net::UdpSocket`].

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, RawFd};
use std::time::Duration;

use greenio_runtime::io::Ready;

use crate::dns::{each_addr, ToSocketAddrs};
use crate::source::Pollable;

/// A UDP socket whose receives (and sends, when the send buffer is full)
/// park the green thread.
///
/// Mirrors [`std::net::UdpSocket`]. Datagram reads never merge: each
/// `recv` returns one datagram, truncated to the buffer. `Send` but not
/// `Sync`; use [`try_clone`](Self::try_clone) for a second handle.
///
/// # Examples
///
/// ```
/// use greenio::net::UdpSocket;
///
/// greenio::run(|| {
///     let a = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b = UdpSocket::bind("127.0.0.1:0").unwrap();
///     a.send_to(b"ping", b.local_addr().unwrap()).unwrap();
///     let mut buf = [0; 16];
///     let (n, from) = b.recv_from(&mut buf).unwrap();
///     assert_eq!(&buf[..n], b"ping");
///     assert_eq!(from, a.local_addr().unwrap());
/// });
/// ```
pub struct UdpSocket {
    inner: Pollable<mio::net::UdpSocket>,
}

impl UdpSocket {
    /// Creates a socket bound to `addr` (each resolved address in turn).
    ///
    /// # Errors
    ///
    /// The error of the last address tried (e.g. `AddrInUse`), or of the
    /// lookup.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = greenio::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert_ne!(s.local_addr().unwrap().port(), 0);
    /// ```
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(&addr, |a| {
            Ok(UdpSocket {
                inner: Pollable::new(mio::net::UdpSocket::bind(*a)?),
            })
        })
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
    /// let std_s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let s = greenio::net::UdpSocket::from_std(std_s).unwrap();
    /// assert!(s.local_addr().is_ok());
    /// ```
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        Ok(UdpSocket {
            inner: Pollable::new(mio::net::UdpSocket::from_std(socket)),
        })
    }

    /// Sets the default peer for [`send`](Self::send) and filters
    /// [`recv`](Self::recv) to it (the first resolved address that works).
    ///
    /// # Errors
    ///
    /// The error of `connect(2)` or of the lookup.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::UdpSocket;
    /// greenio::run(|| {
    ///     let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     a.connect(b.local_addr().unwrap()).unwrap();
    ///     b.connect(a.local_addr().unwrap()).unwrap();
    ///     a.send(b"hi").unwrap();
    ///     let mut buf = [0; 8];
    ///     assert_eq!(b.recv(&mut buf).unwrap(), 2);
    ///     assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
    /// });
    /// ```
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(&addr, |a| self.inner.get_ref().connect(*a))
    }

    /// Sends a datagram to the connected peer, parking while the send
    /// buffer is full.
    ///
    /// # Errors
    ///
    /// `NotConnected` without [`connect`](Self::connect); `ConnectionRefused`
    /// after an ICMP port-unreachable; `TimedOut` after the write timeout.
    ///
    /// # Examples
    ///
    /// See [`connect`](Self::connect).
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner
            .do_io(Ready::WRITABLE, self.inner.write_timeout(), |s| s.send(buf))
    }

    /// Receives a datagram from the connected peer, parking until one
    /// arrives.
    ///
    /// # Errors
    ///
    /// `TimedOut` after the read timeout; `ConnectionRefused` when an
    /// earlier send drew an ICMP port-unreachable.
    ///
    /// # Examples
    ///
    /// See [`connect`](Self::connect).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner
            .do_io(Ready::READABLE, self.inner.read_timeout(), |s| s.recv(buf))
    }

    /// Sends a datagram to `addr` (its first resolved address).
    ///
    /// # Errors
    ///
    /// The error of `sendto`, of the lookup, or `InvalidInput` when the
    /// name resolves to nothing; `TimedOut` after the write timeout.
    ///
    /// # Examples
    ///
    /// See [`UdpSocket`].
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let target = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        self.inner
            .do_io(Ready::WRITABLE, self.inner.write_timeout(), |s| {
                s.send_to(buf, target)
            })
    }

    /// Receives a datagram and its sender, parking until one arrives.
    ///
    /// # Errors
    ///
    /// `TimedOut` after the read timeout.
    ///
    /// # Examples
    ///
    /// See [`UdpSocket`].
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner
            .do_io(Ready::READABLE, self.inner.read_timeout(), |s| {
                s.recv_from(buf)
            })
    }

    /// Like [`recv`](Self::recv) but leaves the datagram queued.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::UdpSocket;
    /// greenio::run(|| {
    ///     let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     a.connect(a.local_addr().unwrap()).unwrap();
    ///     a.send(b"x").unwrap();
    ///     let mut buf = [0; 4];
    ///     assert_eq!(a.peek(&mut buf).unwrap(), 1);
    ///     assert_eq!(a.recv(&mut buf).unwrap(), 1);
    /// });
    /// ```
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner
            .do_io(Ready::READABLE, self.inner.read_timeout(), |s| s.peek(buf))
    }

    /// Like [`recv_from`](Self::recv_from) but leaves the datagram queued.
    ///
    /// # Errors
    ///
    /// As [`recv_from`](Self::recv_from).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::UdpSocket;
    /// greenio::run(|| {
    ///     let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     a.send_to(b"x", a.local_addr().unwrap()).unwrap();
    ///     let mut buf = [0; 4];
    ///     let (_, from) = a.peek_from(&mut buf).unwrap();
    ///     assert_eq!(from, a.local_addr().unwrap());
    /// });
    /// ```
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner
            .do_io(Ready::READABLE, self.inner.read_timeout(), |s| {
                s.peek_from(buf)
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
    /// See [`bind`](Self::bind).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// The connected peer's address.
    ///
    /// # Errors
    ///
    /// `NotConnected` without [`connect`](Self::connect).
    ///
    /// # Examples
    ///
    /// See [`connect`](Self::connect).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// Sets `SO_BROADCAST`.
    ///
    /// # Errors
    ///
    /// The error of `setsockopt`.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = greenio::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// s.set_broadcast(true).unwrap();
    /// assert!(s.broadcast().unwrap());
    /// ```
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.inner.get_ref().set_broadcast(on)
    }

    /// Reads `SO_BROADCAST`.
    ///
    /// # Errors
    ///
    /// The error of `getsockopt`.
    ///
    /// # Examples
    ///
    /// See [`set_broadcast`](Self::set_broadcast).
    pub fn broadcast(&self) -> io::Result<bool> {
        self.inner.get_ref().broadcast()
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
    /// let s = greenio::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// s.set_ttl(9).unwrap();
    /// assert_eq!(s.ttl().unwrap(), 9);
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

    /// Joins an IPv4 multicast group on `interface` (`0.0.0.0`: any).
    ///
    /// # Errors
    ///
    /// The error of `setsockopt` (e.g. not a multicast address).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// let s = greenio::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    /// let group = Ipv4Addr::new(239, 255, 0, 1);
    /// if s.join_multicast_v4(&group, &Ipv4Addr::UNSPECIFIED).is_ok() {
    ///     s.leave_multicast_v4(&group, &Ipv4Addr::UNSPECIFIED).unwrap();
    /// }
    /// ```
    pub fn join_multicast_v4(&self, group: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.inner.get_ref().join_multicast_v4(group, interface)
    }

    /// Leaves an IPv4 multicast group.
    ///
    /// # Errors
    ///
    /// The error of `setsockopt`.
    ///
    /// # Examples
    ///
    /// See [`join_multicast_v4`](Self::join_multicast_v4).
    pub fn leave_multicast_v4(&self, group: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.inner.get_ref().leave_multicast_v4(group, interface)
    }

    /// Joins an IPv6 multicast group on interface index `interface`.
    ///
    /// # Errors
    ///
    /// The error of `setsockopt`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::Ipv6Addr;
    /// let s = greenio::net::UdpSocket::bind("[::1]:0");
    /// if let Ok(s) = s {
    ///     let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x123);
    ///     if s.join_multicast_v6(&group, 0).is_ok() {
    ///         s.leave_multicast_v6(&group, 0).unwrap();
    ///     }
    /// }
    /// ```
    pub fn join_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.inner.get_ref().join_multicast_v6(group, interface)
    }

    /// Leaves an IPv6 multicast group.
    ///
    /// # Errors
    ///
    /// The error of `setsockopt`.
    ///
    /// # Examples
    ///
    /// See [`join_multicast_v6`](Self::join_multicast_v6).
    pub fn leave_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.inner.get_ref().leave_multicast_v6(group, interface)
    }

    /// Bounds each receive: one that waits longer than `timeout` fails with
    /// `ErrorKind::TimedOut`. `None` waits forever.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, like std.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::UdpSocket;
    /// use std::time::Duration;
    /// greenio::run(|| {
    ///     let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    ///     let e = s.recv_from(&mut [0; 4]).unwrap_err();
    ///     assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    ///     assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_millis(10)));
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

    /// Bounds each send while the send buffer is full.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, like std.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = greenio::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    /// assert_eq!(s.write_timeout().unwrap(), Some(Duration::from_secs(1)));
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
    /// let s = greenio::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert!(s.take_error().unwrap().is_none());
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.get_ref().take_error()
    }

    /// A second handle on the same socket (duplicated descriptor, own
    /// registration), e.g. one green thread receiving while another sends.
    ///
    /// # Errors
    ///
    /// The error of `fcntl(F_DUPFD_CLOEXEC)`.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = greenio::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let s2 = s.try_clone().unwrap();
    /// assert_eq!(s.local_addr().unwrap(), s2.local_addr().unwrap());
    /// ```
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        let fd = self.inner.get_ref().as_fd().try_clone_to_owned()?;
        // SAFETY: `fd` is a freshly duplicated, owned descriptor of this
        // UDP socket, already non-blocking (the flag is shared).
        let s = unsafe { mio::net::UdpSocket::from_raw_fd(fd.into_raw_fd()) };
        Ok(UdpSocket {
            inner: self.inner.duplicate(s),
        })
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.local_addr().ok())
            .field("fd", &self.inner.fd())
            .finish()
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.fd()
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.get_ref().as_fd()
    }
}

impl IntoRawFd for UdpSocket {
    fn into_raw_fd(self) -> RawFd {
        self.inner.into_inner().into_raw_fd()
    }
}
