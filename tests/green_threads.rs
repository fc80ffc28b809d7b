//! Spawning, joining, yielding, panics, names, stats and dump.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn spawn_join_returns_values() {
    let v = greenio::run(|| {
        let a = greenio::spawn(|| 1u64);
        let b = greenio::spawn(|| String::from("two"));
        let c = greenio::spawn(|| vec![3u8; 3]);
        (a.join().unwrap(), b.join().unwrap(), c.join().unwrap())
    });
    assert_eq!(v, (1, "two".to_string(), vec![3, 3, 3]));
}

#[test]
fn run_returns_main_value_and_borrows_locals() {
    let mut local = vec![1, 2, 3];
    let n = greenio::run(|| {
        local.push(4);
        local.len()
    });
    assert_eq!(n, 4);
    assert_eq!(local, vec![1, 2, 3, 4]);
}

#[test]
fn hundred_thousand_green_threads() {
    const N: usize = 100_000;
    let count = Arc::new(AtomicUsize::new(0));
    let c2 = count.clone();
    let sum = greenio::run(move || {
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let c = c2.clone();
                greenio::spawn(move || {
                    c.fetch_add(1, Ordering::Relaxed);
                    i as u64
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(count.load(Ordering::Relaxed), N);
    assert_eq!(sum, (N as u64 - 1) * N as u64 / 2);
}

#[test]
fn many_green_threads_alive_at_once() {
    // 10,000 parked at the same time: stacks are reserved, not committed.
    const N: usize = 10_000;
    greenio::run(|| {
        let handles: Vec<_> = (0..N)
            .map(|i| {
                greenio::spawn(move || {
                    greenio::sleep(Duration::from_millis(20));
                    i
                })
            })
            .collect();
        greenio::yield_now();
        assert!(greenio::stats().alive > N);
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), i);
        }
    });
}

#[test]
fn yield_is_round_robin() {
    let log = greenio::run(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let handles: Vec<_> = (0..3)
            .map(|id| {
                let log = log.clone();
                greenio::spawn(move || {
                    for round in 0..3 {
                        log.borrow_mut().push((round, id));
                        greenio::yield_now();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let v = log.borrow().clone();
        v
    });
    let expected: Vec<(i32, i32)> = (0..3).flat_map(|r| (0..3).map(move |id| (r, id))).collect();
    assert_eq!(log, expected);
}

#[test]
fn panic_is_captured_with_payload_and_others_keep_running() {
    greenio::run(|| {
        let ok = greenio::spawn(|| {
            greenio::sleep(Duration::from_millis(5));
            7
        });
        let bad = greenio::Builder::new()
            .name("doomed")
            .spawn(|| -> u32 { panic!("kaboom {}", 42) })
            .unwrap();
        let err = bad.join().unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.panic_message(), Some("kaboom 42"));
        assert_eq!(ok.join().unwrap(), 7);
        let custom = greenio::spawn(|| std::panic::panic_any(17u8));
        let p = custom.join().unwrap_err().into_panic();
        assert_eq!(p.downcast_ref::<u8>(), Some(&17));
    });
}

#[test]
fn main_panic_propagates_out_of_run() {
    let r = std::panic::catch_unwind(|| greenio::run(|| panic!("main failed")));
    let p = r.unwrap_err();
    assert_eq!(p.downcast_ref::<&str>(), Some(&"main failed"));
}

#[test]
fn names_ids_and_is_finished() {
    greenio::run(|| {
        let h = greenio::Builder::new()
            .name("worker-1")
            .spawn(|| {
                let me = greenio::current();
                (me.id(), me.name().map(str::to_owned))
            })
            .unwrap();
        let id = h.thread().id();
        assert!(!h.is_finished());
        let (seen_id, name) = h.join().unwrap();
        assert_eq!(seen_id, id);
        assert_eq!(name.as_deref(), Some("worker-1"));
        assert_ne!(greenio::current().id(), id);
    });
}

#[test]
fn custom_stack_sizes_work() {
    greenio::run(|| {
        fn depth(n: u32) -> u32 {
            let buf = [n as u8; 512];
            if n == 0 {
                buf[0] as u32
            } else {
                depth(n - 1) + std::hint::black_box(buf)[1] as u32 / 255
            }
        }
        // ~1 MiB of recursion needs a big stack.
        let h = greenio::Builder::new()
            .stack_size(4 << 20)
            .spawn(|| depth(1500))
            .unwrap();
        h.join().unwrap();
        let small = greenio::Builder::new()
            .stack_size(16 * 1024)
            .spawn(|| 1)
            .unwrap();
        assert_eq!(small.join().unwrap(), 1);
    });
}

#[test]
fn stacks_are_pooled_and_reused() {
    greenio::run(|| {
        for _ in 0..10 {
            greenio::spawn(|| ()).join().unwrap();
        }
        let s = greenio::stats();
        assert!(s.pooled_stacks >= 1, "{s:?}");
        assert!(s.spawned >= 11);
    });
}

#[test]
fn dump_names_parked_threads_and_reasons() {
    greenio::run(|| {
        let _a = greenio::Builder::new()
            .name("sleepy")
            .spawn(|| greenio::sleep(Duration::from_secs(30)))
            .unwrap();
        let _b = greenio::Builder::new()
            .name("parky")
            .spawn(greenio::park)
            .unwrap();
        greenio::sleep(Duration::from_millis(5));
        let d = greenio::dump();
        let text = d.to_string();
        let find = |n: &str| {
            d.threads
                .iter()
                .find(|t| t.name.as_deref() == Some(n))
                .cloned()
        };
        assert_eq!(find("sleepy").unwrap().waits_on, Some("sleep"));
        assert_eq!(find("parky").unwrap().waits_on, Some("park"));
        assert_eq!(find("main").unwrap().state, greenio::ThreadState::Running);
        assert!(text.contains("sleepy") && text.contains("parky"), "{text}");
        assert!(find("sleepy").unwrap().waiting_for >= Duration::from_millis(1));
    });
}

#[test]
fn run_cancels_leftover_green_threads_before_returning() {
    struct Flag(Arc<AtomicUsize>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let d2 = dropped.clone();
    let v = greenio::run(move || {
        for _ in 0..5 {
            let f = Flag(d2.clone());
            greenio::spawn(move || {
                let _f = f;
                greenio::sleep(Duration::from_secs(3600));
            });
        }
        greenio::yield_now();
        "done"
    });
    assert_eq!(v, "done");
    assert_eq!(dropped.load(Ordering::SeqCst), 5);
}

#[test]
fn spawn_outside_run_panics_with_a_clear_message() {
    let r = std::panic::catch_unwind(|| greenio::spawn(|| ()));
    let p = r.unwrap_err();
    let msg = p
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
    assert!(msg.unwrap().contains("greenio::run"));
}

#[test]
fn stack_mmap_failure_is_a_clear_error() {
    greenio::run(|| {
        // 1 PiB cannot be mapped: Builder::spawn reports it, spawn panics with it.
        let err = greenio::Builder::new()
            .stack_size(1 << 50)
            .spawn(|| ())
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("cannot map"), "{msg}");
        assert!(msg.contains("vm.max_map_count"), "{msg}");
        // The hub keeps working afterwards.
        assert_eq!(greenio::spawn(|| 3).join().unwrap(), 3);
    });
}

/// `JoinHandle<T>` is `Send + Sync` for every `T: Send`, as std's is: a
/// handle to a `Cell` result (Send, not Sync) can be shared with an OS
/// thread by reference.
#[test]
fn join_handle_is_sync_for_send_but_not_sync_results() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    greenio::run(|| {
        let h = greenio::spawn(|| std::cell::Cell::new(7u32));
        assert_send_sync(&h);
        let finished = std::thread::scope(|s| {
            let watcher = s.spawn(|| {
                let t = std::time::Instant::now();
                while !h.is_finished() && t.elapsed() < std::time::Duration::from_secs(30) {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                h.is_finished()
            });
            // Let the child run while the OS thread watches its handle.
            greenio::yield_now();
            watcher.join().unwrap()
        });
        assert!(finished);
        assert_eq!(h.join().unwrap().get(), 7);
    });
}
