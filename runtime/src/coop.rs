//! The fair budget: how many operations that could have parked a green
//! thread may complete in a row without parking before it yields.
//!
//! # Why
//!
//! Green threads switch only where they park. A green thread whose socket
//! always has data, or whose channel always holds a message, never parks:
//! every `read` or `recv` succeeds at once, and timers, sockets and other
//! green threads of its hub wait until it runs dry (a 10 ms sleep elsewhere
//! returned after 1.4 s while one green thread drained a full channel).
//!
//! # What
//!
//! Every operation that may park — socket calls through
//! [`Registration::try_io`](crate::io::Registration::try_io), channel
//! `recv`, `send` on a bounded channel, `Select::wait` without a default, `Mutex::lock`, `RwLock` `read`/`write`,
//! `Semaphore::acquire`, `Event::wait`, `WaitGroup::wait`, `Barrier::wait`,
//! `AsyncResult::wait` and `JoinHandle::join` — spends one unit of the
//! running green thread's budget of [`BUDGET`] when it starts. When the
//! budget is spent, the operation first yields once (the loop polls,
//! fires timers, runs the other ready green threads), then proceeds. Any
//! switch away from the green thread (a park, a yield) refills it.
//! `try_*` operations never park, so they neither spend nor yield; nor do
//! `send` on an unbounded channel and a `Select` with a default branch,
//! which cannot park either (code may rely on them not switching).
//!
//! Yielding *before* the operation, never after it, keeps cancellation
//! exact: a cancel delivered at that yield unwinds a green thread that has
//! not taken the message, permit or bytes yet.
//!
//! This is tokio's coop budget (`tokio::task::coop`, 128 units per task
//! poll), moved from futures to green threads: tokio makes a resource
//! return `Pending` when the budget is spent; we yield.
//!
//! # Cost and choice of 128
//!
//! The budget is per hub, not per green thread: a stamp (the hub's switch
//! counter when the budget was last refilled) tells whether the green
//! thread running now has been switched to since, so the switch path does
//! not touch it at all. Spending is a compare and a decrement (~1 ns). A
//! yield costs one switch out and back (~100-200 ns), so one yield per 128
//! operations adds about 1 ns per operation; with 128 one-byte socket reads
//! (~1 µs each) between yields, a neighbour's timer is late by at most
//! ~0.15 ms per green thread that keeps reading, and a channel drained at
//! ~20 ns per message yields every ~3 µs. A smaller budget costs more
//! switches for no visible gain in latency; a larger one lets one green
//! thread run longer than a timer tick.

use std::cell::Cell;

/// Operations that complete without parking before the green thread yields.
pub(crate) const BUDGET: u32 = 128;

/// The running green thread's budget, kept by its hub.
///
/// Only the hub's thread touches it. `stamp` is the hub's switch count when
/// `left` was last refilled: a different count means the running green
/// thread has been switched to since, so its budget is full again.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    stamp: Cell<u64>,
    left: Cell<u32>,
}

impl Budget {
    /// Spends one unit for the green thread running at switch count
    /// `switches`; `false` when it has none left (the caller yields, which
    /// refills it).
    #[inline]
    pub(crate) fn spend(&self, switches: u64) -> bool {
        if self.stamp.get() != switches {
            self.stamp.set(switches);
            self.left.set(BUDGET - 1);
            return true;
        }
        match self.left.get() {
            0 => false,
            n => {
                self.left.set(n - 1);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_after_a_switch_and_runs_out_after_budget() {
        let b = Budget::default();
        let spent = (0..1000).take_while(|_| b.spend(7)).count();
        assert_eq!(spent, BUDGET as usize);
        assert!(!b.spend(7));
        assert!(b.spend(8));
    }
}
