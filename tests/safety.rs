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
