//! `WaitGroup`: Go's `sync.WaitGroup`, a counter to wait on until zero.

use std::fmt;
use std::time::{Duration, Instant};

use super::spin::SpinLock;
use super::{lock, WaitQueue};
use crate::wait::{deadline_after, WaitReason};

const REASON: WaitReason = WaitReason::sync("waitgroup wait");

struct WaitGroupState {
    count: usize,
    waiters: WaitQueue,
}

/// Waits for a collection of tasks to finish: [`add`](WaitGroup::add)
/// before starting each, [`done`](WaitGroup::done) when each finishes,
/// [`wait`](WaitGroup::wait) until the count is back to zero.
///
/// # Examples
///
/// ```
/// use greenio::sync::WaitGroup;
/// use std::sync::Arc;
///
/// greenio::run(|| {
///     let wg = Arc::new(WaitGroup::new());
///     for _ in 0..5 {
///         wg.add(1);
///         let wg = wg.clone();
///         greenio::spawn(move || {
///             greenio::yield_now();
///             wg.done();
///         });
///     }
///     wg.wait();
///     assert_eq!(wg.count(), 0);
/// });
/// ```
pub struct WaitGroup {
    state: SpinLock<WaitGroupState>,
}

impl WaitGroup {
    /// A wait group with a count of zero.
    ///
    /// # Examples
    ///
    /// ```
    /// let wg = greenio::sync::WaitGroup::new();
    /// wg.wait(); // zero: returns at once
    /// ```
    pub const fn new() -> WaitGroup {
        WaitGroup {
            state: SpinLock::new(WaitGroupState {
                count: 0,
                waiters: WaitQueue::new(),
            }),
        }
    }

    /// Adds `n` to the count.
    ///
    /// # Examples
    ///
    /// ```
    /// let wg = greenio::sync::WaitGroup::new();
    /// wg.add(2);
    /// assert_eq!(wg.count(), 2);
    /// ```
    pub fn add(&self, n: usize) {
        lock(&self.state).count += n;
    }

    /// Subtracts one from the count; at zero, wakes every waiter.
    ///
    /// # Panics
    ///
    /// Panics if the count is already zero (more `done` than `add`).
    ///
    /// # Examples
    ///
    /// ```
    /// let wg = greenio::sync::WaitGroup::new();
    /// wg.add(1);
    /// wg.done();
    /// assert_eq!(wg.count(), 0);
    /// ```
    pub fn done(&self) {
        let mut s = lock(&self.state);
        if s.count == 0 {
            drop(s);
            panic!("greenio: WaitGroup::done called more times than add");
        }
        s.count -= 1;
        if s.count == 0 {
            s.waiters.wake_all();
        }
    }

    /// The current count.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(greenio::sync::WaitGroup::new().count(), 0);
    /// ```
    pub fn count(&self) -> usize {
        lock(&self.state).count
    }

    /// Parks until the count is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let wg = std::sync::Arc::new(greenio::sync::WaitGroup::new());
    ///     wg.add(1);
    ///     let w2 = wg.clone();
    ///     greenio::spawn(move || w2.done());
    ///     wg.wait();
    /// });
    /// ```
    pub fn wait(&self) {
        self.wait_until(None);
    }

    /// Parks until the count is zero or `timeout` passes; returns whether
    /// it reached zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let wg = greenio::sync::WaitGroup::new();
    /// wg.add(1);
    /// assert!(!wg.wait_timeout(Duration::from_millis(5)));
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(deadline_after(timeout))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        crate::wait::coop_proceed();
        super::wait_broadcast(
            &self.state,
            |s| &mut s.waiters,
            |s| s.count == 0,
            deadline,
            REASON,
        )
    }
}

impl Default for WaitGroup {
    fn default() -> Self {
        WaitGroup::new()
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup")
            .field("count", &self.count())
            .finish()
    }
}
