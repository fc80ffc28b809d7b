//! `AsyncResult`: gevent's `AsyncResult`, a value or an error that is set
//! once and that any number of green threads (or OS threads) wait for.
//!
//! The result lives in a `OnceLock`, so once set it never changes and
//! waiters get plain references to it; no `Clone` bound is needed. The
//! setter stores the result *before* taking the waiter lock to wake
//! everyone, and a waiter re-checks the cell under that lock before it
//! parks, so no waiter can miss the set.
//!
//! # Examples
//!
//! ```
//! use greenio::sync::oneshot::AsyncResult;
//! use std::sync::Arc;
//!
//! greenio::run(|| {
//!     let result: Arc<AsyncResult<u32, String>> = Arc::new(AsyncResult::new());
//!     let waiters: Vec<_> = (0..3)
//!         .map(|_| {
//!             let r = result.clone();
//!             greenio::spawn(move || *r.wait().unwrap() + 1)
//!         })
//!         .collect();
//!     result.set(41).unwrap();
//!     for w in waiters {
//!         assert_eq!(w.join().unwrap(), 42);
//!     }
//! });
//! ```

use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::spin::SpinLock;
use super::{lock, WaitQueue};
use crate::wait::{deadline_after, WaitReason, Waiter};

const REASON: WaitReason = WaitReason::sync("async result wait");

/// A result set once, waited for by many.
///
/// # Examples
///
/// ```
/// use greenio::sync::oneshot::AsyncResult;
/// let r: AsyncResult<u8, &str> = AsyncResult::new();
/// r.set_error("failed").unwrap();
/// assert_eq!(r.wait(), Err(&"failed"));
/// ```
pub struct AsyncResult<T, E = Box<dyn std::error::Error + Send + Sync>> {
    cell: OnceLock<Result<T, E>>,
    waiters: SpinLock<WaitQueue>,
}

impl<T, E> AsyncResult<T, E> {
    /// An empty result.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = greenio::sync::oneshot::AsyncResult::<u8, ()>::new();
    /// assert!(!r.is_ready());
    /// ```
    pub const fn new() -> Self {
        AsyncResult {
            cell: OnceLock::new(),
            waiters: SpinLock::new(WaitQueue::new()),
        }
    }

    /// Sets the value and wakes every waiter.
    ///
    /// # Errors
    ///
    /// Gives `value` back if the result was already set.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = greenio::sync::oneshot::AsyncResult::<u8, ()>::new();
    /// assert_eq!(r.set(1), Ok(()));
    /// assert_eq!(r.set(2), Err(2));
    /// assert_eq!(r.wait(), Ok(&1));
    /// ```
    pub fn set(&self, value: T) -> Result<(), T> {
        self.complete(Ok(value)).map_err(|r| match r {
            Ok(v) => v,
            Err(_) => unreachable!("set stores a value"),
        })
    }

    /// Sets the error and wakes every waiter.
    ///
    /// # Errors
    ///
    /// Gives `error` back if the result was already set.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = greenio::sync::oneshot::AsyncResult::<u8, &str>::new();
    /// assert_eq!(r.set_error("no"), Ok(()));
    /// assert!(r.try_get().unwrap().is_err());
    /// ```
    pub fn set_error(&self, error: E) -> Result<(), E> {
        self.complete(Err(error)).map_err(|r| match r {
            Err(e) => e,
            Ok(_) => unreachable!("set_error stores an error"),
        })
    }

    fn complete(&self, r: Result<T, E>) -> Result<(), Result<T, E>> {
        self.cell.set(r)?;
        lock(&self.waiters).wake_all();
        Ok(())
    }

    /// Whether the result is set.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = greenio::sync::oneshot::AsyncResult::<u8, ()>::new();
    /// r.set(0).unwrap();
    /// assert!(r.is_ready());
    /// ```
    pub fn is_ready(&self) -> bool {
        self.cell.get().is_some()
    }

    /// The result if it is set, without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = greenio::sync::oneshot::AsyncResult::<u8, ()>::new();
    /// assert_eq!(r.try_get(), None);
    /// ```
    pub fn try_get(&self) -> Option<Result<&T, &E>> {
        self.cell.get().map(Result::as_ref)
    }

    /// Parks until the result is set and returns it.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::sync::oneshot::AsyncResult;
    /// greenio::run(|| {
    ///     let r = std::sync::Arc::new(AsyncResult::<&str, ()>::new());
    ///     let r2 = r.clone();
    ///     greenio::spawn(move || r2.set("done").unwrap());
    ///     assert_eq!(r.wait(), Ok(&"done"));
    /// });
    /// ```
    pub fn wait(&self) -> Result<&T, &E> {
        match self.wait_until(None) {
            Some(r) => r,
            None => unreachable!("a wait without deadline cannot time out"),
        }
    }

    /// Parks until the result is set or `timeout` passes (`None`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let r = greenio::sync::oneshot::AsyncResult::<u8, ()>::new();
    /// assert_eq!(r.wait_timeout(Duration::from_millis(5)), None);
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<&T, &E>> {
        self.wait_until(deadline_after(timeout))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Option<Result<&T, &E>> {
        crate::wait::coop_proceed();
        loop {
            if let Some(r) = self.try_get() {
                return Some(r);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            let w = Waiter::prepare();
            {
                let mut q = lock(&self.waiters);
                if self.cell.get().is_some() {
                    drop(q);
                    w.cancel();
                    continue;
                }
                q.push(w.clone());
            }
            // Waiters are woken all at once: nothing to pass on.
            super::park(
                &w,
                deadline,
                REASON,
                || lock(&self.waiters).remove(&w),
                || {},
            );
        }
    }

    /// Consumes the holder and returns the result, if set.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = greenio::sync::oneshot::AsyncResult::<u8, ()>::new();
    /// r.set(5).unwrap();
    /// assert_eq!(r.into_inner(), Some(Ok(5)));
    /// ```
    pub fn into_inner(self) -> Option<Result<T, E>> {
        self.cell.into_inner()
    }
}

impl<T, E> Default for AsyncResult<T, E> {
    fn default() -> Self {
        AsyncResult::new()
    }
}

impl<T: fmt::Debug, E: fmt::Debug> fmt::Debug for AsyncResult<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("result", &self.try_get())
            .finish()
    }
}
