//! The hub's table of green threads.
//!
//! Slots live in fixed chunks of 64 that never move once allocated, so a
//! `&Slot` stays valid while other green threads are spawned (the table
//! grows by adding chunks, not by reallocating). Every field a green
//! thread and its hub both touch is a `Cell`; the coroutine itself sits in
//! an `UnsafeCell` that only the hub's resume path borrows mutably, and a
//! running green thread never touches its own coroutine handle. This keeps
//! the switch path free of `RefCell` bookkeeping and of moves of the
//! coroutine in and out of the table.

use crate::chunk::boxed_chunk;
use std::cell::{Cell, UnsafeCell};
use std::sync::Arc;
use std::time::Instant;

use corosensei::{Coroutine, Yielder};

use crate::park::WaitReason;
use crate::stack::{GreenStack, StackInfo};
use crate::task::{Header, Task};

pub(crate) type Co = Coroutine<(), (), (), GreenStack>;

const CHUNK: usize = 64;

/// Where a green thread is in its life, as `dump` shows it.
///
/// Written only by the hub's thread: `NotStarted` on insert, `Ready` when
/// it is queued to run, `Running` while it runs, `Parked` when it suspends
/// on a wait. (A remote wake is queued through the inbox, so a green
/// thread whose wake is still in flight shows `Parked`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadState {
    /// Running now (the caller of `dump`).
    Running,
    /// Runnable, waiting for its turn.
    Ready,
    /// Spawned, not run yet.
    NotStarted,
    /// Waiting on something (see `waits_on`).
    Parked,
}

/// A green thread's code: on its stack, or boxed until its first run.
pub(crate) enum CoState {
    Ready(Co),
    Deferred(Box<dyn FnOnce()>, Option<usize>),
}

/// One green thread's entry. Only the hub's thread touches it.
pub(crate) struct Slot {
    /// The green thread; `None` while the slot is free. Written only by
    /// `TaskSlab::insert`/`remove`, when no reference into it is alive.
    task: UnsafeCell<Option<Arc<dyn Task>>>,
    /// Raw pointer to the task's header (stable while `task` is `Some`).
    header: Cell<*const Header>,
    /// The coroutine (see the module docs for who may borrow it).
    pub(crate) co: UnsafeCell<Option<CoState>>,
    /// Its yielder, recorded on first entry.
    pub(crate) yielder: Cell<*const Yielder<(), ()>>,
    /// The `seq` it is parked on; 0 while running.
    pub(crate) parked: Cell<u64>,
    /// Its life-cycle state (see [`ThreadState`]).
    pub(crate) state: Cell<ThreadState>,
    /// What it waits on, and since when.
    pub(crate) reason: Cell<WaitReason>,
    pub(crate) since: Cell<Instant>,
    /// Outermost expired timeout scope not yet delivered.
    pub(crate) timeout_pending: Cell<Option<u64>>,
    /// A cancel or timeout is due: checked on every park.
    pub(crate) interrupted: Cell<bool>,
    /// Its stack, for the overflow handler.
    pub(crate) stack: Cell<StackInfo>,
}

impl Slot {
    fn empty() -> Slot {
        Slot {
            task: UnsafeCell::new(None),
            header: Cell::new(std::ptr::null()),
            co: UnsafeCell::new(None),
            yielder: Cell::new(std::ptr::null()),
            parked: Cell::new(0),
            state: Cell::new(ThreadState::NotStarted),
            reason: Cell::new(WaitReason::local("first run")),
            since: Cell::new(Instant::now()),
            timeout_pending: Cell::new(None),
            interrupted: Cell::new(false),
            stack: Cell::new(StackInfo::NONE),
        }
    }

    /// The green thread in this slot.
    #[inline]
    pub(crate) fn task(&self) -> &Arc<dyn Task> {
        // SAFETY: `task` is only written by insert/remove, which happen on
        // the hub's thread while no reference into the slot is held; every
        // caller reaches a slot through `TaskSlab::get`, which returns only
        // occupied slots.
        unsafe { (*self.task.get()).as_ref() }.expect("greenio: empty task slot")
    }

    /// The green thread's header.
    #[inline]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: set from the occupied task's Arc in `insert`; the Arc is
        // kept in `task` until `remove`, so the pointee is alive.
        unsafe { &*self.header.get() }
    }
}

/// Chunked table of slots with a free list.
#[derive(Default)]
pub(crate) struct TaskSlab {
    chunks: UnsafeCell<Vec<Box<[Slot; CHUNK]>>>,
    free: UnsafeCell<Vec<u32>>,
}

impl TaskSlab {
    /// The occupied slot `i`, if any.
    #[inline]
    pub(crate) fn get(&self, i: u32) -> Option<&Slot> {
        let i = i as usize;
        // SAFETY: the vectors are only mutated by insert/remove on this
        // (the hub's) thread, never while a reference obtained here is used
        // to call them; chunks are boxed, so a `&Slot` survives the outer
        // vector growing.
        // A slot is occupied while its header pointer is set.
        let slot = unsafe { (&*self.chunks.get()).get(i / CHUNK)?.get(i % CHUNK)? };
        (!slot.header.get().is_null()).then_some(slot)
    }

    /// Puts `task` in a free slot and returns its index.
    pub(crate) fn insert(&self, task: Arc<dyn Task>) -> u32 {
        // SAFETY: see `get`; each vector is borrowed only for the one
        // statement that uses it (`grow` borrows them itself), and no
        // reference into the free slot exists.
        unsafe {
            let i = match (*self.free.get()).pop() {
                Some(i) => i as usize,
                None => self.grow(),
            };
            let slot = &(&*self.chunks.get())[i / CHUNK][i % CHUNK];
            slot.header.set(task.header());
            *slot.task.get() = Some(task);
            i as u32
        }
    }

    /// Adds a chunk of slots; returns the first new index. Built on the heap
    /// slot by slot: a `[Slot; 64]` temporary would put a frame of several
    /// KiB on the spawning green thread's stack (committed by stack probes
    /// on every spawn, since the frame belongs to `insert`).
    #[cold]
    #[inline(never)]
    fn grow(&self) -> usize {
        // SAFETY: see `get`; no reference into the vectors is alive here.
        unsafe {
            let chunks = &mut *self.chunks.get();
            let base = chunks.len() * CHUNK;
            let chunk: Box<[Slot; CHUNK]> = boxed_chunk(Slot::empty);
            chunks.push(chunk);
            (*self.free.get()).extend((base as u32 + 1..(base + CHUNK) as u32).rev());
            base
        }
    }

    /// Frees slot `i`; returns its task (to drop outside any borrow).
    pub(crate) fn remove(&self, i: u32) -> Option<Arc<dyn Task>> {
        let slot = self.get(i)?;
        // SAFETY: see `get`; the caller (the hub, after the green thread
        // finished) holds no other reference into this slot.
        unsafe {
            let task = (*slot.task.get()).take();
            *slot.co.get() = None;
            slot.header.set(std::ptr::null());
            slot.yielder.set(std::ptr::null());
            slot.parked.set(0);
            slot.timeout_pending.set(None);
            slot.interrupted.set(false);
            slot.stack.set(StackInfo::NONE);
            (*self.free.get()).push(i);
            task
        }
    }

    /// Indices of occupied slots.
    pub(crate) fn indices(&self) -> Vec<u32> {
        // SAFETY: see `get`; read only for this snapshot.
        let n = unsafe { (*self.chunks.get()).len() } * CHUNK;
        (0..n as u32).filter(|&i| self.get(i).is_some()).collect()
    }
}
