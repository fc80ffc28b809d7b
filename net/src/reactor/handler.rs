//! The callback API of one connection: the [`Handler`] trait (asyncore's
//! dispatcher methods), the [`Context`] a handler acts through during a
//! callback, and the [`Handle`] other code keeps for later. All of it
//! forwards to the connection's state in `conn_core.rs`; the run that calls
//! the handler is in `dispatcher.rs`.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use greenio_runtime::io::ReadyCache;

use super::conn_core::{ConnCore, CLOSED, CLOSING, MISSED};
use super::dispatcher::Channel;
use super::producer::Producer;

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
///             let _ = cx.push(&self.buf[..n]);
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
    ///         let _ = cx.push(b"* hello\n");
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
    ///             let _ = cx.push(format!("{}\n", self.0).as_bytes());
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
    ///         let _ = cx.push(format!("total {}\n", self.0).as_bytes());
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
///             let _ = cx.push(&buf[..n].to_ascii_uppercase());
///         }
///     }
/// }
/// ```
pub struct Context<'a> {
    pub(super) sh: &'a ConnCore,
    /// The readiness cache the current run looked up.
    pub(super) cache: &'a ReadyCache<'a>,
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("conn", &self.sh.describe())
            .finish()
    }
}

impl<'a> Context<'a> {
    pub(super) fn new(sh: &'a ConnCore, cache: &'a ReadyCache<'a>) -> Context<'a> {
        Context { sh, cache }
    }

    /// Another context for the same connection and run (for a wrapper
    /// handler that calls an inner one).
    pub(super) fn twin(&self) -> Context<'a> {
        Context {
            sh: self.sh,
            cache: self.cache,
        }
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
        self.sh.recv(self.cache, buf)
    }

    /// Queues `data` for sending. When nothing is queued and the socket is
    /// writable it is written at once (one `send`); what the kernel does not
    /// take is kept and sent as the socket drains.
    ///
    /// The bytes pushed but not yet sent are bounded by the output limit
    /// ([`set_output_limit`](Self::set_output_limit), default
    /// 1 MiB): a push past it closes the connection
    /// (the peer does not read fast enough) and reports
    /// `ErrorKind::OutOfMemory` to [`Handler::handle_error`].
    ///
    /// # Errors
    ///
    /// As [`Handle::push`], which returns the same: `NotConnected` once the
    /// connection is closing or closed (the data is dropped);
    /// `OutOfMemory` past the output limit, or the socket's error (the
    /// connection is closed and [`Handler::handle_error`] gets it too, so a
    /// handler may ignore the result).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    ///
    /// struct Hello;
    /// impl Handler for Hello {
    ///     fn handle_connect(&mut self, cx: &mut Context<'_>) {
    ///         let _ = cx.push(b"hello\r\n");
    ///     }
    /// }
    /// ```
    #[inline]
    pub fn push(&mut self, data: &[u8]) -> io::Result<()> {
        self.sh.push(self.cache, data)
    }

    /// Queues a [`Producer`] behind everything queued so far. Its chunks
    /// are pulled only as the socket accepts data, so a huge reply never
    /// sits in memory at once and never monopolises the loop.
    ///
    /// # Errors
    ///
    /// `NotConnected` once the connection is closing or closed, as
    /// [`Handle::push_producer`].
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{BytesProducer, Context, Handler};
    ///
    /// struct Big;
    /// impl Handler for Big {
    ///     fn handle_connect(&mut self, cx: &mut Context<'_>) {
    ///         let _ = cx.push(b"here comes 10 MB\n");
    ///         let _ = cx.push_producer(BytesProducer::new(vec![b'x'; 10 << 20]));
    ///         cx.close(); // after all of it is sent
    ///     }
    /// }
    /// ```
    pub fn push_producer<P: Producer + 'static>(&mut self, producer: P) -> io::Result<()> {
        self.sh.push_producer(Box::new(producer))
    }

    /// Closes gracefully: no more reads; queued output (producers included)
    /// is sent, then the socket is shut down and the handler gets
    /// [`Handler::handle_close`]. The socket itself lingers up to
    /// 2 seconds for the peer's EOF, discarding input, so that the peer
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
    ///         let _ = cx.push(b"* bye\n");
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

    /// Whether to go on consuming input now: false while reading is
    /// paused, the output queue is over its high-water mark, or the
    /// connection is closing. A `false` also books another
    /// [`Handler::handle_read`] call for as soon as reading is allowed again
    /// (readable or not), so a handler that stops with buffered input is
    /// not forgotten: that is why it takes `&mut self`.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Context, Handler};
    ///
    /// struct Lines(Vec<Vec<u8>>);
    /// impl Handler for Lines {
    ///     fn handle_read(&mut self, cx: &mut Context<'_>) {
    ///         while cx.keep_reading() {
    ///             let Some(line) = self.0.pop() else { break };
    ///             let _ = cx.push(&line); // a failure closes and reaches handle_error
    ///         }
    ///     }
    /// }
    /// ```
    pub fn keep_reading(&mut self) -> bool {
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
    ///             let _ = cx.push(b"hi\n");
    ///         }
    ///     }
    /// }
    /// ```
    pub fn output_len(&self) -> usize {
        self.sh.output_len()
    }

    /// Sets the output limit: pushed bytes the connection may hold unsent
    /// before a push closes it with `ErrorKind::OutOfMemory` (default
    /// 1 MiB).
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
    /// queue, reading pauses (default 64 KiB), so a peer
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
        self.sh.sync_out(&self.sh.io.borrow().out);
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
    ///             let _ = cx.push(format!("you are {peer}\n").as_bytes());
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

impl Handle {
    pub(super) fn new(ch: Rc<dyn Channel>) -> Handle {
        Handle { ch }
    }
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
    /// (the connection is closed);
    /// [`Misuse::OtherHub`](crate::Misuse::OtherHub) when called off the
    /// connection's hub (after `greenio::run` ended, say).
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
        let sh = self.ch.shared();
        sh.with_cache(|c| sh.push(c, data))?
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
