//! The callback style: asyncore / async_chat / Twisted-like handlers on the
//! same hub loop as green threads.
//!
//! greenio's main style is straight-line code in green threads. This module
//! is the other one the seeds describe: a *reactor* owns the loop and calls
//! methods on your objects when their sockets are ready. Both run on one
//! hub, in one process, so they can be compared fairly and mixed freely: a
//! handler can wake a green thread, a green thread can push to a handler's
//! connection.
//!
//! # The layers
//!
//! * [`Handler`] — asyncore's `dispatcher`: `handle_connect`, `handle_read`,
//!   `handle_write`, `handle_eof`, `handle_close`, `handle_error`, each
//!   given a [`Context`] to [`recv`](Context::recv),
//!   [`push`](Context::push), [`close`](Context::close)...
//! * [`listen`] / [`Accept`] — the listening dispatcher: accepts until the
//!   backlog is empty, makes a handler per connection, survives `EMFILE`.
//! * [`connect`] / [`attach`] — outgoing and existing connections.
//! * [`AsyncChat`] / [`ChatHandler`] — async_chat: a [`Terminator`] (a byte
//!   string, a count, or none = until close), `collect_incoming_data` /
//!   `found_terminator`, bounded records, pipelined commands handled in
//!   order.
//! * [`Producer`] — async_chat's producers: a FIFO of them is drained only
//!   as fast as the socket accepts data.
//! * [`Handle`] — a connection for green threads and other handlers;
//!   [`call_later`] — timers.
//!
//! # A first example
//!
//! A line-echo server in the async_chat style, and a green-thread client
//! for it in the same program:
//!
//! ```
//! use greenio::net::reactor::{self, AsyncChat, ChatContext, ChatHandler, Terminator};
//! use std::io::{BufRead, BufReader, Write};
//!
//! struct Shout;
//! impl ChatHandler for Shout {
//!     fn found_terminator(&mut self, cx: &mut ChatContext<'_>, line: &[u8]) {
//!         let _ = cx.push(&line.to_ascii_uppercase());
//!         let _ = cx.push(b"\n");
//!     }
//! }
//!
//! greenio::run(|| {
//!     let l = reactor::listen("127.0.0.1:0".parse().unwrap(), |_peer| {
//!         AsyncChat::new(Shout).terminator(Terminator::LF)
//!     })
//!     .unwrap();
//!     let mut c = greenio::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
//!     c.write_all(b"hello\nworld\n").unwrap(); // two commands, one packet
//!     let mut r = BufReader::new(c);
//!     let mut line = String::new();
//!     r.read_line(&mut line).unwrap();
//!     assert_eq!(line, "HELLO\n");
//!     line.clear();
//!     r.read_line(&mut line).unwrap();
//!     assert_eq!(line, "WORLD\n");
//! });
//! ```
//!
//! # Design
//!
//! The hub (see `greenio::io::Registration`) lets a mio source be owned by
//! a *callback* instead of parked green threads: the loop calls it with the
//! readiness bits of each event, on the hub thread, outside any green
//! thread. A reactor connection is one such callback around a state
//! machine (`dispatcher.rs`, which documents the steps of a run). The
//! choices, and what they cost:
//!
//! * **Edge-triggered, with the hub's readiness cache.** The socket is
//!   registered once for both directions and never re-armed (no
//!   `epoll_ctl` per message). The registration's cache, the same one
//!   green threads park on, remembers "may read" / "may write" until the
//!   kernel says `WouldBlock`, and applies the short-read rule (a read that
//!   returned less than asked drained the stream), so an echoed message
//!   costs one `read` and one `send`, as in a hand-written mio server. A
//!   run looks the cache up once and lends it to the handler's `Context`.
//!   A handler that stops reading early is called again, so handlers need
//!   not know about edges.
//! * **Write-through output.** A push onto an empty queue goes straight to
//!   the kernel; only what it refuses is copied into the queue. No
//!   allocation per message.
//! * **Bounded everything.** Each connection's pushed-but-unsent bytes are
//!   capped (1 MiB by default; past it the connection is closed, with
//!   `ErrorKind::OutOfMemory` reported, as a chat server must do with a
//!   receiver that stopped reading); reading pauses above a high-water
//!   mark (64 KiB) so a peer that sends without reading cannot grow our
//!   queue; a chat record is capped (64 KiB by default); each run reads
//!   and writes at most 256 KiB, then yields to other connections.
//! * **Never re-entrant, never unwinding into the hub.** Context and Handle
//!   calls only change state; handlers are called from the connection's
//!   own run. Every callback runs under `catch_unwind`: a panicking
//!   handler has its connection closed (`handle_error`, `handle_close`),
//!   is logged, and everything else keeps running.
//! * **Deferred work as tiny green threads.** Continuations after a budget,
//!   work asked for from a [`Handle`], back-off and linger timers are green
//!   threads that sleep (zero time = until after the next poll). They need
//!   no extra structure in the hub and never occur on the hot path.
//!
//! Rejected designs:
//!
//! * *Level-triggered registration, or re-arming interest per message.*
//!   One more `epoll_wait` wake-up or one more `epoll_ctl` per message:
//!   exactly the costs the hand-written mio baseline does not pay.
//! * *The reactor reads into its own buffer and hands `&[u8]` to the
//!   handler (Twisted's `dataReceived`).* Convenient, but it fixes the
//!   buffer size and placement for every protocol; asyncore's "you are
//!   readable, call recv" keeps the buffer in the handler (the echo handler
//!   holds 4 KiB, like the mio baseline) and the async_chat layer adds the
//!   framing for those who want it.
//! * *Calling `handle_close` synchronously from `push` when a write fails.*
//!   A chat broadcast pushing to a dead member would then re-enter the
//!   room it is iterating. Notifications are always delivered by the
//!   connection's own run instead.
//! * *A reactor-wide registry of connections.* Not needed: the hub's slab
//!   owns each callback, the callback owns its connection, and a listener
//!   keeps only weak references for its graceful shutdown.

mod chat;
mod conn_core;
mod dispatcher;
mod handler;
mod listener;
mod producer;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

pub use chat::{AsyncChat, ChatContext, ChatHandler, Overflow, Terminator};
pub use handler::{Context, Handle, Handler};
pub use listener::{Accept, Listener};
pub use producer::{BytesProducer, IterProducer, Producer};

/// Listens on `addr` and serves every accepted connection with a handler
/// from `acceptor` (usually a closure `|peer| MyHandler::new()`).
///
/// The listener runs on the calling thread's hub until
/// [`Listener::close`] / [`Listener::shutdown`] or the end of
/// `greenio::run`; the calling green thread is free to do anything else,
/// typically wait for a stop signal. `addr` is not resolved (a reactor call
/// never blocks): resolve host names first with
/// [`lookup_host`](crate::lookup_host).
///
/// # Errors
///
/// Outside a hub (call it inside `greenio::run`); and the errors of
/// `socket`, `bind` (`AddrInUse`...) and `listen`.
///
/// # Examples
///
/// ```
/// use greenio::net::reactor::{self, Context, Handler};
/// use std::io::Read;
///
/// struct Time;
/// impl Handler for Time {
///     fn handle_connect(&mut self, cx: &mut Context<'_>) {
///         let _ = cx.push(b"it is now\n");
///         cx.close();
///     }
/// }
///
/// greenio::run(|| {
///     let l = reactor::listen("127.0.0.1:0".parse().unwrap(), |_| Time).unwrap();
///     let mut c = greenio::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
///     let mut s = String::new();
///     c.read_to_string(&mut s).unwrap();
///     assert_eq!(s, "it is now\n");
/// });
/// ```
pub fn listen<A: Accept>(addr: SocketAddr, acceptor: A) -> io::Result<Listener> {
    let sock = mio::net::TcpListener::bind(addr)?;
    listener::start(sock, acceptor)
}

/// Serves an already bound `std` listener (bound before `greenio::run`,
/// with special options, or inherited), like [`listen`]. The listener is
/// switched to non-blocking mode.
///
/// # Errors
///
/// Outside a hub; and the error of `fcntl` or `epoll_ctl`.
///
/// # Examples
///
/// ```
/// use greenio::net::reactor::{self, Handler};
///
/// struct Nop;
/// impl Handler for Nop {}
/// let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// greenio::run(move || {
///     let l = reactor::listen_on(std_listener, |_| Nop).unwrap();
///     assert!(l.local_addr().unwrap().ip().is_loopback());
/// });
/// ```
pub fn listen_on<A: Accept>(listener: std::net::TcpListener, acceptor: A) -> io::Result<Listener> {
    listener.set_nonblocking(true)?;
    listener::start(mio::net::TcpListener::from_std(listener), acceptor)
}

/// Connects to `addr` without blocking and drives the connection with
/// `handler`: `handle_connect` once it is established, or `handle_error`
/// (`ConnectionRefused`...) and `handle_close` if it fails. Pushes made
/// before it is established are sent once it is.
///
/// # Errors
///
/// Outside a hub; and errors `connect` reports at once (most, such as a
/// refused connection, arrive later through `handle_error`).
///
/// # Examples
///
/// A callback client against a green-thread server:
///
/// ```
/// use greenio::net::reactor::{self, ChatContext, ChatHandler, AsyncChat};
/// use std::io::{Read, Write};
///
/// struct Client(greenio::sync::Sender<Vec<u8>>);
/// impl ChatHandler for Client {
///     fn handle_connect(&mut self, cx: &mut ChatContext<'_>) {
///         let _ = cx.push(b"ping\n");
///     }
///     fn found_terminator(&mut self, cx: &mut ChatContext<'_>, line: &[u8]) {
///         let _ = self.0.send(line.to_vec()); // wakes the green thread below
///         cx.close();
///     }
/// }
///
/// greenio::run(|| {
///     let server = greenio::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = server.local_addr().unwrap();
///     greenio::spawn(move || {
///         let (mut s, _) = server.accept().unwrap();
///         let mut b = [0u8; 5];
///         s.read_exact(&mut b).unwrap();
///         s.write_all(b"pong\n").unwrap();
///     });
///     let (tx, rx) = greenio::sync::channel();
///     reactor::connect(addr, AsyncChat::new(Client(tx))).unwrap();
///     assert_eq!(rx.recv().unwrap(), b"pong");
/// });
/// ```
pub fn connect<H: Handler>(addr: SocketAddr, handler: H) -> io::Result<Handle> {
    let sock = mio::net::TcpStream::connect(addr)?;
    dispatcher::start(sock, handler, dispatcher::Start::Connecting, None)
}

/// Drives an already connected `std` stream with `handler`
/// (`handle_connect` runs at once). The stream is switched to
/// non-blocking mode.
///
/// # Errors
///
/// Outside a hub; and the error of `fcntl` or `epoll_ctl`.
///
/// # Examples
///
/// ```
/// use greenio::net::reactor::{self, Context, Handler};
/// use std::io::Read;
///
/// struct Hi;
/// impl Handler for Hi {
///     fn handle_connect(&mut self, cx: &mut Context<'_>) {
///         let _ = cx.push(b"hi");
///         cx.close();
///     }
/// }
///
/// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let mut client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
/// let (server_side, _) = l.accept().unwrap();
/// greenio::run(move || {
///     reactor::attach(server_side, Hi).unwrap();
///     greenio::unblock(move || {
///         let mut s = String::new();
///         client.read_to_string(&mut s).unwrap();
///         assert_eq!(s, "hi");
///     });
/// });
/// ```
pub fn attach<H: Handler>(stream: std::net::TcpStream, handler: H) -> io::Result<Handle> {
    stream.set_nonblocking(true)?;
    let sock = mio::net::TcpStream::from_std(stream);
    let _ = sock.set_nodelay(true);
    dispatcher::start(sock, handler, dispatcher::Start::Connected, None)
}

/// Calls `f` after `delay`, from the hub's loop (Twisted's `callLater`):
/// for timeouts and periodic work in the callback style. `f` runs in a
/// small green thread of its own; like a handler it should not block for
/// long.
///
/// # Panics
///
/// Outside a hub (call it inside `greenio::run`).
///
/// # Examples
///
/// Close an idle connection after 50 ms:
///
/// ```
/// use greenio::net::reactor::{self, Context, Handler};
/// use std::io::Read;
/// use std::time::Duration;
///
/// struct Idle;
/// impl Handler for Idle {
///     fn handle_connect(&mut self, cx: &mut Context<'_>) {
///         let h = cx.handle();
///         reactor::call_later(Duration::from_millis(50), move || {
///             let _ = h.push(b"timeout\n");
///             h.close();
///         });
///     }
/// }
///
/// greenio::run(|| {
///     let l = reactor::listen("127.0.0.1:0".parse().unwrap(), |_| Idle).unwrap();
///     let mut c = greenio::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
///     let mut s = String::new();
///     c.read_to_string(&mut s).unwrap();
///     assert_eq!(s, "timeout\n");
/// });
/// ```
pub fn call_later(delay: Duration, f: impl FnOnce() + 'static) -> DelayedCall {
    let handle = greenio_runtime::spawn(move || {
        greenio_runtime::sleep(delay);
        f();
    });
    DelayedCall { handle }
}

/// A pending [`call_later`]; [`cancel`](Self::cancel) it to not run it.
/// Dropping it does not cancel.
///
/// # Examples
///
/// ```
/// use greenio::net::reactor;
/// use std::{cell::Cell, rc::Rc, time::Duration};
///
/// greenio::run(|| {
///     let fired = Rc::new(Cell::new(false));
///     let f = fired.clone();
///     let call = reactor::call_later(Duration::from_millis(10), move || f.set(true));
///     call.cancel();
///     greenio::sleep(Duration::from_millis(30));
///     assert!(!fired.get());
/// });
/// ```
#[derive(Debug)]
pub struct DelayedCall {
    handle: greenio_runtime::JoinHandle<()>,
}

impl DelayedCall {
    /// Cancels the call if it has not run yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor;
    /// use std::time::Duration;
    ///
    /// greenio::run(|| {
    ///     reactor::call_later(Duration::from_secs(3600), || unreachable!()).cancel();
    /// });
    /// ```
    pub fn cancel(&self) {
        self.handle.cancel();
    }

    /// Whether the call ran (or was cancelled).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor;
    /// use std::time::Duration;
    ///
    /// greenio::run(|| {
    ///     let call = reactor::call_later(Duration::ZERO, || {});
    ///     greenio::sleep(Duration::from_millis(10));
    ///     assert!(call.is_finished());
    /// });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}
