//! Parking: how the running green thread leaves the CPU, as methods of
//! the hub it runs on.
//!
//! * `block` / `block_on_word`: wait on the green thread's park word (the
//!   protocol of `wait.rs`), with an optional deadline timer;
//! * `park_local`: a hub-local wait (sockets), woken without atomics by
//!   `make_ready` from the I/O table;
//! * `yield_now`, and `coop_proceed`, which spends the fair budget
//!   (`coop.rs`) and yields to the loop when it is spent;
//! * interrupts (cancel, an expired timeout scope) are delivered here:
//!   checked before and after every suspension, they unwind the green
//!   thread with a private payload (`unwind.rs`).
//!
//! The loop itself (`hub.rs`) never calls into this file: these are the
//! green thread's half of a switch; `suspend_slot` in `hub.rs` is the
//! switch itself.

use std::any::Any;
use std::panic;
use std::time::Instant;

use crate::hub::{Action, Hub, NO_SLOT};
use crate::park::{WaitReason, WAITING};
use crate::runq::RunQueue;
use crate::slab::{Slot, ThreadState};
use crate::unwind::{CancelUnwind, TimeoutUnwind};

impl Hub {
    /// Interrupt due for the running green thread: cancel, else an expired
    /// timeout scope. `None` while unwinding (cleanup code may wait).
    #[inline]
    pub(crate) fn pending_interrupt(&self) -> Option<Box<dyn Any + Send>> {
        let s = self.cur();
        if !s.interrupted.get() {
            return None;
        }
        self.interrupt_payload(s)
    }

    #[cold]
    pub(crate) fn interrupt_payload(&self, s: &Slot) -> Option<Box<dyn Any + Send>> {
        if std::thread::panicking() {
            return None;
        }
        if s.header().is_cancelled() {
            return Some(Box::new(CancelUnwind));
        }
        s.timeout_pending
            .get()
            .map(|id| Box::new(TimeoutUnwind(id)) as Box<dyn Any + Send>)
    }

    /// Parks the running green thread on wait `seq` of its own park word
    /// (armed by the caller) until it is fired, its deadline passes, or it
    /// is interrupted (which unwinds, after disarming). Returns how the
    /// word was fired (`NOTIFIED` or `TIMED_OUT`). The caller checks that
    /// the wait is the running green thread's (`Waiter::wait`, `join`).
    pub(crate) fn block_on_word(
        &self,
        seq: u64,
        deadline: Option<Instant>,
        reason: WaitReason,
    ) -> u64 {
        let s = self.cur();
        let h = s.header();
        let mut timer = None;
        let state = loop {
            if let Some(p) = s
                .interrupted
                .get()
                .then(|| self.interrupt_payload(s))
                .flatten()
            {
                let st = h.word.disarm(seq);
                if st == WAITING {
                    if let Some(k) = timer {
                        self.timers.borrow_mut().cancel(k);
                    }
                    panic::resume_unwind(p);
                }
                break st;
            }
            if !h.word.is_waiting(seq) {
                break h.word.take_fired(seq);
            }
            if timer.is_none() {
                if let Some(d) = deadline {
                    let fire = Action::Fire {
                        slot: self.current.get(),
                        seq,
                    };
                    timer = Some(self.timers.borrow_mut().insert(d, fire));
                }
            }
            self.suspend_slot(s, seq, reason, ThreadState::Parked);
        };
        if let Some(k) = timer {
            self.timers.borrow_mut().cancel(k);
        }
        state
    }

    /// Yields the running green thread; `false` (doing nothing) when
    /// called outside one.
    #[inline]
    pub(crate) fn try_yield(&self) -> bool {
        if !self.in_green() {
            return false;
        }
        self.yield_now();
        true
    }

    /// Arms the running green thread's park word for a fresh wait and
    /// returns its number (for waits whose token is stored elsewhere).
    #[inline]
    pub(crate) fn arm_current(&self) -> u64 {
        let seq = self.next_seq();
        self.cur().header().word.arm(seq);
        seq
    }

    /// Lets every other ready green thread run once, then continues.
    pub(crate) fn yield_now(&self) {
        self.requeue(&self.ready, WaitReason::local("yield"));
    }

    /// Suspends the running green thread queued on `queue` (the ready
    /// queue, or `deferred`, which runs only after the next poll);
    /// interrupts unwind before and after.
    #[inline(always)]
    fn requeue(&self, queue: &RunQueue, reason: WaitReason) {
        let s = self.cur();
        if s.interrupted.get() {
            self.unwind_if_interrupted(s);
        }
        let seq = self.next_seq();
        queue.push((self.current.get(), seq));
        self.suspend_slot(s, seq, reason, ThreadState::Ready);
        if s.interrupted.get() {
            self.unwind_if_interrupted(s);
        }
    }

    /// Spends one unit of the running green thread's fair budget before an
    /// operation that may park; yields first when it is spent (see
    /// `coop.rs`). Does nothing outside a green thread.
    #[inline]
    pub(crate) fn coop_proceed(&self) {
        // Outside a green thread (a callback) spending is harmless: the
        // next resume refills the budget.
        if !self.coop.spend(self.switches.get()) && self.current.get() != NO_SLOT {
            self.yield_to_loop();
        }
    }

    /// Like `yield_now`, but the green thread runs again only after the
    /// loop has polled and fired due timers (tokio's deferred yield): a
    /// plain yield would be resumed up to `BUDGET` times in the same turn.
    #[cold]
    fn yield_to_loop(&self) {
        self.requeue(&self.deferred, WaitReason::local("budget spent"));
    }

    /// A fresh wait number for a hub-local wait of the running green thread.
    #[inline]
    pub(crate) fn local_seq(&self) -> Option<(u32, u64)> {
        let slot = self.current.get();
        if slot == NO_SLOT {
            return None;
        }
        Some((slot, self.next_seq()))
    }

    /// Parks the running green thread on a hub-local wait `seq` (from
    /// `local_seq`) until `wake_local`, the deadline, or an interrupt
    /// (which unwinds). The caller re-checks its condition.
    #[inline]
    pub(crate) fn park_local(&self, seq: u64, deadline: Option<Instant>, reason: WaitReason) {
        let s = self.cur();
        if s.interrupted.get() {
            self.unwind_if_interrupted(s);
        }
        let timer = deadline.map(|d| {
            self.timers.borrow_mut().insert(
                d,
                Action::WakeLocal {
                    slot: self.current.get(),
                    seq,
                },
            )
        });
        self.suspend_slot(s, seq, reason, ThreadState::Parked);
        if let Some(k) = timer {
            self.timers.borrow_mut().cancel(k);
        }
        if s.interrupted.get() {
            self.unwind_if_interrupted(s);
        }
    }

    /// Whether a green thread is running (the caller is one).
    #[inline]
    pub(crate) fn in_green(&self) -> bool {
        self.current.get() != NO_SLOT
    }

    /// Puts the running green thread to sleep until `deadline` on a
    /// hub-local wait (no atomics, no reference counts): only its timer or
    /// an interrupt (which unwinds) ends a wait.
    pub(crate) fn sleep_until(&self, deadline: Instant) {
        while let Some((_, seq)) = self.local_seq() {
            self.park_local(seq, Some(deadline), WaitReason::local("sleep"));
            if Instant::now() >= deadline {
                return;
            }
        }
    }

    /// Unwinds the running green thread (slot `s`) if an interrupt is due.
    #[cold]
    #[inline(never)]
    fn unwind_if_interrupted(&self, s: &Slot) {
        if let Some(p) = self.interrupt_payload(s) {
            panic::resume_unwind(p);
        }
    }
}
