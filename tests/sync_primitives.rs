//! Mutex, RwLock, Semaphore, Event, WaitGroup, Barrier, AsyncResult and
//! Group: exclusion under contention across hubs and OS threads, no
//! over-admission, cancellation of parked waiters, timeouts.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use greenio::sync::oneshot::AsyncResult;
use greenio::sync::{Barrier, Event, Mutex, RwLock, Semaphore, WaitGroup};
use greenio::Group;

const LONG: Duration = Duration::from_secs(30);

fn run<T>(hubs: usize, f: impl FnOnce() -> T) -> T {
    util::run_hubs("sync_primitives", hubs, f)
}

/// Yields a few times, letting every ready green thread of this hub run.
fn settle() {
    for _ in 0..5 {
        greenio::yield_now();
    }
}

#[test]
fn mutex_excludes_under_contention_across_hubs_and_os_threads() {
    // The counter is read, the holder parks (yield), then writes back:
    // without exclusion increments would be lost.
    const GREEN: usize = 40;
    const OS: usize = 2;
    const ROUNDS: u64 = 200;
    let total = run(2, || {
        let m = Arc::new(Mutex::new(0u64));
        let inside = Arc::new(AtomicUsize::new(0));
        let work = {
            let (m, inside) = (m.clone(), inside.clone());
            move || {
                for _ in 0..ROUNDS {
                    let mut g = m.lock();
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    let v = *g;
                    greenio::yield_now();
                    *g = v + 1;
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            }
        };
        let hs: Vec<_> = (0..GREEN)
            .map(|i| greenio::spawn_on(i % 2, work.clone()))
            .collect();
        let os: Vec<_> = (0..OS).map(|_| std::thread::spawn(work.clone())).collect();
        for h in hs {
            h.join().unwrap();
        }
        greenio::unblock(move || os.into_iter().for_each(|t| t.join().unwrap()));
        let v = *m.lock();
        v
    });
    assert_eq!(total, (GREEN + OS) as u64 * ROUNDS);
}

#[test]
fn mutex_try_lock_and_uncontended_use() {
    let m = Mutex::new(vec![1]);
    {
        let mut g = m.try_lock().expect("free");
        g.push(2);
        assert!(m.try_lock().is_none());
        assert!(m.is_locked());
    }
    assert!(!m.is_locked());
    assert_eq!(m.into_inner(), [1, 2]);
}

#[test]
fn cancelled_lock_waiter_never_owns_the_lock() {
    run(1, || {
        let m = Rc::new(Mutex::new(0));
        let g = m.lock();
        let m1 = m.clone();
        let victim = greenio::spawn(move || *m1.lock() += 100);
        settle();
        let m2 = m.clone();
        let other = greenio::spawn(move || *m2.lock() += 1);
        settle();
        victim.cancel();
        drop(g);
        other.join().unwrap();
        assert!(victim.join().unwrap_err().is_cancelled());
        assert_eq!(*m.lock(), 1);
        assert!(!m.is_locked());

        // A timeout scope around a parked lock.
        let g = m.lock();
        let m3 = m.clone();
        let scoped = greenio::spawn(move || {
            greenio::timeout(Duration::from_millis(5), || *m3.lock() += 100).is_err()
        });
        assert!(scoped.join().unwrap());
        drop(g);
        assert_eq!(*m.try_lock().expect("the lock must be free"), 1);
    });
}

#[test]
fn mutex_guard_held_across_parks() {
    run(1, || {
        let m = Rc::new(Mutex::new(Vec::new()));
        let hs: Vec<_> = (0..5)
            .map(|i| {
                let m = m.clone();
                greenio::spawn(move || {
                    let mut g = m.lock();
                    g.push(i);
                    greenio::sleep(Duration::from_millis(1));
                    g.push(i);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let v = m.lock().clone();
        for pair in v.chunks(2) {
            assert_eq!(pair[0], pair[1], "critical sections interleaved: {v:?}");
        }
    });
}

#[test]
fn rwlock_readers_share_and_writers_exclude() {
    run(2, || {
        let l = Arc::new(RwLock::new(0u64));
        let readers_in = Arc::new(AtomicUsize::new(0));
        let max_readers = Arc::new(AtomicUsize::new(0));
        let writer_in = Arc::new(AtomicBool::new(false));
        let mut hs = Vec::new();
        for i in 0..20 {
            let (l, readers_in, max_readers, writer_in) = (
                l.clone(),
                readers_in.clone(),
                max_readers.clone(),
                writer_in.clone(),
            );
            hs.push(greenio::spawn_on(i % 2, move || {
                for _ in 0..50 {
                    if i % 5 == 0 {
                        let mut g = l.write();
                        assert!(!writer_in.swap(true, Ordering::SeqCst));
                        assert_eq!(readers_in.load(Ordering::SeqCst), 0);
                        let v = *g;
                        greenio::yield_now();
                        *g = v + 1;
                        writer_in.store(false, Ordering::SeqCst);
                    } else {
                        let _g = l.read();
                        assert!(!writer_in.load(Ordering::SeqCst));
                        let n = readers_in.fetch_add(1, Ordering::SeqCst) + 1;
                        max_readers.fetch_max(n, Ordering::SeqCst);
                        greenio::yield_now();
                        readers_in.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            }));
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*l.read(), 4 * 50);
        assert!(
            max_readers.load(Ordering::SeqCst) > 1,
            "readers never shared"
        );
    });
}

#[test]
fn rwlock_prefers_waiting_writers_and_survives_cancel() {
    run(1, || {
        let l = Rc::new(RwLock::new(0));
        let r = l.read();
        let l1 = l.clone();
        let writer = greenio::spawn(move || *l1.write() += 1);
        settle();
        assert!(
            l.try_read().is_none(),
            "a waiting writer blocks new readers"
        );
        writer.cancel();
        assert!(writer.join().unwrap_err().is_cancelled());
        assert!(
            l.try_read().is_some(),
            "a cancelled writer lets readers in again"
        );
        drop(r);
        assert!(l.try_write().is_some());
    });
}

#[test]
fn semaphore_never_over_admits() {
    const PERMITS: usize = 3;
    run(2, || {
        let sem = Arc::new(Semaphore::new(PERMITS));
        let inside = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let work = {
            let (sem, inside, max) = (sem.clone(), inside.clone(), max.clone());
            move || {
                for round in 0..30 {
                    let _p = if round % 3 == 0 {
                        match sem.acquire_timeout(Duration::from_micros(50)) {
                            Some(p) => p,
                            None => continue,
                        }
                    } else {
                        sem.acquire()
                    };
                    let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(n <= PERMITS, "{n} holders of {PERMITS} permits");
                    max.fetch_max(n, Ordering::SeqCst);
                    greenio::yield_now();
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            }
        };
        let hs: Vec<_> = (0..24)
            .map(|i| greenio::spawn_on(i % 2, work.clone()))
            .collect();
        let os = std::thread::spawn(work);
        // Cancel a few green threads while they run or wait.
        for h in hs.iter().step_by(5) {
            h.cancel();
        }
        for h in hs {
            let _ = h.join();
        }
        greenio::unblock(move || os.join()).unwrap();
        assert_eq!(sem.available_permits(), PERMITS, "a permit leaked");
        assert!(max.load(Ordering::SeqCst) >= 1);
    });
}

#[test]
fn cancelled_semaphore_waiter_does_not_steal_the_permit() {
    run(1, || {
        let sem = Rc::new(Semaphore::new(1));
        let p = sem.acquire();
        let s1 = sem.clone();
        let victim = greenio::spawn(move || s1.acquire().forget());
        settle();
        let s2 = sem.clone();
        let other = greenio::spawn(move || s2.acquire_timeout(LONG).is_some());
        settle();
        victim.cancel();
        drop(p);
        assert!(other.join().unwrap());
        assert!(victim.join().unwrap_err().is_cancelled());
        assert_eq!(sem.available_permits(), 1);

        let t = Instant::now();
        let held = sem.acquire();
        assert!(sem.acquire_timeout(Duration::from_millis(20)).is_none());
        assert!(t.elapsed() >= Duration::from_millis(20));
        drop(held);
    });
}

#[test]
fn event_releases_every_waiter_on_every_hub_and_os_thread() {
    run(2, || {
        let ev = Arc::new(Event::new());
        let released = Arc::new(AtomicUsize::new(0));
        let mut hs = Vec::new();
        for i in 0..10 {
            let (ev, released) = (ev.clone(), released.clone());
            hs.push(greenio::spawn_on(i % 2, move || {
                ev.wait();
                released.fetch_add(1, Ordering::SeqCst);
            }));
        }
        let (ev2, rel2) = (ev.clone(), released.clone());
        let os = std::thread::spawn(move || {
            assert!(ev2.wait_timeout(LONG));
            rel2.fetch_add(1, Ordering::SeqCst);
        });
        greenio::sleep(Duration::from_millis(10));
        assert_eq!(released.load(Ordering::SeqCst), 0);
        ev.set();
        for h in hs {
            h.join().unwrap();
        }
        greenio::unblock(move || os.join()).unwrap();
        assert_eq!(released.load(Ordering::SeqCst), 11);
    });
}

#[test]
fn event_pulse_and_timeout() {
    run(1, || {
        let ev = Rc::new(Event::new());
        let e2 = ev.clone();
        let w = greenio::spawn(move || e2.wait_timeout(LONG));
        settle();
        ev.set();
        ev.clear(); // the waiter still saw the set
        assert!(w.join().unwrap());
        assert!(!ev.is_set());
        let t = Instant::now();
        assert!(!ev.wait_timeout(Duration::from_millis(20)));
        assert!(t.elapsed() >= Duration::from_millis(20));
    });
}

#[test]
fn waitgroup_waits_for_all() {
    run(2, || {
        let wg = Arc::new(WaitGroup::new());
        let finished = Arc::new(AtomicUsize::new(0));
        for i in 0..16 {
            wg.add(1);
            let (wg, finished) = (wg.clone(), finished.clone());
            greenio::spawn_on(i % 2, move || {
                greenio::sleep(Duration::from_millis(1 + i as u64 % 3));
                finished.fetch_add(1, Ordering::SeqCst);
                wg.done();
            });
        }
        assert!(wg.wait_timeout(LONG));
        assert_eq!(finished.load(Ordering::SeqCst), 16);
        wg.add(1);
        let t = Instant::now();
        assert!(!wg.wait_timeout(Duration::from_millis(20)));
        assert!(t.elapsed() >= Duration::from_millis(20));
        wg.done();
        wg.wait();
    });
}

#[test]
#[should_panic(expected = "more times than add")]
fn waitgroup_done_below_zero_panics() {
    WaitGroup::new().done();
}

#[test]
fn barrier_rounds_have_one_leader_each() {
    const N: usize = 6;
    const ROUNDS: usize = 20;
    run(2, || {
        let b = Arc::new(Barrier::new(N));
        let leaders = Arc::new(AtomicUsize::new(0));
        let arrivals = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..N)
            .map(|i| {
                let (b, leaders, arrivals) = (b.clone(), leaders.clone(), arrivals.clone());
                greenio::spawn_on(i % 2, move || {
                    for round in 0..ROUNDS {
                        arrivals.fetch_add(1, Ordering::SeqCst);
                        if b.wait().is_leader() {
                            leaders.fetch_add(1, Ordering::SeqCst);
                        }
                        // Nobody passes round r before all N arrived at it.
                        assert!(arrivals.load(Ordering::SeqCst) >= N * (round + 1));
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(leaders.load(Ordering::SeqCst), ROUNDS);
    });
}

#[test]
fn cancelled_barrier_participant_withdraws() {
    run(1, || {
        let b = Rc::new(Barrier::new(2));
        let b1 = b.clone();
        let victim = greenio::spawn(move || b1.wait());
        settle();
        victim.cancel();
        assert!(victim.join().unwrap_err().is_cancelled());
        // Still needs two live participants.
        let b2 = b.clone();
        let h = greenio::spawn(move || b2.wait().is_leader());
        settle();
        assert!(!h.is_finished());
        let me = b.wait().is_leader();
        assert!(me ^ h.join().unwrap());
    });
}

fn owned(r: Result<&String, &String>) -> Result<String, String> {
    r.cloned().map_err(Clone::clone)
}

#[test]
fn async_result_wakes_many_waiters_with_value_or_error() {
    run(2, || {
        let r: Arc<AsyncResult<String, String>> = Arc::new(AsyncResult::new());
        let mut hs = Vec::new();
        for i in 0..6 {
            let r = r.clone();
            hs.push(greenio::spawn_on(i % 2, move || owned(r.wait())));
        }
        let r2 = r.clone();
        let os = std::thread::spawn(move || r2.wait_timeout(LONG).map(owned));
        greenio::sleep(Duration::from_millis(5));
        assert!(!r.is_ready());
        r.set("v".to_string()).unwrap();
        assert_eq!(r.set("w".to_string()), Err("w".to_string()));
        assert_eq!(r.set_error("e".to_string()), Err("e".to_string()));
        for h in hs {
            assert_eq!(h.join().unwrap(), Ok("v".to_string()));
        }
        let got = greenio::unblock(move || os.join()).unwrap();
        assert_eq!(got, Some(Ok("v".to_string())));

        let e: AsyncResult<u8, &str> = AsyncResult::new();
        let t = Instant::now();
        assert_eq!(e.wait_timeout(Duration::from_millis(20)), None);
        assert!(t.elapsed() >= Duration::from_millis(20));
        e.set_error("boom").unwrap();
        assert_eq!(e.wait(), Err(&"boom"));
    });
}

#[test]
fn group_limit_is_never_exceeded() {
    run(2, || {
        let pool = Group::with_limit(3);
        let running = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let mut hs = Vec::new();
        for i in 0..30 {
            let (running, max) = (running.clone(), max.clone());
            let body = move || {
                let n = running.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(n, Ordering::SeqCst);
                greenio::sleep(Duration::from_millis(1));
                running.fetch_sub(1, Ordering::SeqCst);
                i
            };
            hs.push(if i % 2 == 0 {
                pool.spawn(body)
            } else {
                pool.spawn_on(1, body)
            });
            assert!(pool.len() <= 3);
        }
        pool.join_all();
        assert!(pool.is_empty());
        assert!(max.load(Ordering::SeqCst) <= 3, "limit exceeded");
        let sum: i32 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, (0..30).sum());
    });
}

#[test]
fn group_wait_any_then_cancel_the_rest() {
    run(1, || {
        let g = Group::new();
        let slow: Vec<_> = (0..3)
            .map(|_| g.spawn(|| greenio::sleep(Duration::from_secs(3600))))
            .collect();
        let fast = g.spawn(|| {
            greenio::sleep(Duration::from_millis(2));
            "first"
        });
        assert_eq!(g.len(), 4);
        assert!(g.wait_any(1) >= 1);
        assert!(fast.is_finished());
        assert_eq!(fast.join().unwrap(), "first");
        assert_eq!(g.len(), 3);
        g.cancel_all();
        assert!(g.join_timeout(LONG));
        for h in slow {
            assert!(h.join().unwrap_err().is_cancelled());
        }
        // wait_any on an empty group returns at once.
        assert_eq!(g.wait_any(5), 0);
    });
}

#[test]
fn group_counts_panicked_and_unstarted_members_as_finished() {
    run(1, || {
        let g = Group::new();
        let boom = g.spawn(|| -> u8 { panic!("member panicked on purpose") });
        let never = g.spawn(|| 1);
        never.cancel(); // cancelled before it ever ran
        g.join_all();
        assert!(g.is_empty());
        assert!(boom.join().unwrap_err().is_panic());
        assert!(never.join().unwrap_err().is_cancelled());
    });
}

#[test]
fn group_spawner_parked_on_a_full_pool_can_be_cancelled() {
    run(1, || {
        let pool = Group::with_limit(1);
        let blocker = pool.spawn(|| greenio::sleep(Duration::from_secs(3600)));
        let p2 = pool.clone();
        let started = Rc::new(Cell::new(false));
        let s2 = started.clone();
        let spawner = greenio::spawn(move || {
            p2.spawn(|| ());
            s2.set(true);
        });
        settle();
        assert!(!started.get(), "the pool is full: spawn must park");
        spawner.cancel();
        assert!(spawner.join().unwrap_err().is_cancelled());
        assert_eq!(pool.len(), 1);
        blocker.cancel();
        pool.join_all();
        // The pool has room again.
        let h = pool.spawn(|| 5);
        assert_eq!(h.join().unwrap(), 5);
    });
}
