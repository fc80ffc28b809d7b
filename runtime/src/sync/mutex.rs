//! `Mutex`: a lock that parks green threads instead of blocking the hub.
//!
//! # Design
//!
//! One atomic byte holds two bits, after parking_lot's `RawMutex`:
//!
//! ```text
//!   LOCKED  someone holds the lock
//!   PARKED  the wait queue may be non-empty: unlock must take the slow path
//! ```
//!
//! * `lock` fast path: one compare-and-swap `0 -> LOCKED`.
//! * `unlock` fast path: one compare-and-swap `LOCKED -> 0`; it fails only
//!   when `PARKED` is set.
//! * `lock` slow path: under the queue's internal lock, set `PARKED` and, in
//!   the same atomic step, look at `LOCKED`. If the lock was released in
//!   between, retry instead of parking; otherwise queue a
//!   [`Waiter`](crate::wait::Waiter) and park. Because the unlocker also
//!   takes the queue lock on its slow path, no release can slip between
//!   "saw LOCKED" and "queued".
//! * `unlock` slow path: under the queue lock, wake the first waiter still
//!   waiting, then release `LOCKED`, leaving `PARKED` set only if tokens
//!   remain queued. The woken green thread competes for the lock again
//!   (it is not handed the lock), so a waiter that was cancelled or timed
//!   out while parked never ends up owning it.
//!
//! The lock is not fair: a running green thread can take it again before
//! the woken one runs. A green thread that unlocks and then parks or
//! yields (the common case) lets the woken one in.
//!
//! Rejected: spinning. On one hub the holder cannot run while a waiter
//! spins, so spinning only burns the hub.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU8, Ordering};

use super::spin::SpinLock;
use super::{lock, WaitQueue};
use crate::wait::{WaitReason, Waiter};

const LOCKED: u8 = 1;
const PARKED: u8 = 2;
const REASON: WaitReason = WaitReason::sync("mutex lock");

/// A mutual-exclusion lock for green threads (and plain OS threads).
///
/// [`lock`](Mutex::lock) parks the calling green thread while another
/// holds the lock; the hub keeps running the others. There is no
/// poisoning: a panic while holding the lock simply releases it (like
/// parking_lot). Uncontended `lock` and `unlock` are one atomic
/// compare-and-swap each.
///
/// Hold the guard across parks freely (socket calls, `sleep`, channel
/// operations): that is what this lock is for. A green thread cancelled
/// while parked in `lock` unwinds without ever owning the lock.
///
/// # Examples
///
/// ```
/// use greenio::sync::Mutex;
/// use std::sync::Arc;
///
/// greenio::run(|| {
///     let count = Arc::new(Mutex::new(0));
///     let hs: Vec<_> = (0..10)
///         .map(|_| {
///             let count = count.clone();
///             greenio::spawn(move || {
///                 let mut g = count.lock();
///                 let v = *g;
///                 greenio::yield_now(); // others run, but cannot enter
///                 *g = v + 1;
///             })
///         })
///         .collect();
///     for h in hs {
///         h.join().unwrap();
///     }
///     assert_eq!(*count.lock(), 10);
/// });
/// ```
pub struct Mutex<T: ?Sized> {
    /// `LOCKED | PARKED`.
    state: AtomicU8,
    /// Parked lockers; its lock is also what orders `PARKED` changes.
    waiters: SpinLock<WaitQueue>,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex hands out access to `T` to one thread at a time, so
// it only needs `T: Send` to be shared, like `std::sync::Mutex`.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// Proof of holding a [`Mutex`]; unlocks when dropped. Derefs to the data.
///
/// # Examples
///
/// ```
/// let m = greenio::sync::Mutex::new(vec![1]);
/// m.lock().push(2);
/// assert_eq!(*m.lock(), [1, 2]);
/// ```
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    /// `!Send`, like `std`'s guard.
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing the guard only shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `value`. Usable in a `static`.
    ///
    /// # Examples
    ///
    /// ```
    /// static HITS: greenio::sync::Mutex<u32> = greenio::sync::Mutex::new(0);
    /// *HITS.lock() += 1;
    /// assert_eq!(*HITS.lock(), 1);
    /// ```
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            state: AtomicU8::new(0),
            waiters: SpinLock::new(WaitQueue::new()),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex and returns the data.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(greenio::sync::Mutex::new(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Acquires the lock, parking the green thread (or blocking a plain OS
    /// thread) until it is free.
    ///
    /// Locking a mutex the caller already holds deadlocks, as with `std`.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = greenio::sync::Mutex::new(1);
    /// *m.lock() += 1;
    /// assert_eq!(*m.lock(), 2);
    /// ```
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        crate::wait::coop_proceed();
        if self
            .state
            .compare_exchange_weak(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
        self.guard()
    }

    /// Acquires the lock if it is free right now.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = greenio::sync::Mutex::new(());
    /// let g = m.try_lock().unwrap();
    /// assert!(m.try_lock().is_none());
    /// drop(g);
    /// assert!(m.try_lock().is_some());
    /// ```
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        let mut s = self.state.load(Ordering::Relaxed);
        while s & LOCKED == 0 {
            match self.state.compare_exchange_weak(
                s,
                s | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(self.guard()),
                Err(now) => s = now,
            }
        }
        None
    }

    /// Whether some thread holds the lock now (a hint: it may change at
    /// once).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = greenio::sync::Mutex::new(());
    /// let g = m.lock();
    /// assert!(m.is_locked());
    /// drop(g);
    /// assert!(!m.is_locked());
    /// ```
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & LOCKED != 0
    }

    /// Mutable access without locking: the borrow proves no guard exists.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut m = greenio::sync::Mutex::new(1);
    /// *m.get_mut() = 5;
    /// assert_eq!(*m.lock(), 5);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    fn guard(&self) -> MutexGuard<'_, T> {
        MutexGuard {
            mutex: self,
            _not_send: PhantomData,
        }
    }

    #[cold]
    fn lock_slow(&self) {
        loop {
            let mut s = self.state.load(Ordering::Relaxed);
            while s & LOCKED == 0 {
                match self.state.compare_exchange_weak(
                    s,
                    s | LOCKED,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return,
                    Err(now) => s = now,
                }
            }
            let w = Waiter::prepare();
            {
                let mut q = lock(&self.waiters);
                if self.state.fetch_or(PARKED, Ordering::Acquire) & LOCKED == 0 {
                    // Released meanwhile: try again rather than park.
                    drop(q);
                    w.cancel();
                    continue;
                }
                q.push(w.clone());
            }
            super::park(
                &w,
                None,
                REASON,
                || lock(&self.waiters).remove(&w),
                || {
                    lock(&self.waiters).wake_one();
                },
            );
        }
    }

    #[cold]
    fn unlock_slow(&self) {
        let mut q = lock(&self.waiters);
        q.wake_one();
        // The woken waiter re-checks under `waiters`, after this store.
        let rest = if q.is_empty() { 0 } else { PARKED };
        self.state.store(rest, Ordering::Release);
    }

    /// Releases the lock.
    #[inline]
    fn unlock(&self) {
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_slow();
        }
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock,
        // so no other reference to the data is live.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this borrow unique.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}
