//! The handler-independent half of a connection: the socket, its state
//! flags, the output queue, and every syscall and state change that a
//! [`Context`](super::Context) or [`Handle`](super::Handle) makes. The
//! handler-dependent half, the run that calls the handler, is in
//! `dispatcher.rs`.
//!
//! All of it is touched only on the hub's thread. The flags are one
//! `Cell<u32>` ([`ConnCore::flags`]); each is documented with who sets and
//! clears it. The socket and the output queue sit in one `RefCell` ([`Io`])
//! borrowed for one syscall or one queue operation at a time, never while
//! user code (a handler, a producer) runs.
//!
//! Readiness is not among the flags: whether a read or a write may not
//! block, and whether the peer closed or the socket has an error, is the
//! readiness cache of the connection's [`Registration`], which the hub
//! updates from each event before it calls us. Every syscall goes through
//! [`ReadyCache::try_once`], which keeps that cache (`WouldBlock` and the
//! short-transfer rule clear it), so the connection has nothing to track.
//! A run looks the cache up once ([`Registration::with_cache`]) and lends
//! it to every step and to the handler's [`Context`](super::Context); a
//! [`Handle`](super::Handle), used outside runs, looks it up per call.

use std::cell::{Cell, RefCell};
use std::io::{self, ErrorKind};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::rc::{Rc, Weak};
use std::time::Duration;

use greenio_runtime::io::{Ready, ReadyCache, Registration};
use mio::net::TcpStream;

use super::dispatcher::Channel;
use super::listener::Tracker;
use super::producer::{Next, Output, Producer};
use crate::sys;

// ----- tuning ---------------------------------------------------------------
//
// Private on purpose: they are the reactor's fairness and memory rules, not
// settings a handler needs. The two a handler may want to change have
// per-connection setters (`Context::set_output_limit`, `set_high_water`),
// whose docs give these defaults.

/// Bytes one run of a connection reads before it yields to other work: a
/// handler's recv loop ends (`WouldBlock`) after this much in one run and
/// is called again after other connections had their turn.
pub(super) const READ_BUDGET: usize = 256 * 1024;
/// Bytes one run of a connection writes from its output queue before it
/// yields to other work (a 10 MB producer reply goes out in runs of at most
/// this much).
pub(super) const WRITE_BUDGET: usize = 256 * 1024;
/// Default output limit: pushed bytes a connection may hold unsent (1 MiB).
pub(super) const DEFAULT_OUTPUT_LIMIT: usize = 1 << 20;
/// Default high-water mark: reading pauses while more than this is waiting
/// to be sent (64 KiB).
pub(super) const DEFAULT_HIGH_WATER: usize = 64 * 1024;
/// How long a gracefully closed connection waits for the peer's EOF.
pub(super) const LINGER: Duration = Duration::from_secs(2);

/// Producer calls per run before it yields (guards against producers that
/// return empty chunks forever).
pub(super) const PULL_BUDGET: u32 = 256;
/// Bytes a lingering connection discards per run before giving up on the
/// peer and closing.
pub(super) const LINGER_DISCARD: usize = 64 * 1024;

// ----- state flags ----------------------------------------------------------
//
// One `Cell<u32>` per connection. Set and cleared only on the hub thread.

/// Outgoing connect not yet confirmed.
pub(super) const CONNECTING: u32 = 1 << 0;
/// Connected, `handle_connect` not yet called.
pub(super) const FRESH: u32 = 1 << 1;
/// The handler paused reading.
pub(super) const PAUSED: u32 = 1 << 2;
/// Call `handle_read` once reading is allowed again, readable or not (the
/// handler may hold buffered input).
pub(super) const MISSED: u32 = 1 << 3;
/// `recv` returned data during the current `handle_read` call.
pub(super) const PROGRESS: u32 = 1 << 4;
/// `recv` returned 0: the peer sent everything.
pub(super) const EOF: u32 = 1 << 5;
/// `handle_eof` was called.
pub(super) const EOF_SEEN: u32 = 1 << 6;
/// Graceful close requested: no more reads or pushes; close when the
/// output queue is empty.
pub(super) const CLOSING: u32 = 1 << 7;
/// The handler's life is over: socket closed (or lingering), no reads or
/// writes through the handler any more.
pub(super) const CLOSED: u32 = 1 << 8;
/// `handle_error`/`handle_close` still to be delivered.
pub(super) const NOTIFY: u32 = 1 << 9;
/// `handle_close` delivery has started (never delivered twice).
pub(super) const NOTIFIED: u32 = 1 << 10;
/// The handler has been dropped.
pub(super) const DONE: u32 = 1 << 11;
/// Inside `run`: the handler is borrowed.
pub(super) const BUSY: u32 = 1 << 12;
/// A scheduled run is pending.
pub(super) const SCHEDULED: u32 = 1 << 13;
/// A budget ran out: run again after the next poll.
pub(super) const MORE: u32 = 1 << 14;
/// Shut down for writing, discarding input until the peer's EOF.
pub(super) const LINGER_ON: u32 = 1 << 15;
/// The output queue is not empty. Mirrors `io.out` (see `ConnCore::sync_out`)
/// so that the per-message path reads flags instead of borrowing the queue.
pub(super) const QUEUED: u32 = 1 << 16;
/// More than the high-water mark waits in the output queue: reading pauses.
/// Mirrors `io.out` like `QUEUED`.
pub(super) const OVER: u32 = 1 << 17;

/// The socket side of a connection. Borrowed only for one syscall or queue
/// operation at a time, never while user code runs.
pub(super) struct Io {
    /// The socket; `None` once closed.
    pub(super) sock: Option<TcpStream>,
    /// The output FIFO.
    pub(super) out: Output,
}

/// The handler-independent state of a connection. Touched only on its hub's
/// thread.
pub(crate) struct ConnCore {
    /// This connection as a type-erased channel, for scheduling runs and
    /// making handles.
    pub(super) me: Weak<dyn Channel>,
    /// The `CONNECTING`..`OVER` flags above.
    pub(super) flags: Cell<u32>,
    /// Socket and output queue.
    pub(super) io: RefCell<Io>,
    /// The socket's registration with the hub: the readiness cache, and our
    /// callback until the connection closes (`teardown` removes it, which
    /// breaks the cycle connection -> registration -> callback ->
    /// connection). Kept for the connection's life, so that a run may use
    /// its cache to the end even if the connection closes meanwhile; the
    /// hub's slot is released when the connection is dropped.
    pub(super) reg: Registration,
    /// The error to report to `handle_error` (the first one wins).
    pub(super) error: RefCell<Option<io::Error>>,
    /// Reading pauses while more than this waits to be sent.
    pub(super) high_water: Cell<usize>,
    /// A push beyond this many unsent pushed bytes closes the connection.
    pub(super) limit: Cell<usize>,
    /// Bytes this run may still read.
    pub(super) read_left: Cell<usize>,
    /// Bytes this run may still write from the queue.
    pub(super) write_left: Cell<usize>,
    /// Producer calls this run may still make.
    pub(super) pulls_left: Cell<u32>,
    /// The listener's set of live connections, if accepted by one.
    pub(super) tracker: Option<Rc<Tracker>>,
}

impl ConnCore {
    #[inline]
    pub(super) fn has(&self, bits: u32) -> bool {
        self.flags.get() & bits != 0
    }

    #[inline]
    pub(super) fn set(&self, bits: u32) {
        self.flags.set(self.flags.get() | bits);
    }

    #[inline]
    pub(super) fn clear(&self, bits: u32) {
        self.flags.set(self.flags.get() & !bits);
    }

    /// A short description for logs: the peer's address, or "closed".
    pub(super) fn describe(&self) -> String {
        match self.with_sock(|s| s.peer_addr()) {
            Ok(a) => a.to_string(),
            Err(_) => "(closed)".to_string(),
        }
    }

    pub(super) fn with_sock<R>(
        &self,
        f: impl FnOnce(&TcpStream) -> io::Result<R>,
    ) -> io::Result<R> {
        match self.io.borrow().sock.as_ref() {
            Some(s) => f(s),
            None => Err(ErrorKind::NotConnected.into()),
        }
    }

    pub(super) fn output_len(&self) -> usize {
        self.io.borrow().out.buffered()
    }

    #[inline]
    pub(super) fn out_is_empty(&self) -> bool {
        !self.has(QUEUED)
    }

    /// Refreshes the `QUEUED` and `OVER` flags after `out` changed.
    #[inline]
    pub(super) fn sync_out(&self, out: &Output) {
        let mut f = self.flags.get() & !(QUEUED | OVER);
        if !out.is_empty() {
            f |= QUEUED;
            if out.buffered() > self.high_water.get() {
                f |= OVER;
            }
        }
        self.flags.set(f);
    }

    /// Whether `handle_read` may be called (and `recv` may read) now.
    #[inline]
    pub(super) fn may_read(&self) -> bool {
        !self.has(PAUSED | CLOSING | CLOSED | EOF | CONNECTING | FRESH | OVER)
    }

    /// Runs `f` with the readiness cache looked up through the
    /// registration: for calls made outside a run, which has none to lend.
    ///
    /// # Errors
    ///
    /// [`Misuse::OtherHub`](greenio_runtime::Misuse::OtherHub) off the
    /// connection's hub (a [`Handle`](super::Handle) used there).
    pub(super) fn with_cache<R>(&self, f: impl FnOnce(&ReadyCache<'_>) -> R) -> io::Result<R> {
        self.reg.with_cache(f)
    }

    #[inline]
    pub(super) fn recv(&self, c: &ReadyCache<'_>, buf: &mut [u8]) -> io::Result<usize> {
        let f = self.flags.get();
        if f & EOF != 0 {
            return Ok(0);
        }
        if f & (CLOSING | CLOSED) != 0 {
            return Err(ErrorKind::NotConnected.into());
        }
        if !c.readiness().intersects(Ready::READABLE) || buf.is_empty() {
            return Err(ErrorKind::WouldBlock.into());
        }
        if !self.may_read() {
            // Refused (paused, or output over the high-water mark): call
            // handle_read again once reading is allowed, even if no new edge
            // comes (the data is already in the socket).
            self.set(MISSED);
            return Err(ErrorKind::WouldBlock.into());
        }
        let left = self.read_left.get();
        if left == 0 {
            self.set(MORE);
            return Err(ErrorKind::WouldBlock.into());
        }
        let want = buf.len().min(left);
        // A short read drained the receive queue and clears READABLE (the
        // next byte to arrive raises a new edge), unless the hub saw the
        // peer's FIN.
        let r = match self.io.borrow_mut().sock.as_mut() {
            Some(s) => c.try_once(Ready::READABLE, Some(want), || {
                sys::recv(s.as_raw_fd(), &mut buf[..want])
            }),
            None => Err(ErrorKind::NotConnected.into()),
        };
        match r {
            Ok(0) => {
                self.set(EOF);
                Ok(0)
            }
            Ok(n) => {
                self.read_left.set(left - n);
                self.set(PROGRESS);
                Ok(n)
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => Err(e),
            Err(e) => Err(self.fail_copy(e)),
        }
    }

    pub(super) fn push(&self, c: &ReadyCache<'_>, data: &[u8]) -> io::Result<()> {
        if self.has(CLOSING | CLOSED) {
            return Err(ErrorKind::NotConnected.into());
        }
        if data.is_empty() {
            return Ok(());
        }
        let mut rest = data;
        if !self.has(CONNECTING | QUEUED) {
            // Nothing queued: write at once if the cache says writable (no
            // syscall otherwise). A short write filled the send buffer and
            // clears WRITABLE.
            let r = match self.io.borrow_mut().sock.as_mut() {
                Some(s) => c.try_once(Ready::WRITABLE, Some(rest.len()), || {
                    sys::send(s.as_raw_fd(), rest)
                }),
                None => return Err(ErrorKind::NotConnected.into()),
            };
            match r {
                Ok(n) if n == rest.len() => return Ok(()),
                Ok(0) => return Err(self.fail_copy(ErrorKind::WriteZero.into())),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(self.fail_copy(e)),
            }
        }
        let r = {
            let mut io = self.io.borrow_mut();
            if io.sock.is_none() {
                return Err(ErrorKind::NotConnected.into());
            }
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
                self.sync_out(&io.out);
                Ok(())
            }
        };
        r.map_err(|e| self.fail_copy(e))
    }

    /// Closes the connection on `err` (see [`fail`](Self::fail)); returns a
    /// copy for the caller.
    fn fail_copy(&self, err: io::Error) -> io::Error {
        let copy = copy_error(&err);
        self.fail(err);
        copy
    }

    pub(super) fn push_producer(&self, p: Box<dyn Producer>) -> io::Result<()> {
        if self.has(CLOSING | CLOSED) {
            return Err(ErrorKind::NotConnected.into());
        }
        {
            let mut io = self.io.borrow_mut();
            io.out.push_producer(p);
            self.sync_out(&io.out);
        }
        // In a run (BUSY) the run's write step sends it; otherwise a run is
        // scheduled if the socket may take it now.
        if !self.has(BUSY) && self.reg.readiness().intersects(Ready::WRITABLE) {
            self.schedule();
        }
        Ok(())
    }

    pub(super) fn close(&self) {
        if self.has(CLOSING | CLOSED) {
            return;
        }
        self.set(CLOSING);
        if !self.has(BUSY) {
            self.schedule();
        }
    }

    pub(super) fn abort(&self) {
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

    pub(super) fn fail(&self, err: io::Error) {
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

    pub(super) fn pause_reading(&self) {
        self.set(PAUSED);
    }

    pub(super) fn resume_reading(&self) {
        if self.has(PAUSED) {
            self.clear(PAUSED);
            self.set(MISSED);
            if !self.has(BUSY) {
                self.schedule();
            }
        }
    }

    /// Closes the socket now, removes the hub's callback and forgets the
    /// output queue. The socket and the queue are taken out under one short
    /// borrow and dropped after it: producers are user code. The callback
    /// is dropped by `set_callback`, outside any borrow of ours.
    pub(super) fn teardown(&self) {
        self.set(CLOSED);
        self.clear(LINGER_ON | QUEUED | OVER);
        // Off the hub there is no callback to remove (it was dropped with
        // the hub's table): nothing to do about the error.
        let _ = self.reg.set_callback(None);
        let (sock, out) = {
            let mut io = self.io.borrow_mut();
            (io.sock.take(), io.out.take())
        };
        drop(sock);
        drop(out);
    }

    /// Graceful close, output sent: shut down our side and linger for the
    /// peer's EOF so that it reads everything before it sees a reset.
    pub(super) fn finish_close(&self, c: &ReadyCache<'_>) {
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
        self.linger_drain(c);
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
    pub(super) fn linger_drain(&self, c: &ReadyCache<'_>) {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        // A short read clears READABLE unless the hub saw the peer's FIN, so
        // the next turn returns `WouldBlock` without a syscall.
        loop {
            let r = match self.io.borrow_mut().sock.as_mut() {
                Some(s) => c.try_once(Ready::READABLE, Some(buf.len()), || {
                    sys::recv(s.as_raw_fd(), &mut buf)
                }),
                None => return, // closed already
            };
            match r {
                Ok(0) => break,
                Ok(n) => {
                    total += n;
                    if total > LINGER_DISCARD {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => break,
            }
        }
        self.teardown();
    }

    /// Checks an outgoing connect: `Ok(true)` once established, `Ok(false)`
    /// while still in progress.
    pub(super) fn finish_connect(&self) -> io::Result<bool> {
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
    /// or this run's budget is used up; `c` is the run's readiness cache.
    pub(super) fn flush(&self, c: &ReadyCache<'_>) -> Flush {
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
                    // A short write filled the send buffer and clears the
                    // cache; so does `WouldBlock`.
                    match c.try_once(Ready::WRITABLE, Some(n), || {
                        sys::send(sock.as_raw_fd(), &pending[..n])
                    }) {
                        Ok(0) => Step::Fail(ErrorKind::WriteZero.into()),
                        Ok(k) => {
                            io.out.consume(k);
                            self.sync_out(&io.out);
                            self.write_left.set(left - k);
                            if k < n {
                                return Flush::Blocked;
                            }
                            Step::Again
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return Flush::Blocked,
                        Err(e) => Step::Fail(e),
                    }
                } else {
                    let next = io.out.next();
                    self.sync_out(&io.out);
                    match next {
                        Next::Empty => return Flush::Drained,
                        Next::Ready => Step::Again,
                        Next::Produce(p) => {
                            let pulls = self.pulls_left.get();
                            if pulls == 0 {
                                drop(io.out.put_back(p, Some(Vec::new())));
                                self.sync_out(&io.out);
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
                    let exhausted = {
                        let mut io = self.io.borrow_mut();
                        let e = io.out.put_back(p, chunk);
                        self.sync_out(&io.out);
                        e
                    };
                    drop(exhausted);
                }
            }
        }
    }

    /// Runs this connection again after the hub's next poll (at most one
    /// such run is pending).
    pub(super) fn schedule(&self) {
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
            me.run();
        });
        if !ok {
            self.clear(SCHEDULED);
        }
    }

    /// Whether this connection needs another run without a new event.
    #[inline]
    pub(super) fn wants_run(&self, c: &ReadyCache<'_>) -> bool {
        let f = self.flags.get();
        if f & (MORE | MISSED | NOTIFY | QUEUED | CLOSING) == 0 {
            return false; // the steady state
        }
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
            || (f & (QUEUED | CONNECTING) == QUEUED && c.readiness().intersects(Ready::WRITABLE))
            || (f & CLOSING != 0 && self.out_is_empty())
    }
}

/// How a flush ended.
pub(super) enum Flush {
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
/// false (and logs) when that is impossible: off the hub (a [`Handle`](super::Handle)
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

impl ConnCore {
    /// A new connection's state, for `sock`, not yet registered.
    pub(super) fn new(
        me: Weak<dyn Channel>,
        flags: u32,
        sock: TcpStream,
        reg: Registration,
        tracker: Option<Rc<Tracker>>,
    ) -> ConnCore {
        ConnCore {
            me,
            flags: Cell::new(flags),
            reg,
            io: RefCell::new(Io {
                sock: Some(sock),
                out: Output::default(),
            }),
            error: RefCell::new(None),
            high_water: Cell::new(DEFAULT_HIGH_WATER),
            limit: Cell::new(DEFAULT_OUTPUT_LIMIT),
            read_left: Cell::new(READ_BUDGET),
            write_left: Cell::new(WRITE_BUDGET),
            pulls_left: Cell::new(PULL_BUDGET),
            tracker,
        }
    }

    /// Resets the per-run budgets.
    #[inline]
    pub(super) fn begin_run(&self) {
        self.read_left.set(READ_BUDGET);
        self.write_left.set(WRITE_BUDGET);
        self.pulls_left.set(PULL_BUDGET);
    }
}
