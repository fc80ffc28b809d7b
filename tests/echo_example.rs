//! The echo example as a user runs it: start the built binary, read its
//! `listening on` line, echo through it, stop it with a signal.
//!
//! `cargo test` builds the examples before running tests. When running only
//! this file (`cargo test --test echo_example`), build the example first:
//! `cargo build --example echo`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(30);

/// target/<profile>/deps/echo_example-HASH -> target/<profile>/examples/echo
fn echo_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let bin = dir.join("examples").join("echo");
    assert!(
        bin.exists(),
        "{} not found: build it with `cargo build --example echo` (plain `cargo test` does)",
        bin.display()
    );
    bin
}

/// The running example, killed on drop if the test fails half-way.
struct Echo {
    child: Child,
    stdout: mpsc::Receiver<String>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Echo {
    fn start(args: &[&str]) -> (Echo, String) {
        let mut child = Command::new(echo_binary())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the echo example");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        let echo = Echo { child, stdout: rx };
        let first = echo
            .stdout
            .recv_timeout(LONG)
            .expect("the example prints a line within 30 s");
        (echo, first)
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill with our child's pid and a valid signal number.
        let r = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(r, 0);
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + LONG;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "the example did not exit within 30 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Lines printed after the first one, once the process has exited.
    fn rest_of_stdout(&self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(l) = self.stdout.recv_timeout(Duration::from_secs(5)) {
            lines.push(l);
        }
        lines
    }
}

fn parse_listening(line: &str) -> SocketAddr {
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line should be `listening on IP:PORT`, got {line:?}"));
    let addr: SocketAddr = addr.parse().expect("IP:PORT after `listening on`");
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0, "port 0 is replaced by the chosen port");
    addr
}

fn echo_through(addr: SocketAddr, msg: &[u8]) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(LONG)).unwrap();
    c.write_all(msg).unwrap();
    let mut back = vec![0; msg.len()];
    c.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
    c
}

#[test]
fn sigterm_stops_the_echo_example_with_exit_code_0() {
    let (mut echo, line) = Echo::start(&["--listen", "127.0.0.1:0"]);
    let addr = parse_listening(&line);

    let msg: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let open = echo_through(addr, &msg);
    let _ = echo_through(addr, b"hello\n");

    // SIGTERM with a connection still open: it is closed after the grace
    // period and the process exits 0.
    echo.signal(libc::SIGTERM);
    let st = echo.wait_exit();
    assert_eq!(st.code(), Some(0), "{st:?}");
    assert!(
        echo.rest_of_stdout().is_empty(),
        "exactly one line on stdout"
    );

    let mut b = [0u8; 1];
    let mut open = open;
    match open.read(&mut b) {
        Ok(n) => assert_eq!(n, 0, "the open connection was closed"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
    assert!(
        TcpStream::connect(addr).is_err(),
        "nothing listens any more"
    );
}

#[test]
fn sigint_stops_the_echo_example_on_two_hubs_with_exit_code_0() {
    let (mut echo, line) = Echo::start(&[
        "--listen",
        "127.0.0.1:0",
        "--hubs",
        "2",
        "--max-conns",
        "10",
    ]);
    let addr = parse_listening(&line);
    let conns: Vec<TcpStream> = (0..4).map(|i| echo_through(addr, &[i; 10])).collect();
    drop(conns);
    echo.signal(libc::SIGINT);
    let st = echo.wait_exit();
    assert_eq!(st.code(), Some(0), "{st:?}");
}

#[test]
fn help_shows_the_default_address_and_bad_arguments_exit_2() {
    let out = Command::new(echo_binary()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--listen"), "{text}");
    assert!(text.contains("127.0.0.1:7000"), "{text}");

    let out = Command::new(echo_binary()).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_port_in_use_is_an_error_not_a_hang() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut child = Command::new(echo_binary())
        .args(["--listen", &addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + LONG;
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("echo on a taken port did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(st.code(), Some(1), "{st:?}");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("in use"), "{err}");
}
