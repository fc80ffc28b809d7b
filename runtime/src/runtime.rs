//! Runtimes: a set of hubs (one per OS thread) and their blocking pool.
//!
//! Hub 0 runs on the thread that calls [`Runtime::run`] and runs the main
//! green thread; hubs 1..n run on threads named `greenio-hub-N`. Green
//! threads never move between hubs (see the hub module's essay); load
//! spreads when green threads are spawned: [`spawn_on`](crate::spawn_on)
//! picks a hub, [`spawn_balanced`](crate::spawn_balanced) picks the hub with
//! the fewest live green threads.

use std::io;
use std::panic::{self, AssertUnwindSafe, Location};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use corosensei::Yielder;

use crate::blocking::BlockingPool;
use crate::hub::{self, Deadlock, Hub, Start};
use crate::shared::{HubShared, Msg, RuntimeShared};
use crate::signal::Listener;
use crate::slab::Co;
use crate::stack::{StackInfo, DEFAULT_STACK_SIZE};
use crate::task::Packet;
use crate::watchdog::{Monitor, DEFAULT_MAX_BLOCKING_TIME};

/// Configures a [`Runtime`].
///
/// # Examples
///
/// ```
/// let rt = greenio::Runtime::builder()
///     .hubs(2)
///     .stack_size(64 * 1024)
///     .build()
///     .unwrap();
/// let n = rt.run(|| greenio::spawn_on(1, || 20).join().unwrap() + 1);
/// assert_eq!(n, 21);
/// ```
#[derive(Debug, Clone)]
pub struct RuntimeBuilder {
    hubs: usize,
    stack_size: usize,
    blocking_threads: usize,
    max_blocking_time: Duration,
    dump_signal: Option<i32>,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        RuntimeBuilder {
            hubs: 1,
            stack_size: DEFAULT_STACK_SIZE,
            blocking_threads: 16,
            max_blocking_time: DEFAULT_MAX_BLOCKING_TIME,
            dump_signal: None,
        }
    }
}

impl RuntimeBuilder {
    /// The number of hubs (OS threads running green threads). Default 1.
    pub fn hubs(mut self, n: usize) -> Self {
        self.hubs = n;
        self
    }

    /// The default usable stack size of green threads, in bytes (rounded up
    /// to pages, at least 16 KiB). Default
    /// [`DEFAULT_STACK_SIZE`](crate::DEFAULT_STACK_SIZE), 128 KiB.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes;
        self
    }

    /// The most OS threads [`unblock`](crate::unblock) may use at once.
    /// Default 16.
    pub fn blocking_threads(mut self, n: usize) -> Self {
        self.blocking_threads = n;
        self
    }

    /// The blocking watchdog's threshold: when a hub has not come back to
    /// its loop for longer than `d` (a green thread blocked in a system
    /// call, or computing without parking), a monitor thread logs a
    /// warning (`log::warn!`, target `greenio`) *while it lasts*, naming the
    /// hub, the green thread, its spawn site and the fix
    /// ([`unblock`](crate::unblock)); one more line when the stall ends.
    /// [`Stats::stalls`](crate::Stats::stalls) counts them.
    ///
    /// Default 100 ms; `Duration::ZERO` turns the watchdog off. The cost on
    /// the hub is a plain store per switch; the monitor wakes every `d / 2`.
    /// See `runtime/src/watchdog.rs` for how it stays quiet on a busy
    /// machine.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = greenio::Runtime::builder()
    ///     .max_blocking_time(Duration::from_millis(20))
    ///     .build()
    ///     .unwrap();
    /// let stalls = rt.run(|| {
    ///     // A blocking call on the hub: the watchdog warns while it lasts.
    ///     std::thread::sleep(Duration::from_millis(200));
    ///     greenio::yield_now();
    ///     greenio::stats().stalls
    /// });
    /// assert_eq!(stalls, 1);
    /// ```
    pub fn max_blocking_time(mut self, d: Duration) -> Self {
        self.max_blocking_time = d;
        self
    }

    /// On signal `sig` (for example [`SIGQUIT`](crate::signal::SIGQUIT), as
    /// Go does, or [`SIGUSR1`](crate::signal::SIGUSR1)), write
    /// [`dump`](crate::dump) of every hub to stderr and carry on. Off by
    /// default. The signal handler only writes a byte to a pipe; the
    /// watchdog's monitor thread does the rest. While the runtime runs, the
    /// signal's default action (quitting, for `SIGQUIT`) does not happen.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::signal::SIGUSR1;
    /// let rt = greenio::Runtime::builder().dump_on_signal(SIGUSR1).build().unwrap();
    /// rt.run(|| {
    ///     // SAFETY: raise is always safe to call.
    ///     unsafe { libc::raise(SIGUSR1) };
    ///     greenio::sleep(std::time::Duration::from_millis(20));
    /// }); // stderr: "greenio: signal 10: dump of 1 hub(s) follows", then the dump
    /// ```
    pub fn dump_on_signal(mut self, sig: i32) -> Self {
        self.dump_signal = Some(sig);
        self
    }

    /// Creates the hubs' pollers and wakers.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for zero hubs or zero blocking threads, or a
    /// [`dump_on_signal`](Self::dump_on_signal) signal that cannot be
    /// handled (as [`Signals::new`](crate::signal::Signals::new)); the OS
    /// error if an `epoll` instance or `eventfd` cannot be created.
    pub fn build(self) -> io::Result<Runtime> {
        if self.hubs == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "greenio: a runtime needs at least one hub",
            ));
        }
        if self.blocking_threads == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "greenio: the blocking pool needs at least one thread",
            ));
        }
        let mut shared = Vec::with_capacity(self.hubs);
        let mut polls = Vec::with_capacity(self.hubs);
        for i in 0..self.hubs {
            let (s, p) = Hub::create(i)?;
            shared.push(s);
            polls.push(p);
        }
        let dump = match self.dump_signal {
            Some(sig) => Some((sig, Listener::new(&[sig])?)),
            None => None,
        };
        let rt = Arc::new(RuntimeShared {
            hubs: OnceLock::new(),
            blocking: BlockingPool::new(self.blocking_threads),
            max_blocking_time: self.max_blocking_time,
            monitor_threads: AtomicUsize::new(0),
        });
        let _ = rt.hubs.set(shared);
        Ok(Runtime {
            rt,
            polls,
            stack_size: self.stack_size,
            dump,
        })
    }
}

/// A set of hubs ready to run; see [`RuntimeBuilder`].
pub struct Runtime {
    rt: Arc<RuntimeShared>,
    polls: Vec<mio::Poll>,
    stack_size: usize,
    /// The `dump_on_signal` signal and its listener, handed to the monitor.
    dump: Option<(i32, Listener)>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("hubs", &self.polls.len())
            .field("stack_size", &self.stack_size)
            .field("max_blocking_time", &self.rt.max_blocking_time)
            .field("dump_signal", &self.dump.as_ref().map(|(s, _)| *s))
            .finish()
    }
}

impl Runtime {
    /// A builder with the defaults: one hub, 128 KiB stacks.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// Runs `main` as a green thread on hub 0 (this thread), with the other
    /// hubs on their own OS threads, and returns its value. Unless both the
    /// watchdog and [`dump_on_signal`](RuntimeBuilder::dump_on_signal) are
    /// off, a monitor thread (`greenio-monitor`) runs alongside.
    ///
    /// When `main` returns, every other green thread on every hub is
    /// cancelled (unwound from its park point, destructors run) before
    /// `run` returns. A panic in `main` is re-raised here after that
    /// cleanup.
    ///
    /// # Panics
    ///
    /// Re-raises `main`'s panic. Panics with a report naming every parked
    /// green thread if the hub deadlocks (see [`run`](crate::run)). Panics
    /// if called inside a green thread (runtimes do not nest).
    #[track_caller]
    pub fn run<F, T>(self, main: F) -> T
    where
        F: FnOnce() -> T,
    {
        let Runtime {
            rt,
            polls,
            stack_size,
            dump,
        } = self;
        let hubs = rt.hubs().to_vec();
        // Dropped last (after the other hubs stopped): the monitor watches
        // the whole run, shutdown included.
        let monitor = match Monitor::start(hubs.clone(), rt.max_blocking_time, dump) {
            Ok(m) => m,
            Err(e) => panic!("greenio: cannot start the monitor thread: {e}"),
        };
        rt.monitor_threads
            .store(usize::from(monitor.is_some()), Ordering::SeqCst);
        let mut polls = polls.into_iter();
        let first = polls.next().expect("runtime has at least one hub");
        let mut threads = Vec::new();
        for (i, poll) in polls.enumerate() {
            let shared = hubs[i + 1].clone();
            let rt2 = rt.clone();
            let t = std::thread::Builder::new()
                .name(format!("greenio-hub-{}", i + 1))
                .spawn(move || serve(&Hub::new(shared, poll, rt2, stack_size)));
            match t {
                Ok(t) => threads.push(t),
                Err(e) => {
                    for h in &hubs[1..=threads.len()] {
                        h.send(Msg::Shutdown);
                    }
                    for t in threads {
                        let _ = t.join();
                    }
                    panic!("greenio: cannot start hub thread {}: {e}", i + 1);
                }
            }
        }
        struct StopOthers {
            hubs: Vec<Arc<HubShared>>,
            threads: Vec<std::thread::JoinHandle<()>>,
        }
        impl Drop for StopOthers {
            fn drop(&mut self) {
                for h in self.hubs.iter().skip(1) {
                    h.send(Msg::Shutdown);
                }
                for t in self.threads.drain(..) {
                    if t.join().is_err() {
                        log::error!("greenio: a hub thread panicked");
                    }
                }
            }
        }
        let _stop = StopOthers {
            hubs: hubs.clone(),
            threads,
        };
        let hub = Hub::new(hubs[0].clone(), first, rt.clone(), stack_size);
        run_main(&hub, main)
    }
}

/// Runs `main` as the first green thread of a one-hub runtime on this
/// thread and returns its value: the entry point of a greenio program.
///
/// When `main` returns, the other green threads are cancelled and unwound
/// (destructors run, sockets close) before `run` returns main's value.
///
/// # Deadlocks
///
/// If main is parked and nothing can ever wake any green thread (none is
/// ready, no timer is armed, no socket or signal is awaited, no
/// [`Unparker`](crate::Unparker) is alive, no [`unblock`](crate::unblock)
/// job runs, and — for waits on sync primitives, which a plain OS thread may
/// end — the process has no other threads), `run` unwinds every green
/// thread and panics with a report that names each one and what it waits
/// on, instead of hanging (gevent's `LoopExit`, with the culprits named).
///
/// # Panics
///
/// Re-raises `main`'s panic; panics on deadlock as above, if the hub's
/// poller cannot be created, or inside another `run`.
///
/// # Examples
///
/// ```
/// let v = greenio::run(|| {
///     let h = greenio::spawn(|| "hello from a green thread");
///     h.join().unwrap()
/// });
/// assert_eq!(v, "hello from a green thread");
/// ```
#[track_caller]
pub fn run<F, T>(main: F) -> T
where
    F: FnOnce() -> T,
{
    match Runtime::builder().build() {
        Ok(rt) => rt.run(main),
        Err(e) => panic!("greenio::run: cannot create the hub: {e}"),
    }
}

/// The number of hubs of the current runtime (0 outside one).
pub fn hub_count() -> usize {
    hub::current_runtime().map_or(0, |rt| rt.hubs().len())
}

/// Runs `f` as the main green thread of `hub`; returns its value once it
/// and every other green thread of the hub have finished (the others are
/// cancelled when main returns).
#[track_caller]
fn run_main<F, T>(hub: &Hub, f: F) -> T
where
    F: FnOnce() -> T,
{
    // Main's spawn site is the user's `run` call.
    let site = Location::caller();
    hub.enter(|| {
        let mut out: Option<std::thread::Result<T>> = None;
        let out_ptr: *mut Option<std::thread::Result<T>> = &mut out;
        let packet: Arc<Packet<()>> =
            Arc::new(Packet::new(Some("main".into()), site, hub.shared.clone()));
        let p = packet.clone();
        let body = move || {
            let r = panic::catch_unwind(AssertUnwindSafe(f));
            // SAFETY: `out` lives on run_main's frame, which does not
            // return before this green thread has finished (see below).
            unsafe { *out_ptr = Some(r) };
        };
        let stack = match hub.stacks.borrow_mut().get(None) {
            Ok(s) => s,
            Err(e) => panic!("greenio::run: cannot map the main green thread's stack: {e}"),
        };
        let info = StackInfo::of(&stack, packet.header.id, Some("main"), packet.header.site);
        // SAFETY: the closure borrows data that outlives this call (`f`'s
        // captures and `out`). The coroutine is driven to completion by the
        // loops below before we return; if it cannot be (a deadlock while
        // unwinding), `deadlock` aborts the process instead of returning,
        // so the borrows never dangle.
        let co = unsafe {
            Co::with_stack_unchecked(stack, move |y: &Yielder<(), ()>, ()| {
                hub::enter(y);
                crate::green::root(&p, body);
            })
        };
        hub.shared.alive.fetch_add(1, Ordering::Relaxed);
        hub.insert(packet.clone(), Start::Ready(co, info));
        let main_done = |_: &Hub| packet.header.is_finished();
        let _idle = Working::start(hub);
        if hub.event_loop(&main_done, true).is_err() {
            deadlock(hub);
        }
        if hub.finish().is_err() {
            deadlock(hub);
        }
        match out {
            Some(Ok(v)) => v,
            Some(Err(p)) => panic::resume_unwind(p),
            None => panic!("greenio::run: the main green thread was cancelled"),
        }
    })
}

/// Serves a secondary hub until the runtime shuts down.
fn serve(hub: &Hub) {
    hub.enter(|| {
        let _idle = Working::start(hub);
        let r = hub
            .event_loop(&Hub::is_shut_down, true)
            .and_then(|()| hub.finish());
        if let Err(Deadlock) = r {
            deadlock(hub);
        }
    });
}

/// Marks a hub as working (watched by the watchdog) until dropped.
struct Working<'a>(&'a HubShared);

impl<'a> Working<'a> {
    fn start(hub: &'a Hub) -> Working<'a> {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        hub.shared.watch.tid.store(tid, Ordering::Relaxed);
        hub.shared.watch.set_idle(false);
        Working(&hub.shared)
    }
}

impl Drop for Working<'_> {
    fn drop(&mut self) {
        self.0.watch.set_idle(true);
    }
}

/// Reports a deadlock: unwinds every green thread so borrowed data is
/// released, then panics with a dump naming each parked green thread. If
/// they cannot unwind either, aborts rather than free stacks in use.
fn deadlock(hub: &Hub) -> ! {
    let report = format!(
        "greenio: deadlock: every green thread is parked and nothing can wake them \
         (no ready green thread, timer, socket, unparker or other thread):\n{}",
        crate::introspect::dump_hub(hub)
    );
    log::error!("{report}");
    hub.cancel_all();
    let drained = panic::catch_unwind(AssertUnwindSafe(|| {
        hub.drain_nocheck(|h| h.shared.alive() == 0);
    }));
    if drained.is_err() || hub.shared.alive() != 0 {
        eprintln!("{report}\ngreenio: green threads could not be unwound; aborting");
        std::process::abort();
    }
    panic!("{report}");
}
