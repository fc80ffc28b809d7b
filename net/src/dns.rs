//! Name resolution that never blocks a hub.
//!
//! `getaddrinfo` blocks its OS thread, sometimes for seconds. A hub that
//! called it would stall every green thread it runs, so [`lookup_host`]
//! sends the call to the runtime's blocking pool ([`greenio::unblock`]) and
//! parks only the calling green thread. Literal addresses (`"127.0.0.1:80"`,
//! `"[::1]:80"`) are parsed in place without leaving the hub.
//!
//! [`ToSocketAddrs`] is this crate's twin of [`std::net::ToSocketAddrs`]:
//! the same implementors, but host names resolve through [`lookup_host`].
//! Every `bind`/`connect` of the crate takes it.
//!
//! [`greenio::unblock`]: greenio_runtime::unblock

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Resolves `"host:port"` to socket addresses, on the blocking pool.
///
/// The hub keeps running other green threads while the resolver works.
/// A literal address is returned without a lookup. Outside a green thread
/// the resolver runs on the calling thread.
///
/// # Errors
///
/// The resolver's error (unknown host, no port, invalid port...).
///
/// # Examples
///
/// ```
/// greenio::run(|| {
///     let addrs = greenio::net::lookup_host("localhost:80").unwrap();
///     assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
///     let lit = greenio::net::lookup_host("127.0.0.1:7").unwrap();
///     assert_eq!(lit, vec!["127.0.0.1:7".parse().unwrap()]);
/// });
/// ```
pub fn lookup_host(host_port: &str) -> io::Result<Vec<SocketAddr>> {
    if let Ok(addr) = host_port.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let owned = host_port.to_owned();
    greenio_runtime::unblock(move || {
        std::net::ToSocketAddrs::to_socket_addrs(owned.as_str()).map(Iterator::collect)
    })
}

/// [`lookup_host`] for a separate host and port.
fn lookup_host_port(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let owned = host.to_owned();
    greenio_runtime::unblock(move || {
        std::net::ToSocketAddrs::to_socket_addrs(&(owned.as_str(), port)).map(Iterator::collect)
    })
}

/// Values that convert to one or more socket addresses, resolving host
/// names on the blocking pool (see [`lookup_host`]).
///
/// Implemented for the same types as [`std::net::ToSocketAddrs`]:
/// [`SocketAddr`], `(IpAddr, u16)`, `"host:port"` strings, `(&str, u16)`,
/// `&[SocketAddr]`, and references to those.
///
/// # Examples
///
/// ```
/// use greenio::net::ToSocketAddrs;
///
/// greenio::run(|| {
///     let a: Vec<_> = ("127.0.0.1", 8080).to_socket_addrs().unwrap().collect();
///     assert_eq!(a[0].port(), 8080);
/// });
/// ```
pub trait ToSocketAddrs {
    /// The addresses, in the resolver's order.
    type Iter: Iterator<Item = SocketAddr>;

    /// Converts or resolves `self`.
    ///
    /// # Errors
    ///
    /// The resolver's error for host names; literal addresses never fail.
    fn to_socket_addrs(&self) -> io::Result<Self::Iter>;
}

macro_rules! literal_impl {
    ($($t:ty),*) => {$(
        impl ToSocketAddrs for $t {
            type Iter = std::option::IntoIter<SocketAddr>;
            fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
                Ok(Some(SocketAddr::from(*self)).into_iter())
            }
        }
    )*};
}

literal_impl!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16)
);

impl ToSocketAddrs for ([u8; 4], u16) {
    type Iter = std::option::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        Ok(Some(SocketAddr::from((Ipv4Addr::from(self.0), self.1))).into_iter())
    }
}

impl ToSocketAddrs for str {
    type Iter = std::vec::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        lookup_host(self).map(Vec::into_iter)
    }
}

impl ToSocketAddrs for String {
    type Iter = std::vec::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        lookup_host(self).map(Vec::into_iter)
    }
}

impl ToSocketAddrs for (&str, u16) {
    type Iter = std::vec::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        lookup_host_port(self.0, self.1).map(Vec::into_iter)
    }
}

impl ToSocketAddrs for (String, u16) {
    type Iter = std::vec::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        lookup_host_port(&self.0, self.1).map(Vec::into_iter)
    }
}

impl<'a> ToSocketAddrs for &'a [SocketAddr] {
    type Iter = std::iter::Copied<std::slice::Iter<'a, SocketAddr>>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        Ok(self.iter().copied())
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    type Iter = T::Iter;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        (**self).to_socket_addrs()
    }
}

/// Calls `f` on each address of `addr` in turn; the first success wins,
/// else the last error (or `InvalidInput` when there is no address).
pub(crate) fn each_addr<A: ToSocketAddrs + ?Sized, T>(
    addr: &A,
    mut f: impl FnMut(&SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match f(&a) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}
