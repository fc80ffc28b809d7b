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
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use mio::event::{Event, Source};
use mio::{Interest, Token};

use crate::hub::{self, Hub, HubShared, Msg};
use crate::wait::{WaitReason, Wake};

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
struct LocalWaiter {
    slot: u32,
    seq: u64,
}

#[derive(Default)]
struct Entry {
    gen: u32,
    live: bool,
    ready: u8,
    reader: Option<LocalWaiter>,
    writer: Option<LocalWaiter>,
    /// Waiters beyond the first of each direction: (direction bit, waiter).
    more: Vec<(u8, LocalWaiter)>,
    callback: Option<IoCallback>,
}

/// The hub's table of registered sources.
#[derive(Default)]
pub(crate) struct IoSlab {
    entries: Vec<Entry>,
    free: Vec<u32>,
    live: usize,
}

impl IoSlab {
    fn alloc(&mut self) -> (u32, u32) {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.entries.push(Entry::default());
                (self.entries.len() - 1) as u32
            }
        };
        let e = &mut self.entries[index as usize];
        e.gen = e.gen.wrapping_add(1);
        e.live = true;
        e.ready = Ready::ALL.0;
        e.reader = None;
        e.writer = None;
        e.more.clear();
        e.callback = None;
        self.live += 1;
        (index, e.gen)
    }

    pub(crate) fn release(&mut self, index: u32, gen: u32) {
        if let Some(e) = self.entries.get_mut(index as usize) {
            if e.live && e.gen == gen {
                e.live = false;
                e.callback = None;
                e.more = Vec::new();
                self.free.push(index);
                self.live -= 1;
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }

    fn get(&mut self, index: u32, gen: u32) -> Option<&mut Entry> {
        self.entries
            .get_mut(index as usize)
            .filter(|e| e.live && e.gen == gen)
    }
}

fn token(index: u32, gen: u32) -> Token {
    Token(((gen as usize) << 32) | index as usize)
}

/// Called by the hub for every mio event.
pub(crate) fn dispatch(hub: &Hub, ev: &Event) {
    let t = ev.token().0;
    let (index, gen) = (t as u32, (t >> 32) as u32);
    let bits = Ready::from_event(ev).0;
    let mut wake: [Option<LocalWaiter>; 2] = [None, None];
    let mut more = Vec::new();
    let cb = {
        let mut io = hub.io.borrow_mut();
        let Some(e) = io.get(index, gen) else {
            return;
        };
        e.ready |= bits;
        if bits & Ready::READABLE.0 != 0 {
            wake[0] = e.reader.take();
        }
        if bits & Ready::WRITABLE.0 != 0 {
            wake[1] = e.writer.take();
        }
        if !e.more.is_empty() {
            e.more.retain(|(dir, w)| {
                if dir & bits != 0 {
                    more.push(*w);
                    false
                } else {
                    true
                }
            });
        }
        e.callback.clone()
    };
    for w in wake.into_iter().flatten().chain(more) {
        hub.wake_local(w.slot, w.seq);
    }
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
}

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
            let (index, gen) = hub.io.borrow_mut().alloc();
            let r = hub
                .poll_registry()
                .registry()
                .register(source, token(index, gen), interest);
            match r {
                Ok(()) => Ok(Registration {
                    hub: hub.shared.clone(),
                    index,
                    gen,
                }),
                Err(e) => {
                    hub.io.borrow_mut().release(index, gen);
                    Err(e)
                }
            }
        })
        .unwrap_or_else(|| Err(not_on_hub()))
    }

    /// Whether the calling thread is the hub this source is registered on.
    pub fn is_local(&self) -> bool {
        hub::with_hub(|h| Arc::ptr_eq(&h.shared, &self.hub)).unwrap_or(false)
    }

    /// The index of the hub this source is registered on.
    pub fn hub_index(&self) -> usize {
        self.hub.index
    }

    fn with_entry<R>(&self, f: impl FnOnce(&Hub, &mut Entry) -> R) -> Option<R> {
        hub::with_hub(|hub| {
            if !Arc::ptr_eq(&hub.shared, &self.hub) {
                return None;
            }
            let mut io = hub.io.borrow_mut();
            let e = io.get(self.index, self.gen)?;
            Some(f(hub, e))
        })
        .flatten()
    }

    /// The cached readiness (empty when called from another hub).
    #[inline]
    pub fn readiness(&self) -> Ready {
        self.with_entry(|_, e| Ready(e.ready))
            .unwrap_or(Ready::EMPTY)
    }

    /// Clears readiness bits after a syscall reported `WouldBlock`.
    #[inline]
    pub fn clear_readiness(&self, r: Ready) {
        self.with_entry(|_, e| e.ready &= !r.0);
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
        let what = if dir.intersects(Ready::READABLE) {
            "socket read"
        } else {
            "socket write"
        };
        self.wait_as(dir, deadline, WaitReason::external(what))
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
        loop {
            let armed = hub::with_hub(|hub| {
                if !Arc::ptr_eq(&hub.shared, &self.hub) {
                    return Err(io::Error::other(format!(
                        "greenio: socket registered on hub {} used from hub {}; \
                         give each hub its own socket (try_clone) instead of moving it",
                        self.hub.index, hub.shared.index
                    )));
                }
                let mut io = hub.io.borrow_mut();
                let e = io
                    .get(self.index, self.gen)
                    .ok_or_else(|| io::Error::other("greenio: registration no longer valid"))?;
                if e.ready & dir.0 != 0 {
                    return Ok(None);
                }
                let (slot, seq) = hub.arm_local().ok_or_else(|| {
                    io::Error::other(
                        "greenio: blocking socket call outside a green thread; \
                         call it inside greenio::run or a spawned green thread",
                    )
                })?;
                let w = LocalWaiter { slot, seq };
                let primary = if dir.intersects(Ready::READABLE) {
                    &mut e.reader
                } else {
                    &mut e.writer
                };
                let taken = primary
                    .is_some_and(|p| hub.tasks_word_waiting(p.slot, p.seq) && p.slot != slot);
                if taken {
                    e.more.push((dir.0, w));
                } else {
                    *primary = Some(w);
                }
                Ok(Some(seq))
            })
            .unwrap_or_else(|| Err(not_on_hub()))?;
            let Some(seq) = armed else {
                return Ok(());
            };
            let r = hub::with_hub(|hub| hub.block(seq, deadline, reason)).unwrap_or(Wake::Notified);
            if r == Wake::TimedOut {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "greenio: socket operation timed out",
                ));
            }
        }
    }

    /// Lets `cb` receive this source's events (replacing any previous
    /// callback); `None` removes it. The reactor style uses this.
    ///
    /// # Errors
    ///
    /// `Other` when called from another hub than the registration's.
    pub fn set_callback(&self, cb: Option<IoCallback>) -> io::Result<()> {
        self.with_entry(|_, e| e.callback = cb)
            .ok_or_else(|| io::Error::other("greenio: set_callback from another hub"))
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
