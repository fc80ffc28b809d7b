//! The private payloads that unwind a green thread out of a park point.
//!
//! Cancellation ([`JoinHandle::cancel`](crate::JoinHandle::cancel)) and an
//! expired [`timeout`](crate::timeout) scope make the next (or current)
//! park point call `std::panic::resume_unwind` with one of these. They are
//! crate-private types, so user code can neither build nor catch them by
//! type; the green thread's root and the scope recognise them.
//! `resume_unwind` skips the panic hook, so no "panicked at" line is
//! printed for an ordinary cancel.

use std::any::Any;

/// Unwinds a cancelled green thread; caught at its root.
pub(crate) struct CancelUnwind;

/// Unwinds out of the timeout scope numbered `.0`; caught by that scope.
pub(crate) struct TimeoutUnwind(pub(crate) u64);

/// The message of a panic payload, if it is a string.
///
/// `panic!("...")` payloads are `&'static str` or `String`; anything else
/// (a `resume_unwind` of a custom value) has no text.
pub fn payload_str(p: &(dyn Any + Send)) -> Option<&str> {
    p.downcast_ref::<&'static str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
}
