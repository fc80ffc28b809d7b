//! Sleep ordering, timer cancellation, park/unpark from other threads,
//! and the blocking pool.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[test]
fn sleeps_wake_in_deadline_order() {
    let order = greenio::run(|| {
        let order = Rc::new(RefCell::new(Vec::new()));
        let hs: Vec<_> = [30u64, 10, 20, 0, 10]
            .into_iter()
            .enumerate()
            .map(|(i, ms)| {
                let o = order.clone();
                greenio::spawn(move || {
                    greenio::sleep(Duration::from_millis(ms));
                    o.borrow_mut().push(i);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let v = order.borrow().clone();
        v
    });
    // Equal deadlines keep spawn order (1 before 4).
    assert_eq!(order, vec![3, 1, 4, 2, 0]);
}

#[test]
fn sleep_lasts_at_least_the_duration() {
    greenio::run(|| {
        for ms in [1u64, 5, 15] {
            let t = Instant::now();
            greenio::sleep(Duration::from_millis(ms));
            assert!(t.elapsed() >= Duration::from_millis(ms));
        }
        greenio::sleep(Duration::ZERO);
    });
}

#[test]
fn cancelled_timers_are_removed() {
    greenio::run(|| {
        let hs: Vec<_> = (0..1000)
            .map(|_| greenio::spawn(|| greenio::sleep(Duration::from_secs(3600))))
            .collect();
        greenio::yield_now();
        assert_eq!(greenio::stats().timers, 1000);
        for h in &hs {
            h.cancel();
        }
        for h in hs {
            assert!(h.join().unwrap_err().is_cancelled());
        }
        assert_eq!(greenio::stats().timers, 0);
    });
}

#[test]
fn unpark_before_park_is_remembered() {
    greenio::run(|| {
        let u = greenio::current().unparker();
        u.unpark();
        let t = Instant::now();
        greenio::park(); // returns at once
        assert!(t.elapsed() < Duration::from_secs(30));
    });
}

#[test]
fn unpark_from_plain_os_thread() {
    greenio::run(|| {
        let u = greenio::current().unparker();
        let t = Instant::now();
        let th = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            u.unpark();
        });
        greenio::park();
        assert!(t.elapsed() >= Duration::from_millis(20));
        th.join().unwrap();
    });
}

#[test]
fn unpark_from_another_hubs_thread() {
    let rt = greenio::Runtime::builder().hubs(2).build().unwrap();
    rt.run(|| {
        let u = greenio::current().unparker();
        let main_thread = std::thread::current().id();
        let h = greenio::spawn_on(1, move || {
            assert_ne!(std::thread::current().id(), main_thread);
            greenio::sleep(Duration::from_millis(10));
            u.unpark();
        });
        greenio::park();
        h.join().unwrap();
    });
}

#[test]
fn stale_unparks_do_not_resume_a_later_wait() {
    greenio::run(|| {
        // A timer that fired for an old sleep must not wake a new park.
        let u = greenio::current().unparker();
        let w = greenio::wait::Waiter::prepare();
        assert!(w.wake());
        assert_eq!(
            w.wait(None, greenio::wait::WaitReason::local("demo")),
            greenio::wait::Wake::Notified
        );
        // The old token is stale now.
        assert!(!w.wake());
        assert!(w.is_stale());
        let t = Instant::now();
        let th = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            u.unpark();
        });
        greenio::park();
        // Only the real unpark ended the park, not the stale wake.
        assert!(t.elapsed() >= Duration::from_millis(30));
        th.join().unwrap();
    });
}

#[test]
fn unblock_returns_values_and_runs_off_hub() {
    greenio::run(|| {
        let hub_thread = std::thread::current().id();
        let (v, tid) = greenio::unblock(|| {
            std::thread::sleep(Duration::from_millis(10));
            (41 + 1, std::thread::current().id())
        });
        assert_eq!(v, 42);
        assert_ne!(tid, hub_thread);
        // Other green threads run while one waits on the pool.
        let ticker = greenio::spawn(|| {
            let mut n = 0;
            for _ in 0..5 {
                greenio::sleep(Duration::from_millis(2));
                n += 1;
            }
            n
        });
        greenio::unblock(|| std::thread::sleep(Duration::from_millis(40)));
        assert_eq!(ticker.join().unwrap(), 5);
        let name = greenio::unblock(|| std::thread::current().name().map(str::to_owned));
        assert!(name.unwrap().starts_with("greenio-blocking-"));
    });
}

#[test]
fn unblock_reraises_panics() {
    greenio::run(|| {
        let h = greenio::spawn(|| greenio::unblock(|| -> u32 { panic!("in the pool") }));
        let e = h.join().unwrap_err();
        assert_eq!(e.panic_message(), Some("in the pool"));
    });
}

#[test]
fn many_concurrent_unblocks_are_bounded_and_complete() {
    let rt = greenio::Runtime::builder()
        .blocking_threads(4)
        .build()
        .unwrap();
    rt.run(|| {
        let hs: Vec<_> = (0..32)
            .map(|i| greenio::spawn(move || greenio::unblock(move || i * 2)))
            .collect();
        let total: i32 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, (0..32).map(|i| i * 2).sum());
    });
}

#[test]
fn join_from_plain_os_thread() {
    let rt = greenio::Runtime::builder().hubs(2).build().unwrap();
    rt.run(|| {
        let h = greenio::spawn_on(1, || {
            greenio::sleep(Duration::from_millis(10));
            99
        });
        let v = std::thread::spawn(move || h.join().unwrap())
            .join()
            .unwrap();
        assert_eq!(v, 99);
    });
}
