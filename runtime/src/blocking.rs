//! The blocking pool: OS threads for calls that would block a hub (file
//! I/O, DNS, CPU-heavy work, foreign libraries).
//!
//! Threads are started on demand up to the runtime's limit, named
//! `greenio-blocking-N`, reused for later jobs, and exit after
//! `KEEP_ALIVE` (10 s) idle. Jobs beyond the limit queue in FIFO order. The
//! caller of [`unblock`](crate::unblock) parks only its green thread; the job's value or
//! panic comes back to it.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long an idle blocking thread waits for work before it exits.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(10);

pub(crate) type Job = Box<dyn FnOnce() + Send>;

struct PoolState {
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
    state: Arc<(Mutex<PoolState>, Condvar)>,
}

impl BlockingPool {
    pub(crate) fn new(max: usize) -> BlockingPool {
        BlockingPool {
            max,
            state: Arc::new((
                Mutex::new(PoolState {
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

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
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

    pub(crate) fn submit(&self, job: Job) {
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

fn worker(state: &(Mutex<PoolState>, Condvar)) {
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
