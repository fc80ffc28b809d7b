//! Safety nets for cooperative code (issue 11): spawn sites, the blocking
//! watchdog, the fair budget, stack high-water marks and dump on signal.

mod util;

use std::io::{Read, Write};
use std::panic::Location;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use greenio::net::{Server, TcpStream};

/// Every `greenio` log record of this process, with when it was logged.
static LOGS: Mutex<Vec<(Instant, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.target().starts_with("greenio")
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            let line = format!("{}", r.args());
            LOGS.lock().unwrap().push((Instant::now(), line));
        }
    }
    fn flush(&self) {}
}

/// Installs the capturing logger (once per process).
fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Warn);
    });
}

/// The captured lines that contain every one of `needles`.
fn logged(needles: &[&str]) -> Vec<(Instant, String)> {
    LOGS.lock()
        .unwrap()
        .iter()
        .filter(|(_, l)| needles.iter().all(|n| l.contains(n)))
        .cloned()
        .collect()
}

/// The `file:line` of the caller, to compare with a recorded spawn site.
#[track_caller]
fn here() -> (&'static str, u32) {
    let l = Location::caller();
    (l.file(), l.line())
}

fn site_of(l: &'static Location<'static>) -> (&'static str, u32) {
    (l.file(), l.line())
}

// ----- spawn sites -----------------------------------------------------------

#[test]
fn every_spawn_entry_point_records_the_callers_line() {
    let rt = greenio::Runtime::builder().hubs(2).build().unwrap();
    rt.run(|| {
        let (h, at) = (greenio::spawn(|| ()), here());
        assert_eq!(site_of(h.thread().spawn_site()), at, "spawn");
        let (h, at) = (greenio::spawn_on(1, || ()), here());
        assert_eq!(site_of(h.thread().spawn_site()), at, "spawn_on");
        let (h, at) = (greenio::spawn_balanced(|| ()), here());
        assert_eq!(site_of(h.thread().spawn_site()), at, "spawn_balanced");
        let (h, at) = (greenio::Builder::new().spawn(|| ()).unwrap(), here());
        assert_eq!(site_of(h.thread().spawn_site()), at, "Builder::spawn");
        let (h, at) = (greenio::Builder::new().spawn_on(1, || ()).unwrap(), here());
        assert_eq!(site_of(h.thread().spawn_site()), at, "Builder::spawn_on");

        let g = greenio::Group::new();
        let (h, at) = (g.spawn(|| ()), here());
        assert_eq!(site_of(h.thread().spawn_site()), at, "Group::spawn");
        let (h, at) = (g.spawn_on(1, || ()), here());
        assert_eq!(site_of(h.thread().spawn_site()), at, "Group::spawn_on");
        let (h, at) = (g.spawn_balanced(|| ()), here());
        assert_eq!(
            site_of(h.thread().spawn_site()),
            at,
            "Group::spawn_balanced"
        );
        g.join_all();

        // main's site is the `run` call.
        assert_eq!(greenio::current().spawn_site().file(), file!());
    });
}

#[test]
fn server_connections_record_the_servers_creation_site() {
    util::run("server spawn site", || {
        let (tx, rx) = greenio::sync::channel();
        let at = (file!(), line!() + 1);
        let server = Server::bind("127.0.0.1:0", move |mut conn: TcpStream, _| {
            let me = greenio::current();
            tx.send(site_of(me.spawn_site())).unwrap();
            let _ = conn.write_all(b"x");
        })
        .unwrap();
        let addr = server.local_addr().unwrap();
        let handle = server.handle();
        let serving = greenio::spawn(move || server.serve());
        let mut c = TcpStream::connect(addr).unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        assert_eq!(rx.recv().unwrap(), at);
        handle.stop(Duration::from_secs(1));
        serving.join().unwrap().unwrap();
    });
}

#[test]
fn dump_prints_spawn_sites() {
    greenio::run(|| {
        let b = greenio::Builder::new().name("site-sleeper");
        let (h, at) = (b.spawn(|| greenio::sleep(Duration::from_secs(60))), here());
        let h = h.unwrap();
        greenio::yield_now();
        let text = greenio::dump().to_string();
        let line = text
            .lines()
            .find(|l| l.contains("site-sleeper"))
            .unwrap_or_else(|| panic!("no line for the sleeper in:\n{text}"));
        assert!(
            line.contains(&format!("spawned at {}:{}", at.0, at.1)),
            "{line}"
        );
        h.cancel();
    });
}

// ----- the blocking watchdog -------------------------------------------------

#[test]
fn watchdog_warns_during_a_blocking_call_naming_the_green_thread_and_site() {
    capture_logs();
    util::run("watchdog", || {
        let b = greenio::Builder::new().name("blocker-1s");
        let at = (file!(), line!() + 1);
        let h = b.spawn(|| {
            std::thread::sleep(Duration::from_secs(1));
            Instant::now()
        });
        let ended = h.unwrap().join().unwrap();

        let who = "green thread 'blocker-1s' (id ";
        let warned = logged(&["is blocked", who]);
        assert_eq!(warned.len(), 1, "one warning per stall: {warned:?}");
        let (when, line) = &warned[0];
        assert!(*when < ended, "the warning came after the stall: {line}");
        assert!(line.contains("hub 0"), "{line}");
        assert!(
            line.contains(&format!("spawned at {}:{}:", at.0, at.1)),
            "{line}"
        );
        assert!(line.contains("greenio::unblock"), "{line}");
        assert!(line.contains("without parking"), "{line}");

        // One more line once the monitor sees the hub turn again.
        let limit = Instant::now() + Duration::from_secs(10);
        while logged(&["running again", who]).is_empty() && Instant::now() < limit {
            greenio::sleep(Duration::from_millis(10));
        }
        let ended_lines = logged(&["running again", who]);
        assert_eq!(ended_lines.len(), 1, "{ended_lines:?}");
        assert!(ended_lines[0].0 >= ended);
        assert_eq!(greenio::stats().stalls, 1);
    });
}

#[test]
fn watchdog_off_with_zero() {
    capture_logs();
    let rt = greenio::Runtime::builder()
        .max_blocking_time(Duration::ZERO)
        .build()
        .unwrap();
    let stalls = rt.run(|| {
        greenio::Builder::new()
            .name("blocker-unwatched")
            .spawn(|| std::thread::sleep(Duration::from_millis(300)))
            .unwrap()
            .join()
            .unwrap();
        greenio::stats().stalls
    });
    assert_eq!(stalls, 0);
    assert!(logged(&["'blocker-unwatched'"]).is_empty());
}

const CHILD: &str = "GREENIO_SAFETY_CHILD";

#[test]
fn no_warning_for_fifty_green_threads_sleeping_in_a_loop() {
    util::in_child(
        CHILD,
        "no_warning_for_fifty_green_threads_sleeping_in_a_loop",
        || {
            capture_logs();
            let stalls = greenio::run(|| {
                let hs: Vec<_> = (0..50)
                    .map(|i| {
                        greenio::spawn(move || {
                            for _ in 0..200 {
                                greenio::sleep(Duration::from_millis(1 + i % 5));
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.join().unwrap();
                }
                greenio::stats().stalls
            });
            let lines = logged(&["greenio: hub"]);
            assert!(lines.is_empty(), "false warnings: {lines:?}");
            assert_eq!(stalls, 0);
        },
    );
}

// ----- the fair budget -------------------------------------------------------

/// A generous bound for a 1 ms sleep next to a green thread that never
/// needs to park (it was 1.4 s before the budget); not a speed measurement.
const SLEEP_BOUND: Duration = Duration::from_millis(500);

#[test]
fn a_sleep_returns_while_another_green_thread_drains_ten_million_messages() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    const N: u64 = 10_000_000;
    util::run("budget: channel", || {
        let (tx, rx) = greenio::sync::channel::<u8>();
        for _ in 0..N {
            tx.send(1).unwrap();
        }
        let got = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let (g, d) = (got.clone(), done.clone());
        let drainer = greenio::spawn(move || {
            for _ in 0..N {
                rx.recv().unwrap();
                g.fetch_add(1, Ordering::Relaxed);
            }
            d.store(true, Ordering::SeqCst);
        });
        greenio::yield_now(); // the drainer starts
        let t = Instant::now();
        greenio::sleep(Duration::from_millis(1));
        let slept = t.elapsed();
        let was_draining = !done.load(Ordering::SeqCst);
        let at = got.load(Ordering::Relaxed);
        drainer.join().unwrap();
        assert!(
            was_draining,
            "the drainer finished first; the test proves nothing"
        );
        assert!(at > 0, "the drainer never ran");
        assert!(slept < SLEEP_BOUND, "a 1 ms sleep took {slept:?}");
    });
}

#[test]
fn a_sleep_returns_while_another_green_thread_reads_a_flooded_socket() {
    use greenio::net::TcpListener;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    util::run("budget: socket", || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        // An OS thread floods the socket one byte per write.
        let flooder = std::thread::spawn(move || {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.set_write_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let mut sent = 0u64;
            while !s2.load(Ordering::SeqCst) {
                match c.write(&[7]) {
                    Ok(n) => sent += n as u64,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => break,
                }
            }
            sent
        });
        let (mut conn, _) = l.accept().unwrap();
        // Let the kernel buffer fill, so the reader never runs dry.
        greenio::sleep(Duration::from_millis(200));
        let reading = Arc::new(AtomicBool::new(true));
        let r2 = reading.clone();
        // The reader takes 10 µs per byte (say, parsing), so
        // the flooder stays ahead and every read finds data: without the
        // budget it would never park, and the sleep below would last the
        // reader's whole 2 s.
        let reader = greenio::spawn(move || {
            let (mut b, mut n, t0) = ([0u8; 1], 0u64, Instant::now());
            while r2.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(2) {
                conn.read_exact(&mut b).unwrap();
                n += 1;
                let parse = Instant::now();
                while parse.elapsed() < Duration::from_micros(10) {}
            }
            n
        });
        greenio::yield_now(); // the reader starts
        let t = Instant::now();
        greenio::sleep(Duration::from_millis(1));
        let slept = t.elapsed();
        reading.store(false, Ordering::SeqCst);
        let read = reader.join().unwrap();
        stop.store(true, Ordering::SeqCst);
        let sent = flooder.join().unwrap();
        assert!(read > 0 && sent >= read, "read {read} of {sent}");
        assert!(slept < SLEEP_BOUND, "a 1 ms sleep took {slept:?}");
    });
}

#[test]
fn blocking_operations_that_do_not_park_yield_after_the_budget_and_try_never_does() {
    use std::cell::Cell;
    use std::rc::Rc;
    greenio::run(|| {
        let (tx, rx) = greenio::sync::channel::<u32>();
        for i in 0..1000 {
            tx.send(i).unwrap(); // unbounded: never parks, never yields
        }
        let turns = Rc::new(Cell::new(0u64));
        let t2 = turns.clone();
        let _other = greenio::spawn(move || loop {
            t2.set(t2.get() + 1);
            greenio::yield_now();
        });
        greenio::yield_now();

        let before = turns.get();
        for _ in 0..500 {
            rx.try_recv().unwrap();
        }
        assert_eq!(turns.get(), before, "try_recv let another green thread run");

        let switches = greenio::stats().switches;
        let before = turns.get();
        for _ in 0..128 {
            rx.recv().unwrap();
        }
        assert_eq!(turns.get(), before, "yielded before the budget was spent");
        for _ in 0..372 {
            rx.recv().unwrap();
        }
        assert!(turns.get() > before, "500 receives never yielded");
        assert!(greenio::stats().switches > switches);
    });
}

// ----- stack high-water marks --------------------------------------------------

#[test]
fn dump_and_stats_show_stack_high_water_marks() {
    greenio::run(|| {
        /// Touches 40 KiB of stack, then parks until cancelled.
        fn deep() {
            let pad = std::hint::black_box([7u8; 40 * 1024]);
            greenio::sleep(Duration::from_secs(60));
            std::hint::black_box(&pad);
        }
        let b = greenio::Builder::new().name("deep-40k");
        let (d, at) = (b.spawn(deep), here());
        let d = d.unwrap();
        let s = greenio::Builder::new()
            .name("shallow")
            .spawn(|| greenio::sleep(Duration::from_secs(60)))
            .unwrap();
        greenio::sleep(Duration::from_millis(5));

        let dump = greenio::dump();
        let find = |name: &str| {
            dump.threads
                .iter()
                .find(|t| t.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("{name} not in {dump}"))
                .clone()
        };
        let (deep_t, shallow_t) = (find("deep-40k"), find("shallow"));
        let size = greenio::stack_size().unwrap();
        assert_eq!(deep_t.stack_size, size);
        let used = deep_t.stack_used.unwrap();
        assert!((40 * 1024..=size).contains(&used), "deep used {used}");
        let shallow = shallow_t.stack_used.unwrap();
        assert!(shallow < 32 * 1024, "shallow used {shallow}");

        let text = dump.to_string();
        let line = text.lines().find(|l| l.contains("deep-40k")).unwrap();
        let mark = format!("stack {}K/{}K", used.div_ceil(1024), size / 1024);
        assert!(line.contains(&mark), "{line}");
        assert!(
            line.contains(&format!("spawned at {}:{}", at.0, at.1)),
            "{line}"
        );

        assert!(greenio::stats().max_stack_used >= used);
        d.cancel();
        s.cancel();
        let _ = (d.join(), s.join());
        // Once they are gone the mark stays (their stacks are pooled).
        assert!(greenio::stats().max_stack_used >= used);
    });
}

// ----- dump on a signal -------------------------------------------------------

#[test]
fn dump_on_signal_prints_every_green_thread_and_the_program_goes_on() {
    let name = "dump_on_signal_prints_every_green_thread_and_the_program_goes_on";
    let child = util::child_output(CHILD, name, || {
        let rt = greenio::Runtime::builder()
            .dump_on_signal(greenio::signal::SIGUSR1)
            .build()
            .unwrap();
        rt.run(|| {
            let _sleeper = greenio::Builder::new()
                .name("dumped-sleeper")
                .spawn(|| greenio::sleep(Duration::from_secs(60)))
                .unwrap();
            greenio::yield_now();
            let before = greenio::stats().spawned;
            // SAFETY: raise is always safe to call.
            unsafe { libc::raise(greenio::signal::SIGUSR1) };
            // The monitor spawns a dump green thread here; wait (bounded)
            // until it has come and gone.
            let limit = Instant::now() + Duration::from_secs(20);
            while Instant::now() < limit {
                greenio::sleep(Duration::from_millis(5));
                let s = greenio::stats();
                if s.spawned > before && s.alive == 2 {
                    break;
                }
            }
            println!("still running after the dump");
        });
    });
    let Some((status, out, err)) = child else {
        return;
    };
    assert!(status.success(), "{status:?}\n{out}\n{err}");
    assert!(out.contains("still running after the dump"), "{out}\n{err}");
    assert!(err.contains("dump of 1 hub(s) follows"), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("dumped-sleeper"))
        .unwrap_or_else(|| panic!("no dump line for the sleeper:\n{err}"));
    assert!(line.contains("on sleep"), "{line}");
    assert!(line.contains("stack "), "{line}");
    assert!(line.contains("spawned at tests/safety.rs:"), "{line}");
    assert!(err.contains(" main "), "{err}");
}

#[test]
fn dump_on_signal_names_the_culprit_of_a_blocked_hub() {
    let name = "dump_on_signal_names_the_culprit_of_a_blocked_hub";
    let child = util::child_output(CHILD, name, || {
        let rt = greenio::Runtime::builder()
            .dump_on_signal(greenio::signal::SIGUSR2)
            .build()
            .unwrap();
        rt.run(|| {
            let pid = std::process::id() as i32;
            let sender = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(700));
                // SAFETY: kill is always safe to call.
                unsafe { libc::kill(pid, greenio::signal::SIGUSR2) };
            });
            greenio::Builder::new()
                .name("stuck-in-a-syscall")
                .spawn(|| std::thread::sleep(Duration::from_millis(1500)))
                .unwrap()
                .join()
                .unwrap();
            sender.join().unwrap();
            // Let the dump green thread run now that the hub is free.
            greenio::sleep(Duration::from_millis(100));
        });
    });
    let Some((status, out, err)) = child else {
        return;
    };
    assert!(status.success(), "{status:?}\n{out}\n{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("hub 0: blocked for"))
        .unwrap_or_else(|| panic!("no blocked-hub line:\n{err}"));
    assert!(line.contains("'stuck-in-a-syscall'"), "{line}");
    assert!(line.contains("spawned at tests/safety.rs:"), "{line}");
}

#[test]
fn many_short_stalls_on_two_hubs_each_warned_once() {
    // A 1 ms threshold makes the monitor read headers of green threads
    // that are finishing as it looks: the hazard protocol in action.
    const N: u64 = 40;
    let rt = greenio::Runtime::builder()
        .hubs(2)
        .max_blocking_time(Duration::from_millis(1))
        .build()
        .unwrap();
    let stalls = rt.run(|| {
        let hs: Vec<_> = (0..N)
            .map(|i| {
                greenio::Builder::new()
                    .name(format!("spinner-{i}"))
                    .spawn_on((i % 2) as usize, || {
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_millis(20) {}
                    })
                    .unwrap()
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let on_1 = greenio::spawn_on(1, || greenio::stats().stalls);
        greenio::stats().stalls + on_1.join().unwrap()
    });
    // Each 20 ms spin is one stall (a flood would be ~20 per spin at a
    // 1 ms tick); on a busy machine the monitor may miss some spins, or
    // catch the loop itself between two, so the bounds are loose.
    assert!(
        (1..=2 * N).contains(&stalls),
        "{stalls} stalls for {N} spins"
    );
}
