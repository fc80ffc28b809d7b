//! Scenarios that end the process: a green thread overflowing its stack,
//! and a deadlocked hub. Each runs in a child process (this binary again,
//! with `GREENIO_CRASH_CASE` set), alone, and the parent checks how it
//! ended and what it printed.
//!
//! `harness = false`: the child must be the process's only thread so that
//! the deadlock detector can prove that no other thread may wake it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn overflow() {
    greenio::run(|| {
        fn recurse(n: u64) -> u64 {
            if n == u64::MAX {
                return 0;
            }
            let pad = std::hint::black_box([n; 64]);
            recurse(n + 1) + pad[3]
        }
        let h = greenio::Builder::new()
            .name("deep-diver")
            .stack_size(64 * 1024)
            .spawn(|| recurse(0))
            .unwrap();
        let _ = h.join();
    });
}

fn deadlock_join_chain() {
    greenio::run(|| {
        let b = greenio::Builder::new()
            .name("stuck-parker")
            .spawn(greenio::park)
            .unwrap();
        let a = greenio::Builder::new()
            .name("waiting-joiner")
            .spawn(move || b.join().is_ok())
            .unwrap();
        let _ = a.join();
    });
}

fn deadlock_on_a_channel() {
    greenio::run(|| {
        let (tx, rx) = greenio::sync::channel::<u8>();
        let _keep = tx; // nobody else can ever send
        let _ = rx.recv();
    });
}

fn no_false_deadlock_with_timer() {
    // A sleeper keeps the hub alive; main parks until it unparks main.
    greenio::run(|| {
        let u = greenio::current().unparker();
        greenio::spawn(move || {
            greenio::sleep(Duration::from_millis(50));
            u.unpark();
        });
        greenio::park();
    });
    println!("survived");
}

struct Outcome {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

fn run_child(case: &str) -> Outcome {
    let exe = std::env::current_exe().expect("current_exe");
    let t = Instant::now();
    let out = Command::new(exe)
        .env("GREENIO_CRASH_CASE", case)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
        .expect("spawn child");
    use std::os::unix::process::ExitStatusExt;
    Outcome {
        code: out.status.code(),
        signal: out.status.signal(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: t.elapsed(),
    }
}

fn check_overflow() -> Result<(), String> {
    let o = run_child("overflow");
    if o.signal != Some(libc::SIGABRT) {
        return Err(format!(
            "expected SIGABRT, got code {:?} signal {:?}; stderr:\n{}",
            o.code, o.signal, o.stderr
        ));
    }
    let want = "green thread 'deep-diver' (id ";
    // The site is the `.spawn(|| recurse(0))` line of `overflow` above.
    let site = "spawned at tests/crash.rs:24, overflowed its stack of 65536 bytes";
    if !o.stderr.contains(want) || !o.stderr.contains(site) {
        return Err(format!("message missing; stderr:\n{}", o.stderr));
    }
    Ok(())
}

fn check_deadlock() -> Result<(), String> {
    let o = run_child("deadlock");
    if o.code != Some(101) {
        return Err(format!(
            "expected a panic (exit 101), got code {:?} signal {:?} after {:?}; stderr:\n{}",
            o.code, o.signal, o.elapsed, o.stderr
        ));
    }
    for needle in [
        "deadlock",
        "stuck-parker",
        "waiting-joiner",
        "main",
        "park",
        "join",
        // The spawn sites of the two green threads in `deadlock_join_chain`.
        "spawned at tests/crash.rs:34",
        "spawned at tests/crash.rs:38",
    ] {
        if !o.stderr.contains(needle) {
            return Err(format!("report lacks {needle:?}; stderr:\n{}", o.stderr));
        }
    }
    Ok(())
}

fn check_no_false_deadlock() -> Result<(), String> {
    let o = run_child("timer");
    if o.code != Some(0) || !o.stdout.contains("survived") {
        return Err(format!(
            "expected a clean exit, got code {:?}; stderr:\n{}",
            o.code, o.stderr
        ));
    }
    Ok(())
}

/// A sync wait (here a channel) with no other thread in the process that
/// could end it is a deadlock too: the watchdog's monitor thread and the
/// blocking pool do not count as such threads. Bounded: a hang fails.
fn check_channel_deadlock() -> Result<(), String> {
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .env("GREENIO_CRASH_CASE", "channel")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let limit = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err("a channel deadlock hung instead of being reported".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    use std::io::Read;
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err);
    if status.code() != Some(101) || !err.contains("deadlock") || !err.contains("channel recv") {
        return Err(format!(
            "expected a deadlock report, got {status:?}; stderr:\n{err}"
        ));
    }
    Ok(())
}

fn main() {
    match std::env::var("GREENIO_CRASH_CASE").as_deref() {
        Ok("overflow") => return overflow(),
        Ok("deadlock") => return deadlock_join_chain(),
        Ok("timer") => return no_false_deadlock_with_timer(),
        Ok("channel") => return deadlock_on_a_channel(),
        Ok(other) => panic!("unknown case {other}"),
        Err(_) => {}
    }
    type Check = fn() -> Result<(), String>;
    let checks: [(&str, Check); 4] = [
        (
            "stack_overflow_prints_name_and_size_then_aborts",
            check_overflow,
        ),
        ("deadlock_report_names_parked_threads", check_deadlock),
        ("deadlock_on_a_channel_is_reported", check_channel_deadlock),
        ("sleeping_thread_is_not_a_deadlock", check_no_false_deadlock),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, check) in checks {
        match check() {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(e) => {
                println!("test {name} ... FAILED\n{e}");
                failed += 1;
            }
        }
    }
    println!("\ncrash: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
