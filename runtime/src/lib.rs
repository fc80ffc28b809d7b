//! greenio's runtime: hubs, green threads, stacks, timers, parking,
//! cancellation, timeouts, the blocking pool and sync primitives.
//!
//! Most users depend on the `greenio` facade crate, which re-exports all of
//! this together with the sockets of `greenio-net`.
//!
//! # A first example
//!
//! ```
//! use std::time::Duration;
//!
//! let total = greenio::run(|| {
//!     let workers: Vec<_> = (1..=3)
//!         .map(|i| {
//!             greenio::spawn(move || {
//!                 greenio::sleep(Duration::from_millis(10 * i));
//!                 i * 100
//!             })
//!         })
//!         .collect();
//!     workers.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
//! });
//! assert_eq!(total, 600);
//! ```
//!
//! The three green threads sleep concurrently on one OS thread: the whole
//! run takes about 30 ms, not 60.
//!
//! # Model
//!
//! * A **hub** is one OS thread running an event loop ([`run`],
//!   [`Runtime`]). A **green thread** ([`spawn`], [`Builder`]) lives on one
//!   hub for its whole life and switches only where it parks: socket calls,
//!   [`sleep`], [`yield_now`], [`park`], joins and sync primitives.
//! * Cancellation ([`JoinHandle::cancel`]) and [`timeout`] unwind the target
//!   from its park point, running destructors.
//! * [`unblock`] moves blocking calls to a thread pool. A green thread that
//!   blocks its hub anyway is reported while it does by the watchdog
//!   ([`RuntimeBuilder::max_blocking_time`], default 100 ms), naming its
//!   spawn site; one whose operations never need to park yields after a
//!   budget of 128 of them, so it cannot starve timers and neighbours.
//!   [`dump`] (also on a signal: [`RuntimeBuilder::dump_on_signal`]) shows
//!   every green thread's state, stack high-water mark and spawn site.
//! * [`wait::Waiter`] and [`io::Registration`] are the building blocks for
//!   new primitives and new kinds of sockets.
//! * [`block_on`] runs a future on the calling green thread, and a
//!   [`JoinHandle`] is itself a future; [`green_local!`] declares values
//!   that are per green thread, where `thread_local!` is per hub.
//!
//! # Async libraries
//!
//! Libraries generic over `std::io::Read`/`Write` (rustls' `StreamOwned`,
//! tungstenite, httparse) work on greenio's sockets as they are. An async
//! library runs through [`block_on`]: a future that needs no reactor (an
//! async channel, a computation, [`JoinHandle`]s) is polled right on the
//! green thread; one that needs tokio's reactor (a tokio socket or timer)
//! runs on a tokio runtime kept on a side OS thread, and the green thread
//! awaits the task: the facade crate's docs (`greenio`) show it compiled
//! and run, as does `examples/async_bridge.rs`.
//!
//! Each such call costs a hop to the tokio thread and one cross-thread
//! wakeup back. `cargo run --release --example async_bridge -- --measure
//! 20000` measures it; on a busy 2-core machine (load 4) a call that does
//! nothing on the tokio side cost 8 to 13 us, a ping to a plain OS thread
//! and back (a wakeup each way) 7 to 11 us, and a request/reply over
//! loopback through a tokio client 36 to 45 us. Batch work into one task
//! where calls are small.
#![deny(missing_docs, missing_debug_implementations)]
#![warn(clippy::undocumented_unsafe_blocks)]

// Layers, bottom up; a file imports only from its own layer's leaves or
// from below (see the essay in hub.rs).
// Leaves:
#[macro_use]
mod sys;
mod blocking;
mod chunk;
mod coop;
mod localmap;
mod misuse;
mod park;
mod runq;
mod stack;
mod timer;
mod unwind;
// Core:
mod iotable;
mod shared;
mod slab;
mod task;
// The hub loop, and the green thread's half of a switch:
mod deadlock;
mod hub;
mod parking;
// Public API:
mod block_on;
mod green;
mod introspect;
pub mod io;
mod local;
mod timeout;
mod unblock;
pub mod wait;
// On top:
mod group;
pub mod signal;
pub mod sync;
// Entry points: the monitor thread (watchdog, dump on signal; uses the
// signal registry) and the runtime, which builds the hubs and starts it.
mod runtime;
mod watchdog;

pub use block_on::block_on;
pub use green::{
    current, park, sleep, spawn, spawn_balanced, spawn_on, yield_now, Builder, GreenThread,
    JoinHandle, Unparker,
};
pub use group::Group;
pub use introspect::{dump, stack_size, stats, Dump, Stats, ThreadInfo, ThreadState};
pub use local::GreenLocal;
pub use misuse::Misuse;
pub use runtime::{hub_count, run, Runtime, RuntimeBuilder};
pub use stack::DEFAULT_STACK_SIZE;
pub use task::JoinError;
pub use timeout::{timeout, timeout_at, Elapsed};
pub use unblock::unblock;
pub use unwind::payload_str;
