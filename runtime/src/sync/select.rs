//! `Select`: wait for the first of several channel operations.
//!
//! # Design
//!
//! A builder rather than a macro: each branch is a channel operation plus
//! a closure that receives its outcome, and [`Select::wait`] returns what
//! the chosen closure returns. The closures are typed per branch, so
//! channels of different message types mix freely, and no macro grammar
//! has to be learnt.
//!
//! `wait` tries every branch without blocking, in a random order (so no
//! branch is starved when several are ready). If none is ready it
//! prepares one [`Waiter`] and queues it on every channel (each queue
//! re-checks readiness under its lock, so nothing slips in between), parks,
//! takes its token back out of every queue, and tries again. A select woken
//! by one channel may end up taking from another; then it passes a wakeup
//! on to each other channel that is ready, so the message that woke it is
//! not left with its other receivers asleep.

use std::fmt;
use std::time::{Duration, Instant};

use super::channel::{Receiver, Sender};
use super::error::{RecvError, SendError, TryRecvError, TrySendError};
use super::random_below;
use crate::wait::{deadline_after, WaitReason, Waiter, Wake};

const SELECT: WaitReason = WaitReason::sync("select");

/// One operation of a select, type-erased.
trait Branch<R> {
    /// Performs the operation if it can complete now, and runs its closure.
    fn try_fire(&mut self) -> Option<R>;
    /// Queues `w` unless the operation is ready; `false` if ready.
    fn register(&self, w: &Waiter) -> bool;
    /// Takes `w` back out of the queue.
    fn unregister(&self, w: &Waiter);
    /// Wakes one other waiter if the operation is ready.
    fn nudge(&self);
}

struct RecvBranch<'a, T, F> {
    rx: &'a Receiver<T>,
    f: Option<F>,
}

impl<T, R, F: FnOnce(Result<T, RecvError>) -> R> Branch<R> for RecvBranch<'_, T, F> {
    fn try_fire(&mut self) -> Option<R> {
        let outcome = match self.rx.chan().try_recv() {
            Ok(m) => Ok(m),
            Err(TryRecvError::Disconnected) => Err(RecvError),
            Err(TryRecvError::Empty) => return None,
        };
        let f = self.f.take().expect("greenio: a select branch fired twice");
        Some(f(outcome))
    }

    fn register(&self, w: &Waiter) -> bool {
        self.rx.chan().register_recv(w)
    }

    fn unregister(&self, w: &Waiter) {
        self.rx.chan().unregister_recv(w);
    }

    fn nudge(&self) {
        self.rx.chan().nudge_recv();
    }
}

struct SendBranch<'a, T, F> {
    tx: &'a Sender<T>,
    msg: Option<T>,
    f: Option<F>,
}

impl<T, R, F: FnOnce(Result<(), SendError<T>>) -> R> Branch<R> for SendBranch<'_, T, F> {
    fn try_fire(&mut self) -> Option<R> {
        let msg = self.msg.take()?;
        let outcome = match self.tx.chan().try_send(msg) {
            Ok(()) => Ok(()),
            Err(TrySendError::Disconnected(m)) => Err(SendError(m)),
            Err(TrySendError::Full(m)) => {
                self.msg = Some(m);
                return None;
            }
        };
        let f = self.f.take().expect("greenio: a select branch fired twice");
        Some(f(outcome))
    }

    fn register(&self, w: &Waiter) -> bool {
        self.tx.chan().register_send(w)
    }

    fn unregister(&self, w: &Waiter) {
        self.tx.chan().unregister_send(w);
    }

    fn nudge(&self) {
        self.tx.chan().nudge_send();
    }
}

/// Takes a select's token out of every queue it was put in, however the
/// wait ends (woken, timed out, or unwinding after cancellation).
struct Unregister<'s, 'a, R> {
    branches: &'s [Box<dyn Branch<R> + 'a>],
    w: &'s Waiter,
}

impl<R> Drop for Unregister<'_, '_, R> {
    fn drop(&mut self) {
        for b in self.branches {
            b.unregister(self.w);
        }
    }
}

/// The closure of a timeout or default case.
type Fallback<'a, R> = Box<dyn FnOnce() -> R + 'a>;

/// Waits for the first of several channel operations to complete, like
/// Go's `select` statement.
///
/// Add branches with [`recv`](Select::recv) and [`send`](Select::send),
/// each with a closure that gets the operation's outcome; optionally a
/// [`timeout`](Select::timeout) (or [`deadline`](Select::deadline)) or a
/// [`default`](Select::default); then [`wait`](Select::wait) runs exactly
/// one closure and returns its value. When several operations are ready,
/// one is picked at random.
///
/// A receive on a disconnected channel, and a send on a channel whose
/// receivers are gone, are ready at once (with an error), as in Go a
/// receive from a closed channel is.
///
/// # Examples
///
/// ```
/// use greenio::sync::{channel, Select};
/// use std::time::Duration;
///
/// greenio::run(|| {
///     let (tx_num, rx_num) = channel::<u32>();
///     let (tx_word, rx_word) = channel::<&str>();
///     greenio::spawn(move || tx_word.send("hello").unwrap());
///
///     let got = Select::new()
///         .recv(&rx_num, |m| format!("number {}", m.unwrap()))
///         .recv(&rx_word, |m| format!("word {}", m.unwrap()))
///         .timeout(Duration::from_secs(5), || "nothing".to_string())
///         .wait();
///     assert_eq!(got, "word hello");
///     drop(tx_num);
/// });
/// ```
pub struct Select<'a, R> {
    branches: Vec<Box<dyn Branch<R> + 'a>>,
    timeout: Option<(Option<Instant>, Fallback<'a, R>)>,
    default: Option<Fallback<'a, R>>,
}

impl<R> fmt::Debug for Select<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select")
            .field("branches", &self.branches.len())
            .field("timeout", &self.timeout.as_ref().map(|t| t.0))
            .field("default", &self.default.is_some())
            .finish()
    }
}

impl<R> Default for Select<'_, R> {
    fn default() -> Self {
        Select::new()
    }
}

impl<'a, R> Select<'a, R> {
    /// A select with no branches yet.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = greenio::sync::Select::new().default(|| 1).wait();
    /// assert_eq!(r, 1);
    /// ```
    pub fn new() -> Self {
        Select {
            branches: Vec::new(),
            timeout: None,
            default: None,
        }
    }

    /// Adds a receive: when a message arrives, or the channel turns out
    /// empty and disconnected, `f` gets `Ok(msg)` or `Err(RecvError)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::sync::{channel, Select};
    /// let (tx, rx) = channel();
    /// tx.send(4).unwrap();
    /// let r = Select::new().recv(&rx, |m| m.unwrap() * 2).wait();
    /// assert_eq!(r, 8);
    /// ```
    pub fn recv<T: 'a>(
        mut self,
        rx: &'a Receiver<T>,
        f: impl FnOnce(Result<T, RecvError>) -> R + 'a,
    ) -> Self {
        self.branches.push(Box::new(RecvBranch { rx, f: Some(f) }));
        self
    }

    /// Adds a send of `msg`: when there is room (for `bounded(0)`: a
    /// receiver is parked), or every receiver is gone, `f` gets `Ok(())` or
    /// `Err(SendError(msg))`. If another branch wins, `msg` is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::sync::{bounded, Select};
    /// let (tx, rx) = bounded(1);
    /// let sent = Select::new().send(&tx, 9, |r| r.is_ok()).wait();
    /// assert!(sent);
    /// assert_eq!(rx.recv(), Ok(9));
    /// ```
    pub fn send<T: 'a>(
        mut self,
        tx: &'a Sender<T>,
        msg: T,
        f: impl FnOnce(Result<(), SendError<T>>) -> R + 'a,
    ) -> Self {
        self.branches.push(Box::new(SendBranch {
            tx,
            msg: Some(msg),
            f: Some(f),
        }));
        self
    }

    /// Runs `f` instead if no operation completes within `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::sync::{channel, Select};
    /// use std::time::Duration;
    /// let (_tx, rx) = channel::<u8>();
    /// let r = Select::new()
    ///     .recv(&rx, |_| "message")
    ///     .timeout(Duration::from_millis(5), || "timed out")
    ///     .wait();
    /// assert_eq!(r, "timed out");
    /// ```
    pub fn timeout(mut self, timeout: Duration, f: impl FnOnce() -> R + 'a) -> Self {
        self.timeout = Some((deadline_after(timeout), Box::new(f)));
        self
    }

    /// Runs `f` instead if no operation completes by `deadline`.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::sync::Select;
    /// use std::time::Instant;
    /// let r = Select::<()>::new().deadline(Instant::now(), || ()).wait();
    /// assert_eq!(r, ());
    /// ```
    pub fn deadline(mut self, deadline: Instant, f: impl FnOnce() -> R + 'a) -> Self {
        self.timeout = Some((Some(deadline), Box::new(f)));
        self
    }

    /// Runs `f` instead if no operation is ready right now: `wait` never
    /// parks (Go's `default:` case).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::sync::{channel, Select};
    /// let (_tx, rx) = channel::<u8>();
    /// let r = Select::new().recv(&rx, |_| false).default(|| true).wait();
    /// assert!(r);
    /// ```
    pub fn default(mut self, f: impl FnOnce() -> R + 'a) -> Self {
        self.default = Some(Box::new(f));
        self
    }

    /// Waits until one operation completes (or the timeout passes, or at
    /// once with a default), runs its closure and returns the result.
    ///
    /// From a green thread this parks only the caller; from a plain OS
    /// thread it blocks. A cancelled or timed-out green thread unwinds from
    /// here without having performed any of the operations.
    ///
    /// # Panics
    ///
    /// Panics if there is no branch, no timeout and no default (it could
    /// never return).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::sync::{channel, Select};
    /// greenio::run(|| {
    ///     let (tx, rx) = channel();
    ///     greenio::spawn(move || tx.send(1).unwrap());
    ///     assert_eq!(Select::new().recv(&rx, |m| m.unwrap()).wait(), 1);
    /// });
    /// ```
    pub fn wait(mut self) -> R {
        let n = self.branches.len();
        assert!(
            n > 0 || self.timeout.is_some() || self.default.is_some(),
            "greenio: Select::wait with no branch, timeout or default would wait forever"
        );
        if self.default.is_none() {
            // With a default branch it never parks: like `try_*`, no budget.
            crate::wait::coop_proceed();
        }
        let deadline = self.timeout.as_ref().and_then(|t| t.0);
        let mut woken = false;
        let mut order: Vec<usize> = (0..n).collect();
        loop {
            // A fresh random order every round, as Go does: with a rotating
            // start, a branch listed after a never-ready one would win
            // twice as often.
            for k in (1..n).rev() {
                order.swap(k, random_below(k + 1));
            }
            for &i in &order {
                if let Some(r) = self.branches[i].try_fire() {
                    if woken {
                        for (j, b) in self.branches.iter().enumerate() {
                            if j != i {
                                b.nudge();
                            }
                        }
                    }
                    return r;
                }
            }
            if let Some(f) = self.default.take() {
                return f();
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                if let Some((_, f)) = self.timeout.take() {
                    return f();
                }
            }
            let w = Waiter::prepare();
            let mut registered = 0;
            while registered < n && self.branches[registered].register(&w) {
                registered += 1;
            }
            let guard = Unregister {
                branches: &self.branches[..registered],
                w: &w,
            };
            if registered < n {
                // A branch is ready: undo, and try again.
                drop(guard);
                woken |= w.cancel();
                continue;
            }
            let r = w.wait(deadline, SELECT);
            drop(guard);
            if r == Wake::Notified {
                woken = true;
                // Cancelled meanwhile: do not take anything; hand the
                // wakeup on to whoever else waits on these channels.
                super::interruption_point(|| {
                    for b in &self.branches {
                        b.nudge();
                    }
                });
            }
        }
    }
}
