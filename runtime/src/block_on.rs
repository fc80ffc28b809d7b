//! `block_on`: a future polled on the calling green thread, and
//! [`JoinHandle`] as a future.
//!
//! # Design
//!
//! [`block_on`] polls the future on the caller's own stack. When the future
//! returns `Pending`, the caller parks on a [`Waiter`] like any other
//! blocking call, so only that green thread waits (or, outside a hub, the OS
//! thread). The future's [`Waker`] may be cloned, kept and fired from any
//! thread: other hubs, plain OS threads, a tokio runtime's workers.
//!
//! One `Waker` serves the whole `block_on` call. It points at a [`Signal`]:
//! a flag `notified` and the slot `waiter` for the current wait, both under
//! one mutex.
//!
//! 1. Clear `notified`, then poll. A wake during the poll sets `notified`.
//! 2. `Pending`: prepare a fresh [`Waiter`] (a new park-word `seq`), then,
//!    under the lock, either find `notified` set (the future was woken
//!    since step 1: cancel the waiter, let the hub run others once, poll
//!    again) or store the waiter in the slot.
//! 3. Wait. A wake sets `notified`, takes the waiter out of the slot and
//!    fires it.
//!
//! **No lost wakeup**: a wake either lands before step 2's lock (the flag
//! is seen there) or after it (the waiter is in the slot and is fired; a
//! fire between `prepare` and `wait` makes `wait` return at once, see
//! [`crate::wait`]). **No spurious resume**: the slot only ever holds the
//! waiter of the current wait; a waiter left behind by an earlier wait
//! carries an older `seq`, so firing it fails its compare-and-swap and
//! resumes nothing. A wake that arrives while the future is being polled
//! costs one extra poll, which the `Future` contract allows.
//!
//! **Cancellation**: [`JoinHandle::cancel`] and [`crate::timeout`] unwind
//! out of step 3 like out of any park point (the wait disarms first, so no
//! wake is consumed by a wait that is gone). The pinned future lives on
//! `block_on`'s frame and is dropped by the unwind; its wakers may outlive
//! it, and firing them then does nothing.
//!
//! A future that wakes itself and returns `Pending` (an async `yield_now`)
//! lets the hub run every other ready green thread once before it is polled
//! again (step 2), so it cannot starve its neighbours.
//!
//! # Rejected designs
//!
//! * *A new `Waker` per poll, holding that poll's `Waiter`*: a future may
//!   keep a waker from an earlier poll (`Waker::will_wake` said it was the
//!   same) and fire it later; it would name an old `seq` and the wakeup
//!   would be lost. Also one allocation per poll.
//! * *[`park`](crate::park) and an [`Unparker`](crate::Unparker) as the
//!   waker*: the park token is shared with the user's own `park` calls, so
//!   a late future wakeup would end an unrelated `park` early.
//! * *Polling futures on a separate executor thread*: the work would leave
//!   the green thread, and with it its `!Send` state and its cancellation.
//!
//! # Costs
//!
//! A future completed on another thread costs one cross-thread wakeup: the
//! waker's mutex, a compare-and-swap on the park word, a push to the hub's
//! inbox and (if the hub sleeps in `epoll_wait`) a write to its eventfd.
//! `examples/async_bridge.rs` measures the round trip.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake as TaskWake, Waker};

use crate::green::JoinHandle;
use crate::task::JoinError;
use crate::wait::{WaitReason, Waiter};

/// What a `block_on` call's [`Waker`] points at.
#[derive(Debug, Default)]
struct Signal {
    state: Mutex<SignalState>,
}

#[derive(Debug, Default)]
struct SignalState {
    /// Set by every wake; cleared by `block_on` before each poll.
    notified: bool,
    /// The waiter of the wait in progress; stored by `block_on` (step 2),
    /// taken by the first wake after it.
    waiter: Option<Waiter>,
}

impl Signal {
    fn lock(&self) -> MutexGuard<'_, SignalState> {
        // Nothing panics while the lock is held; a poisoned lock still
        // holds consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TaskWake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let waiter = {
            let mut s = self.lock();
            s.notified = true;
            s.waiter.take()
        };
        if let Some(w) = waiter {
            w.wake();
        }
    }
}

/// Clears the slot when `block_on` returns or unwinds, so a waker that
/// outlives the call does not keep the green thread's packet alive.
struct ClearOnExit<'a>(&'a Signal);

impl Drop for ClearOnExit<'_> {
    fn drop(&mut self) {
        self.0.lock().waiter = None;
    }
}

/// Runs a future to completion on the calling green thread and returns its
/// output.
///
/// While the future is pending only this green thread parks: the hub runs
/// its other green threads. The future's [`Waker`] may be used from any
/// thread (another hub, a plain OS thread, a tokio worker); a wake resumes
/// this green thread, and no wake is lost or resumes a later, unrelated
/// wait (the module docs of `block_on.rs` give the protocol).
///
/// Outside a hub, `block_on` blocks the calling OS thread, like
/// `futures::executor::block_on`.
///
/// `block_on` gives the future no reactor: a future that needs tokio's
/// (a `tokio::net::TcpStream`, `tokio::time::sleep`) must run on a tokio
/// runtime, and the green thread awaits its `JoinHandle`. That bridge costs
/// one cross-thread wakeup per call; `examples/async_bridge.rs` shows it and
/// measures it.
///
/// # Wakeups
///
/// One `Waker` serves the whole call. A wake sets a flag and fires the
/// [`Waiter`] of the wait in progress, both under one lock; `block_on`
/// clears the flag before each poll and, after a `Pending`, checks it under
/// that lock before it publishes a fresh `Waiter`. So a wake that lands
/// during the poll is seen as the flag (and the future is polled again),
/// and one that lands later fires the published waiter: none is lost. A
/// waker kept from an earlier call, or fired after the wait it was meant
/// for, names an older park-word sequence number and resumes nothing: no
/// spurious resume of a later, unrelated wait.
///
/// # Cancellation
///
/// [`JoinHandle::cancel`] and [`timeout`](crate::timeout) interrupt a green
/// thread parked in `block_on` like any park point: it unwinds, and the
/// future is dropped (its destructors run) on the way out.
///
/// # Panics
///
/// Panics if called on a hub thread outside any green thread (a reactor
/// callback must not block its hub) and the future is not ready at once. A
/// panic inside the future's `poll` propagates to the caller.
///
/// # Examples
///
/// A future completed by a plain OS thread while another green thread keeps
/// running:
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::sync::{Arc, Mutex};
/// use std::task::{Context, Poll, Waker};
///
/// #[derive(Default)]
/// struct Slot(Mutex<(Option<u32>, Option<Waker>)>);
///
/// struct Get(Arc<Slot>);
/// impl Future for Get {
///     type Output = u32;
///     fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
///         let mut g = self.0 .0.lock().unwrap();
///         match g.0.take() {
///             Some(v) => Poll::Ready(v),
///             None => {
///                 g.1 = Some(cx.waker().clone());
///                 Poll::Pending
///             }
///         }
///     }
/// }
///
/// greenio::run(|| {
///     let slot = Arc::new(Slot::default());
///     let s2 = slot.clone();
///     std::thread::spawn(move || {
///         std::thread::sleep(std::time::Duration::from_millis(10));
///         let mut g = s2.0.lock().unwrap();
///         g.0 = Some(42);
///         if let Some(w) = g.1.take() {
///             w.wake();
///         }
///     });
///     let ticker = greenio::spawn(|| greenio::sleep(std::time::Duration::from_millis(1)));
///     assert_eq!(greenio::block_on(Get(slot)), 42);
///     assert!(ticker.is_finished()); // it ran while main was parked
///
///     // Plain async code works too:
///     let n = greenio::block_on(async { 6 * 7 });
///     assert_eq!(n, 42);
/// });
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let signal = Arc::new(Signal::default());
    let _clear = ClearOnExit(&signal);
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        // 1. clear the flag, poll
        signal.lock().notified = false;
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        // 2. prepare, then publish the waiter unless a wake came first
        let w = Waiter::prepare();
        let woken = {
            let mut s = signal.lock();
            if s.notified {
                true
            } else {
                s.waiter = Some(w.clone());
                false
            }
        };
        if woken {
            w.cancel();
            crate::yield_now();
            continue;
        }
        // 3. wait; cancellation and timeouts unwind from here
        w.wait(None, WaitReason::external("block_on"));
    }
}

/// A `JoinHandle` is a future of the green thread's result, so async code
/// (a future run by [`block_on`], or by any executor) can wait for a green
/// thread: `handle.await`.
///
/// This reads like tokio's `JoinHandle` and works with any combinator that
/// takes futures, where a separate `join_async()` would add a type and a
/// method name to learn. Awaiting consumes nothing: the handle can still
/// [`cancel`](JoinHandle::cancel) while awaited. Once it has returned
/// `Ready`, the result is gone: polling again, or calling
/// [`join`](JoinHandle::join), returns `Err(JoinError::Cancelled)`.
///
/// The waker is woken from the finishing green thread's hub; it may be used
/// on any thread. Dropping the future detaches the green thread, like
/// dropping the handle.
///
/// # Examples
///
/// ```
/// greenio::run(|| {
///     let h = greenio::spawn(|| 6 * 7);
///     let doubled = greenio::block_on(async move { h.await.unwrap() * 2 });
///     assert_eq!(doubled, 84);
/// });
/// ```
impl<T: Send + 'static> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let packet = &self.packet;
        if packet.header.poll_finished(cx.waker()) {
            Poll::Ready(packet.take_result())
        } else {
            Poll::Pending
        }
    }
}

/// A `JoinHandle` holds only an `Arc` to the packet: nothing in it is
/// pinned, so `&mut handle` can be awaited or polled repeatedly.
impl<T> Unpin for JoinHandle<T> {}
