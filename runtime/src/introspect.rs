//! `stats()` and `dump()`: what a hub is doing, for logs and debugging.

use std::fmt;
use std::time::Duration;

use std::panic::Location;
use std::time::Instant;

use crate::hub::{self, Hub, Stats};
pub use crate::slab::ThreadState;

/// One green thread in a [`Dump`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadInfo {
    /// Its unique id.
    pub id: u64,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// Where it was spawned.
    pub spawn_site: &'static Location<'static>,
    /// Running, ready, not started or parked.
    pub state: ThreadState,
    /// What it waits on (`"sleep"`, `"socket read"`, `"channel recv"`...).
    pub waits_on: Option<&'static str>,
    /// How long it has been in that state.
    pub waiting_for: Duration,
}

/// Every green thread of a hub; `Display` prints one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dump {
    /// The hub's index.
    pub hub: usize,
    /// Its green threads, by id.
    pub threads: Vec<ThreadInfo>,
}

impl fmt::Display for Dump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "hub {}: {} green threads", self.hub, self.threads.len())?;
        for t in &self.threads {
            write!(
                f,
                "  #{:<6} {:<16} {:<11}",
                t.id,
                t.name.as_deref().unwrap_or("-"),
                format!("{:?}", t.state)
            )?;
            if let Some(w) = t.waits_on {
                write!(f, " on {w:<14}")?;
            }
            write!(f, " for {:.3}s", t.waiting_for.as_secs_f64())?;
            writeln!(f, "  spawned at {}", t.spawn_site)?;
        }
        Ok(())
    }
}

/// Counters of the calling thread's hub.
///
/// # Panics
///
/// Panics outside a hub.
///
/// # Examples
///
/// ```
/// greenio::run(|| {
///     greenio::spawn(|| ()).join().unwrap();
///     let s = greenio::stats();
///     assert!(s.spawned >= 2); // main and the child
///     assert!(s.switches >= 2);
/// });
/// ```
pub fn stats() -> Stats {
    hub::with_hub(|h| h.stats())
        .expect("greenio::stats called outside a hub; start one with greenio::run")
}

/// Every green thread of the calling thread's hub: id, name, state, what it
/// waits on and for how long.
///
/// # Panics
///
/// Panics outside a hub.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// greenio::run(|| {
///     let _h = greenio::Builder::new()
///         .name("sleeper")
///         .spawn(|| greenio::sleep(Duration::from_secs(60)))
///         .unwrap();
///     greenio::yield_now();
///     let d = greenio::dump();
///     let s = d.threads.iter().find(|t| t.name.as_deref() == Some("sleeper")).unwrap();
///     assert_eq!(s.waits_on, Some("sleep"));
///     println!("{d}");
/// });
/// ```
pub fn dump() -> Dump {
    hub::with_hub(dump_hub)
        .expect("greenio::dump called outside a hub; start one with greenio::run")
}

/// The default stack size of the calling thread's hub, if on one.
pub fn stack_size() -> Option<usize> {
    hub::with_hub(|h| h.stack_size())
}

/// Every green thread of `hub`, by id.
pub(crate) fn dump_hub(hub: &Hub) -> Dump {
    let now = Instant::now();
    let mut threads = Vec::new();
    hub.for_each_slot(|s| {
        let h = s.header();
        let state = s.state.get();
        threads.push(ThreadInfo {
            id: h.id,
            name: h.name.as_deref().map(str::to_owned),
            spawn_site: h.site,
            state,
            waits_on: (state != ThreadState::Running).then_some(s.reason.get().what),
            waiting_for: now.saturating_duration_since(s.since.get()),
        });
    });
    threads.sort_by_key(|t| t.id);
    Dump {
        hub: hub.shared.index,
        threads,
    }
}
