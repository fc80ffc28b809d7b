//! The finger example (RFC 1288) and its client, as a user runs them: start
//! the built binaries, speak the protocol over loopback.
//!
//! Build the examples first when running this file alone:
//! `cargo build --examples && cargo test --test finger`.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use util::{run_example, Example};

const LONG: Duration = Duration::from_secs(30);

/// A users file for these tests, removed on drop.
struct UsersFile(PathBuf);

impl UsersFile {
    fn new(tag: &str, text: &str) -> UsersFile {
        let path =
            std::env::temp_dir().join(format!("greenio-finger-{}-{tag}.txt", std::process::id()));
        std::fs::write(&path, text).expect("write the users file");
        UsersFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for UsersFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const USERS: &str = "\
# login:Full Name:plan
alice:Alice Liddell:Down the rabbit hole: back at tea time.

bob:Bob Dobbs:Slack
  # an indented comment
carol:Carol Shaw:
";

/// A finger server with [`USERS`] and `extra` arguments.
fn server(tag: &str, extra: &[&str]) -> (Example, UsersFile) {
    let users = UsersFile::new(tag, USERS);
    let mut args = vec!["--listen", "127.0.0.1:0", "--users", users.path()];
    args.extend_from_slice(extra);
    (Example::start("finger", &args), users)
}

/// Sends `query` as is and reads the whole reply, until the server closes.
fn finger_raw(addr: SocketAddr, query: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(LONG)).unwrap();
    c.write_all(query).unwrap();
    let mut reply = Vec::new();
    c.read_to_end(&mut reply)
        .expect("the server answers and closes");
    reply
}

/// The reply's lines; asserts that every line ends in CRLF.
fn finger(addr: SocketAddr, query: &str) -> Vec<String> {
    let reply = finger_raw(addr, query.as_bytes());
    let text = String::from_utf8(reply).expect("utf-8 reply");
    assert!(text.ends_with("\r\n"), "reply ends in CRLF: {text:?}");
    let lines: Vec<&str> = text.split("\r\n").collect();
    let (last, lines) = lines.split_last().unwrap();
    assert_eq!(*last, "");
    for l in lines {
        assert!(
            !l.contains('\n') && !l.contains('\r'),
            "bare CR or LF in {text:?}"
        );
    }
    lines.iter().map(|l| l.to_string()).collect()
}

#[test]
fn an_empty_query_lists_one_line_per_user() {
    let (f, _users) = server("list", &[]);
    let lines = finger(f.addr, "\r\n");
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, (login, name)) in lines.iter().zip([
        ("alice", "Alice Liddell"),
        ("bob", "Bob Dobbs"),
        ("carol", "Carol Shaw"),
    ]) {
        assert!(line.starts_with(login), "{line:?}");
        assert!(line.contains(name), "{line:?}");
    }
    // A bare LF is accepted too, and `/W` alone is a verbose list.
    assert_eq!(finger(f.addr, "\n"), lines);
    assert_eq!(finger(f.addr, "/W\r\n"), lines);
}

#[test]
fn a_login_gets_login_name_and_plan_lines() {
    let (f, _users) = server("user", &[]);
    let lines = finger(f.addr, "alice\r\n");
    assert!(
        lines.iter().any(|l| l.contains("Login: alice")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("Name: Alice Liddell")),
        "{lines:?}"
    );
    let plan = lines
        .iter()
        .position(|l| l.starts_with("Plan:"))
        .expect("a Plan: line");
    // The plan is the rest of the line after the second colon, colons and
    // all, right after `Plan:`.
    let after: String = lines[plan..].join("\n");
    assert!(
        after.contains("Down the rabbit hole: back at tea time."),
        "{lines:?}"
    );

    // LF alone, and surrounding blanks, are accepted.
    assert_eq!(finger(f.addr, "alice\n"), lines);
    assert_eq!(finger(f.addr, "  alice \t\r\n"), lines);

    // A user with an empty plan still gets the three lines.
    let carol = finger(f.addr, "carol\r\n");
    assert!(
        carol.iter().any(|l| l.contains("Login: carol")),
        "{carol:?}"
    );
    assert!(carol.iter().any(|l| l.starts_with("Plan:")), "{carol:?}");
}

#[test]
fn verbose_w_gives_the_same_user_lines() {
    let (f, _users) = server("verbose", &[]);
    let plain = finger(f.addr, "bob\r\n");
    let verbose = finger(f.addr, "/W bob\r\n");
    assert_eq!(verbose, plain);
    assert!(verbose.iter().any(|l| l.contains("Login: bob")));
    assert!(verbose.iter().any(|l| l.contains("Name: Bob Dobbs")));
    assert_eq!(finger(f.addr, "/w bob\r\n"), plain, "/w in lower case");
}

#[test]
fn an_unknown_user_gets_no_such_user() {
    let (f, _users) = server("unknown", &[]);
    assert_eq!(
        finger(f.addr, "nobody\r\n"),
        ["finger: nobody: no such user."]
    );
    assert_eq!(
        finger(f.addr, "/W nobody\r\n"),
        ["finger: nobody: no such user."]
    );
    // Logins match exactly.
    assert_eq!(
        finger(f.addr, "Alice\r\n"),
        ["finger: Alice: no such user."]
    );
}

#[test]
fn forwarding_is_denied_and_gives_no_user_data() {
    let (f, _users) = server("forward", &[]);
    for q in [
        "alice@example.com\r\n",
        "@example.com\r\n",
        "/W alice@host1@host2\r\n",
        "alice@\r\n",
    ] {
        let lines = finger(f.addr, q);
        assert_eq!(lines, ["finger: forwarding service denied"], "{q:?}");
    }
}

#[test]
fn control_characters_are_filtered_from_everything_sent() {
    let users = UsersFile::new(
        "filter",
        "eve:Eve \x1b[31mRed\x1b[0m:bell\x07 del\x7f tab\there nul\x00 bs\x08 cr\rend\n",
    );
    let f = Example::start(
        "finger",
        &["--listen", "127.0.0.1:0", "--users", users.path()],
    );
    let check = |reply: &[u8]| {
        for (i, &b) in reply.iter().enumerate() {
            let allowed = b == b'\t'
                || (b == b'\r' && reply.get(i + 1) == Some(&b'\n'))
                || (b == b'\n' && i > 0 && reply[i - 1] == b'\r')
                || (b >= 0x20 && b != 0x7f);
            assert!(
                allowed,
                "byte {b:#04x} at {i} in {:?}",
                String::from_utf8_lossy(reply)
            );
        }
    };

    let reply = finger_raw(f.addr, b"eve\r\n");
    check(&reply);
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("Name: Eve [31mRed[0m"), "{text:?}");
    assert!(
        text.contains("bell del tab\there nul bs crend"),
        "tabs stay, the rest goes: {text:?}"
    );

    let reply = finger_raw(f.addr, b"\r\n");
    check(&reply);

    // The query is echoed in the error: filtered too.
    let reply = finger_raw(f.addr, b"ev\x1b[2Je\x07\x7f\r\n");
    check(&reply);
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "finger: ev[2Je: no such user.\r\n"
    );
}

#[test]
fn an_overlong_query_gets_one_error_line_then_close() {
    let (f, _users) = server("overlong", &[]);

    // 1024 bytes is still a query.
    let name = "x".repeat(1024);
    assert_eq!(
        finger(f.addr, &format!("{name}\r\n")),
        [format!("finger: {name}: no such user.")]
    );

    // 1025 bytes with its CRLF: one error line.
    let lines = finger(f.addr, &format!("{}\r\n", "y".repeat(1025)));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("too long"), "{lines:?}");

    // 100 KiB sent without a newline, the connection left open: the server
    // does not wait for the end of the line; it answers and closes.
    let mut c = TcpStream::connect(f.addr).unwrap();
    c.set_read_timeout(Some(LONG)).unwrap();
    let sent = c.write_all(&vec![b'z'; 100 * 1024]);
    // (The server may close before taking it all; that is fine.)
    let _ = sent;
    let mut reply = Vec::new();
    match c.read_to_end(&mut reply) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
    }
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.starts_with("finger: ") && text.contains("too long"),
        "{text:?}"
    );
    assert_eq!(text.matches("\r\n").count(), 1, "one line: {text:?}");
}

#[test]
fn a_client_without_a_complete_line_is_closed_after_the_timeout() {
    let (f, _users) = server("timeout", &["--timeout", "1"]);

    // Silent.
    let start = Instant::now();
    let mut c = TcpStream::connect(f.addr).unwrap();
    c.set_read_timeout(Some(LONG)).unwrap();
    let mut reply = Vec::new();
    c.read_to_end(&mut reply)
        .expect("closed by the server, within 30 s");
    assert!(reply.is_empty(), "{reply:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "closed before the timeout: {:?}",
        start.elapsed()
    );

    // Trickling a line that never ends: the timeout bounds the whole line,
    // not each read.
    let start = Instant::now();
    let mut c = TcpStream::connect(f.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut closed = false;
    for _ in 0..300 {
        if c.write_all(b"a").is_err() {
            closed = true;
            break;
        }
        let mut b = [0u8; 64];
        match c.read(&mut b) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => panic!("unexpected reply {:?}", &b[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "a trickling client was not closed within 30 s");
    assert!(start.elapsed() >= Duration::from_millis(900));

    // The server still answers others.
    assert!(finger(f.addr, "alice\r\n")
        .iter()
        .any(|l| l.contains("Login: alice")));
}

#[test]
fn a_client_closing_without_a_query_gets_nothing_and_the_server_goes_on() {
    let (f, _users) = server("eof", &[]);
    let c = TcpStream::connect(f.addr).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    drop(c);
    for _ in 0..20 {
        let c = TcpStream::connect(f.addr).unwrap();
        drop(c); // reset or close before sending anything
    }
    assert_eq!(finger(f.addr, "bob\r\n")[0], "Login: bob");
}

#[test]
fn the_built_in_demo_users_answer_without_users_file() {
    let f = Example::start("finger", &["--listen", "127.0.0.1:0"]);
    let lines = finger(f.addr, "\r\n");
    assert!(!lines.is_empty());
    assert!(lines[0].starts_with("alice"), "{lines:?}");
    assert!(finger(f.addr, "alice\r\n")
        .iter()
        .any(|l| l.contains("Login: alice")));
}

#[test]
fn finger_client_talks_to_the_server() {
    let (f, _users) = server("client", &[]);
    let target = |user: &str| format!("{user}@{}", f.addr);

    let (st, out, err) = run_example("finger_client", &[&target("")]);
    assert!(st.success(), "{st:?} {err}");
    assert_eq!(out.lines().count(), 3, "{out:?}");
    assert!(!out.contains('\r'), "CRLF printed as LF: {out:?}");
    assert!(out.contains("Bob Dobbs"));

    let (st, out, err) = run_example("finger_client", &[&target("alice")]);
    assert!(st.success(), "{st:?} {err}");
    assert!(out.contains("Login: alice"), "{out:?}");
    assert!(out.contains("Down the rabbit hole: back at tea time."));

    let (st, long, _) = run_example("finger_client", &["-l", &target("alice")]);
    assert!(st.success());
    assert_eq!(long, out, "-l sends /W alice, answered the same");

    let (st, out, _) = run_example("finger_client", &[&target("nobody")]);
    assert!(st.success());
    assert_eq!(out, "finger: nobody: no such user.\n");

    let (st, out, _) = run_example("finger_client", &[&target("alice@elsewhere")]);
    assert!(st.success());
    assert_eq!(out, "finger: forwarding service denied\n");

    // The `[v6]:port` and name forms parse; name resolution works.
    let (st, out, err) = run_example(
        "finger_client",
        &[&format!("bob@localhost:{}", f.addr.port())],
    );
    if st.success() {
        assert!(out.contains("Login: bob"), "{out:?}");
    } else {
        // localhost may resolve to ::1 first where nothing listens.
        assert!(err.contains("finger_client"), "{err}");
    }
}

#[test]
fn finger_client_failures_exit_1_with_a_message() {
    // A port where nothing listens.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (st, out, err) = run_example("finger_client", &[&format!("alice@127.0.0.1:{port}")]);
    assert_eq!(st.code(), Some(1), "{st:?}");
    assert!(out.is_empty(), "{out:?}");
    assert!(err.starts_with("finger_client: "), "{err}");
    assert!(err.to_lowercase().contains("refused"), "{err}");

    // A server that accepts and never answers: the client gives up.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("alice@{}", silent.local_addr().unwrap());
    let (st, _, err) = run_example("finger_client", &["--timeout", "0.5", &target]);
    assert_eq!(st.code(), Some(1), "{st:?}");
    assert!(err.contains("finger_client: "), "{err}");

    // Usage errors exit 2; --help exits 0 and shows the syntax.
    let (st, _, _) = run_example("finger_client", &["no-at-sign"]);
    assert_eq!(st.code(), Some(2));
    let (st, _, _) = run_example("finger_client", &["alice@host:notaport"]);
    assert_eq!(st.code(), Some(2));
    let (st, out, _) = run_example("finger_client", &["--help"]);
    assert!(st.success());
    assert!(out.contains("[user]@host[:port]"), "{out}");
}

#[test]
fn help_bad_arguments_bad_users_file_and_signals() {
    let (st, out, _) = run_example("finger", &["--help"]);
    assert!(st.success());
    for want in ["--listen", "127.0.0.1:7079", "--users", "--timeout"] {
        assert!(out.contains(want), "{want} in {out}");
    }
    let (st, _, _) = run_example("finger", &["--bogus"]);
    assert_eq!(st.code(), Some(2));
    let (st, _, _) = run_example("finger", &["--timeout", "soon"]);
    assert_eq!(st.code(), Some(2));

    let bad = UsersFile::new("bad", "alice:Alice\n");
    let (st, _, err) = run_example(
        "finger",
        &["--listen", "127.0.0.1:0", "--users", bad.path()],
    );
    assert_eq!(st.code(), Some(1), "{st:?}");
    assert!(err.contains(":1:"), "names the line: {err}");
    let (st, _, err) = run_example(
        "finger",
        &["--listen", "127.0.0.1:0", "--users", "/nonexistent/users"],
    );
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("/nonexistent/users"), "{err}");

    for sig in [libc::SIGTERM, libc::SIGINT] {
        let (mut f, _users) = server("signal", &[]);
        // One connection still open, mid-query.
        let mut open = TcpStream::connect(f.addr).unwrap();
        open.write_all(b"ali").unwrap();
        assert!(finger(f.addr, "bob\r\n")[0].contains("bob"));
        f.signal(sig);
        let st = f.wait_exit();
        assert_eq!(st.code(), Some(0), "{st:?}");
        assert!(f.more_stdout().is_empty(), "exactly one line on stdout");
        drop(open);
    }
}
