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
//!
//! # Async libraries that need tokio
//!
//! A library built on tokio's reactor (a tokio socket or timer) runs on a
//! tokio runtime kept on a side OS thread; a green thread hands it a task
//! and awaits the task's `JoinHandle` with [`block_on`], which parks only
//! that green thread until tokio's worker wakes it:
//!
//! ```
//! # fn main() -> std::io::Result<()> {
//! let tokio_rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! let handle = tokio_rt.handle().clone();
//! std::thread::spawn(move || tokio_rt.block_on(std::future::pending::<()>()));
//!
//! greenio::run(|| {
//!     let task = handle.spawn(async {
//!         tokio::time::sleep(std::time::Duration::from_millis(1)).await;
//!         "done by tokio"
//!     });
//!     assert_eq!(greenio::block_on(task).unwrap(), "done by tokio");
//! });
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs, missing_debug_implementations)]

// The README's examples are compiled as doctests of the facade.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use greenio_net as net;
pub use greenio_runtime::*;
