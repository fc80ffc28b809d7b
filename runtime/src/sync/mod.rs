//! Channels and synchronization primitives for green threads, hubs and
//! plain OS threads.
//!
//! Every type here works the same way whoever calls it: a green thread
//! parks (its hub keeps running other green threads), a plain OS thread
//! blocks. So a green thread on hub 0, one on hub 1 and a worker
//! `std::thread` can share one [`Receiver`] or one [`Mutex`].
//!
//! | type | what it is | gevent / Go / std twin |
//! | --- | --- | --- |
//! | [`channel`], [`bounded`] | MPMC channels; `bounded(0)` is a rendezvous | `gevent.queue`, Go `chan` |
//! | [`Select`] | wait on several channel operations, with a timeout or default | Go `select` |
//! | [`Mutex`] | a lock that parks instead of blocking the hub | `gevent.lock.RLock` |
//! | [`RwLock`] | readers-writer lock, writers preferred | `std::sync::RwLock` |
//! | [`Semaphore`] | counted permits with RAII guards | `gevent.lock.Semaphore` |
//! | [`Event`] | a flag green threads wait on | `gevent.event.Event` |
//! | [`WaitGroup`] | wait for a count to reach zero | Go `sync.WaitGroup` |
//! | [`Barrier`] | wait until `n` arrive | `std::sync::Barrier` |
//! | [`oneshot::AsyncResult`] | a value or error set once, awaited by many | `gevent.event.AsyncResult` |
//!
//! # A first example
//!
//! ```
//! use greenio::sync::{channel, Mutex};
//! use std::sync::Arc;
//!
//! greenio::run(|| {
//!     let (tx, rx) = channel();
//!     let total = Arc::new(Mutex::new(0));
//!     for i in 0..4 {
//!         let (tx, total) = (tx.clone(), total.clone());
//!         greenio::spawn(move || {
//!             *total.lock() += i;
//!             tx.send(i).unwrap();
//!         });
//!     }
//!     drop(tx);
//!     let got: Vec<i32> = rx.iter().collect(); // ends when every sender is gone
//!     assert_eq!(got.len(), 4);
//!     assert_eq!(*total.lock(), 6);
//! });
//! ```
//!
//! # How they wait: wake and re-check
//!
//! Each primitive keeps its state under a short internal spinlock that is
//! never held across a park, and a FIFO of [`Waiter`] tokens. A waker
//! pops tokens and calls `wake` until one succeeds (a failed wake means
//! that waiter already left: it timed out or was cancelled). The woken
//! side then *re-checks* the state under the lock: nothing is ever handed
//! to a waiter. That is what keeps cancellation safe: a green thread
//! cancelled or timed out while parked in `recv`, `lock`, `acquire` or
//! `wait` leaves by unwinding, its token can no longer be woken, and the
//! wakeup goes to the next waiter, so it never steals a message, a permit
//! or a lock. A green thread that is woken and cancelled in the same
//! instant does not consume either: it passes the wakeup on to the next
//! waiter and unwinds. So does a [`Select`] woken by one channel that
//! ends up taking from another.
//!
//! The price is that wakeups are not hand-offs: a running green thread may
//! take a message or a lock before the one that was woken for it gets to
//! run ("barging"); the woken one then queues again. Throughput is better
//! and no state is ever owned by a green thread that is not running.
//!
//! # Many hubs, and why green threads never migrate
//!
//! A [`Runtime`](crate::Runtime) with `hubs(n)` runs `n` OS threads, each
//! with its own event loop, stack pool and timers. There is deliberately
//! **no work stealing**: a green thread is a whole machine stack, and
//! moving a suspended stack to another OS thread would silently break
//! every `!Send` value on it (an `Rc`, a `RefCell` borrow, a `MutexGuard`
//! of `std`) and every thread-local it has cached a reference to. That is
//! the known unsoundness of stackful runtimes that migrate coroutines;
//! greenio's `spawn` takes closures that are not `Send` precisely because
//! they stay on one OS thread.
//!
//! Load spreads at spawn time instead: [`spawn_on`](crate::spawn_on) puts a
//! green thread on a chosen hub, [`spawn_balanced`](crate::spawn_balanced)
//! on the hub with the fewest live green threads, and servers hand
//! accepted connections to hubs. The primitives in this module are the
//! glue between hubs: a wake from another hub travels through that hub's
//! lock-free inbox.
//!
//! # Errors
//!
//! Channel errors are named after the methods that return them, as in
//! crossbeam-channel: `try_send` returns [`TrySendError`], `recv_timeout`
//! returns [`RecvTimeoutError`], and so on. The other primitives have no
//! errors: [`Mutex`] and [`RwLock`] are not poisoned by panics (like
//! parking_lot), timeouts return `None` or `false`.

use std::cell::Cell;
use std::collections::VecDeque;
use std::time::Instant;

use crate::wait::{WaitReason, Waiter, Wake};
use spin::{SpinGuard, SpinLock};

mod barrier;
mod channel;
mod error;
mod event;
mod mutex;
pub mod oneshot;
mod rwlock;
mod select;
mod semaphore;
pub(crate) mod spin;
mod waitgroup;

pub use barrier::{Barrier, BarrierWaitResult};
pub use channel::{bounded, channel, IntoIter, Iter, Receiver, Sender, TryIter};
pub use error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
pub use event::Event;
pub use mutex::{Mutex, MutexGuard};
pub use oneshot::AsyncResult;
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use select::Select;
pub use semaphore::{Semaphore, SemaphorePermit};
pub use waitgroup::WaitGroup;

/// Locks an internal state lock (see [`spin`]). These locks are held for
/// a few instructions, never across a park, and no user code runs under
/// them.
#[inline]
pub(crate) fn lock<T>(m: &SpinLock<T>) -> SpinGuard<'_, T> {
    m.lock()
}

/// Parks on `w`, which the caller has queued, and keeps the queue honest
/// however the wait ends:
///
/// * timed out, or unwinding because the green thread was cancelled while
///   parked: `unqueue` removes the token (a waker can no longer fire it,
///   and it must not pile up);
/// * woken, but the green thread has a cancellation or an expired
///   [`timeout`](crate::timeout) scope pending: it must not consume what it
///   was woken for, so `pass_on` gives the wakeup to the next waiter and
///   the green thread unwinds now;
/// * woken: the waker already popped the token; the caller re-checks.
#[inline]
pub(crate) fn park(
    w: &Waiter,
    deadline: Option<Instant>,
    reason: WaitReason,
    unqueue: impl FnOnce(),
    pass_on: impl FnOnce(),
) -> Wake {
    struct OnDrop<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for OnDrop<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    let mut unqueue = OnDrop(Some(unqueue));
    let r = w.wait(deadline, reason);
    if r == Wake::Notified {
        unqueue.0 = None;
        interruption_point(pass_on);
    }
    r
}

/// Waits until `ready` holds for the state behind `state` (checked under
/// its lock) or `deadline` passes, queued in `queue(state)`, whose waiters
/// are woken all at once (so a waiter that leaves has nothing to pass on).
/// Returns whether `ready` held.
pub(crate) fn wait_broadcast<S>(
    state: &SpinLock<S>,
    queue: impl Fn(&mut S) -> &mut WaitQueue,
    mut ready: impl FnMut(&mut S) -> bool,
    deadline: Option<Instant>,
    reason: WaitReason,
) -> bool {
    loop {
        let w = {
            let mut s = lock(state);
            if ready(&mut s) {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            let w = Waiter::prepare();
            queue(&mut s).push(w.clone());
            w
        };
        park(
            &w,
            deadline,
            reason,
            || queue(&mut lock(state)).remove(&w),
            || {},
        );
    }
}

/// Unwinds the calling green thread now if it has a cancellation or an
/// expired timeout scope pending, after running `pass_on`.
#[inline]
pub(crate) fn interruption_point(pass_on: impl FnOnce()) {
    if let Some(p) = crate::hub::with_current_task(|hub, _| hub.pending_interrupt()).flatten() {
        pass_on();
        std::panic::resume_unwind(p);
    }
}

/// A FIFO of parked waiters.
///
/// Tokens of waiters that left (timed out, cancelled) stay until a wake
/// skips them, their owner removes them, or a purge drops them; `push`
/// purges whenever the queue has doubled since the last purge, so a queue
/// stays bounded by twice its live waiters even under repeated timeouts.
#[derive(Debug)]
pub(crate) struct WaitQueue {
    q: VecDeque<Waiter>,
    /// Length at which `push` purges stale tokens next.
    purge_at: usize,
}

impl Default for WaitQueue {
    fn default() -> Self {
        WaitQueue::new()
    }
}

impl WaitQueue {
    /// An empty queue.
    pub(crate) const fn new() -> WaitQueue {
        WaitQueue {
            q: VecDeque::new(),
            purge_at: 32,
        }
    }

    /// Queues a waiter at the back.
    #[inline]
    pub(crate) fn push(&mut self, w: Waiter) {
        if self.q.len() >= self.purge_at {
            self.q.retain(|w| !w.is_stale());
            self.purge_at = (self.q.len() * 2).max(32);
        }
        self.q.push_back(w);
    }

    /// Wakes the first waiter still waiting; `false` if there was none.
    #[inline]
    pub(crate) fn wake_one(&mut self) -> bool {
        while let Some(w) = self.q.pop_front() {
            if w.wake() {
                return true;
            }
        }
        false
    }

    /// Like [`wake_one`](WaitQueue::wake_one), but skips (and keeps) `me`:
    /// a `Select` queued on both sides of a channel must not wake itself.
    pub(crate) fn wake_one_except(&mut self, me: &Waiter) -> bool {
        let mut i = 0;
        while i < self.q.len() {
            if self.q[i].same_wait(me) {
                i += 1;
                continue;
            }
            if let Some(w) = self.q.remove(i) {
                if w.wake() {
                    return true;
                }
            }
        }
        false
    }

    /// Wakes every waiter.
    pub(crate) fn wake_all(&mut self) {
        for w in self.q.drain(..) {
            w.wake();
        }
    }

    /// Removes `w`'s token if it is still queued (searching from the back,
    /// where a waiter that just gave up usually is).
    pub(crate) fn remove(&mut self, w: &Waiter) {
        if let Some(i) = self.q.iter().rposition(|x| x.same_wait(w)) {
            self.q.remove(i);
        }
    }

    /// Whether no token is queued (stale ones included).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// How many queued waiters are still waiting.
    pub(crate) fn live(&self) -> usize {
        self.live_except(None)
    }

    /// How many queued waiters other than `me` are still waiting.
    pub(crate) fn live_except(&self, me: Option<&Waiter>) -> usize {
        self.q
            .iter()
            .filter(|w| !w.is_stale() && !me.is_some_and(|m| m.same_wait(w)))
            .count()
    }
}

/// A small per-thread xorshift generator: where a [`Select`] starts
/// polling its branches, so no branch is favoured.
pub(crate) fn random_below(n: usize) -> usize {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            use std::hash::{BuildHasher, Hasher};
            // RandomState is seeded differently for every thread.
            std::collections::hash_map::RandomState::new().build_hasher().finish() | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x % n as u64) as usize
    })
}
