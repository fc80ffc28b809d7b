//! `unblock`: run a blocking call on the runtime's pool (see
//! [`blocking`](crate::blocking) for the pool itself) while only the
//! calling green thread waits.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use crate::hub;
use crate::wait::{WaitReason, Waiter};

/// Runs `f` on the runtime's blocking pool and parks the calling green
/// thread until it returns; other green threads keep running meanwhile.
///
/// Use it for anything that blocks the OS thread: file I/O, DNS,
/// `std::process::Command::output`, heavy computation. Outside a green
/// thread `f` simply runs on the calling thread.
///
/// If the calling green thread is cancelled while waiting, it unwinds at
/// once; the job still runs to completion on its thread and its value is
/// dropped.
///
/// # Panics
///
/// Re-raises a panic of `f` in the caller (with its payload).
///
/// # Examples
///
/// ```
/// greenio::run(|| {
///     let len = greenio::unblock(|| std::fs::read_to_string("Cargo.toml").map(|s| s.len()));
///     assert!(len.unwrap() > 0);
/// });
/// ```
pub fn unblock<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let Some(rt) = hub::current_runtime().filter(|_| hub::in_green_thread()) else {
        return f();
    };
    type Slot<T> = Mutex<Option<std::thread::Result<T>>>;
    let slot: Arc<Slot<T>> = Arc::new(Mutex::new(None));
    let w = Waiter::prepare();
    let (s2, w2) = (slot.clone(), w.clone());
    rt.blocking.submit(Box::new(move || {
        let r = panic::catch_unwind(AssertUnwindSafe(f));
        *s2.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        w2.wake();
    }));
    loop {
        if let Some(r) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
            w.cancel();
            match r {
                Ok(v) => return v,
                Err(p) => panic::resume_unwind(p),
            }
        }
        w.wait(None, WaitReason::external("unblock"));
    }
}
