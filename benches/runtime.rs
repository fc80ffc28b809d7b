//! Micro benchmarks of the runtime, each against its raw or OS peer,
//! measured in the same run:
//!
//! * yield round trip between two green threads vs a raw corosensei
//!   resume + suspend (the floor for a stackful switch);
//! * spawn + join of an empty green thread vs `std::thread::spawn` + join;
//! * unpark from another OS thread until the green thread runs (latency)
//!   vs a raw eventfd write -> `epoll_wait` wake-up of a sleeping thread;
//! * spawn + join vs a raw corosensei coroutine created on a reused stack
//!   and run to completion;
//! * cold spawns: 30,000 green threads that each sleep (fresh stacks).
//!   `COLD=1000000` runs a million instead (raise `vm.max_map_count`).
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

/// ns per raw corosensei coroutine created on a reused stack and run to
/// completion (the floor for spawn + join).
fn raw_create_run(n: u64) -> f64 {
    let mut stack = Some(corosensei::stack::DefaultStack::new(128 * 1024).unwrap());
    let t = Instant::now();
    for i in 0..n {
        let mut co = Coroutine::with_stack(
            stack.take().unwrap(),
            move |_y: &corosensei::Yielder<(), ()>, ()| {
                black_box(i);
            },
        );
        match co.resume(()) {
            CoroutineResult::Return(()) => {}
            CoroutineResult::Yield(()) => unreachable!(),
        }
        stack = Some(co.into_stack());
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

/// ns from an eventfd write on one OS thread until another thread sleeping
/// in `epoll_wait` on it runs (median of `n`): the floor for `unpark_latency`.
fn raw_eventfd_latency(n: u64) -> f64 {
    use std::os::fd::AsRawFd;
    let poll = mio::Poll::new().unwrap();
    let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(1)).unwrap());
    let woke = Arc::new(AtomicU64::new(0));
    let stamp = Arc::new(AtomicU64::new(0));
    let base = Instant::now();
    let (w2, s2, k2) = (woke.clone(), stamp.clone(), waker.clone());
    let waker_thread = std::thread::spawn(move || {
        for i in 0..n {
            std::thread::sleep(Duration::from_micros(50));
            s2.store(base.elapsed().as_nanos() as u64, Ordering::SeqCst);
            k2.wake().unwrap();
            let t = Instant::now();
            while w2.load(Ordering::SeqCst) <= i {
                if t.elapsed() > Duration::from_secs(5) {
                    panic!("wake-up lost");
                }
                std::hint::spin_loop();
            }
        }
    });
    let mut poll = poll;
    let _ = poll.as_raw_fd();
    let mut events = mio::Events::with_capacity(8);
    let mut lat = Vec::with_capacity(n as usize);
    while (lat.len() as u64) < n {
        poll.poll(&mut events, None).unwrap();
        if events.iter().next().is_none() {
            continue;
        }
        let now = base.elapsed().as_nanos() as u64;
        lat.push(now.saturating_sub(stamp.load(Ordering::SeqCst)) as f64);
        woke.fetch_add(1, Ordering::SeqCst);
    }
    waker_thread.join().unwrap();
    median(&mut lat)
}

/// ms to spawn `n` green threads that each sleep (so every one needs its
/// own fresh stack), until all have run once.
fn cold_spawn_ms(n: usize) -> f64 {
    greenio::run(|| {
        let started = Arc::new(AtomicU64::new(0));
        let t = Instant::now();
        let mut hs = Vec::with_capacity(n);
        for _ in 0..n {
            let s = started.clone();
            hs.push(greenio::spawn(move || {
                s.fetch_add(1, Ordering::Relaxed);
                greenio::sleep(Duration::from_secs(3600));
            }));
        }
        while started.load(Ordering::Relaxed) < n as u64 {
            greenio::yield_now();
        }
        let ms = t.elapsed().as_secs_f64() * 1e3;
        for h in hs {
            h.cancel();
        }
        ms
    })
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
    if std::env::args().any(|a| a == "--cold-only") {
        let n = std::env::var("COLD")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30_000);
        println!("cold spawn of {n}: {:.1} ms", cold_spawn_ms(n));
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
        Row {
            name: "raw corosensei create on reused stack + run",
            samples: vec![],
        },
        Row {
            name: "raw eventfd write -> epoll_wait wake",
            samples: vec![],
        },
        Row {
            name: "cold spawn of 30,000 sleepers (ms)",
            samples: vec![],
        },
    ];
    for _ in 0..rounds {
        rows[0].samples.push(raw_corosensei(2_000_000 * scale));
        rows[1].samples.push(green_yield(1_000_000 * scale));
        rows[2].samples.push(green_spawn_join(200_000 * scale));
        rows[3].samples.push(os_spawn_join(2_000));
        rows[4].samples.push(unpark_latency(500));
        rows[5].samples.push(raw_create_run(2_000_000 * scale));
        rows[6].samples.push(raw_eventfd_latency(500));
        rows[7].samples.push(cold_spawn_ms(30_000));
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
        "yield round trip / raw switch pair: {:.2}x (target <= 6x)",
        y / raw
    );
    println!(
        "spawn+join / raw create+run: {:.2}x (target <= 4x)",
        sj / rows[5].med()
    );
    println!(
        "unpark latency / raw eventfd wake: {:.2}x (target <= 1.5x)",
        rows[4].med() / rows[6].med()
    );
    println!(
        "cold spawn of 30,000: {:.1} ms (target <= 100 ms)",
        rows[7].med()
    );
    println!("std::thread spawn+join / green spawn+join: {:.0}x", os / sj);
}
