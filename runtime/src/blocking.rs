//! The blocking pool: OS threads for calls that would block a hub (file
//! I/O, DNS, CPU-heavy work, foreign libraries).
//!
//! Threads are started on demand up to the runtime's limit, named
//! `greenio-blocking-N`, reused for later jobs, and exit after
//! [`KEEP_ALIVE`] idle. Jobs beyond the limit queue in FIFO order. The
//! caller of [`unblock`] parks only its green thread; the job's value or
//! panic comes back to it.

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::wait::{WaitReason, Waiter, Wake};

/// How long an idle blocking thread waits for work before it exits.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

struct State {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
    /// Jobs queued or running.
    busy: usize,
    next_name: usize,
}

/// The pool of one runtime.
pub(crate) struct BlockingPool {
    max: usize,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl BlockingPool {
    pub(crate) fn new(max: usize) -> BlockingPool {
        BlockingPool {
            max,
            state: Arc::new((
                Mutex::new(State {
                    queue: VecDeque::new(),
                    threads: 0,
                    idle: 0,
                    busy: 0,
                    next_name: 0,
                }),
                Condvar::new(),
            )),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Jobs queued or running.
    pub(crate) fn busy(&self) -> usize {
        self.lock().busy
    }

    /// Threads alive.
    pub(crate) fn threads(&self) -> usize {
        self.lock().threads
    }

    fn submit(&self, job: Job) {
        let mut st = self.lock();
        st.queue.push_back(job);
        st.busy += 1;
        if st.idle > 0 {
            self.state.1.notify_one();
            return;
        }
        if st.threads < self.max {
            st.threads += 1;
            st.next_name += 1;
            let name = format!("greenio-blocking-{}", st.next_name);
            let state = self.state.clone();
            drop(st);
            let spawned = std::thread::Builder::new()
                .name(name)
                .spawn(move || worker(&state));
            if let Err(e) = spawned {
                log::error!("greenio: cannot start a blocking thread: {e}");
                let mut st = self.lock();
                st.threads -= 1;
                if st.threads == 0 {
                    // No thread will ever take the job: run it here.
                    if let Some(job) = st.queue.pop_back() {
                        st.busy -= 1;
                        drop(st);
                        job();
                    }
                }
            }
        }
    }
}

fn worker(state: &(Mutex<State>, Condvar)) {
    let lock = || state.0.lock().unwrap_or_else(|e| e.into_inner());
    let mut st = lock();
    loop {
        if let Some(job) = st.queue.pop_front() {
            drop(st);
            job();
            st = lock();
            st.busy -= 1;
            continue;
        }
        st.idle += 1;
        let (g, to) = state
            .1
            .wait_timeout(st, KEEP_ALIVE)
            .unwrap_or_else(|e| e.into_inner());
        st = g;
        st.idle -= 1;
        if to.timed_out() && st.queue.is_empty() {
            st.threads -= 1;
            return;
        }
    }
}

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
    let Some(rt) = crate::hub::current_runtime().filter(|_| crate::hub::in_green_thread()) else {
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
        if w.wait(None, WaitReason::external("unblock")) == Wake::Notified {
            continue;
        }
    }
}
