//! `timeout`: gevent's `Timeout` as a scope.
//!
//! A scope arms a timer on the hub. When it fires, the green thread is
//! interrupted at its current (or next) park point and unwinds with a
//! private payload naming the scope; the scope catches exactly its own
//! payload and returns [`Elapsed`]. Scopes nest: when several have expired,
//! the outermost one is delivered, so an inner scope never swallows an
//! outer deadline. A body that finishes without parking again after the
//! deadline returns its value: interruption happens only at park points.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::hub::{self, Action, Hub};
use crate::timer::TimerKey;
use crate::unwind::TimeoutUnwind;

/// The error of [`timeout`]: the deadline passed before the body finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(_: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, "deadline has elapsed")
    }
}

/// Runs `body`, interrupting it if it takes longer than `d`.
///
/// The body is interrupted where it parks (a socket call, `sleep`, a lock,
/// a channel...): it unwinds from there, running destructors, and
/// `timeout` returns `Err(Elapsed)`. Scopes nest.
///
/// # Panics
///
/// Panics outside a green thread (a plain OS thread has no park points to
/// interrupt).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// greenio::run(|| {
///     let r = greenio::timeout(Duration::from_millis(10), || {
///         greenio::sleep(Duration::from_secs(60));
///     });
///     assert!(r.is_err());
///     let r = greenio::timeout(Duration::from_secs(60), || 5);
///     assert_eq!(r, Ok(5));
/// });
/// ```
pub fn timeout<T>(d: Duration, body: impl FnOnce() -> T) -> Result<T, Elapsed> {
    match crate::wait::deadline_after(d) {
        Some(deadline) => timeout_at(deadline, body),
        None => Ok(body()),
    }
}

/// Like [`timeout`] with an absolute deadline.
///
/// # Panics
///
/// Panics outside a green thread.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// greenio::run(|| {
///     let deadline = Instant::now() + Duration::from_millis(5);
///     assert!(greenio::timeout_at(deadline, || greenio::park()).is_err());
/// });
/// ```
pub fn timeout_at<T>(deadline: Instant, body: impl FnOnce() -> T) -> Result<T, Elapsed> {
    assert!(
        hub::in_green_thread(),
        "greenio::timeout called outside a green thread; start one with greenio::run"
    );
    let (scope, key) = hub::with_hub(|h| open_scope(h, deadline)).expect("inside a hub");
    struct Close(u64, TimerKey);
    impl Drop for Close {
        fn drop(&mut self) {
            hub::with_hub(|h| close_scope(h, self.0, self.1));
        }
    }
    let close = Close(scope, key);
    let r = panic::catch_unwind(AssertUnwindSafe(body));
    drop(close);
    match r {
        Ok(v) => Ok(v),
        Err(p) => match p.downcast_ref::<TimeoutUnwind>() {
            Some(t) if t.0 == scope => Err(Elapsed(())),
            _ => panic::resume_unwind(p),
        },
    }
}

/// Starts a timeout scope for the running green thread: a timer that
/// expires it (the loop then interrupts the green thread).
fn open_scope(hub: &Hub, deadline: Instant) -> (u64, TimerKey) {
    let scope = hub.scope_seq.get() + 1;
    hub.scope_seq.set(scope);
    let h = hub.cur().header();
    let action = Action::Interrupt {
        slot: h.slot.load(std::sync::atomic::Ordering::Relaxed),
        task_id: h.id,
        scope,
    };
    let key = hub.timers.borrow_mut().insert(deadline, action);
    (scope, key)
}

/// Ends a timeout scope: cancels its timer and forgets its expiry.
fn close_scope(hub: &Hub, scope: u64, key: TimerKey) {
    hub.timers.borrow_mut().cancel(key);
    let s = hub.cur();
    if s.timeout_pending.get() == Some(scope) {
        s.timeout_pending.set(None);
        s.interrupted.set(s.header().is_cancelled());
    }
}
