//! The chat example (green threads) as a user runs it: one test per rule of
//! the protocol, each the shared body in `tests/util/chat_protocol.rs` (the
//! same bodies `chat_callback` is tested with in `tests/reactor.rs`)
//! against a fresh `chat` server; then what only this example promises.
//!
//! Build the examples first when running this file alone:
//! `cargo build --examples && cargo test --test chat`.

#[path = "util/chat_protocol.rs"]
mod chat_protocol;
mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use chat_protocol::Client;
use util::{run_example, Example};

fn chat() -> Example {
    Example::start("chat", &["--listen", "127.0.0.1:0"])
}

macro_rules! protocol_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let server = chat();
                chat_protocol::$name(server.addr);
            }
        )*

        /// Every body in `chat_protocol::ALL` runs here, under its own name.
        #[test]
        fn every_protocol_rule_has_a_test_here() {
            let here = [$(stringify!($name)),*];
            let all: Vec<&str> = chat_protocol::ALL.iter().map(|(name, _)| *name).collect();
            assert_eq!(here.as_slice(), all.as_slice());
        }
    };
}

protocol_tests!(
    greeting,
    nick_join_rename,
    nick_taken_and_invalid,
    broadcast_not_echoed,
    text_before_nick,
    who_is_sorted,
    quit_says_bye_and_others_see_left,
    abrupt_disconnect_is_left,
    unknown_command,
    invalid_utf8_keeps_the_connection,
    line_too_long_is_discarded,
    crlf_and_pipelined_lines,
    order_under_8_concurrent_senders,
    slow_receiver_is_disconnected,
);

#[test]
fn an_endless_line_does_not_grow_the_server() {
    let server = chat();
    let mut a = Client::with_nick(server.addr, "endless");
    let mut b = Client::with_nick(server.addr, "witness");
    a.expect("* witness joined");
    // Warm up, so the baseline includes the buffers a connection uses.
    a.send(&"w".repeat(4096));
    b.expect(&format!("<endless> {}", "w".repeat(4096)));
    let before = server.rss_kib();

    // 64 MiB in one line, no newline until the end.
    let piece = vec![b'q'; 256 * 1024];
    for _ in 0..256 {
        a.send_bytes(&piece);
    }
    a.send_bytes(b"\n");
    a.expect("! line too long");
    a.send("/who");
    a.expect("* users: endless, witness");

    let after = server.rss_kib();
    assert!(
        after < before + 8 * 1024,
        "the server grew from {before} KiB to {after} KiB on a 64 MiB line"
    );
    a.send("still connected");
    b.expect("<endless> still connected");
}

#[test]
fn a_slow_client_without_a_nick_is_disconnected_too() {
    // Its own replies are queued like everything else: a client that sends
    // commands and never reads the answers cannot grow the server either.
    let server = chat();
    let mut greedy = TcpStream::connect(server.addr).unwrap();
    greedy
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let burst = "/who\n".repeat(10_000);
    let mut closed = false;
    for _ in 0..2_000 {
        // 100 MB of commands at most; each /who is answered with a line.
        if greedy.write_all(burst.as_bytes()).is_err() {
            closed = true;
            break;
        }
    }
    assert!(closed, "a client that never reads was never disconnected");

    // The others are served as before.
    let mut a = Client::with_nick(server.addr, "after");
    a.send("/who");
    a.expect("* users: after");
}

#[test]
fn many_clients_join_talk_and_leave() {
    let server = chat();
    let mut host = Client::with_nick(server.addr, "host");
    let mut guests: Vec<Client> = (0..50)
        .map(|i| {
            let c = Client::with_nick(server.addr, &format!("g{i}"));
            host.expect(&format!("* g{i} joined"));
            c
        })
        .collect();
    host.send("welcome all");
    for g in &mut guests {
        // Each guest first sees those who joined after it, then the message.
        let skipped = g.expect_eventually("<host> welcome all");
        assert!(
            skipped.iter().all(|l| l.ends_with(" joined")),
            "{skipped:?}"
        );
    }
    for (i, g) in guests.iter_mut().enumerate() {
        g.send("/quit");
        // Those who quit before it left meanwhile.
        let skipped = g.expect_eventually("* bye");
        assert!(skipped.iter().all(|l| l.ends_with(" left")), "{skipped:?}");
        g.expect_closed();
        host.expect(&format!("* g{i} left"));
    }
    host.send("/who");
    host.expect("* users: host");
}

#[test]
fn help_default_port_bad_arguments_and_signals() {
    let (st, out, _) = run_example("chat", &["--help"]);
    assert!(st.success());
    assert!(out.contains("--listen"), "{out}");
    assert!(out.contains("127.0.0.1:7001"), "the default port: {out}");
    let (st, _, _) = run_example("chat", &["--bogus"]);
    assert_eq!(st.code(), Some(2));

    for sig in [libc::SIGINT, libc::SIGTERM] {
        let mut server = chat();
        let mut a = Client::with_nick(server.addr, "sig");
        // A half-sent line, and a client that never reads, at the stop.
        a.send_bytes(b"half a li");
        let _mute = TcpStream::connect(server.addr).unwrap();
        server.signal(sig);
        let st = server.wait_exit();
        assert_eq!(st.code(), Some(0), "{st:?}");
        assert!(server.more_stdout().is_empty(), "exactly one stdout line");
        // The open connection was closed.
        let mut s = a.stream();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut rest = Vec::new();
        match s.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
        }
    }
}
