//! Green threads: spawning, joining, cancelling, naming.
//!
//! A green thread is a corosensei coroutine on a pooled stack plus one
//! reference-counted *packet* shared with its [`JoinHandle`]: the packet
//! holds the [`Header`] (identity, park word, cancel flag, join state) and
//! the slot the result is written to. The hub keeps the coroutine in its
//! task slab; nothing else may resume it.
//!
//! Join protocol (lock-free, one joiner at most since `join` takes `self`):
//! the joiner stores its [`Waiter`] in the header and sets `JOINER`; the
//! finishing thread writes the result, sets `FINISHED`, and wakes the joiner
//! if `JOINER` was set. Whichever flag lands second sees the other.

use std::any::Any;
use std::cell::UnsafeCell;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::hub::{self, HubShared};
use crate::wait::{ParkWord, WaitReason, Waiter, Wake};

/// Set by [`JoinHandle::cancel`]; sticky.
const CANCEL: u8 = 1;
/// The result slot is written and final.
const FINISHED: u8 = 2;
/// A joiner stored its waiter in `Header::joiner`.
const JOINER: u8 = 4;
/// A `JoinHandle` polled as a future stored its waker in
/// `Header::async_joiner`. // interop hook (issue 13)
const ASYNC_JOINER: u8 = 8;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What every green thread shares with its handles, whatever its result type.
pub(crate) struct Header {
    /// Unique id, never reused in the process.
    pub(crate) id: u64,
    /// Name given through [`Builder::name`].
    pub(crate) name: Option<Box<str>>,
    /// The hub it lives on for its whole life.
    pub(crate) hub: Arc<HubShared>,
    /// Index in that hub's task slab; written once by the hub on insert,
    /// before the green thread first runs.
    pub(crate) slot: AtomicU32,
    /// The park word (see [`crate::wait`]).
    pub(crate) word: ParkWord,
    /// `CANCEL | FINISHED | JOINER`.
    flags: AtomicU8,
    /// The joiner's waiter; written by the joiner before it sets `JOINER`,
    /// read by the finisher after it sees `JOINER`.
    joiner: UnsafeCell<Option<Waiter>>,
    /// Token for [`park`]/[`Unparker::unpark`].
    unpark_token: AtomicBool,
    /// The `seq` of the wait a [`park`] call is in, 0 if none.
    user_park_seq: AtomicU64,
    /// The waker of a `JoinHandle` polled as a future (`block_on.rs`);
    /// replaced by each poll, taken by `complete` when it sees
    /// `ASYNC_JOINER`. // interop hook (issue 13)
    async_joiner: std::sync::Mutex<Option<std::task::Waker>>,
    /// This green thread's `green_local!` values (`local.rs`); touched only
    /// by the green thread itself, emptied by `root`. // interop hook (issue 13)
    pub(crate) locals: crate::local::Locals,
}

impl Header {
    pub(crate) fn new(name: Option<String>, hub: Arc<HubShared>) -> Header {
        Header {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name: name.map(String::into_boxed_str),
            hub,
            slot: AtomicU32::new(u32::MAX),
            word: ParkWord::default(),
            flags: AtomicU8::new(0),
            joiner: UnsafeCell::new(None),
            unpark_token: AtomicBool::new(false),
            user_park_seq: AtomicU64::new(0),
            async_joiner: std::sync::Mutex::new(None), // interop hook (issue 13)
            locals: crate::local::Locals::default(),   // interop hook (issue 13)
        }
    }

    /// Registers `waker` to be woken when the green thread finishes;
    /// `true` if it already has. Both sides set their flag with one
    /// read-modify-write on `flags`, so whichever lands second sees the
    /// other (as in `join`). // interop hook (issue 13)
    pub(crate) fn poll_finished(&self, waker: &std::task::Waker) -> bool {
        if self.is_finished() {
            return true;
        }
        {
            let mut slot = self
                .async_joiner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
                *slot = Some(waker.clone());
            }
        }
        self.flags.fetch_or(ASYNC_JOINER, Ordering::AcqRel) & FINISHED != 0
    }

    /// Makes the green thread runnable for wait `seq` after a won fire.
    #[inline]
    pub(crate) fn schedule(&self, seq: u64) {
        self.hub.schedule(self.slot.load(Ordering::Acquire), seq);
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.flags.load(Ordering::Acquire) & CANCEL != 0
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.flags.load(Ordering::Acquire) & FINISHED != 0
    }

    pub(crate) fn display_name(&self) -> String {
        match &self.name {
            Some(n) => format!("'{n}' (id {})", self.id),
            None => format!("id {}", self.id),
        }
    }
}

/// A green thread as the hub and waiters see it: its header, type-erased.
pub(crate) trait Task: Send + Sync + 'static {
    fn header(&self) -> &Header;
    /// Finishes a green thread that could not start (no stack).
    fn fail(&self, err: JoinError);
}

/// Header plus the typed result slot.
pub(crate) struct Packet<T> {
    pub(crate) header: Header,
    result: UnsafeCell<Option<Result<T, JoinError>>>,
}

// SAFETY: the result slot is written once by the green thread before it sets
// FINISHED (release) and read once by the joiner after it observes FINISHED
// (acquire), so accesses never overlap; `T: Send` lets the value cross to the
// joiner's thread. The joiner cell follows the same publish protocol.
unsafe impl<T: Send> Sync for Packet<T> {}
// SAFETY: as above; every field is Send when T is.
unsafe impl<T: Send> Send for Packet<T> {}

impl<T: Send + 'static> Task for Packet<T> {
    fn header(&self) -> &Header {
        &self.header
    }

    fn fail(&self, err: JoinError) {
        self.complete(Err(err));
    }
}

/// Fails a green thread whose stack could not be mapped on its hub.
pub(crate) fn fail_spawn(task: &Arc<dyn Task>, e: io::Error) {
    task.fail(JoinError::Panicked(Box::new(e.to_string())));
}

impl<T> Packet<T> {
    pub(crate) fn new(name: Option<String>, hub: Arc<HubShared>) -> Packet<T> {
        Packet {
            header: Header::new(name, hub),
            result: UnsafeCell::new(None),
        }
    }

    /// Stores the result and wakes the joiner. Called once, by the green
    /// thread itself at its root.
    pub(crate) fn complete(&self, result: Result<T, JoinError>) {
        // SAFETY: FINISHED is not set yet, so no joiner reads the slot; only
        // this green thread writes it, once.
        unsafe { *self.result.get() = Some(result) };
        let prev = self.header.flags.fetch_or(FINISHED, Ordering::AcqRel);
        if prev & JOINER != 0 {
            // SAFETY: the joiner wrote the cell before setting JOINER
            // (release), which we observed (acquire); it never touches the
            // cell again once JOINER is set.
            if let Some(w) = unsafe { (*self.header.joiner.get()).take() } {
                w.wake();
            }
        }
        if prev & ASYNC_JOINER != 0 {
            // interop hook (issue 13): wake a `JoinHandle` awaited as a future.
            let waker = self
                .header
                .async_joiner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    /// Takes the result once FINISHED is observed.
    pub(crate) fn take_result(&self) -> Result<T, JoinError> {
        debug_assert!(self.header.is_finished());
        // SAFETY: FINISHED was observed with acquire ordering, so the write
        // in `complete` happened before; `join` consumes the only handle.
        unsafe { (*self.result.get()).take() }.unwrap_or(Err(JoinError::Cancelled))
    }
}

/// Panic payload used to unwind a cancelled green thread. Private: user code
/// cannot construct it, and the root recognises it.
pub(crate) struct CancelUnwind;

/// Why [`JoinHandle::join`] has no value.
pub enum JoinError {
    /// The green thread panicked; the payload is the panic's.
    Panicked(Box<dyn Any + Send + 'static>),
    /// The green thread was cancelled before it returned.
    Cancelled,
}

impl JoinError {
    /// Whether the green thread was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JoinError::Cancelled)
    }

    /// Whether the green thread panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, JoinError::Panicked(_))
    }

    /// The panic message, if the payload is a string.
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            JoinError::Panicked(p) => payload_str(p.as_ref()),
            JoinError::Cancelled => None,
        }
    }

    /// The panic payload, to re-raise it with `std::panic::resume_unwind`.
    ///
    /// # Panics
    ///
    /// Panics if the green thread was cancelled rather than panicking.
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        match self {
            JoinError::Panicked(p) => p,
            JoinError::Cancelled => panic!("JoinError::into_panic on a cancelled green thread"),
        }
    }
}

pub(crate) fn payload_str(p: &(dyn Any + Send)) -> Option<&str> {
    p.downcast_ref::<&'static str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(p) => f
                .debug_tuple("Panicked")
                .field(&payload_str(p.as_ref()).unwrap_or("<non-string payload>"))
                .finish(),
            JoinError::Cancelled => f.write_str("Cancelled"),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(p) => match payload_str(p.as_ref()) {
                Some(m) => write!(f, "green thread panicked: {m}"),
                None => f.write_str("green thread panicked"),
            },
            JoinError::Cancelled => f.write_str("green thread was cancelled"),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for io::Error {
    fn from(e: JoinError) -> io::Error {
        io::Error::other(e.to_string())
    }
}

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
    pub(crate) packet: Arc<Packet<T>>, // interop hook (issue 13): pub(crate) for block_on.rs
    _not_clone: PhantomData<T>,
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
        JoinHandle {
            packet,
            _not_clone: PhantomData,
        }
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
        let h = &self.packet.header;
        if !h.is_finished() {
            let same_hub = hub::current_shared().is_some_and(|s| Arc::ptr_eq(&s, &h.hub));
            let reason = if same_hub {
                WaitReason::local("join")
            } else {
                WaitReason::sync("join")
            };
            let w = Waiter::prepare();
            // SAFETY: JOINER is not set yet, so the finisher does not read
            // the cell; we are its only writer (join consumes the handle).
            unsafe { *h.joiner.get() = Some(w.clone()) };
            let prev = h.flags.fetch_or(JOINER, Ordering::AcqRel);
            if prev & FINISHED == 0 {
                while w.wait(None, reason) != Wake::Notified {}
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
        cancel_task(&(self.packet.clone() as Arc<dyn Task>));
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

pub(crate) fn cancel_task(task: &Arc<dyn Task>) {
    let h = task.header();
    let prev = h.flags.fetch_or(CANCEL, Ordering::AcqRel);
    if prev & (CANCEL | FINISHED) != 0 {
        return;
    }
    h.hub.interrupt(task.clone());
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
        cancel_task(&self.task);
    }

    /// The unique id (never reused within the process).
    pub fn id(&self) -> u64 {
        self.task.header().id
    }

    /// The name given through [`Builder::name`].
    pub fn name(&self) -> Option<&str> {
        self.task.header().name.as_deref()
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
        if seq != 0 && h.word.fire(seq, crate::wait::NOTIFIED) {
            h.schedule(seq);
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
    let task = hub::with_current_task(|_, t| t.clone())
        .expect("greenio::park() called outside a green thread; start one with greenio::run");
    let h = task.header();
    if h.unpark_token.swap(false, Ordering::SeqCst) {
        return;
    }
    let w = Waiter::prepare();
    h.user_park_seq.store(w.seq(), Ordering::SeqCst);
    if h.unpark_token.swap(false, Ordering::SeqCst) {
        h.user_park_seq.store(0, Ordering::SeqCst);
        w.cancel();
        return;
    }
    struct Reset<'a>(&'a Header);
    impl Drop for Reset<'_> {
        fn drop(&mut self) {
            self.0.user_park_seq.store(0, Ordering::SeqCst);
        }
    }
    let _reset = Reset(h);
    w.wait(None, WaitReason::local("park"));
    h.unpark_token.store(false, Ordering::SeqCst);
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
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + 'static,
        T: Send + 'static,
    {
        let hub = hub::current_hub_ptr()
            .expect("greenio::spawn called outside a hub; start one with greenio::run");
        // SAFETY: the pointer comes from this thread's current-hub slot,
        // which is only set while the hub is alive on this thread.
        let hub = unsafe { &*hub };
        let packet = Arc::new(Packet::new(self.name, hub.shared.clone()));
        hub.spawn_local(packet.clone(), self.stack_size, f)?;
        Ok(JoinHandle::new(packet))
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
    pub fn spawn_on<F, T>(self, index: usize, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
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
        if let Some(cur) = hub::current_hub_ptr() {
            // SAFETY: see `spawn`.
            let cur = unsafe { &*cur };
            if Arc::ptr_eq(&cur.shared, &target) {
                return self.spawn(f);
            }
        }
        let packet = Arc::new(Packet::new(self.name, target.clone()));
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
            Err(p) if p.is::<crate::timeout::TimeoutUnwind>() => {
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
    crate::local::drop_green_locals(&packet.header.locals); // interop hook (issue 13)
    packet.complete(result);
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
    if !hub::yield_current() {
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
    if !hub::in_green_thread() {
        std::thread::sleep(d);
        return;
    }
    match crate::wait::deadline_after(d) {
        Some(deadline) => crate::wait::sleep_until(deadline),
        None => loop {
            crate::wait::sleep_until(std::time::Instant::now() + Duration::from_secs(86400 * 365));
        },
    }
}
