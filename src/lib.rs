//! greenio: gevent for Rust. Green threads that switch stacks around
//! socket calls that look blocking but park on a mio event loop.
//!
//! This facade re-exports [`greenio_runtime`] (hubs, green threads, timers,
//! sync) and [`greenio_net`] (sockets, servers, the callback reactor) as
//! `greenio::net`.
//!
//! ```
//! let answer = greenio::run(|| greenio::spawn(|| 42).join().unwrap());
//! assert_eq!(answer, 42);
//! ```
#![deny(missing_docs, missing_debug_implementations)]

// The README's examples are compiled as doctests of the facade.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use greenio_net as net;
pub use greenio_runtime::*;
