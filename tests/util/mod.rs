//! Helpers shared by the integration tests (`mod util;` in each file).
#![allow(dead_code)]

use std::sync::mpsc;
use std::time::Duration;

/// A generous bound for a whole test: the machine may be busy with other
/// test binaries, so this only catches hangs, never measures speed.
pub const LIMIT: Duration = Duration::from_secs(120);

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
