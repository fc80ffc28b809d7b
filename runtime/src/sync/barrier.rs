//! `Barrier`: wait until `n` participants have arrived, like
//! `std::sync::Barrier`.
//!
//! Arrivals are counted per generation; the last arrival starts a new
//! generation and wakes everyone, and a waiter returns once the
//! generation has moved. A participant cancelled while waiting withdraws
//! its arrival, so the barrier still needs `n` live participants.

use std::fmt;

use super::spin::SpinLock;
use super::{lock, WaitQueue};
use crate::wait::{WaitReason, Waiter};

const REASON: WaitReason = WaitReason::sync("barrier wait");

struct BarrierState {
    arrived: usize,
    generation: u64,
    waiters: WaitQueue,
}

/// Lets `n` green threads (or OS threads) wait for each other.
///
/// # Examples
///
/// ```
/// use greenio::sync::Barrier;
/// use std::sync::Arc;
///
/// greenio::run(|| {
///     let barrier = Arc::new(Barrier::new(3));
///     let hs: Vec<_> = (0..3)
///         .map(|_| {
///             let b = barrier.clone();
///             greenio::spawn(move || b.wait().is_leader())
///         })
///         .collect();
///     let leaders = hs.into_iter().map(|h| h.join().unwrap());
///     assert_eq!(leaders.filter(|l| *l).count(), 1);
/// });
/// ```
pub struct Barrier {
    n: usize,
    state: SpinLock<BarrierState>,
}

/// What [`Barrier::wait`] returns: whether this caller was the leader.
///
/// # Examples
///
/// ```
/// let b = greenio::sync::Barrier::new(1);
/// assert!(b.wait().is_leader());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// Whether this caller was the last to arrive (exactly one per round).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = greenio::sync::Barrier::new(1);
    /// assert!(b.wait().is_leader());
    /// ```
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl Barrier {
    /// A barrier for `n` participants (`0` behaves like `1`).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = greenio::sync::Barrier::new(2);
    /// # let _ = b;
    /// ```
    pub const fn new(n: usize) -> Barrier {
        Barrier {
            n,
            state: SpinLock::new(BarrierState {
                arrived: 0,
                generation: 0,
                waiters: WaitQueue::new(),
            }),
        }
    }

    /// Parks until `n` participants have called `wait`, then releases them
    /// all; the barrier can be used again.
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let b = std::sync::Arc::new(greenio::sync::Barrier::new(2));
    ///     let b2 = b.clone();
    ///     let h = greenio::spawn(move || b2.wait().is_leader());
    ///     let me = b.wait().is_leader();
    ///     assert!(me ^ h.join().unwrap());
    /// });
    /// ```
    pub fn wait(&self) -> BarrierWaitResult {
        crate::wait::coop_proceed();
        let generation = {
            let mut s = lock(&self.state);
            s.arrived += 1;
            if s.arrived >= self.n {
                s.arrived = 0;
                s.generation += 1;
                s.waiters.wake_all();
                return BarrierWaitResult(true);
            }
            s.generation
        };
        let _arrival = Arrival {
            barrier: self,
            generation,
        };
        loop {
            let w = {
                let mut s = lock(&self.state);
                if s.generation != generation {
                    return BarrierWaitResult(false);
                }
                let w = Waiter::prepare();
                s.waiters.push(w.clone());
                w
            };
            // Waiters are woken all at once: nothing to pass on.
            super::park(
                &w,
                None,
                REASON,
                || lock(&self.state).waiters.remove(&w),
                || {},
            );
        }
    }
}

/// Withdraws an arrival if its participant leaves (unwinds) before the
/// round completes.
struct Arrival<'a> {
    barrier: &'a Barrier,
    generation: u64,
}

impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        let mut s = lock(&self.barrier.state);
        if s.generation == self.generation {
            s.arrived -= 1;
        }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier").field("n", &self.n).finish()
    }
}
