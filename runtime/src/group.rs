//! `Group`: gevent's `Group` and `Pool`: spawn green threads into a set,
//! optionally with a limit on how many run at once, then wait for all of
//! them, for the first few, or cancel them all.
//!
//! # Design
//!
//! The group does not own its members' results: [`Group::spawn`] returns
//! the ordinary [`JoinHandle`], so results flow the usual way and a group
//! used as a connection pool that nobody joins keeps no memory per
//! finished member. The group keeps, under one internal lock, a
//! [`GreenThread`] per *running* member (to cancel it) and a count of
//! finished ones. Each member's closure carries a drop guard that removes
//! it from the group when it returns, panics, is cancelled, or is dropped
//! without ever running, and wakes parked spawners and joiners; they
//! re-check the state, as every primitive in [`sync`](crate::sync) does.
//!
//! Spawning reserves a place under the lock, spawns outside it (a failing
//! spawn drops the closure, whose guard takes the lock), then records the
//! green thread; a [`cancel_all`](Group::cancel_all) that runs in between
//! is caught by a generation number and applied right after.
//!
//! Members never move between hubs (see [`sync`](crate::sync#many-hubs-and-why-green-threads-never-migrate));
//! [`Group::spawn_on`] and [`Group::spawn_balanced`] choose a hub at spawn
//! time.

use std::collections::HashMap;
use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::green::{GreenThread, JoinHandle};
use crate::sync::spin::SpinLock;
use crate::sync::{lock, WaitQueue};
use crate::wait::{deadline_after, WaitReason, Waiter};

const SPAWN: WaitReason = WaitReason::sync("group spawn");
const JOIN: WaitReason = WaitReason::sync("group join");

struct GroupState {
    /// Running members by key; `None` while the spawner is between
    /// reserving the place and recording the green thread.
    running: HashMap<u64, Option<GreenThread>>,
    next_key: u64,
    /// Members finished so far (for `wait_any`).
    finished: u64,
    /// Bumped by every `cancel_all`.
    cancel_gen: u64,
    /// Spawners parked while the group is full.
    spawn_q: WaitQueue,
    /// `join_all` / `wait_any` callers.
    join_q: WaitQueue,
}

struct Inner {
    limit: Option<usize>,
    state: SpinLock<GroupState>,
}

/// A set of green threads that can be waited for or cancelled together,
/// optionally limited in how many run at once (gevent's `Group` and
/// `Pool`).
///
/// `Group` is a cheap handle: clones refer to the same group, so members
/// can spawn more members. It works across hubs ([`spawn_on`](Group::spawn_on),
/// [`spawn_balanced`](Group::spawn_balanced)) and its waits work from plain
/// OS threads too.
///
/// # Examples
///
/// Fetch with at most two workers at a time, then wait for all:
///
/// ```
/// use std::time::Duration;
///
/// greenio::run(|| {
///     let pool = greenio::Group::with_limit(2);
///     let handles: Vec<_> = (1..=5)
///         .map(|i| {
///             pool.spawn(move || {
///                 greenio::sleep(Duration::from_millis(2));
///                 i * 10
///             })
///         })
///         .collect();
///     pool.join_all();
///     assert!(pool.is_empty());
///     let total: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
///     assert_eq!(total, 150);
/// });
/// ```
#[derive(Clone)]
pub struct Group {
    inner: Arc<Inner>,
}

/// Removes a member from its group however its closure ends.
struct Member {
    inner: Arc<Inner>,
    key: u64,
}

impl Drop for Member {
    fn drop(&mut self) {
        let gone = {
            let mut s = lock(&self.inner.state);
            let gone = s.running.remove(&self.key);
            s.finished += 1;
            s.spawn_q.wake_one();
            s.join_q.wake_all();
            gone
        };
        drop(gone);
    }
}

impl Default for Group {
    fn default() -> Self {
        Group::new()
    }
}

impl Group {
    /// A group without a limit.
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let g = greenio::Group::new();
    ///     g.spawn(|| ());
    ///     assert_eq!(g.len(), 1);
    ///     g.join_all();
    ///     assert_eq!(g.len(), 0);
    /// });
    /// ```
    pub fn new() -> Group {
        Group::build(None)
    }

    /// A group that runs at most `limit` members at once (gevent's
    /// `Pool`): [`spawn`](Group::spawn) parks while it is full.
    ///
    /// # Panics
    ///
    /// Panics if `limit` is zero (no member could ever start).
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let pool = greenio::Group::with_limit(1);
    ///     pool.spawn(|| greenio::yield_now());
    ///     pool.spawn(|| ()); // parks until the first one finishes
    ///     assert!(pool.len() <= 1);
    ///     pool.join_all();
    /// });
    /// ```
    pub fn with_limit(limit: usize) -> Group {
        assert!(
            limit > 0,
            "greenio: Group::with_limit(0) could never run a member"
        );
        Group::build(Some(limit))
    }

    fn build(limit: Option<usize>) -> Group {
        Group {
            inner: Arc::new(Inner {
                limit,
                state: SpinLock::new(GroupState {
                    running: HashMap::new(),
                    next_key: 0,
                    finished: 0,
                    cancel_gen: 0,
                    spawn_q: WaitQueue::new(),
                    join_q: WaitQueue::new(),
                }),
            }),
        }
    }

    /// The limit given to [`with_limit`](Group::with_limit), if any.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(greenio::Group::with_limit(3).limit(), Some(3));
    /// assert_eq!(greenio::Group::new().limit(), None);
    /// ```
    pub fn limit(&self) -> Option<usize> {
        self.inner.limit
    }

    /// Spawns a member on the current hub, parking first while the group
    /// is at its limit. Returns the member's ordinary [`JoinHandle`].
    ///
    /// # Panics
    ///
    /// Panics outside a green thread's runtime, or if no stack can be
    /// mapped (as [`spawn`](crate::spawn) does).
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let g = greenio::Group::new();
    ///     let h = g.spawn(|| 2 + 2);
    ///     assert_eq!(h.join().unwrap(), 4);
    /// });
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + 'static,
        T: Send + 'static,
    {
        let site = Location::caller();
        self.spawn_with(move |member| {
            let spawned = crate::Builder::new().spawn_site(site).spawn(move || {
                let _member = member;
                f()
            });
            spawned.unwrap_or_else(|e| panic!("greenio::Group::spawn failed: {e}"))
        })
    }

    /// Spawns a member on hub `index` of the current runtime, parking first
    /// while the group is at its limit.
    ///
    /// # Panics
    ///
    /// Panics outside a runtime or if `index` is not one of its hubs.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = greenio::Runtime::builder().hubs(2).build().unwrap();
    /// rt.run(|| {
    ///     let g = greenio::Group::new();
    ///     let h = g.spawn_on(1, || greenio::current().hub());
    ///     g.join_all();
    ///     assert_eq!(h.join().unwrap(), 1);
    /// });
    /// ```
    #[track_caller]
    pub fn spawn_on<F, T>(&self, index: usize, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let site = Location::caller();
        self.spawn_with(move |member| {
            let spawned = crate::Builder::new()
                .spawn_site(site)
                .spawn_on(index, move || {
                    let _member = member;
                    f()
                });
            spawned.unwrap_or_else(|e| panic!("greenio::Group::spawn_on failed: {e}"))
        })
    }

    /// Spawns a member on the least loaded hub (see
    /// [`spawn_balanced`](crate::spawn_balanced)), parking first while the
    /// group is at its limit.
    ///
    /// # Panics
    ///
    /// Panics outside a runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let g = greenio::Group::new();
    ///     let h = g.spawn_balanced(|| 1);
    ///     assert_eq!(h.join().unwrap(), 1);
    /// });
    /// ```
    #[track_caller]
    pub fn spawn_balanced<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let site = Location::caller();
        self.spawn_with(move |member| {
            crate::green::spawn_balanced_at(site, move || {
                let _member = member;
                f()
            })
        })
    }

    /// Reserves a place, spawns through `spawner` (which must move the
    /// `Member` guard into the green thread's closure), records the member.
    fn spawn_with<T>(&self, spawner: impl FnOnce(Member) -> JoinHandle<T>) -> JoinHandle<T>
    where
        T: Send + 'static,
    {
        let (key, gen) = self.reserve();
        let member = Member {
            inner: self.inner.clone(),
            key,
        };
        let handle = spawner(member);
        let mut s = lock(&self.inner.state);
        let cancelled = s.cancel_gen != gen;
        if let Some(slot) = s.running.get_mut(&key) {
            let t = handle.thread();
            if cancelled {
                t.cancel();
            }
            *slot = Some(t);
        }
        drop(s);
        handle
    }

    /// Waits for room under the limit and reserves a place.
    fn reserve(&self) -> (u64, u64) {
        loop {
            let w = {
                let mut s = lock(&self.inner.state);
                if !matches!(self.inner.limit, Some(l) if s.running.len() >= l) {
                    let key = s.next_key;
                    s.next_key += 1;
                    s.running.insert(key, None);
                    return (key, s.cancel_gen);
                }
                let w = Waiter::prepare();
                s.spawn_q.push(w.clone());
                w
            };
            self.park(&w, None, SPAWN, false);
        }
    }

    /// Parks on a token queued in `spawn_q` (or `join_q` if `join`).
    fn park(&self, w: &Waiter, deadline: Option<Instant>, reason: WaitReason, join: bool) {
        crate::sync::park(
            w,
            deadline,
            reason,
            || {
                let mut s = lock(&self.inner.state);
                if join {
                    s.join_q.remove(w);
                } else {
                    s.spawn_q.remove(w);
                }
            },
            || {
                // Joiners are woken all at once; a spawner passes its turn on.
                if !join {
                    lock(&self.inner.state).spawn_q.wake_one();
                }
            },
        );
    }

    /// Parks until every member has finished (members spawned meanwhile
    /// included).
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let g = greenio::Group::new();
    ///     for _ in 0..3 {
    ///         g.spawn(|| greenio::yield_now());
    ///     }
    ///     g.join_all();
    ///     assert!(g.is_empty());
    /// });
    /// ```
    pub fn join_all(&self) {
        self.wait_for(|s| s.running.is_empty(), None);
    }

    /// Like [`join_all`](Group::join_all), but gives up after `timeout`;
    /// returns whether every member finished.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// greenio::run(|| {
    ///     let g = greenio::Group::new();
    ///     let h = g.spawn(|| greenio::sleep(Duration::from_secs(60)));
    ///     assert!(!g.join_timeout(Duration::from_millis(5)));
    ///     g.cancel_all();
    ///     assert!(g.join_timeout(Duration::from_secs(5)));
    ///     assert!(h.join().unwrap_err().is_cancelled());
    /// });
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.wait_for(|s| s.running.is_empty(), deadline_after(timeout))
            .is_some()
    }

    /// Parks until `n` members have finished since this call, or no member
    /// is running any more; returns how many finished meanwhile (which can
    /// be less than `n` only if the group ran empty, or more if several
    /// finished at once).
    ///
    /// With [`cancel_all`](Group::cancel_all) this is "first N wins": race
    /// several green threads, keep the first results, cancel the rest.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// greenio::run(|| {
    ///     let g = greenio::Group::new();
    ///     let slow = g.spawn(|| greenio::sleep(Duration::from_secs(60)));
    ///     let fast = g.spawn(|| greenio::sleep(Duration::from_millis(1)));
    ///     assert!(g.wait_any(1) >= 1);
    ///     assert!(fast.is_finished());
    ///     g.cancel_all();
    ///     assert!(slow.join().unwrap_err().is_cancelled());
    /// });
    /// ```
    pub fn wait_any(&self, n: usize) -> usize {
        let start = lock(&self.inner.state).finished;
        let end = self
            .wait_for(
                |s| s.finished - start >= n as u64 || s.running.is_empty(),
                None,
            )
            .unwrap_or(start);
        (end - start) as usize
    }

    /// Parks until `done(state)` holds; returns the finished count then,
    /// or `None` at the deadline.
    fn wait_for(
        &self,
        done: impl Fn(&GroupState) -> bool,
        deadline: Option<Instant>,
    ) -> Option<u64> {
        loop {
            let w = {
                let mut s = lock(&self.inner.state);
                if done(&s) {
                    return Some(s.finished);
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return None;
                }
                let w = Waiter::prepare();
                s.join_q.push(w.clone());
                w
            };
            self.park(&w, deadline, JOIN, true);
        }
    }

    /// Cancels every running member (each unwinds from its park point, as
    /// with [`JoinHandle::cancel`]). Does not wait: follow with
    /// [`join_all`](Group::join_all) to wait until they are gone.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// greenio::run(|| {
    ///     let g = greenio::Group::new();
    ///     let hs: Vec<_> = (0..3)
    ///         .map(|_| g.spawn(|| greenio::sleep(Duration::from_secs(60))))
    ///         .collect();
    ///     g.cancel_all();
    ///     g.join_all();
    ///     assert!(hs.into_iter().all(|h| h.join().unwrap_err().is_cancelled()));
    /// });
    /// ```
    pub fn cancel_all(&self) {
        let mut s = lock(&self.inner.state);
        s.cancel_gen += 1;
        for t in s.running.values().flatten() {
            t.cancel();
        }
    }

    /// The number of members running (spawned and not finished).
    ///
    /// # Examples
    ///
    /// ```
    /// greenio::run(|| {
    ///     let g = greenio::Group::new();
    ///     assert_eq!(g.len(), 0);
    ///     g.spawn(|| ());
    ///     assert_eq!(g.len(), 1);
    /// });
    /// ```
    pub fn len(&self) -> usize {
        lock(&self.inner.state).running.len()
    }

    /// Whether no member is running.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(greenio::Group::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("limit", &self.inner.limit)
            .field("running", &self.len())
            .finish()
    }
}
