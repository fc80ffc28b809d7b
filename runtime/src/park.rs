//! The park word and wait reasons: the leaf of the parking protocol.
//!
//! A park word is one `AtomicU64` per waiting context holding
//! `seq << 2 | state`; [`crate::wait`] explains the protocol built on it.
//! This file knows nothing about hubs or green threads, so every layer
//! above (the task header, the hub loop, `Waiter`) can use it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Not waiting.
pub(crate) const IDLE: u64 = 0;
/// Armed: a waker may fire the word for this `seq`.
pub(crate) const WAITING: u64 = 1;
/// Fired by a waker.
pub(crate) const NOTIFIED: u64 = 2;
/// Fired by the wait's own deadline.
pub(crate) const TIMED_OUT: u64 = 3;

/// A park word: `seq << 2 | state`. Written by its owner when arming and
/// disarming, fired (compare-and-swap) by wakers on any thread.
#[derive(Debug, Default)]
pub(crate) struct ParkWord(pub(crate) AtomicU64);

impl ParkWord {
    /// Arms the word for wait `seq`. Only the owner calls this.
    ///
    /// `Release` suffices: a waker learns of the wait only through the
    /// structure the waiter then registers in (a lock, a queue, a
    /// `SeqCst` flag), whose release/acquire pair orders this store before
    /// the waker's compare-and-swap.
    #[inline]
    pub(crate) fn arm(&self, seq: u64) {
        self.0.store(seq << 2 | WAITING, Ordering::Release);
    }

    /// Fires wait `seq` with `state`; `true` for the single winner.
    #[inline]
    pub(crate) fn fire(&self, seq: u64, state: u64) -> bool {
        self.0
            .compare_exchange(
                seq << 2 | WAITING,
                seq << 2 | state,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Ends wait `seq` and returns how it ended: `WAITING` if nothing fired
    /// it, else `NOTIFIED` or `TIMED_OUT`.
    #[inline]
    pub(crate) fn disarm(&self, seq: u64) -> u64 {
        match self.0.compare_exchange(
            seq << 2 | WAITING,
            seq << 2 | IDLE,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => WAITING,
            Err(now) => {
                self.0.store(seq << 2 | IDLE, Ordering::Relaxed);
                now & 3
            }
        }
    }

    /// Ends wait `seq`, which the caller has seen fired (`is_waiting`
    /// returned false): no compare-and-swap is needed, since wakers only
    /// ever change a word that is `seq|WAITING`. Returns how it was fired.
    #[inline]
    pub(crate) fn take_fired(&self, seq: u64) -> u64 {
        let now = self.0.load(Ordering::Acquire);
        debug_assert_ne!(now, seq << 2 | WAITING, "take_fired on an armed word");
        self.0.store(seq << 2 | IDLE, Ordering::Relaxed);
        now & 3
    }

    /// Whether wait `seq` is still armed and unfired.
    #[inline]
    pub(crate) fn is_waiting(&self, seq: u64) -> bool {
        self.0.load(Ordering::Acquire) == seq << 2 | WAITING
    }
}

/// What a green thread waits on, shown by [`dump`](crate::dump) and by the
/// deadlock report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitReason {
    /// A short label such as `"sleep"`, `"join"` or `"channel recv"`.
    pub what: &'static str,
    /// Who can end the wait; the deadlock detector uses it.
    pub kind: WaitKind,
}

impl WaitReason {
    /// A wait on a sync primitive, which another OS thread may end.
    pub const fn sync(what: &'static str) -> Self {
        WaitReason {
            what,
            kind: WaitKind::Sync,
        }
    }

    /// A wait only this hub can end (its green threads or its timers).
    pub const fn local(what: &'static str) -> Self {
        WaitReason {
            what,
            kind: WaitKind::Local,
        }
    }

    /// A wait on the outside world (I/O, signals, the blocking pool).
    pub const fn external(what: &'static str) -> Self {
        WaitReason {
            what,
            kind: WaitKind::External,
        }
    }
}

/// Who can end a wait (see [`WaitReason`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitKind {
    /// Only green threads and timers of the same hub.
    Local,
    /// A sync primitive: possibly a plain OS thread that holds the other end.
    Sync,
    /// Sockets, signals, the blocking pool: the outside world.
    External,
}

/// A plain OS thread's parker: its park word and its handle for
/// `std::thread::Thread::unpark`.
#[derive(Debug)]
pub(crate) struct OsParker {
    pub(crate) word: ParkWord,
    pub(crate) thread: std::thread::Thread,
}
