//! What other threads may touch of a hub and of a runtime.
//!
//! A hub's own state lives on its OS thread (`hub.rs`) and is reached only
//! there. Everything another thread needs — to wake a green thread, to
//! spawn onto the hub, to cancel, to release a socket slot — goes through
//! [`HubShared`]: a lock-free inbox of [`Msg`]s plus a `mio::Waker` that is
//! written only when the hub is about to sleep. [`RuntimeShared`] lists the
//! hubs of a runtime and owns its blocking pool.

use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crossbeam_queue::SegQueue;

use crate::blocking::BlockingPool;
use crate::task::Task;

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
}

impl RuntimeShared {
    /// The runtime's hubs, in index order.
    pub(crate) fn hubs(&self) -> &[Arc<HubShared>] {
        self.hubs.get().map_or(&[], Vec::as_slice)
    }
}
