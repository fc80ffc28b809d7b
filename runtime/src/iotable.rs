//! The hub's I/O table: one entry per registered source, holding the
//! readiness cache, the parked reader and writer, and an optional
//! callback. `dispatch` turns a mio event into wakeups through a callback
//! the hub loop supplies, so this file knows nothing of the loop; the
//! protocol around it is described in [`crate::io`].

use crate::chunk::boxed_chunk;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::rc::Rc;

use mio::event::Event;
use mio::Token;

/// Readiness bits of a registered source.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Ready(pub(crate) u8);

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

/// One optimistic attempt on `e`, the rule every syscall through the cache
/// follows: runs `op` while `dir` is cached ready; `WouldBlock` clears the
/// bit and ends the attempt with `None` (as a clear bit does, without a
/// syscall); `Interrupted` is retried; an `Ok` value for which `short`
/// holds (a short stream transfer, which drained the kernel's queue)
/// clears the bit too, unless a close or error was seen (`clear_if_open`).
#[inline(always)]
pub(crate) fn attempt<R>(
    e: &Entry,
    dir: Ready,
    op: &mut impl FnMut() -> io::Result<R>,
    short: impl Fn(&R) -> bool,
) -> Option<io::Result<R>> {
    while e.ready.get() & dir.0 != 0 {
        match op() {
            Ok(v) => {
                if short(&v) {
                    clear_if_open(e, dir);
                }
                return Some(Ok(v));
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                e.ready.set(e.ready.get() & !dir.0);
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Some(Err(err)),
        }
    }
    None
}

/// A callback that owns a source's events (the reactor style). Called on
/// the hub's thread, outside any green thread, with the event's readiness
/// and the source's readiness cache (already updated with the event), so
/// the callback needs no lookup of its own.
pub type IoCallback = Rc<dyn Fn(Ready, &ReadyCache<'_>)>;

#[derive(Clone, Copy)]
pub(crate) struct LocalWaiter {
    pub(crate) slot: u32,
    pub(crate) seq: u64,
}

const CHUNK: usize = 64;

/// One registered source. Cells only: the hub's loop and the green threads
/// of the same hub touch it, never at the same time.
pub(crate) struct Entry {
    pub(crate) gen: Cell<u32>,
    pub(crate) live: Cell<bool>,
    pub(crate) ready: Cell<u8>,
    pub(crate) reader: Cell<Option<LocalWaiter>>,
    pub(crate) writer: Cell<Option<LocalWaiter>>,
    /// Waiters beyond the first of each direction: (direction bit, waiter).
    pub(crate) more: RefCell<Vec<(u8, LocalWaiter)>>,
    pub(crate) callback: RefCell<Option<IoCallback>>,
    /// `more` may be non-empty / `callback` may be set: lets `dispatch`
    /// skip both `RefCell`s in the common case. Set by whoever fills them,
    /// cleared by `dispatch` (more) and `alloc`/`release`.
    pub(crate) extra: Cell<bool>,
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
            extra: Cell::new(false),
        }
    }
}

/// The hub's table of registered sources, in chunks that never move (a
/// registration keeps a pointer to its entry).
#[derive(Default)]
pub(crate) struct IoTable {
    chunks: Vec<Box<[Entry; CHUNK]>>,
    free: Vec<u32>,
    live: usize,
    /// Live entries with a callback: events may still run code that wakes
    /// green threads, so the hub is not deadlocked while this is non-zero.
    pub(crate) callbacks: usize,
}

impl IoTable {
    pub(crate) fn alloc(&mut self) -> (u32, u32, *const Entry) {
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
        e.extra.set(false);
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
        let chunk: Box<[Entry; CHUNK]> = boxed_chunk(Entry::empty);
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
        e.extra.set(false);
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
    pub(crate) fn get(&self, index: u32, gen: u32) -> Option<&Entry> {
        let e = self
            .chunks
            .get(index as usize / CHUNK)?
            .get(index as usize % CHUNK)?;
        (e.live.get() && e.gen.get() == gen).then_some(e)
    }
}

pub(crate) fn token(index: u32, gen: u32) -> Token {
    Token(((gen as usize) << 32) | index as usize)
}

/// Called by the hub for every mio event: updates the readiness cache,
/// hands each woken waiter to `wake(slot, seq)`, then runs the callback.
#[inline]
pub(crate) fn dispatch(io: &RefCell<IoTable>, ev: &Event, wake: impl Fn(u32, u64)) {
    let t = ev.token().0;
    let (index, gen) = (t as u32, (t >> 32) as u32);
    let bits = Ready::from_event(ev).0;
    let e: *const Entry = match io.borrow().get(index, gen) {
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
            wake(w.slot, w.seq);
        }
    }
    if bits & Ready::WRITABLE.0 != 0 {
        if let Some(w) = e.writer.take() {
            wake(w.slot, w.seq);
        }
    }
    if e.extra.get() {
        dispatch_extra(e, bits, wake);
    }
}

/// The rest of `dispatch` for an entry with queued waiters or a callback.
#[cold]
fn dispatch_extra(e: &Entry, bits: u8, wake: impl Fn(u32, u64)) {
    let mut left = true;
    if let Ok(mut more) = e.more.try_borrow_mut() {
        more.retain(|(dir, w)| {
            if dir & bits != 0 {
                wake(w.slot, w.seq);
                false
            } else {
                true
            }
        });
        left = !more.is_empty();
    }
    let cb = match e.callback.try_borrow() {
        Ok(cb) => cb.clone(),
        Err(_) => None,
    };
    e.extra.set(left || cb.is_some());
    if let Some(cb) = cb {
        cb(Ready(bits), &ReadyCache::new(e));
    }
}

/// Clears `dir` in the readiness cache unless the hub has seen a close or
/// an error on that side (whose edge will not come again).
#[inline]
pub(crate) fn clear_if_open(e: &Entry, dir: Ready) {
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

/// A registration's readiness cache, lent by
/// [`Registration::with_cache`](crate::io::Registration::with_cache)(crate::io::Registration::with_cache) for several operations under one lookup.
/// It cannot leave the closure, and the registration it belongs to cannot be
/// dropped meanwhile (the closure borrows it).
pub struct ReadyCache<'a> {
    e: &'a Entry,
}

impl<'a> ReadyCache<'a> {
    /// The cache of `e` (the caller has checked that `e` is live and on
    /// this thread's hub).
    #[inline]
    pub(crate) fn new(e: &'a Entry) -> ReadyCache<'a> {
        ReadyCache { e }
    }
}

impl fmt::Debug for ReadyCache<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReadyCache")
            .field(&self.readiness())
            .finish()
    }
}

impl ReadyCache<'_> {
    /// The cached readiness, as [`Registration::readiness`](crate::io::Registration::readiness).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::io::{Ready, Registration};
    ///
    /// greenio::run(|| {
    ///     let (mut tx, _rx) = mio::unix::pipe::new().unwrap();
    ///     let reg = Registration::new(&mut tx).unwrap();
    ///     let r = reg.with_cache(|c| c.readiness()).unwrap();
    ///     assert!(r.contains(Ready::WRITABLE)); // new registrations start ready
    /// });
    /// ```
    #[inline]
    pub fn readiness(&self) -> Ready {
        Ready(self.e.ready.get())
    }

    /// Clears bits, as [`Registration::clear_readiness`](crate::io::Registration::clear_readiness): after a syscall
    /// said `WouldBlock`, or once a socket error has been fetched with
    /// `take_error` (`ERROR`).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::io::{Ready, Registration};
    ///
    /// greenio::run(|| {
    ///     let (mut tx, _rx) = mio::unix::pipe::new().unwrap();
    ///     let reg = Registration::new(&mut tx).unwrap();
    ///     let r = reg
    ///         .with_cache(|c| {
    ///             c.clear(Ready::WRITABLE);
    ///             c.readiness()
    ///         })
    ///         .unwrap();
    ///     assert!(!r.intersects(Ready::WRITABLE));
    /// });
    /// ```
    #[inline]
    pub fn clear(&self, r: Ready) {
        self.e.ready.set(self.e.ready.get() & !r.0);
    }

    /// The non-parking optimistic call, as [`Registration::try_once`](crate::io::Registration::try_once).
    ///
    /// # Errors
    ///
    /// The error of `op`; `WouldBlock` when `dir` is not ready.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::io::{Ready, Registration};
    /// use std::io::Write;
    ///
    /// greenio::run(|| {
    ///     let (mut tx, _rx) = mio::unix::pipe::new().unwrap();
    ///     let reg = Registration::new(&mut tx).unwrap();
    ///     let n = reg
    ///         .with_cache(|c| c.try_once(Ready::WRITABLE, Some(2), || tx.write(b"hi")))
    ///         .unwrap()
    ///         .unwrap();
    ///     assert_eq!(n, 2); // all written: WRITABLE stays set
    ///     assert!(reg.readiness().intersects(Ready::WRITABLE));
    /// });
    /// ```
    #[inline(always)]
    pub fn try_once(
        &self,
        dir: Ready,
        want: Option<usize>,
        mut op: impl FnMut() -> io::Result<usize>,
    ) -> io::Result<usize> {
        attempt(self.e, dir, &mut op, |&n| {
            want.is_some_and(|w| n > 0 && n < w)
        })
        .unwrap_or_else(|| Err(io::ErrorKind::WouldBlock.into()))
    }
}
