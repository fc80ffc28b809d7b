//! The storage behind `green_local!` (see `local.rs` for the design): one
//! small map per green thread (kept in its header) or OS thread. A leaf:
//! it knows nothing of hubs, so the task header can hold one.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};

use crate::unwind::{payload_str, CancelUnwind};

/// How many times the end of a green thread re-drops locals that its
/// destructors re-created before leaking the rest.
const DROP_ROUNDS: usize = 4;

struct Entry {
    /// The address of the `GreenLocal` static.
    key: usize,
    value: Box<dyn Any>,
}

/// One context's locals: a green thread's (in its header) or an OS
/// thread's (in `OS_LOCALS`).
#[derive(Default)]
pub(crate) struct Locals(RefCell<Vec<Entry>>);

impl fmt::Debug for Locals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.try_borrow().map_or(0, |v| v.len());
        f.debug_struct("Locals").field("len", &n).finish()
    }
}

// SAFETY: a green thread's `Locals` sits in its header, which is shared
// with other threads, but only that green thread reaches it (through the
// hub's current task, on the hub's OS thread, where the green thread lives
// for its whole life), and `drop_green_locals` empties it on that thread
// before the green thread ends. What other threads may later drop is an
// empty `Vec`. No `&Locals` method is ever called from another thread.
unsafe impl Send for Locals {}
// SAFETY: see `Send`: every access happens on the owning green thread.
unsafe impl Sync for Locals {}

impl Locals {
    /// The value for `key`, initialised by `init` on a miss. The pointer
    /// stays valid until the map is emptied (the end of the context).
    pub(crate) fn get_or_init<T: 'static>(&self, key: usize, init: fn() -> T) -> *const T {
        if let Some(p) = self.find::<T>(key) {
            return p;
        }
        // No borrow is held while `init` runs: it may use other locals.
        let value: Box<dyn Any> = Box::new(init());
        if let Some(p) = self.find::<T>(key) {
            // `init` itself initialised this key (recursion): keep the
            // first value, as every reference handed out points at it.
            drop(value);
            return p;
        }
        let p = value
            .downcast_ref::<T>()
            .map(|v| v as *const T)
            .expect("boxed just above with this type");
        self.0.borrow_mut().push(Entry { key, value });
        p
    }

    fn find<T: 'static>(&self, key: usize) -> Option<*const T> {
        let map = self.0.borrow();
        let e = map.iter().find(|e| e.key == key)?;
        Some(
            e.value
                .downcast_ref::<T>()
                .expect("a green_local key always holds its own type") as *const T,
        )
    }
}

/// Drops a green thread's locals; called once by its root, on its stack,
/// after its body returned or unwound and before its result is published.
#[inline]
pub(crate) fn drop_green_locals(locals: &Locals) {
    if locals.0.borrow().is_empty() {
        return;
    }
    drop_locals_slow(locals);
}

#[cold]
fn drop_locals_slow(locals: &Locals) {
    for _ in 0..DROP_ROUNDS {
        let taken = std::mem::take(&mut *locals.0.borrow_mut());
        if taken.is_empty() {
            return;
        }
        for entry in taken.into_iter().rev() {
            if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| drop(entry))) {
                if !p.is::<CancelUnwind>() {
                    log::error!(
                        target: "greenio",
                        "a green_local destructor panicked: {}",
                        payload_str(p.as_ref()).unwrap_or("<non-string payload>")
                    );
                }
            }
        }
    }
    let left = std::mem::take(&mut *locals.0.borrow_mut());
    if !left.is_empty() {
        log::warn!(
            target: "greenio",
            "green_local destructors keep re-creating {} locals; leaking them",
            left.len()
        );
        std::mem::forget(left);
    }
}
