//! The blocking watchdog and dump on demand: one monitor OS thread per
//! runtime.
//!
//! # What it catches
//!
//! Green threads are cooperative: one that calls a blocking function
//! (`std::thread::sleep`, a blocking database driver, a file read of a slow
//! disk) or computes for long without parking freezes every other green
//! thread of its hub. The monitor notices while it happens and says who:
//!
//! ```text
//! greenio: hub 0 is blocked: green thread 'report' (id 12), spawned at src/main.rs:40:5,
//!   has run 0.10 s without parking; move blocking calls into greenio::unblock(|| ...)
//!   and give long computations greenio::yield_now() calls
//! greenio: hub 0 is running again: green thread 'report' (id 12), spawned at
//!   src/main.rs:40:5, ran about 1.00 s without parking
//! ```
//!
//! (target `greenio`, level `warn`; one warning per stall, and one line when
//! it ends). [`Stats::stalls`](crate::Stats::stalls) counts them.
//!
//! # How
//!
//! Each hub publishes a [`Watch`]: a counter it bumps on every loop turn and
//! every resume (a plain store on a cache line of its own), whether it is
//! idle (asleep in `epoll_wait`, or outside its loop), and the header of the
//! green thread it runs. Every `max_blocking_time / 2` the monitor reads
//! them. A hub whose state (counter, running green thread, idle flag) has
//! not changed since the monitor *first saw* it, at least
//! `max_blocking_time` ago, and that is not idle, is stalled.
//!
//! Measuring from the first observation of a state, never from the
//! monitor's previous wake-up, is what keeps a busy machine quiet: if the
//! monitor itself is not scheduled for a second, it wakes to find the
//! counter moved and starts over, instead of blaming a hub for the time the
//! monitor slept. The reported duration is thus a lower bound. Time the
//! hub's OS thread spent waiting for a CPU (its run-queue delay, from
//! `/proc/self/task/TID/schedstat`) is subtracted before the comparison:
//! on a machine busy with other work, a hub that is runnable but not
//! running is not blamed on the green thread.
//!
//! # Rejected designs
//!
//! * *A timestamp per switch* (gevent stores a greenlet switch counter, but
//!   a timestamp is the obvious next step): a clock read on every switch
//!   costs more than the rest of the switch's bookkeeping.
//! * *A signal to the hub thread to ask who runs*: it would interrupt the
//!   very blocking system call we want to report (`EINTR` leaking into user
//!   code) and could only use async-signal-safe code to answer.
//! * *Asking the hub*: a stalled hub answers nothing; the monitor reads the
//!   header itself, under the hazard protocol described at [`Watch`].
//!
//! # Dump on a signal
//!
//! With [`RuntimeBuilder::dump_on_signal`](crate::RuntimeBuilder::dump_on_signal)
//! the monitor also listens for that signal, through the self-pipe registry
//! of [`crate::signal`] (the handler only writes a byte). On each delivery
//! it prints a header line and spawns a short-lived green thread on every
//! hub that writes the hub's [`dump`](crate::dump) to stderr; a stalled hub
//! cannot run it, so the monitor names such a hub's culprit itself.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::shared::{Culprit, HubShared, Observed};
use crate::signal::Listener;
use crate::task::Packet;

/// The watchdog's default threshold.
pub(crate) const DEFAULT_MAX_BLOCKING_TIME: Duration = Duration::from_millis(100);

/// What the monitor knows of one hub.
struct HubState {
    seen: Observed,
    /// When the monitor first saw `seen`.
    since: Instant,
    /// The hub thread's run-queue wait then (see [`run_delay`]).
    delay_since: Duration,
    /// The stall being reported, if any (a warning went out for it).
    warned: Option<Option<Culprit>>,
}

/// The running monitor thread; stops and joins it on drop.
pub(crate) struct Monitor {
    stop: Arc<AtomicBool>,
    wake: mio::unix::pipe::Sender,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Monitor {
    /// Starts the monitor of `hubs` if there is anything to watch: a
    /// threshold above zero, or a dump signal listener.
    pub(crate) fn start(
        hubs: Vec<Arc<HubShared>>,
        max_blocking: Duration,
        dump: Option<(i32, Listener)>,
    ) -> io::Result<Option<Monitor>> {
        if max_blocking.is_zero() && dump.is_none() {
            return Ok(None);
        }
        let (wake, woken) = mio::unix::pipe::new()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("greenio-monitor".into())
            .spawn(move || run(&hubs, max_blocking, dump, &woken, &stop2))?;
        Ok(Some(Monitor {
            stop,
            wake,
            thread: Some(thread),
        }))
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = (&self.wake).write(&[1]);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!(target: "greenio", "greenio: the monitor thread panicked");
            }
        }
    }
}

/// The monitor's loop: wait a tick (or for a signal), look at every hub.
fn run(
    hubs: &[Arc<HubShared>],
    max_blocking: Duration,
    dump: Option<(i32, Listener)>,
    woken: &mio::unix::pipe::Receiver,
    stop: &AtomicBool,
) {
    let now = Instant::now();
    let mut states: Vec<HubState> = hubs
        .iter()
        .map(|h| HubState {
            seen: h.watch.observe(),
            since: now,
            delay_since: Duration::ZERO,
            warned: None,
        })
        .collect();
    let tick = (max_blocking / 2).max(Duration::from_millis(1));
    let mut queue = VecDeque::new();
    while !stop.load(Ordering::SeqCst) {
        let timeout = (!max_blocking.is_zero()).then_some(tick);
        let signalled = wait(woken, dump.as_ref().map(|(_, l)| l), timeout);
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if !max_blocking.is_zero() {
            for (h, st) in hubs.iter().zip(&mut states) {
                check(h, st, max_blocking);
            }
        }
        if let (true, Some((sig, listener))) = (signalled, &dump) {
            queue.clear();
            if listener.drain_into(&mut queue).is_ok() && queue.contains(sig) {
                dump_all(hubs, &states, *sig);
            }
        }
    }
}

/// Sleeps until `timeout` passes (forever if `None`), the stop pipe is
/// written, or the signal pipe is; returns whether the signal pipe is
/// readable.
fn wait(
    woken: &mio::unix::pipe::Receiver,
    listener: Option<&Listener>,
    timeout: Option<Duration>,
) -> bool {
    let mut fds = [
        libc::pollfd {
            fd: woken.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: listener.map_or(-1, Listener::fd),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ms = timeout.map_or(-1, |t| t.as_millis().clamp(1, i32::MAX as u128) as i32);
    // SAFETY: `fds` is a valid array of two pollfds for the call's duration
    // (a negative fd is ignored by poll).
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    if n <= 0 {
        return false;
    }
    if fds[0].revents != 0 {
        let mut buf = [0u8; 16];
        let _ = (&*woken).read(&mut buf);
    }
    fds[1].revents != 0
}

/// Compares hub `h` with what the monitor saw last; warns once when a
/// stall passes `max`, and once more when it ends.
fn check(h: &HubShared, st: &mut HubState, max: Duration) {
    let now_seen = h.watch.observe();
    let now = Instant::now();
    if now_seen != st.seen {
        if let Some(culprit) = st.warned.take() {
            log::warn!(
                target: "greenio",
                "greenio: hub {} is running again: {}, ran about {:.2} s without parking",
                h.index,
                describe(culprit.as_ref()),
                now.duration_since(st.since).as_secs_f64()
            );
        }
        st.seen = now_seen;
        st.since = now;
        if !now_seen.idle {
            st.delay_since = run_delay(h);
        }
        return;
    }
    let stalled = now.duration_since(st.since);
    if now_seen.idle || st.warned.is_some() || stalled < max {
        return;
    }
    // Time the hub thread spent runnable but not running (the machine is
    // busy) is not the green thread's fault.
    let waited = run_delay(h).saturating_sub(st.delay_since);
    if stalled.saturating_sub(waited) < max {
        return;
    }
    let culprit = h.watch.culprit(now_seen.running);
    h.watch.stalls.fetch_add(1, Ordering::Relaxed);
    log::warn!(
        target: "greenio",
        "greenio: hub {} is blocked: {}, has run {:.2} s without parking; \
         move blocking calls into greenio::unblock(|| ...) and give long \
         computations greenio::yield_now() calls",
        h.index,
        describe(culprit.as_ref()),
        stalled.as_secs_f64()
    );
    st.warned = Some(culprit);
}

/// How long hub `h`'s thread has waited on a run queue, in total: the
/// second field of `/proc/self/task/TID/schedstat` (zero where that file
/// is missing, so the watchdog then measures wall time only).
fn run_delay(h: &HubShared) -> Duration {
    let tid = h.watch.tid.load(Ordering::Relaxed);
    if tid == 0 {
        return Duration::ZERO;
    }
    let path = format!("/proc/self/task/{tid}/schedstat");
    let ns = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// `green thread 'name' (id N), spawned at file:line:col`.
fn describe(c: Option<&Culprit>) -> String {
    match c {
        Some(c) => {
            let name = match &c.name {
                Some(n) => format!("'{n}' (id {})", c.id),
                None => format!("id {}", c.id),
            };
            format!("green thread {name}, spawned at {}", c.site)
        }
        None => "the hub loop itself (a reactor callback or a timer)".into(),
    }
}

/// Writes every hub's dump to stderr: a green thread on each hub that is
/// running prints its own; a stalled hub is described by the monitor.
fn dump_all(hubs: &[Arc<HubShared>], states: &[HubState], sig: i32) {
    let _ = writeln!(
        io::stderr(),
        "greenio: signal {sig}: dump of {} hub(s) follows",
        hubs.len()
    );
    for (h, st) in hubs.iter().zip(states) {
        if let Some(c) = &st.warned {
            let _ = writeln!(
                io::stderr(),
                "hub {}: blocked for {:.2} s by {} (its dump follows when it runs again)",
                h.index,
                st.since.elapsed().as_secs_f64(),
                describe(c.as_ref())
            );
        }
        let packet: Arc<Packet<()>> = Arc::new(Packet::new(
            Some("greenio dump".into()),
            Location::caller(),
            h.clone(),
        ));
        let p = packet.clone();
        let body = Box::new(move || crate::green::root(&p, print_dump));
        h.spawn_remote(packet, None, body);
    }
}

/// The body of the dump green thread: this hub's dump, without itself.
fn print_dump() {
    let me = crate::current().id();
    let mut d = crate::dump();
    d.threads.retain(|t| t.id != me);
    let _ = write!(io::stderr(), "{d}");
}
