//! `stats()` and `dump()`: what a hub is doing, for logs and debugging.

use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use std::panic::Location;
use std::time::Instant;

use crate::hub::{self, Hub};
pub use crate::slab::ThreadState;

/// Counters of one hub, see [`stats`](crate::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Index of the hub these counters belong to.
    pub hub: usize,
    /// Green threads alive on this hub now.
    pub alive: usize,
    /// Green threads spawned on this hub so far.
    pub spawned: u64,
    /// Context switches into green threads so far.
    pub switches: u64,
    /// Calls to the poller (`epoll_wait`) so far.
    pub polls: u64,
    /// Timers armed now (sleeps, deadlines, timeout scopes).
    pub timers: usize,
    /// Stacks kept in the pool for reuse.
    pub pooled_stacks: usize,
    /// Sockets registered with this hub now.
    pub registered_io: usize,
    /// Times the blocking watchdog found this hub stalled (see
    /// [`RuntimeBuilder::max_blocking_time`](crate::RuntimeBuilder::max_blocking_time)).
    pub stalls: u64,
    /// The most stack, in bytes, any green thread of this hub was seen to
    /// touch (live ones and pooled stacks, checked by each `stats` and
    /// `dump` call): pick `stack_size` from it.
    pub max_stack_used: usize,
}

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
    /// Bytes of its stack touched so far (a high-water mark, which counts
    /// earlier green threads that used the same pooled stack); `None` if it
    /// has not started and has no stack yet.
    pub stack_used: Option<usize>,
    /// The usable size of its stack in bytes (0 before it has one).
    pub stack_size: usize,
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
            if let Some(used) = t.stack_used {
                write!(
                    f,
                    "  stack {}K/{}K",
                    used.div_ceil(1024),
                    t.stack_size / 1024
                )?;
            }
            writeln!(f, "  spawned at {}", t.spawn_site)?;
        }
        Ok(())
    }
}

/// Counters of the calling thread's hub. Each call also checks every
/// stack of the hub for [`Stats::max_stack_used`] (one `mincore` call per
/// live green thread and pooled stack).
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
///     assert!(s.max_stack_used > 0); // main's stack, at least
/// });
/// ```
pub fn stats() -> Stats {
    hub::with_hub(|h| {
        let mut s = stats_of(h);
        let mut most = h.stacks.borrow().max_touched();
        h.for_each_slot(|slot| most = most.max(slot.stack.get().touched().unwrap_or(0)));
        s.max_stack_used = raise_high_water(h, most);
        s
    })
    .expect("greenio::stats called outside a hub; start one with greenio::run")
}

/// Records `seen` in the hub's high-water mark; returns the mark.
fn raise_high_water(h: &Hub, seen: usize) -> usize {
    let prev = h.shared.stack_high_water.fetch_max(seen, Ordering::Relaxed);
    prev.max(seen)
}

/// Every green thread of the calling thread's hub: id, name, state, what it
/// waits on and for how long, how much of its stack it has touched, and
/// where it was spawned. `Display` prints one line each:
///
/// ```text
/// hub 0: 2 green threads
///   #1      main             Running     for 0.000s  stack 8K/128K  spawned at src/main.rs:3:5
///   #2      sleeper          Parked      on sleep           for 0.000s  stack 4K/128K  spawned at src/main.rs:6:10
/// ```
///
/// The stack figure is a high-water mark read from the kernel on demand
/// (see [`ThreadInfo::stack_used`]); [`stats`] keeps the largest seen.
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
    let mut most = 0;
    hub.for_each_slot(|s| {
        let h = s.header();
        let state = s.state.get();
        let stack = s.stack.get();
        let stack_used = stack.touched();
        most = most.max(stack_used.unwrap_or(0));
        threads.push(ThreadInfo {
            id: h.id,
            name: h.name.as_deref().map(str::to_owned),
            spawn_site: h.site,
            state,
            waits_on: (state != ThreadState::Running).then_some(s.reason.get().what),
            waiting_for: now.saturating_duration_since(s.since.get()),
            stack_used,
            stack_size: stack.size,
        });
    });
    raise_high_water(hub, most);
    threads.sort_by_key(|t| t.id);
    Dump {
        hub: hub.shared.index,
        threads,
    }
}

/// The hub's counters.
pub(crate) fn stats_of(hub: &Hub) -> Stats {
    Stats {
        hub: hub.shared.index,
        alive: hub.shared.alive(),
        spawned: hub.spawned.get(),
        switches: hub.switches.get(),
        polls: hub.polls.get(),
        timers: hub.timers.borrow().len(),
        pooled_stacks: hub.stacks.borrow().pooled(),
        registered_io: hub.io.borrow().len(),
        stalls: hub.shared.watch.stalls.load(Ordering::Relaxed),
        // Filled in by `introspect::stats`, which scans the stacks.
        max_stack_used: 0,
    }
}
