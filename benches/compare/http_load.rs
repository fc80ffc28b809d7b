//! The harness's paced HTTP client: a fixed request rate over keep-alive
//! connections, for the server's CPU time per request (wrk cannot pace:
//! it always runs closed loop, so its runs measure capacity, not cost).
//!
//! One OS thread per connection, each with one request in flight: it
//! sleeps until its next slot (`rate / conns` slots a second, offset so
//! the connections do not fire together), writes `GET /plaintext`, reads
//! the response by its `Content-Length`, and counts it. A thread that
//! falls behind sends at once rather than skipping slots, so the offered
//! load is the rate as long as the server keeps up. The threads inherit
//! the harness's pin to the client CPU.
//!
//! The server's user and system time come from `/proc/PID/stat` (clock
//! ticks, 10 ms each: a 5 s run at 20,000 requests/s is 100,000 requests,
//! so one tick is 0.1 µs per request).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::PacedRun;
use crate::procs;

/// Longest wait for any one response.
const RESPONSE_LIMIT: Duration = Duration::from_secs(10);

/// Offers `rate` requests/s over `conns` connections to `server` for
/// `secs` seconds (after a quarter second of warm-up) and measures the
/// server's CPU time per request.
pub fn paced(
    server: &mut procs::Server,
    conns: usize,
    rate: u32,
    secs: f64,
) -> Result<PacedRun, String> {
    if !server.running() {
        return Err(format!("the server is gone{}", server.log_tail()));
    }
    let warmup = Duration::from_millis(250);
    let window = Duration::from_secs_f64(secs);
    let interval = Duration::from_secs_f64(conns as f64 / f64::from(rate));
    let answered = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(200);
    let measure_from = start + warmup;
    let end = measure_from + window;
    let mut threads = Vec::with_capacity(conns);
    for i in 0..conns {
        let (answered, errors, addr) = (answered.clone(), errors.clone(), server.addr);
        let first = start + interval.mul_f64(i as f64 / conns as f64);
        let t = std::thread::Builder::new()
            .name(format!("paced-{i}"))
            .stack_size(64 * 1024)
            .spawn(move || {
                if let Err(_e) = connection(addr, first, interval, measure_from, end, &answered) {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            })
            .map_err(|e| format!("cannot start a client thread: {e}"))?;
        threads.push(t);
    }
    // Sample the server's CPU time at the window's edges.
    sleep_until(measure_from);
    let (u0, s0) = procs::process_user_sys_ticks(server.pid).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    sleep_until(end);
    let (u1, s1) = procs::process_user_sys_ticks(server.pid).map_err(|e| e.to_string())?;
    let elapsed = t0.elapsed().as_secs_f64();
    for t in threads {
        let _ = t.join();
    }
    let n = answered.load(Ordering::Relaxed) as f64;
    if n == 0.0 {
        return Err("no request was answered".into());
    }
    let tick_us = 1e6 / procs::clock_ticks();
    let user_us = (u1 - u0) as f64 * tick_us / n;
    let sys_us = (s1 - s0) as f64 * tick_us / n;
    Ok(PacedRun {
        rps: n / elapsed,
        cpu_us: user_us + sys_us,
        user_us,
        errors: errors.load(Ordering::Relaxed),
    })
}

/// One paced connection: a request per slot until `end`; responses that
/// complete inside `[measure_from, end)` are counted.
fn connection(
    addr: SocketAddr,
    first: Instant,
    interval: Duration,
    measure_from: Instant,
    end: Instant,
    answered: &AtomicU64,
) -> io::Result<()> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(RESPONSE_LIMIT))?;
    let mut buf = vec![0u8; 4096];
    let mut next = first;
    while next < end {
        sleep_until(next);
        s.write_all(b"GET /plaintext HTTP/1.1\r\nHost: bench\r\n\r\n")?;
        read_response(&mut s, &mut buf)?;
        let now = Instant::now();
        if now >= measure_from && now < end {
            answered.fetch_add(1, Ordering::Relaxed);
        }
        next += interval;
    }
    Ok(())
}

/// Reads one response (head, then `Content-Length` bytes of body).
fn read_response(s: &mut TcpStream, buf: &mut [u8]) -> io::Result<()> {
    let mut have = 0;
    loop {
        let n = s.read(&mut buf[have..])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        have += n;
        let Some(head_end) = find(&buf[..have], b"\r\n\r\n") else {
            if have == buf.len() {
                return Err(io::Error::other("response head too long"));
            }
            continue;
        };
        let len = content_length(&buf[..head_end]).ok_or_else(|| io::Error::other("no length"))?;
        let total = head_end + 4 + len;
        if total > buf.len() {
            return Err(io::Error::other("response too long"));
        }
        while have < total {
            let n = s.read(&mut buf[have..total])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            have += n;
        }
        if have > total {
            return Err(io::Error::other("bytes beyond the response"));
        }
        return Ok(());
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The `Content-Length` value in a response head (any letter case).
fn content_length(head: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(head).ok()?;
    text.split("\r\n").find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}
