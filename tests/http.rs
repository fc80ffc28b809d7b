//! The HTTP/1.1 server twins as a user runs them: every rule of the
//! contract (issue 12) is one body in `tests/util/http_protocol.rs`, run
//! here against a fresh `http` (green threads) and a fresh
//! `http_callback` (reactor) server; then the command line, signals, and
//! real clients (curl, wrk) when they are installed.
//!
//! Build the examples first when running this file alone:
//! `cargo build --examples && cargo test --test http`.

#[path = "util/http_protocol.rs"]
mod http_protocol;
mod util;

use std::process::Command;

use http_protocol::{LONG_TIMEOUT, SHORT_TIMEOUT};
use util::{run_example, Example};

/// The two twins under test.
const TWINS: [&str; 2] = ["http", "http_callback"];

fn start(name: &str, timeout: &str) -> Example {
    Example::start(name, &["--listen", "127.0.0.1:0", "--timeout", timeout])
}

macro_rules! protocol_tests {
    ($list:ident, $check:ident, $timeout:expr, $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                if stringify!($name) == "thousand_keep_alive_connections" {
                    util::raise_fd_limit();
                }
                for twin in TWINS {
                    let server = start(twin, $timeout);
                    eprintln!("{twin}: {}", stringify!($name));
                    http_protocol::$name(server.addr);
                }
            }
        )*

        /// Every body in the protocol list runs here, under its own name.
        #[test]
        fn $check() {
            let here = [$(stringify!($name)),*];
            let all: Vec<&str> = http_protocol::$list.iter().map(|(name, _)| *name).collect();
            assert_eq!(here.as_slice(), all.as_slice());
        }
    };
}

protocol_tests!(
    ALL,
    every_body_in_all_runs_here,
    LONG_TIMEOUT,
    plaintext_and_json,
    head_has_headers_only,
    echo_with_content_length,
    echo_chunked,
    expect_100_continue,
    not_found,
    keep_alive_and_close,
    http10_closes_unless_asked,
    pipelined_answers_in_order,
    malformed_requests_get_400,
    overlong_head_gets_431,
    overlarge_body_gets_413,
    non_reading_pipeliner_is_held_back,
    garbage_does_not_hurt_others,
    thousand_keep_alive_connections,
);

protocol_tests!(
    TIMEOUTS,
    every_body_in_timeouts_runs_here,
    SHORT_TIMEOUT,
    slow_head_gets_408,
    trickling_client_is_closed,
    idle_keep_alive_is_closed,
);

#[test]
fn help_and_bad_arguments() {
    for twin in TWINS {
        let (st, out, _) = run_example(twin, &["--help"]);
        assert!(st.success(), "{twin} --help: {st:?}");
        assert!(out.contains("--timeout SECS"), "{twin} --help: {out}");
        for bad in [
            &["--hubs", "0"][..],
            &["--timeout", "-1"],
            &["--max-conns", "x"],
            &["--nope"],
        ] {
            let (st, _, err) = run_example(twin, bad);
            assert_eq!(st.code(), Some(2), "{twin} {bad:?}: {err}");
            assert!(err.contains("usage:"), "{twin} {bad:?}: {err}");
        }
    }
}

#[test]
fn sigterm_and_sigint_exit_zero() {
    for twin in TWINS {
        for sig in [libc::SIGTERM, libc::SIGINT] {
            let mut server = start(twin, LONG_TIMEOUT);
            let mut c = http_protocol::Client::connect(server.addr);
            assert_eq!(c.get("/plaintext").status, 200);
            server.signal(sig);
            let st = server.wait_exit();
            assert!(st.success(), "{twin} after signal {sig}: {st:?}");
        }
    }
}

#[test]
fn two_hubs_serve() {
    for twin in TWINS {
        let server = Example::start(twin, &["--listen", "127.0.0.1:0", "--hubs", "2"]);
        let mut clients: Vec<_> = (0..8)
            .map(|_| http_protocol::Client::connect(server.addr))
            .collect();
        for c in clients.iter_mut() {
            assert_eq!(c.get("/json").status, 200);
        }
    }
}

#[test]
fn connections_over_max_conns_wait_or_get_503() {
    // The green twin leaves them in the kernel's backlog until a slot
    // frees; the callback twin answers 503 at once.
    for twin in TWINS {
        let server = Example::start(twin, &["--listen", "127.0.0.1:0", "--max-conns", "2"]);
        let mut a = http_protocol::Client::connect(server.addr);
        let mut b = http_protocol::Client::connect(server.addr);
        assert_eq!(a.get("/plaintext").status, 200);
        assert_eq!(b.get("/plaintext").status, 200);
        let mut c = http_protocol::Client::connect(server.addr);
        c.send(b"GET /json HTTP/1.1\r\nConnection: close\r\n\r\n");
        drop(a);
        let r = c.response(false);
        match twin {
            "http" => assert_eq!(r.status, 200),
            _ => assert!(r.status == 200 || r.status == 503, "status {}", r.status),
        }
    }
}

/// Whether `tool` runs here; prints why a test is skipped when not.
fn have(tool: &str, test: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stdout.is_empty() || !o.stderr.is_empty());
    if !ok {
        eprintln!("{test}: skipped: `{tool}` is not installed (apt-get install {tool})");
    }
    ok
}

#[test]
fn curl_talks_to_both_twins() {
    if !have("curl", "curl_talks_to_both_twins") {
        return;
    }
    for twin in TWINS {
        let server = start(twin, LONG_TIMEOUT);
        let url = |path: &str| format!("http://{}{path}", server.addr);
        let out = Command::new("curl")
            .args(["-s", "-S", "--max-time", "30"])
            .arg(url("/plaintext"))
            .arg(url("/json"))
            .output()
            .expect("run curl");
        assert!(out.status.success(), "{twin}: curl: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            r#"Hello, World!{"message":"Hello, World!"}"#
        );
        let out = Command::new("curl")
            .args([
                "-s",
                "-S",
                "--max-time",
                "30",
                "-H",
                "Transfer-Encoding: chunked",
            ])
            .args(["--data-binary", "sent by curl, chunked"])
            .arg(url("/echo"))
            .output()
            .expect("run curl");
        assert!(out.status.success(), "{twin}: curl: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "sent by curl, chunked"
        );
    }
}

#[test]
fn wrk_gets_only_200s() {
    if !have("wrk", "wrk_gets_only_200s") {
        return;
    }
    for twin in TWINS {
        let server = start(twin, LONG_TIMEOUT);
        let out = Command::new("wrk")
            .args(["-t1", "-c20", "-d1s", "--timeout", "10s"])
            .arg(format!("http://{}/json", server.addr))
            .output()
            .expect("run wrk");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{twin}: wrk: {out:?}");
        assert!(text.contains("Requests/sec:"), "{twin}: {text}");
        assert!(!text.contains("Non-2xx"), "{twin}: {text}");
        assert!(!text.contains("Socket errors"), "{twin}: {text}");
    }
}
