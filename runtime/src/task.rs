//! The task core: what a green thread is to everyone but the hub loop.
//!
//! A green thread is a corosensei coroutine on a pooled stack (owned by its
//! hub's slab) plus one reference-counted *packet* shared with its
//! [`JoinHandle`](crate::JoinHandle): the packet holds the [`Header`]
//! (identity, spawn site, park word, cancel flag, join state) and the slot
//! the result is written to.
//!
//! Join protocol (lock-free, one joiner at most since `join` takes `self`):
//! the joiner stores its wait token in the header and sets `JOINER`; the
//! finishing thread writes the result, sets `FINISHED`, and hands the token
//! back to be woken if `JOINER` was set. Whichever flag lands second sees
//! the other.
//!
//! This file sits below the hub loop: it knows hubs only through
//! [`HubShared`], and waking is left to the caller (`complete` returns the
//! joiner's token), so nothing here can switch stacks.

use std::any::Any;
use std::cell::UnsafeCell;
use std::fmt;
use std::io;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use crate::localmap::Locals;
use crate::park::{OsParker, ParkWord};
use crate::shared::HubShared;
use crate::unwind::payload_str;

/// Set by [`JoinHandle::cancel`]; sticky.
const CANCEL: u8 = 1;
/// The result slot is written and final.
const FINISHED: u8 = 2;
/// A joiner stored its waiter in `Header::joiner`.
const JOINER: u8 = 4;
/// A `JoinHandle` polled as a future stored its waker in
/// `Header::async_joiner`.
const ASYNC_JOINER: u8 = 8;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What every green thread shares with its handles, whatever its result type.
pub(crate) struct Header {
    /// Unique id, never reused in the process.
    pub(crate) id: u64,
    /// Name given through [`Builder::name`](crate::Builder::name).
    pub(crate) name: Option<Box<str>>,
    /// Where it was spawned (`#[track_caller]` through every spawn entry).
    pub(crate) site: &'static Location<'static>,
    /// The hub it lives on for its whole life.
    pub(crate) hub: Arc<HubShared>,
    /// Index in that hub's task slab; written once by the hub on insert,
    /// before the green thread first runs.
    pub(crate) slot: AtomicU32,
    /// The park word (see [`crate::wait`]): armed by the green thread,
    /// fired by any waker.
    pub(crate) word: ParkWord,
    /// `CANCEL | FINISHED | JOINER`.
    flags: AtomicU8,
    /// The joiner's wait token; written by the joiner before it sets
    /// `JOINER`, taken by the finisher after it sees `JOINER`.
    joiner: UnsafeCell<Option<WaitToken>>,
    /// Token for `park`/`Unparker::unpark`: set by any unparker, cleared
    /// by the green thread.
    pub(crate) unpark_token: AtomicBool,
    /// The `seq` of the wait a `park` call is in, 0 if none; written by the
    /// green thread, read by unparkers.
    pub(crate) user_park_seq: AtomicU64,
    /// The waker of a `JoinHandle` polled as a future (`block_on.rs`);
    /// replaced by each poll, taken by `complete` when it sees
    /// `ASYNC_JOINER`.
    async_joiner: std::sync::Mutex<Option<std::task::Waker>>,
    /// This green thread's `green_local!` values; touched only by the
    /// green thread itself, emptied by its root.
    pub(crate) locals: Locals,
}

/// Who a wait token wakes.
#[derive(Clone)]
pub(crate) enum Target {
    /// A green thread (its park word is in its header).
    Green(Arc<dyn Task>),
    /// A plain OS thread.
    Os(Arc<OsParker>),
}

/// One wait of one context: the data of a [`Waiter`](crate::wait::Waiter).
#[derive(Clone)]
pub(crate) struct WaitToken {
    pub(crate) target: Target,
    pub(crate) seq: u64,
}

impl WaitToken {
    /// The park word this token fires.
    #[inline]
    pub(crate) fn word(&self) -> &ParkWord {
        match &self.target {
            Target::Green(t) => &t.header().word,
            Target::Os(p) => &p.word,
        }
    }
}

impl Header {
    pub(crate) fn new(
        name: Option<String>,
        site: &'static Location<'static>,
        hub: Arc<HubShared>,
    ) -> Header {
        Header {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name: name.map(String::into_boxed_str),
            site,
            hub,
            slot: AtomicU32::new(u32::MAX),
            word: ParkWord::default(),
            flags: AtomicU8::new(0),
            joiner: UnsafeCell::new(None),
            unpark_token: AtomicBool::new(false),
            user_park_seq: AtomicU64::new(0),
            async_joiner: std::sync::Mutex::new(None),
            locals: Locals::default(),
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.flags.load(Ordering::Acquire) & CANCEL != 0
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.flags.load(Ordering::Acquire) & FINISHED != 0
    }

    /// Sets `CANCEL`; returns `false` if it was already cancelled or has
    /// finished (nothing to deliver).
    pub(crate) fn set_cancelled(&self) -> bool {
        self.flags.fetch_or(CANCEL, Ordering::AcqRel) & (CANCEL | FINISHED) == 0
    }

    /// `'name' (id N)`, or `id N` for an unnamed green thread.
    pub(crate) fn display_name(&self) -> String {
        match &self.name {
            Some(n) => format!("'{n}' (id {})", self.id),
            None => format!("id {}", self.id),
        }
    }

    /// Registers `waker` to be woken when the green thread finishes;
    /// `true` if it already has. Both sides set their flag with one
    /// read-modify-write on `flags`, so whichever lands second sees the
    /// other (as in `join`).
    pub(crate) fn poll_finished(&self, waker: &std::task::Waker) -> bool {
        if self.is_finished() {
            return true;
        }
        {
            let mut slot = self
                .async_joiner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
                *slot = Some(waker.clone());
            }
        }
        self.flags.fetch_or(ASYNC_JOINER, Ordering::AcqRel) & FINISHED != 0
    }

    /// Registers the joiner's token. Returns `false` if the green thread
    /// already finished (the caller must not wait).
    ///
    /// # Safety
    ///
    /// At most one caller, ever (the owner of the only `JoinHandle`).
    pub(crate) unsafe fn set_joiner(&self, token: WaitToken) -> bool {
        // SAFETY: JOINER is not set yet, so the finisher does not read the
        // cell; the caller guarantees it is the only writer.
        unsafe { *self.joiner.get() = Some(token) };
        self.flags.fetch_or(JOINER, Ordering::AcqRel) & FINISHED == 0
    }
}

/// A green thread as the hub and waiters see it: its header, type-erased.
pub(crate) trait Task: Send + Sync + 'static {
    fn header(&self) -> &Header;
    /// Finishes a green thread that could not start (no stack); returns
    /// the joiner's token to wake.
    fn fail(&self, err: JoinError) -> Option<WaitToken>;
}

/// Header plus the typed result slot.
pub(crate) struct Packet<T> {
    pub(crate) header: Header,
    result: UnsafeCell<Option<Result<T, JoinError>>>,
}

// SAFETY: the result slot is written once by the green thread before it sets
// FINISHED (release) and read once by the joiner after it observes FINISHED
// (acquire), so accesses never overlap; `T: Send` lets the value cross to the
// joiner's thread. The joiner cell follows the same publish protocol.
unsafe impl<T: Send> Sync for Packet<T> {}
// SAFETY: as above; every field is Send when T is.
unsafe impl<T: Send> Send for Packet<T> {}

impl<T: Send + 'static> Task for Packet<T> {
    fn header(&self) -> &Header {
        &self.header
    }

    fn fail(&self, err: JoinError) -> Option<WaitToken> {
        self.complete(Err(err))
    }
}

/// Fails a green thread whose stack could not be mapped on its hub;
/// returns the joiner's token to wake.
pub(crate) fn fail_spawn(task: &Arc<dyn Task>, e: io::Error) -> Option<WaitToken> {
    task.fail(JoinError::Panicked(Box::new(e.to_string())))
}

impl<T> Packet<T> {
    pub(crate) fn new(
        name: Option<String>,
        site: &'static Location<'static>,
        hub: Arc<HubShared>,
    ) -> Packet<T> {
        Packet {
            header: Header::new(name, site, hub),
            result: UnsafeCell::new(None),
        }
    }

    /// Stores the result; returns the joiner's token, which the caller
    /// must wake. Called once, by the green thread itself at its root (or
    /// by the hub for a green thread that could not start).
    #[must_use]
    pub(crate) fn complete(&self, result: Result<T, JoinError>) -> Option<WaitToken> {
        // SAFETY: FINISHED is not set yet, so no joiner reads the slot; only
        // this green thread writes it, once.
        unsafe { *self.result.get() = Some(result) };
        let prev = self.header.flags.fetch_or(FINISHED, Ordering::AcqRel);
        if prev & ASYNC_JOINER != 0 {
            // A `JoinHandle` awaited as a future: wake its task.
            let waker = self
                .header
                .async_joiner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            if let Some(w) = waker {
                w.wake();
            }
        }
        if prev & JOINER != 0 {
            // SAFETY: the joiner wrote the cell before setting JOINER
            // (release), which we observed (acquire); it never touches the
            // cell again once JOINER is set.
            unsafe { (*self.header.joiner.get()).take() }
        } else {
            None
        }
    }

    /// Takes the result once FINISHED is observed.
    pub(crate) fn take_result(&self) -> Result<T, JoinError> {
        debug_assert!(self.header.is_finished());
        // SAFETY: FINISHED was observed with acquire ordering, so the write
        // in `complete` happened before; `join` consumes the only handle.
        unsafe { (*self.result.get()).take() }.unwrap_or(Err(JoinError::Cancelled))
    }
}

/// Why [`JoinHandle::join`](crate::JoinHandle::join) has no value.
pub enum JoinError {
    /// The green thread panicked; the payload is the panic's.
    Panicked(Box<dyn Any + Send + 'static>),
    /// The green thread was cancelled before it returned.
    Cancelled,
}

impl JoinError {
    /// Whether the green thread was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JoinError::Cancelled)
    }

    /// Whether the green thread panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, JoinError::Panicked(_))
    }

    /// The panic message, if the payload is a string.
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            JoinError::Panicked(p) => payload_str(p.as_ref()),
            JoinError::Cancelled => None,
        }
    }

    /// The panic payload, to re-raise it with `std::panic::resume_unwind`.
    ///
    /// # Panics
    ///
    /// Panics if the green thread was cancelled rather than panicking.
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        match self {
            JoinError::Panicked(p) => p,
            JoinError::Cancelled => panic!("JoinError::into_panic on a cancelled green thread"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(p) => f
                .debug_tuple("Panicked")
                .field(&payload_str(p.as_ref()).unwrap_or("<non-string payload>"))
                .finish(),
            JoinError::Cancelled => f.write_str("Cancelled"),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(p) => match payload_str(p.as_ref()) {
                Some(m) => write!(f, "green thread panicked: {m}"),
                None => f.write_str("green thread panicked"),
            },
            JoinError::Cancelled => f.write_str("green thread was cancelled"),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for io::Error {
    fn from(e: JoinError) -> io::Error {
        io::Error::other(e.to_string())
    }
}
