//! Multi-producer multi-consumer channels: unbounded, bounded, rendezvous.
//!
//! # Design
//!
//! One internal spinlock guards the whole state of a channel: the message
//! buffer, the queue of parked receivers and the queue of parked senders.
//! It is held for a few instructions per operation and never across a
//! park, so a plain lock beats anything lock-free here in the case that
//! matters most, two green threads on one hub (always uncontended).
//!
//! ```text
//!   send:  lock; push message; pop receivers until one wake succeeds; unlock
//!   recv:  lock; pop message (wake a sender if bounded); unlock
//!          or: lock; queue my Waiter; unlock; park; re-check from the top
//! ```
//!
//! A woken receiver is not handed the message; it re-checks. A receiver
//! that is cancelled or times out while parked leaves with its token
//! disarmed, so the sender's wake skips it and goes to the next receiver.
//!
//! **Rendezvous** (`bounded(0)`): a blocking `send` puts its message in
//! the buffer tagged with a ticket and its own waiter, then parks until a
//! receiver has taken that ticket (the receiver wakes it). A sender whose
//! wait ends by timeout, cancellation or disconnection takes its message
//! back out if it is still there. `try_send` (and a [`Select`] send
//! branch) succeeds only when more receivers are parked in `recv` than
//! messages are waiting, and then wakes one; if that receiver leaves
//! before taking it (cancelled, timed out), the message waits for the
//! next receiver. A rendezvous message is never received by the green
//! thread (or OS thread) that sent it, as Go guarantees for a `select`
//! that sends and receives on one unbuffered channel.
//!
//! Rejected: a lock-free ring per channel (crossbeam's `array` flavour).
//! Parked green threads still need a waiter list under some lock, and the
//! ring only pays off with many OS threads hammering one channel; it
//! would also make the rendezvous and disconnection rules much harder to
//! keep cancel-safe.
//!
//! [`Select`]: super::Select

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use super::spin::SpinLock;
use super::{lock, WaitQueue};
use crate::wait::{deadline_after, WaitReason, Waiter, Wake};

const SEND: WaitReason = WaitReason::sync("channel send");
const RECV: WaitReason = WaitReason::sync("channel recv");

/// The shared half of a channel.
pub(crate) struct Chan<T> {
    state: SpinLock<ChannelState<T>>,
    /// `None` for an unbounded channel; `Some(0)` for a rendezvous.
    cap: Option<usize>,
    /// Live `Sender` handles; the last one to drop disconnects.
    senders: AtomicUsize,
    /// Live `Receiver` handles; the last one to drop disconnects.
    receivers: AtomicUsize,
}

/// Everything under the channel's lock.
struct ChannelState<T> {
    /// Messages not yet received, oldest first.
    buf: VecDeque<T>,
    /// Rendezvous only: one entry per message of `buf`, in the same order.
    pending: VecDeque<Pending>,
    /// Rendezvous only: the next ticket to give a message.
    next_ticket: u64,
    /// Receivers parked until a message arrives or the senders are gone.
    recv_q: WaitQueue,
    /// Senders parked until there is room (bounded) or a receiver
    /// (rendezvous `Select` branches), or the receivers are gone.
    send_q: WaitQueue,
    /// Every `Sender` has been dropped.
    tx_gone: bool,
    /// Every `Receiver` has been dropped.
    rx_gone: bool,
}

/// Who sent a rendezvous message: a rendezvous needs two parties, so its
/// sender never receives it back (say, in its next `Select`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Party {
    Green(u64),
    Os(std::thread::ThreadId),
}

impl Party {
    fn current() -> Party {
        crate::hub::with_current_task(|_, t| Party::Green(t.header().id))
            .unwrap_or_else(|| Party::Os(std::thread::current().id()))
    }
}

/// A message waiting in a rendezvous channel.
struct Pending {
    /// Increasing; identifies the message for its sender.
    ticket: u64,
    /// Its sender.
    from: Party,
    /// The blocked sender to wake when the message is taken (`None` for a
    /// message put by `try_send`, whose sender has already returned).
    sender: Option<Waiter>,
}

/// Which of a channel's queues a waiter is in.
#[derive(Clone, Copy)]
enum Side {
    Send,
    Recv,
}

impl<T> ChannelState<T> {
    fn queue(&mut self, side: Side) -> &mut WaitQueue {
        match side {
            Side::Send => &mut self.send_q,
            Side::Recv => &mut self.recv_q,
        }
    }

    /// Pushes `msg` if there is room; wakes a receiver.
    fn try_push(&mut self, cap: Option<usize>, msg: T) -> Result<(), TrySendError<T>> {
        if self.rx_gone {
            return Err(TrySendError::Disconnected(msg));
        }
        match cap {
            None => {}
            Some(0) => {
                if self.recv_q.live() <= self.buf.len() {
                    return Err(TrySendError::Full(msg));
                }
                let ticket = self.take_ticket();
                self.pending.push_back(Pending {
                    ticket,
                    from: Party::current(),
                    sender: None,
                });
            }
            Some(n) if self.buf.len() >= n => return Err(TrySendError::Full(msg)),
            Some(_) => {}
        }
        self.buf.push_back(msg);
        self.recv_q.wake_one();
        Ok(())
    }

    /// Pops the oldest message and wakes whoever waits for its room. In a
    /// rendezvous, messages the caller sent itself are skipped.
    fn try_pop(&mut self, cap: Option<usize>) -> Result<T, TryRecvError> {
        let msg = if cap == Some(0) {
            self.pop_rendezvous()
        } else {
            let m = self.buf.pop_front();
            if m.is_some() && cap.is_some() {
                self.send_q.wake_one();
            }
            m
        };
        match msg {
            Some(m) => Ok(m),
            None if self.tx_gone => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Takes the oldest rendezvous message from another party and wakes
    /// its blocked sender.
    fn pop_rendezvous(&mut self) -> Option<T> {
        let i = self.other_party_message()?;
        let p = self.pending.remove(i)?;
        if let Some(w) = p.sender {
            w.wake();
        }
        let m = self.buf.remove(i);
        self.pending_shrank();
        m
    }

    /// One message fewer waits for the parked receivers: a `Select` send
    /// branch may now find a receiver free.
    fn pending_shrank(&mut self) {
        if !self.send_q.is_empty() && self.recv_q.live() > self.buf.len() {
            self.send_q.wake_one();
        }
    }

    /// The index of the first rendezvous message the caller did not send.
    fn other_party_message(&self) -> Option<usize> {
        if self.pending.is_empty() {
            return None;
        }
        let me = Party::current();
        self.pending.iter().position(|p| p.from != me)
    }

    fn take_ticket(&mut self) -> u64 {
        let t = self.next_ticket;
        self.next_ticket += 1;
        t
    }

    /// Where the rendezvous message with `ticket` is, if not yet taken.
    fn find(&self, ticket: u64) -> Option<usize> {
        self.pending
            .binary_search_by_key(&ticket, |p| p.ticket)
            .ok()
    }

    /// Takes a not-yet-received rendezvous message back out.
    fn withdraw(&mut self, i: usize) -> Option<T> {
        self.pending.remove(i);
        let m = self.buf.remove(i);
        self.pending_shrank();
        m
    }

    fn recv_ready(&self, cap: Option<usize>) -> bool {
        self.tx_gone
            || if cap == Some(0) {
                self.other_party_message().is_some()
            } else {
                !self.buf.is_empty()
            }
    }

    /// Whether a send would succeed now. For a rendezvous, `me` (a
    /// `Select` that also receives on this channel) does not count as a
    /// parked receiver: a select must not meet itself.
    fn send_ready(&self, cap: Option<usize>, me: Option<&Waiter>) -> bool {
        self.rx_gone
            || match cap {
                None => true,
                Some(0) => self.recv_q.live_except(me) > self.buf.len(),
                Some(n) => self.buf.len() < n,
            }
    }

    /// Queues a receiver; a rendezvous tells one parked `Select` sender
    /// that a receiver is now there.
    fn register_recv(&mut self, cap: Option<usize>, w: &Waiter) {
        self.recv_q.push(w.clone());
        if cap == Some(0) {
            self.send_q.wake_one_except(w);
        }
    }
}

/// Takes a rendezvous message back if its sender leaves before delivery.
struct Withdraw<'a, T> {
    chan: &'a Chan<T>,
    ticket: u64,
}

impl<T> Drop for Withdraw<'_, T> {
    fn drop(&mut self) {
        let msg = {
            let mut s = lock(&self.chan.state);
            s.find(self.ticket).and_then(|i| s.withdraw(i))
        };
        drop(msg); // outside the lock: its destructor may use this channel
    }
}

fn expired(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

impl<T> Chan<T> {
    fn new(cap: Option<usize>) -> Chan<T> {
        Chan {
            state: SpinLock::new(ChannelState {
                buf: VecDeque::new(),
                pending: VecDeque::new(),
                next_ticket: 0,
                recv_q: WaitQueue::new(),
                send_q: WaitQueue::new(),
                tx_gone: false,
                rx_gone: false,
            }),
            cap,
            senders: AtomicUsize::new(1),
            receivers: AtomicUsize::new(1),
        }
    }

    pub(crate) fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        lock(&self.state).try_push(self.cap, msg)
    }

    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        lock(&self.state).try_pop(self.cap)
    }

    fn send(&self, mut msg: T, deadline: Option<Instant>) -> Result<(), SendTimeoutError<T>> {
        if self.cap.is_some() {
            // Only a bounded send may park; an unbounded one is like `try_`.
            crate::wait::coop_proceed();
        }
        if self.cap == Some(0) {
            return self.send_rendezvous(msg, deadline);
        }
        loop {
            let w = {
                let mut s = lock(&self.state);
                match s.try_push(self.cap, msg) {
                    Ok(()) => return Ok(()),
                    Err(TrySendError::Disconnected(m)) => {
                        return Err(SendTimeoutError::Disconnected(m))
                    }
                    Err(TrySendError::Full(m)) => msg = m,
                }
                if expired(deadline) {
                    return Err(SendTimeoutError::Timeout(msg));
                }
                let w = Waiter::prepare();
                s.send_q.push(w.clone());
                w
            };
            self.park(&w, Side::Send, deadline, SEND);
        }
    }

    fn send_rendezvous(
        &self,
        msg: T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
        let mut w = Waiter::prepare();
        let ticket = {
            let mut s = lock(&self.state);
            if s.rx_gone {
                drop(s);
                w.cancel();
                return Err(SendTimeoutError::Disconnected(msg));
            }
            let ticket = s.take_ticket();
            s.buf.push_back(msg);
            s.pending.push_back(Pending {
                ticket,
                from: Party::current(),
                sender: Some(w.clone()),
            });
            s.recv_q.wake_one();
            ticket
        };
        let guard = Withdraw { chan: self, ticket };
        loop {
            let woke = w.wait(deadline, SEND);
            let mut s = lock(&self.state);
            let Some(i) = s.find(ticket) else {
                // Taken by a receiver: delivered.
                drop(s);
                std::mem::forget(guard);
                return Ok(());
            };
            if s.rx_gone || woke == Wake::TimedOut || expired(deadline) {
                let gone = s.rx_gone;
                let m = s
                    .withdraw(i)
                    .expect("greenio: rendezvous message missing from its buffer");
                drop(s);
                std::mem::forget(guard);
                return Err(if gone {
                    SendTimeoutError::Disconnected(m)
                } else {
                    SendTimeoutError::Timeout(m)
                });
            }
            w = Waiter::prepare();
            s.pending[i].sender = Some(w.clone());
        }
    }

    fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        crate::wait::coop_proceed();
        loop {
            let w = {
                let mut s = lock(&self.state);
                match s.try_pop(self.cap) {
                    Ok(m) => return Ok(m),
                    Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                    Err(TryRecvError::Empty) => {}
                }
                if expired(deadline) {
                    return Err(RecvTimeoutError::Timeout);
                }
                let w = Waiter::prepare();
                s.register_recv(self.cap, &w);
                w
            };
            self.park(&w, Side::Recv, deadline, RECV);
        }
    }

    /// Parks on a token queued on `side` (see [`super::park`]).
    #[inline]
    fn park(&self, w: &Waiter, side: Side, deadline: Option<Instant>, reason: WaitReason) {
        super::park(
            w,
            deadline,
            reason,
            || lock(&self.state).queue(side).remove(w),
            || {
                lock(&self.state).queue(side).wake_one();
            },
        );
    }

    // ----- for Select ------------------------------------------------------

    /// Queues `w` for a message unless one is ready; `false` if ready.
    pub(crate) fn register_recv(&self, w: &Waiter) -> bool {
        let mut s = lock(&self.state);
        if s.recv_ready(self.cap) {
            return false;
        }
        s.register_recv(self.cap, w);
        true
    }

    /// Queues `w` for room unless a send would succeed; `false` if ready.
    pub(crate) fn register_send(&self, w: &Waiter) -> bool {
        let mut s = lock(&self.state);
        if s.send_ready(self.cap, Some(w)) {
            return false;
        }
        s.send_q.push(w.clone());
        true
    }

    pub(crate) fn unregister_recv(&self, w: &Waiter) {
        lock(&self.state).recv_q.remove(w);
    }

    pub(crate) fn unregister_send(&self, w: &Waiter) {
        lock(&self.state).send_q.remove(w);
    }

    /// Passes a wakeup on to a parked receiver if a message is waiting.
    pub(crate) fn nudge_recv(&self) {
        let mut s = lock(&self.state);
        if s.recv_ready(self.cap) {
            s.recv_q.wake_one();
        }
    }

    /// Passes a wakeup on to a parked sender if there is room.
    pub(crate) fn nudge_send(&self) {
        let mut s = lock(&self.state);
        if s.send_ready(self.cap, None) {
            s.send_q.wake_one();
        }
    }

    fn len(&self) -> usize {
        lock(&self.state).buf.len()
    }
}

// ----- public API ------------------------------------------------------------

/// Creates an unbounded channel: `send` never blocks.
///
/// Both halves can be cloned (multi-producer, multi-consumer) and used from
/// green threads on any hub and from plain OS threads. The channel
/// disconnects when every `Sender` or every `Receiver` is dropped.
///
/// # Examples
///
/// ```
/// use greenio::sync::channel;
///
/// greenio::run(|| {
///     let (tx, rx) = channel();
///     greenio::spawn(move || {
///         for i in 0..3 {
///             tx.send(i).unwrap();
///         }
///     });
///     assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
/// });
/// ```
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(None));
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// Creates a channel that holds at most `cap` messages: `send` parks while
/// it is full (back-pressure).
///
/// `bounded(0)` is a *rendezvous* channel: `send` returns only once a
/// receiver has taken the message.
///
/// # Examples
///
/// ```
/// use greenio::sync::bounded;
///
/// greenio::run(|| {
///     let (tx, rx) = bounded(0);
///     let h = greenio::spawn(move || tx.send("hi").unwrap());
///     greenio::yield_now(); // the sender is parked: nobody received yet
///     assert!(!h.is_finished());
///     assert_eq!(rx.recv(), Ok("hi"));
///     h.join().unwrap();
/// });
/// ```
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(Some(cap)));
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// The sending half of a channel; clone it for more producers.
///
/// # Examples
///
/// ```
/// let (tx, rx) = greenio::sync::channel();
/// let tx2 = tx.clone();
/// tx.send(1).unwrap();
/// tx2.send(2).unwrap();
/// assert_eq!(rx.try_iter().sum::<i32>(), 3);
/// ```
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving half of a channel; clone it for more consumers (each
/// message goes to exactly one of them).
///
/// # Examples
///
/// ```
/// let (tx, rx) = greenio::sync::channel();
/// let rx2 = rx.clone();
/// tx.send(1).unwrap();
/// tx.send(2).unwrap();
/// assert_eq!(rx.recv().unwrap() + rx2.recv().unwrap(), 3);
/// ```
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends a message, parking (or blocking a plain OS thread) while a
    /// bounded channel is full, and for `bounded(0)` until a receiver has
    /// taken it.
    ///
    /// # Errors
    ///
    /// [`SendError`] with the message if every receiver is gone (also if
    /// they go while this call is parked).
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = greenio::sync::bounded(1);
    /// tx.send(5).unwrap();
    /// assert_eq!(rx.recv(), Ok(5));
    /// drop(rx);
    /// assert!(tx.send(6).is_err());
    /// ```
    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        self.chan
            .send(msg, None)
            .map_err(|e| SendError(e.into_inner()))
    }

    /// Sends a message if that is possible without waiting.
    ///
    /// For `bounded(0)` this succeeds only if a receiver is parked in
    /// `recv` (or a [`Select`](super::Select)) with no other message
    /// waiting for it.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] if the channel is full,
    /// [`TrySendError::Disconnected`] if every receiver is gone; both give
    /// the message back.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, _rx) = greenio::sync::bounded(1);
    /// assert!(tx.try_send(1).is_ok());
    /// assert!(tx.try_send(2).unwrap_err().is_full());
    /// ```
    pub fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        self.chan.try_send(msg)
    }

    /// Like [`send`](Sender::send), but gives up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`] if there was no room (for `bounded(0)`:
    /// no receiver took it) in time, [`SendTimeoutError::Disconnected`] if
    /// every receiver is gone; both give the message back.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let (tx, _rx) = greenio::sync::bounded(1);
    /// tx.send(1).unwrap();
    /// let r = tx.send_timeout(2, Duration::from_millis(5));
    /// assert!(r.unwrap_err().is_timeout());
    /// ```
    pub fn send_timeout(&self, msg: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.chan.send(msg, deadline_after(timeout))
    }

    /// Like [`send`](Sender::send), but gives up at `deadline`.
    ///
    /// # Errors
    ///
    /// As [`send_timeout`](Sender::send_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let (tx, rx) = greenio::sync::channel();
    /// tx.send_deadline(1, Instant::now() + Duration::from_secs(1)).unwrap();
    /// assert_eq!(rx.recv(), Ok(1));
    /// ```
    pub fn send_deadline(&self, msg: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.chan.send(msg, Some(deadline))
    }

    /// The number of messages waiting in the channel.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, _rx) = greenio::sync::channel();
    /// tx.send(()).unwrap();
    /// assert_eq!(tx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether no message is waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, _rx) = greenio::sync::channel::<()>();
    /// assert!(tx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a bounded channel is at capacity (always `true` for
    /// `bounded(0)`, never for an unbounded channel).
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, _rx) = greenio::sync::bounded(1);
    /// tx.send(()).unwrap();
    /// assert!(tx.is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        self.chan.cap.is_some_and(|c| self.len() >= c)
    }

    /// The capacity: `None` for an unbounded channel.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(greenio::sync::bounded::<()>(4).0.capacity(), Some(4));
    /// assert_eq!(greenio::sync::channel::<()>().0.capacity(), None);
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        self.chan.cap
    }

    pub(crate) fn chan(&self) -> &Chan<T> {
        &self.chan
    }
}

impl<T> Receiver<T> {
    /// Receives a message, parking (or blocking a plain OS thread) until
    /// one arrives.
    ///
    /// # Errors
    ///
    /// [`RecvError`] once the channel is empty and every sender is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let (tx, rx) = greenio::sync::channel();
    ///     greenio::spawn(move || tx.send(7).unwrap());
    ///     assert_eq!(rx.recv(), Ok(7));
    ///     assert!(rx.recv().is_err()); // the sender is gone
    /// });
    /// ```
    pub fn recv(&self) -> Result<T, RecvError> {
        self.chan.recv(None).map_err(|_| RecvError)
    }

    /// Receives a message if one is waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if none is waiting,
    /// [`TryRecvError::Disconnected`] if none is waiting and every sender is
    /// gone.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = greenio::sync::channel();
    /// assert!(rx.try_recv().unwrap_err().is_empty());
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.chan.try_recv()
    }

    /// Like [`recv`](Receiver::recv), but gives up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] if no message arrived in time,
    /// [`RecvTimeoutError::Disconnected`] if the channel is empty and every
    /// sender is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// greenio::run(|| {
    ///     let (_tx, rx) = greenio::sync::channel::<u8>();
    ///     assert!(rx.recv_timeout(Duration::from_millis(5)).unwrap_err().is_timeout());
    /// });
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.chan.recv(deadline_after(timeout))
    }

    /// Like [`recv`](Receiver::recv), but gives up at `deadline`.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Receiver::recv_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let (tx, rx) = greenio::sync::channel();
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.recv_deadline(Instant::now() + Duration::from_secs(1)), Ok(1));
    /// ```
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.chan.recv(Some(deadline))
    }

    /// A blocking iterator: yields messages until the channel is empty and
    /// every sender is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = greenio::sync::channel();
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.iter().collect::<Vec<_>>(), [1, 2]);
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// A non-blocking iterator over the messages waiting now.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = greenio::sync::channel();
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.try_iter().count(), 1); // tx is alive, yet it ends
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// The number of messages waiting in the channel.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = greenio::sync::channel();
    /// tx.send(()).unwrap();
    /// assert_eq!(rx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether no message is waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_tx, rx) = greenio::sync::channel::<()>();
    /// assert!(rx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a bounded channel is at capacity.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = greenio::sync::bounded(1);
    /// tx.send(()).unwrap();
    /// assert!(rx.is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        self.chan.cap.is_some_and(|c| self.len() >= c)
    }

    /// The capacity: `None` for an unbounded channel.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(greenio::sync::bounded::<()>(0).1.capacity(), Some(0));
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        self.chan.cap
    }

    pub(crate) fn chan(&self) -> &Chan<T> {
        &self.chan
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.senders.fetch_add(1, Ordering::Relaxed);
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.receivers.fetch_add(1, Ordering::Relaxed);
        Receiver {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.chan.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut s = lock(&self.chan.state);
            s.tx_gone = true;
            s.recv_q.wake_all();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if self.chan.receivers.fetch_sub(1, Ordering::AcqRel) == 1 {
            let dropped = {
                let mut s = lock(&self.chan.state);
                s.rx_gone = true;
                s.send_q.wake_all();
                for p in &s.pending {
                    if let Some(w) = &p.sender {
                        w.wake();
                    }
                }
                if self.chan.cap == Some(0) {
                    // Blocked senders take their own messages back.
                    VecDeque::new()
                } else {
                    std::mem::take(&mut s.buf)
                }
            };
            drop(dropped); // outside the lock: destructors may use channels
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("capacity", &self.chan.cap)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("capacity", &self.chan.cap)
            .finish_non_exhaustive()
    }
}

/// A blocking iterator over a [`Receiver`], from [`Receiver::iter`].
///
/// # Examples
///
/// ```
/// let (tx, rx) = greenio::sync::channel();
/// tx.send(3).unwrap();
/// drop(tx);
/// for m in rx.iter() {
///     assert_eq!(m, 3);
/// }
/// ```
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

/// A non-blocking iterator over a [`Receiver`], from
/// [`Receiver::try_iter`].
///
/// # Examples
///
/// ```
/// let (tx, rx) = greenio::sync::channel();
/// tx.send(3).unwrap();
/// assert_eq!(rx.try_iter().next(), Some(3));
/// assert_eq!(rx.try_iter().next(), None);
/// ```
#[derive(Debug)]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

/// An owning blocking iterator over a [`Receiver`].
///
/// # Examples
///
/// ```
/// let (tx, rx) = greenio::sync::channel();
/// tx.send(3).unwrap();
/// drop(tx);
/// assert_eq!(rx.into_iter().collect::<Vec<_>>(), [3]);
/// ```
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}
