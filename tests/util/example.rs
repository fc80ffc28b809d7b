//! Starting a built example server as a child process, the way a user runs
//! it: read its `listening on IP:PORT` line, talk to it, signal it.
//!
//! Include it with `#[path = "util/example.rs"] mod example;`. `cargo test`
//! builds the examples before the tests; when running one test file alone,
//! build them first (`cargo build --examples`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bound on waiting for the server to start or to exit.
pub const START_LIMIT: Duration = Duration::from_secs(60);

/// target/<profile>/deps/TEST-HASH -> target/<profile>/examples/NAME
pub fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let bin = dir.join("examples").join(name);
    assert!(
        bin.exists(),
        "{} not found: build it with `cargo build --example {name}` (plain `cargo test` does)",
        bin.display()
    );
    bin
}

/// A running example server; killed on drop if the test ends early.
pub struct Example {
    child: Child,
    /// Lines the server printed on stdout after the first one.
    stdout: mpsc::Receiver<String>,
    /// The address from its `listening on` line.
    pub addr: SocketAddr,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Example {
    /// Starts `name` with `args` and waits for its `listening on` line.
    pub fn start(name: &str, args: &[&str]) -> Example {
        let mut child = Command::new(example_path(name))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start example {name}: {e}"));
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(l) = line else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let first = match rx.recv_timeout(START_LIMIT) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("example {name} printed no line within {START_LIMIT:?}");
            }
        };
        let addr = parse_listening(&first);
        Example {
            child,
            stdout: rx,
            addr,
        }
    }

    /// Starts `name` on a free loopback port.
    pub fn start_any_port(name: &str) -> Example {
        Example::start(name, &["--listen", "127.0.0.1:0"])
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` to the server.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with our own child's pid and a valid signal.
        let r = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(r, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Waits (bounded) for the server to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "the example did not exit within {START_LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Lines printed on stdout after the first one, once it has exited.
    pub fn rest_of_stdout(&self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(l) = self.stdout.recv_timeout(Duration::from_secs(5)) {
            lines.push(l);
        }
        lines
    }
}

/// Parses `listening on IP:PORT`, checking it is a loopback address with a
/// real port.
pub fn parse_listening(line: &str) -> SocketAddr {
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line should be `listening on IP:PORT`, got {line:?}"));
    let addr: SocketAddr = addr.parse().expect("IP:PORT after `listening on`");
    assert!(addr.ip().is_loopback(), "{addr}");
    assert_ne!(addr.port(), 0, "port 0 is replaced by the chosen port");
    addr
}
