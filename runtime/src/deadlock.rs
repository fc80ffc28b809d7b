//! Deadlock detection: when the main green thread is parked and nothing
//! can ever wake any green thread of the hub, `run` reports it instead of
//! sleeping forever (see [`run`](crate::run)). The loop asks
//! `deadlocked()` before a poll without timeout; `runtime.rs` writes the
//! report and drains the hub with `drain_nocheck`.

use std::sync::atomic::Ordering;

use crate::hub::Hub;

impl Hub {
    /// Nothing can ever wake a green thread of this hub again.
    pub(crate) fn deadlocked(&self) -> bool {
        if self.shared.alive() == 0
            || !self.ready.is_empty()
            || self.timers.borrow().len() > 0
            || self.external_waits.get() > 0
            || self.io.borrow().has_callbacks()
            || self.shared.unparkers.load(Ordering::SeqCst) > 0
            || self.rt.hubs().len() > 1
            || self.rt.blocking.busy() > 0
        {
            return false;
        }
        // A green thread waiting on a sync primitive may be woken by a plain
        // OS thread holding the other end: only when no such thread can
        // exist is that wait hopeless.
        self.sync_waits.get() == 0 || self.only_runtime_threads()
    }

    fn only_runtime_threads(&self) -> bool {
        match std::fs::read_dir("/proc/self/task") {
            Ok(d) => {
                let ours = 1 + self.rt.blocking.threads();
                d.count() <= ours + self.rt.monitor_threads.load(Ordering::SeqCst)
            }
            Err(_) => false,
        }
    }
}
