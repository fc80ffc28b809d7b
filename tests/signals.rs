//! `greenio::signal`: signals as events a green thread waits on.
//!
//! Signal dispositions are process-wide and the tests of one binary share a
//! process, so every test runs its body in a child process (this binary
//! again, filtered to that one test, with `GREENIO_SIGNAL_CHILD` naming it)
//! and the parent checks how the child ended.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use greenio::signal::{Signals, SIGHUP, SIGINT, SIGPIPE, SIGTERM, SIGUSR1, SIGUSR2};

const CHILD_ENV: &str = "GREENIO_SIGNAL_CHILD";

/// Runs `body` if this process is the child for `name`, else runs the child
/// and returns how it ended (bounded by a generous timeout).
fn in_child(name: &str, body: impl FnOnce()) -> Option<ExitStatus> {
    if std::env::var(CHILD_ENV).as_deref() == Ok(name) {
        body();
        return None;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the test binary as a child");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {name} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    eprintln!("--- child {name}: {status:?}\n{out}\n{err}");
    Some(status)
}

/// Runs `body` in a child and asserts that the child's test passed.
fn child_passes(name: &str, body: impl FnOnce()) {
    if let Some(st) = in_child(name, body) {
        assert!(st.success(), "child {name} failed: {st:?}");
    }
}

/// Sends `sig` to this process from a plain OS thread after `delay`.
fn kill_later(sig: i32, delay: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        // SAFETY: kill with our own pid and a valid signal number.
        unsafe { libc::kill(std::process::id() as i32, sig) };
    })
}

fn raise(sig: i32) {
    // SAFETY: raise with a valid signal number.
    assert_eq!(unsafe { libc::raise(sig) }, 0);
}

#[test]
fn sighup_wakes_a_waiting_green_thread() {
    child_passes("sighup_wakes_a_waiting_green_thread", || {
        greenio::run(|| {
            let mut signals = Signals::new(&[SIGHUP]).unwrap();
            let waiter = greenio::spawn(move || signals.recv().unwrap());
            let t = kill_later(SIGHUP, Duration::from_millis(50));
            let got = greenio::timeout(Duration::from_secs(30), || waiter.join().unwrap());
            assert_eq!(got, Ok(SIGHUP));
            t.join().unwrap();
        });
    });
}

#[test]
fn raised_signals_come_back_in_order() {
    child_passes("raised_signals_come_back_in_order", || {
        greenio::run(|| {
            let mut s = Signals::new(&[SIGUSR1, SIGUSR2]).unwrap();
            raise(SIGUSR1);
            raise(SIGUSR2);
            raise(SIGUSR1);
            let got: Vec<i32> = (0..3).map(|_| s.recv().unwrap()).collect();
            assert_eq!(got, vec![SIGUSR1, SIGUSR2, SIGUSR1]);
            assert_eq!(s.try_recv().unwrap(), None);
        });
    });
}

#[test]
fn only_the_signals_asked_for_are_received() {
    child_passes("only_the_signals_asked_for_are_received", || {
        greenio::run(|| {
            let mut one = Signals::new(&[SIGUSR1]).unwrap();
            let mut two = Signals::new(&[SIGUSR2]).unwrap();
            raise(SIGUSR2);
            assert_eq!(one.try_recv().unwrap(), None);
            assert_eq!(two.recv().unwrap(), SIGUSR2);
        });
    });
}

#[test]
fn every_signals_value_on_every_hub_receives_each_signal() {
    child_passes(
        "every_signals_value_on_every_hub_receives_each_signal",
        || {
            let rt = greenio::Runtime::builder().hubs(2).build().unwrap();
            rt.run(|| {
                let ready = Arc::new(std::sync::Barrier::new(4));
                let mut waiters = Vec::new();
                for hub in [0, 0, 1] {
                    let ready = ready.clone();
                    waiters.push(greenio::spawn_on(hub, move || {
                        let mut s = Signals::new(&[SIGUSR1]).unwrap();
                        // Barrier::wait blocks the hub's OS thread; do it on the
                        // blocking pool instead.
                        greenio::unblock(move || {
                            ready.wait();
                        });
                        (greenio::current().hub(), s.recv().unwrap())
                    }));
                }
                // Everyone listens once all four passed the barrier.
                let r2 = ready.clone();
                greenio::unblock(move || {
                    r2.wait();
                });
                raise(SIGUSR1);
                let mut got: Vec<(usize, i32)> = waiters
                    .into_iter()
                    .map(|w| {
                        greenio::timeout(Duration::from_secs(30), || w.join().unwrap())
                            .expect("every Signals receives the signal")
                    })
                    .collect();
                got.sort();
                assert_eq!(got, vec![(0, SIGUSR1), (0, SIGUSR1), (1, SIGUSR1)]);
            });
        },
    );
}

#[test]
fn waiting_for_a_signal_is_not_a_deadlock() {
    child_passes("waiting_for_a_signal_is_not_a_deadlock", || {
        greenio::run(|| {
            let t = kill_later(SIGTERM, Duration::from_millis(100));
            let start = Instant::now();
            // The only green thread parks on the signal: the hub must wait
            // for it instead of reporting a deadlock.
            assert_eq!(greenio::signal::wait(&[SIGTERM, SIGINT]).unwrap(), SIGTERM);
            assert!(start.elapsed() >= Duration::from_millis(50));
            t.join().unwrap();
        });
    });
}

#[test]
fn cancel_interrupts_recv() {
    child_passes("cancel_interrupts_recv", || {
        greenio::run(|| {
            let h = greenio::spawn(|| {
                let mut s = Signals::new(&[SIGUSR2]).unwrap();
                s.recv()
            });
            greenio::sleep(Duration::from_millis(10));
            h.cancel();
            assert!(h.join().unwrap_err().is_cancelled());
            // The dropped Signals released its slot: a new one works.
            let mut s = Signals::new(&[SIGUSR2]).unwrap();
            raise(SIGUSR2);
            assert_eq!(s.recv().unwrap(), SIGUSR2);
        });
    });
}

#[test]
fn recv_timeout_times_out() {
    child_passes("recv_timeout_times_out", || {
        greenio::run(|| {
            let mut s = Signals::new(&[SIGUSR1]).unwrap();
            let start = Instant::now();
            let err = s.recv_timeout(Duration::from_millis(30)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::TimedOut);
            assert!(start.elapsed() >= Duration::from_millis(30));
        });
    });
}

#[test]
fn bad_signal_numbers_are_refused() {
    greenio::run(|| {
        for sig in [
            0,
            -1,
            65,
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGSEGV,
            libc::SIGFPE,
        ] {
            let err = Signals::new(&[sig]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "signal {sig}");
        }
        assert_eq!(
            Signals::new(&[]).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    });
}

#[test]
fn signals_outside_a_hub_is_an_error() {
    let err = Signals::new(&[SIGUSR1]).unwrap_err();
    assert!(err.to_string().contains("greenio::run"), "{err}");
}

#[test]
fn signals_used_from_another_hub_is_an_error() {
    child_passes("signals_used_from_another_hub_is_an_error", || {
        let rt = greenio::Runtime::builder().hubs(2).build().unwrap();
        rt.run(|| {
            let mut s = Signals::new(&[SIGUSR1]).unwrap();
            let h = greenio::spawn_on(1, move || s.try_recv().map_err(|e| e.to_string()));
            let err = h.join().unwrap().unwrap_err();
            assert!(err.contains("hub"), "{err}");
        });
    });
}

#[test]
fn default_action_returns_when_nobody_listens() {
    let name = "default_action_returns_when_nobody_listens";
    let st = in_child(name, || {
        greenio::run(|| {
            let s = Signals::new(&[SIGUSR2]).unwrap();
            drop(s);
            // Nobody listens: SIGUSR2's default action (terminate) applies.
            raise(SIGUSR2);
            greenio::sleep(Duration::from_secs(5));
        });
        // Still alive: the test must fail.
        std::process::exit(3);
    });
    if let Some(st) = st {
        assert_eq!(st.signal(), Some(SIGUSR2), "{st:?}");
    }
}

#[test]
fn previously_ignored_signal_stays_ignored() {
    child_passes("previously_ignored_signal_stays_ignored", || {
        // SAFETY: setting a signal to SIG_IGN is always sound.
        unsafe { libc::signal(SIGUSR1, libc::SIG_IGN) };
        greenio::run(|| {
            drop(Signals::new(&[SIGUSR1]).unwrap());
            raise(SIGUSR1);
            // Alive; and a listener still receives it.
            let mut s = Signals::new(&[SIGUSR1]).unwrap();
            raise(SIGUSR1);
            assert_eq!(s.recv().unwrap(), SIGUSR1);
        });
    });
}

static CHAINED: AtomicBool = AtomicBool::new(false);

extern "C" fn previous_handler(_sig: libc::c_int) {
    CHAINED.store(true, Ordering::SeqCst);
}

#[test]
fn a_previous_handler_is_chained() {
    child_passes("a_previous_handler_is_chained", || {
        // SAFETY: installs an async-signal-safe handler (one atomic store).
        unsafe { libc::signal(SIGUSR2, previous_handler as *const () as libc::sighandler_t) };
        greenio::run(|| {
            let mut s = Signals::new(&[SIGUSR2]).unwrap();
            raise(SIGUSR2);
            assert_eq!(s.recv().unwrap(), SIGUSR2);
            assert!(CHAINED.load(Ordering::SeqCst));
        });
    });
}

#[test]
fn a_burst_larger_than_the_pipe_still_delivers_each_distinct_signal() {
    child_passes(
        "a_burst_larger_than_the_pipe_still_delivers_each_distinct_signal",
        || {
            greenio::run(|| {
                let mut s = Signals::new(&[SIGUSR1, SIGUSR2]).unwrap();
                // Fill the pipe (64 KiB on Linux) with SIGUSR1, then one SIGUSR2.
                for _ in 0..70_000 {
                    raise(SIGUSR1);
                }
                raise(SIGUSR2);
                let mut saw_usr2 = false;
                let mut n = 0;
                while let Some(sig) = s.try_recv().unwrap() {
                    n += 1;
                    if sig == SIGUSR2 {
                        saw_usr2 = true;
                    }
                    assert!(n <= 80_000, "more signals than were raised");
                }
                assert!(saw_usr2, "SIGUSR2 lost in the overflow");
                assert!(n > 1000);
            });
        },
    );
}

/// Writing to a connection the peer has reset fails with an error and does
/// not kill the process, even with SIGPIPE at its default action (as in a
/// program whose `main` is not Rust's): greenio's sockets send with
/// `MSG_NOSIGNAL`.
#[test]
fn write_to_a_reset_peer_is_an_error_even_with_sigpipe_at_default() {
    child_passes(
        "write_to_a_reset_peer_is_an_error_even_with_sigpipe_at_default",
        || {
            // SAFETY: restoring a default disposition is always sound.
            unsafe { libc::signal(SIGPIPE, libc::SIG_DFL) };
            greenio::run(|| {
                let listener = greenio::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let mut c = greenio::net::TcpStream::connect(addr).unwrap();
                let (s, _) = listener.accept().unwrap();
                s.set_linger(Some(Duration::ZERO)).unwrap();
                drop(s); // SO_LINGER 0: close sends RST
                let chunk = [7u8; 1024];
                let mut err = None;
                for _ in 0..1000 {
                    if let Err(e) = c.write_all(&chunk) {
                        err = Some(e);
                        break;
                    }
                    greenio::sleep(Duration::from_millis(1));
                }
                let err = err.expect("writing to a reset peer must fail");
                assert!(
                    matches!(
                        err.kind(),
                        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
                    ),
                    "{err:?}"
                );
                // Once the reset is consumed, writes fail with EPIPE: exactly
                // where SIGPIPE would be raised.
                let err2 = c.write_all(&chunk).unwrap_err();
                assert_eq!(err2.kind(), ErrorKind::BrokenPipe, "{err2:?}");
            });
        },
    );
}

/// Rust binaries (test harnesses included) start with SIGPIPE ignored, so
/// even a plain `write(2)` to a broken pipe returns EPIPE.
#[test]
fn rust_binaries_start_with_sigpipe_ignored() {
    child_passes("rust_binaries_start_with_sigpipe_ignored", || {
        // SAFETY: all-zero sigaction is a valid out-buffer; a null new
        // action only queries.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let r = unsafe { libc::sigaction(SIGPIPE, std::ptr::null(), &mut old) };
        assert_eq!(r, 0);
        assert_eq!(old.sa_sigaction, libc::SIG_IGN);
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: we own both descriptors; close each once.
        unsafe { libc::close(fds[0]) };
        // SAFETY: a valid descriptor and a one-byte buffer.
        let n = unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) };
        let err = std::io::Error::last_os_error();
        assert_eq!(n, -1);
        assert_eq!(err.kind(), ErrorKind::BrokenPipe);
        // SAFETY: as above.
        unsafe { libc::close(fds[1]) };
    });
}
