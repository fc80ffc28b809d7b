//! `Pollable<S>`: one non-blocking mio socket plus its registration with a hub;
//! the loop every socket call of this crate runs through.
//!
//! # Design
//!
//! Each call is *optimistic*: when the hub's readiness cache says the
//! direction may be ready, make the syscall at once; only on `WouldBlock`
//! clear the bit and park in [`Registration::wait`] until the hub sees an
//! edge. A stream read that returned fewer bytes than asked for drained the
//! receive queue, so [`Pollable::do_io_stream`] clears the bit right away and the
//! next read parks without first paying for a `WouldBlock` syscall; the same
//! holds for a short write and a full send buffer. The bit is not cleared
//! when the hub has seen the peer close or an error (`READ_CLOSED`,
//! `WRITE_CLOSED`, `ERROR`): that edge has already been consumed, and the
//! next call must go to the kernel to see the EOF or the error. In steady
//! state an echo therefore costs one `read` and one `write` per message,
//! plus `epoll_wait` calls amortised over every socket of the hub.
//!
//! Registration is *lazy*: a socket may be created outside any hub (before
//! `greenio::run`, or on one hub and moved to another with `spawn_on`); it
//! registers with the hub of the first green thread that would park on it.
//! Used later from another hub, it registers there and deregisters from the
//! old one, so sockets are `Send`. Outside a hub the socket still works for
//! calls that complete at once; a call that would block fails with an error
//! naming `greenio::run`.
//!
//! The registration sits in a `RefCell`: green threads of one hub may share
//! `&socket` (one reads while another writes), each holding a shared borrow
//! while parked; only a move to another hub needs the exclusive borrow,
//! and by then no green thread of the old hub can be parked on it (the
//! value moved, so no borrow of it is alive). The `Cell`s make every socket
//! `!Sync`: to share one socket between hubs, give each hub its own handle
//! with `try_clone`.
//!
//! # Rejected designs
//!
//! * *Register eagerly at creation*: sockets made before `greenio::run`, or
//!   handed to another hub, would be tied to the wrong poller.
//! * *Register through mio's own `Source` impls*: in debug builds mio ties a
//!   source to one registry, so moving between hubs would need the old
//!   registration gone first, losing it if the new one fails. We register
//!   the raw fd (`SourceFd`), which has no such tie.
//! * *Clear readiness only on `WouldBlock`*: correct, but costs one extra
//!   failed syscall per message on every stream.

use std::cell::{Cell, Ref, RefCell};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use greenio_runtime::io::{Ready, Registration};
use mio::unix::SourceFd;

use crate::Misuse;

/// A non-blocking socket `S` that parks green threads until it is ready.
pub(crate) struct Pollable<S: AsRawFd> {
    /// The registration with the hub that last used the socket; `None`
    /// until the first call that needs it. Replaced (exclusive borrow) only
    /// when used from another hub.
    reg: RefCell<Option<Registration>>,
    /// Per-call limit of reads (`set_read_timeout`); `None` waits forever.
    read_timeout: Cell<Option<Duration>>,
    /// Per-call limit of writes and connects.
    write_timeout: Cell<Option<Duration>>,
    /// Set once `try_clone` made another descriptor for the same socket:
    /// closing ours then no longer removes the epoll entry (epoll tracks the
    /// open file description), so `Drop` deregisters explicitly.
    duplicated: Cell<bool>,
    /// The socket itself, in non-blocking mode. Declared last: dropped (and
    /// closed) after the registration is released.
    io: S,
}

impl<S: AsRawFd> Pollable<S> {
    /// Wraps a socket that is already in non-blocking mode.
    pub(crate) fn new(io: S) -> Pollable<S> {
        Pollable {
            reg: RefCell::new(None),
            read_timeout: Cell::new(None),
            write_timeout: Cell::new(None),
            duplicated: Cell::new(false),
            io,
        }
    }

    /// The wrapped socket.
    #[inline]
    pub(crate) fn get_ref(&self) -> &S {
        &self.io
    }

    /// The raw descriptor.
    #[inline]
    pub(crate) fn fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }

    /// Makes a second handle on a duplicate descriptor `io` (from
    /// `try_clone`), copying the timeouts; it registers on its own.
    pub(crate) fn duplicate(&self, io: S) -> Pollable<S> {
        self.duplicated.set(true);
        let a = Pollable::new(io);
        a.duplicated.set(true);
        a.read_timeout.set(self.read_timeout.get());
        a.write_timeout.set(self.write_timeout.get());
        a
    }

    /// Deregisters and returns the socket (for `into_raw_fd`/`into_std`).
    pub(crate) fn into_inner(self) -> S {
        self.duplicated.set(true); // the fd lives on: remove it from epoll
        let mut this = std::mem::ManuallyDrop::new(self);
        this.release();
        // SAFETY: `this` is never used or dropped again: `io` is moved out
        // exactly once, and the other fields (registration already taken,
        // Cells) need no drop.
        unsafe { std::ptr::read(&this.io) }
    }

    pub(crate) fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout.get()
    }

    pub(crate) fn write_timeout(&self) -> Option<Duration> {
        self.write_timeout.get()
    }

    /// Sets a timeout; `Some(0)` is rejected like std does.
    pub(crate) fn set_timeout(&self, dir: Ready, t: Option<Duration>) -> io::Result<()> {
        if t == Some(Duration::ZERO) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        if dir == Ready::READABLE {
            self.read_timeout.set(t);
        } else {
            self.write_timeout.set(t);
        }
        Ok(())
    }

    /// The registration with the current hub: registers on first use, or
    /// moves from the hub it was registered with before.
    ///
    /// # Errors
    ///
    /// Outside a runtime, [`Misuse::OutsideRuntime`] (the message names
    /// `greenio::run`); [`Misuse::OtherHub`] if another handle on this hub
    /// is parked on the socket while it is used from a new hub (impossible
    /// through the safe API); or `epoll_ctl` failing.
    #[inline]
    pub(crate) fn registration(&self) -> io::Result<Ref<'_, Registration>> {
        let current = Ref::filter_map(self.reg.borrow(), |r| r.as_ref().filter(|r| r.is_local()));
        match current {
            Ok(r) => Ok(r),
            Err(unregistered) => {
                drop(unregistered);
                self.register()?;
                Ref::filter_map(self.reg.borrow(), Option::as_ref)
                    .map_err(|_| io::Error::other("greenio: socket registration vanished"))
            }
        }
    }

    #[cold]
    fn register(&self) -> io::Result<()> {
        if greenio_runtime::hub_count() == 0 {
            return Err(Misuse::OutsideRuntime.into());
        }
        let fd = self.fd();
        let new = Registration::new(&mut SourceFd(&fd))?;
        let mut slot = self
            .reg
            .try_borrow_mut()
            .map_err(|_| io::Error::from(Misuse::OtherHub))?;
        if let Some(old) = slot.replace(new) {
            // Moved from another hub: take it out of that hub's poller. A
            // failure only leaves a stale epoll entry whose events that hub
            // ignores (its slot is released on drop).
            if let Err(e) = old.deregister(&mut SourceFd(&fd)) {
                log::debug!("greenio: deregistering a moved socket: {e}");
            }
        }
        Ok(())
    }

    /// Releases the registration; deregisters the fd when it outlives it.
    fn release(&mut self) {
        if let Some(reg) = self.reg.get_mut().take() {
            if self.duplicated.get() {
                let fd = self.io.as_raw_fd();
                // Errors only mean the entry is already gone.
                let _ = reg.deregister(&mut SourceFd(&fd));
            }
        }
    }

    /// Runs `op` until it does not report `WouldBlock`, parking on `dir`
    /// between attempts; `timeout` bounds the whole call.
    ///
    /// # Errors
    ///
    /// The error of `op`; `TimedOut` when `timeout` passes; outside a hub,
    /// an error naming `greenio::run` if `op` would block.
    #[inline]
    pub(crate) fn do_io<R>(
        &self,
        dir: Ready,
        timeout: Option<Duration>,
        op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        self.do_io_with(dir, timeout, op, |_| false)
    }

    /// [`do_io`](Self::do_io) for a stream read or write of `want` bytes:
    /// a short transfer clears the readiness bit in the same lookup (see
    /// `Registration::try_io_with`), saving a `WouldBlock` syscall on the
    /// next call.
    #[inline]
    pub(crate) fn do_io_stream(
        &self,
        dir: Ready,
        timeout: Option<Duration>,
        want: usize,
        op: impl FnMut(&S) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.do_io_with(dir, timeout, op, |&n| n > 0 && n < want)
    }

    /// The loop behind `do_io` and `do_io_stream`.
    #[inline(always)]
    fn do_io_with<R>(
        &self,
        dir: Ready,
        timeout: Option<Duration>,
        mut op: impl FnMut(&S) -> io::Result<R>,
        short: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        loop {
            if let Ok(reg) = self.reg.try_borrow() {
                if let Some(reg) = reg.as_ref() {
                    if let Some(r) = reg.try_io_with(dir, timeout, || op(&self.io), &short) {
                        return r;
                    }
                }
            }
            // Not registered on this hub yet (first use, or moved here).
            if let Err(e) = self.registration() {
                return Self::without_hub(e, || op(&self.io));
            }
        }
    }

    /// Outside a hub: try once; `WouldBlock` becomes `no_hub`.
    #[cold]
    fn without_hub<R>(no_hub: io::Error, op: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(no_hub),
            r => r,
        }
    }

    /// Parks until `dir` is ready or `deadline` passes, without a syscall
    /// (used by connect, which checks the outcome itself).
    pub(crate) fn wait(&self, dir: Ready, deadline: Option<Instant>) -> io::Result<()> {
        self.registration()?.wait(dir, deadline)
    }

    /// Clears `dir` in the readiness cache.
    pub(crate) fn clear(&self, dir: Ready) -> io::Result<()> {
        self.registration()?.clear_readiness(dir);
        Ok(())
    }
}

impl<S: AsRawFd> Drop for Pollable<S> {
    fn drop(&mut self) {
        self.release();
    }
}

impl<S: AsRawFd + fmt::Debug> fmt::Debug for Pollable<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.fmt(f)
    }
}

/// Ends a non-blocking connect: parks until the socket is writable, then
/// reads `SO_ERROR`; `connected` tells whether the handshake finished
/// (`peer_addr` succeeds). The "writable" bit of a fresh registration is
/// cleared first: only an edge after the connect syscall means anything.
pub(crate) fn finish_connect<S: AsRawFd>(
    a: &Pollable<S>,
    deadline: Option<Instant>,
    take_error: impl Fn(&S) -> io::Result<Option<io::Error>>,
    connected: impl Fn(&S) -> io::Result<bool>,
) -> io::Result<()> {
    a.clear(Ready::WRITABLE)?;
    loop {
        a.wait(Ready::WRITABLE, deadline)?;
        if let Some(e) = take_error(a.get_ref())? {
            return Err(e);
        }
        if connected(a.get_ref())? {
            return Ok(());
        }
        a.clear(Ready::WRITABLE)?;
    }
}

/// Whether `e` says "not connected yet" (the handshake is still running).
pub(crate) fn is_not_connected(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotConnected || e.raw_os_error() == Some(libc::EINPROGRESS)
}

/// The deadline `timeout` from now (see `greenio::wait::deadline_after`).
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(greenio_runtime::wait::deadline_after)
}
