//! Helpers shared by the integration tests (`mod util;` in each file).
#![allow(dead_code)]

use std::sync::mpsc;
use std::time::Duration;

/// A generous bound for a whole test: the machine may be busy with other
/// test binaries, so this only catches hangs, never measures speed.
pub const LIMIT: Duration = Duration::from_secs(120);

/// Runs `f` on a runtime of `hubs` hubs on this thread; aborts the test
/// binary with a message naming `suite` if it runs past [`LIMIT`] (a hang
/// is a failure, and the test's own thread may be the one that hangs).
pub fn run_hubs<T>(suite: &'static str, hubs: usize, f: impl FnOnce() -> T) -> T {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while !d2.load(Ordering::SeqCst) {
            if start.elapsed() > LIMIT {
                eprintln!("{suite}: a test hung for {} s", LIMIT.as_secs());
                std::process::abort();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let rt = greenio::Runtime::builder().hubs(hubs).build().unwrap();
    let r = rt.run(f);
    done.store(true, Ordering::SeqCst);
    r
}

/// Runs `f` inside `greenio::run` on a fresh OS thread and waits at most
/// `limit` for it. A panic inside is re-raised here; a hang fails the test
/// with `what` instead of blocking the test binary forever (the stuck
/// thread is left behind).
pub fn with_timeout<T, F>(what: &str, limit: Duration, f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .name(format!("test-{what}"))
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| greenio::run(f)));
            let _ = tx.send(r);
        })
        .expect("cannot start the test thread");
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => {
            let _ = worker.join();
            v
        }
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what}: did not finish within {limit:?} (hang?)"),
    }
}

/// [`with_timeout`] with [`LIMIT`].
pub fn run<T, F>(what: &str, f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    with_timeout(what, LIMIT, f)
}

/// `n` bytes of a pattern that makes reordering or loss visible: each
/// stream gets its own `seed`.
pub fn pattern(seed: u32, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Runs `body` if this process is the child for test `name` (the
/// environment variable `env` names it); otherwise runs that child — this
/// test binary, filtered to `name` — and asserts it passed. Process-wide
/// state (descriptor limits, signal dispositions) is changed only in the
/// child, so tests sharing the binary are not affected.
pub fn in_child(env: &str, name: &str, body: impl FnOnce()) {
    if let Some((status, out, err)) = child_output(env, name, body) {
        assert!(status.success(), "child {name}: {status:?}\n{out}\n{err}");
    }
}

/// Like [`in_child`], but hands the parent the child's exit status, stdout
/// and stderr instead of asserting (`None` in the child itself).
pub fn child_output(
    env: &str,
    name: &str,
    body: impl FnOnce(),
) -> Option<(std::process::ExitStatus, String, String)> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    use std::time::Instant;
    if std::env::var(env).as_deref() == Ok(name) {
        body();
        return None;
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(env, name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read both pipes on their own threads so a chatty child cannot fill
    // one and stall.
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {name} did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Some((status, out.join().unwrap(), err.join().unwrap()))
}

/// Raises this process's soft limit on open descriptors to its hard limit
/// and returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `want` is a valid rlimit; raising the soft limit up to the
        // hard limit needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            return want.rlim_cur;
        }
    }
    lim.rlim_cur
}

/// A built example (`target/<profile>/examples/NAME`) running as a child
/// process: its first stdout line must be `listening on IP:PORT`; its
/// stderr is collected; it is killed on drop if the test fails half-way.
///
/// `cargo test` builds the examples first; when running one test file
/// alone, build them with `cargo build --examples`.
pub struct Example {
    name: String,
    child: std::process::Child,
    stdout: mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The address from the `listening on` line.
    pub addr: std::net::SocketAddr,
}

/// Path of the built example `name`, next to the test binary:
/// target/<profile>/deps/TEST-HASH -> target/<profile>/examples/NAME.
pub fn example_binary(name: &str) -> std::path::PathBuf {
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

/// Bound on waits for a child process (start, exit, output).
pub const PROCESS_LIMIT: Duration = Duration::from_secs(30);

impl Example {
    /// Starts example `name` with `args` and waits (at most
    /// [`PROCESS_LIMIT`]) for its `listening on IP:PORT` line.
    pub fn start(name: &str, args: &[&str]) -> Example {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut child = Command::new(example_binary(name))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {name} example: {e}"));
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        let (tx, stdout) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = stderr.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
        let first = match stdout.recv_timeout(PROCESS_LIMIT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let errors = stderr.lock().unwrap().join("\n");
                panic!("{name} printed no line within {PROCESS_LIMIT:?}; stderr:\n{errors}");
            }
        };
        let addr = first
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{name}: expected `listening on IP:PORT`, got {first:?}"));
        Example {
            name: name.to_string(),
            child,
            stdout,
            stderr,
            addr,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends signal `sig` to the child.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill takes no pointers; the pid is our live child's.
        let r = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(r, 0, "kill({}, {sig})", self.child.id());
    }

    /// Waits (at most [`PROCESS_LIMIT`]) for the child to exit.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + PROCESS_LIMIT;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} did not exit within {PROCESS_LIMIT:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stdout lines after the `listening on` one, up to now.
    pub fn more_stdout(&self) -> Vec<String> {
        self.stdout.try_iter().collect()
    }

    /// Stdout lines after the `listening on` one until the child closes
    /// its stdout (each wait bounded by 5 s); call it after it exited.
    pub fn rest_of_stdout(&self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(l) = self.stdout.recv_timeout(Duration::from_secs(5)) {
            lines.push(l);
        }
        lines
    }

    /// Starts `name` on a free loopback port.
    pub fn start_any_port(name: &str) -> Example {
        Example::start(name, &["--listen", "127.0.0.1:0"])
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits (at most [`PROCESS_LIMIT`]) until a stderr line contains
    /// `needle`, and returns that line.
    pub fn wait_stderr(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + PROCESS_LIMIT;
        loop {
            if let Some(l) = self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: no stderr line with {needle:?} within {PROCESS_LIMIT:?}; stderr:\n{}",
                self.name,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The child's resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs example `name` to completion with `args` (for `--help`, bad
/// arguments, clients) and returns its exit status, stdout and stderr;
/// fails the test if it runs longer than [`PROCESS_LIMIT`].
pub fn run_example(name: &str, args: &[&str]) -> (std::process::ExitStatus, String, String) {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(example_binary(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the {name} example: {e}"));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let deadline = std::time::Instant::now() + PROCESS_LIMIT;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} {args:?} did not exit within {PROCESS_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (status, out.join().unwrap(), err.join().unwrap())
}
