//! The parking protocol: how a green thread or a plain OS thread waits, and
//! how anything, from any thread, wakes it.
//!
//! # Design
//!
//! Every waiting context (a green thread, or an OS thread outside any hub)
//! owns one *park word*, an `AtomicU64` holding `seq << 2 | state`:
//!
//! ```text
//!   IDLE      not waiting
//!   WAITING   armed for wait number `seq`: a waker may fire it
//!   NOTIFIED  fired by a waker for `seq`
//!   TIMED_OUT fired by the deadline for `seq`
//! ```
//!
//! A wait goes through three steps:
//!
//! 1. [`Waiter::prepare`] takes a fresh `seq` (unique per hub, or per OS
//!    thread) and arms the word: `seq|WAITING`. The returned [`Waiter`] is
//!    the token given to whatever will wake us (a wait list, a socket's
//!    reader slot, a timer).
//! 2. The caller registers the waiter, re-checks its condition, then calls
//!    [`Waiter::wait`], which suspends the green thread (or parks the OS
//!    thread) unless the word was already fired.
//! 3. A waker calls [`Waiter::wake`]: a compare-and-swap `seq|WAITING ->
//!    seq|NOTIFIED`. Exactly one fire per `seq` can succeed, and only the
//!    winner schedules the waiter. A waker holding a token from an *earlier*
//!    wait finds another `seq` in the word, fails, and does nothing: a stale
//!    wakeup can never resume a green thread spuriously, and `wake` returning
//!    `false` tells a wait list to pass the wakeup to its next waiter, so no
//!    wakeup is lost either.
//!
//! When the wait ends the owner *disarms* the word (`seq|WAITING -> IDLE`);
//! if that fails, a fire won the race and the wait reports it. This is what
//! makes cancellation safe: a green thread interrupted by
//! [`cancel`](crate::JoinHandle::cancel) or a [`timeout`](crate::timeout)
//! disarms before it unwinds, so no later notification can be consumed by a
//! waiter that is gone; and if a notification *did* arrive first, the wait
//! returns [`Wake::Notified`] and the interrupt is delivered at the next
//! park point instead. A cancelled waiter never steals a message, a permit
//! or a lock.
//!
//! # Rejected designs
//!
//! * *Hand-off* (the waker moves the value into the waiter): fast, but a
//!   waiter cancelled after the hand-off loses the value. We wake, and the
//!   woken side re-checks the shared state under its own lock.
//! * *A flag per green thread without a sequence number*: a wakeup meant for
//!   wait N that arrives during wait N+1 resumes it spuriously. The sequence
//!   number in the same word as the state closes that window without locks.
//! * *`std::thread::park` tokens for green threads*: they would block the
//!   whole hub.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::hub;
use crate::park::{OsParker, ParkWord, NOTIFIED, TIMED_OUT, WAITING};
pub use crate::park::{WaitKind, WaitReason};
use crate::task::{Target, WaitToken};

thread_local! {
    static OS_PARKER: Arc<OsParker> = Arc::new(OsParker {
        word: ParkWord::default(),
        thread: std::thread::current(),
    });
    static OS_SEQ: Cell<u64> = const { Cell::new(0) };
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A waker fired this waiter: re-check the condition.
    Notified,
    /// The deadline passed first.
    TimedOut,
}

/// A token that wakes one particular wait of one green thread or OS thread.
///
/// `Waiter` is `Send + Sync + Clone`: put it in a wait list, hand it to
/// another thread, call [`wake`](Waiter::wake) from anywhere. Waking a
/// waiter whose wait has already ended (it timed out, was cancelled, or was
/// woken by someone else) does nothing and returns `false`.
///
/// This is the building block of every primitive in [`sync`](crate::sync);
/// use it to write your own.
///
/// # Examples
///
/// A one-slot mailbox built on `Waiter`:
///
/// ```
/// use greenio::wait::{Waiter, WaitReason, Wake};
/// use std::sync::{Arc, Mutex};
///
/// greenio::run(|| {
///     let slot: Arc<Mutex<(Option<u32>, Option<Waiter>)>> = Arc::default();
///     let s2 = slot.clone();
///     greenio::spawn(move || {
///         let mut g = s2.lock().unwrap();
///         g.0 = Some(7);
///         if let Some(w) = g.1.take() {
///             w.wake();
///         }
///     });
///     let value = loop {
///         let w = Waiter::prepare();
///         {
///             let mut g = slot.lock().unwrap();
///             if let Some(v) = g.0.take() {
///                 break v;
///             }
///             g.1 = Some(w.clone());
///         }
///         w.wait(None, WaitReason::sync("mailbox"));
///     };
///     assert_eq!(value, 7);
/// });
/// ```
#[derive(Clone)]
pub struct Waiter(WaitToken);

impl fmt::Debug for Waiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.0.target {
            Target::Green(t) => format!("green thread {}", t.header().id),
            Target::Os(p) => format!("OS thread {:?}", p.thread.id()),
        };
        f.debug_struct("Waiter")
            .field("target", &kind)
            .field("seq", &self.0.seq)
            .finish()
    }
}

impl Waiter {
    /// Arms a new wait for the calling context (the current green thread, or
    /// this OS thread outside a hub) and returns its token.
    ///
    /// Register the token where a waker will find it, re-check the
    /// condition, then call [`wait`](Waiter::wait). A fire that happens
    /// between `prepare` and `wait` is not lost: `wait` returns at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::wait::{Waiter, WaitReason, Wake};
    /// let w = Waiter::prepare();
    /// assert!(w.wake()); // fired before waiting: wait returns at once
    /// assert_eq!(w.wait(None, WaitReason::sync("demo")), Wake::Notified);
    /// assert!(!w.wake()); // that wait is over: a stale wake does nothing
    /// ```
    pub fn prepare() -> Waiter {
        if let Some(w) = hub::with_current_task(|hub, task| {
            let seq = hub.next_seq();
            task.header().word.arm(seq);
            Waiter(WaitToken {
                target: Target::Green(task.clone()),
                seq,
            })
        }) {
            return w;
        }
        let parker = OS_PARKER.with(Arc::clone);
        let seq = OS_SEQ.with(|s| {
            let n = s.get() + 1;
            s.set(n);
            n
        });
        parker.word.arm(seq);
        Waiter(WaitToken {
            target: Target::Os(parker),
            seq,
        })
    }

    pub(crate) fn token(&self) -> &WaitToken {
        &self.0
    }

    /// Wakes this wait. Returns `true` if this call ended it; `false` if the
    /// wait had already ended (woken, timed out, cancelled), in which case a
    /// wait list should wake its next waiter instead.
    #[inline]
    pub fn wake(&self) -> bool {
        hub::fire(&self.0, NOTIFIED)
    }

    /// Whether this wait has ended (a wake to it would do nothing). Wait
    /// lists use it to drop tokens of waiters that gave up.
    #[inline]
    pub fn is_stale(&self) -> bool {
        !self.0.word().is_waiting(self.0.seq)
    }

    /// Whether two tokens name the same wait.
    pub fn same_wait(&self, other: &Waiter) -> bool {
        self.0.seq == other.0.seq
            && match (&self.0.target, &other.0.target) {
                (Target::Green(a), Target::Green(b)) => Arc::ptr_eq(a, b),
                (Target::Os(a), Target::Os(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }

    /// Waits until this waiter is woken or `deadline` passes.
    ///
    /// In a green thread this parks only the green thread; on a plain OS
    /// thread it blocks the thread. Call it from the context that called
    /// [`prepare`](Waiter::prepare).
    ///
    /// A green thread that is [cancelled](crate::JoinHandle::cancel) or whose
    /// [`timeout`](crate::timeout) scope expires while waiting unwinds from
    /// here; the wait is disarmed first, so no notification is consumed by
    /// it.
    ///
    /// # Panics
    ///
    /// Panics if called from another context than the one that prepared it,
    /// or on a hub thread outside any green thread (a callback must not
    /// block its hub).
    pub fn wait(&self, deadline: Option<Instant>, reason: WaitReason) -> Wake {
        let state = match &self.0.target {
            Target::Green(t) => {
                let state = hub::with_current_task(|hub, cur| {
                    assert!(
                        Arc::ptr_eq(cur, t),
                        "greenio: Waiter::wait called outside the green thread that prepared it"
                    );
                    hub.block_on_word(self.0.seq, deadline, reason)
                });
                state.expect(
                    "greenio: Waiter::wait called outside the green thread that prepared it",
                )
            }
            Target::Os(p) => {
                assert!(
                    !hub::on_hub_thread(),
                    "greenio: blocking call on a hub thread outside a green thread; \
                     callbacks must not block the hub (use the try_ variant or spawn a green thread)"
                );
                loop {
                    if p.word.0.load(Ordering::Acquire) != self.0.seq << 2 | WAITING {
                        break;
                    }
                    match deadline {
                        None => std::thread::park(),
                        Some(d) => {
                            let now = Instant::now();
                            if now >= d {
                                p.word.fire(self.0.seq, TIMED_OUT);
                                continue;
                            }
                            std::thread::park_timeout(d - now);
                        }
                    }
                }
                p.word.take_fired(self.0.seq)
            }
        };
        if state == TIMED_OUT {
            Wake::TimedOut
        } else {
            Wake::Notified
        }
    }

    /// Ends this wait without waiting (the condition turned true after
    /// [`prepare`](Waiter::prepare)). Returns `true` if a wake had already
    /// fired it: a wait list that may have chosen it should then wake
    /// another waiter.
    pub fn cancel(&self) -> bool {
        self.0.word().disarm(self.0.seq) != WAITING
    }
}

/// Spends one unit of the calling green thread's fair budget before an
/// operation that may park, yielding first when it is spent (see
/// `coop.rs`). A no-op outside a green thread.
#[inline]
pub(crate) fn coop_proceed() {
    hub::with_hub(|h| h.coop_proceed());
}

/// The deadline `d` from now; `None` when it is too far away to represent
/// (callers treat that as "no deadline"). greenio's one conversion from a
/// timeout to a deadline.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use greenio::wait::deadline_after;
/// assert!(deadline_after(Duration::from_secs(1)).is_some());
/// assert!(deadline_after(Duration::MAX).is_none());
/// ```
pub fn deadline_after(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}
