//! What other threads may touch of a hub and of a runtime.
//!
//! A hub's own state lives on its OS thread (`hub.rs`) and is reached only
//! there. Everything another thread needs — to wake a green thread, to
//! spawn onto the hub, to cancel, to release a socket slot — goes through
//! [`HubShared`]: a lock-free inbox of [`Msg`]s plus a `mio::Waker` that is
//! written only when the hub is about to sleep. [`RuntimeShared`] lists the
//! hubs of a runtime and owns its blocking pool.

use std::sync::atomic::{
    fence, AtomicBool, AtomicI32, AtomicPtr, AtomicU64, AtomicUsize, Ordering,
};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crossbeam_queue::SegQueue;

use crate::blocking::BlockingPool;
use crate::task::{Header, Task};

/// Messages from other threads to a hub.
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
    /// Position in the runtime's hub list. Immutable.
    pub(crate) index: usize,
    /// Messages from other threads: pushed by anyone, drained by the hub
    /// every turn.
    pub(crate) inbox: SegQueue<Msg>,
    /// Wakes the hub's `epoll_wait`; written by `send` only when `sleeping`.
    pub(crate) waker: mio::Waker,
    /// Set by the hub just before a blocking poll, cleared by the first
    /// sender that sees it (who then writes the waker) or by the hub.
    pub(crate) sleeping: AtomicBool,
    /// Green threads alive on this hub, including remote spawns still in
    /// the inbox: incremented by the spawner, decremented by the hub when
    /// one finishes. The only live counter (balancing, stats, exit checks).
    pub(crate) alive: AtomicUsize,
    /// Live `Unparker`s of this hub's green threads (deadlock detection);
    /// touched by whoever clones or drops one.
    pub(crate) unparkers: AtomicUsize,
    /// The hub's mio registry, usable from any thread (deregistration).
    pub(crate) registry: mio::Registry,
    /// What the blocking watchdog reads (see [`Watch`]).
    pub(crate) watch: Watch,
    /// The most stack any green thread of this hub was seen to touch, in
    /// bytes; raised by `stats` and `dump` on the hub's thread.
    pub(crate) stack_high_water: AtomicUsize,
}

/// What the watchdog's monitor thread (`watchdog.rs`) reads of a hub while
/// the hub runs: a turn counter, whether the hub is idle, and which green
/// thread runs. Written only by the hub (plain stores, no read-modify-write
/// on the switch path); on a cache line of its own, so those stores do not
/// bounce the line of the inbox that other threads write.
///
/// Reading the running green thread's header from the monitor is guarded
/// like a hazard pointer: the monitor publishes the header it is about to
/// read in `inspecting`, then re-checks `running`; the hub, before it drops
/// a finished green thread, clears `running` (it already has, on return
/// from `resume`) and waits while `inspecting` names that header. A
/// sequentially consistent fence on each side (Dekker's pattern) makes sure
/// at least one of them sees the other.
#[repr(align(128))]
pub(crate) struct Watch {
    /// Bumped by the hub once per loop turn and once per resume: a stalled
    /// hub is one whose counter stands still while it is not idle.
    turn: AtomicU64,
    /// The hub is not in a position to stall: before and after its loop,
    /// and while it sleeps in `epoll_wait`. Written by the hub.
    idle: AtomicBool,
    /// Header of the green thread running now, null in the loop. Written by
    /// the hub around each resume (release, so the monitor sees the header
    /// initialised).
    running: AtomicPtr<Header>,
    /// The header the monitor is reading now, null if none. Written by the
    /// monitor; read by the hub before it frees a header.
    inspecting: AtomicPtr<Header>,
    /// Stalls reported on this hub; bumped by the monitor.
    pub(crate) stalls: AtomicU64,
    /// The hub's OS thread id (for its scheduler statistics), 0 before it
    /// starts. Written by the hub when its loop starts.
    pub(crate) tid: AtomicI32,
}

/// One observation of a hub by the monitor (see [`Watch::observe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Observed {
    pub(crate) turn: u64,
    pub(crate) running: usize,
    pub(crate) idle: bool,
}

/// Who a stalled hub is running, as the watchdog names it.
#[derive(Debug, Clone)]
pub(crate) struct Culprit {
    pub(crate) id: u64,
    pub(crate) name: Option<String>,
    pub(crate) site: &'static std::panic::Location<'static>,
}

impl Watch {
    fn new() -> Watch {
        Watch {
            turn: AtomicU64::new(0),
            idle: AtomicBool::new(true),
            running: AtomicPtr::new(std::ptr::null_mut()),
            inspecting: AtomicPtr::new(std::ptr::null_mut()),
            stalls: AtomicU64::new(0),
            tid: AtomicI32::new(0),
        }
    }

    /// The hub starts a loop turn. Hub only.
    #[inline]
    pub(crate) fn turn(&self) {
        let t = self.turn.load(Ordering::Relaxed);
        self.turn.store(t.wrapping_add(1), Ordering::Relaxed);
    }

    /// The hub goes idle (`true`: about to sleep, or outside its loop) or
    /// back to work. Hub only.
    #[inline]
    pub(crate) fn set_idle(&self, idle: bool) {
        self.idle.store(idle, Ordering::Relaxed);
    }

    /// The hub resumes the green thread with header `h`: a new turn too, so
    /// a green thread resumed twice between two observations (it yielded)
    /// is not taken for one that never parked. Hub only.
    #[inline]
    pub(crate) fn enter(&self, h: &Header) {
        self.turn();
        self.running
            .store(h as *const Header as *mut Header, Ordering::Release);
    }

    /// The running green thread suspended or returned. Hub only.
    #[inline]
    pub(crate) fn leave(&self) {
        self.running.store(std::ptr::null_mut(), Ordering::Relaxed);
    }

    /// The hub is about to drop its references to the headers `hs` of
    /// finished green threads (after `leave`): waits while the monitor
    /// reads one of them (microseconds, and only if the monitor caught it
    /// running). One fence for the whole batch.
    #[inline]
    pub(crate) fn retire_all<'a>(&self, hs: impl Iterator<Item = &'a Header> + Clone) {
        fence(Ordering::SeqCst);
        loop {
            let p = self.inspecting.load(Ordering::Relaxed);
            if p.is_null() || !hs.clone().any(|h| std::ptr::eq(h, p)) {
                return;
            }
            std::hint::spin_loop();
        }
    }

    /// The hub's state now. Monitor side.
    pub(crate) fn observe(&self) -> Observed {
        Observed {
            turn: self.turn.load(Ordering::Relaxed),
            running: self.running.load(Ordering::Relaxed) as usize,
            idle: self.idle.load(Ordering::Relaxed),
        }
    }

    /// The green thread running now, if it is still the one at `running`
    /// (from [`observe`](Self::observe)). Monitor side.
    pub(crate) fn culprit(&self, running: usize) -> Option<Culprit> {
        let p = running as *mut Header;
        if p.is_null() {
            return None;
        }
        self.inspecting.store(p, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let found = if self.running.load(Ordering::Acquire) == p {
            // SAFETY: `running` still names `p` after we published it in
            // `inspecting` (fenced), so the hub had not yet passed `retire`
            // for it and will wait there until we clear `inspecting`: the
            // header is alive, and its fields are immutable after spawn
            // (the acquire load pairs with the hub's release in `enter`).
            let h = unsafe { &*p };
            Some(Culprit {
                id: h.id,
                name: h.name.as_deref().map(str::to_owned),
                site: h.site,
            })
        } else {
            None
        };
        self.inspecting
            .store(std::ptr::null_mut(), Ordering::Release);
        found
    }
}

impl HubShared {
    /// Builds the shared half of hub `index` around its poller.
    pub(crate) fn new(index: usize, poll: &mio::Poll, waker: mio::Token) -> std::io::Result<Self> {
        Ok(HubShared {
            index,
            inbox: SegQueue::new(),
            waker: mio::Waker::new(poll.registry(), waker)?,
            sleeping: AtomicBool::new(false),
            alive: AtomicUsize::new(0),
            unparkers: AtomicUsize::new(0),
            registry: poll.registry().try_clone()?,
            watch: Watch::new(),
            stack_high_water: AtomicUsize::new(0),
        })
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

    /// Sends a green thread to this hub from another thread.
    pub(crate) fn spawn_remote(
        &self,
        task: Arc<dyn Task>,
        stack: Option<usize>,
        body: Box<dyn FnOnce() + Send>,
    ) {
        self.alive.fetch_add(1, Ordering::Relaxed);
        self.send(Msg::Spawn { task, stack, body });
    }

    /// Green threads alive on this hub.
    #[inline]
    pub(crate) fn alive(&self) -> usize {
        self.alive.load(Ordering::Relaxed)
    }
}

/// What every hub of a runtime shares.
pub(crate) struct RuntimeShared {
    /// The hubs, set once when the runtime is built.
    pub(crate) hubs: OnceLock<Vec<Arc<HubShared>>>,
    /// The pool behind `unblock`.
    pub(crate) blocking: BlockingPool,
    /// The watchdog's threshold; `Duration::ZERO` when it is off.
    pub(crate) max_blocking_time: Duration,
    /// OS threads of the runtime besides hubs and the blocking pool (the
    /// monitor: 0 or 1), so the deadlock check does not take them for user
    /// threads that might still wake a green thread. Set by `Runtime::run`.
    pub(crate) monitor_threads: AtomicUsize,
}

impl RuntimeShared {
    /// The runtime's hubs, in index order.
    pub(crate) fn hubs(&self) -> &[Arc<HubShared>] {
        self.hubs.get().map_or(&[], Vec::as_slice)
    }
}
