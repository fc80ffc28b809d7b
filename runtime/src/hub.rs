//! The hub loop: one OS thread's event loop, which runs green threads.
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
//!       dispatch readiness to socket waiters and callbacks  <- iotable::dispatch
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
//! from starving sockets and timers. When green threads are still ready
//! after a full budget, the loop polls with a zero timeout, but at most
//! every 50 µs (`poll_due`): a pool of yielding or message-passing green
//! threads then pays one `epoll_wait` per 50 µs instead of one per 256
//! resumes, and sockets and timers still wait at most that long.
//!
//! # The fair budget (`coop.rs`)
//!
//! A green thread that never parks is never switched out: a socket that
//! always has data, a channel that always holds a message. Like tokio's
//! coop budget (128 units per task poll, `tokio::task::coop`), every
//! operation that *may* park spends one unit of the running green
//! thread's budget of 128 (`coop_proceed`); when it is spent the operation
//! first *yields to the loop*: the green thread goes on the `deferred`
//! queue, which is woken only after the next poll and timer check (tokio's
//! deferred yield), so a `yield_now` in the same turn cannot hand it the
//! CPU straight back 256 times. The budget is refilled by any switch; it
//! lives in the hub, stamped with the switch counter, so the switch path
//! does not touch it. `try_*` operations never spend.
//!
//! # The watchdog (`watchdog.rs`)
//!
//! The hub publishes, in `HubShared::watch`, a counter bumped every turn
//! and every resume, an idle flag set around the blocking poll, and the
//! running green thread's header; a monitor thread per runtime reads them
//! and warns while the hub has not come back for `max_blocking_time`.
//!
//! # Layers
//!
//! This file is the middle of the runtime; each file imports only from
//! its own layer's leaves or from below (one exception: `task` and
//! `shared` name each other's types, the header its hub and the inbox its
//! tasks).
//!
//! ```text
//!   leaves    sys (syscall!)  park (park word, WaitReason)  unwind  runq
//!             stack (batched guarded stacks)  timer<A>  blocking (pool)
//!             chunk  coop (budget)  localmap  misuse
//!   core      task (Header, Packet, join protocol, WaitToken)
//!             shared (HubShared inbox, Watch, RuntimeShared)
//!             slab (TaskSlab, Slot, ThreadState)  iotable (readiness,
//!             dispatch through a wake callback)
//!   the loop  hub (Hub, CURRENT + with_hub, switch, waking, the loop)
//!             parking (the green thread's half: block, park_local,
//!             yield, budget, interrupts)  deadlock (the check)
//!   API       green (spawn/join/park/yield/sleep)  wait (Waiter)
//!             io (Registration)  timeout  introspect  unblock  block_on
//!             local (green_local!)  signal  watchdog  runtime (Runtime,
//!             run, the deadlock report)
//!   on top    sync/  group
//! ```
//!
//! Nothing outside this file holds a `&Hub` beyond a [`with_hub`] closure,
//! and the loop never calls up: it learns about cancellation, timeouts and
//! sockets only through the core types.
//!
//! # What a switch costs
//!
//! Measured on the reference VM (2 vCPU, `cargo bench --bench runtime` /
//! `--bench sync`, medians, each next to its raw peer in the same run;
//! instruction counts from callgrind, which repeats exactly):
//!
//! | | greenio | raw peer |
//! |---|---:|---:|
//! | yield round trip (A yields, B runs and yields) | 57.8 ns, 2 x ~185 instructions | corosensei resume+suspend 2.4 ns |
//! | spawn + join of an empty green thread | 156 ns, ~1,550 instructions | create on a reused stack + run 11.6 ns |
//! | channel ping-pong, same hub | 158 ns | |
//! | channel ping-pong, two hubs | 514 ns | crossbeam-channel, 2 OS threads, 610 ns |
//! | unpark from an OS thread until it runs | 22.4 µs | eventfd write -> `epoll_wait` wake 22.1 µs |
//! | echoed message, user space | 575 instructions (callback reactor 450) | mio's hand-written loop 305 |
//!
//! A yield is two corosensei switches plus the bookkeeping on both sides:
//! the interrupt check, a fresh wait number, the run-queue push and pop,
//! the slab lookup, the slot's state, reason and timestamp, the watchdog's
//! turn counter and running header, the stack the overflow handler must
//! know. Each is a few instructions; together they are ~24x a raw pair.
//! Spawn + join is dominated by atomic read-modify-writes (~15 of them:
//! the id, the live counter both ways, the packet's reference counts, the
//! join flags, the joiner's park word, the wake) and a `malloc`/`free` of
//! the packet: the fence of the watchdog's hazard protocol is paid once
//! per four finished green threads (`bury`). A same-hub channel message
//! costs ~9 atomics (three spin-lock acquisitions, the fire and the
//! `Waiter`'s reference counts). What would close the rest: a hub-local
//! `Waiter` without reference counting for same-hub waits, a pooled
//! packet, and a symmetric switch for yields (see below).
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
//! * *Polling I/O after every 256 resumes.* A busy pool of green threads
//!   paid an `epoll_wait(0)` per 128 round trips; polling at most every
//!   50 µs keeps sockets and timers served and drops that cost.
//! * *Freeing a finished green thread's task behind its own fence.* The
//!   watchdog's hazard protocol needs a fence before the header is freed;
//!   batching four per fence keeps malloc's per-thread cache warm (a whole
//!   turn's batch did not: `_int_malloc` doubled).
//! * *A global hub.* Each hub is an explicit value on its OS thread, reached
//!   through one thread-local pointer that is set only while it runs and
//!   never handed out: callers get a `&Hub` inside [`with_hub`]'s closure.

use std::cell::{Cell, RefCell};
use std::io;
use std::ptr;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corosensei::{CoroutineResult, Yielder};
use mio::{Events, Poll, Token};

use crate::coop::Budget;
use crate::iotable::{self, IoTable};
use crate::park::{WaitKind, WaitReason, NOTIFIED, TIMED_OUT};
use crate::runq::RunQueue;
use crate::shared::{HubShared, Msg, RuntimeShared};
use crate::slab::{Co, CoState, Slot, TaskSlab, ThreadState};
use crate::stack::{self, GreenStack, StackInfo, StackPool};
use crate::task::{self, Header, Target, Task, WaitToken};
use crate::timer::Timers;

/// The mio token of the hub's waker.
pub(crate) const WAKER: Token = Token(usize::MAX);
/// Resumes per loop turn before the hub polls again.
const BUDGET: usize = 256;
/// `current` while the loop itself runs.
pub(crate) const NO_SLOT: u32 = u32::MAX;
/// Finished green threads whose tasks are freed together (`bury`).
const GRAVEYARD_BATCH: usize = 4;
/// How long a busy hub may run green threads without polling I/O.
const BUSY_POLL_INTERVAL: Duration = Duration::from_micros(50);
/// Inbox checks before a hub with recent cross-thread traffic sleeps
/// (a few microseconds; see `spin_for_inbox`).
const SPIN_ROUNDS: u32 = 2000;

/// What a hub timer does when it fires.
pub(crate) enum Action {
    /// A `Waiter`'s deadline: fire the park word of the green thread in
    /// `slot` with `TIMED_OUT` if it still waits on `seq` (wait numbers are
    /// unique per hub, so a reused slot cannot match).
    Fire { slot: u32, seq: u64 },
    /// Wake a hub-local wait `(slot, seq)` (sockets, sleeps).
    WakeLocal { slot: u32, seq: u64 },
    /// Expire the timeout scope `scope` of the green thread in `slot`.
    Interrupt { slot: u32, task_id: u64, scope: u64 },
}

/// How a new green thread starts.
pub(crate) enum Start {
    /// With its coroutine built on a stack.
    Ready(Co, StackInfo),
    /// Boxed; its stack is taken when it first runs.
    Deferred(Box<dyn FnOnce()>, Option<usize>),
}

/// The loop found every green thread parked with nothing able to wake
/// them; the caller reports it (see `runtime.rs`).
#[derive(Debug)]
pub(crate) struct Deadlock;

/// The hub itself, owned by its OS thread. Every field is touched only by
/// that thread (the `Arc`s are how other threads reach the shared half).
pub(crate) struct Hub {
    /// What other threads may touch (inbox, waker, counters).
    pub(crate) shared: Arc<HubShared>,
    /// The runtime this hub belongs to.
    pub(crate) rt: Arc<RuntimeShared>,
    poll: RefCell<Poll>,
    events: RefCell<Events>,
    /// The green threads; slots are stable while occupied.
    pub(crate) tasks: TaskSlab,
    pub(crate) ready: RunQueue,
    /// Green threads that spent their fair budget (`coop.rs`): made ready
    /// after the next poll, so timers and sockets get their turn first.
    pub(crate) deferred: RunQueue,
    /// Sleeps, wait deadlines and timeout scopes.
    pub(crate) timers: RefCell<Timers<Action>>,
    /// Registered I/O sources.
    pub(crate) io: RefCell<IoTable>,
    /// Stacks for reuse.
    pub(crate) stacks: RefCell<StackPool>,
    /// Finished green threads whose task is dropped at the end of the
    /// turn (`bury`).
    graveyard: RefCell<Vec<Arc<dyn Task>>>,
    /// Slot of the running green thread, `NO_SLOT` in the loop.
    pub(crate) current: Cell<u32>,
    /// Pointer to that slot (valid while `current != NO_SLOT`).
    cur_slot: Cell<*const Slot>,
    /// Last wait number handed out (`next_seq`).
    seq: Cell<u64>,
    /// Last timeout scope number handed out (`timeout.rs`).
    pub(crate) scope_seq: Cell<u64>,
    /// The loop's clock, refreshed after every poll that has timers.
    now: Cell<Instant>,
    /// When a busy loop last polled (`poll_due`).
    last_poll: Cell<Instant>,
    /// Green threads spawned but not yet run once.
    pub(crate) unstarted: Cell<usize>,
    /// Green threads parked on I/O, signals or the blocking pool.
    pub(crate) external_waits: Cell<usize>,
    /// Green threads parked on sync primitives.
    pub(crate) sync_waits: Cell<usize>,
    /// A `Shutdown` message arrived.
    shutdown: Cell<bool>,
    /// The hub is cancelling everything: late arrivals are cancelled too.
    finishing: Cell<bool>,
    /// `polls` when the inbox last had messages.
    inbox_turn: Cell<u64>,
    pub(crate) spawned: Cell<u64>,
    pub(crate) switches: Cell<u64>,
    pub(crate) polls: Cell<u64>,
    /// The running green thread's fair budget (`coop.rs`).
    pub(crate) coop: Budget,
}

thread_local! {
    static CURRENT: Cell<*const Hub> = const { Cell::new(ptr::null()) };
}

/// Runs `f` with this thread's hub, if one is running here.
///
/// This is the only way to reach a hub: the reference cannot escape the
/// closure, and the hub outlives every call (it clears `CURRENT` before it
/// is dropped).
#[inline]
pub(crate) fn with_hub<R>(f: impl FnOnce(&Hub) -> R) -> Option<R> {
    let h = CURRENT.with(Cell::get);
    if h.is_null() {
        None
    } else {
        // SAFETY: CURRENT is non-null only while the hub is alive and
        // running on this thread (set and cleared by `Hub::enter`, whose
        // frame owns the hub for that whole time).
        Some(f(unsafe { &*h }))
    }
}

/// The current hub's shared half.
pub(crate) fn current_shared() -> Option<Arc<HubShared>> {
    with_hub(|h| h.shared.clone())
}

/// The current hub's runtime.
pub(crate) fn current_runtime() -> Option<Arc<RuntimeShared>> {
    with_hub(|h| h.rt.clone())
}

/// Whether a hub runs on this thread (in a green thread or a callback).
pub(crate) fn on_hub_thread() -> bool {
    !CURRENT.with(Cell::get).is_null()
}

/// Whether the caller is a green thread.
pub(crate) fn in_green_thread() -> bool {
    with_hub(Hub::in_green).unwrap_or(false)
}

/// Runs `f` with the hub and the running green thread, if any.
#[inline]
pub(crate) fn with_current_task<R>(f: impl FnOnce(&Hub, &Arc<dyn Task>) -> R) -> Option<R> {
    with_hub(|hub| {
        if hub.current.get() == NO_SLOT {
            return None;
        }
        let task = hub.cur().task();
        Some(f(hub, task))
    })
    .flatten()
}

/// Makes `slot` of `hub` runnable for wait `seq` (after a won fire):
/// directly when called on that hub's thread, else through its inbox.
#[inline]
pub(crate) fn schedule(hub: &HubShared, slot: u32, seq: u64) {
    let local = with_hub(|h| {
        if ptr::eq(&*h.shared, hub) {
            h.make_ready(slot, seq);
            true
        } else {
            false
        }
    });
    if local != Some(true) {
        hub.send(Msg::Wake { slot, seq });
    }
}

/// Fires `token` with `state` (`NOTIFIED` or `TIMED_OUT`) and, if this call
/// won, makes its owner runnable. Usable from any thread.
#[inline]
pub(crate) fn fire(token: &WaitToken, state: u64) -> bool {
    match &token.target {
        Target::Green(t) => fire_green(t.header(), token.seq, state),
        Target::Os(p) => {
            if p.word.fire(token.seq, state) {
                p.thread.unpark();
                true
            } else {
                false
            }
        }
    }
}

/// Fires wait `seq` of the green thread with header `h` and, if this call
/// won, makes it runnable on its hub. Usable from any thread.
#[inline]
pub(crate) fn fire_green(h: &Header, seq: u64, state: u64) -> bool {
    if h.word.fire(seq, state) {
        schedule(&h.hub, h.slot.load(Ordering::Acquire), seq);
        true
    } else {
        false
    }
}

/// Cancels `task`: sets its sticky `CANCEL` flag and delivers the
/// interrupt (a no-op if it was already cancelled or has finished).
pub(crate) fn cancel(task: &Arc<dyn Task>) {
    if task.header().set_cancelled() {
        interrupt(task.clone());
    }
}

/// Delivers a cancellation to `task` (whose `CANCEL` flag is set) on its
/// hub: at once when that is this thread's hub, else through the inbox.
fn interrupt(task: Arc<dyn Task>) {
    let hub = &task.header().hub;
    let local = with_hub(|h| {
        let mine = ptr::eq(&*h.shared, &**hub);
        if mine {
            h.deliver_interrupt(&task);
        }
        mine
    });
    if local != Some(true) {
        hub.send(Msg::Interrupt(task.clone()));
    }
}

/// Entry point of every coroutine: records its yielder before the body runs.
pub(crate) fn enter(y: &Yielder<(), ()>) {
    with_hub(|hub| {
        hub.cur().yielder.set(y);
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
            deferred: RunQueue::new(),
            timers: RefCell::new(Timers::default()),
            io: RefCell::new(IoTable::default()),
            stacks: RefCell::new(StackPool::new(stack_size)),
            graveyard: RefCell::new(Vec::new()),
            current: Cell::new(NO_SLOT),
            cur_slot: Cell::new(ptr::null()),
            seq: Cell::new(0),
            scope_seq: Cell::new(0),
            now: Cell::new(Instant::now()),
            last_poll: Cell::new(Instant::now()),
            unstarted: Cell::new(0),
            external_waits: Cell::new(0),
            sync_waits: Cell::new(0),
            shutdown: Cell::new(false),
            finishing: Cell::new(false),
            inbox_turn: Cell::new(u64::MAX - 8),
            spawned: Cell::new(0),
            switches: Cell::new(0),
            polls: Cell::new(0),
            coop: Budget::default(),
        }
    }

    /// Builds the shared half and the poller of hub `index`.
    pub(crate) fn create(index: usize) -> io::Result<(Arc<HubShared>, Poll)> {
        let poll = Poll::new()?;
        let shared = Arc::new(HubShared::new(index, &poll, WAKER)?);
        Ok((shared, poll))
    }

    /// A fresh wait number, unique on this hub.
    #[inline]
    pub(crate) fn next_seq(&self) -> u64 {
        let s = self.seq.get() + 1;
        self.seq.set(s);
        s
    }

    /// The poller (to register sources).
    pub(crate) fn poll_registry(&self) -> std::cell::Ref<'_, Poll> {
        self.poll.borrow()
    }

    /// Makes this hub the current one of this thread for the closure.
    pub(crate) fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
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

    // ----- the task table -------------------------------------------------

    /// Spawns `body` on this hub as green thread `task`. The stack is taken
    /// now when it is cheap (from the pool, or when no other green thread
    /// is waiting for its first run), so `mmap` failures surface here as an
    /// error; during a burst of spawns that outpaces the pool, the body is
    /// boxed and its stack is taken when it first runs, by which time
    /// earlier green threads may have returned theirs. A burst of 100,000
    /// spawns thus needs a handful of stacks, not 100,000 (and 200,000
    /// memory mappings).
    pub(crate) fn spawn_local(
        &self,
        task: Arc<dyn Task>,
        stack_size: Option<usize>,
        body: impl FnOnce() + 'static,
    ) -> io::Result<()> {
        let eager = self.unstarted.get() == 0 || self.stacks.borrow().has_free(stack_size);
        let start = if eager {
            let stack = self.stacks.borrow_mut().get(stack_size)?;
            let h = task.header();
            let info = StackInfo::of(&stack, h.id, h.name.as_deref(), h.site);
            let co = Co::with_stack(stack, move |y: &Yielder<(), ()>, ()| {
                enter(y);
                body();
            });
            Start::Ready(co, info)
        } else {
            Start::Deferred(Box::new(body), stack_size)
        };
        self.shared.alive.fetch_add(1, Ordering::Relaxed);
        self.insert(task, start);
        Ok(())
    }

    /// Adds a spawned green thread (counted in `alive` by the spawner) and
    /// queues its first run.
    pub(crate) fn insert(&self, task: Arc<dyn Task>, start: Start) {
        let seq = self.next_seq();
        let finishing = self.finishing.get();
        let cancel_now = finishing.then(|| task.clone());
        let slot = self.tasks.insert(task);
        let s = self.tasks.get(slot).expect("just inserted");
        s.header().slot.store(slot, Ordering::Release);
        let (co, stack) = match start {
            Start::Ready(co, info) => (CoState::Ready(co), info),
            Start::Deferred(body, size) => (CoState::Deferred(body, size), StackInfo::NONE),
        };
        // SAFETY: the slot was free until now: nothing else borrows its
        // coroutine cell.
        unsafe { *s.co.get() = Some(co) };
        s.parked.set(seq);
        s.state.set(ThreadState::NotStarted);
        s.reason.set(WaitReason::local("first run"));
        s.since.set(self.now.get());
        s.stack.set(stack);
        self.ready.push((slot, seq));
        self.unstarted.set(self.unstarted.get() + 1);
        self.spawned.set(self.spawned.get() + 1);
        if let Some(task) = cancel_now {
            cancel(&task);
        }
    }

    /// Drops a finished green thread's slot and recycles its stack.
    fn remove(&self, slot: u32, stack: Option<GreenStack>) {
        let task = self.tasks.remove(slot);
        if let Some(st) = stack {
            self.stacks.borrow_mut().put(st);
        }
        self.shared.alive.fetch_sub(1, Ordering::Relaxed);
        // The watchdog may be reading this header: free it only in `bury`,
        // one fence per few green threads (a small batch keeps malloc's
        // per-thread cache warm for the next spawn).
        if let Some(t) = task {
            let full = {
                let mut g = self.graveyard.borrow_mut();
                g.push(t);
                g.len() >= GRAVEYARD_BATCH
            };
            if full {
                self.bury();
            }
        }
    }

    /// Drops the tasks of green threads that finished since the last call,
    /// once the watchdog is not reading any of their headers (see
    /// `Watch::retire`).
    #[inline]
    pub(crate) fn bury(&self) {
        if self.graveyard.borrow().is_empty() {
            return;
        }
        let mut dead = std::mem::take(&mut *self.graveyard.borrow_mut());
        self.shared
            .watch
            .retire_all(dead.iter().map(|t| t.header()));
        dead.clear();
        // Keep the allocation for the next batch (unless one was started
        // by a destructor run by `clear`).
        let mut g = self.graveyard.borrow_mut();
        if g.is_empty() {
            *g = dead;
        }
    }

    // ----- running ----------------------------------------------------------

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
                let info = StackInfo::of(&st, h.id, h.name.as_deref(), h.site);
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
                self.unstarted.set(self.unstarted.get() - 1);
                if let Some(joiner) = task::fail_spawn(&task, e) {
                    fire(&joiner, NOTIFIED);
                }
                self.remove(slot, None);
            }
        }
    }

    #[inline]
    fn resume(&self, slot: u32, s: &Slot) {
        if s.state.get() == ThreadState::NotStarted {
            self.unstarted.set(self.unstarted.get() - 1);
        }
        s.state.set(ThreadState::Running);
        self.current.set(slot);
        self.cur_slot.set(s);
        stack::set_running(s.stack.as_ptr());
        self.switches.set(self.switches.get() + 1);
        self.shared.watch.enter(s.header());
        // SAFETY: the hub is the only one to borrow the coroutine cell, and
        // the green thread inside never touches its own handle.
        let r = match unsafe { &mut *s.co.get() } {
            Some(CoState::Ready(co)) => co.resume(()),
            _ => return,
        };
        self.shared.watch.leave();
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

    /// The running green thread's slot.
    ///
    /// # Panics
    ///
    /// Outside a green thread.
    #[inline]
    pub(crate) fn cur(&self) -> &Slot {
        assert!(
            self.current.get() != NO_SLOT,
            "greenio: green-thread operation outside a green thread"
        );
        // SAFETY: `current != NO_SLOT`, so `resume` has set `cur_slot` to
        // the running green thread's slot, whose chunk never moves and which
        // stays occupied while the green thread runs.
        unsafe { &*self.cur_slot.get() }
    }

    /// Suspends the running green thread (slot `s`), parked on `seq` in
    /// `state` (`Parked`, or `Ready` when it queued itself).
    #[inline]
    pub(crate) fn suspend_slot(&self, s: &Slot, seq: u64, reason: WaitReason, state: ThreadState) {
        s.parked.set(seq);
        s.state.set(state);
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
        let y = s.yielder.get();
        // SAFETY: `y` is the yielder of the running coroutine (slot `s`),
        // recorded by `enter` on its stack; it stays valid while the coroutine exists,
        // and we are executing on that coroutine now.
        unsafe { (*y).suspend(()) };
        if let Some(c) = counter {
            c.set(c.get() - 1);
        }
    }

    // ----- waking -----------------------------------------------------------

    /// Queues the green threads that yielded to the loop (after a poll).
    #[inline]
    fn wake_deferred(&self) {
        while let Some((slot, seq)) = self.deferred.pop() {
            self.make_ready(slot, seq);
        }
    }

    /// Queues `slot` if it is parked on wait `seq`: hub-local wakes need no
    /// atomics. A duplicate or stale wake is skipped here or by
    /// `run_ready`'s `parked == seq` check.
    #[inline]
    pub(crate) fn make_ready(&self, slot: u32, seq: u64) {
        if let Some(s) = self.tasks.get(slot) {
            if s.parked.get() == seq {
                s.state.set(ThreadState::Ready);
                self.ready.push((slot, seq));
            }
        }
    }

    /// Whether `slot` is parked on wait `seq`.
    #[inline]
    pub(crate) fn is_parked_on(&self, slot: u32, seq: u64) -> bool {
        self.tasks.get(slot).is_some_and(|s| s.parked.get() == seq)
    }

    /// Marks `slot` interrupted and resumes it if parked, so it notices.
    pub(crate) fn kick(&self, slot: u32) {
        if let Some(s) = self.tasks.get(slot) {
            s.interrupted.set(true);
            let parked = s.parked.get();
            if parked != 0 {
                self.make_ready(slot, parked);
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

    /// Delivers the expiry of timeout scope `scope` to `slot` if it still
    /// holds green thread `task_id`.
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

    /// Cancels every green thread of the hub (they unwind when next run).
    pub(crate) fn cancel_all(&self) {
        let all: Vec<Arc<dyn Task>> = self
            .tasks
            .indices()
            .into_iter()
            .filter_map(|i| self.tasks.get(i).map(|s| s.task().clone()))
            .collect();
        for t in &all {
            cancel(t);
        }
    }

    // ----- the loop ---------------------------------------------------------

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
                Msg::Wake { slot, seq } => self.make_ready(slot, seq),
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

    /// Runs the loop until `done` holds. With `detect`, returns
    /// `Err(Deadlock)` instead of sleeping forever when nothing can ever
    /// wake a green thread again.
    pub(crate) fn event_loop(
        &self,
        done: &dyn Fn(&Hub) -> bool,
        detect: bool,
    ) -> Result<(), Deadlock> {
        loop {
            self.shared.watch.turn();
            self.run_ready(BUDGET);
            self.bury();
            if done(self) {
                return Ok(());
            }
            self.drain_inbox();
            if done(self) {
                return Ok(());
            }
            let timeout = if !self.ready.is_empty() || !self.deferred.is_empty() {
                Some(Duration::ZERO)
            } else {
                self.timers
                    .borrow_mut()
                    .next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()))
            };
            let blocking = timeout != Some(Duration::ZERO);
            if !blocking && self.deferred.is_empty() && !self.poll_due() {
                // Green threads keep each other busy: let them run on
                // rather than pay an `epoll_wait(0)` every 256 resumes.
                continue;
            }
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
                if detect && timeout.is_none() && self.deadlocked() {
                    self.shared.sleeping.store(false, Ordering::SeqCst);
                    return Err(Deadlock);
                }
            }
            self.shared.watch.set_idle(blocking);
            self.poll(timeout);
            if blocking {
                self.shared.sleeping.store(false, Ordering::SeqCst);
                self.shared.watch.set_idle(false);
            }
            self.tick();
            self.wake_deferred();
            // Wakes that arrived while we slept run in the next turn
            // without another (zero-timeout) poll first.
            self.drain_inbox();
        }
    }

    /// Whether a busy loop (green threads still ready after a full budget)
    /// should poll now: at most every `BUSY_POLL_INTERVAL`, so sockets and
    /// timers are served within ~50 µs while a pool of yielding or
    /// message-passing green threads pays one `epoll_wait` per interval
    /// instead of one per 256 resumes (tokio polls every 61 tasks, Go's
    /// scheduler when idle or every 10 ms from its monitor).
    #[inline]
    fn poll_due(&self) -> bool {
        let now = Instant::now();
        if now.saturating_duration_since(self.last_poll.get()) >= BUSY_POLL_INTERVAL {
            self.last_poll.set(now);
            true
        } else {
            false
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
            iotable::dispatch(&self.io, ev, |slot, seq| self.make_ready(slot, seq));
        }
    }

    fn fire_timers(&self) {
        let now = self.now.get();
        loop {
            let action = self.timers.borrow_mut().pop_due(now);
            match action {
                None => break,
                Some(Action::Fire { slot, seq }) => {
                    if let Some(s) = self.tasks.get(slot) {
                        if s.header().word.fire(seq, TIMED_OUT) {
                            self.make_ready(slot, seq);
                        }
                    }
                }
                Some(Action::WakeLocal { slot, seq }) => self.make_ready(slot, seq),
                Some(Action::Interrupt {
                    slot,
                    task_id,
                    scope,
                }) => self.expire_scope(slot, task_id, scope),
            }
        }
    }

    /// The loop without sleeping or deadlock detection, for the final
    /// drain after a deadlock: gives up after ~1 s without progress.
    pub(crate) fn drain_nocheck(&self, done: impl Fn(&Hub) -> bool) {
        let mut idle_turns = 0;
        loop {
            self.shared.watch.turn();
            let ran = self.run_ready(BUDGET);
            self.bury();
            if done(self) {
                return;
            }
            self.drain_inbox();
            self.poll(Some(Duration::ZERO));
            self.now.set(Instant::now());
            self.fire_timers();
            self.wake_deferred();
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

    /// Cancels every remaining green thread and runs until they are gone.
    pub(crate) fn finish(&self) -> Result<(), Deadlock> {
        self.finishing.set(true);
        self.cancel_all();
        self.event_loop(&|h| h.shared.alive() == 0, true)
    }

    /// Whether the runtime asked this hub to stop.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shutdown.get()
    }

    // ----- introspection ----------------------------------------------------

    /// The default stack size of this hub's green threads.
    pub(crate) fn stack_size(&self) -> usize {
        self.stacks.borrow().default_size()
    }

    /// Calls `f` with every green thread's slot (for `dump`).
    pub(crate) fn for_each_slot(&self, mut f: impl FnMut(&Slot)) {
        for i in self.tasks.indices() {
            if let Some(s) = self.tasks.get(i) {
                f(s);
            }
        }
    }
}
