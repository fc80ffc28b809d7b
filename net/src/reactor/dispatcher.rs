//! One TCP connection driven by callbacks: the [`Handler`] trait, the
//! [`Context`] a handler acts through, the [`Handle`] other code keeps, and
//! the state machine between the hub's readiness events and the callbacks.
//!
//! # One dispatch
//!
//! The hub calls [`Channel::run`] with the readiness bits of an event (or
//! with none, for work scheduled by the connection itself). A run goes
//! through fixed steps, each skipped when it has nothing to do:
//!
//! ```text
//!   note the event's bits in the flags (READABLE, WRITABLE, HUP, SOCKERR)
//!   1. connect   outgoing connect finished? -> handle_connect (or the error)
//!   2. write     flush the output FIFO; emptied -> handle_write
//!   3. read      while reading is allowed and the socket may have data:
//!                    handle_read            (it calls cx.recv until WouldBlock)
//!   4. eof       recv returned 0 -> handle_eof (default: close gracefully)
//!   5. write     flush what steps 3-4 queued
//!   6. close     closing and nothing left to send -> shut down, linger
//!   7. notify    closed -> handle_error (if an error), handle_close; drop the handler
//!   8. later     budget used up, or work requested from outside -> schedule a run
//! ```
//!
//! Readiness is edge-triggered, so the connection keeps its own cache of
//! "a read (write) may not block" bits, set by events and cleared only when
//! the kernel said `WouldBlock` or a short read/write showed the socket
//! drained (full). A handler that stops before `WouldBlock` is therefore
//! called again, as with a level-triggered `select` loop.
//!
//! # Rules that keep callbacks simple
//!
//! * **No re-entrance.** Nothing a handler calls (push, close, another
//!   connection's [`Handle`]) ever calls a handler back synchronously. Calls
//!   only change state; notifications come from the connection's own run,
//!   at the end of the current one or in a run scheduled for later.
//! * **No borrow across user code.** The socket and output queue sit in a
//!   `RefCell` borrowed only for one syscall or queue operation, never
//!   while a handler or a producer runs; the handler sits in its own
//!   `RefCell`, borrowed for the whole run.
//! * **Budgets.** A run reads at most [`READ_BUDGET`] and writes at most
//!   [`WRITE_BUDGET`] bytes, then yields: the rest is done in a run
//!   scheduled after the hub's next poll, so one busy connection never
//!   starves the others.
//! * **Errors are events.** Resets, broken pipes and handler panics close
//!   the connection and reach `handle_error` and `handle_close`; nothing
//!   unwinds into the hub.
//!
//! Scheduled runs (budget continuations, work asked for through a
//! [`Handle`], closing timers) are tiny green threads: they sleep for zero
//! time, which puts them after the hub's next poll, then run the connection.
//! They are rare (never on the echo path) and cost a pooled stack each.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use greenio_runtime::io::{IoCallback, Ready, Registration};
use greenio_runtime::wait::{WaitReason, Waiter, Wake};
use mio::net::TcpStream;

use super::producer::{Next, Output, Producer};

/// Bytes one run of a connection reads before it yields to other work.
pub const READ_BUDGET: usize = 256 * 1024;
/// Bytes one run of a connection writes from its output queue before it
/// yields to other work.
pub const WRITE_BUDGET: usize = 256 * 1024;
/// Default output limit: pushed bytes a connection may hold unsent (1 MiB).
pub const DEFAULT_OUTPUT_LIMIT: usize = 1 << 20;
/// Default high-water mark: reading pauses while more than this is waiting
/// to be sent (64 KiB).
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;
/// How long a gracefully closed connection waits for the peer's EOF.
pub const LINGER: Duration = Duration::from_secs(2);

/// Producer calls per run before it yields (guards against producers that
/// return empty chunks forever).
const PULL_BUDGET: u32 = 256;
/// Bytes a lingering connection discards per run before giving up on the
/// peer and closing.
const LINGER_DISCARD: usize = 64 * 1024;

// ----- state flags ----------------------------------------------------------
//
// One `Cell<u32>` per connection. Set and cleared only on the hub thread.

/// A read may not block: set by READABLE events, cleared by `WouldBlock`, by
/// a short read (unless `HUP`), and at EOF.
const READABLE: u32 = 1 << 0;
/// A write may not block: set by WRITABLE events, cleared by `WouldBlock`
/// or a short write.
const WRITABLE: u32 = 1 << 1;
/// An event carried the peer's FIN: read on until EOF (no short-read
/// shortcut, no further edge will come).
const HUP: u32 = 1 << 2;
/// An event carried a socket error: fetch it with `take_error`.
const SOCKERR: u32 = 1 << 3;
/// Outgoing connect not yet confirmed.
const CONNECTING: u32 = 1 << 4;
/// Connected, `handle_connect` not yet called.
const FRESH: u32 = 1 << 5;
/// The handler paused reading.
const PAUSED: u32 = 1 << 6;
/// Call `handle_read` once reading is allowed again, readable or not (the
/// handler may hold buffered input).
const MISSED: u32 = 1 << 7;
/// `recv` returned data during the current `handle_read` call.
const PROGRESS: u32 = 1 << 8;
/// `recv` returned 0: the peer sent everything.
const EOF: u32 = 1 << 9;
/// `handle_eof` was called.
const EOF_SEEN: u32 = 1 << 10;
/// Graceful close requested: no more reads or pushes; close when the
/// output queue is empty.
const CLOSING: u32 = 1 << 11;
/// The handler's life is over: socket closed (or lingering), no reads or
/// writes through the handler any more.
const CLOSED: u32 = 1 << 12;
/// `handle_error`/`handle_close` still to be delivered.
const NOTIFY: u32 = 1 << 13;
/// `handle_close` delivery has started (never delivered twice).
const NOTIFIED: u32 = 1 << 14;
/// The handler has been dropped.
const DONE: u32 = 1 << 15;
/// Inside `run`: the handler is borrowed.
const BUSY: u32 = 1 << 16;
/// A scheduled run is pending.
const SCHEDULED: u32 = 1 << 17;
/// A budget ran out: run again after the next poll.
const MORE: u32 = 1 << 18;
/// Shut down for writing, discarding input until the peer's EOF.
const LINGER_ON: u32 = 1 << 19;

/// The callbacks of one connection, asyncore's dispatcher methods.
///
/// Every method has a default, so a handler implements only what it needs.
/// All of them run on the hub's thread from its event loop, outside any
/// green thread: they must not block (a blocking greenio call there panics;
/// hand slow work to a green thread and [`push`](Handle::push) the answer
/// from there). The order of calls for one connection is:
///
/// ```text
///   handle_connect
///   (handle_read | handle_write | handle_eof)*
///   [handle_error]
///   handle_close                     then the handler is dropped
/// ```
///
/// # Examples
///
/// An echo server and a client for it, both in one green-thread program:
///
/// ```
/// use greenio::net::reactor::{self, Context, Handler};
/// use std::io::{Read, Write};
///
/// struct Echo {
///     buf: [u8; 4096],
/// }
///
/// impl Handler for Echo {
///     fn handle_read(&mut self, cx: &mut Context<'_>) {
///         // Edge-triggered: read until recv says WouldBlock (an Err).
///         while let Ok(n) = cx.recv(&mut self.buf) {
///             if n == 0 {
///                 return; // EOF: the reactor closes once the echo is out
///             }
///             cx.push(&self.buf[..n]);
///         }
///     }
/// }
///
/// greenio::run(|| {
///     let listener = reactor::listen("127.0.0.1:0".parse().unwrap(), |_peer| Echo {
///         buf: [0; 4096],
///     })
///     .unwrap();
///     // A green-thread client on the same hub.
///     let mut c = greenio::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
///     c.write_all(b"hello").unwrap();
///     c.shutdown(std::net::Shutdown::Write).unwrap();
///     let mut back = String::new();
///     c.read_to_string(&mut back).unwrap();
///     assert_eq!(back, "hello");
/// });
/// ```
pub trait Handler: 'static {
    /// The connection is established (accepted, attached, or an outgoing
    /// connect succeeded). The default does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    ///
    /// struct Greeter;
    /// impl Handler for Greeter {
    ///     fn handle_connect(&mut self, cx: &mut Context<'_>) {
    ///         cx.push(b"* hello\n");
    ///     }
    /// }
    /// ```
    fn handle_connect(&mut self, cx: &mut Context<'_>) {
        let _ = cx;
    }

    /// The socket may have data (or reading was resumed). Call
    /// [`Context::recv`] until it returns an error (`WouldBlock`) or `Ok(0)`
    /// (EOF); if the handler returns earlier while data remains, it is
    /// called again. The default reads and discards.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    ///
    /// /// Counts the bytes it is sent.
    /// struct Sink(u64);
    /// impl Handler for Sink {
    ///     fn handle_read(&mut self, cx: &mut Context<'_>) {
    ///         let mut buf = [0u8; 4096];
    ///         while let Ok(n) = cx.recv(&mut buf) {
    ///             if n == 0 {
    ///                 break;
    ///             }
    ///             self.0 += n as u64;
    ///         }
    ///     }
    /// }
    /// ```
    fn handle_read(&mut self, cx: &mut Context<'_>) {
        let mut buf = [0u8; 4096];
        while let Ok(n) = cx.recv(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }

    /// The output queue was emptied onto the socket after being non-empty:
    /// room for more (asyncore's writable event, Twisted's
    /// `resumeProducing`). The default does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    ///
    /// /// Streams numbered lines, refilling whenever the socket drained.
    /// struct Counter(u64);
    /// impl Handler for Counter {
    ///     fn handle_write(&mut self, cx: &mut Context<'_>) {
    ///         for _ in 0..100 {
    ///             self.0 += 1;
    ///             cx.push(format!("{}\n", self.0).as_bytes());
    ///         }
    ///     }
    /// }
    /// ```
    fn handle_write(&mut self, cx: &mut Context<'_>) {
        let _ = cx;
    }

    /// The peer finished sending (`recv` returned `Ok(0)`). The default
    /// closes gracefully ([`Context::close`]): queued output is still sent.
    /// Override it to keep answering a half-closed connection.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    ///
    /// struct Summer(u64);
    /// impl Handler for Summer {
    ///     fn handle_eof(&mut self, cx: &mut Context<'_>) {
    ///         cx.push(format!("total {}\n", self.0).as_bytes());
    ///         cx.close();
    ///     }
    /// }
    /// ```
    fn handle_eof(&mut self, cx: &mut Context<'_>) {
        cx.close();
    }

    /// The connection is over (closed by either side, by an error, or
    /// after a panic of this handler). Called exactly once; the handler is
    /// dropped right after. Pushes are ignored by now. The default does
    /// nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    /// use std::{cell::Cell, rc::Rc};
    ///
    /// struct Tracked(Rc<Cell<usize>>);
    /// impl Handler for Tracked {
    ///     fn handle_close(&mut self, _cx: &mut Context<'_>) {
    ///         self.0.set(self.0.get() - 1); // one connection fewer
    ///     }
    /// }
    /// ```
    fn handle_close(&mut self, cx: &mut Context<'_>) {
        let _ = cx;
    }

    /// An error ended the connection: a reset, a broken pipe, a failed
    /// connect, the output queue over its limit (`ErrorKind::OutOfMemory`),
    /// or a panic of this handler (`ErrorKind::Other`). `handle_close`
    /// follows. The default logs it at debug level.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    ///
    /// struct Loud;
    /// impl Handler for Loud {
    ///     fn handle_error(&mut self, _cx: &mut Context<'_>, err: &std::io::Error) {
    ///         eprintln!("connection failed: {err}");
    ///     }
    /// }
    /// ```
    fn handle_error(&mut self, cx: &mut Context<'_>, err: &io::Error) {
        log::debug!("greenio reactor: connection {}: {err}", cx.sh.describe());
    }
}

/// What a handler acts through during a callback: read, queue output,
/// close, pause, and get a [`Handle`] for later.
///
/// # Examples
///
/// ```
/// use greenio::net::reactor::{Context, Handler};
///
/// struct Upper;
/// impl Handler for Upper {
///     fn handle_read(&mut self, cx: &mut Context<'_>) {
///         let mut buf = [0u8; 1024];
///         while let Ok(n) = cx.recv(&mut buf) {
///             if n == 0 {
///                 break;
///             }
///             cx.push(&buf[..n].to_ascii_uppercase());
///         }
///     }
/// }
/// ```
pub struct Context<'a> {
    pub(crate) sh: &'a Shared,
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("conn", &self.sh.describe())
            .finish()
    }
}

impl<'a> Context<'a> {
    pub(crate) fn new(sh: &'a Shared) -> Context<'a> {
        Context { sh }
    }

    /// Reads into `buf`. `Ok(0)` is the end of the stream (the reactor
    /// then calls [`Handler::handle_eof`]); `Err` with
    /// `ErrorKind::WouldBlock` means "nothing more now", which is also what
    /// it returns without a syscall when a short read already showed the
    /// socket drained, while reading is paused or the output queue is over
    /// its high-water mark, and when this run's read budget is used up (the
    /// handler is then called again later). Other errors also close the
    /// connection and reach [`Handler::handle_error`].
    ///
    /// # Errors
    ///
    /// `WouldBlock` as above; `NotConnected` once the connection is closing
    /// or closed; the socket's error (reset...) otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    /// use std::io::ErrorKind;
    ///
    /// struct Reader;
    /// impl Handler for Reader {
    ///     fn handle_read(&mut self, cx: &mut Context<'_>) {
    ///         let mut buf = [0u8; 512];
    ///         loop {
    ///             match cx.recv(&mut buf) {
    ///                 Ok(0) => return,                                  // EOF
    ///                 Ok(n) => println!("got {n} bytes"),
    ///                 Err(e) if e.kind() == ErrorKind::WouldBlock => return, // drained
    ///                 Err(_) => return, // reported to handle_error
    ///             }
    ///         }
    ///     }
    /// }
    /// ```
    #[inline]
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.sh.recv(buf)
    }

    /// Queues `data` for sending. When nothing is queued and the socket is
    /// writable it is written at once (one `send`); what the kernel does not
    /// take is kept and sent as the socket drains. Ignored once the
    /// connection is closing or closed.
    ///
    /// The bytes pushed but not yet sent are bounded by the output limit
    /// ([`set_output_limit`](Self::set_output_limit), default
    /// [`DEFAULT_OUTPUT_LIMIT`]): a push past it closes the connection
    /// (the peer does not read fast enough) and reports
    /// `ErrorKind::OutOfMemory` to [`Handler::handle_error`].
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    ///
    /// struct Hello;
    /// impl Handler for Hello {
    ///     fn handle_connect(&mut self, cx: &mut Context<'_>) {
    ///         cx.push(b"hello\r\n");
    ///     }
    /// }
    /// ```
    #[inline]
    pub fn push(&mut self, data: &[u8]) {
        let _ = self.sh.push(data);
    }

    /// Queues a [`Producer`] behind everything queued so far. Its chunks
    /// are pulled only as the socket accepts data, so a huge reply never
    /// sits in memory at once and never monopolises the loop.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{BytesProducer, Context, Handler};
    ///
    /// struct Big;
    /// impl Handler for Big {
    ///     fn handle_connect(&mut self, cx: &mut Context<'_>) {
    ///         cx.push(b"here comes 10 MB\n");
    ///         cx.push_producer(BytesProducer::new(vec![b'x'; 10 << 20]));
    ///         cx.close(); // after all of it is sent
    ///     }
    /// }
    /// ```
    pub fn push_producer<P: Producer + 'static>(&mut self, producer: P) {
        let _ = self.sh.push_producer(Box::new(producer));
    }

    /// Closes gracefully: no more reads; queued output (producers included)
    /// is sent, then the socket is shut down and the handler gets
    /// [`Handler::handle_close`]. The socket itself lingers up to
    /// [`LINGER`] for the peer's EOF, discarding input, so that the peer
    /// reads everything we sent before it sees the close.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    ///
    /// struct Bye;
    /// impl Handler for Bye {
    ///     fn handle_connect(&mut self, cx: &mut Context<'_>) {
    ///         cx.push(b"* bye\n");
    ///         cx.close();
    ///     }
    /// }
    /// ```
    pub fn close(&mut self) {
        self.sh.close();
    }

    /// Closes at once, dropping queued output.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    ///
    /// struct Refuse;
    /// impl Handler for Refuse {
    ///     fn handle_connect(&mut self, cx: &mut Context<'_>) {
    ///         cx.abort();
    ///     }
    /// }
    /// ```
    pub fn abort(&mut self) {
        self.sh.abort();
    }

    /// Closes at once and reports `err` to [`Handler::handle_error`] (then
    /// `handle_close`), as if the socket had failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    /// use std::io;
    ///
    /// struct Strict;
    /// impl Handler for Strict {
    ///     fn handle_read(&mut self, cx: &mut Context<'_>) {
    ///         let mut b = [0u8; 1];
    ///         if let Ok(1) = cx.recv(&mut b) {
    ///             if b[0] != b'!' {
    ///                 cx.fail(io::Error::new(io::ErrorKind::InvalidData, "bad greeting"));
    ///             }
    ///         }
    ///     }
    /// }
    /// ```
    pub fn fail(&mut self, err: io::Error) {
        self.sh.fail(err);
    }

    /// Stops calling [`Handler::handle_read`] (and makes `recv` return
    /// `WouldBlock`) until [`resume_reading`](Self::resume_reading). The
    /// kernel's buffer then fills and TCP flow control slows the peer down.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    ///
    /// struct OneAtATime;
    /// impl Handler for OneAtATime {
    ///     fn handle_read(&mut self, cx: &mut Context<'_>) {
    ///         let mut b = [0u8; 64];
    ///         if let Ok(n) = cx.recv(&mut b) {
    ///             if n > 0 {
    ///                 cx.pause_reading(); // until a green thread answers
    ///             }
    ///         }
    ///     }
    /// }
    /// ```
    pub fn pause_reading(&mut self) {
        self.sh.pause_reading();
    }

    /// Undoes [`pause_reading`](Self::pause_reading): `handle_read` is
    /// called again soon, even if no new data arrived (the handler may hold
    /// buffered input).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    ///
    /// struct Resumer;
    /// impl Handler for Resumer {
    ///     fn handle_write(&mut self, cx: &mut Context<'_>) {
    ///         cx.resume_reading(); // our replies drained: take more requests
    ///     }
    /// }
    /// ```
    pub fn resume_reading(&mut self) {
        self.sh.resume_reading();
    }

    /// Whether input should be consumed now: false while reading is
    /// paused, the output queue is over its high-water mark, or the
    /// connection is closing. A handler holding buffered input that stops
    /// because of this is called again ([`Handler::handle_read`]) as soon
    /// as reading is allowed again.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    ///
    /// struct Lines(Vec<Vec<u8>>);
    /// impl Handler for Lines {
    ///     fn handle_read(&mut self, cx: &mut Context<'_>) {
    ///         while cx.is_reading() {
    ///             let Some(line) = self.0.pop() else { break };
    ///             cx.push(&line);
    ///         }
    ///     }
    /// }
    /// ```
    pub fn is_reading(&mut self) -> bool {
        if self.sh.may_read() {
            true
        } else {
            self.sh.set(MISSED);
            false
        }
    }

    /// Bytes waiting in the output queue (pushed bytes plus the chunk of a
    /// producer being sent).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    ///
    /// struct Polite;
    /// impl Handler for Polite {
    ///     fn handle_connect(&mut self, cx: &mut Context<'_>) {
    ///         if cx.output_len() == 0 {
    ///             cx.push(b"hi\n");
    ///         }
    ///     }
    /// }
    /// ```
    pub fn output_len(&self) -> usize {
        self.sh.output_len()
    }

    /// Sets the output limit: pushed bytes the connection may hold unsent
    /// before a push closes it with `ErrorKind::OutOfMemory` (default
    /// [`DEFAULT_OUTPUT_LIMIT`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    ///
    /// struct Chatty;
    /// impl Handler for Chatty {
    ///     fn handle_connect(&mut self, cx: &mut Context<'_>) {
    ///         cx.set_output_limit(256 * 1024); // slow readers are cut off sooner
    ///     }
    /// }
    /// ```
    pub fn set_output_limit(&mut self, bytes: usize) {
        self.sh.limit.set(bytes);
    }

    /// Sets the high-water mark: while more than `bytes` wait in the output
    /// queue, reading pauses (default [`DEFAULT_HIGH_WATER`]), so a peer
    /// that sends but does not read cannot make the queue grow.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    ///
    /// struct Bulk;
    /// impl Handler for Bulk {
    ///     fn handle_connect(&mut self, cx: &mut Context<'_>) {
    ///         cx.set_high_water(512 * 1024);
    ///     }
    /// }
    /// ```
    pub fn set_high_water(&mut self, bytes: usize) {
        self.sh.high_water.set(bytes);
    }

    /// A handle on this connection for later: for a green thread, a timer,
    /// or another connection's handler.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handle, Handler};
    /// use std::{cell::RefCell, rc::Rc};
    ///
    /// struct Member(Rc<RefCell<Vec<Handle>>>);
    /// impl Handler for Member {
    ///     fn handle_connect(&mut self, cx: &mut Context<'_>) {
    ///         self.0.borrow_mut().push(cx.handle());
    ///     }
    /// }
    /// ```
    pub fn handle(&self) -> Handle {
        Handle {
            ch: self
                .sh
                .me
                .upgrade()
                .expect("a connection is alive while its handler runs"),
        }
    }

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// `NotConnected` once the socket is closed; the error of
    /// `getpeername` otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    ///
    /// struct Who;
    /// impl Handler for Who {
    ///     fn handle_connect(&mut self, cx: &mut Context<'_>) {
    ///         if let Ok(peer) = cx.peer_addr() {
    ///             cx.push(format!("you are {peer}\n").as_bytes());
    ///         }
    ///     }
    /// }
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sh.with_sock(|s| s.peer_addr())
    }

    /// Our own address of the connection.
    ///
    /// # Errors
    ///
    /// `NotConnected` once the socket is closed; the error of
    /// `getsockname` otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    ///
    /// struct Me;
    /// impl Handler for Me {
    ///     fn handle_connect(&mut self, cx: &mut Context<'_>) {
    ///         let _ = cx.local_addr();
    ///     }
    /// }
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sh.with_sock(|s| s.local_addr())
    }

    /// Sets `TCP_NODELAY` (accepted connections already have it on).
    ///
    /// # Errors
    ///
    /// `NotConnected` once the socket is closed; the error of
    /// `setsockopt` otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    ///
    /// struct Nagle;
    /// impl Handler for Nagle {
    ///     fn handle_connect(&mut self, cx: &mut Context<'_>) {
    ///         let _ = cx.set_nodelay(false);
    ///     }
    /// }
    /// ```
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.sh.with_sock(|s| s.set_nodelay(on))
    }

    /// Whether [`close`](Self::close), [`abort`](Self::abort) or an error
    /// ended this connection (pushes are ignored from then on).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    ///
    /// struct Once;
    /// impl Handler for Once {
    ///     fn handle_connect(&mut self, cx: &mut Context<'_>) {
    ///         cx.close();
    ///         assert!(cx.is_closing());
    ///     }
    /// }
    /// ```
    pub fn is_closing(&self) -> bool {
        self.sh.has(CLOSING | CLOSED)
    }
}

/// A cloneable reference to a connection, usable outside its callbacks:
/// from a green thread of the same hub, a timer, or another connection's
/// handler (a chat room keeps one per member).
///
/// Like [`Context`], a `Handle` never calls the handler back
/// synchronously: a push writes to the socket at once when it can, and
/// anything that needs the handler (a close, an error, resumed reading) is
/// delivered by the connection's own run shortly after. A `Handle` is
/// `!Send`: it belongs to the hub it was made on.
///
/// # Examples
///
/// A green thread answers for a callback handler (the interop of the two
/// styles):
///
/// ```
/// use greenio::net::reactor::{self, Context, Handle, Handler};
/// use std::io::Read;
///
/// struct Waits;
/// impl Handler for Waits {
///     fn handle_connect(&mut self, cx: &mut Context<'_>) {
///         let h: Handle = cx.handle();
///         greenio::spawn(move || {
///             greenio::sleep(std::time::Duration::from_millis(10)); // slow work
///             h.push(b"done\n").unwrap();
///             h.close();
///         });
///     }
/// }
///
/// greenio::run(|| {
///     let l = reactor::listen("127.0.0.1:0".parse().unwrap(), |_| Waits).unwrap();
///     let mut c = greenio::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
///     let mut s = String::new();
///     c.read_to_string(&mut s).unwrap();
///     assert_eq!(s, "done\n");
/// });
/// ```
#[derive(Clone)]
pub struct Handle {
    ch: Rc<dyn Channel>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("conn", &self.ch.shared().describe())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl PartialEq for Handle {
    fn eq(&self, other: &Handle) -> bool {
        Rc::ptr_eq(&self.ch, &other.ch)
    }
}

impl Eq for Handle {}

impl Handle {
    /// Queues `data` for sending, exactly like [`Context::push`].
    ///
    /// # Errors
    ///
    /// `NotConnected` once the connection is closing or closed (the data is
    /// dropped); `OutOfMemory` when the push would pass the output limit
    /// (the connection is closed); the socket's error if the write failed
    /// (the connection is closed).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::Handle;
    ///
    /// fn announce(members: &[Handle], line: &str) {
    ///     for m in members {
    ///         let _ = m.push(line.as_bytes()); // a dead member just fails
    ///     }
    /// }
    /// ```
    pub fn push(&self, data: &[u8]) -> io::Result<()> {
        self.ch.shared().push(data)
    }

    /// Queues a producer, exactly like [`Context::push_producer`].
    ///
    /// # Errors
    ///
    /// `NotConnected` once the connection is closing or closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{BytesProducer, Handle};
    ///
    /// fn send_file_contents(h: &Handle, data: Vec<u8>) -> std::io::Result<()> {
    ///     h.push_producer(BytesProducer::new(data))
    /// }
    /// ```
    pub fn push_producer<P: Producer + 'static>(&self, producer: P) -> io::Result<()> {
        self.ch.shared().push_producer(Box::new(producer))
    }

    /// Closes gracefully, like [`Context::close`].
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::Handle;
    ///
    /// fn kick(h: &Handle) {
    ///     let _ = h.push(b"* bye\n");
    ///     h.close();
    /// }
    /// ```
    pub fn close(&self) {
        self.ch.shared().close();
    }

    /// Closes at once, like [`Context::abort`].
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::Handle;
    ///
    /// fn drop_all(hs: &[Handle]) {
    ///     hs.iter().for_each(Handle::abort);
    /// }
    /// ```
    pub fn abort(&self) {
        self.ch.shared().abort();
    }

    /// Pauses reading, like [`Context::pause_reading`].
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::Handle;
    ///
    /// fn throttle(h: &Handle) {
    ///     h.pause_reading();
    /// }
    /// ```
    pub fn pause_reading(&self) {
        self.ch.shared().pause_reading();
    }

    /// Resumes reading, like [`Context::resume_reading`]: the handler's
    /// `handle_read` runs soon after, from the hub's loop.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::Handle;
    ///
    /// fn answered(h: &Handle, answer: &[u8]) {
    ///     let _ = h.push(answer);
    ///     h.resume_reading(); // next request, please
    /// }
    /// ```
    pub fn resume_reading(&self) {
        self.ch.shared().resume_reading();
    }

    /// Whether the connection is closing or closed: pushes fail from then
    /// on.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::Handle;
    ///
    /// fn alive(hs: &mut Vec<Handle>) {
    ///     hs.retain(|h| !h.is_closed());
    /// }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.ch.shared().has(CLOSING | CLOSED)
    }

    /// Bytes waiting in the output queue, like [`Context::output_len`].
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::Handle;
    ///
    /// fn backlog(hs: &[Handle]) -> usize {
    ///     hs.iter().map(Handle::output_len).sum()
    /// }
    /// ```
    pub fn output_len(&self) -> usize {
        self.ch.shared().output_len()
    }

    /// The peer's address, like [`Context::peer_addr`].
    ///
    /// # Errors
    ///
    /// `NotConnected` once the socket is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::Handle;
    ///
    /// fn who(h: &Handle) -> String {
    ///     h.peer_addr().map(|a| a.to_string()).unwrap_or_default()
    /// }
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.ch.shared().with_sock(|s| s.peer_addr())
    }
}

// ----- the connection ----------------------------------------------------------

/// A connection seen without its handler's type: what [`Handle`]s, the
/// hub's callback and scheduled runs hold.
pub(crate) trait Channel {
    /// The handler-independent state.
    fn shared(&self) -> &Shared;
    /// One dispatch: `ev` are the event's readiness bits (empty for a
    /// scheduled run).
    fn run(&self, ev: Ready);
}

/// The socket side of a connection. Borrowed only for one syscall or queue
/// operation at a time, never while user code runs.
struct Io {
    /// The socket; `None` once closed.
    sock: Option<TcpStream>,
    /// Its registration with the hub (which holds our callback); `None`
    /// once closed.
    reg: Option<Registration>,
    /// The output FIFO.
    out: Output,
}

/// The handler-independent state of a connection. Touched only on its hub's
/// thread.
pub(crate) struct Shared {
    /// This connection as a type-erased channel, for scheduling runs and
    /// making handles.
    me: Weak<dyn Channel>,
    /// The `READABLE`.. `LINGER_ON` flags above.
    flags: Cell<u32>,
    /// Socket, registration and output queue.
    io: RefCell<Io>,
    /// The error to report to `handle_error` (the first one wins).
    error: RefCell<Option<io::Error>>,
    /// Reading pauses while more than this waits to be sent.
    high_water: Cell<usize>,
    /// A push beyond this many unsent pushed bytes closes the connection.
    limit: Cell<usize>,
    /// Bytes this run may still read.
    read_left: Cell<usize>,
    /// Bytes this run may still write from the queue.
    write_left: Cell<usize>,
    /// Producer calls this run may still make.
    pulls_left: Cell<u32>,
    /// The listener's set of live connections, if accepted by one.
    tracker: Option<Rc<Tracker>>,
}

impl Shared {
    #[inline]
    fn has(&self, bits: u32) -> bool {
        self.flags.get() & bits != 0
    }

    #[inline]
    fn set(&self, bits: u32) {
        self.flags.set(self.flags.get() | bits);
    }

    #[inline]
    fn clear(&self, bits: u32) {
        self.flags.set(self.flags.get() & !bits);
    }

    /// A short description for logs: the peer's address, or "closed".
    pub(crate) fn describe(&self) -> String {
        match self.with_sock(|s| s.peer_addr()) {
            Ok(a) => a.to_string(),
            Err(_) => "(closed)".to_string(),
        }
    }

    fn with_sock<R>(&self, f: impl FnOnce(&TcpStream) -> io::Result<R>) -> io::Result<R> {
        match self.io.borrow().sock.as_ref() {
            Some(s) => f(s),
            None => Err(ErrorKind::NotConnected.into()),
        }
    }

    fn output_len(&self) -> usize {
        self.io.borrow().out.buffered()
    }

    fn out_is_empty(&self) -> bool {
        self.io.borrow().out.is_empty()
    }

    /// Whether `handle_read` may be called (and `recv` may read) now.
    #[inline]
    fn may_read(&self) -> bool {
        !self.has(PAUSED | CLOSING | CLOSED | EOF | CONNECTING | FRESH)
            && self.io.borrow().out.buffered() <= self.high_water.get()
    }

    /// Records an event's readiness bits.
    #[inline]
    fn note(&self, ev: Ready) {
        let mut bits = 0;
        if ev.intersects(Ready::READABLE) {
            bits |= READABLE;
        }
        if ev.intersects(Ready::WRITABLE) {
            bits |= WRITABLE;
        }
        if ev.intersects(Ready::READ_CLOSED) {
            bits |= HUP;
        }
        if ev.intersects(Ready::ERROR) {
            bits |= SOCKERR;
        }
        self.set(bits);
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let f = self.flags.get();
        if f & EOF != 0 {
            return Ok(0);
        }
        if f & (CLOSING | CLOSED) != 0 {
            return Err(ErrorKind::NotConnected.into());
        }
        if f & READABLE == 0 || buf.is_empty() {
            return Err(ErrorKind::WouldBlock.into());
        }
        if !self.may_read() {
            // Refused (paused, or output over the high-water mark): call
            // handle_read again once reading is allowed, even if no new
            // edge comes (the data is already in the socket).
            self.set(MISSED);
            return Err(ErrorKind::WouldBlock.into());
        }
        let left = self.read_left.get();
        if left == 0 {
            self.set(MORE);
            return Err(ErrorKind::WouldBlock.into());
        }
        let want = buf.len().min(left);
        let r = loop {
            let r = match self.io.borrow_mut().sock.as_mut() {
                Some(s) => s.read(&mut buf[..want]),
                None => Err(ErrorKind::NotConnected.into()),
            };
            match r {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        match r {
            Ok(0) => {
                self.set(EOF);
                self.clear(READABLE);
                Ok(0)
            }
            Ok(n) => {
                self.read_left.set(left - n);
                self.set(PROGRESS);
                if n < want && f & HUP == 0 {
                    // A short read on a stream drained the receive queue:
                    // the next byte to arrive raises a new edge.
                    self.clear(READABLE);
                }
                Ok(n)
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                self.clear(READABLE);
                Err(e)
            }
            Err(e) => {
                let copy = copy_error(&e);
                self.fail(e);
                Err(copy)
            }
        }
    }

    fn push(&self, data: &[u8]) -> io::Result<()> {
        if self.has(CLOSING | CLOSED) {
            return Err(ErrorKind::NotConnected.into());
        }
        if data.is_empty() {
            return Ok(());
        }
        let direct = self.flags.get() & (WRITABLE | CONNECTING) == WRITABLE;
        let r = {
            let mut io = self.io.borrow_mut();
            let io = &mut *io;
            let Some(sock) = io.sock.as_mut() else {
                return Err(ErrorKind::NotConnected.into());
            };
            let mut rest = data;
            let mut failed = None;
            if direct && io.out.is_empty() {
                loop {
                    match sock.write(rest) {
                        Ok(n) if n == rest.len() => return Ok(()),
                        Ok(0) => {
                            failed = Some(io::Error::from(ErrorKind::WriteZero));
                            break;
                        }
                        Ok(n) => {
                            // Short write: the send buffer is full.
                            rest = &rest[n..];
                            self.clear(WRITABLE);
                            break;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            self.clear(WRITABLE);
                            break;
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
            }
            match failed {
                Some(e) => Err(e),
                None => {
                    let limit = self.limit.get();
                    if io.out.pushed() + rest.len() > limit {
                        Err(io::Error::new(
                            ErrorKind::OutOfMemory,
                            format!(
                                "output queue over its limit of {limit} bytes: \
                                 the peer does not read fast enough"
                            ),
                        ))
                    } else {
                        io.out.push(rest);
                        Ok(())
                    }
                }
            }
        };
        r.map_err(|e| {
            let copy = copy_error(&e);
            self.fail(e);
            copy
        })
    }

    fn push_producer(&self, p: Box<dyn Producer>) -> io::Result<()> {
        if self.has(CLOSING | CLOSED) {
            return Err(ErrorKind::NotConnected.into());
        }
        self.io.borrow_mut().out.push_producer(p);
        if self.has(WRITABLE) && !self.has(BUSY) {
            self.schedule();
        }
        Ok(())
    }

    fn close(&self) {
        if self.has(CLOSING | CLOSED) {
            return;
        }
        self.set(CLOSING);
        if !self.has(BUSY) {
            self.schedule();
        }
    }

    fn abort(&self) {
        if self.has(CLOSED) {
            if self.has(LINGER_ON) {
                self.teardown();
            }
            return;
        }
        self.set(NOTIFY);
        self.teardown();
        if !self.has(BUSY) {
            self.schedule();
        }
    }

    pub(crate) fn fail(&self, err: io::Error) {
        if self.has(CLOSED) {
            if self.has(LINGER_ON) {
                self.teardown();
            }
            return;
        }
        {
            let mut slot = self.error.borrow_mut();
            if slot.is_none() {
                *slot = Some(err);
            }
        }
        self.abort();
    }

    fn pause_reading(&self) {
        self.set(PAUSED);
    }

    fn resume_reading(&self) {
        if self.has(PAUSED) {
            self.clear(PAUSED);
            self.set(MISSED);
            if !self.has(BUSY) {
                self.schedule();
            }
        }
    }

    /// Closes the socket now and forgets the output queue. Everything is
    /// taken out under one short borrow and dropped after it: dropping the
    /// registration drops the hub's callback, and producers are user code.
    fn teardown(&self) {
        self.set(CLOSED);
        self.clear(LINGER_ON | READABLE | WRITABLE);
        let (reg, sock, out) = {
            let mut io = self.io.borrow_mut();
            (io.reg.take(), io.sock.take(), io.out.take())
        };
        drop(reg);
        drop(sock);
        drop(out);
    }

    /// Graceful close, output sent: shut down our side and linger for the
    /// peer's EOF so that it reads everything before it sees a reset.
    fn finish_close(&self) {
        self.set(CLOSED | NOTIFY);
        if self.has(EOF) {
            // The peer sent everything: nothing more can arrive to make the
            // kernel answer with a reset.
            self.teardown();
            return;
        }
        if self.with_sock(|s| s.shutdown(Shutdown::Write)).is_err() {
            self.teardown();
            return;
        }
        self.set(LINGER_ON);
        self.linger_drain();
        if self.has(LINGER_ON) {
            let me = self.me.clone();
            spawn_task(move || {
                greenio_runtime::sleep(LINGER);
                if let Some(c) = me.upgrade() {
                    if c.shared().has(LINGER_ON) {
                        c.shared().teardown();
                    }
                }
            });
        }
    }

    /// Discards input of a lingering connection; closes it at EOF, on an
    /// error, or when the peer keeps sending.
    fn linger_drain(&self) {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        loop {
            let r = match self.io.borrow_mut().sock.as_mut() {
                Some(s) => s.read(&mut buf),
                None => return,
            };
            match r {
                Ok(0) => break,
                Ok(n) => {
                    total += n;
                    if total > LINGER_DISCARD {
                        break;
                    }
                    if n < buf.len() && !self.has(HUP) {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.teardown();
    }

    /// Checks an outgoing connect: `Ok(true)` once established, `Ok(false)`
    /// while still in progress.
    fn finish_connect(&self) -> io::Result<bool> {
        let io = self.io.borrow();
        let Some(s) = io.sock.as_ref() else {
            return Err(ErrorKind::NotConnected.into());
        };
        if let Some(e) = s.take_error()? {
            return Err(e);
        }
        match s.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sends from the output queue until it is empty, the socket is full,
    /// or this run's budget is used up.
    fn flush(&self) -> Flush {
        enum Step {
            Again,
            Fail(io::Error),
            Produce(Box<dyn Producer>),
        }
        loop {
            let step = {
                let mut io = self.io.borrow_mut();
                let io = &mut *io;
                let Some(sock) = io.sock.as_mut() else {
                    return Flush::Closed;
                };
                let pending = io.out.pending();
                if !pending.is_empty() {
                    let left = self.write_left.get();
                    if left == 0 {
                        return Flush::Budget;
                    }
                    let n = pending.len().min(left);
                    match sock.write(&pending[..n]) {
                        Ok(0) => Step::Fail(ErrorKind::WriteZero.into()),
                        Ok(k) => {
                            io.out.consume(k);
                            self.write_left.set(left - k);
                            if k < n {
                                self.clear(WRITABLE);
                                return Flush::Blocked;
                            }
                            Step::Again
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            self.clear(WRITABLE);
                            return Flush::Blocked;
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => Step::Again,
                        Err(e) => Step::Fail(e),
                    }
                } else {
                    match io.out.next() {
                        Next::Empty => return Flush::Drained,
                        Next::Ready => Step::Again,
                        Next::Produce(p) => {
                            let pulls = self.pulls_left.get();
                            if pulls == 0 {
                                drop(io.out.put_back(p, Some(Vec::new())));
                                return Flush::Budget;
                            }
                            self.pulls_left.set(pulls - 1);
                            Step::Produce(p)
                        }
                    }
                }
            };
            match step {
                Step::Again => {}
                Step::Fail(e) => {
                    self.fail(e);
                    return Flush::Closed;
                }
                Step::Produce(mut p) => {
                    // User code: no borrow is held while it runs.
                    let chunk = p.more();
                    let exhausted = self.io.borrow_mut().out.put_back(p, chunk);
                    drop(exhausted);
                }
            }
        }
    }

    /// Runs this connection again after the hub's next poll (at most one
    /// such run is pending).
    fn schedule(&self) {
        if self.has(SCHEDULED) {
            return;
        }
        let Some(me) = self.me.upgrade() else {
            return;
        };
        self.set(SCHEDULED);
        let ok = spawn_task(move || {
            // A zero sleep ends after the hub's next poll: other sockets'
            // events go first.
            greenio_runtime::sleep(Duration::ZERO);
            me.shared().clear(SCHEDULED);
            me.run(Ready::EMPTY);
        });
        if !ok {
            self.clear(SCHEDULED);
        }
    }

    /// Whether this connection needs another run without a new event.
    fn wants_run(&self) -> bool {
        let f = self.flags.get();
        if f & DONE != 0 {
            return false;
        }
        if f & NOTIFY != 0 {
            return true;
        }
        if f & CLOSED != 0 {
            return false;
        }
        f & MORE != 0
            || (f & MISSED != 0 && self.may_read())
            || (f & WRITABLE != 0 && f & CONNECTING == 0 && !self.out_is_empty())
            || (f & CLOSING != 0 && self.out_is_empty())
    }
}

/// How a flush ended.
enum Flush {
    /// The queue is empty.
    Drained,
    /// The socket is full: wait for a WRITABLE edge.
    Blocked,
    /// The run's budget is used up.
    Budget,
    /// The connection was closed (possibly by an error just now).
    Closed,
}

/// Spawns a small green thread for the reactor's own bookkeeping. Returns
/// false (and logs) when that is impossible: off the hub (a [`Handle`]
/// used after `greenio::run` ended) or out of memory for a stack.
pub(crate) fn spawn_task(f: impl FnOnce() + 'static) -> bool {
    if greenio_runtime::stack_size().is_none() {
        log::debug!("greenio reactor: connection used outside its hub; ignored");
        return false;
    }
    match greenio_runtime::Builder::new().spawn(f) {
        Ok(_) => true,
        Err(e) => {
            log::error!("greenio reactor: cannot start a green thread: {e}");
            false
        }
    }
}

fn copy_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

/// A connection with its handler.
pub(crate) struct Conn<H> {
    sh: Shared,
    /// The handler; `None` once dropped after `handle_close`.
    handler: RefCell<Option<H>>,
}

/// How a connection starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// Connected (accepted or attached): `handle_connect` runs at once.
    Connected,
    /// An outgoing connect in progress: `handle_connect` runs once it is
    /// established.
    Connecting,
}

/// Registers `sock` with the current hub and starts `handler` on it.
pub(crate) fn start<H: Handler>(
    mut sock: TcpStream,
    handler: H,
    how: Start,
    tracker: Option<Rc<Tracker>>,
) -> io::Result<Handle> {
    let reg = Registration::new(&mut sock)?;
    let flags = match how {
        Start::Connected => FRESH | WRITABLE,
        Start::Connecting => CONNECTING,
    };
    let conn: Rc<Conn<H>> = Rc::new_cyclic(|w: &Weak<Conn<H>>| {
        let me: Weak<dyn Channel> = w.clone();
        Conn {
            sh: Shared {
                me,
                flags: Cell::new(flags),
                io: RefCell::new(Io {
                    sock: Some(sock),
                    reg: None,
                    out: Output::default(),
                }),
                error: RefCell::new(None),
                high_water: Cell::new(DEFAULT_HIGH_WATER),
                limit: Cell::new(DEFAULT_OUTPUT_LIMIT),
                read_left: Cell::new(READ_BUDGET),
                write_left: Cell::new(WRITE_BUDGET),
                pulls_left: Cell::new(PULL_BUDGET),
                tracker,
            },
            handler: RefCell::new(Some(handler)),
        }
    });
    let c = conn.clone();
    let cb: IoCallback = Rc::new(move |ev| c.run(ev));
    reg.set_callback(Some(cb))?;
    conn.sh.io.borrow_mut().reg = Some(reg);
    if let Some(t) = &conn.sh.tracker {
        t.add(conn.sh.me.clone());
    }
    if how == Start::Connected {
        conn.run(Ready::EMPTY);
    }
    Ok(Handle { ch: conn })
}

impl<H: Handler> Channel for Conn<H> {
    fn shared(&self) -> &Shared {
        &self.sh
    }

    fn run(&self, ev: Ready) {
        let sh = &self.sh;
        sh.note(ev);
        let f = sh.flags.get();
        if f & BUSY != 0 {
            return; // noted; the run in progress sees it
        }
        if f & DONE != 0 {
            if f & LINGER_ON != 0 {
                sh.linger_drain();
            }
            return;
        }
        sh.set(BUSY);
        sh.clear(MORE);
        sh.read_left.set(READ_BUDGET);
        sh.write_left.set(WRITE_BUDGET);
        sh.pulls_left.set(PULL_BUDGET);
        self.dispatch();
        sh.clear(BUSY);
        if sh.wants_run() {
            sh.schedule();
        }
    }
}

impl<H: Handler> Conn<H> {
    /// Steps 1-7 of a run, with the handler borrowed, panics caught.
    fn dispatch(&self) {
        let sh = &self.sh;
        let mut slot = self.handler.borrow_mut();
        let Some(h) = slot.as_mut() else {
            return;
        };
        let r = panic::catch_unwind(AssertUnwindSafe(|| steps(sh, h)));
        if let Err(payload) = r {
            let msg = panic_message(&*payload);
            log::error!(
                "greenio reactor: a handler panicked ({msg}); closing its connection, \
                 the others keep running"
            );
            sh.fail(io::Error::other(format!("handler panicked: {msg}")));
            if !sh.has(NOTIFIED) {
                let again = panic::catch_unwind(AssertUnwindSafe(|| notify(sh, h)));
                if again.is_err() {
                    log::error!("greenio reactor: the handler panicked again in handle_close");
                }
            }
            sh.set(NOTIFIED);
            sh.clear(NOTIFY);
        }
        if sh.has(NOTIFIED) {
            let handler = slot.take();
            drop(slot);
            if panic::catch_unwind(AssertUnwindSafe(move || drop(handler))).is_err() {
                log::error!("greenio reactor: a handler panicked while being dropped");
            }
            sh.set(DONE);
            sh.error.borrow_mut().take();
            if let Some(t) = &sh.tracker {
                t.done();
            }
        }
    }
}

/// Steps 1-7 of a run.
fn steps<H: Handler>(sh: &Shared, h: &mut H) {
    let cx = &mut Context::new(sh);
    if sh.has(SOCKERR) {
        sh.clear(SOCKERR);
        if !sh.has(CONNECTING | CLOSED) {
            match sh.with_sock(|s| s.take_error()) {
                Ok(Some(e)) | Err(e) => sh.fail(e),
                Ok(None) => {}
            }
        }
    }
    // 1. connect
    if sh.has(CONNECTING) && !sh.has(CLOSED) && sh.has(READABLE | WRITABLE) {
        match sh.finish_connect() {
            Ok(true) => {
                sh.clear(CONNECTING);
                sh.set(FRESH | WRITABLE);
            }
            Ok(false) => sh.clear(READABLE | WRITABLE),
            Err(e) => sh.fail(e),
        }
    }
    if sh.has(FRESH) && !sh.has(CLOSED) {
        sh.clear(FRESH);
        h.handle_connect(cx);
    }
    // 2. write
    write_side(sh, h, cx);
    // 3. read
    while sh.has(READABLE | MISSED) && sh.may_read() {
        sh.clear(MISSED | PROGRESS);
        h.handle_read(cx);
        if !sh.has(PROGRESS) || sh.read_left.get() == 0 {
            break;
        }
    }
    // 4. eof
    if sh.has(EOF) && !sh.has(EOF_SEEN | CLOSED) {
        sh.set(EOF_SEEN);
        h.handle_eof(cx);
    }
    // 5. write what reads queued
    write_side(sh, h, cx);
    // 6. close
    if sh.has(CLOSING) && !sh.has(CLOSED) && sh.out_is_empty() {
        sh.finish_close();
    }
    // 7. notify
    notify(sh, h);
}

fn write_side<H: Handler>(sh: &Shared, h: &mut H, cx: &mut Context<'_>) {
    if !sh.has(WRITABLE) || sh.has(CLOSED | CONNECTING | FRESH) || sh.out_is_empty() {
        return;
    }
    match sh.flush() {
        Flush::Drained => {
            if !sh.has(CLOSING | CLOSED) {
                h.handle_write(cx);
            }
        }
        Flush::Budget => sh.set(MORE),
        Flush::Blocked | Flush::Closed => {}
    }
}

fn notify<H: Handler>(sh: &Shared, h: &mut H) {
    if !sh.has(NOTIFY) || sh.has(NOTIFIED) {
        return;
    }
    sh.clear(NOTIFY);
    sh.set(NOTIFIED);
    let cx = &mut Context::new(sh);
    let err = sh.error.borrow_mut().take();
    if let Some(e) = err {
        h.handle_error(cx, &e);
    }
    h.handle_close(cx);
}

// ----- the set of a listener's connections -------------------------------------

/// The live connections of one listener, for counting and for a graceful
/// shutdown.
#[derive(Default)]
pub(crate) struct Tracker {
    /// Connections whose handler is not yet dropped.
    live: Cell<usize>,
    /// Every connection since the last prune (dead ones fail to upgrade).
    conns: RefCell<Vec<Weak<dyn Channel>>>,
    /// Green threads waiting for `live` to reach zero.
    waiters: RefCell<Vec<Waiter>>,
}

impl Tracker {
    fn add(&self, c: Weak<dyn Channel>) {
        self.live.set(self.live.get() + 1);
        let mut conns = self.conns.borrow_mut();
        if conns.len() >= 2 * self.live.get() + 16 {
            conns.retain(|w| w.strong_count() > 0);
        }
        conns.push(c);
    }

    fn done(&self) {
        let n = self.live.get().saturating_sub(1);
        self.live.set(n);
        if n == 0 {
            let ws = std::mem::take(&mut *self.waiters.borrow_mut());
            for w in ws {
                w.wake();
            }
        }
    }

    /// Connections whose handler is still alive.
    pub(crate) fn live(&self) -> usize {
        self.live.get()
    }

    /// Aborts every live connection.
    pub(crate) fn abort_all(&self) {
        let all: Vec<Rc<dyn Channel>> = self
            .conns
            .borrow()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for c in all {
            c.shared().abort();
        }
    }

    /// Parks the calling green thread until no connection is live or
    /// `deadline` passes; returns whether none is live.
    pub(crate) fn wait_idle(&self, deadline: Option<Instant>) -> bool {
        loop {
            if self.live.get() == 0 {
                return true;
            }
            let w = Waiter::prepare();
            self.waiters.borrow_mut().push(w.clone());
            if w.wait(deadline, WaitReason::external("reactor connections")) == Wake::TimedOut {
                return self.live.get() == 0;
            }
        }
    }
}
