//! Benchmarks of greenio's channels and Mutex against OS-thread peers,
//! measured in the same run:
//!
//! * channel ping-pong (one round trip = two messages) between two green
//!   threads on one hub, on two hubs, and between two OS threads with
//!   crossbeam-channel and `std::sync::mpsc`;
//! * Mutex lock + unlock, uncontended and contended, next to `std`'s;
//! * scaling: a CPU-light message-passing workload (pairs of green threads
//!   exchanging messages, a little hashing per message) on 1 hub vs 2.
//!
//! Run: `cargo bench --bench sync` (add `-- --quick` for a short run, or
//! `-- WORD` to run only the cases whose name contains WORD).
//! Prints the median of several rounds and the spread (min..max).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use greenio::sync::{channel, Mutex};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// ns per round trip between two green threads; `remote` puts the echo
/// green thread on hub 1.
fn green_ping_pong(n: u64, remote: bool) -> f64 {
    let hubs = if remote { 2 } else { 1 };
    let rt = greenio::Runtime::builder().hubs(hubs).build().unwrap();
    rt.run(move || {
        let (a_tx, a_rx) = channel::<u64>();
        let (b_tx, b_rx) = channel::<u64>();
        let echo = move || {
            while let Ok(v) = a_rx.recv() {
                if b_tx.send(v + 1).is_err() {
                    break;
                }
            }
        };
        let h = if remote {
            greenio::spawn_on(1, echo)
        } else {
            greenio::spawn(echo)
        };
        // Warm up.
        for i in 0..1000 {
            a_tx.send(i).unwrap();
            b_rx.recv().unwrap();
        }
        let t = Instant::now();
        let mut v = 0;
        for _ in 0..n {
            a_tx.send(v).unwrap();
            v = b_rx.recv().unwrap();
        }
        let ns = t.elapsed().as_nanos() as f64 / n as f64;
        black_box(v);
        drop(a_tx);
        h.join().unwrap();
        ns
    })
}

/// ns per round trip between two OS threads over crossbeam-channel.
fn crossbeam_ping_pong(n: u64) -> f64 {
    let (a_tx, a_rx) = crossbeam_channel::unbounded::<u64>();
    let (b_tx, b_rx) = crossbeam_channel::unbounded::<u64>();
    let h = std::thread::spawn(move || {
        while let Ok(v) = a_rx.recv() {
            if b_tx.send(v + 1).is_err() {
                break;
            }
        }
    });
    for i in 0..1000 {
        a_tx.send(i).unwrap();
        b_rx.recv().unwrap();
    }
    let t = Instant::now();
    let mut v = 0;
    for _ in 0..n {
        a_tx.send(v).unwrap();
        v = b_rx.recv().unwrap();
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    black_box(v);
    drop(a_tx);
    h.join().unwrap();
    ns
}

/// ns per round trip between two OS threads over `std::sync::mpsc`.
fn std_ping_pong(n: u64) -> f64 {
    let (a_tx, a_rx) = std::sync::mpsc::channel::<u64>();
    let (b_tx, b_rx) = std::sync::mpsc::channel::<u64>();
    let h = std::thread::spawn(move || {
        while let Ok(v) = a_rx.recv() {
            if b_tx.send(v + 1).is_err() {
                break;
            }
        }
    });
    for i in 0..1000 {
        a_tx.send(i).unwrap();
        b_rx.recv().unwrap();
    }
    let t = Instant::now();
    let mut v = 0;
    for _ in 0..n {
        a_tx.send(v).unwrap();
        v = b_rx.recv().unwrap();
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    black_box(v);
    drop(a_tx);
    h.join().unwrap();
    ns
}

/// ns per uncontended lock + unlock of greenio's Mutex, in a green thread.
fn mutex_uncontended(n: u64) -> f64 {
    greenio::run(move || {
        let m = Mutex::new(0u64);
        let t = Instant::now();
        for _ in 0..n {
            *black_box(&m).lock() += 1;
        }
        let ns = t.elapsed().as_nanos() as f64 / n as f64;
        black_box(m.into_inner());
        ns
    })
}

/// ns per uncontended lock + unlock of `std::sync::Mutex`.
fn std_mutex_uncontended(n: u64) -> f64 {
    let m = std::sync::Mutex::new(0u64);
    let t = Instant::now();
    for _ in 0..n {
        *black_box(&m).lock().unwrap() += 1;
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    black_box(m.into_inner().unwrap());
    ns
}

/// ns per lock + unlock, 8 green threads on one hub that each yield while
/// holding the lock (every lock parks and every unlock wakes).
fn mutex_contended_one_hub(n: u64) -> f64 {
    const T: u64 = 8;
    greenio::run(move || {
        let m = Arc::new(Mutex::new(0u64));
        let t = Instant::now();
        let hs: Vec<_> = (0..T)
            .map(|_| {
                let m = m.clone();
                greenio::spawn(move || {
                    for _ in 0..n / T {
                        let mut g = m.lock();
                        *g += 1;
                        greenio::yield_now();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let ns = t.elapsed().as_nanos() as f64 / (n / T * T) as f64;
        black_box(*m.lock());
        ns
    })
}

/// ns per lock + unlock, 4 green threads on each of 2 hubs hammering one
/// lock (short critical section, cross-thread contention).
fn mutex_contended_two_hubs(n: u64) -> f64 {
    const T: u64 = 8;
    let rt = greenio::Runtime::builder().hubs(2).build().unwrap();
    rt.run(move || {
        let m = Arc::new(Mutex::new(0u64));
        let t = Instant::now();
        let hs: Vec<_> = (0..T)
            .map(|i| {
                let m = m.clone();
                greenio::spawn_on(i as usize % 2, move || {
                    for k in 0..n / T {
                        *m.lock() += 1;
                        if k % 64 == 0 {
                            greenio::yield_now();
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let ns = t.elapsed().as_nanos() as f64 / (n / T * T) as f64;
        black_box(*m.lock());
        ns
    })
}

/// ns per lock + unlock, 2 OS threads hammering one `std::sync::Mutex`.
fn std_mutex_contended(n: u64) -> f64 {
    const T: u64 = 2;
    let m = Arc::new(std::sync::Mutex::new(0u64));
    let t = Instant::now();
    let hs: Vec<_> = (0..T)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                for _ in 0..n / T {
                    *m.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let ns = t.elapsed().as_nanos() as f64 / (n / T * T) as f64;
    black_box(*m.lock().unwrap());
    ns
}

/// A little CPU work per message.
fn work(mut x: u64) -> u64 {
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

/// Messages per second: 64 pairs of green threads (both ends of a pair on
/// one hub, pairs spread over the hubs) exchange `n` messages in all,
/// hashing each.
fn scaling(n: u64, hubs: usize) -> f64 {
    const PAIRS: u64 = 64;
    let rt = greenio::Runtime::builder().hubs(hubs).build().unwrap();
    rt.run(move || {
        let per_pair = n / PAIRS;
        let t = Instant::now();
        let hs: Vec<_> = (0..PAIRS)
            .map(|p| {
                greenio::spawn_on(p as usize % hubs, move || {
                    let (a_tx, a_rx) = channel::<u64>();
                    let (b_tx, b_rx) = channel::<u64>();
                    let echo = greenio::spawn(move || {
                        while let Ok(v) = a_rx.recv() {
                            if b_tx.send(work(v)).is_err() {
                                break;
                            }
                        }
                    });
                    let mut v = p + 1;
                    for _ in 0..per_pair / 2 {
                        a_tx.send(work(v)).unwrap();
                        v = b_rx.recv().unwrap();
                    }
                    drop(a_tx);
                    echo.join().unwrap();
                    v
                })
            })
            .collect();
        for h in hs {
            black_box(h.join().unwrap());
        }
        (per_pair / 2 * 2 * PAIRS) as f64 / t.elapsed().as_secs_f64()
    })
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // Other arguments (not `--...`) select cases by substring.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rounds = if quick { 3 } else { 7 };
    let scale = if quick { 1 } else { 5 };
    let n_pp = 40_000 * scale;
    let n_mutex = 2_000_000 * scale;
    let n_scale = 100_000 * scale;

    type Case = (&'static str, &'static str, Box<dyn Fn() -> f64>);
    let cases: Vec<Case> = vec![
        (
            "ping-pong, green threads, same hub",
            "ns/round trip",
            Box::new(move || green_ping_pong(n_pp, false)),
        ),
        (
            "ping-pong, green threads, 2 hubs",
            "ns/round trip",
            Box::new(move || green_ping_pong(n_pp / 4, true)),
        ),
        (
            "ping-pong, crossbeam-channel, 2 OS threads",
            "ns/round trip",
            Box::new(move || crossbeam_ping_pong(n_pp / 4)),
        ),
        (
            "ping-pong, std::sync::mpsc, 2 OS threads",
            "ns/round trip",
            Box::new(move || std_ping_pong(n_pp / 4)),
        ),
        (
            "Mutex lock+unlock, uncontended",
            "ns/op",
            Box::new(move || mutex_uncontended(n_mutex)),
        ),
        (
            "std Mutex lock+unlock, uncontended",
            "ns/op",
            Box::new(move || std_mutex_uncontended(n_mutex)),
        ),
        (
            "Mutex, 8 green threads, 1 hub, yield inside",
            "ns/op",
            Box::new(move || mutex_contended_one_hub(n_mutex / 20)),
        ),
        (
            "Mutex, 8 green threads on 2 hubs",
            "ns/op",
            Box::new(move || mutex_contended_two_hubs(n_mutex / 4)),
        ),
        (
            "std Mutex, 2 OS threads",
            "ns/op",
            Box::new(move || std_mutex_contended(n_mutex / 4)),
        ),
        (
            "scaling: 64 pairs, hubs(1)",
            "msgs/s",
            Box::new(move || scaling(n_scale, 1)),
        ),
        (
            "scaling: 64 pairs, hubs(2)",
            "msgs/s",
            Box::new(move || scaling(n_scale, 2)),
        ),
    ];

    println!("greenio sync benchmarks: median of {rounds} rounds (min..max)\n");
    println!("{:<46} {:>14} {:>26}  unit", "case", "median", "spread");
    let mut medians = Vec::new();
    for (name, unit, f) in &cases {
        if !filters.is_empty() && !filters.iter().any(|p| name.contains(p.as_str())) {
            medians.push(f64::NAN);
            continue;
        }
        let mut samples: Vec<f64> = (0..rounds).map(|_| f()).collect();
        let min = samples.iter().cloned().fold(f64::MAX, f64::min);
        let max = samples.iter().cloned().fold(0.0, f64::max);
        let med = median(&mut samples);
        medians.push(med);
        println!(
            "{name:<46} {med:>14.1} {:>26}  {unit}",
            format!("{min:.1}..{max:.1}")
        );
    }
    let best_os = medians[2].min(medians[3]);
    println!(
        "\nsame-hub ping-pong vs the best OS-thread pair: {:.1}x faster",
        best_os / medians[0]
    );
    println!(
        "hubs(2) vs hubs(1) throughput: {:.2}x",
        medians[10] / medians[9]
    );
}
