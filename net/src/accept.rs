//! One policy for `accept(2)` errors, shared by both accept loops: the
//! green acceptor of [`Server`](crate::Server) and the reactor's
//! [`Listener`](crate::reactor::Listener).
//!
//! | error                                      | [`AcceptError`] | what a loop does                 |
//! |--------------------------------------------|-----------------|----------------------------------|
//! | `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`    | `BackOff`       | log, sleep [`Backoff`] (1, 2, 4... ms up to 100 ms), retry |
//! | `ECONNABORTED`, `ECONNRESET`, `EINTR`, `EPROTO` and the network errors accept(2) says to retry | `Retry` | accept the next one at once |
//! | anything else (`EBADF`, `EINVAL`...)       | `Fatal`         | the listener is broken           |
//!
//! Out of descriptors, the pending connection stays in the kernel's backlog
//! and the listener stays readable, so a loop that retried at once would
//! spin on a core doing nothing; the sleep gives other connections time to
//! close. The sleep doubles while the error lasts, so a short shortage is
//! over in a millisecond and a long one costs ten wake-ups a second.
//!
//! Rejected: a fixed pause (the reactor's former 50 ms) leaves a listener
//! idle for 50 ms after a one-connection shortage, and still wakes twenty
//! times a second through a long one. Retrying `ENETDOWN` and `ETIMEDOUT`
//! after a back-off (the reactor's former rule) delays the next healthy
//! connection for an error that concerned only the one being accepted:
//! accept(2) lists them among the pending network errors to retry like
//! `EAGAIN`.

use std::io;
use std::time::Duration;

/// What an `accept` error means for the loop; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcceptError {
    /// About one connection only, or a signal: accept the next one at once.
    Retry,
    /// Out of a resource: sleep (see [`Backoff`]), then retry.
    BackOff,
    /// The listener itself is broken: retrying cannot help.
    Fatal,
}

/// Classifies an error of `accept` other than `WouldBlock`.
pub(crate) fn classify(e: &io::Error) -> AcceptError {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => AcceptError::BackOff,
        // accept(2): "Linux accept() passes already-pending network errors
        // on the new socket as an error code from accept() ... should
        // detect [them] and treat them like EAGAIN by retrying."
        Some(
            libc::ECONNABORTED
            | libc::ECONNRESET
            | libc::EINTR
            | libc::EPROTO
            | libc::EPERM
            | libc::ENETDOWN
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::ENONET
            | libc::EHOSTUNREACH
            | libc::EOPNOTSUPP
            | libc::ENETUNREACH
            | libc::ETIMEDOUT,
        ) => AcceptError::Retry,
        _ => match e.kind() {
            io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset => AcceptError::Retry,
            _ => AcceptError::Fatal,
        },
    }
}

/// The back-off of an accept loop out of resources: 1 ms, doubling up to
/// 100 ms while the shortage lasts, back to 1 ms after a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// The sleep [`Backoff::next_sleep`] returns next.
    next: Duration,
}

impl Backoff {
    /// First sleep after a success.
    pub(crate) const MIN: Duration = Duration::from_millis(1);
    /// Longest sleep.
    pub(crate) const MAX: Duration = Duration::from_millis(100);

    /// A back-off that starts at [`Backoff::MIN`].
    pub(crate) const fn new() -> Backoff {
        Backoff { next: Self::MIN }
    }

    /// The sleep before the next try; doubles the one after it, up to
    /// [`Backoff::MAX`].
    pub(crate) fn next_sleep(&mut self) -> Duration {
        let sleep = self.next;
        self.next = (sleep * 2).min(Self::MAX);
        sleep
    }

    /// An accept succeeded: the next shortage starts at [`Backoff::MIN`].
    pub(crate) fn reset(&mut self) {
        self.next = Self::MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_errors_back_off_pending_network_errors_retry_the_rest_is_fatal() {
        let os = io::Error::from_raw_os_error;
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert_eq!(classify(&os(errno)), AcceptError::BackOff, "errno {errno}");
        }
        for errno in [
            libc::ECONNABORTED,
            libc::EINTR,
            libc::EPROTO,
            libc::ENETDOWN,
            libc::ETIMEDOUT,
            libc::EHOSTUNREACH,
        ] {
            assert_eq!(classify(&os(errno)), AcceptError::Retry, "errno {errno}");
        }
        for errno in [libc::EBADF, libc::EINVAL, libc::ENOTSOCK] {
            assert_eq!(classify(&os(errno)), AcceptError::Fatal, "errno {errno}");
        }
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(classify(&aborted), AcceptError::Retry);
        assert_eq!(classify(&io::Error::other("?")), AcceptError::Fatal);
    }

    #[test]
    fn backoff_doubles_from_1_ms_to_100_ms_and_resets() {
        let mut b = Backoff::new();
        let sleeps: Vec<u128> = (0..9).map(|_| b.next_sleep().as_millis()).collect();
        assert_eq!(sleeps, [1, 2, 4, 8, 16, 32, 64, 100, 100]);
        b.reset();
        assert_eq!(b.next_sleep(), Backoff::MIN);
    }
}
