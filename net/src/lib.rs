//! greenio's sockets: calls that look blocking but park the green thread
//! on its hub's mio loop.
//!
//! Most users reach this crate as `greenio::net`. The types mirror
//! [`std::net`] and [`std::os::unix::net`] (same names, same signatures),
//! so straight-line std code moves over by changing an import:
//!
//! | std                                  | greenio                        |
//! |--------------------------------------|--------------------------------|
//! | `std::net::TcpListener`, `TcpStream` | [`TcpListener`], [`TcpStream`] |
//! | `std::net::UdpSocket`                | [`UdpSocket`]                  |
//! | `std::os::unix::net::*`              | [`UnixListener`], [`UnixStream`], [`UnixDatagram`] |
//! | `std::net::ToSocketAddrs`            | [`ToSocketAddrs`], [`lookup_host`] |
//!
//! # A first example
//!
//! An echo server and a client in one process, each connection on its own
//! green thread:
//!
//! ```
//! use greenio::net::{TcpListener, TcpStream};
//! use std::io::{Read, Write};
//!
//! greenio::run(|| {
//!     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     greenio::spawn(move || {
//!         for conn in listener.incoming() {
//!             let mut conn = conn.unwrap();
//!             greenio::spawn(move || {
//!                 let mut buf = [0; 1024];
//!                 loop {
//!                     match conn.read(&mut buf) {
//!                         Ok(0) | Err(_) => break,
//!                         Ok(n) => conn.write_all(&buf[..n]).unwrap(),
//!                     }
//!                 }
//!             });
//!         }
//!     });
//!
//!     let mut client = TcpStream::connect(addr).unwrap();
//!     client.write_all(b"hello").unwrap();
//!     let mut reply = [0; 5];
//!     client.read_exact(&mut reply).unwrap();
//!     println!("{}", std::str::from_utf8(&reply).unwrap());
//! });
//! ```
//!
//! Output: `hello`. Every `read`, `write` and `accept` above looks
//! blocking; each parks only its green thread, and the hub runs the others
//! meanwhile.
//!
//! # How a call parks
//!
//! Sockets are non-blocking underneath and register (lazily, on first
//! use) with the hub of the green thread using them. A call first tries the
//! syscall when the hub's readiness cache says it may succeed, and parks
//! only on `WouldBlock`, until the hub's `epoll_wait` reports an edge. A
//! read that returns fewer bytes than asked for means the receive queue is
//! empty, so the next read parks without a failing syscall. `WouldBlock`
//! never reaches the caller.
//!
//! Measured with `strace -c` on `benches/probes/syscall_probe.rs` (the hub's
//! thread only; clients are plain OS threads sending 64-byte messages one
//! at a time and waiting for each echo), per echoed message:
//!
//! | connections | messages | `recvfrom` | `sendto` | `epoll_wait` | failed calls (`EAGAIN`) |
//! |-------------|----------|------------|----------|--------------|-------------------------|
//! | 1           | 100,000  | 1.00       | 1.00     | 1.00         | 0                       |
//! | 50          | 200,000  | 1.00       | 1.00     | 0.02         | 0                       |
//!
//! One read and one write per message; `epoll_wait` is amortised over
//! every connection with work (with one connection in lock-step there is
//! nothing else to do between messages), and `epoll_ctl` runs once per
//! socket, at its first wait.
//!
//! # Timeouts and cancellation
//!
//! `set_read_timeout`/`set_write_timeout` bound each call, which then fails
//! with [`std::io::ErrorKind::TimedOut`]. A green thread parked on a socket
//! can also be [cancelled](greenio_runtime::JoinHandle::cancel) or
//! interrupted by a [`timeout`](greenio_runtime::timeout) scope: it unwinds
//! from its park point, its socket is dropped and closed, and no stale
//! wakeup reaches anyone.
//!
//! # Sharing a socket
//!
//! Sockets are `Send`: create one anywhere (even before `greenio::run`) and
//! move it to another hub with `spawn_on`; it re-registers there. They are
//! not `Sync` (a socket's registration lives in a `Cell`). On one hub, two
//! green threads can share `&TcpStream`, one reading while the other
//! writes (`Read` and `Write` are implemented for `&TcpStream`). Across
//! hubs, give each hub its own handle with `try_clone`.
//!
//! # Outside a green thread
//!
//! A call that can complete at once (binding, a read with data already
//! queued) works anywhere. A call that would have to wait fails with an
//! [`std::io::Error`] whose message names `greenio::run` and whose inner
//! error is [`Misuse::OutsideRuntime`]: the caller has no green thread to
//! park.
//!
//! # Errors
//!
//! Every call returns [`std::io::Result`]. Writes never raise `SIGPIPE`:
//! writing to a reset peer returns `BrokenPipe` or `ConnectionReset`.
#![deny(missing_docs, missing_debug_implementations)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod accept;
mod dns;
mod source;
mod sys;
mod tcp;
mod udp;
pub mod unix;

pub use dns::{lookup_host, ToSocketAddrs};
pub use greenio_runtime::Misuse;
pub mod lines;
pub use lines::{Line, LineReader};
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};
pub mod reactor;
pub mod server;
pub use server::{Server, ServerBuilder, ServerHandle};
