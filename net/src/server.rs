//! [`Server`]: gevent's `StreamServer`. A handler per connection, each on
//! its own green thread; a limit on concurrent connections; a graceful stop
//! with a deadline; an accept loop that outlives running out of file
//! descriptors.
//!
//! ```
//! use greenio::net::{Server, TcpStream};
//! use std::io::{Read, Write};
//! use std::time::Duration;
//!
//! greenio::run(|| {
//!     let server = Server::bind("127.0.0.1:0", |mut conn: TcpStream, _peer| {
//!         let mut buf = [0; 1024];
//!         while let Ok(n @ 1..) = conn.read(&mut buf) {
//!             if conn.write_all(&buf[..n]).is_err() {
//!                 break;
//!             }
//!         }
//!     })
//!     .unwrap();
//!     let addr = server.local_addr().unwrap();
//!     let handle = server.handle();
//!     let serving = greenio::spawn(move || server.serve());
//!
//!     let mut c = TcpStream::connect(addr).unwrap();
//!     c.write_all(b"ping").unwrap();
//!     let mut reply = [0; 4];
//!     c.read_exact(&mut reply).unwrap();
//!     assert_eq!(&reply, b"ping");
//!
//!     drop(c); // the handler sees EOF and returns
//!     handle.stop(Duration::from_secs(5));
//!     serving.join().unwrap().unwrap();
//! });
//! ```
//!
//! # Design
//!
//! [`Server::serve`] starts *acceptor* green threads and parks the calling
//! green thread until [`ServerHandle::stop`] is called. Each acceptor loops:
//! take a connection slot (parking while [`max_connections`] are live),
//! `accept`, spawn the connection's green thread. Every live connection
//! sits in a table with its `JoinHandle`; its green thread removes itself
//! when it ends, however it ends (return, panic, cancel), and wakes an
//! acceptor waiting for a slot.
//!
//! Stopping: the acceptors are cancelled (they unwind from `accept` and
//! close their listeners, so new connects are refused), `serve` waits until
//! the table is empty or the deadline passes, then cancels the connections
//! still running and joins them. A handler is interrupted only where it
//! parks; one that computes without ever parking cannot be cancelled.
//!
//! ## Errors from `accept`
//!
//! | error                                      | what the loop does                       |
//! |--------------------------------------------|------------------------------------------|
//! | `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`    | log, sleep 1, 2, 4... ms up to 100 ms, retry |
//! | `ECONNABORTED`, `ECONNRESET`, `EINTR`, `EPROTO` and the network errors accept(2) says to retry | retry at once |
//! | anything else (`EBADF`, `EINVAL`...)       | the listener is broken: stop, `serve` returns it |
//!
//! Out of descriptors, the pending connection stays in the kernel's
//! backlog and the listener stays readable, so a spinning loop would burn a
//! core doing nothing; the sleep gives other connections time to close.
//! Failing to map a connection's stack is handled the same way.
//!
//! ## Several hubs: one acceptor dealing connections
//!
//! In a runtime with `hubs(n)`, connections are spread over the hubs. Two
//! designs were built and measured (see the seeds' preforked servers: every
//! child calling `accept` on one socket wakes a thundering herd; the parent
//! accepting and passing descriptors to children does not):
//!
//! * **One acceptor dealing round-robin** (the default): one green thread
//!   accepts and spawns each connection on the next hub with
//!   [`greenio::spawn_on`](greenio_runtime::spawn_on) (streams are `Send`
//!   and register with the hub they are first used on).
//! * **`SO_REUSEPORT`** ([`ServerBuilder::reuse_port`]): one listener per
//!   hub, each bound with `SO_REUSEPORT`, each with an acceptor on its hub;
//!   the kernel hashes connections to listeners.
//!
//! Once a connection is established the two are identical (it lives on one
//! hub), so they differ only in accepting. Measured on a 2-core machine
//! (shared with other work, so a few percent is noise), server with 2 hubs
//! and clients on both cores:
//!
//! | load                                         | dealer                    | `SO_REUSEPORT`            |
//! |----------------------------------------------|---------------------------|---------------------------|
//! | connect, 64 B echo, close; 4 client threads  | 12.6–14.4 k conn/s, p50 145–180 µs | 14.4–14.6 k conn/s, p50 100–128 µs |
//! | `echo_client -c 100 -b 64`                   | 111 k msg/s               | 111 k msg/s               |
//! | `echo_client -c 1000 -b 64`                  | 132 k msg/s               | 101 k msg/s               |
//! | connections per hub (1000)                   | 500 / 500                 | 520 / 480                 |
//!
//! Accepting costs the dealer one cross-thread hand-off per connection
//! (about 40 µs more latency to the first byte under a connect storm, the
//! same connection rate); steady-state echo is the same within noise.
//!
//! The dealer is the default because it keeps the semantics users expect:
//! binding a port already in use fails with `AddrInUse` (with
//! `SO_REUSEPORT` a second server of the same user silently shares the
//! port and steals half the connections), `max_connections` is exact (a
//! `SO_REUSEPORT` acceptor holds a slot while its own queue is empty), the
//! spread is exactly even (the kernel's hash is not, for few connections),
//! and a stopping server never drops connections queued on one hub's
//! listener. `SO_REUSEPORT` remains an option for accept-heavy loads, where
//! it moves the `accept` calls off the first hub.
//!
//! ## The handler: `Fn + Send + Sync`, not `FnMut`
//!
//! The handler runs on many connections at once, possibly on several hubs,
//! so it is shared (`Arc`) and called through `&self`: it must be `Fn`, and
//! `Send + Sync` to cross to other hubs. Per-connection state lives in the
//! handler's locals; state shared by connections goes in an `Arc` with
//! atomics or a [`greenio::sync`](greenio_runtime::sync) lock. An `FnMut`
//! would need a lock around every call, serialising the connections.
//!
//! [`max_connections`]: ServerBuilder::max_connections

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use greenio_runtime::signal::Signals;
use greenio_runtime::wait::{WaitReason, Waiter};
use greenio_runtime::{Builder, JoinHandle};

use crate::accept::{classify, AcceptError, Backoff};
use crate::sys;
use crate::Misuse;
use crate::{TcpListener, TcpStream, ToSocketAddrs};

/// The connection handler, shared by every connection on every hub.
type Handler = Arc<dyn Fn(TcpStream, SocketAddr) + Send + Sync + 'static>;

/// Backlog of the listeners the server binds itself with `SO_REUSEPORT`.
const BACKLOG: libc::c_int = 1024;

/// Configures a [`Server`]: connection limit, green-thread name and stack
/// size, how many hubs serve, and how connections reach them.
///
/// # Examples
///
/// ```
/// use greenio::net::Server;
/// greenio::run(|| {
///     let server = Server::builder()
///         .max_connections(1000)
///         .name("echo")
///         .stack_size(64 * 1024)
///         .bind("127.0.0.1:0", |_conn, _peer| {})
///         .unwrap();
///     assert!(server.local_addr().is_ok());
/// });
/// ```
#[derive(Debug, Clone, Default)]
pub struct ServerBuilder {
    max_connections: Option<usize>,
    name: Option<Arc<str>>,
    stack_size: Option<usize>,
    hubs: Option<usize>,
    reuse_port: bool,
}

impl ServerBuilder {
    /// A builder with the defaults: no connection limit, green threads
    /// named `conn`, the runtime's stack size, every hub, one acceptor.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = greenio::net::ServerBuilder::new().max_connections(10);
    /// # let _ = b;
    /// ```
    pub fn new() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// At most `n` connections are served at once: with `n` live, the
    /// acceptor parks (new connections wait in the kernel's backlog) until
    /// one ends. gevent's `Pool(n)` as the server's spawn.
    ///
    /// # Panics
    ///
    /// Panics if `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = greenio::net::Server::builder().max_connections(512);
    /// # let _ = b;
    /// ```
    pub fn max_connections(mut self, n: usize) -> ServerBuilder {
        assert!(
            n > 0,
            "ServerBuilder::max_connections: the limit must be at least 1"
        );
        self.max_connections = Some(n);
        self
    }

    /// Names the connections' green threads `"{name} {peer}"` (shown by
    /// [`greenio::dump`](greenio_runtime::dump) and in panic logs), and the
    /// acceptors `"{name} acceptor"`. Default `conn`.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = greenio::net::Server::builder().name("echo");
    /// # let _ = b;
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> ServerBuilder {
        self.name = Some(Arc::from(name.into()));
        self
    }

    /// The stack size of connection green threads, in bytes (see
    /// [`greenio::Builder::stack_size`](greenio_runtime::Builder::stack_size)).
    /// Default: the runtime's.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = greenio::net::Server::builder().stack_size(32 * 1024);
    /// # let _ = b;
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> ServerBuilder {
        self.stack_size = Some(bytes);
        self
    }

    /// Serves on the first `n` hubs of the runtime (at least one; capped at
    /// the runtime's number of hubs). Default: every hub.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = greenio::net::Server::builder().hubs(1);
    /// # let _ = b;
    /// ```
    pub fn hubs(mut self, n: usize) -> ServerBuilder {
        self.hubs = Some(n.max(1));
        self
    }

    /// Binds with `SO_REUSEPORT` and, on several hubs, gives each hub its
    /// own listener and acceptor instead of one acceptor dealing
    /// connections (see the [module docs](self) for the trade-off).
    /// Only for servers made with [`bind`](Self::bind). Default `false`.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = greenio::net::Server::builder().reuse_port(true);
    /// # let _ = b;
    /// ```
    pub fn reuse_port(mut self, yes: bool) -> ServerBuilder {
        self.reuse_port = yes;
        self
    }

    /// Binds a listener to `addr` and makes the server (which does not
    /// accept until [`Server::serve`]).
    ///
    /// # Errors
    ///
    /// The error of resolving or binding `addr` (e.g. `AddrInUse`).
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let s = greenio::net::Server::builder()
    ///         .bind("127.0.0.1:0", |_conn, _peer| {})
    ///         .unwrap();
    ///     assert_ne!(s.local_addr().unwrap().port(), 0);
    /// });
    /// ```
    #[track_caller]
    pub fn bind<A, F>(self, addr: A, handler: F) -> io::Result<Server>
    where
        A: ToSocketAddrs,
        F: Fn(TcpStream, SocketAddr) + Send + Sync + 'static,
    {
        let listener = if self.reuse_port {
            let mut last = None;
            let mut bound = None;
            for a in addr.to_socket_addrs()? {
                match sys::bind_reuse_port(a, BACKLOG) {
                    Ok(l) => {
                        bound = Some(l);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            match bound {
                Some(l) => TcpListener::from_std(l)?,
                None => {
                    return Err(last.unwrap_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::InvalidInput,
                            "could not resolve to any addresses",
                        )
                    }))
                }
            }
        } else {
            TcpListener::bind(addr)?
        };
        Ok(self.make(listener, handler))
    }

    /// Makes a server accepting on `listener` (which must be listening).
    /// [`reuse_port`](Self::reuse_port) does not apply: the server has one
    /// acceptor.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::{Server, TcpListener};
    /// greenio::run(|| {
    ///     let l = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = l.local_addr().unwrap();
    ///     let s = Server::builder().listener(l, |_conn, _peer| {});
    ///     assert_eq!(s.local_addr().unwrap(), addr);
    /// });
    /// ```
    #[track_caller]
    pub fn listener<F>(mut self, listener: TcpListener, handler: F) -> Server
    where
        F: Fn(TcpStream, SocketAddr) + Send + Sync + 'static,
    {
        self.reuse_port = false;
        self.make(listener, handler)
    }

    #[track_caller]
    fn make<F>(self, listener: TcpListener, handler: F) -> Server
    where
        F: Fn(TcpStream, SocketAddr) + Send + Sync + 'static,
    {
        Server {
            listener,
            handler: Arc::new(handler),
            shared: Arc::new(ServerCore {
                table: Mutex::new(ConnTable::default()),
                max_connections: self.max_connections,
                accepted: AtomicU64::new(0),
                accept_errors: AtomicU64::new(0),
            }),
            config: self,
            site: Location::caller(),
        }
    }
}

/// A TCP server running a handler on its own green thread for each
/// connection: gevent's `StreamServer`. See the [module docs](self).
///
/// # Examples
///
/// ```
/// use greenio::net::{Server, TcpStream};
/// use std::io::{Read, Write};
/// use std::time::Duration;
///
/// greenio::run(|| {
///     let server = Server::bind("127.0.0.1:0", |mut conn: TcpStream, peer| {
///         let _ = conn.write_all(format!("hello {}\n", peer.ip()).as_bytes());
///     })
///     .unwrap();
///     let addr = server.local_addr().unwrap();
///     let handle = server.handle();
///     let serving = greenio::spawn(move || server.serve());
///
///     let mut reply = String::new();
///     TcpStream::connect(addr).unwrap().read_to_string(&mut reply).unwrap();
///     assert_eq!(reply, "hello 127.0.0.1\n");
///
///     handle.stop(Duration::from_secs(1));
///     serving.join().unwrap().unwrap();
/// });
/// ```
pub struct Server {
    /// The listener of the calling hub's acceptor.
    listener: TcpListener,
    handler: Handler,
    shared: Arc<ServerCore>,
    config: ServerBuilder,
    /// Where the server was made: recorded as the spawn site of its
    /// acceptors and connections (see `GreenThread::spawn_site`).
    site: &'static Location<'static>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("config", &self.config)
            .finish()
    }
}

/// What the acceptors, the connections, `serve` and the handles share.
struct ServerCore {
    /// Connection slots, the stop request and the parked waiters.
    table: Mutex<ConnTable>,
    /// The configured limit, `None` for none.
    max_connections: Option<usize>,
    /// Connections accepted so far.
    accepted: AtomicU64,
    /// `accept` calls that failed (any error).
    accept_errors: AtomicU64,
}

/// The mutable part of [`ServerCore`]. Locked only for short bookkeeping, never
/// across a park.
#[derive(Default)]
struct ConnTable {
    /// Set by `stop` (or a fatal accept error); never cleared.
    stopping: bool,
    /// When to cancel the connections still running; `None` waits for them.
    deadline: Option<Instant>,
    /// The error that stopped an acceptor, returned by `serve`.
    fatal: Option<io::Error>,
    /// Connection slots by id: `None` while reserved by an acceptor (before
    /// `accept` returns, or while the green thread is being spawned), then
    /// the connection's handle. An entry is removed by the acceptor if its
    /// `accept` fails, else by the connection's [`ConnGuard`].
    conns: HashMap<u64, Option<JoinHandle<()>>>,
    next_id: u64,
    /// Acceptors parked until a slot frees (`max_connections`).
    slot_waiters: Vec<Waiter>,
    /// `serve`, parked until stop is requested or the table drains.
    serve_waiter: Option<Waiter>,
}

impl ServerCore {
    fn lock(&self) -> MutexGuard<'_, ConnTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Requests a stop with connections cancelled at `deadline`.
    fn request_stop(&self, deadline: Option<Instant>, fatal: Option<io::Error>) {
        let mut st = self.lock();
        st.stopping = true;
        st.deadline = match (st.deadline, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if st.fatal.is_none() {
            st.fatal = fatal;
        }
        if let Some(w) = st.serve_waiter.take() {
            w.wake();
        }
    }

    /// Reserves a connection slot, parking while `max_connections` are
    /// taken. The returned guard frees the slot unless it is handed to a
    /// connection.
    fn reserve(self: &Arc<Self>) -> Reservation {
        loop {
            let w = Waiter::prepare();
            {
                let mut st = self.lock();
                if !matches!(self.max_connections, Some(m) if st.conns.len() >= m) {
                    w.cancel();
                    st.next_id += 1;
                    let id = st.next_id;
                    st.conns.insert(id, None);
                    return Reservation {
                        shared: self.clone(),
                        id: Some(id),
                    };
                }
                st.slot_waiters.push(w.clone());
            }
            w.wait(None, WaitReason::sync("server: connection slot"));
        }
    }

    /// Removes connection `id` and wakes whoever waits for that.
    fn release(&self, id: u64) {
        let mut st = self.lock();
        st.conns.remove(&id);
        for w in st.slot_waiters.drain(..) {
            w.wake();
        }
        if st.conns.is_empty() && st.stopping {
            if let Some(w) = st.serve_waiter.take() {
                w.wake();
            }
        }
    }
}

/// A slot reserved by an acceptor; freed on drop unless taken by a
/// connection (including when the acceptor is cancelled while parked).
struct Reservation {
    shared: Arc<ServerCore>,
    id: Option<u64>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.shared.release(id);
        }
    }
}

/// Owned by a connection's green thread (captured by its closure, so it is
/// dropped even if the green thread is cancelled before it starts): frees
/// the connection's slot when it ends.
struct ConnGuard {
    shared: Arc<ServerCore>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.shared.release(self.id);
    }
}

/// Stops a [`Server`] and reports on it; cloneable, `Send + Sync`: keep one
/// in a signal-handling green thread, on another hub, or in a plain OS
/// thread.
///
/// # Examples
///
/// ```
/// use greenio::net::Server;
/// use std::time::Duration;
/// greenio::run(|| {
///     let server = Server::bind("127.0.0.1:0", |_conn, _peer| {}).unwrap();
///     let handle = server.handle();
///     let h2 = handle.clone();
///     greenio::spawn(move || h2.stop(Duration::from_secs(1)));
///     server.serve().unwrap(); // returns once stopped
///     assert!(handle.is_stopping());
/// });
/// ```
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<ServerCore>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("stopping", &self.is_stopping())
            .field("connections", &self.connections())
            .field("accepted", &self.accepted())
            .finish()
    }
}

impl ServerHandle {
    /// Stops the server: it stops accepting at once (its listeners close,
    /// so new connects are refused), lets running handlers finish for up
    /// to `grace`, then cancels the rest; then [`Server::serve`] returns.
    ///
    /// This does not wait: join the green thread running `serve` for
    /// that. Calling it again can only shorten the deadline. Stopping
    /// before `serve` runs makes `serve` return at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::Server;
    /// use std::time::Duration;
    /// greenio::run(|| {
    ///     let server = Server::bind("127.0.0.1:0", |_c, _p| {}).unwrap();
    ///     server.handle().stop(Duration::ZERO);
    ///     server.serve().unwrap();
    /// });
    /// ```
    pub fn stop(&self, grace: Duration) {
        // No deadline when `grace` is too long to add to now: drain for good.
        self.shared
            .request_stop(crate::source::deadline(Some(grace)), None);
    }

    /// Stops the server, as [`stop`](Self::stop)`(grace)`, when one of
    /// `signals` arrives: the usual ending of a server process on SIGINT or
    /// SIGTERM, in one call. A green thread spawned on this hub waits for
    /// the signal, logs it (level `info`, target `greenio`) and stops the
    /// server; joining its handle gives the signal, or the error of
    /// [`Signals::recv`].
    ///
    /// Create `signals` before binding, so that a signal arriving from then
    /// on stops the server instead of killing the process.
    ///
    /// # Panics
    ///
    /// Panics outside a runtime, like [`greenio::spawn`](greenio_runtime::spawn).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::Server;
    /// use greenio::signal::{Signals, SIGUSR1};
    /// use std::time::Duration;
    ///
    /// greenio::run(|| {
    ///     let signals = Signals::new(&[SIGUSR1]).unwrap();
    ///     let server = Server::bind("127.0.0.1:0", |_conn, _peer| {}).unwrap();
    ///     let waiter = server.handle().stop_on(signals, Duration::from_secs(1));
    ///     // SAFETY: raise is always safe to call.
    ///     unsafe { libc::raise(SIGUSR1) };
    ///     server.serve().unwrap(); // returns once the signal stopped it
    ///     assert_eq!(waiter.join().unwrap().unwrap(), SIGUSR1);
    /// });
    /// ```
    pub fn stop_on(&self, mut signals: Signals, grace: Duration) -> JoinHandle<io::Result<i32>> {
        let handle = self.clone();
        greenio_runtime::spawn(move || {
            let sig = signals.recv()?;
            log::info!("greenio: signal {sig}, stopping the server");
            handle.stop(grace);
            Ok(sig)
        })
    }

    /// Whether [`stop`](Self::stop) was called (or an acceptor failed).
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let s = greenio::net::Server::bind("127.0.0.1:0", |_c, _p| {}).unwrap();
    ///     assert!(!s.handle().is_stopping());
    /// });
    /// ```
    pub fn is_stopping(&self) -> bool {
        self.shared.lock().stopping
    }

    /// Connections being served now (green threads running a handler).
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let s = greenio::net::Server::bind("127.0.0.1:0", |_c, _p| {}).unwrap();
    ///     assert_eq!(s.handle().connections(), 0);
    /// });
    /// ```
    pub fn connections(&self) -> usize {
        self.shared
            .lock()
            .conns
            .values()
            .filter(|h| h.is_some())
            .count()
    }

    /// Connections accepted since the server started.
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let s = greenio::net::Server::bind("127.0.0.1:0", |_c, _p| {}).unwrap();
    ///     assert_eq!(s.handle().accepted(), 0);
    /// });
    /// ```
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// `accept` calls that failed so far (out of descriptors, aborted
    /// handshakes...). Each is logged; the server keeps accepting.
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let s = greenio::net::Server::bind("127.0.0.1:0", |_c, _p| {}).unwrap();
    ///     assert_eq!(s.handle().accept_errors(), 0);
    /// });
    /// ```
    pub fn accept_errors(&self) -> u64 {
        self.shared.accept_errors.load(Ordering::Relaxed)
    }
}

impl Server {
    /// Binds `addr` and makes a server with the default configuration
    /// (`Server::builder().bind(addr, handler)`).
    ///
    /// # Errors
    ///
    /// The error of resolving or binding `addr`.
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let s = greenio::net::Server::bind("127.0.0.1:0", |_conn, _peer| {}).unwrap();
    ///     assert!(s.local_addr().unwrap().ip().is_loopback());
    /// });
    /// ```
    #[track_caller]
    pub fn bind<A, F>(addr: A, handler: F) -> io::Result<Server>
    where
        A: ToSocketAddrs,
        F: Fn(TcpStream, SocketAddr) + Send + Sync + 'static,
    {
        ServerBuilder::new().bind(addr, handler)
    }

    /// A builder for a configured server.
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let s = greenio::net::Server::builder()
    ///         .max_connections(2)
    ///         .bind("127.0.0.1:0", |_conn, _peer| {})
    ///         .unwrap();
    ///     # let _ = s;
    /// });
    /// ```
    pub fn builder() -> ServerBuilder {
        ServerBuilder::new()
    }

    /// The address the server listens on (with the port the system chose
    /// when bound to port 0).
    ///
    /// # Errors
    ///
    /// The error of `getsockname`.
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let s = greenio::net::Server::bind("127.0.0.1:0", |_c, _p| {}).unwrap();
    ///     assert_ne!(s.local_addr().unwrap().port(), 0);
    /// });
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle to stop the server and read its counters.
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let s = greenio::net::Server::bind("127.0.0.1:0", |_c, _p| {}).unwrap();
    ///     let h = s.handle();
    ///     assert!(!h.is_stopping());
    /// });
    /// ```
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves until [`ServerHandle::stop`]: starts the acceptors (see the
    /// [module docs](self)), parks the calling green thread, and after a
    /// stop, drains and cancels the connections, then returns.
    ///
    /// # Errors
    ///
    /// [`Misuse::OutsideRuntime`] outside a runtime; if an acceptor green
    /// thread cannot be spawned or a `SO_REUSEPORT` listener cannot be
    /// bound for another hub; or the
    /// `accept` error that stopped the server (one that retrying cannot
    /// fix, e.g. `EBADF`): the server then stops accepting, lets running
    /// connections finish (or be cancelled at a `stop` deadline), and
    /// returns it.
    ///
    /// # Panics
    ///
    /// Panics outside a green thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::Server;
    /// use std::time::Duration;
    /// greenio::run(|| {
    ///     let server = Server::bind("127.0.0.1:0", |_c, _p| {}).unwrap();
    ///     let h = server.handle();
    ///     greenio::spawn(move || {
    ///         greenio::sleep(Duration::from_millis(10));
    ///         h.stop(Duration::from_secs(1));
    ///     });
    ///     server.serve().unwrap();
    /// });
    /// ```
    pub fn serve(self) -> io::Result<()> {
        let runtime_hubs = greenio_runtime::hub_count();
        if runtime_hubs == 0 {
            return Err(Misuse::OutsideRuntime.into());
        }
        let Server {
            listener,
            handler,
            shared,
            config,
            site,
        } = self;
        let hubs = config.hubs.unwrap_or(runtime_hubs).min(runtime_hubs);
        let here = greenio_runtime::current().hub();
        let prefix: Arc<str> = config.name.clone().unwrap_or_else(|| Arc::from("conn"));

        // Cancels whatever was started if `serve` unwinds (its own green
        // thread cancelled) or returns early.
        let mut running = Running {
            shared: shared.clone(),
            acceptors: Vec::new(),
        };

        let mut acceptors: Vec<(usize, TcpListener, Vec<usize>)> = Vec::new();
        if config.reuse_port && hubs > 1 {
            let addr = listener.local_addr()?;
            acceptors.push((here, listener, vec![here]));
            for hub in (0..hubs).filter(|&h| h != here) {
                let l = TcpListener::from_std(sys::bind_reuse_port(addr, BACKLOG)?)?;
                acceptors.push((hub, l, vec![hub]));
            }
        } else {
            // Start dealing with the hub after ours: hub 0 usually also
            // runs `main` and the signal handling.
            let order: Vec<usize> = (1..=hubs).map(|i| (here + i) % hubs).collect();
            acceptors.push((here, listener, order));
        }

        for (hub, listener, targets) in acceptors {
            let acc = Acceptor {
                shared: shared.clone(),
                handler: handler.clone(),
                prefix: prefix.clone(),
                stack_size: config.stack_size,
                targets,
                site,
            };
            let h = Builder::new()
                .name(format!("{prefix} acceptor"))
                .spawn_site(site)
                .spawn_on(hub, move || acc.run(listener))?;
            running.acceptors.push(h);
        }

        // Park until a stop is requested.
        loop {
            let w = Waiter::prepare();
            {
                let mut st = shared.lock();
                if st.stopping {
                    w.cancel();
                    break;
                }
                st.serve_waiter = Some(w.clone());
            }
            w.wait(None, WaitReason::sync("server: serving"));
        }

        // Stop accepting: the acceptors unwind from `accept` and close
        // their listeners.
        for a in running.acceptors.drain(..) {
            a.cancel();
            let _ = a.join();
        }

        // Drain until the table is empty or the deadline passes.
        loop {
            let w = Waiter::prepare();
            let deadline = {
                let mut st = shared.lock();
                if st.conns.is_empty() {
                    w.cancel();
                    break;
                }
                if st.deadline.is_some_and(|d| Instant::now() >= d) {
                    w.cancel();
                    break;
                }
                st.serve_waiter = Some(w.clone());
                st.deadline
            };
            w.wait(deadline, WaitReason::sync("server: draining"));
        }

        cancel_connections(&shared);
        let fatal = shared.lock().fatal.take();
        match fatal {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Cancels every connection still in the table and joins them.
fn cancel_connections(shared: &ServerCore) {
    let left: Vec<JoinHandle<()>> = {
        let mut st = shared.lock();
        st.conns.drain().filter_map(|(_, h)| h).collect()
    };
    if !left.is_empty() {
        log::info!(
            "greenio: server stop deadline passed; cancelling {} connection(s)",
            left.len()
        );
    }
    for h in &left {
        h.cancel();
    }
    for h in left {
        let _ = h.join();
    }
}

/// What `serve` started; cancelled on drop (when `serve` unwinds).
struct Running {
    shared: Arc<ServerCore>,
    acceptors: Vec<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.acceptors.is_empty() {
            return;
        }
        // `serve` did not get to its own shutdown (it was cancelled or
        // failed to start an acceptor): stop everything now.
        self.shared.request_stop(Some(Instant::now()), None);
        for a in &self.acceptors {
            a.cancel();
        }
        if !std::thread::panicking() {
            for a in self.acceptors.drain(..) {
                let _ = a.join();
            }
            cancel_connections(&self.shared);
        } else {
            let st = self.shared.lock();
            for h in st.conns.values().flatten() {
                h.cancel();
            }
        }
    }
}

/// One accept loop: its listener, and the hubs it deals connections to.
struct Acceptor {
    shared: Arc<ServerCore>,
    handler: Handler,
    prefix: Arc<str>,
    stack_size: Option<usize>,
    /// Hubs to spawn connections on, in turn.
    targets: Vec<usize>,
    /// The server's creation site, recorded on each connection.
    site: &'static Location<'static>,
}

impl Acceptor {
    fn run(self, listener: TcpListener) {
        let mut backoff = Backoff::new();
        let mut failing_since: Option<(Instant, u64)> = None;
        let mut next = 0;
        loop {
            let mut slot = self.shared.reserve();
            let accepted = listener.accept();
            let (stream, peer) = match accepted {
                Ok(c) => c,
                Err(e) => {
                    self.shared.accept_errors.fetch_add(1, Ordering::Relaxed);
                    drop(slot);
                    match classify(&e) {
                        AcceptError::Retry => {
                            log::debug!("greenio: accept: {e}; retrying");
                            continue;
                        }
                        AcceptError::BackOff => {
                            match &mut failing_since {
                                None => {
                                    log::warn!(
                                        "greenio: accept: {e}; backing off (up to {} ms between tries) until it clears",
                                        Backoff::MAX.as_millis()
                                    );
                                    failing_since = Some((Instant::now(), 1));
                                }
                                Some((_, n)) => *n += 1,
                            }
                            greenio_runtime::sleep(backoff.next_sleep());
                            continue;
                        }
                        AcceptError::Fatal => {
                            log::error!("greenio: accept failed, server stopping: {e}");
                            self.shared.request_stop(None, Some(e));
                            return;
                        }
                    }
                }
            };
            if let Some((since, n)) = failing_since.take() {
                log::warn!(
                    "greenio: accept recovered after {n} failure(s) in {:?}",
                    since.elapsed()
                );
            }
            backoff.reset();
            self.shared.accepted.fetch_add(1, Ordering::Relaxed);

            let Some(id) = slot.id.take() else {
                continue;
            };
            let hub = self.targets[next % self.targets.len()];
            next = next.wrapping_add(1);
            let guard = ConnGuard {
                shared: self.shared.clone(),
                id,
            };
            let handler = self.handler.clone();
            let mut b = Builder::new()
                .name(format!("{} {peer}", self.prefix))
                .spawn_site(self.site);
            if let Some(s) = self.stack_size {
                b = b.stack_size(s);
            }
            let spawned = b.spawn_on(hub, move || {
                let _guard = guard;
                handler(stream, peer);
            });
            match spawned {
                Ok(h) => {
                    let mut st = self.shared.lock();
                    if let Some(entry) = st.conns.get_mut(&id) {
                        *entry = Some(h);
                    }
                }
                Err(e) => {
                    // The closure (stream, guard) was dropped: the
                    // connection is closed and its slot freed. Usually out
                    // of memory or mappings: back off like EMFILE.
                    log::warn!("greenio: cannot spawn a connection green thread: {e}");
                    greenio_runtime::sleep(backoff.next_sleep());
                }
            }
        }
    }
}
