//! Safety nets for cooperative code (issue 11): spawn sites, the blocking
//! watchdog, the fair budget, stack high-water marks and dump on signal.

mod util;

use std::io::{Read, Write};
use std::panic::Location;
use std::time::Duration;

use greenio::net::{Server, TcpStream};

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
