//! The listening dispatcher: accepts connections and starts a handler on
//! each one.
//!
//! # Accepting
//!
//! The listening socket is registered for reading, edge-triggered. On an
//! event the listener accepts until `WouldBlock`, at most
//! 128 connections per run (the rest in a run after the next
//! poll, so a connection storm does not starve established connections).
//! Each accepted socket gets `TCP_NODELAY`, a handler from the
//! [`Accept`]or, and its `handle_connect` at once.
//!
//! Errors of `accept` are classified as the green [`Server`](crate::Server)
//! classifies them (one policy, in `net/src/accept.rs`):
//!
//! * about one connection only (`ECONNABORTED`, `EPROTO`, `ETIMEDOUT`...):
//!   skipped, accepting goes on;
//! * out of resources (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`): reported
//!   to [`Accept::handle_error`], then accepting pauses, 1 ms at first and
//!   twice as long each time the error repeats, up to 100 ms, and resumes by
//!   itself. The pending connections stay in the kernel's backlog; no new
//!   edge would announce them, so the resume is a timer, never a spin;
//! * anything else (the listener itself is broken): reported, and the same
//!   back-off, since a reactor listener has no caller to hand the error to;
//!   [`Listener::shutdown`] ends it.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use greenio_runtime::io::{IoCallback, Ready, Registration};
use mio::Interest;

use greenio_runtime::wait::{WaitReason, Waiter, Wake};

use super::conn_core::spawn_task;
use super::dispatcher::{self, panic_message, Channel, Start};
use super::handler::Handler;
use crate::accept::{classify, AcceptError, Backoff};

/// Connections one listener run accepts before yielding to other work.
const ACCEPT_BUDGET: usize = 128;
/// asyncore's `handle_accept`: makes the handler of each accepted
/// connection.
///
/// Any closure `FnMut(SocketAddr) -> H` where `H: Handler` is an acceptor;
/// implement the trait to refuse connections or to see accept errors.
///
/// # Examples
///
/// An acceptor that serves at most two connections in total:
///
/// ```
/// use greenio::net::reactor::{Accept, Context, Handler};
/// use std::net::SocketAddr;
///
/// struct Hello;
/// impl Handler for Hello {
///     fn handle_connect(&mut self, cx: &mut Context<'_>) {
///         let _ = cx.push(b"hello\n");
///         cx.close();
///     }
/// }
///
/// struct Two(u32);
/// impl Accept for Two {
///     type Handler = Hello;
///     fn handle_accept(&mut self, _peer: SocketAddr) -> Option<Hello> {
///         self.0 += 1;
///         (self.0 <= 2).then_some(Hello) // None: the connection is closed
///     }
/// }
/// ```
pub trait Accept: 'static {
    /// The handler type of accepted connections.
    type Handler: Handler;

    /// A connection from `peer` was accepted: return its handler, or `None`
    /// to close it at once.
    fn handle_accept(&mut self, peer: SocketAddr) -> Option<Self::Handler>;

    /// `accept` failed in a way that pauses accepting (see the module
    /// docs). The default logs a warning.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{Accept, Handler};
    /// use std::net::SocketAddr;
    ///
    /// struct Quiet;
    /// impl Handler for Quiet {}
    /// struct Counting(u64);
    /// impl Accept for Counting {
    ///     type Handler = Quiet;
    ///     fn handle_accept(&mut self, _: SocketAddr) -> Option<Quiet> {
    ///         Some(Quiet)
    ///     }
    ///     fn handle_error(&mut self, _err: &std::io::Error) {
    ///         self.0 += 1;
    ///     }
    /// }
    /// ```
    fn handle_error(&mut self, err: &io::Error) {
        log::warn!("greenio reactor: accept failed: {err}; backing off, then retrying");
    }
}

impl<H, F> Accept for F
where
    H: Handler,
    F: FnMut(SocketAddr) -> H + 'static,
{
    type Handler = H;

    fn handle_accept(&mut self, peer: SocketAddr) -> Option<H> {
        Some(self(peer))
    }
}

/// A listening socket served by the reactor, returned by
/// [`listen`](super::listen) and [`listen_on`](super::listen_on).
///
/// The listener accepts until [`close`](Self::close) or
/// [`shutdown`](Self::shutdown), even when every `Listener` value is
/// dropped (like an asyncore dispatcher in the socket map); at the latest
/// it stops when `greenio::run` returns. Clones refer to the same listener.
/// `!Send`: it belongs to the hub it was made on.
///
/// # Examples
///
/// ```
/// use greenio::net::reactor::{self, Context, Handler};
/// use std::io::Read;
///
/// struct Hello;
/// impl Handler for Hello {
///     fn handle_connect(&mut self, cx: &mut Context<'_>) {
///         let _ = cx.push(b"hello\n");
///         cx.close();
///     }
/// }
///
/// greenio::run(|| {
///     let l = reactor::listen("127.0.0.1:0".parse().unwrap(), |_| Hello).unwrap();
///     let mut c = greenio::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
///     let mut s = String::new();
///     c.read_to_string(&mut s).unwrap();
///     assert_eq!(s, "hello\n");
///     l.shutdown(std::time::Duration::from_secs(1));
///     assert!(greenio::net::TcpStream::connect(l.local_addr().unwrap()).is_err());
/// });
/// ```
#[derive(Clone)]
pub struct Listener {
    inner: Rc<dyn ListenerOps>,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("local_addr", &self.inner.local())
            .field("closed", &self.inner.is_closed())
            .field("connections", &self.inner.tracker().live())
            .finish()
    }
}

impl Listener {
    /// The address the listener is bound to (with the port chosen when
    /// port 0 was asked for).
    ///
    /// # Errors
    ///
    /// Never fails today; the `Result` mirrors `std::net::TcpListener`.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{self, Handler};
    ///
    /// struct Nop;
    /// impl Handler for Nop {}
    /// greenio::run(|| {
    ///     let l = reactor::listen("127.0.0.1:0".parse().unwrap(), |_| Nop).unwrap();
    ///     assert_ne!(l.local_addr().unwrap().port(), 0);
    /// });
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner.local())
    }

    /// Connections accepted by this listener whose handler is still alive.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{self, Handler};
    ///
    /// struct Nop;
    /// impl Handler for Nop {}
    /// greenio::run(|| {
    ///     let l = reactor::listen("127.0.0.1:0".parse().unwrap(), |_| Nop).unwrap();
    ///     assert_eq!(l.connections(), 0);
    /// });
    /// ```
    pub fn connections(&self) -> usize {
        self.inner.tracker().live()
    }

    /// Stops accepting and closes the listening socket. Connections already
    /// accepted go on. Idempotent.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{self, Handler};
    ///
    /// struct Nop;
    /// impl Handler for Nop {}
    /// greenio::run(|| {
    ///     let l = reactor::listen("127.0.0.1:0".parse().unwrap(), |_| Nop).unwrap();
    ///     let addr = l.local_addr().unwrap();
    ///     l.close();
    ///     assert!(l.is_closed());
    ///     assert!(greenio::net::TcpStream::connect(addr).is_err());
    /// });
    /// ```
    pub fn close(&self) {
        self.inner.close();
    }

    /// Whether [`close`](Self::close) or [`shutdown`](Self::shutdown) was
    /// called.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{self, Handler};
    ///
    /// struct Nop;
    /// impl Handler for Nop {}
    /// greenio::run(|| {
    ///     let l = reactor::listen("127.0.0.1:0".parse().unwrap(), |_| Nop).unwrap();
    ///     assert!(!l.is_closed());
    /// });
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// A graceful stop (gevent's `StreamServer.stop(timeout)`): stop
    /// accepting, give the accepted connections up to `grace` to finish,
    /// then abort the rest, and return once every handler got its
    /// `handle_close`. Parks the calling green thread meanwhile; the hub
    /// keeps serving.
    ///
    /// # Panics
    ///
    /// Outside a green thread (in a handler callback, which must not
    /// block): call [`close`](Self::close) there instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{self, Handler};
    /// use std::time::Duration;
    ///
    /// struct Nop;
    /// impl Handler for Nop {}
    /// greenio::run(|| {
    ///     let l = reactor::listen("127.0.0.1:0".parse().unwrap(), |_| Nop).unwrap();
    ///     let _idle = greenio::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    ///     greenio::sleep(Duration::from_millis(20)); // let the reactor accept it
    ///     assert_eq!(l.connections(), 1);
    ///     l.shutdown(Duration::from_millis(50)); // the idle one is aborted
    ///     assert_eq!(l.connections(), 0);
    /// });
    /// ```
    pub fn shutdown(&self, grace: Duration) {
        self.inner.close();
        let t = self.inner.tracker();
        if t.wait_idle(greenio_runtime::wait::deadline_after(grace)) {
            return;
        }
        t.abort_all();
        // Aborted connections are notified by runs scheduled right away;
        // the bound only guards against a handler that never returns.
        t.wait_idle(greenio_runtime::wait::deadline_after(Duration::from_secs(
            10,
        )));
    }
}

/// A listener seen without its acceptor's type.
trait ListenerOps {
    fn local(&self) -> SocketAddr;
    fn close(&self);
    fn is_closed(&self) -> bool;
    fn tracker(&self) -> &Rc<Tracker>;
}

/// The listening socket with its acceptor.
struct Inner<A: Accept> {
    /// Weak self, for scheduled runs.
    me: Weak<Inner<A>>,
    /// The socket; `None` once closed.
    sock: RefCell<Option<mio::net::TcpListener>>,
    /// Its registration (holding our callback); `None` once closed.
    reg: RefCell<Option<Registration>>,
    /// Makes the handlers; borrowed only around `handle_accept`/`handle_error`.
    acceptor: RefCell<A>,
    /// The bound address.
    local: SocketAddr,
    /// The live connections accepted here.
    tracker: Rc<Tracker>,
    /// Closed for good.
    closed: Cell<bool>,
    /// A scheduled run (budget continuation or back-off) is pending: do not
    /// accept before it.
    scheduled: Cell<bool>,
    /// Inside `accept_all` (a handler's `handle_connect` could otherwise
    /// re-enter through a nested event: it cannot, but be sure).
    busy: Cell<bool>,
    /// The pause before the next try while `accept` fails; reset by an
    /// accepted connection. Touched only by `accept_all`.
    backoff: Cell<Backoff>,
}

impl<A: Accept> ListenerOps for Inner<A> {
    fn local(&self) -> SocketAddr {
        self.local
    }

    fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        let reg = self.reg.borrow_mut().take();
        let sock = self.sock.borrow_mut().take();
        drop(reg);
        drop(sock);
    }

    fn is_closed(&self) -> bool {
        self.closed.get()
    }

    fn tracker(&self) -> &Rc<Tracker> {
        &self.tracker
    }
}

/// Registers a non-blocking listening socket and serves it with `acceptor`.
pub(crate) fn start<A: Accept>(
    mut sock: mio::net::TcpListener,
    acceptor: A,
) -> io::Result<Listener> {
    let local = sock.local_addr()?;
    let reg = Registration::with_interest(&mut sock, Interest::READABLE)?;
    let inner = Rc::new_cyclic(|me: &Weak<Inner<A>>| Inner {
        me: me.clone(),
        sock: RefCell::new(Some(sock)),
        reg: RefCell::new(None),
        acceptor: RefCell::new(acceptor),
        local,
        tracker: Rc::new(Tracker::default()),
        closed: Cell::new(false),
        scheduled: Cell::new(false),
        busy: Cell::new(false),
        backoff: Cell::new(Backoff::new()),
    });
    let i = inner.clone();
    let cb: IoCallback = Rc::new(move |ev: Ready, _| {
        if ev.intersects(Ready::READABLE) {
            i.accept_all();
        }
    });
    reg.set_callback(Some(cb))?;
    *inner.reg.borrow_mut() = Some(reg);
    // Connections may already wait in the backlog (a listener bound before
    // greenio::run): the registration's first event announces them.
    Ok(Listener { inner })
}

impl<A: Accept> Inner<A> {
    /// Accepts what is pending, within the budget.
    fn accept_all(&self) {
        if self.closed.get() || self.scheduled.get() || self.busy.replace(true) {
            return;
        }
        for _ in 0..ACCEPT_BUDGET {
            let r = match self.sock.borrow().as_ref() {
                Some(l) => l.accept(),
                None => break,
            };
            match r {
                Ok((stream, peer)) => {
                    self.backoff.set(Backoff::new());
                    self.start_conn(stream, peer)
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.busy.set(false);
                    return;
                }
                Err(e) => match classify(&e) {
                    AcceptError::Retry => {}
                    AcceptError::BackOff | AcceptError::Fatal => {
                        let r = panic::catch_unwind(AssertUnwindSafe(|| {
                            self.acceptor.borrow_mut().handle_error(&e)
                        }));
                        if r.is_err() {
                            log::error!("greenio reactor: Accept::handle_error panicked");
                        }
                        self.busy.set(false);
                        let mut backoff = self.backoff.get();
                        self.resume_after(backoff.next_sleep());
                        self.backoff.set(backoff);
                        return;
                    }
                },
            }
        }
        self.busy.set(false);
        if !self.closed.get() {
            self.resume_after(Duration::ZERO);
        }
    }

    /// Accepts again after `delay` (zero: after the hub's next poll).
    fn resume_after(&self, delay: Duration) {
        if self.scheduled.replace(true) {
            return;
        }
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let ok = spawn_task(move || {
            greenio_runtime::sleep(delay);
            me.scheduled.set(false);
            me.accept_all();
        });
        if !ok {
            self.scheduled.set(false);
        }
    }

    fn start_conn(&self, stream: mio::net::TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let made = panic::catch_unwind(AssertUnwindSafe(|| {
            self.acceptor.borrow_mut().handle_accept(peer)
        }));
        let handler = match made {
            Ok(Some(h)) => h,
            Ok(None) => return, // refused: dropping the stream closes it
            Err(p) => {
                log::error!(
                    "greenio reactor: Accept::handle_accept panicked ({}); \
                     connection from {peer} closed",
                    panic_message(&*p)
                );
                return;
            }
        };
        if let Err(e) = dispatcher::start(
            stream,
            handler,
            Start::Connected,
            Some(self.tracker.clone()),
        ) {
            log::warn!("greenio reactor: cannot register a connection from {peer}: {e}");
        }
    }
}

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
    pub(super) fn add(&self, c: Weak<dyn Channel>) {
        self.live.set(self.live.get() + 1);
        let mut conns = self.conns.borrow_mut();
        if conns.len() >= 2 * self.live.get() + 16 {
            conns.retain(|w| w.strong_count() > 0);
        }
        conns.push(c);
    }

    pub(super) fn done(&self) {
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
