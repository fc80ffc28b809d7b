//! Green-thread locals: `green_local!`, gevent's `gevent.local`.
//!
//! # Design
//!
//! Every green thread's header carries a small map (a `Vec` searched
//! linearly; a program has a handful of locals) from a key to a boxed
//! value. The key is the address of the `static` the macro declares, which
//! is unique and fixed for the life of the program. [`GreenLocal::with`]
//! finds the running green thread, looks its key up, runs the initialiser
//! on a miss and hands out a reference into the box.
//!
//! * The map is touched only by its own green thread, on its hub's OS
//!   thread: green threads never migrate, so values need not be `Send`.
//! * Values are boxed, so growing the map never moves one a reference
//!   points at; entries are removed only when the green thread ends, when
//!   no `with` call of it can be running.
//! * No borrow of the map is held while the initialiser or the caller's
//!   closure runs, so both may park, spawn, or use other locals.
//! * At the green thread's end its root takes the map out and drops the
//!   values, newest first, before the result is published: a joiner sees
//!   every destructor's effects. A destructor that touches a local that is
//!   gone re-creates it in a fresh map, which is dropped in turn (a few
//!   rounds at most, then the rest is leaked with a warning, as a
//!   destructor loop would otherwise never end).
//! * Outside any green thread (a plain OS thread, or a hub thread's
//!   callbacks) the same map lives in a `thread_local!` of the OS thread.
//!
//! # Rejected designs
//!
//! * *`std::thread_local!` swapped on every switch*: every context switch
//!   would pay for every local, used or not.
//! * *A `HashMap` keyed by `TypeId`*: two statics of one type would share a
//!   value.

use std::fmt;

use crate::hub;
use crate::localmap::Locals;

thread_local! {
    /// Locals of code that runs outside any green thread.
    static OS_LOCALS: Locals = Locals::default();
}

/// A key for a green-thread local value, declared with [`green_local!`](crate::green_local).
///
/// Each green thread that calls [`with`](GreenLocal::with) gets its own
/// value, initialised on its first use and dropped when that green thread
/// ends. Outside any green thread (a plain OS thread, or a hub's reactor
/// callbacks) the key behaves like a `thread_local!` of the OS thread.
///
/// # `green_local!` or `thread_local!`?
///
/// Every green thread of a hub runs on the hub's one OS thread, so a
/// `thread_local!` is shared by all of them: a request id, a per-connection
/// buffer or a database session stored there leaks from one connection's
/// green thread into the next one that runs. Use `green_local!` for state
/// that belongs to one flow of control (gevent's `gevent.local`): request
/// context, per-connection caches, a logging span. Keep `thread_local!` for
/// what really belongs to the OS thread, such as a per-hub cache shared by
/// its green threads on purpose; it is also cheaper (no lookup of the
/// running green thread).
///
/// Values need not be `Send`: a green thread never leaves its hub.
///
/// # Examples
///
/// ```
/// use std::cell::Cell;
///
/// greenio::green_local! {
///     static REQUESTS: Cell<u32> = Cell::new(0);
/// }
///
/// greenio::run(|| {
///     let h = greenio::spawn(|| {
///         REQUESTS.with(|n| n.set(n.get() + 5));
///         greenio::yield_now(); // main runs here with its own value
///         REQUESTS.with(Cell::get)
///     });
///     REQUESTS.with(|n| n.set(n.get() + 1));
///     assert_eq!(h.join().unwrap(), 5);
///     assert_eq!(REQUESTS.with(Cell::get), 1);
/// });
/// ```
pub struct GreenLocal<T: 'static> {
    init: fn() -> T,
}

impl<T: 'static> fmt::Debug for GreenLocal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GreenLocal").finish_non_exhaustive()
    }
}

impl<T: 'static> GreenLocal<T> {
    /// Used by [`green_local!`](crate::green_local); not part of the stable API.
    #[doc(hidden)]
    pub const fn new(init: fn() -> T) -> GreenLocal<T> {
        GreenLocal { init }
    }

    /// Runs `f` with the calling green thread's value, initialising it on
    /// first use; outside any green thread, with the OS thread's value.
    ///
    /// The initialiser and `f` may park, spawn and use other locals. An
    /// initialiser that recursively uses its own key gets a value
    /// initialised by the inner call; the outer call's value is dropped.
    ///
    /// # Panics
    ///
    /// Panics if called outside green threads while the OS thread is being
    /// torn down (from another thread-local's destructor), as
    /// `LocalKey::with` does.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::RefCell;
    ///
    /// greenio::green_local! {
    ///     static TRACE: RefCell<Vec<&'static str>> = RefCell::new(Vec::new());
    /// }
    ///
    /// TRACE.with(|t| t.borrow_mut().push("os thread"));
    /// greenio::run(|| {
    ///     TRACE.with(|t| t.borrow_mut().push("main green thread"));
    ///     assert_eq!(TRACE.with(|t| t.borrow().len()), 1);
    /// });
    /// assert_eq!(TRACE.with(|t| t.borrow().clone()), ["os thread"]);
    /// ```
    pub fn with<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&T) -> R,
    {
        let key = self as *const GreenLocal<T> as usize;
        let ptr = match hub::with_current_task(|_, t| t.header().locals.get_or_init(key, self.init))
        {
            Some(ptr) => ptr,
            None => OS_LOCALS
                .try_with(|l| l.get_or_init(key, self.init))
                .expect(
                "greenio: a green_local used outside green threads while its OS thread is exiting",
            ),
        };
        // SAFETY: `ptr` points into a boxed value of the current context's
        // map. Boxes never move, and entries are removed only when the
        // context ends (the green thread's root after its body; the OS
        // thread's thread-local destructor), which cannot happen while this
        // call, made from that context, is running. The value is only ever
        // shared (`&T`), never borrowed mutably.
        f(unsafe { &*ptr })
    }
}

/// Declares green-thread locals: one value per green thread, the shape of
/// `std::thread_local!`.
///
/// ```text
/// green_local! {
///     static NAME: Type = initialiser;
///     pub static OTHER: Type = initialiser;
/// }
/// ```
///
/// Each `NAME` is a [`GreenLocal`]; read it with
/// [`NAME.with(|v| ...)`](GreenLocal::with). The initialiser runs lazily,
/// on a green thread's first `with`, and the value is dropped when that
/// green thread ends. Outside green threads the value is per OS thread.
/// See [`GreenLocal`] for when to prefer it over `thread_local!`.
///
/// # Examples
///
/// ```
/// use std::cell::Cell;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// static INITS: AtomicUsize = AtomicUsize::new(0);
///
/// greenio::green_local! {
///     static ID: Cell<u64> = {
///         INITS.fetch_add(1, Ordering::Relaxed);
///         Cell::new(0)
///     };
/// }
///
/// greenio::run(|| {
///     let hs: Vec<_> = (1..=3)
///         .map(|i| {
///             greenio::spawn(move || {
///                 ID.with(|id| id.set(i));
///                 greenio::yield_now();
///                 ID.with(Cell::get)
///             })
///         })
///         .collect();
///     let ids: Vec<u64> = hs.into_iter().map(|h| h.join().unwrap()).collect();
///     assert_eq!(ids, [1, 2, 3]);
///     assert_eq!(INITS.load(Ordering::Relaxed), 3); // main never used ID
/// });
/// ```
#[macro_export]
macro_rules! green_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident : $t:ty = $init:expr; $($rest:tt)*) => {
        $crate::green_local!($(#[$attr])* $vis static $name: $t = $init);
        $crate::green_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident : $t:ty = $init:expr) => {
        $(#[$attr])*
        $vis static $name: $crate::GreenLocal<$t> = {
            fn __greenio_init() -> $t {
                $init
            }
            $crate::GreenLocal::new(__greenio_init)
        };
    };
}
