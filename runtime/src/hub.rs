//! The hub: one OS thread's event loop, which runs green threads.
//!
//! # The loop
//!
//! ```text
//!   loop {
//!       run up to 256 ready green threads (FIFO)           <- run_ready
//!       stop if the exit condition holds (main finished)
//!       take messages from other threads (wakes, spawns)    <- drain_inbox
//!       poll mio: timeout 0 if green threads are still ready,
//!                 else until the nearest timer (or forever)
//!       dispatch readiness to socket waiters and callbacks  <- io_event
//!       fire due timers
//!   }
//! ```
//!
//! A green thread runs until it parks (see [`crate::wait`]): it records
//! what it waits on, and suspends back into the loop. Whatever wakes it
//! pushes `(slot, seq)` onto the ready FIFO; the loop resumes the slot only if
//! it is still parked on that very `seq`, so duplicate or stale entries are
//! skipped. Wakes from other OS threads go through the inbox, a lock-free
//! queue, and a `mio::Waker` that is written only when the hub is about to
//! sleep (the `sleeping` flag), so a busy hub takes remote wakes without a
//! syscall.
//!
//! The budget of 256 resumes per turn keeps green threads that only yield
//! from starving sockets and timers, while a loop of two yielding green
//! threads pays one `epoll_wait` per 256 switches, not per switch.
//!
//! # What a switch costs
//!
//! A yield (park, back to the loop, resume the next green thread) is about
//! 190 instructions (callgrind), ~85 ns on the reference VM, against ~20
//! instructions for a bare corosensei resume+suspend pair. The rest is
//! spread thin: interrupt checks on both sides of the park, the wait
//! number and slot bookkeeping, the run queue, corosensei's unwind-safe
//! switch wrappers, and the loop's budget/inbox/timer checks. An echoed
//! message costs ~600 user-space instructions in all (mio's hand-written
//! loop: ~290), against ~5 µs of kernel time for the two syscalls.
//!
//! # Rejected designs
//!
//! * *Work stealing between hubs.* Moving a suspended stack to another OS
//!   thread breaks every `!Send` value and thread-local on it; that is the
//!   known unsoundness of other stackful runtimes. Green threads never
//!   migrate; load spreads at spawn time instead (`spawn_balanced`, and the
//!   server handing connections to hubs).
//! * *Symmetric switches (green thread to green thread).* One switch instead
//!   of two per hand-over, but the loop would lose the point where it polls
//!   and fires timers, and corosensei's safe API is asymmetric.
//! * *A global hub.* Each hub is an explicit value on its OS thread, reached
//!   through one thread-local pointer that is set only while it runs.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corosensei::stack::DefaultStack;
use corosensei::{CoroutineResult, Yielder};
use crossbeam_queue::SegQueue;
use mio::{Events, Poll, Token};

use crate::io::IoSlab;
use crate::runq::RunQueue;
use crate::runtime::RuntimeShared;
use crate::slab::{Co, CoState, Slot, TaskSlab};
use crate::stack::{self, StackInfo, StackPool};
use crate::task::{self, CancelUnwind, Packet, Task};
use crate::timeout::TimeoutUnwind;
use crate::timer::{Action, Timers};
use crate::wait::{self, WaitKind, WaitReason, Waiter, Wake};

/// The mio token of the hub's waker.
const WAKER: Token = Token(usize::MAX);
/// Resumes per loop turn before the hub polls again.
const BUDGET: usize = 256;
const NO_SLOT: u32 = u32::MAX;
/// Inbox checks before a hub with recent cross-thread traffic sleeps
/// (a few microseconds; see `spin_for_inbox`).
const SPIN_ROUNDS: u32 = 2000;

/// Messages from other threads.
pub(crate) enum Msg {
    /// Make `slot` runnable if it is still parked on `seq`.
    Wake { slot: u32, seq: u64 },
    /// Start a green thread sent by another thread.
    Spawn {
        task: Arc<dyn Task>,
        stack: Option<usize>,
        body: Box<dyn FnOnce() + Send>,
    },
    /// Deliver a cancellation.
    Interrupt(Arc<dyn Task>),
    /// Free an I/O slot whose registration was dropped on another thread.
    ReleaseIo { index: u32, gen: u32 },
    /// The runtime is ending: cancel everything and stop.
    Shutdown,
}

/// The part of a hub other threads may touch.
pub(crate) struct HubShared {
    /// Position in the runtime's hub list.
    pub(crate) index: usize,
    /// Messages from other threads; drained by the hub every turn.
    inbox: SegQueue<Msg>,
    /// Wakes the hub's `epoll_wait`.
    waker: mio::Waker,
    /// True while the hub is in (or about to enter) a blocking poll.
    sleeping: AtomicBool,
    /// Green threads alive on this hub (for balancing and stats).
    pub(crate) alive: AtomicUsize,
    /// Live `Unparker`s of this hub's green threads (deadlock detection).
    pub(crate) unparkers: AtomicUsize,
    /// The hub's mio registry, usable from any thread.
    pub(crate) registry: mio::Registry,
}

impl HubShared {
    /// Makes `slot` runnable for `seq`: directly if we are on this hub's
    /// thread, else through the inbox.
    #[inline]
    pub(crate) fn schedule(&self, slot: u32, seq: u64) {
        let local = CURRENT.with(|c| {
            let h = c.get();
            // SAFETY: CURRENT is only non-null while the hub it points to is
            // alive and running on this thread.
            if !h.is_null() && ptr::eq(unsafe { &*(*h).shared }, self) {
                // SAFETY: as above.
                unsafe { (*h).ready.push((slot, seq)) };
                true
            } else {
                false
            }
        });
        if !local {
            self.send(Msg::Wake { slot, seq });
        }
    }

    /// Queues a message and wakes the hub if it sleeps.
    pub(crate) fn send(&self, msg: Msg) {
        self.inbox.push(msg);
        fence(Ordering::SeqCst);
        if self.sleeping.swap(false, Ordering::SeqCst) {
            if let Err(e) = self.waker.wake() {
                log::error!("greenio: cannot wake hub {}: {e}", self.index);
            }
        }
    }

    pub(crate) fn interrupt(&self, task: Arc<dyn Task>) {
        let local = with_hub(|h| ptr::eq(&*h.shared, self)).unwrap_or(false);
        if local {
            with_hub(|h| h.deliver_interrupt(&task));
        } else {
            self.send(Msg::Interrupt(task));
        }
    }

    pub(crate) fn spawn_remote(
        &self,
        task: Arc<dyn Task>,
        stack: Option<usize>,
        body: Box<dyn FnOnce() + Send>,
    ) {
        self.alive.fetch_add(1, Ordering::Relaxed);
        self.send(Msg::Spawn { task, stack, body });
    }
}

/// How a new green thread starts.
enum Start {
    Ready(Co, StackInfo),
    Deferred(Box<dyn FnOnce()>, Option<usize>),
}

/// Counters of one hub, see [`stats`](crate::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Index of the hub these counters belong to.
    pub hub: usize,
    /// Green threads alive on this hub now.
    pub alive: usize,
    /// Green threads spawned on this hub so far.
    pub spawned: u64,
    /// Context switches into green threads so far.
    pub switches: u64,
    /// Calls to the poller (`epoll_wait`) so far.
    pub polls: u64,
    /// Timers armed now (sleeps, deadlines, timeout scopes).
    pub timers: usize,
    /// Stacks kept in the pool for reuse.
    pub pooled_stacks: usize,
    /// Sockets registered with this hub now.
    pub registered_io: usize,
}

/// The hub itself, owned by its OS thread.
pub(crate) struct Hub {
    pub(crate) shared: Arc<HubShared>,
    pub(crate) rt: Arc<RuntimeShared>,
    poll: RefCell<Poll>,
    events: RefCell<Events>,
    tasks: TaskSlab,
    ready: RunQueue,
    pub(crate) timers: RefCell<Timers>,
    pub(crate) io: RefCell<IoSlab>,
    stacks: RefCell<StackPool>,
    /// Slot of the running green thread, `NO_SLOT` in the loop.
    current: Cell<u32>,
    /// Pointer to that slot (valid while `current != NO_SLOT`).
    cur_slot: Cell<*const Slot>,
    /// Yielder of the running green thread.
    yielder: Cell<*const Yielder<(), ()>>,
    seq: Cell<u64>,
    scope_seq: Cell<u64>,
    /// The loop's clock, refreshed after every poll.
    now: Cell<Instant>,
    live: Cell<usize>,
    /// Green threads spawned but not yet run once.
    unstarted: Cell<usize>,
    external_waits: Cell<usize>,
    sync_waits: Cell<usize>,
    shutdown: Cell<bool>,
    /// `polls` when the inbox last had messages.
    inbox_turn: Cell<u64>,
    spawned: Cell<u64>,
    switches: Cell<u64>,
    polls: Cell<u64>,
}

thread_local! {
    static CURRENT: Cell<*const Hub> = const { Cell::new(ptr::null()) };
}

/// Runs `f` with this thread's hub, if one is running here.
#[inline]
pub(crate) fn with_hub<R>(f: impl FnOnce(&Hub) -> R) -> Option<R> {
    let h = CURRENT.with(Cell::get);
    if h.is_null() {
        None
    } else {
        // SAFETY: CURRENT is non-null only while the hub is alive and
        // running on this thread (set and cleared by `Hub::enter`).
        Some(f(unsafe { &*h }))
    }
}

#[inline]
pub(crate) fn current_hub_ptr() -> Option<*const Hub> {
    let h = CURRENT.with(Cell::get);
    (!h.is_null()).then_some(h)
}

pub(crate) fn current_shared() -> Option<Arc<HubShared>> {
    with_hub(|h| h.shared.clone())
}

pub(crate) fn current_runtime() -> Option<Arc<RuntimeShared>> {
    with_hub(|h| h.rt.clone())
}

pub(crate) fn on_hub_thread() -> bool {
    !CURRENT.with(Cell::get).is_null()
}

pub(crate) fn in_green_thread() -> bool {
    with_hub(|h| h.current.get() != NO_SLOT).unwrap_or(false)
}

/// Runs `f` with the hub and the running green thread, if any.
#[inline]
pub(crate) fn with_current_task<R>(f: impl FnOnce(&Hub, &Arc<dyn Task>) -> R) -> Option<R> {
    with_hub(|hub| {
        let slot = hub.current.get();
        if slot == NO_SLOT {
            return None;
        }
        let task = hub.tasks.get(slot)?.task();
        Some(f(hub, task))
    })
    .flatten()
}

/// Yields the running green thread; `false` outside one.
pub(crate) fn yield_current() -> bool {
    with_hub(|hub| {
        if hub.current.get() == NO_SLOT {
            return false;
        }
        hub.yield_now();
        true
    })
    .unwrap_or(false)
}

/// Entry point of every coroutine: record the yielder, then run the body.
fn enter(y: &Yielder<(), ()>) {
    with_hub(|hub| {
        hub.yielder.set(y);
        let slot = hub.current.get();
        if let Some(s) = hub.tasks.get(slot) {
            s.yielder.set(y);
        }
    });
}

impl Hub {
    pub(crate) fn new(
        shared: Arc<HubShared>,
        poll: Poll,
        rt: Arc<RuntimeShared>,
        stack_size: usize,
    ) -> Hub {
        Hub {
            shared,
            rt,
            poll: RefCell::new(poll),
            events: RefCell::new(Events::with_capacity(1024)),
            tasks: TaskSlab::default(),
            ready: RunQueue::new(),
            timers: RefCell::new(Timers::default()),
            io: RefCell::new(IoSlab::default()),
            stacks: RefCell::new(StackPool::new(stack_size)),
            current: Cell::new(NO_SLOT),
            cur_slot: Cell::new(ptr::null()),
            yielder: Cell::new(ptr::null()),
            seq: Cell::new(0),
            scope_seq: Cell::new(0),
            now: Cell::new(Instant::now()),
            live: Cell::new(0),
            unstarted: Cell::new(0),
            external_waits: Cell::new(0),
            sync_waits: Cell::new(0),
            shutdown: Cell::new(false),
            inbox_turn: Cell::new(u64::MAX - 8),
            spawned: Cell::new(0),
            switches: Cell::new(0),
            polls: Cell::new(0),
        }
    }

    /// Builds the shared half and the poller of a hub.
    pub(crate) fn create(index: usize) -> io::Result<(Arc<HubShared>, Poll)> {
        let poll = Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER)?;
        let registry = poll.registry().try_clone()?;
        let shared = Arc::new(HubShared {
            index,
            inbox: SegQueue::new(),
            waker,
            sleeping: AtomicBool::new(false),
            alive: AtomicUsize::new(0),
            unparkers: AtomicUsize::new(0),
            registry,
        });
        Ok((shared, poll))
    }

    /// A fresh wait number, unique on this hub.
    #[inline]
    pub(crate) fn next_seq(&self) -> u64 {
        let s = self.seq.get() + 1;
        self.seq.set(s);
        s
    }

    pub(crate) fn poll_registry(&self) -> std::cell::Ref<'_, Poll> {
        self.poll.borrow()
    }

    /// Makes this hub the current one of this thread for the closure.
    fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Reset(*const Hub);
        impl Drop for Reset {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(self.0));
            }
        }
        let prev = CURRENT.with(|c| c.replace(self));
        assert!(
            prev.is_null(),
            "greenio: a hub is already running on this thread (nested greenio::run?)"
        );
        stack::install_overflow_handler();
        let _reset = Reset(prev);
        f()
    }

    // ----- spawning ------------------------------------------------------

    /// Spawns on this hub. The stack is taken now when it is cheap (from
    /// the pool, or when no other green thread is waiting for its first
    /// run), so `mmap` failures surface here as an error; during a burst of
    /// spawns that outpaces the pool, the body is boxed and its stack is
    /// taken when it first runs, by which time earlier green threads may
    /// have returned theirs. A burst of 100,000 spawns thus needs a handful
    /// of stacks, not 100,000 (and 200,000 memory mappings).
    pub(crate) fn spawn_local<F, T>(
        &self,
        packet: Arc<Packet<T>>,
        stack_size: Option<usize>,
        f: F,
    ) -> io::Result<()>
    where
        F: FnOnce() -> T + 'static,
        T: Send + 'static,
    {
        let p = packet.clone();
        let body = move || task::root(&p, f);
        let eager = self.unstarted.get() == 0 || self.stacks.borrow().has_free(stack_size);
        let start = if eager {
            let stack = self.stacks.borrow_mut().get(stack_size)?;
            let info = StackInfo::of(&stack, packet.header.id, packet.header.name.as_deref());
            let co = Co::with_stack(stack, move |y: &Yielder<(), ()>, ()| {
                enter(y);
                body();
            });
            Start::Ready(co, info)
        } else {
            Start::Deferred(Box::new(body), stack_size)
        };
        self.shared.alive.fetch_add(1, Ordering::Relaxed);
        self.insert(packet, start);
        Ok(())
    }

    fn insert(&self, task: Arc<dyn Task>, start: Start) {
        let seq = self.next_seq();
        let slot = self.tasks.insert(task.clone());
        task.header().slot.store(slot, Ordering::Release);
        let s = self.tasks.get(slot).expect("just inserted");
        let (co, stack) = match start {
            Start::Ready(co, info) => (CoState::Ready(co), info),
            Start::Deferred(body, size) => (CoState::Deferred(body, size), StackInfo::NONE),
        };
        // SAFETY: the slot was free until now: nothing else borrows its
        // coroutine cell.
        unsafe { *s.co.get() = Some(co) };
        s.parked.set(seq);
        s.reason.set(WaitReason::local("start"));
        s.since.set(self.now.get());
        s.stack.set(stack);
        self.ready.push((slot, seq));
        self.live.set(self.live.get() + 1);
        self.unstarted.set(self.unstarted.get() + 1);
        self.spawned.set(self.spawned.get() + 1);
    }

    // ----- running -------------------------------------------------------

    /// Resumes up to `budget` ready green threads; returns how many ran.
    fn run_ready(&self, budget: usize) -> usize {
        let mut n = 0;
        while n < budget {
            let Some((slot, seq)) = self.ready.pop() else {
                break;
            };
            let Some(s) = self.tasks.get(slot) else {
                continue;
            };
            if s.parked.get() != seq {
                continue;
            }
            s.parked.set(0);
            n += 1;
            // SAFETY: only this loop borrows a slot's coroutine cell, and
            // the green thread it holds is not running (it is parked).
            let co = unsafe { &mut *s.co.get() };
            match co {
                Some(CoState::Ready(_)) => self.resume(slot, s),
                Some(CoState::Deferred(..)) => {
                    if let Some(CoState::Deferred(body, size)) = co.take() {
                        self.first_run(slot, s, body, size);
                    }
                }
                None => {}
            }
        }
        n
    }

    /// Gives a deferred green thread its stack and runs it.
    #[cold]
    fn first_run(&self, slot: u32, s: &Slot, body: Box<dyn FnOnce()>, size: Option<usize>) {
        let stack = self.stacks.borrow_mut().get(size);
        match stack {
            Ok(st) => {
                let h = s.header();
                let info = StackInfo::of(&st, h.id, h.name.as_deref());
                let co = Co::with_stack(st, move |y: &Yielder<(), ()>, ()| {
                    enter(y);
                    body();
                });
                s.stack.set(info);
                // SAFETY: as in run_ready: the slot is not running.
                unsafe { *s.co.get() = Some(CoState::Ready(co)) };
                self.resume(slot, s);
            }
            Err(e) => {
                // The spawner already has a handle: fail the green thread
                // with the mmap error as its panic payload.
                let task = s.task().clone();
                log::error!(
                    "greenio: green thread {}: {e}",
                    task.header().display_name()
                );
                drop(body);
                task::fail_spawn(&task, e);
                self.remove(slot, None);
            }
        }
    }

    #[inline]
    fn resume(&self, slot: u32, s: &Slot) {
        let y = s.yielder.get();
        if y.is_null() {
            self.unstarted.set(self.unstarted.get() - 1);
        }
        self.current.set(slot);
        self.cur_slot.set(s);
        self.yielder.set(y);
        stack::set_running(s.stack.as_ptr());
        self.switches.set(self.switches.get() + 1);
        // SAFETY: the hub is the only one to borrow the coroutine cell, and
        // the green thread inside never touches its own handle.
        let r = match unsafe { &mut *s.co.get() } {
            Some(CoState::Ready(co)) => co.resume(()),
            _ => return,
        };
        self.current.set(NO_SLOT);
        if let CoroutineResult::Return(()) = r {
            // SAFETY: the coroutine has returned; nothing borrows the cell.
            let stack = match unsafe { (*s.co.get()).take() } {
                Some(CoState::Ready(co)) => Some(co.into_stack()),
                _ => None,
            };
            self.remove(slot, stack);
        }
    }

    /// Drops a finished green thread's slot and recycles its stack.
    fn remove(&self, slot: u32, stack: Option<DefaultStack>) {
        let task = self.tasks.remove(slot);
        if let Some(st) = stack {
            self.stacks.borrow_mut().put(st);
        } else {
            self.unstarted.set(self.unstarted.get() - 1);
        }
        self.live.set(self.live.get() - 1);
        self.shared.alive.fetch_sub(1, Ordering::Relaxed);
        drop(task);
    }

    /// The running green thread's slot.
    #[inline]
    fn cur(&self) -> &Slot {
        assert!(
            self.current.get() != NO_SLOT,
            "greenio: green-thread operation outside a green thread"
        );
        // SAFETY: `current != NO_SLOT`, so `resume` has set `cur_slot` to
        // the running green thread's slot, whose chunk never moves and which
        // stays occupied while the green thread runs.
        unsafe { &*self.cur_slot.get() }
    }

    /// Suspends the running green thread, parked on `seq`.
    #[inline]
    fn suspend(&self, seq: u64, reason: WaitReason) {
        let s = self.cur();
        s.parked.set(seq);
        s.reason.set(reason);
        s.since.set(self.now.get());
        let counter = match reason.kind {
            WaitKind::External => Some(&self.external_waits),
            WaitKind::Sync => Some(&self.sync_waits),
            WaitKind::Local => None,
        };
        if let Some(c) = counter {
            c.set(c.get() + 1);
        }
        let y = self.yielder.get();
        // SAFETY: `y` is the yielder of the running coroutine, recorded by
        // `enter` on its stack; it stays valid while the coroutine exists,
        // and we are executing on that coroutine now.
        unsafe { (*y).suspend(()) };
        if let Some(c) = counter {
            c.set(c.get() - 1);
        }
    }

    /// The header of the running green thread.
    #[inline]
    fn current_header(&self) -> &crate::task::Header {
        self.cur().header()
    }

    /// Interrupt due for the running green thread: cancel, else an expired
    /// timeout scope. `None` while unwinding (cleanup code may wait).
    #[inline]
    pub(crate) fn pending_interrupt(&self) -> Option<Box<dyn Any + Send>> {
        let s = self.cur();
        if !s.interrupted.get() {
            return None;
        }
        self.interrupt_payload(s)
    }

    #[cold]
    fn interrupt_payload(&self, s: &Slot) -> Option<Box<dyn Any + Send>> {
        if std::thread::panicking() {
            return None;
        }
        if s.header().is_cancelled() {
            return Some(Box::new(CancelUnwind));
        }
        s.timeout_pending
            .get()
            .map(|id| Box::new(TimeoutUnwind(id)) as Box<dyn Any + Send>)
    }

    /// Parks the running green thread on wait `seq` (armed by the caller)
    /// until it is fired, its deadline passes, or it is interrupted.
    pub(crate) fn block(&self, seq: u64, deadline: Option<Instant>, reason: WaitReason) -> Wake {
        let h = self.current_header();
        let mut timer = None;
        let state = loop {
            if let Some(p) = self.pending_interrupt() {
                let st = h.word.disarm(seq);
                if st == wait::WAITING {
                    if let Some(k) = timer {
                        self.timers.borrow_mut().cancel(k);
                    }
                    panic::resume_unwind(p);
                }
                break st;
            }
            if !h.word.is_waiting(seq) {
                break h.word.disarm(seq);
            }
            if timer.is_none() {
                if let Some(d) = deadline {
                    let w = with_current_task(|_, t| Waiter::from_parts(t.clone(), seq))
                        .expect("greenio: block outside a green thread");
                    timer = Some(self.timers.borrow_mut().insert(d, Action::Wake(w)));
                }
            }
            self.suspend(seq, reason);
        };
        if let Some(k) = timer {
            self.timers.borrow_mut().cancel(k);
        }
        if state == wait::TIMED_OUT {
            Wake::TimedOut
        } else {
            Wake::Notified
        }
    }

    fn yield_now(&self) {
        if let Some(p) = self.pending_interrupt() {
            panic::resume_unwind(p);
        }
        let seq = self.next_seq();
        self.ready.push((self.current.get(), seq));
        self.suspend(seq, WaitReason::local("yield"));
        if let Some(p) = self.pending_interrupt() {
            panic::resume_unwind(p);
        }
    }

    /// Resumes a parked slot so it notices an interrupt.
    fn kick(&self, slot: u32) {
        if let Some(s) = self.tasks.get(slot) {
            s.interrupted.set(true);
            let parked = s.parked.get();
            if parked != 0 {
                self.ready.push((slot, parked));
            }
        }
    }

    fn deliver_interrupt(&self, task: &Arc<dyn Task>) {
        let slot = task.header().slot.load(Ordering::Acquire);
        let mine = self
            .tasks
            .get(slot)
            .is_some_and(|s| Arc::ptr_eq(s.task(), task));
        if mine {
            self.kick(slot);
        }
    }

    /// Wakes a hub-local wait `(slot, seq)` made by `park_local` (sockets):
    /// no atomics, since only this hub's thread can wake it. A duplicate
    /// or stale wake is skipped by `run_ready`'s `parked == seq` check.
    #[inline]
    pub(crate) fn wake_local(&self, slot: u32, seq: u64) {
        if self.is_parked_on(slot, seq) {
            self.ready.push((slot, seq));
        }
    }

    /// Whether `slot` is parked on wait `seq`.
    #[inline]
    pub(crate) fn is_parked_on(&self, slot: u32, seq: u64) -> bool {
        self.tasks.get(slot).is_some_and(|s| s.parked.get() == seq)
    }

    /// A fresh wait number for a hub-local wait of the running green thread.
    #[inline]
    pub(crate) fn local_seq(&self) -> Option<(u32, u64)> {
        let slot = self.current.get();
        if slot == NO_SLOT {
            return None;
        }
        Some((slot, self.next_seq()))
    }

    /// Parks the running green thread on a hub-local wait `seq` (from
    /// `local_seq`) until `wake_local`, the deadline, or an interrupt
    /// (which unwinds). The caller re-checks its condition.
    #[inline]
    pub(crate) fn park_local(&self, seq: u64, deadline: Option<Instant>, reason: WaitReason) {
        if let Some(p) = self.pending_interrupt() {
            panic::resume_unwind(p);
        }
        let timer = deadline.map(|d| {
            self.timers.borrow_mut().insert(
                d,
                Action::WakeLocal {
                    slot: self.current.get(),
                    seq,
                },
            )
        });
        self.suspend(seq, reason);
        if let Some(k) = timer {
            self.timers.borrow_mut().cancel(k);
        }
        if let Some(p) = self.pending_interrupt() {
            panic::resume_unwind(p);
        }
    }

    // ----- timeout scopes -------------------------------------------------

    /// Starts a timeout scope for the running green thread.
    pub(crate) fn open_scope(&self, deadline: Instant) -> (u64, crate::timer::TimerKey) {
        let scope = self.scope_seq.get() + 1;
        self.scope_seq.set(scope);
        let slot = self.current.get();
        let task_id = self.current_header().id;
        let key = self.timers.borrow_mut().insert(
            deadline,
            Action::Interrupt {
                slot,
                task_id,
                scope,
            },
        );
        (scope, key)
    }

    /// Ends a timeout scope: cancels its timer and forgets its expiry.
    pub(crate) fn close_scope(&self, scope: u64, key: crate::timer::TimerKey) {
        self.timers.borrow_mut().cancel(key);
        let s = self.cur();
        if s.timeout_pending.get() == Some(scope) {
            s.timeout_pending.set(None);
            s.interrupted.set(s.header().is_cancelled());
        }
    }

    fn expire_scope(&self, slot: u32, task_id: u64, scope: u64) {
        let Some(s) = self.tasks.get(slot) else {
            return;
        };
        if s.header().id != task_id {
            return;
        }
        // Scopes are numbered outermost first: keep the outermost.
        let p = s.timeout_pending.get();
        s.timeout_pending
            .set(Some(p.map_or(scope, |p| p.min(scope))));
        self.kick(slot);
    }

    // ----- the loop -------------------------------------------------------

    /// Before sleeping in `epoll_wait`, a hub that just had messages from
    /// other threads (a channel partner on another hub, say) watches its
    /// inbox for a few microseconds: the reply usually comes sooner than
    /// an eventfd write plus an `epoll_wait` wake-up would deliver it, and
    /// neither side makes a syscall. A hub without cross-thread traffic
    /// (a plain socket server) never spins. Returns true if a message came.
    fn spin_for_inbox(&self) -> bool {
        if self.polls.get().wrapping_sub(self.inbox_turn.get()) > 1 {
            return false;
        }
        for _ in 0..SPIN_ROUNDS {
            if !self.shared.inbox.is_empty() {
                return true;
            }
            std::hint::spin_loop();
        }
        false
    }

    #[inline]
    fn drain_inbox(&self) {
        // An empty check is two loads; a failed pop is several times that.
        if self.shared.inbox.is_empty() {
            return;
        }
        self.inbox_turn.set(self.polls.get());
        while let Some(msg) = self.shared.inbox.pop() {
            match msg {
                Msg::Wake { slot, seq } => self.ready.push((slot, seq)),
                Msg::Spawn { task, stack, body } => self.insert(task, Start::Deferred(body, stack)),
                Msg::Interrupt(task) => self.deliver_interrupt(&task),
                Msg::ReleaseIo { index, gen } => {
                    let cb = self.io.borrow_mut().release(index, gen);
                    drop(cb);
                }
                Msg::Shutdown => self.shutdown.set(true),
            }
        }
    }

    fn event_loop(&self, done: &dyn Fn(&Hub) -> bool) {
        loop {
            self.run_ready(BUDGET);
            if done(self) {
                return;
            }
            self.drain_inbox();
            if done(self) {
                return;
            }
            let timeout = if !self.ready.is_empty() {
                Some(Duration::ZERO)
            } else {
                self.timers
                    .borrow_mut()
                    .next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()))
            };
            let blocking = timeout != Some(Duration::ZERO);
            if blocking && self.spin_for_inbox() {
                continue;
            }
            if blocking {
                self.shared.sleeping.store(true, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                if !self.shared.inbox.is_empty() {
                    self.shared.sleeping.store(false, Ordering::SeqCst);
                    continue;
                }
                if timeout.is_none() && self.deadlocked() {
                    self.shared.sleeping.store(false, Ordering::SeqCst);
                    self.deadlock();
                }
            }
            self.poll(timeout);
            if blocking {
                self.shared.sleeping.store(false, Ordering::SeqCst);
            }
            self.tick();
        }
    }

    /// After a poll: refresh the loop's clock and fire due timers. With no
    /// timer armed the clock is only needed for `dump`'s "waiting for", so
    /// it is read every 64th turn instead of every turn.
    #[inline]
    fn tick(&self) {
        if self.timers.borrow().len() > 0 || self.polls.get() % 64 == 0 {
            self.now.set(Instant::now());
            self.fire_timers();
        }
    }

    fn poll(&self, timeout: Option<Duration>) {
        self.polls.set(self.polls.get() + 1);
        let mut events = self.events.borrow_mut();
        let r = self.poll.borrow_mut().poll(&mut events, timeout);
        if let Err(e) = r {
            if e.kind() != io::ErrorKind::Interrupted {
                log::error!("greenio: hub {} poll failed: {e}", self.shared.index);
                std::thread::sleep(Duration::from_millis(1));
            }
            return;
        }
        for ev in events.iter() {
            if ev.token() == WAKER {
                continue;
            }
            crate::io::dispatch(self, ev);
        }
    }

    fn fire_timers(&self) {
        let now = self.now.get();
        loop {
            let action = self.timers.borrow_mut().pop_due(now);
            match action {
                None => break,
                Some(Action::Wake(w)) => {
                    w.fire(wait::TIMED_OUT);
                }
                Some(Action::WakeLocal { slot, seq }) => self.wake_local(slot, seq),
                Some(Action::Interrupt {
                    slot,
                    task_id,
                    scope,
                }) => self.expire_scope(slot, task_id, scope),
            }
        }
    }

    /// Nothing can ever wake a green thread of this hub again.
    fn deadlocked(&self) -> bool {
        if self.live.get() == 0
            || !self.ready.is_empty()
            || self.timers.borrow().len() > 0
            || self.external_waits.get() > 0
            || self.io.borrow().has_callbacks()
            || self.shared.unparkers.load(Ordering::SeqCst) > 0
            || self.rt.hubs().len() > 1
            || self.rt.blocking.busy() > 0
        {
            return false;
        }
        // A green thread waiting on a sync primitive may be woken by a plain
        // OS thread holding the other end: only when no such thread can
        // exist is that wait hopeless.
        self.sync_waits.get() == 0 || self.only_runtime_threads()
    }

    fn only_runtime_threads(&self) -> bool {
        match std::fs::read_dir("/proc/self/task") {
            Ok(d) => d.count() <= 1 + self.rt.blocking.threads(),
            Err(_) => false,
        }
    }

    fn deadlock(&self) -> ! {
        let report = format!(
            "greenio: deadlock: every green thread is parked and nothing can wake them \
             (no ready green thread, timer, socket, unparker or other thread):\n{}",
            self.dump()
        );
        log::error!("{report}");
        // Unwind every green thread so borrowed data is released, then
        // report. If they cannot unwind either, abort rather than free
        // stacks that are still in use.
        self.cancel_all();
        let drained = panic::catch_unwind(AssertUnwindSafe(|| {
            self.event_loop_nocheck(|h| h.live.get() == 0);
        }));
        if drained.is_err() || self.live.get() != 0 {
            eprintln!("{report}\ngreenio: green threads could not be unwound; aborting");
            std::process::abort();
        }
        panic!("{report}");
    }

    /// The loop without deadlock detection, for the final drain.
    fn event_loop_nocheck(&self, done: impl Fn(&Hub) -> bool) {
        let mut idle_turns = 0;
        loop {
            let ran = self.run_ready(BUDGET);
            if done(self) {
                return;
            }
            self.drain_inbox();
            self.poll(Some(Duration::ZERO));
            self.now.set(Instant::now());
            self.fire_timers();
            if ran == 0 && self.ready.is_empty() {
                idle_turns += 1;
                if idle_turns > 1000 {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            } else {
                idle_turns = 0;
            }
        }
    }

    pub(crate) fn cancel_all(&self) {
        let all: Vec<Arc<dyn Task>> = self
            .tasks
            .indices()
            .into_iter()
            .filter_map(|i| self.tasks.get(i).map(|s| s.task().clone()))
            .collect();
        for t in &all {
            task::cancel_task(t);
        }
    }

    // ----- entry points ----------------------------------------------------

    /// Runs `f` as the main green thread; returns its value once it and
    /// every other green thread of the hub have finished (the others are
    /// cancelled when main returns).
    pub(crate) fn run_main<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T,
    {
        self.enter(|| {
            let mut out: Option<std::thread::Result<T>> = None;
            let out_ptr: *mut Option<std::thread::Result<T>> = &mut out;
            let packet: Arc<Packet<()>> =
                Arc::new(Packet::new(Some("main".into()), self.shared.clone()));
            let p = packet.clone();
            let body = move || {
                let r = panic::catch_unwind(AssertUnwindSafe(f));
                // SAFETY: `out` lives on run_main's frame, which does not
                // return before this green thread has finished (see below).
                unsafe { *out_ptr = Some(r) };
            };
            let stack = match self.stacks.borrow_mut().get(None) {
                Ok(s) => s,
                Err(e) => panic!("greenio::run: cannot map the main green thread's stack: {e}"),
            };
            let info = StackInfo::of(&stack, packet.header.id, Some("main"));
            // SAFETY: the closure borrows data that outlives this call
            // (`f`'s captures and `out`). The coroutine is driven to
            // completion by the loops below before we return; if it cannot
            // be (a deadlock while unwinding), `deadlock` aborts the process
            // instead of returning, so the borrows never dangle.
            let co = unsafe {
                Co::with_stack_unchecked(stack, move |y: &Yielder<(), ()>, ()| {
                    enter(y);
                    task::root(&p, body);
                })
            };
            self.shared.alive.fetch_add(1, Ordering::Relaxed);
            self.insert(packet.clone(), Start::Ready(co, info));
            self.event_loop(&|_| packet.header.is_finished());
            self.finish();
            match out {
                Some(Ok(v)) => v,
                Some(Err(p)) => panic::resume_unwind(p),
                None => panic!("greenio::run: the main green thread was cancelled"),
            }
        })
    }

    /// Serves a secondary hub until the runtime shuts down.
    pub(crate) fn serve(&self) {
        self.enter(|| {
            self.event_loop(&|h| h.shutdown.get());
            self.finish();
        });
    }

    /// Cancels every remaining green thread and runs until they are gone.
    fn finish(&self) {
        self.cancel_all();
        self.event_loop(&|h| h.live.get() == 0);
    }

    pub(crate) fn stats(&self) -> Stats {
        Stats {
            hub: self.shared.index,
            alive: self.live.get(),
            spawned: self.spawned.get(),
            switches: self.switches.get(),
            polls: self.polls.get(),
            timers: self.timers.borrow().len(),
            pooled_stacks: self.stacks.borrow().pooled(),
            registered_io: self.io.borrow().len(),
        }
    }

    pub(crate) fn stack_size(&self) -> usize {
        self.stacks.borrow().default_size()
    }

    /// One line per green thread: id, name, state, wait, how long.
    pub(crate) fn dump(&self) -> crate::introspect::Dump {
        let now = Instant::now();
        let cur = self.current.get();
        let ready: Vec<u32> = self.ready.slots();
        let mut threads = Vec::new();
        for i in self.tasks.indices() {
            let Some(s) = self.tasks.get(i) else { continue };
            let h = s.header();
            let reason = s.reason.get();
            let state = if i == cur {
                crate::introspect::State::Running
            } else if reason.what == "start" {
                crate::introspect::State::NotStarted
            } else if ready.contains(&i) && h.word.waiting_seq() != Some(s.parked.get()) {
                crate::introspect::State::Ready
            } else {
                crate::introspect::State::Parked
            };
            threads.push(crate::introspect::ThreadInfo {
                id: h.id,
                name: h.name.as_deref().map(str::to_owned),
                state,
                waits_on: (state != crate::introspect::State::Running).then_some(reason.what),
                waiting_for: now.saturating_duration_since(s.since.get()),
            });
        }
        threads.sort_by_key(|t| t.id);
        crate::introspect::Dump {
            hub: self.shared.index,
            threads,
        }
    }
}
