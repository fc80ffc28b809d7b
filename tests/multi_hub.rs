//! Runtimes with several hubs: green threads really run on several OS
//! threads, stay on the hub they started on, spread at spawn time, and
//! talk through channels and locks across hubs and with OS threads.

mod util;

use std::collections::HashSet;
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::Duration;

use greenio::sync::{bounded, channel, Mutex};

const LONG: Duration = Duration::from_secs(30);

/// Runs `f` on `hubs` hubs; aborts the test binary if it hangs for two
/// minutes.
fn run<T>(hubs: usize, f: impl FnOnce() -> T) -> T {
    util::run_hubs("multi_hub", hubs, f)
}

#[test]
fn two_hubs_run_on_two_os_threads() {
    let main_thread = std::thread::current().id();
    let (ids, hubs) = run(2, || {
        let mine = (std::thread::current().id(), greenio::current().hub());
        let theirs = greenio::spawn_on(1, || {
            (std::thread::current().id(), greenio::current().hub())
        })
        .join()
        .unwrap();
        assert_eq!(greenio::hub_count(), 2);
        ([mine.0, theirs.0], [mine.1, theirs.1])
    });
    assert_eq!(hubs, [0, 1]);
    assert_ne!(ids[0], ids[1], "hub 1 must run on its own OS thread");
    assert_eq!(ids[0], main_thread, "hub 0 runs on the caller's thread");
}

#[test]
fn green_threads_never_migrate() {
    run(2, || {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                greenio::spawn_on(i % 2, move || {
                    let start: ThreadId = std::thread::current().id();
                    for _ in 0..50 {
                        greenio::yield_now();
                        greenio::sleep(Duration::from_micros(100));
                        assert_eq!(std::thread::current().id(), start, "migrated");
                    }
                    (i % 2, greenio::current().hub())
                })
            })
            .collect();
        for h in hs {
            let (wanted, got) = h.join().unwrap();
            assert_eq!(wanted, got);
        }
    });
}

#[test]
fn spawn_balanced_uses_every_hub() {
    let used = run(3, || {
        let (tx, rx) = channel::<()>();
        let hs: Vec<_> = (0..12)
            .map(|_| {
                let rx = rx.clone();
                greenio::spawn_balanced(move || {
                    let hub = greenio::current().hub();
                    // Stay alive so the balancer sees the load.
                    let _ = rx.recv_timeout(LONG);
                    hub
                })
            })
            .collect();
        // Give the remote hubs time to start their green threads.
        greenio::sleep(Duration::from_millis(20));
        drop(tx);
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .collect::<HashSet<usize>>()
    });
    assert_eq!(used.len(), 3, "balanced spawns used hubs {used:?}");
}

#[test]
fn ping_pong_across_hubs() {
    run(2, || {
        let (a_tx, a_rx) = bounded::<u64>(0);
        let (b_tx, b_rx) = bounded::<u64>(0);
        let echo = greenio::spawn_on(1, move || {
            let mut n = 0;
            while let Ok(v) = a_rx.recv() {
                b_tx.send(v + 1).unwrap();
                n += 1;
            }
            n
        });
        let mut v = 0;
        for _ in 0..5_000 {
            a_tx.send(v).unwrap();
            v = b_rx.recv_timeout(LONG).unwrap();
        }
        drop(a_tx);
        assert_eq!(v, 5_000);
        assert_eq!(echo.join().unwrap(), 5_000);
    });
}

#[test]
fn shared_mutex_and_channel_between_hubs_and_an_os_thread() {
    run(2, || {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = channel::<(usize, u32)>();
        let mut hs = Vec::new();
        for hub in 0..2 {
            let (log, tx) = (log.clone(), tx.clone());
            hs.push(greenio::spawn_on(hub, move || {
                for i in 0..100 {
                    log.lock().push((hub, i));
                    tx.send((hub, i)).unwrap();
                    if i % 10 == 0 {
                        greenio::yield_now();
                    }
                }
            }));
        }
        let (log2, tx2) = (log.clone(), tx.clone());
        let os = std::thread::spawn(move || {
            for i in 0..100 {
                log2.lock().push((2, i));
                tx2.send((2, i)).unwrap();
            }
        });
        drop(tx);
        let mut got = vec![0u32; 3];
        for (who, i) in rx.iter() {
            assert_eq!(i, got[who], "per-sender order");
            got[who] += 1;
        }
        for h in hs {
            h.join().unwrap();
        }
        greenio::unblock(move || os.join()).unwrap();
        assert_eq!(got, [100, 100, 100]);
        assert_eq!(log.lock().len(), 300);
    });
}

#[test]
fn cancel_a_green_thread_parked_on_another_hub() {
    run(2, || {
        let (tx, rx) = channel::<u32>();
        let rx1 = rx.clone();
        let victim = greenio::spawn_on(1, move || rx1.recv());
        // Let it park on hub 1.
        greenio::sleep(Duration::from_millis(10));
        let rx2 = rx.clone();
        let other = greenio::spawn_on(1, move || rx2.recv_timeout(LONG));
        greenio::sleep(Duration::from_millis(10));
        victim.cancel();
        assert!(victim.join().unwrap_err().is_cancelled());
        tx.send(3).unwrap();
        assert_eq!(other.join().unwrap(), Ok(3));
    });
}
