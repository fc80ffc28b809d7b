//! `Event`: gevent's `Event`, a flag that green threads wait on.
//!
//! `set` bumps a generation number and wakes every waiter; a waiter
//! returns when the flag is set *or* the generation moved since it
//! started waiting, so a `set` immediately followed by `clear` still
//! releases everyone who was waiting (as gevent and Python's
//! `threading.Event` do).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::spin::SpinLock;
use super::{lock, WaitQueue};
use crate::wait::{deadline_after, WaitReason};

const REASON: WaitReason = WaitReason::sync("event wait");

struct EventState {
    /// Incremented by every `set` that turns the flag on.
    generation: u64,
    waiters: WaitQueue,
}

/// A flag that can be set, cleared and waited on.
///
/// # Examples
///
/// ```
/// use greenio::sync::Event;
/// use std::sync::Arc;
///
/// greenio::run(|| {
///     let ready = Arc::new(Event::new());
///     let r = ready.clone();
///     let h = greenio::spawn(move || {
///         r.wait();
///         "released"
///     });
///     greenio::yield_now();
///     assert!(!h.is_finished());
///     ready.set();
///     assert_eq!(h.join().unwrap(), "released");
/// });
/// ```
pub struct Event {
    /// The flag, readable without the lock.
    flag: AtomicBool,
    state: SpinLock<EventState>,
}

impl Event {
    /// A new event, not set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!greenio::sync::Event::new().is_set());
    /// ```
    pub const fn new() -> Event {
        Event {
            flag: AtomicBool::new(false),
            state: SpinLock::new(EventState {
                generation: 0,
                waiters: WaitQueue::new(),
            }),
        }
    }

    /// Sets the flag and wakes every waiter.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = greenio::sync::Event::new();
    /// e.set();
    /// assert!(e.is_set());
    /// e.wait(); // returns at once
    /// ```
    pub fn set(&self) {
        let mut s = lock(&self.state);
        if !self.flag.load(Ordering::Relaxed) {
            self.flag.store(true, Ordering::Release);
            s.generation += 1;
            s.waiters.wake_all();
        }
    }

    /// Clears the flag: later waits park again.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = greenio::sync::Event::new();
    /// e.set();
    /// e.clear();
    /// assert!(!e.is_set());
    /// ```
    pub fn clear(&self) {
        let _s = lock(&self.state);
        self.flag.store(false, Ordering::Release);
    }

    /// Whether the flag is set.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = greenio::sync::Event::new();
    /// assert!(!e.is_set());
    /// ```
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Parks until the flag is set (returns at once if it is).
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let e = std::sync::Arc::new(greenio::sync::Event::new());
    ///     let e2 = e.clone();
    ///     greenio::spawn(move || e2.set());
    ///     e.wait();
    ///     assert!(e.is_set());
    /// });
    /// ```
    pub fn wait(&self) {
        self.wait_until(None);
    }

    /// Parks until the flag is set or `timeout` passes; returns whether it
    /// was set.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let e = greenio::sync::Event::new();
    /// assert!(!e.wait_timeout(Duration::from_millis(5)));
    /// e.set();
    /// assert!(e.wait_timeout(Duration::from_millis(5)));
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(deadline_after(timeout))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        crate::wait::coop_proceed();
        if self.is_set() {
            return true;
        }
        let start = lock(&self.state).generation;
        super::wait_broadcast(
            &self.state,
            |s| &mut s.waiters,
            |s| self.flag.load(Ordering::Relaxed) || s.generation != start,
            deadline,
            REASON,
        )
    }
}

impl Default for Event {
    fn default() -> Self {
        Event::new()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}
