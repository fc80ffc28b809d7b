//! Green threads, the public face: spawning, joining, cancelling, naming,
//! parking, yielding and sleeping.
//!
//! Built on the task core (`task.rs`: header, packet, join protocol) and
//! the hub loop (`hub.rs`), which it reaches only through `with_hub`.
//! Every spawn entry point is `#[track_caller]`, so the header records the
//! user's spawn site for `dump`, the deadlock report and crash messages.

use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe, Location};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::hub;
use crate::park::{WaitReason, NOTIFIED};
use crate::task::{JoinError, Packet, Target, Task, WaitToken};
use crate::unwind::{payload_str, CancelUnwind, TimeoutUnwind};
use crate::wait::{Waiter, Wake};

/// An owned permission to join a green thread (wait for its result) or to
/// cancel it. Dropping the handle detaches the green thread.
///
/// `JoinHandle` is `Send + Sync`: join or cancel from any green thread, hub
/// or plain OS thread.
///
/// # Examples
///
/// ```
/// greenio::run(|| {
///     let h = greenio::spawn(|| 6 * 7);
///     assert_eq!(h.join().unwrap(), 42);
/// });
/// ```
pub struct JoinHandle<T> {
    /// The shared packet (`block_on.rs` polls it as a future).
    pub(crate) packet: Arc<Packet<T>>,
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.packet.header.id)
            .field("name", &self.packet.header.name)
            .field("finished", &self.packet.header.is_finished())
            .finish()
    }
}

impl<T: Send + 'static> JoinHandle<T> {
    pub(crate) fn new(packet: Arc<Packet<T>>) -> Self {
        JoinHandle { packet }
    }

    /// Waits for the green thread to finish and returns its value.
    ///
    /// From a green thread this parks only the caller; from a plain OS thread
    /// it blocks the thread.
    ///
    /// # Errors
    ///
    /// [`JoinError::Panicked`] with the payload if the green thread panicked,
    /// [`JoinError::Cancelled`] if it was cancelled before it returned.
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let h = greenio::spawn(|| -> u32 { panic!("boom") });
    ///     let err = h.join().unwrap_err();
    ///     assert_eq!(err.panic_message(), Some("boom"));
    /// });
    /// ```
    pub fn join(self) -> Result<T, JoinError> {
        crate::wait::coop_proceed();
        let h = &self.packet.header;
        if h.is_finished() {
            return self.packet.take_result();
        }
        let joined = hub::with_current_task(|hub, me| {
            // A green thread: hand the finisher a token for our own park
            // word and park on it (no `Waiter` of our own to clone).
            let reason = if Arc::ptr_eq(&hub.shared, &h.hub) {
                WaitReason::local("join")
            } else {
                WaitReason::sync("join")
            };
            let token = WaitToken {
                target: Target::Green(me.clone()),
                seq: hub.arm_current(),
            };
            let seq = token.seq;
            // SAFETY: `join` consumes the only handle, so this is the one
            // and only joiner.
            if unsafe { h.set_joiner(token) } {
                // No deadline: the only way out is the finisher's wake (or
                // an interrupt, which unwinds).
                hub.block_on_word(seq, None, reason);
            } else {
                me.header().word.disarm(seq);
            }
        });
        if joined.is_none() {
            let w = Waiter::prepare();
            // SAFETY: as above.
            if unsafe { h.set_joiner(w.token().clone()) } {
                while w.wait(None, WaitReason::sync("join")) != Wake::Notified {}
            } else {
                w.cancel();
            }
        }
        self.packet.take_result()
    }

    /// Cancels the green thread, gevent's `kill`: it unwinds from its current
    /// (or next) park point with a private payload, running destructors, and
    /// its `join` returns [`JoinError::Cancelled`]. A green thread that has
    /// not started yet never runs. Cancelling a finished or already
    /// cancelled green thread does nothing.
    ///
    /// This does not wait; [`join`](JoinHandle::join) after it to wait until
    /// the target has unwound.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// greenio::run(|| {
    ///     let h = greenio::spawn(|| greenio::sleep(Duration::from_secs(3600)));
    ///     h.cancel();
    ///     assert!(h.join().unwrap_err().is_cancelled());
    /// });
    /// ```
    pub fn cancel(&self) {
        hub::cancel(&(self.packet.clone() as Arc<dyn Task>));
    }

    /// Whether the green thread has finished (returned, panicked or was
    /// cancelled and unwound).
    pub fn is_finished(&self) -> bool {
        self.packet.header.is_finished()
    }

    /// The green thread this handle refers to.
    pub fn thread(&self) -> GreenThread {
        GreenThread {
            task: self.packet.clone(),
        }
    }
}

/// A handle to a green thread: its id and name, and an [`Unparker`].
///
/// # Examples
///
/// ```
/// greenio::run(|| {
///     let h = greenio::Builder::new()
///         .name("worker")
///         .spawn(|| greenio::current().name().map(str::to_owned))
///         .unwrap();
///     assert_eq!(h.join().unwrap().as_deref(), Some("worker"));
/// });
/// ```
#[derive(Clone)]
pub struct GreenThread {
    task: Arc<dyn Task>,
}

impl fmt::Debug for GreenThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GreenThread")
            .field("id", &self.id())
            .field("name", &self.name())
            .finish()
    }
}

impl GreenThread {
    /// Cancels this green thread, as [`JoinHandle::cancel`] does (used by
    /// `Group`, which keeps no handle).
    pub(crate) fn cancel(&self) {
        hub::cancel(&self.task);
    }

    /// The unique id (never reused within the process).
    pub fn id(&self) -> u64 {
        self.task.header().id
    }

    /// The name given through [`Builder::name`].
    pub fn name(&self) -> Option<&str> {
        self.task.header().name.as_deref()
    }

    /// Where it was spawned: the `file:line` of the `spawn` call (or of
    /// the `Server` or `Group` that spawned it on the user's behalf).
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let h = greenio::spawn(|| ());
    ///     assert!(h.thread().spawn_site().file().ends_with(".rs"));
    /// });
    /// ```
    pub fn spawn_site(&self) -> &'static Location<'static> {
        self.task.header().site
    }

    /// The index of the hub this green thread lives on.
    pub fn hub(&self) -> usize {
        self.task.header().hub.index
    }

    /// A `Send + Sync` handle that wakes this green thread from [`park`],
    /// from any thread.
    pub fn unparker(&self) -> Unparker {
        Unparker::new(self.task.clone())
    }
}

/// Returns the calling green thread.
///
/// # Panics
///
/// Panics outside a green thread (that is, outside [`run`](crate::run)).
///
/// # Examples
///
/// ```
/// greenio::run(|| {
///     let me = greenio::current();
///     assert!(me.id() > 0);
/// });
/// ```
pub fn current() -> GreenThread {
    match hub::with_current_task(|_, t| t.clone()) {
        Some(task) => GreenThread { task },
        None => {
            panic!("greenio::current() called outside a green thread; start one with greenio::run")
        }
    }
}

/// Wakes a green thread blocked in [`park`], from any thread.
///
/// Like `std::thread::Thread::unpark`: an `unpark` that comes before the
/// `park` makes the next `park` return at once (one token, not a counter).
///
/// While any `Unparker` for a green thread is alive, the deadlock detector
/// counts it as something that may still wake the hub.
pub struct Unparker {
    task: Arc<dyn Task>,
}

impl fmt::Debug for Unparker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unparker")
            .field("green_thread", &self.task.header().id)
            .finish()
    }
}

impl Unparker {
    fn new(task: Arc<dyn Task>) -> Unparker {
        task.header().hub.unparkers.fetch_add(1, Ordering::Relaxed);
        Unparker { task }
    }

    /// Makes the green thread's current or next [`park`] return.
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let u = greenio::current().unparker();
    ///     std::thread::spawn(move || u.unpark());
    ///     greenio::park();
    /// });
    /// ```
    pub fn unpark(&self) {
        let h = self.task.header();
        h.unpark_token.store(true, Ordering::SeqCst);
        let seq = h.user_park_seq.load(Ordering::SeqCst);
        if seq != 0 {
            hub::fire_green(h, seq, NOTIFIED);
        }
    }
}

impl Clone for Unparker {
    fn clone(&self) -> Self {
        Unparker::new(self.task.clone())
    }
}

impl Drop for Unparker {
    fn drop(&mut self) {
        self.task
            .header()
            .hub
            .unparkers
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Parks the calling green thread until its [`Unparker`] is used (or was
/// used since the last `park`). Cancellation and timeouts interrupt it.
///
/// Like `std::thread::park`, but only the green thread waits, not the hub.
///
/// # Panics
///
/// Panics outside a green thread.
pub fn park() {
    let parked = hub::with_current_task(|hub, task| {
        let h = task.header();
        if h.unpark_token.swap(false, Ordering::SeqCst) {
            return;
        }
        let seq = hub.arm_current();
        h.user_park_seq.store(seq, Ordering::SeqCst);
        if h.unpark_token.swap(false, Ordering::SeqCst) {
            h.user_park_seq.store(0, Ordering::SeqCst);
            h.word.disarm(seq);
            return;
        }
        struct Reset<'a>(&'a crate::task::Header);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                self.0.user_park_seq.store(0, Ordering::SeqCst);
            }
        }
        let _reset = Reset(h);
        hub.block_on_word(seq, None, WaitReason::local("park"));
        h.unpark_token.store(false, Ordering::SeqCst);
    });
    parked.expect("greenio::park() called outside a green thread; start one with greenio::run");
}

/// Configures a green thread before spawning it: name and stack size.
///
/// # Examples
///
/// ```
/// greenio::run(|| {
///     let h = greenio::Builder::new()
///         .name("conn")
///         .stack_size(256 * 1024)
///         .spawn(|| 1 + 1)
///         .expect("spawn failed");
///     assert_eq!(h.join().unwrap(), 2);
/// });
/// ```
#[derive(Debug, Default, Clone)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
    site: Option<&'static Location<'static>>,
}

impl Builder {
    /// A builder with no name and the hub's default stack size.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the green thread (shown by [`dump`](crate::dump), panic logs
    /// and the stack-overflow message).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Sets the usable stack size in bytes (rounded up to whole pages; a
    /// guard page is added below it). Stacks of the hub's default size come
    /// from its pool; other sizes are mapped and unmapped per green thread.
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Records `site` as the spawn site instead of the caller of `spawn`
    /// (for libraries that spawn on their user's behalf, like a server
    /// recording where it was created).
    pub fn spawn_site(mut self, site: &'static Location<'static>) -> Builder {
        self.site = Some(site);
        self
    }

    /// Spawns the green thread on the current hub.
    ///
    /// # Errors
    ///
    /// Returns the `mmap` error if a new stack cannot be mapped (for example
    /// `vm.max_map_count` is exhausted), with a message that says so.
    ///
    /// # Panics
    ///
    /// Panics outside [`run`](crate::run).
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + 'static,
        T: Send + 'static,
    {
        let site = self.site.unwrap_or(Location::caller());
        hub::with_hub(|hub| {
            let packet = Arc::new(Packet::new(self.name, site, hub.shared.clone()));
            let raw: *const Packet<T> = Arc::as_ptr(&packet);
            let body = move || {
                // SAFETY: the hub's task slab holds an `Arc` to this very
                // packet (passed to `spawn_local` below) from before the
                // body first runs until after the coroutine has returned,
                // so the pointer is valid whenever the body runs. Saves
                // one reference count (two atomic operations) per spawn.
                root(unsafe { &*raw }, f)
            };
            hub.spawn_local(packet.clone(), self.stack_size, body)?;
            Ok(JoinHandle::new(packet))
        })
        .expect("greenio::spawn called outside a hub; start one with greenio::run")
    }

    /// Spawns the green thread on hub `index` of the current runtime. The
    /// closure crosses threads, so it must be `Send`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `index` is not a hub of this runtime.
    ///
    /// # Panics
    ///
    /// Panics outside a runtime.
    #[track_caller]
    pub fn spawn_on<F, T>(self, index: usize, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let site = self.site.unwrap_or(Location::caller());
        let rt = hub::current_runtime()
            .expect("greenio::spawn_on called outside a runtime; start one with greenio::run");
        let target = rt.hubs().get(index).cloned().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "greenio::spawn_on: hub {index} does not exist (this runtime has {})",
                    rt.hubs().len()
                ),
            )
        })?;
        if hub::current_shared().is_some_and(|cur| Arc::ptr_eq(&cur, &target)) {
            return self.spawn_site(site).spawn(f);
        }
        let packet = Arc::new(Packet::new(self.name, site, target.clone()));
        let p2 = packet.clone();
        let body: Box<dyn FnOnce() + Send> = Box::new(move || root(&p2, f));
        target.spawn_remote(packet.clone(), self.stack_size, body);
        Ok(JoinHandle::new(packet))
    }
}

/// The root of every green thread: run `f` unless cancelled first, catch
/// its panic or cancellation, publish the result.
pub(crate) fn root<F, T>(packet: &Packet<T>, f: F)
where
    F: FnOnce() -> T,
{
    let result = if packet.header.is_cancelled() {
        drop(f);
        Err(JoinError::Cancelled)
    } else {
        match panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(v) => Ok(v),
            Err(p) if p.is::<CancelUnwind>() => Err(JoinError::Cancelled),
            Err(p) if p.is::<TimeoutUnwind>() => {
                // A timeout scope's payload escaped its scope: cannot happen
                // through the public API; report it as a cancellation.
                Err(JoinError::Cancelled)
            }
            Err(p) => {
                log::error!(
                    "green thread {} panicked: {}",
                    packet.header.display_name(),
                    payload_str(p.as_ref()).unwrap_or("<non-string payload>")
                );
                Err(JoinError::Panicked(p))
            }
        }
    };
    crate::localmap::drop_green_locals(&packet.header.locals);
    if let Some(joiner) = packet.complete(result) {
        hub::fire(&joiner, NOTIFIED);
    }
}

/// Spawns a green thread on the current hub, like `std::thread::spawn`.
///
/// The closure runs on the calling hub's OS thread for its whole life, so
/// it needs no `Send` bound; its result crosses to the joiner, so `T: Send`.
///
/// # Panics
///
/// Panics outside [`run`](crate::run), or if no stack can be mapped (see
/// [`Builder::spawn`] for the fallible version).
///
/// # Examples
///
/// ```
/// greenio::run(|| {
///     let handles: Vec<_> = (0..10).map(|i| greenio::spawn(move || i * 2)).collect();
///     let sum: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
///     assert_eq!(sum, 90);
/// });
/// ```
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + 'static,
    T: Send + 'static,
{
    match Builder::new().spawn(f) {
        Ok(h) => h,
        Err(e) => panic!("greenio::spawn failed: {e}"),
    }
}

/// Spawns a green thread on hub `index` of the current runtime.
///
/// # Panics
///
/// Panics outside a runtime or if `index` is out of range.
///
/// # Examples
///
/// ```
/// let rt = greenio::Runtime::builder().hubs(2).build().unwrap();
/// rt.run(|| {
///     let h = greenio::spawn_on(1, || greenio::current().hub());
///     assert_eq!(h.join().unwrap(), 1);
/// });
/// ```
#[track_caller]
pub fn spawn_on<F, T>(index: usize, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match Builder::new().spawn_on(index, f) {
        Ok(h) => h,
        Err(e) => panic!("greenio::spawn_on failed: {e}"),
    }
}

/// Spawns a green thread on the hub with the fewest live green threads (at
/// spawn time only; it never moves afterwards).
///
/// # Panics
///
/// Panics outside a runtime.
///
/// # Examples
///
/// ```
/// let rt = greenio::Runtime::builder().hubs(2).build().unwrap();
/// rt.run(|| {
///     let hs: Vec<_> = (0..4).map(|_| greenio::spawn_balanced(|| greenio::current().hub())).collect();
///     let on: Vec<usize> = hs.into_iter().map(|h| h.join().unwrap()).collect();
///     assert!(on.contains(&1));
/// });
/// ```
#[track_caller]
pub fn spawn_balanced<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn_balanced_at(Location::caller(), f)
}

/// [`spawn_balanced`] recording `site` as the spawn site (for `Group`).
pub(crate) fn spawn_balanced_at<F, T>(site: &'static Location<'static>, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let rt = hub::current_runtime()
        .expect("greenio::spawn_balanced called outside a runtime; start one with greenio::run");
    let idx = rt
        .hubs()
        .iter()
        .enumerate()
        .min_by_key(|(_, h)| h.alive())
        .map_or(0, |(i, _)| i);
    match Builder::new().spawn_site(site).spawn_on(idx, f) {
        Ok(h) => h,
        Err(e) => panic!("greenio::spawn_balanced failed: {e}"),
    }
}

/// Suspends the calling green thread and lets every other ready green thread
/// run once before it continues (round-robin).
///
/// Outside a green thread it yields the OS thread.
///
/// # Examples
///
/// ```
/// greenio::run(|| {
///     let h = greenio::spawn(|| 1);
///     greenio::yield_now(); // the child runs to completion here
///     assert!(h.is_finished());
/// });
/// ```
pub fn yield_now() {
    if hub::with_hub(|h| h.try_yield()) != Some(true) {
        std::thread::yield_now();
    }
}

/// Puts the calling green thread to sleep for at least `d`; other green
/// threads run meanwhile. Outside a green thread it sleeps the OS thread.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// greenio::run(|| {
///     let t = Instant::now();
///     greenio::sleep(Duration::from_millis(5));
///     assert!(t.elapsed() >= Duration::from_millis(5));
/// });
/// ```
pub fn sleep(d: Duration) {
    let slept = hub::with_hub(|h| {
        if !h.in_green() {
            return false;
        }
        match crate::wait::deadline_after(d) {
            Some(deadline) => h.sleep_until(deadline),
            // Too far to represent: sleep a year at a time, forever.
            None => loop {
                h.sleep_until(std::time::Instant::now() + Duration::from_secs(86400 * 365));
            },
        }
        true
    });
    if slept != Some(true) {
        std::thread::sleep(d);
    }
}
