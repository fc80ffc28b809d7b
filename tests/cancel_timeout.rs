//! Cancellation (gevent's kill) and timeout scopes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct DropCounter(Arc<AtomicUsize>);
impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn cancel_while_sleeping_runs_destructors() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    greenio::run(move || {
        let c = DropCounter(d.clone());
        let h = greenio::spawn(move || {
            let _c = c;
            let _inner = DropCounter(Arc::new(AtomicUsize::new(0)));
            greenio::sleep(Duration::from_secs(3600));
            unreachable!("the sleep must not return");
        });
        greenio::sleep(Duration::from_millis(5));
        let t = Instant::now();
        h.cancel();
        let e = h.join().unwrap_err();
        assert!(e.is_cancelled());
        assert!(t.elapsed() < Duration::from_secs(60));
        assert_eq!(d.load(Ordering::SeqCst), 1);
        // The sleeper's timer is gone too.
        assert_eq!(greenio::stats().timers, 0);
    });
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn cancel_while_parked() {
    greenio::run(|| {
        let h = greenio::spawn(|| {
            greenio::park();
            "unparked"
        });
        greenio::yield_now();
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
    });
}

#[test]
fn cancel_before_first_run_never_runs_the_body() {
    let ran = Arc::new(AtomicUsize::new(0));
    let r2 = ran.clone();
    greenio::run(move || {
        let r3 = r2.clone();
        let h = greenio::spawn(move || {
            r3.fetch_add(1, Ordering::SeqCst);
        });
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
    });
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn cancel_finished_or_twice_is_a_noop() {
    greenio::run(|| {
        let h = greenio::spawn(|| 5);
        greenio::yield_now();
        assert!(h.is_finished());
        h.cancel();
        h.cancel();
        assert_eq!(h.join().unwrap(), 5);
        let h = greenio::spawn(|| greenio::sleep(Duration::from_secs(60)));
        greenio::yield_now();
        h.cancel();
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
    });
}

#[test]
fn cancel_cannot_be_swallowed_by_catch_unwind() {
    greenio::run(|| {
        let h = greenio::spawn(|| {
            let mut caught = 0;
            loop {
                let r = std::panic::catch_unwind(|| greenio::sleep(Duration::from_secs(60)));
                if r.is_err() {
                    caught += 1;
                }
                if caught > 3 {
                    return "escaped";
                }
            }
        });
        greenio::yield_now();
        h.cancel();
        // Every later park unwinds again: after 4 catches the body returns.
        // The result must still be the body's (it returned), and it did not hang.
        let r = h.join();
        assert_eq!(r.unwrap(), "escaped");
    });
}

#[test]
fn cancel_from_another_os_thread() {
    greenio::run(|| {
        let h = greenio::spawn(|| greenio::sleep(Duration::from_secs(3600)));
        greenio::yield_now();
        let h = std::thread::spawn(move || {
            h.cancel();
            h
        })
        .join()
        .unwrap();
        assert!(h.join().unwrap_err().is_cancelled());
    });
}

#[test]
fn timeout_fires_and_unwinds_the_body() {
    greenio::run(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let c = DropCounter(drops.clone());
        let t = Instant::now();
        let r = greenio::timeout(Duration::from_millis(20), move || {
            let _c = c;
            greenio::sleep(Duration::from_secs(3600));
        });
        assert!(r.is_err());
        assert!(t.elapsed() >= Duration::from_millis(20));
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(greenio::stats().timers, 0);
    });
}

#[test]
fn timeout_not_reached_returns_value() {
    greenio::run(|| {
        let r = greenio::timeout(Duration::from_secs(60), || {
            greenio::sleep(Duration::from_millis(2));
            9
        });
        assert_eq!(r, Ok(9));
        assert_eq!(greenio::stats().timers, 0);
    });
}

#[test]
fn nested_inner_fires() {
    greenio::run(|| {
        let outer = greenio::timeout(Duration::from_secs(60), || {
            let inner = greenio::timeout(Duration::from_millis(10), || {
                greenio::sleep(Duration::from_secs(60));
            });
            assert!(inner.is_err());
            "outer body finished"
        });
        assert_eq!(outer, Ok("outer body finished"));
    });
}

#[test]
fn nested_outer_fires_through_inner() {
    greenio::run(|| {
        let mut inner_result = None;
        let t = Instant::now();
        let outer = greenio::timeout(Duration::from_millis(10), || {
            let r = greenio::timeout(Duration::from_secs(60), || {
                greenio::sleep(Duration::from_secs(60));
            });
            inner_result = Some(r.is_err());
        });
        assert!(outer.is_err());
        assert!(t.elapsed() >= Duration::from_millis(10));
        // The inner scope did not swallow the outer deadline.
        assert_eq!(inner_result, None);
    });
}

#[test]
fn nested_neither_fires() {
    greenio::run(|| {
        let r = greenio::timeout(Duration::from_secs(60), || {
            greenio::timeout(Duration::from_secs(30), || {
                greenio::yield_now();
                1
            })
        });
        assert_eq!(r, Ok(Ok(1)));
    });
}

#[test]
fn timeout_interrupts_join_and_park() {
    greenio::run(|| {
        let h = greenio::spawn(|| greenio::sleep(Duration::from_secs(3600)));
        let r = greenio::timeout(Duration::from_millis(5), greenio::park);
        assert!(r.is_err());
        let h2 = greenio::spawn(|| ());
        assert!(greenio::timeout(Duration::from_millis(5), move || h.join()).is_err());
        h2.join().unwrap();
    });
}

#[test]
fn expired_timeout_in_a_green_thread_does_not_affect_others() {
    greenio::run(|| {
        let a = greenio::spawn(|| {
            greenio::timeout(Duration::from_millis(5), || {
                greenio::sleep(Duration::from_secs(60))
            })
            .is_err()
        });
        let b = greenio::spawn(|| {
            greenio::sleep(Duration::from_millis(20));
            "b fine"
        });
        assert!(a.join().unwrap());
        assert_eq!(b.join().unwrap(), "b fine");
    });
}
