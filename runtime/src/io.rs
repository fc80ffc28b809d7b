//! Readiness of I/O sources registered with a hub: the bridge between
//! mio's edge-triggered events and parked green threads (or callbacks).
//!
//! # Protocol
//!
//! A source is registered once, for both directions, edge-triggered. The
//! hub keeps a *readiness cache* per source: bits that say "the last
//! syscall did not report `WouldBlock`, or an event arrived since". Socket
//! code does *optimistic I/O*:
//!
//! ```text
//!   loop {
//!       if reg.is_ready(READ) {
//!           match read(fd) {
//!               Ok(n)            => return Ok(n),   // short read on a stream: clear READ
//!               Err(WouldBlock)  => reg.clear(READ),
//!               Err(e)           => return Err(e),
//!           }
//!       }
//!       reg.wait(READ, deadline)?;                   // park until an event sets READ
//!   }
//! ```
//!
//! No edge is ever missed: the bit is cleared only by the green thread after
//! the kernel said there is nothing more, and any data that arrives after
//! that syscall raises a new edge, which the next poll turns back into the
//! bit and a wakeup. A stream read that returned fewer bytes than asked for
//! drained the receive queue, so clearing the bit then saves the
//! `WouldBlock` read that would otherwise follow every message: one `read`
//! and one `write` per echoed message in steady state.
//!
//! Each source has one reader slot and one writer slot (one green thread
//! may read while another writes, e.g. after `try_clone`); further waiters
//! of the same direction queue behind them. Alternatively a *callback* can
//! own the source (the reactor style): it is called from the loop with the
//! readiness bits, outside any green thread.
//!
//! Slots are identified by `(index, generation)` in the mio token, so an
//! event for a closed source whose slot has been reused is ignored.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use mio::event::Source;
use mio::Interest;

use crate::hub::{self, Hub};
use crate::iotable::{attempt, clear_if_open, token, Entry, LocalWaiter};
pub use crate::iotable::{IoCallback, Ready, ReadyCache};
use crate::misuse::Misuse;
use crate::park::WaitReason;
use crate::shared::{HubShared, Msg};
use crate::wait::deadline_after;

/// A source registered with the current hub for both directions,
/// edge-triggered, with a readiness cache and per-direction waiters.
///
/// It is the building block of greenio's sockets; use it to make any mio
/// source (a pipe, a signalfd, a device) park green threads the same way.
///
/// The registration belongs to the hub it was made on: [`wait`](Self::wait)
/// from another hub fails, and dropping it from another thread releases the
/// slot through that hub's inbox. The source's file descriptor is not
/// deregistered on drop: closing it removes it from epoll, and a late event
/// for the old slot is ignored.
///
/// # Examples
///
/// Parking on a pipe:
///
/// ```
/// use greenio::io::{Registration, Ready};
/// use std::io::{Read, Write};
///
/// greenio::run(|| {
///     let (mut tx, mut rx) = mio::unix::pipe::new().unwrap();
///     let reg = Registration::new(&mut rx).unwrap();
///     greenio::spawn(move || {
///         greenio::sleep(std::time::Duration::from_millis(5));
///         tx.write_all(b"hi").unwrap();
///     });
///     let mut buf = [0u8; 8];
///     let n = loop {
///         if reg.readiness().intersects(Ready::READABLE) {
///             match rx.read(&mut buf) {
///                 Ok(n) => break n,
///                 Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
///                     reg.clear_readiness(Ready::READABLE)
///                 }
///                 Err(e) => panic!("{e}"),
///             }
///         }
///         reg.wait(Ready::READABLE, None).unwrap();
///     };
///     assert_eq!(&buf[..n], b"hi");
/// });
/// ```
pub struct Registration {
    hub: Arc<HubShared>,
    index: u32,
    gen: u32,
    /// The entry in the hub's slab; dereferenced only on the hub's thread
    /// while the hub runs, after checking `gen` (see `entry`).
    entry: *const Entry,
}

// SAFETY: `entry` is only dereferenced on the thread of the hub that owns
// it (checked by `entry()` against the current hub), so sending or sharing
// the registration across threads cannot race on the entry's Cells.
unsafe impl Send for Registration {}
// SAFETY: as above: every access to the entry goes through `entry()`.
unsafe impl Sync for Registration {}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("hub", &self.hub.index)
            .field("index", &self.index)
            .field("gen", &self.gen)
            .finish()
    }
}

fn not_on_hub() -> io::Error {
    Misuse::OutsideRuntime.into()
}

fn other_hub(mine: usize, cur: usize) -> io::Error {
    log::debug!(target: "greenio", "source registered on hub {mine} used from hub {cur}");
    Misuse::OtherHub.into()
}

/// What a socket wait in direction `dir` shows in `dump`.
fn io_reason(dir: Ready) -> WaitReason {
    WaitReason::external(if dir.intersects(Ready::READABLE) {
        "socket read"
    } else {
        "socket write"
    })
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "greenio: socket operation timed out",
    )
}

impl Registration {
    /// Registers `source` with the current hub for reading and writing.
    ///
    /// # Errors
    ///
    /// Outside a hub (not inside [`greenio::run`](crate::run)); or the
    /// error of `epoll_ctl`.
    pub fn new<S: Source + ?Sized>(source: &mut S) -> io::Result<Registration> {
        Self::with_interest(source, Interest::READABLE | Interest::WRITABLE)
    }

    /// Registers `source` with the current hub for `interest` only.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn with_interest<S: Source + ?Sized>(
        source: &mut S,
        interest: Interest,
    ) -> io::Result<Registration> {
        hub::with_hub(|hub| {
            let (index, gen, entry) = hub.io.borrow_mut().alloc();
            let r = hub
                .poll_registry()
                .registry()
                .register(source, token(index, gen), interest);
            match r {
                Ok(()) => Ok(Registration {
                    hub: hub.shared.clone(),
                    index,
                    gen,
                    entry,
                }),
                Err(e) => {
                    let cb = hub.io.borrow_mut().release(index, gen);
                    drop(cb);
                    Err(e)
                }
            }
        })
        .unwrap_or_else(|| Err(not_on_hub()))
    }

    /// Whether the calling thread is the hub this source is registered on.
    #[inline]
    pub fn is_local(&self) -> bool {
        hub::with_hub(|h| Arc::ptr_eq(&h.shared, &self.hub)).unwrap_or(false)
    }

    /// The index of the hub this source is registered on.
    pub fn hub_index(&self) -> usize {
        self.hub.index
    }

    /// This registration's entry, if `hub` is the registration's hub and
    /// the entry is still ours.
    #[inline(always)]
    fn entry_on<'a>(&'a self, hub: &Hub) -> Option<&'a Entry> {
        if !Arc::ptr_eq(&hub.shared, &self.hub) {
            return None;
        }
        // SAFETY: `hub` is the owning hub, reached through `with_hub`, so we
        // are on its thread while it runs, and its table chunks (boxed,
        // never moved or freed while the hub lives) are alive; the
        // generation check makes sure the slot is ours. The reference may
        // live as long as `&self`: (1) the slot stays ours while this
        // registration lives (only its drop releases it); (2) the callers
        // use it within their own call on the hub's thread (`with_entry`
        // passes it to its closure, `cache` to the method that asked, or
        // to the closure of `with_cache`), and the hub outlives every call
        // made on it.
        let e = unsafe { &*self.entry };
        (e.live.get() && e.gen.get() == self.gen).then_some(e)
    }

    /// Runs `f` with the hub and this registration's entry, if called on
    /// the registration's hub and the entry is still ours.
    #[inline]
    fn with_entry<R>(&self, f: impl FnOnce(&Hub, &Entry) -> R) -> Option<R> {
        hub::with_hub(|hub| self.entry_on(hub).map(|e| f(hub, e))).flatten()
    }

    /// This registration's readiness cache, as `with_entry` would find
    /// it. Only the check runs inside `with_hub`, so that it inlines into
    /// the hot callers; the cache is used after, in the caller's frame.
    #[inline(always)]
    fn cache(&self) -> Option<ReadyCache<'_>> {
        hub::with_hub(|hub| self.entry_on(hub).map(ReadyCache::new)).flatten()
    }

    /// The cached readiness (empty when called from another hub).
    #[inline]
    pub fn readiness(&self) -> Ready {
        self.with_entry(|_, e| Ready(e.ready.get()))
            .unwrap_or(Ready::EMPTY)
    }

    /// Clears readiness bits after a syscall reported `WouldBlock`.
    #[inline]
    pub fn clear_readiness(&self, r: Ready) {
        self.with_entry(|_, e| e.ready.set(e.ready.get() & !r.0));
    }

    /// After a short read (or write) on a stream, which drained the kernel
    /// queue (or filled it): clears `dir` so the next call parks without a
    /// failing syscall. Keeps it when the hub has already seen a close or
    /// an error on that side, whose edge will not come again.
    #[inline]
    pub fn drained(&self, dir: Ready) {
        self.with_entry(|_, e| clear_if_open(e, dir));
    }

    /// Optimistic I/O in one call: runs `op` while `dir` is cached ready,
    /// clears the bit on `WouldBlock` and parks the green thread until the
    /// hub sees an edge, then tries again. `Interrupted` is retried.
    ///
    /// Returns `None`, without calling `op`, when not called on this
    /// registration's hub (the caller may register anew on the current
    /// hub).
    ///
    /// Each call spends one unit of the green thread's fair budget: after
    /// 128 calls in a row that did not park, it yields once before `op`,
    /// so a source that is always ready cannot starve the hub.
    ///
    /// # Errors
    ///
    /// The error of `op`; `TimedOut` when `timeout` passes while parked;
    /// an error naming `greenio::run` when it would park outside a green
    /// thread.
    #[inline]
    pub fn try_io<R>(
        &self,
        dir: Ready,
        timeout: Option<std::time::Duration>,
        op: impl FnMut() -> io::Result<R>,
    ) -> Option<io::Result<R>> {
        self.try_io_with(dir, timeout, op, |_| false)
    }

    /// [`try_io`](Self::try_io) with a rule for values that drained the
    /// kernel's queue: when `short(&value)` holds (a stream read or write
    /// that moved fewer bytes than asked, but more than zero), `dir` is
    /// cleared as [`drained`](Self::drained) would, in the same lookup,
    /// saving the `WouldBlock` syscall the next call would make.
    ///
    /// # Errors
    ///
    /// As [`try_io`](Self::try_io).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::io::{Ready, Registration};
    /// use std::io::{Read, Write};
    ///
    /// greenio::run(|| {
    ///     let (mut tx, mut rx) = mio::unix::pipe::new().unwrap();
    ///     let reg = Registration::new(&mut rx).unwrap();
    ///     tx.write_all(b"hi").unwrap();
    ///     let mut buf = [0u8; 8];
    ///     let n = reg
    ///         .try_io_with(Ready::READABLE, None, || rx.read(&mut buf), |&n| n > 0 && n < 8)
    ///         .unwrap()
    ///         .unwrap();
    ///     assert_eq!(n, 2);
    ///     // The short read cleared the cache: the next read parks at once.
    ///     assert!(!reg.readiness().intersects(Ready::READABLE));
    /// });
    /// ```
    #[inline(always)]
    pub fn try_io_with<R>(
        &self,
        dir: Ready,
        timeout: Option<std::time::Duration>,
        mut op: impl FnMut() -> io::Result<R>,
        short: impl Fn(&R) -> bool,
    ) -> Option<io::Result<R>> {
        self.with_entry(|hub, e| {
            hub.coop_proceed();
            let mut deadline = None;
            loop {
                if let Some(r) = attempt(e, dir, &mut op, &short) {
                    return r;
                }
                if deadline.is_none() {
                    deadline = timeout.and_then(deadline_after);
                }
                self.park(hub, e, dir, deadline, io_reason(dir))?;
            }
        })
    }

    /// Optimistic I/O that never parks, for callbacks (the reactor style):
    /// runs `op` if `dir` is cached ready; `WouldBlock` from `op` clears
    /// the bit and is returned, as it is when the bit is already clear (no
    /// syscall then). `Interrupted` is retried. With `want = Some(n)` the
    /// call is a stream transfer of `n` bytes and the short-transfer rule of
    /// [`try_io_with`](Self::try_io_with) applies to its `Ok` value.
    ///
    /// # Errors
    ///
    /// The error of `op`; `WouldBlock` when `dir` is not ready;
    /// [`Misuse::OtherHub`] off the
    /// registration's hub.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::io::{Ready, Registration};
    /// use std::io::{ErrorKind, Read};
    ///
    /// greenio::run(|| {
    ///     let (_tx, mut rx) = mio::unix::pipe::new().unwrap();
    ///     let reg = Registration::new(&mut rx).unwrap();
    ///     let mut buf = [0u8; 8];
    ///     // Nothing written: the first call makes the syscall and learns
    ///     // WouldBlock, the second answers from the cache.
    ///     let e = reg.try_once(Ready::READABLE, None, || rx.read(&mut buf)).unwrap_err();
    ///     assert_eq!(e.kind(), ErrorKind::WouldBlock);
    ///     assert!(!reg.readiness().intersects(Ready::READABLE));
    /// });
    /// ```
    #[inline(always)]
    pub fn try_once(
        &self,
        dir: Ready,
        want: Option<usize>,
        op: impl FnMut() -> io::Result<usize>,
    ) -> io::Result<usize> {
        match self.cache() {
            Some(c) => c.try_once(dir, want, op),
            None => Err(Misuse::OtherHub.into()),
        }
    }

    /// Runs `f` with this source's readiness cache, so that several
    /// operations on it ([`ReadyCache::readiness`], [`ReadyCache::try_once`], ...)
    /// cost one lookup of the hub and the registration's entry instead of
    /// one each. For callbacks that ask a question and then act on the
    /// answer, like "readable? then read".
    ///
    /// # Errors
    ///
    /// [`Misuse::OtherHub`] off the
    /// registration's hub (`f` is not called then).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::io::{Ready, Registration};
    /// use std::io::Read;
    ///
    /// greenio::run(|| {
    ///     let (_tx, mut rx) = mio::unix::pipe::new().unwrap();
    ///     let reg = Registration::new(&mut rx).unwrap();
    ///     let mut buf = [0u8; 8];
    ///     let read = reg
    ///         .with_cache(|c| {
    ///             // Not readable: no syscall, and no `WouldBlock` error made.
    ///             let ready = c.readiness().intersects(Ready::READABLE);
    ///             ready.then(|| c.try_once(Ready::READABLE, Some(8), || rx.read(&mut buf)))
    ///         })
    ///         .unwrap();
    ///     // A new registration counts as ready: the pipe was asked, said
    ///     // WouldBlock, and the cache remembers.
    ///     assert!(read.unwrap().is_err());
    ///     assert_eq!(reg.with_cache(|c| c.readiness()).unwrap(), Ready::WRITABLE);
    /// });
    /// ```
    #[inline(always)]
    pub fn with_cache<R>(&self, f: impl FnOnce(&ReadyCache<'_>) -> R) -> io::Result<R> {
        match self.cache() {
            Some(c) => Ok(f(&c)),
            None => Err(Misuse::OtherHub.into()),
        }
    }

    /// Parks until an event for `dir` (or the deadline, or an interrupt).
    #[inline]
    fn park(
        &self,
        hub: &Hub,
        e: &Entry,
        dir: Ready,
        deadline: Option<Instant>,
        reason: WaitReason,
    ) -> io::Result<()> {
        let (slot, seq) = hub
            .local_seq()
            .ok_or_else(|| io::Error::from(Misuse::OutsideGreenThread))?;
        let w = LocalWaiter { slot, seq };
        let primary = if dir.intersects(Ready::READABLE) {
            &e.reader
        } else {
            &e.writer
        };
        match primary.get() {
            Some(p) if p.slot != slot && hub.is_parked_on(p.slot, p.seq) => {
                e.more.borrow_mut().push((dir.0, w));
                e.extra.set(true);
            }
            _ => primary.set(Some(w)),
        }
        hub.park_local(seq, deadline, reason);
        if e.ready.get() & dir.0 == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(timed_out());
        }
        Ok(())
    }

    /// Parks the calling green thread until `dir` (`READABLE` or
    /// `WRITABLE`) is set in the readiness cache, or `deadline` passes.
    /// Returns at once if it is already set.
    ///
    /// # Errors
    ///
    /// `TimedOut` when the deadline passes; `Other` with a message when
    /// called outside a green thread or from another hub than the one the
    /// source is registered on.
    pub fn wait(&self, dir: Ready, deadline: Option<Instant>) -> io::Result<()> {
        self.wait_as(dir, deadline, io_reason(dir))
    }

    /// Like [`wait`](Self::wait) with the reason shown by
    /// [`dump`](crate::dump).
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    pub fn wait_as(
        &self,
        dir: Ready,
        deadline: Option<Instant>,
        reason: WaitReason,
    ) -> io::Result<()> {
        let r = self.with_entry(|hub, e| {
            while e.ready.get() & dir.0 == 0 {
                self.park(hub, e, dir, deadline, reason)?;
            }
            Ok(())
        });
        r.unwrap_or_else(|| {
            Err(match hub::with_hub(|h| h.shared.index) {
                Some(cur) => other_hub(self.hub.index, cur),
                None => not_on_hub(),
            })
        })
    }

    /// Lets `cb` receive this source's events (replacing any previous
    /// callback); `None` removes it. The reactor style uses this.
    ///
    /// # Errors
    ///
    /// `Other` when called from another hub than the registration's.
    pub fn set_callback(&self, cb: Option<IoCallback>) -> io::Result<()> {
        let added = cb.is_some();
        let old = self
            .with_entry(|hub, e| {
                let old = std::mem::replace(&mut *e.callback.borrow_mut(), cb);
                e.extra.set(added || !e.more.borrow().is_empty());
                let mut io = hub.io.borrow_mut();
                io.callbacks = io.callbacks + usize::from(added) - usize::from(old.is_some());
                old
            })
            .ok_or_else(|| io::Error::from(Misuse::OtherHub))?;
        drop(old);
        Ok(())
    }

    /// Removes the source from the hub's poller and releases the slot.
    ///
    /// # Errors
    ///
    /// The error of `epoll_ctl`.
    pub fn deregister<S: Source + ?Sized>(self, source: &mut S) -> io::Result<()> {
        self.hub.registry.deregister(source)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let done = hub::with_hub(|hub| {
            if Arc::ptr_eq(&hub.shared, &self.hub) {
                // A callback may hold the last reference to the source while
                // being dropped here: drop it after the borrow ends.
                let cb = hub.io.borrow_mut().release(self.index, self.gen);
                drop(cb);
                true
            } else {
                false
            }
        })
        .unwrap_or(false);
        if !done {
            self.hub.send(Msg::ReleaseIo {
                index: self.index,
                gen: self.gen,
            });
        }
    }
}
