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

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use mio::event::{Event, Source};
use mio::{Interest, Token};

use crate::hub::{self, Hub, HubShared, Msg};
use crate::wait::WaitReason;

/// Readiness bits of a registered source.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Ready(u8);

impl Ready {
    /// Nothing.
    pub const EMPTY: Ready = Ready(0);
    /// Readable, or read side closed, or error: a read will not block.
    pub const READABLE: Ready = Ready(1);
    /// Writable, or write side closed, or error: a write will not block.
    pub const WRITABLE: Ready = Ready(2);
    /// The peer closed its write side (EOF) or the socket hung up.
    pub const READ_CLOSED: Ready = Ready(4);
    /// Our write side is closed (peer reset, or shutdown).
    pub const WRITE_CLOSED: Ready = Ready(8);
    /// The socket has a pending error (`take_error`).
    pub const ERROR: Ready = Ready(16);
    /// Both directions.
    pub const ALL: Ready = Ready(1 | 2);

    /// Whether any bit of `other` is set in `self`.
    pub fn intersects(self, other: Ready) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether every bit of `other` is set in `self`.
    pub fn contains(self, other: Ready) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn from_event(ev: &Event) -> Ready {
        let mut r = 0;
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            r |= 1;
        }
        if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
            r |= 2;
        }
        if ev.is_read_closed() {
            r |= 4;
        }
        if ev.is_write_closed() {
            r |= 8;
        }
        if ev.is_error() {
            r |= 16;
        }
        Ready(r)
    }
}

impl std::ops::BitOr for Ready {
    type Output = Ready;
    fn bitor(self, rhs: Ready) -> Ready {
        Ready(self.0 | rhs.0)
    }
}

impl fmt::Debug for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            "READABLE",
            "WRITABLE",
            "READ_CLOSED",
            "WRITE_CLOSED",
            "ERROR",
        ];
        let set: Vec<&str> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect();
        write!(f, "Ready({})", set.join(" | "))
    }
}

/// A callback that owns a source's events (the reactor style). Called on
/// the hub's thread, outside any green thread, with the new readiness.
pub type IoCallback = Rc<dyn Fn(Ready)>;

#[derive(Clone, Copy)]
pub(crate) struct LocalWaiter {
    slot: u32,
    seq: u64,
}

const CHUNK: usize = 64;

/// One registered source. Cells only: the hub's loop and the green threads
/// of the same hub touch it, never at the same time.
pub(crate) struct Entry {
    gen: Cell<u32>,
    live: Cell<bool>,
    ready: Cell<u8>,
    reader: Cell<Option<LocalWaiter>>,
    writer: Cell<Option<LocalWaiter>>,
    /// Waiters beyond the first of each direction: (direction bit, waiter).
    more: RefCell<Vec<(u8, LocalWaiter)>>,
    callback: RefCell<Option<IoCallback>>,
}

impl Entry {
    fn empty() -> Entry {
        Entry {
            gen: Cell::new(0),
            live: Cell::new(false),
            ready: Cell::new(0),
            reader: Cell::new(None),
            writer: Cell::new(None),
            more: RefCell::new(Vec::new()),
            callback: RefCell::new(None),
        }
    }
}

/// The hub's table of registered sources, in chunks that never move (a
/// registration keeps a pointer to its entry).
#[derive(Default)]
pub(crate) struct IoSlab {
    chunks: Vec<Box<[Entry; CHUNK]>>,
    free: Vec<u32>,
    live: usize,
    /// Live entries with a callback: events may still run code that wakes
    /// green threads, so the hub is not deadlocked while this is non-zero.
    callbacks: usize,
}

impl IoSlab {
    fn alloc(&mut self) -> (u32, u32, *const Entry) {
        let index = match self.free.pop() {
            Some(i) => i,
            None => self.grow(),
        };
        let e = &self.chunks[index as usize / CHUNK][index as usize % CHUNK];
        e.gen.set(e.gen.get().wrapping_add(1));
        e.live.set(true);
        e.ready.set(Ready::ALL.0);
        e.reader.set(None);
        e.writer.set(None);
        e.more.borrow_mut().clear();
        *e.callback.borrow_mut() = None;
        self.live += 1;
        (index, e.gen.get(), e)
    }

    /// Adds a chunk of entries; returns the first new index. Built on the
    /// heap entry by entry: a `[Entry; 64]` temporary would put a frame of
    /// several KiB on the calling green thread's stack, and its stack
    /// probes would commit those pages on every registration.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) -> u32 {
        let base = (self.chunks.len() * CHUNK) as u32;
        let chunk: Vec<Entry> = (0..CHUNK).map(|_| Entry::empty()).collect();
        let chunk: Box<[Entry; CHUNK]> = match chunk.into_boxed_slice().try_into() {
            Ok(c) => c,
            Err(_) => unreachable!("a chunk has CHUNK entries"),
        };
        self.chunks.push(chunk);
        self.free.extend((base + 1..base + CHUNK as u32).rev());
        base
    }

    /// Frees the slot; returns its callback to be dropped by the caller
    /// after the slab borrow ends (it may own sockets that deregister).
    pub(crate) fn release(&mut self, index: u32, gen: u32) -> Option<IoCallback> {
        let e = self.get(index, gen)?;
        e.live.set(false);
        e.reader.set(None);
        e.writer.set(None);
        let cb = e.callback.borrow_mut().take();
        *e.more.borrow_mut() = Vec::new();
        self.free.push(index);
        self.live -= 1;
        if cb.is_some() {
            self.callbacks -= 1;
        }
        cb
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Whether some live source has a callback (the deadlock check).
    pub(crate) fn has_callbacks(&self) -> bool {
        self.callbacks > 0
    }

    #[inline]
    fn get(&self, index: u32, gen: u32) -> Option<&Entry> {
        let e = self
            .chunks
            .get(index as usize / CHUNK)?
            .get(index as usize % CHUNK)?;
        (e.live.get() && e.gen.get() == gen).then_some(e)
    }
}

fn token(index: u32, gen: u32) -> Token {
    Token(((gen as usize) << 32) | index as usize)
}

/// Called by the hub for every mio event.
#[inline]
pub(crate) fn dispatch(hub: &Hub, ev: &Event) {
    let t = ev.token().0;
    let (index, gen) = (t as u32, (t >> 32) as u32);
    let bits = Ready::from_event(ev).0;
    let e: *const Entry = match hub.io.borrow().get(index, gen) {
        Some(e) => e,
        None => return,
    };
    // SAFETY: entries live in boxed chunks that are never freed or moved
    // while the hub exists; the slot was live just now, and nothing below
    // frees it before we are done (callbacks run last).
    let e = unsafe { &*e };
    e.ready.set(e.ready.get() | bits);
    if bits & Ready::READABLE.0 != 0 {
        if let Some(w) = e.reader.take() {
            hub.wake_local(w.slot, w.seq);
        }
    }
    if bits & Ready::WRITABLE.0 != 0 {
        if let Some(w) = e.writer.take() {
            hub.wake_local(w.slot, w.seq);
        }
    }
    if let Ok(mut more) = e.more.try_borrow_mut() {
        if !more.is_empty() {
            more.retain(|(dir, w)| {
                if dir & bits != 0 {
                    hub.wake_local(w.slot, w.seq);
                    false
                } else {
                    true
                }
            });
        }
    }
    let cb = match e.callback.try_borrow() {
        Ok(cb) => cb.clone(),
        Err(_) => None,
    };
    if let Some(cb) = cb {
        cb(Ready(bits));
    }
}

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
    io::Error::other(
        "greenio: socket operation outside a hub; run it inside greenio::run (a green thread)",
    )
}

fn other_hub(mine: usize, cur: usize) -> io::Error {
    io::Error::other(format!(
        "greenio: socket registered on hub {mine} used from hub {cur}; \
         give each hub its own socket (try_clone) instead of moving it"
    ))
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

    /// The entry and the hub, if called on the registration's hub.
    #[inline]
    fn entry(&self) -> Option<(&Hub, &Entry)> {
        let hub = hub::current_hub_ptr()?;
        // SAFETY: `current_hub_ptr` is non-null only while that hub runs on
        // this thread.
        let hub = unsafe { &*hub };
        if !Arc::ptr_eq(&hub.shared, &self.hub) {
            return None;
        }
        // SAFETY: we are on the owning hub's thread and the hub is alive, so
        // its slab chunks (which never move) are alive; the generation check
        // below makes sure the slot is still ours.
        let e = unsafe { &*self.entry };
        (e.live.get() && e.gen.get() == self.gen).then_some((hub, e))
    }

    /// The cached readiness (empty when called from another hub).
    #[inline]
    pub fn readiness(&self) -> Ready {
        self.entry()
            .map_or(Ready::EMPTY, |(_, e)| Ready(e.ready.get()))
    }

    /// Clears readiness bits after a syscall reported `WouldBlock`.
    #[inline]
    pub fn clear_readiness(&self, r: Ready) {
        if let Some((_, e)) = self.entry() {
            e.ready.set(e.ready.get() & !r.0);
        }
    }

    /// After a short read (or write) on a stream, which drained the kernel
    /// queue (or filled it): clears `dir` so the next call parks without a
    /// failing syscall. Keeps it when the hub has already seen a close or
    /// an error on that side, whose edge will not come again.
    #[inline]
    pub fn drained(&self, dir: Ready) {
        if let Some((_, e)) = self.entry() {
            let closed = if dir.intersects(Ready::READABLE) {
                Ready::READ_CLOSED.0 | Ready::ERROR.0
            } else {
                Ready::WRITE_CLOSED.0 | Ready::ERROR.0
            };
            let r = e.ready.get();
            if r & closed == 0 {
                e.ready.set(r & !dir.0);
            }
        }
    }

    /// Optimistic I/O in one call: runs `op` while `dir` is cached ready,
    /// clears the bit on `WouldBlock` and parks the green thread until the
    /// hub sees an edge, then tries again. `Interrupted` is retried.
    ///
    /// Returns `None`, without calling `op`, when not called on this
    /// registration's hub (the caller may register anew on the current
    /// hub).
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
        mut op: impl FnMut() -> io::Result<R>,
    ) -> Option<io::Result<R>> {
        let (hub, e) = self.entry()?;
        let mut deadline = None;
        loop {
            if e.ready.get() & dir.0 != 0 {
                match op() {
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                        e.ready.set(e.ready.get() & !dir.0);
                    }
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    r => return Some(r),
                }
            }
            if deadline.is_none() {
                deadline = timeout.and_then(|t| Instant::now().checked_add(t));
            }
            if let Err(err) = self.park(hub, e, dir, deadline, io_reason(dir)) {
                return Some(Err(err));
            }
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
        let (slot, seq) = hub.local_seq().ok_or_else(|| {
            io::Error::other(
                "greenio: blocking socket call outside a green thread; \
                 call it inside greenio::run or a spawned green thread",
            )
        })?;
        let w = LocalWaiter { slot, seq };
        let primary = if dir.intersects(Ready::READABLE) {
            &e.reader
        } else {
            &e.writer
        };
        match primary.get() {
            Some(p) if p.slot != slot && hub.is_parked_on(p.slot, p.seq) => {
                e.more.borrow_mut().push((dir.0, w));
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
        let Some((hub, e)) = self.entry() else {
            return Err(match hub::with_hub(|h| h.shared.index) {
                Some(cur) => other_hub(self.hub.index, cur),
                None => not_on_hub(),
            });
        };
        while e.ready.get() & dir.0 == 0 {
            self.park(hub, e, dir, deadline, reason)?;
        }
        Ok(())
    }

    /// Lets `cb` receive this source's events (replacing any previous
    /// callback); `None` removes it. The reactor style uses this.
    ///
    /// # Errors
    ///
    /// `Other` when called from another hub than the registration's.
    pub fn set_callback(&self, cb: Option<IoCallback>) -> io::Result<()> {
        let (hub, e) = self
            .entry()
            .ok_or_else(|| io::Error::other("greenio: set_callback from another hub"))?;
        let added = cb.is_some();
        let old = std::mem::replace(&mut *e.callback.borrow_mut(), cb);
        {
            let mut io = hub.io.borrow_mut();
            io.callbacks = io.callbacks + usize::from(added) - usize::from(old.is_some());
        }
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
                // being dropped here: take it out before the borrow ends.
                let cb = {
                    let mut io = hub.io.borrow_mut();
                    let cb = io.get(self.index, self.gen).and_then(|e| e.callback.take());
                    if cb.is_some() {
                        io.callbacks -= 1;
                    }
                    io.release(self.index, self.gen);
                    cb
                };
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
