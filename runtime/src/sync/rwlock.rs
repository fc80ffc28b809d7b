//! `RwLock`: many readers or one writer, for green threads.
//!
//! The whole state (reader count, writer flag, parked writers) lives under
//! one internal spinlock held for a few instructions; readers and
//! writers park in two FIFO queues. Writers are preferred: once a writer
//! waits, new readers queue behind it, so a stream of readers cannot
//! starve writers. A parked writer that is cancelled or times out is
//! counted out by a drop guard, which lets readers in again if it was the
//! last one.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use super::spin::SpinLock;
use super::{lock, WaitQueue};
use crate::wait::{WaitReason, Waiter};

const READ: WaitReason = WaitReason::sync("rwlock read");
const WRITE: WaitReason = WaitReason::sync("rwlock write");

struct RwLockState {
    /// Readers holding the lock.
    readers: usize,
    /// A writer holds the lock.
    writer: bool,
    /// Writers between their first failed attempt and acquiring or
    /// leaving; while non-zero, new readers wait.
    writers_waiting: usize,
    read_q: WaitQueue,
    write_q: WaitQueue,
}

/// A readers-writer lock: any number of readers, or one writer.
///
/// Parks green threads (blocks plain OS threads) while it cannot be
/// taken; prefers writers; no poisoning.
///
/// # Examples
///
/// ```
/// use greenio::sync::RwLock;
///
/// let lock = RwLock::new(5);
/// {
///     let r1 = lock.read();
///     let r2 = lock.read();
///     assert_eq!(*r1 + *r2, 10);
/// }
/// *lock.write() += 1;
/// assert_eq!(*lock.read(), 6);
/// ```
pub struct RwLock<T: ?Sized> {
    state: SpinLock<RwLockState>,
    data: UnsafeCell<T>,
}

// SAFETY: like `std::sync::RwLock`: sending the lock sends the `T`.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: readers share `&T` across threads (needs `Sync`), a writer gets
// `&mut T` on possibly another thread (needs `Send`).
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

/// Shared access to an [`RwLock`]'s data; released when dropped.
///
/// # Examples
///
/// ```
/// let l = greenio::sync::RwLock::new(1);
/// let g = l.read();
/// assert_eq!(*g, 1);
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

/// Exclusive access to an [`RwLock`]'s data; released when dropped.
///
/// # Examples
///
/// ```
/// let l = greenio::sync::RwLock::new(1);
/// *l.write() = 2;
/// assert_eq!(*l.read(), 2);
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing a guard shares only `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<T> RwLock<T> {
    /// A new unlocked lock holding `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// static CONFIG: greenio::sync::RwLock<u8> = greenio::sync::RwLock::new(1);
    /// assert_eq!(*CONFIG.read(), 1);
    /// ```
    pub const fn new(value: T) -> RwLock<T> {
        RwLock {
            state: SpinLock::new(RwLockState {
                readers: 0,
                writer: false,
                writers_waiting: 0,
                read_q: WaitQueue::new(),
                write_q: WaitQueue::new(),
            }),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the lock and returns the data.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(greenio::sync::RwLock::new(2).into_inner(), 2);
    /// ```
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Takes shared access, parking while a writer holds or waits for the
    /// lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = greenio::sync::RwLock::new("x");
    /// assert_eq!(*l.read(), "x");
    /// ```
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        crate::wait::coop_proceed();
        loop {
            let w = {
                let mut s = lock(&self.state);
                if !s.writer && s.writers_waiting == 0 {
                    s.readers += 1;
                    return self.read_guard();
                }
                let w = Waiter::prepare();
                s.read_q.push(w.clone());
                w
            };
            // Readers are woken all at once: nothing to pass on.
            super::park(
                &w,
                None,
                READ,
                || lock(&self.state).read_q.remove(&w),
                || {},
            );
        }
    }

    /// Takes shared access if that is possible right now.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = greenio::sync::RwLock::new(0);
    /// let w = l.write();
    /// assert!(l.try_read().is_none());
    /// drop(w);
    /// assert!(l.try_read().is_some());
    /// ```
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        let mut s = lock(&self.state);
        if !s.writer && s.writers_waiting == 0 {
            s.readers += 1;
            Some(self.read_guard())
        } else {
            None
        }
    }

    /// Takes exclusive access, parking until no reader or writer holds the
    /// lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = greenio::sync::RwLock::new(vec![]);
    /// l.write().push(1);
    /// assert_eq!(l.read().len(), 1);
    /// ```
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        crate::wait::coop_proceed();
        {
            let mut s = lock(&self.state);
            if !s.writer && s.readers == 0 {
                s.writer = true;
                return self.write_guard();
            }
            s.writers_waiting += 1;
        }
        // Counts us out of `writers_waiting` however we leave.
        let _waiting = WriterWaiting { lock: self };
        loop {
            let w = {
                let mut s = lock(&self.state);
                if !s.writer && s.readers == 0 {
                    s.writer = true;
                    return self.write_guard();
                }
                let w = Waiter::prepare();
                s.write_q.push(w.clone());
                w
            };
            super::park(
                &w,
                None,
                WRITE,
                || lock(&self.state).write_q.remove(&w),
                || {
                    lock(&self.state).write_q.wake_one();
                },
            );
        }
    }

    /// Takes exclusive access if that is possible right now.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = greenio::sync::RwLock::new(0);
    /// let r = l.read();
    /// assert!(l.try_write().is_none());
    /// drop(r);
    /// assert!(l.try_write().is_some());
    /// ```
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        let mut s = lock(&self.state);
        if !s.writer && s.readers == 0 {
            s.writer = true;
            Some(self.write_guard())
        } else {
            None
        }
    }

    /// Mutable access without locking: the borrow proves no guard exists.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut l = greenio::sync::RwLock::new(1);
    /// *l.get_mut() = 3;
    /// assert_eq!(*l.read(), 3);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    fn read_guard(&self) -> RwLockReadGuard<'_, T> {
        RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    fn write_guard(&self) -> RwLockWriteGuard<'_, T> {
        RwLockWriteGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }
}

/// Lets readers in when no writer holds or waits any more.
fn release_readers(s: &mut RwLockState) {
    if !s.writer && s.writers_waiting == 0 {
        s.read_q.wake_all();
    }
}

struct WriterWaiting<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
}

impl<T: ?Sized> Drop for WriterWaiting<'_, T> {
    fn drop(&mut self) {
        let mut s = lock(&self.lock.state);
        s.writers_waiting -= 1;
        release_readers(&mut s);
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        let mut s = lock(&self.lock.state);
        s.readers -= 1;
        if s.readers == 0 {
            s.write_q.wake_one();
        }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        let mut s = lock(&self.lock.state);
        s.writer = false;
        if !s.write_q.wake_one() {
            release_readers(&mut s);
        }
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: while a read guard exists no writer holds the lock, so
        // only shared references to the data are live.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the write guard is the only access to the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the write guard is the only access to the data, and
        // `&mut self` makes this borrow unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}
