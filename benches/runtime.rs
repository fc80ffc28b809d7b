//! Micro benchmarks of the runtime, each against its raw or OS peer,
//! measured in the same run:
//!
//! * yield round trip between two green threads vs a raw corosensei
//!   resume + suspend (the floor for a stackful switch);
//! * spawn + join of an empty green thread vs `std::thread::spawn` + join;
//! * unpark from another OS thread until the green thread runs (latency).
//!
//! Run: `cargo bench --bench runtime` (add `-- --quick` for a short run).
//! Prints medians over several rounds and their spread (min..max).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corosensei::{Coroutine, CoroutineResult};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

struct Row {
    name: &'static str,
    samples: Vec<f64>,
}

impl Row {
    fn med(&self) -> f64 {
        let mut v = self.samples.clone();
        median(&mut v)
    }
    fn spread(&self) -> (f64, f64) {
        let min = self.samples.iter().cloned().fold(f64::MAX, f64::min);
        let max = self.samples.iter().cloned().fold(0.0, f64::max);
        (min, max)
    }
}

/// ns per raw resume + suspend pair.
fn raw_corosensei(n: u64) -> f64 {
    let mut co = Coroutine::new(|y, mut x: u64| loop {
        x = y.suspend(black_box(x));
    });
    co.resume(0);
    let t = Instant::now();
    for i in 0..n {
        match co.resume(i) {
            CoroutineResult::Yield(v) => {
                black_box(v);
            }
            CoroutineResult::Return(()) => unreachable!(),
        }
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

/// ns per yield round trip: green thread A yields, B runs and yields, A runs again.
fn green_yield(n: u64) -> f64 {
    greenio::run(|| {
        let other = greenio::spawn(move || {
            for _ in 0..n {
                greenio::yield_now();
            }
        });
        greenio::yield_now();
        let t = Instant::now();
        for _ in 0..n {
            greenio::yield_now();
        }
        let el = t.elapsed();
        other.join().unwrap();
        el.as_nanos() as f64 / n as f64
    })
}

/// ns per spawn + join of an empty green thread (stacks pooled).
fn green_spawn_join(n: u64) -> f64 {
    greenio::run(|| {
        for _ in 0..100 {
            greenio::spawn(|| ()).join().unwrap();
        }
        let t = Instant::now();
        for _ in 0..n {
            greenio::spawn(|| ()).join().unwrap();
        }
        t.elapsed().as_nanos() as f64 / n as f64
    })
}

fn os_spawn_join(n: u64) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        std::thread::spawn(|| ()).join().unwrap();
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

/// ns from `unpark` on a plain OS thread until the parked green thread
/// runs (median of `n` wake-ups); the hub sleeps in epoll between them.
fn unpark_latency(n: u64) -> f64 {
    greenio::run(|| {
        let woke = Arc::new(AtomicU64::new(0));
        let stamp = Arc::new(AtomicU64::new(0));
        let base = Instant::now();
        let u = greenio::current().unparker();
        let (w2, s2) = (woke.clone(), stamp.clone());
        let waker = std::thread::spawn(move || {
            for i in 0..n {
                std::thread::sleep(Duration::from_micros(50));
                s2.store(base.elapsed().as_nanos() as u64, Ordering::SeqCst);
                u.unpark();
                let t = Instant::now();
                while w2.load(Ordering::SeqCst) <= i {
                    if t.elapsed() > Duration::from_secs(5) {
                        panic!("wake-up lost");
                    }
                    std::hint::spin_loop();
                }
            }
        });
        let mut lat = Vec::with_capacity(n as usize);
        for _ in 0..n {
            greenio::park();
            let now = base.elapsed().as_nanos() as u64;
            lat.push(now.saturating_sub(stamp.load(Ordering::SeqCst)) as f64);
            woke.fetch_add(1, Ordering::SeqCst);
        }
        greenio::unblock(move || waker.join().unwrap());
        median(&mut lat)
    })
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "--spawn-only") {
        let n = std::env::var("N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2_000_000);
        println!("spawn+join: {:.1} ns", green_spawn_join(n));
        return;
    }
    if std::env::args().any(|a| a == "--yield-only") {
        let n = std::env::var("N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000_000);
        println!("yield round trip: {:.1} ns", green_yield(n));
        return;
    }
    let rounds = if quick { 3 } else { 7 };
    let scale = if quick { 1 } else { 4 };
    let mut rows = vec![
        Row {
            name: "raw corosensei resume+suspend",
            samples: vec![],
        },
        Row {
            name: "green yield round trip",
            samples: vec![],
        },
        Row {
            name: "green spawn+join (empty)",
            samples: vec![],
        },
        Row {
            name: "std::thread spawn+join",
            samples: vec![],
        },
        Row {
            name: "unpark from OS thread -> run",
            samples: vec![],
        },
    ];
    for _ in 0..rounds {
        rows[0].samples.push(raw_corosensei(2_000_000 * scale));
        rows[1].samples.push(green_yield(1_000_000 * scale));
        rows[2].samples.push(green_spawn_join(200_000 * scale));
        rows[3].samples.push(os_spawn_join(2_000));
        rows[4].samples.push(unpark_latency(500));
    }
    println!("| benchmark | median ns | min..max ns |");
    println!("|---|---:|---:|");
    for r in &rows {
        let (lo, hi) = r.spread();
        println!("| {} | {:.1} | {:.1}..{:.1} |", r.name, r.med(), lo, hi);
    }
    let raw = rows[0].med();
    let y = rows[1].med();
    let sj = rows[2].med();
    let os = rows[3].med();
    println!();
    println!(
        "yield round trip / raw switch pair: {:.2}x (target <= 2x + 10 ns, i.e. <= {:.1} ns)",
        y / raw,
        2.0 * raw + 10.0
    );
    println!(
        "std::thread spawn+join / green spawn+join: {:.0}x (target >= 10x; green target < 150 ns)",
        os / sj
    );
}
