//! Signals as events a green thread waits on.
//!
//! ```
//! use greenio::signal::{Signals, SIGUSR2};
//!
//! greenio::run(|| {
//!     let mut signals = Signals::new(&[SIGUSR2]).unwrap();
//!     // Something outside sends the signal; here we send it ourselves.
//!     // SAFETY: raise is always safe to call.
//!     unsafe { libc::raise(SIGUSR2) };
//!     assert_eq!(signals.recv().unwrap(), SIGUSR2);
//! });
//! ```
//!
//! A typical server waits for SIGINT/SIGTERM in one green thread and then
//! stops its listener (see `examples/echo.rs`):
//!
//! ```no_run
//! # fn stop_the_server() {}
//! greenio::run(|| {
//!     greenio::spawn(|| {
//!         let sig = greenio::signal::wait(&[greenio::signal::SIGINT, greenio::signal::SIGTERM]);
//!         eprintln!("got signal {sig:?}, stopping");
//!         stop_the_server();
//!     });
//!     // ... serve ...
//! });
//! ```
//!
//! # Design: the self-pipe trick behind a mio source
//!
//! A signal can arrive on any thread at any instruction, so a handler may do
//! almost nothing: no locks, no allocation, only async-signal-safe calls. The
//! classic answer (D. J. Bernstein's *self-pipe trick*) turns the signal into
//! I/O: the handler writes a byte into a non-blocking pipe, and the event
//! loop waits for the pipe's read end like any socket. There is no window
//! between "check a flag" and "go to sleep" in which a signal can be missed:
//! the byte stays in the pipe until someone reads it.
//!
//! ```text
//!   kernel --SIGTERM--> handler (any thread)
//!                         for each slot whose set holds SIGTERM:
//!                             write(slot.fd, [15])         non-blocking
//!                         chain the previous handler, if it was a function
//!
//!   Signals (a green thread on some hub)
//!       pipe read end registered with the hub (io::Registration)
//!       recv(): read a byte -> 15; on WouldBlock park as WaitReason::external("signal")
//! ```
//!
//! * **The registry** of write ends is a fixed array of [`MAX_LISTENERS`]
//!   slots of atomics (`fd`, signal set, overflow bits), so the handler
//!   touches no lock and no heap. Every [`Signals`] value owns one slot and
//!   one pipe, so any number of them, on any hubs, each receive every
//!   delivered signal they asked for.
//! * **Closing a pipe safely.** A handler running on another thread may have
//!   loaded a slot's fd just before the slot is released; if the fd were
//!   closed and reused at that moment, the handler would write into an
//!   unrelated file. The handler therefore counts itself in a global
//!   in-flight counter around its work, and [`Signals`]'s drop first hides the
//!   fd from new handler runs, then waits (spinning; handlers take
//!   microseconds) until the counter reads zero before closing the pipe.
//! * **Overflow.** A pipe holds 64 KiB of signal numbers. If it is full the
//!   handler sets the signal's bit in the slot's overflow word instead, and
//!   the reader returns those bits after draining the pipe: a burst may be
//!   coalesced (as the kernel itself coalesces standard signals), but a
//!   distinct signal is never lost.
//!
//! # How this changes the process's signal dispositions
//!
//! The first [`Signals`] for a signal number installs greenio's handler
//! (`sigaction` with `SA_SIGINFO | SA_RESTART | SA_ONSTACK`) and keeps it for
//! the rest of the process: uninstalling would race with handlers running on
//! other threads and with other libraries that installed theirs on top. The
//! *previous* disposition is remembered and honoured:
//!
//! * a previous **handler function** (another library's) is always called
//!   after the pipes are written, with the same arguments (chaining);
//! * a previous **`SIG_IGN`** stays ignored when no [`Signals`] listens;
//! * a previous **`SIG_DFL`** applies again when no [`Signals`] listens:
//!   the handler restores the default action and re-raises the signal, so
//!   Ctrl-C still kills a program whose listener is gone. Signals whose
//!   default action is to be ignored (`SIGCHLD`, `SIGWINCH`, `SIGURG`,
//!   `SIGCONT`) are simply dropped; stop signals (`SIGTSTP`, `SIGTTIN`,
//!   `SIGTTOU`) stop the process, and greenio's handler is reinstalled when
//!   it continues.
//!
//! While at least one [`Signals`] listens for a signal, its default action
//! (terminate, stop) does not happen: the program decides what to do.
//!
//! `SA_RESTART` means slow system calls interrupted by the handler are
//! restarted by the kernel; greenio's own loop treats `EINTR` as a retry
//! anyway. `SA_ONSTACK` runs the handler on the thread's alternate signal
//! stack when it has one (Rust's threads do), not on a small green-thread
//! stack.
//!
//! Synchronous fault signals (`SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`,
//! `SIGTRAP`) and uncatchable ones (`SIGKILL`, `SIGSTOP`) are refused: a
//! handler that returns from a fault re-executes the faulting instruction,
//! and greenio's stack-overflow report relies on `SIGSEGV`.
//!
//! # SIGPIPE
//!
//! Writing to a socket whose peer has reset the connection raises
//! `SIGPIPE`, whose default action kills the process. Two things keep that
//! from happening: Rust's runtime sets `SIGPIPE` to `SIG_IGN` before `main`
//! in every Rust binary (test harnesses included), and greenio's sockets
//! send with `MSG_NOSIGNAL` anyway. Such writes fail with
//! [`ErrorKind::BrokenPipe`](std::io::ErrorKind::BrokenPipe) (or
//! `ConnectionReset` for the first write after the reset), an error like
//! any other. A program embedding greenio under a non-Rust `main` that
//! writes to pipes or calls `sendfile` should ignore `SIGPIPE` itself
//! (`libc::signal(libc::SIGPIPE, libc::SIG_IGN)`).
//!
//! # Rejected designs
//!
//! * *`signalfd`*: needs the signal blocked in every thread of the process,
//!   including threads greenio did not start (the blocking pool, a user's
//!   `std::thread`s, a library's); one unblocked thread and the signal takes
//!   its default action there. It is also Linux-only and gives a single
//!   consumer.
//! * *A flag polled by the hub loop*: the flag may be set just after the
//!   hub checked it and before it sleeps in `epoll_wait`, missing the signal
//!   until the next unrelated event (the race the self-pipe trick exists to
//!   close).
//! * *One shared pipe with a dispatcher green thread*: would tie signals to
//!   one hub, and a dispatcher needs a lock-free fan-out anyway; one pipe per
//!   listener is simpler and costs one fd pair.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mio::unix::pipe;
use mio::Interest;

use crate::io::{Ready, Registration};
use crate::misuse::Misuse;
use crate::wait::WaitReason;

pub use libc::{
    SIGALRM, SIGCHLD, SIGCONT, SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGTERM, SIGTSTP, SIGTTIN,
    SIGTTOU, SIGURG, SIGUSR1, SIGUSR2, SIGWINCH,
};

/// The most [`Signals`] values that may exist at once in the process.
pub const MAX_LISTENERS: usize = 128;

/// Signal numbers are `1..=MAX_SIGNAL` (Linux: 64, real-time included).
const MAX_SIGNAL: i32 = 64;

/// `Slot::fd` of an unused slot.
const FREE: i32 = -1;
/// `Slot::fd` of a slot being set up or torn down: the handler skips it.
const RESERVED: i32 = -2;

/// One listener's entry in the process-wide registry.
///
/// Invariants: `fd >= 0` only while the owning [`Signals`] holds the pipe's
/// write end open; `set` is written only while `fd` is `RESERVED` (owner);
/// `lost` is set by handlers and swapped to zero by the owner.
struct Slot {
    /// `FREE`, `RESERVED`, or the write end of the owner's pipe.
    fd: AtomicI32,
    /// Bit `n - 1` for each signal `n` this slot listens to.
    set: AtomicU64,
    /// Bit `n - 1` for each signal `n` that found the pipe full.
    lost: AtomicU64,
}

/// The registry the handler reads. No locks: see the module docs.
static SLOTS: [Slot; MAX_LISTENERS] = [const {
    Slot {
        fd: AtomicI32::new(FREE),
        set: AtomicU64::new(0),
        lost: AtomicU64::new(0),
    }
}; MAX_LISTENERS];

/// Handler invocations currently running (on any thread).
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Per signal number: greenio's handler is not installed.
const NOT_INSTALLED: u8 = 0;
/// Per signal number: installed; `PREV` holds the previous action.
const INSTALLED: u8 = 1;

/// Whether greenio's handler is installed, per signal number. Written under
/// `INSTALL_LOCK`; read by the handler.
static STATE: [AtomicU8; MAX_SIGNAL as usize + 1] =
    [const { AtomicU8::new(NOT_INSTALLED) }; MAX_SIGNAL as usize + 1];

/// The disposition each signal had before greenio's handler; written once
/// (under `INSTALL_LOCK`, before `STATE` becomes `INSTALLED`), then only read.
struct PrevActions(
    [std::cell::UnsafeCell<std::mem::MaybeUninit<libc::sigaction>>; MAX_SIGNAL as usize + 1],
);

// SAFETY: each entry is written once, under INSTALL_LOCK, before the
// release store of STATE[sig] = INSTALLED and before the handler for that
// signal is installed; afterwards it is only read (by the handler, after an
// acquire load of STATE). No two accesses of an entry ever conflict.
unsafe impl Sync for PrevActions {}

static PREV: PrevActions = PrevActions(
    [const { std::cell::UnsafeCell::new(std::mem::MaybeUninit::uninit()) };
        MAX_SIGNAL as usize + 1],
);

/// Serialises installation (normal context only, never the handler).
static INSTALL_LOCK: Mutex<()> = Mutex::new(());

fn bit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

#[cfg(any(target_os = "linux", target_os = "emscripten"))]
fn errno_location() -> *mut libc::c_int {
    // SAFETY: returns the calling thread's errno slot; always valid.
    unsafe { libc::__errno_location() }
}

#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "dragonfly"
))]
fn errno_location() -> *mut libc::c_int {
    // SAFETY: returns the calling thread's errno slot; always valid.
    unsafe { libc::__error() }
}

#[cfg(any(target_os = "android", target_os = "netbsd", target_os = "openbsd"))]
fn errno_location() -> *mut libc::c_int {
    // SAFETY: returns the calling thread's errno slot; always valid.
    unsafe { libc::__errno() }
}

/// Whether the default action of `sig` is to do nothing.
fn default_ignores(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGCHLD | libc::SIGURG | libc::SIGWINCH | libc::SIGCONT
    )
}

/// greenio's action for a signal: [`handler`], `SA_SIGINFO | SA_RESTART |
/// SA_ONSTACK`, nothing extra blocked while it runs.
fn our_action() -> libc::sigaction {
    // SAFETY: sigaction is a plain C struct for which all-zeroes is valid.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = handler as *const () as libc::sighandler_t;
    act.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
    // SAFETY: sa_mask is a valid sigset_t owned by `act`; sigemptyset is
    // async-signal-safe (this also runs inside the handler).
    unsafe { libc::sigemptyset(&mut act.sa_mask) };
    act
}

/// The process-wide handler. Async-signal-safe: atomics, `write`,
/// `sigaction`, `pthread_sigmask`, `raise`, and the previous handler.
extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let errno = errno_location();
    // SAFETY: errno_location is the calling thread's errno; we restore it
    // on exit so the interrupted code never sees our write's errno.
    let saved_errno = unsafe { *errno };
    IN_HANDLER.fetch_add(1, Ordering::SeqCst);

    let mut delivered = false;
    if (1..=MAX_SIGNAL).contains(&sig) {
        let b = bit(sig);
        let byte = sig as u8;
        for slot in &SLOTS {
            if slot.set.load(Ordering::SeqCst) & b == 0 {
                continue;
            }
            let fd = slot.fd.load(Ordering::SeqCst);
            if fd < 0 {
                continue;
            }
            delivered = true;
            // SAFETY: `fd` is the write end of a pipe that stays open while
            // IN_HANDLER counts us (Signals::drop waits for zero before it
            // closes it); `byte` is a valid one-byte buffer.
            let n = unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
            if n != 1 {
                // Full pipe: remember the signal as a bit, then write a
                // wake-up byte (0) in case the reader drained the pipe just
                // before the bit was set (see `Signals::fill`).
                slot.lost.fetch_or(b, Ordering::SeqCst);
                let zero = 0u8;
                // SAFETY: as above.
                unsafe { libc::write(fd, (&zero as *const u8).cast(), 1) };
            }
        }
        forward(sig, info, ctx, delivered);
    }

    IN_HANDLER.fetch_sub(1, Ordering::SeqCst);
    // SAFETY: as above.
    unsafe { *errno = saved_errno };
}

/// Applies the previous disposition of `sig` (see the module docs).
fn forward(sig: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void, delivered: bool) {
    if STATE[sig as usize].load(Ordering::Acquire) != INSTALLED {
        return;
    }
    // SAFETY: STATE is INSTALLED (acquire), so PREV[sig] was initialised
    // before and is never written again.
    let prev = unsafe { (*PREV.0[sig as usize].get()).assume_init_ref() };
    match prev.sa_sigaction {
        libc::SIG_IGN => {}
        libc::SIG_DFL => {
            if !delivered && !default_ignores(sig) {
                default_action(sig);
            }
        }
        f if prev.sa_flags & libc::SA_SIGINFO != 0 => {
            // SAFETY: the previous action was installed with SA_SIGINFO,
            // so `f` is a three-argument handler; we pass it our own
            // arguments unchanged.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(f) };
            f(sig, info, ctx);
        }
        f => {
            // SAFETY: without SA_SIGINFO the previous handler takes only
            // the signal number.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(f) };
            f(sig);
        }
    }
}

/// Performs the default action of `sig` from inside its handler: restore
/// `SIG_DFL`, unblock, re-raise (the process terminates or stops here),
/// and if it continues after a stop, reinstall greenio's handler.
fn default_action(sig: i32) {
    // SAFETY: all-zero sigaction with SIG_DFL (0) is the default action.
    let mut dfl: libc::sigaction = unsafe { std::mem::zeroed() };
    dfl.sa_sigaction = libc::SIG_DFL;
    // SAFETY: sigaction, sigemptyset, sigaddset, pthread_sigmask and raise
    // are async-signal-safe; every pointer is to a local of this frame.
    unsafe {
        libc::sigemptyset(&mut dfl.sa_mask);
        libc::sigaction(sig, &dfl, std::ptr::null_mut());
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
        let ours = our_action();
        libc::sigaction(sig, &ours, std::ptr::null_mut());
    }
}

fn check_signal(sig: i32) -> io::Result<()> {
    let refused = matches!(
        sig,
        libc::SIGKILL
            | libc::SIGSTOP
            | libc::SIGSEGV
            | libc::SIGBUS
            | libc::SIGILL
            | libc::SIGFPE
            | libc::SIGTRAP
    );
    if !(1..=MAX_SIGNAL).contains(&sig) || refused {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "greenio::signal: cannot listen for signal {sig}: fault signals \
                 (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP), SIGKILL, SIGSTOP and \
                 numbers outside 1..={MAX_SIGNAL} are refused"
            ),
        ));
    }
    Ok(())
}

/// Installs greenio's handler for `sig` once per process, remembering the
/// previous action.
fn install(sig: i32) -> io::Result<()> {
    if STATE[sig as usize].load(Ordering::Acquire) == INSTALLED {
        return Ok(());
    }
    let _guard = INSTALL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if STATE[sig as usize].load(Ordering::Acquire) == INSTALLED {
        return Ok(());
    }
    // SAFETY: all-zero sigaction is a valid out-buffer.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries; `old` is a valid out-pointer.
    syscall!(unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) })?;
    // SAFETY: STATE[sig] is NOT_INSTALLED and we hold INSTALL_LOCK, so no
    // handler reads this entry yet and no other thread writes it.
    unsafe { (*PREV.0[sig as usize].get()).write(old) };
    STATE[sig as usize].store(INSTALLED, Ordering::Release);
    let ours = our_action();
    // SAFETY: `ours` is a valid action whose handler is async-signal-safe.
    if let Err(e) = syscall!(unsafe { libc::sigaction(sig, &ours, std::ptr::null_mut()) }) {
        STATE[sig as usize].store(NOT_INSTALLED, Ordering::Release);
        return Err(e);
    }
    Ok(())
}

/// Claims a free registry slot (as `RESERVED`).
fn claim_slot() -> io::Result<usize> {
    SLOTS
        .iter()
        .position(|s| {
            s.fd.compare_exchange(FREE, RESERVED, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        })
        .ok_or_else(|| {
            io::Error::other(format!(
                "greenio::signal: more than {MAX_LISTENERS} Signals at once; \
                 share one Signals per program (or per hub) instead"
            ))
        })
}

/// Hides slot `i` from handlers and waits until none can still be using its
/// fd. Afterwards the owner may close the pipe.
fn retire_slot(i: usize) {
    let s = &SLOTS[i];
    s.fd.store(RESERVED, Ordering::SeqCst);
    // A handler that loaded the old fd counted itself in IN_HANDLER before
    // (SeqCst), so once the count reads zero none can still use it. The
    // handler never waits for us, so this terminates; it spins only while
    // a handler is running on another thread, for microseconds.
    while IN_HANDLER.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
}

/// A set of signals delivered to this value as events: the pipe, its slot
/// in the process-wide registry and its registration with the hub.
///
/// Create it inside a green thread; [`recv`](Signals::recv) parks the green
/// thread (only it, not the hub) until one of the signals arrives. Every
/// `Signals` listening to a signal receives each delivery of it, whichever
/// hub it lives on. Signals that arrive while nobody receives stay queued in
/// the pipe until the next `recv`.
///
/// The `Signals` belongs to the hub it was created on: move it to another
/// hub and `recv` fails; create one per hub instead.
///
/// Dropping it stops listening; when no `Signals` listens to a signal any
/// more, the signal's previous disposition applies again (see the
/// [module docs](self)).
///
/// # Examples
///
/// ```
/// use greenio::signal::{Signals, SIGHUP, SIGUSR1};
///
/// greenio::run(|| {
///     let mut signals = Signals::new(&[SIGHUP, SIGUSR1]).unwrap();
///     let waiter = greenio::spawn(move || signals.recv().unwrap());
///     greenio::sleep(std::time::Duration::from_millis(5));
///     // SAFETY: raise is always safe to call.
///     unsafe { libc::raise(SIGUSR1) };
///     assert_eq!(waiter.join().unwrap(), SIGUSR1);
/// });
/// ```
pub struct Signals {
    /// The registry slot and the pipe.
    listener: Listener,
    /// Readiness of the pipe's read end on the creating hub.
    reg: Registration,
    /// Signal numbers read from the pipe but not yet returned.
    queue: VecDeque<i32>,
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sigs: Vec<i32> = self.signals().collect();
        f.debug_struct("Signals")
            .field("signals", &sigs)
            .field("slot", &self.listener.slot)
            .field("queued", &self.queue.len())
            .finish()
    }
}

/// One listener in the registry: its slot and its pipe, without a hub.
/// [`Signals`] puts a hub registration on top; the watchdog's monitor
/// thread (`dump_on_signal`) `poll`s the read end itself.
pub(crate) struct Listener {
    /// Index in `SLOTS`; owned by this value until drop.
    slot: usize,
    /// The signals listened to, as `bit(sig)`.
    set: u64,
    /// Read end, non-blocking.
    rx: pipe::Receiver,
    /// Write end, non-blocking; its fd is in `SLOTS[slot]`. Closed only
    /// after `retire_slot`.
    tx: Option<pipe::Sender>,
}

impl Listener {
    /// Claims a slot and a pipe for `signals` and installs the handler.
    pub(crate) fn new(signals: &[i32]) -> io::Result<Listener> {
        if signals.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "greenio::signal: Signals::new needs at least one signal",
            ));
        }
        let mut set = 0;
        for &s in signals {
            check_signal(s)?;
            set |= bit(s);
        }
        let (tx, rx) = pipe::new()?;
        let slot = claim_slot()?;
        let me = Listener {
            slot,
            set,
            rx,
            tx: Some(tx),
        };
        let s = &SLOTS[slot];
        s.lost.store(0, Ordering::SeqCst);
        s.set.store(set, Ordering::SeqCst);
        if let Some(tx) = &me.tx {
            s.fd.store(tx.as_raw_fd(), Ordering::SeqCst);
        }
        // On error `me` drops and retires the slot.
        for sig in (1..=MAX_SIGNAL).filter(|&s| set & bit(s) != 0) {
            install(sig)?;
        }
        Ok(me)
    }

    /// The pipe's read end (to register or `poll`).
    pub(crate) fn fd(&self) -> std::os::fd::RawFd {
        self.rx.as_raw_fd()
    }

    /// Moves what the pipe holds into `queue`, then the overflow bits.
    /// Returns `false` if the pipe was found empty (`WouldBlock`).
    pub(crate) fn drain_into(&self, queue: &mut VecDeque<i32>) -> io::Result<bool> {
        let mut buf = [0u8; 64];
        let mut emptied = false;
        loop {
            match (&self.rx).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    // 0 is a wake-up byte (see `handler`), not a signal.
                    queue.extend(buf[..n].iter().filter(|&&b| b != 0).map(|&b| i32::from(b)));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    emptied = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let lost = SLOTS[self.slot].lost.swap(0, Ordering::SeqCst);
        for sig in 1..=MAX_SIGNAL {
            if lost & bit(sig) != 0 && !queue.contains(&sig) {
                queue.push_back(sig);
            }
        }
        Ok(!emptied)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        retire_slot(self.slot);
        // No handler can use the write end any more: close it, then free
        // the slot for reuse.
        drop(self.tx.take());
        let s = &SLOTS[self.slot];
        s.set.store(0, Ordering::SeqCst);
        s.lost.store(0, Ordering::SeqCst);
        s.fd.store(FREE, Ordering::SeqCst);
    }
}

impl Signals {
    /// Starts listening for `signals` on the current hub.
    ///
    /// From this call on, each delivery of one of the signals is queued for
    /// this value; while it exists, the signals' default actions (such as
    /// terminating on SIGINT) do not happen.
    ///
    /// # Errors
    ///
    /// * `InvalidInput` for an empty list, a number outside `1..=64`, or a
    ///   signal that cannot be handled this way (`SIGKILL`, `SIGSTOP`,
    ///   `SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`, `SIGTRAP`);
    /// * `Other` outside a hub (call it inside [`greenio::run`](crate::run)),
    ///   or when [`MAX_LISTENERS`] `Signals` already exist;
    /// * the OS error of `pipe2`, `epoll_ctl` or `sigaction` (for instance
    ///   `EINVAL` for the real-time signals glibc reserves).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::signal::{Signals, SIGINT, SIGTERM};
    /// greenio::run(|| {
    ///     let signals = Signals::new(&[SIGINT, SIGTERM]).unwrap();
    ///     assert!(Signals::new(&[libc::SIGKILL]).is_err());
    ///     drop(signals);
    /// });
    /// ```
    pub fn new(signals: &[i32]) -> io::Result<Signals> {
        let listener = Listener::new(signals)?;
        let reg = Registration::with_interest(
            &mut mio::unix::SourceFd(&listener.fd()),
            Interest::READABLE,
        )?;
        Ok(Signals {
            listener,
            reg,
            queue: VecDeque::new(),
        })
    }

    /// The signal numbers this value listens to, in increasing order.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::signal::{Signals, SIGHUP, SIGINT};
    /// greenio::run(|| {
    ///     let s = Signals::new(&[SIGINT, SIGHUP]).unwrap();
    ///     assert_eq!(s.signals().collect::<Vec<_>>(), vec![SIGHUP, SIGINT]);
    /// });
    /// ```
    pub fn signals(&self) -> impl Iterator<Item = i32> + '_ {
        (1..=MAX_SIGNAL).filter(move |&s| self.listener.set & bit(s) != 0)
    }

    /// Parks the calling green thread until one of the signals arrives and
    /// returns its number. Signals delivered since the last call (or since
    /// [`new`](Self::new)) are returned first, in delivery order.
    ///
    /// The wait counts as a wait on the outside world, so a program whose
    /// only live green thread waits here is not reported as deadlocked.
    /// Cancellation and [`timeout`](crate::timeout) interrupt it.
    ///
    /// # Errors
    ///
    /// `Other` when called outside a green thread or from another hub than
    /// the one the `Signals` was created on; the OS error of `read`.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::signal::{Signals, SIGUSR1};
    /// greenio::run(|| {
    ///     let mut s = Signals::new(&[SIGUSR1]).unwrap();
    ///     // SAFETY: raise is always safe to call.
    ///     unsafe { libc::raise(SIGUSR1) };
    ///     assert_eq!(s.recv().unwrap(), SIGUSR1);
    /// });
    /// ```
    pub fn recv(&mut self) -> io::Result<i32> {
        self.recv_deadline(None)
    }

    /// Like [`recv`](Self::recv), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// `TimedOut` if no signal arrived in time; otherwise as
    /// [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::signal::{Signals, SIGUSR2};
    /// use std::time::Duration;
    /// greenio::run(|| {
    ///     let mut s = Signals::new(&[SIGUSR2]).unwrap();
    ///     let err = s.recv_timeout(Duration::from_millis(5)).unwrap_err();
    ///     assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// });
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> io::Result<i32> {
        self.recv_deadline(crate::wait::deadline_after(timeout))
    }

    fn recv_deadline(&mut self, deadline: Option<Instant>) -> io::Result<i32> {
        loop {
            if let Some(sig) = self.try_recv()? {
                return Ok(sig);
            }
            self.reg
                .wait_as(Ready::READABLE, deadline, WaitReason::external("signal"))?;
        }
    }

    /// Returns a signal delivered since the last call, if any, without
    /// waiting.
    ///
    /// # Errors
    ///
    /// `Other` when called from another hub than the one the `Signals` was
    /// created on; the OS error of `read`.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::signal::{Signals, SIGUSR2};
    /// greenio::run(|| {
    ///     let mut s = Signals::new(&[SIGUSR2]).unwrap();
    ///     assert_eq!(s.try_recv().unwrap(), None);
    ///     // SAFETY: raise is always safe to call.
    ///     unsafe { libc::raise(SIGUSR2) };
    ///     assert_eq!(s.try_recv().unwrap(), Some(SIGUSR2));
    /// });
    /// ```
    pub fn try_recv(&mut self) -> io::Result<Option<i32>> {
        if self.queue.is_empty() {
            self.fill()?;
        }
        Ok(self.queue.pop_front())
    }

    /// Moves what the pipe holds into `queue`, then the overflow bits.
    fn fill(&mut self) -> io::Result<()> {
        if !self.reg.is_local() {
            log::debug!(
                target: "greenio",
                "Signals created on hub {} used elsewhere; create one Signals per hub",
                self.reg.hub_index()
            );
            return Err(Misuse::OtherHub.into());
        }
        // Read even when the readiness cache says "not readable": the cache
        // learns of new bytes only at the hub's next poll, and `try_recv`
        // must see a signal raised just before it. Signals are rare; the
        // extra `read` costs nothing that matters.
        if !self.listener.drain_into(&mut self.queue)? {
            self.reg.clear_readiness(Ready::READABLE);
        }
        Ok(())
    }
}

/// Parks the calling green thread until one of `signals` arrives and
/// returns its number: `Signals::new(signals)?.recv()`.
///
/// Listening starts when this is called: a signal delivered before is not
/// seen (and takes its previous disposition). Keep a [`Signals`] for the
/// program's lifetime when that matters.
///
/// # Errors
///
/// As [`Signals::new`] and [`Signals::recv`].
///
/// # Examples
///
/// ```
/// use greenio::signal::{Signals, SIGUSR1};
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// greenio::run(|| {
///     // A listener kept for the whole run: a SIGUSR1 sent before `wait`
///     // starts listening is queued there instead of killing the process.
///     let _keep = Signals::new(&[SIGUSR1]).unwrap();
///     let done = Arc::new(AtomicBool::new(false));
///     let d2 = done.clone();
///     let sender = std::thread::spawn(move || {
///         while !d2.load(Ordering::SeqCst) {
///             // SAFETY: kill is always safe to call.
///             unsafe { libc::kill(std::process::id() as i32, SIGUSR1) };
///             std::thread::sleep(std::time::Duration::from_millis(10));
///         }
///     });
///     assert_eq!(greenio::signal::wait(&[SIGUSR1]).unwrap(), SIGUSR1);
///     done.store(true, Ordering::SeqCst);
///     sender.join().unwrap();
/// });
/// ```
pub fn wait(signals: &[i32]) -> io::Result<i32> {
    Signals::new(signals)?.recv()
}
