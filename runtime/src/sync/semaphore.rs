//! `Semaphore`: counted permits, gevent's `Semaphore` / `BoundedSemaphore`.
//!
//! The count and a FIFO of parked acquirers live under one internal lock.
//! A release adds a permit and wakes one acquirer, which re-checks the
//! count: permits are only ever taken under the lock, so the semaphore
//! never admits more holders than it has permits, whatever mix of
//! timeouts and cancellations happens.

use std::fmt;
use std::time::{Duration, Instant};

use super::spin::SpinLock;
use super::{lock, WaitQueue};
use crate::wait::{deadline_after, WaitReason, Waiter};

const REASON: WaitReason = WaitReason::sync("semaphore acquire");

struct SemaphoreState {
    permits: usize,
    waiters: WaitQueue,
}

/// A counting semaphore: at most `n` holders of a permit at a time.
///
/// [`acquire`](Semaphore::acquire) parks the green thread (blocks a plain
/// OS thread) until a permit is free and returns a [`SemaphorePermit`]
/// that gives it back when dropped.
///
/// # Examples
///
/// Limit concurrent work to two green threads:
///
/// ```
/// use greenio::sync::Semaphore;
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// greenio::run(|| {
///     let sem = Arc::new(Semaphore::new(2));
///     let hs: Vec<_> = (0..6)
///         .map(|_| {
///             let sem = sem.clone();
///             greenio::spawn(move || {
///                 let _permit = sem.acquire();
///                 greenio::sleep(Duration::from_millis(1));
///             })
///         })
///         .collect();
///     for h in hs {
///         h.join().unwrap();
///     }
///     assert_eq!(sem.available_permits(), 2);
/// });
/// ```
pub struct Semaphore {
    state: SpinLock<SemaphoreState>,
}

/// A permit of a [`Semaphore`]; released when dropped.
///
/// # Examples
///
/// ```
/// let sem = greenio::sync::Semaphore::new(1);
/// let p = sem.acquire();
/// assert_eq!(sem.available_permits(), 0);
/// drop(p);
/// assert_eq!(sem.available_permits(), 1);
/// ```
#[must_use = "if unused the permit is released at once"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
}

impl Semaphore {
    /// A semaphore with `permits` permits.
    ///
    /// # Examples
    ///
    /// ```
    /// static SLOTS: greenio::sync::Semaphore = greenio::sync::Semaphore::new(3);
    /// assert_eq!(SLOTS.available_permits(), 3);
    /// ```
    pub const fn new(permits: usize) -> Semaphore {
        Semaphore {
            state: SpinLock::new(SemaphoreState {
                permits,
                waiters: WaitQueue::new(),
            }),
        }
    }

    /// Takes a permit, parking until one is free.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = greenio::sync::Semaphore::new(1);
    /// let _p = sem.acquire();
    /// assert!(sem.try_acquire().is_none());
    /// ```
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        match self.acquire_until(None) {
            Some(p) => p,
            None => unreachable!("an acquire without deadline cannot time out"),
        }
    }

    /// Takes a permit if one is free right now.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = greenio::sync::Semaphore::new(1);
    /// let p = sem.try_acquire();
    /// assert!(p.is_some());
    /// assert!(sem.try_acquire().is_none());
    /// ```
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        let mut s = lock(&self.state);
        if s.permits > 0 {
            s.permits -= 1;
            Some(SemaphorePermit { sem: self })
        } else {
            None
        }
    }

    /// Takes a permit, parking at most `timeout`; `None` if none became
    /// free in time.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let sem = greenio::sync::Semaphore::new(0);
    /// assert!(sem.acquire_timeout(Duration::from_millis(5)).is_none());
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphorePermit<'_>> {
        self.acquire_until(deadline_after(timeout))
    }

    fn acquire_until(&self, deadline: Option<Instant>) -> Option<SemaphorePermit<'_>> {
        crate::wait::coop_proceed();
        loop {
            let w = {
                let mut s = lock(&self.state);
                if s.permits > 0 {
                    s.permits -= 1;
                    return Some(SemaphorePermit { sem: self });
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return None;
                }
                let w = Waiter::prepare();
                s.waiters.push(w.clone());
                w
            };
            super::park(
                &w,
                deadline,
                REASON,
                || lock(&self.state).waiters.remove(&w),
                || {
                    lock(&self.state).waiters.wake_one();
                },
            );
        }
    }

    /// Adds `n` permits (gevent's `release` without a held permit), waking
    /// up to `n` parked acquirers.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = greenio::sync::Semaphore::new(0);
    /// sem.add_permits(2);
    /// assert_eq!(sem.available_permits(), 2);
    /// ```
    pub fn add_permits(&self, n: usize) {
        let mut s = lock(&self.state);
        s.permits += n;
        for _ in 0..n {
            if !s.waiters.wake_one() {
                break;
            }
        }
    }

    /// The number of free permits now.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(greenio::sync::Semaphore::new(4).available_permits(), 4);
    /// ```
    pub fn available_permits(&self) -> usize {
        lock(&self.state).permits
    }
}

impl SemaphorePermit<'_> {
    /// Keeps the permit taken forever: the semaphore has one permit less.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = greenio::sync::Semaphore::new(1);
    /// sem.acquire().forget();
    /// assert_eq!(sem.available_permits(), 0);
    /// ```
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.add_permits(1);
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("permits", &self.available_permits())
            .finish()
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SemaphorePermit")
    }
}
