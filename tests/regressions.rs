//! Regression tests, each named after the bug it pins down.

use std::io::Read;
use std::time::Duration;

/// Sums the resident size of this process's green-thread stacks: the
/// anonymous read-write mappings of exactly the default stack size.
fn stack_rss_kib() -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
    let size = greenio::DEFAULT_STACK_SIZE as u64;
    let (mut total, mut current) = (0, (0u64, false));
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if let Some((lo, hi)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            let (lo, hi) = (
                u64::from_str_radix(lo, 16).unwrap_or(0),
                u64::from_str_radix(hi, 16).unwrap_or(0),
            );
            let rw = words.next().is_some_and(|p| p.starts_with("rw"));
            current = (hi - lo, rw);
        } else if first == "Rss:" && current.0 == size && current.1 {
            total += words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    total
}

/// Growing the I/O slab used to build a `[Entry; 64]` on the calling green
/// thread's stack; the stack probes of that frame committed ~12 KiB of
/// every connection's stack on its first socket wait (20 KiB per idle echo
/// connection instead of 8).
#[test]
fn socket_wait_does_not_commit_a_slab_chunk_worth_of_stack() {
    const N: usize = 200;
    let per_thread = greenio::run(|| {
        let listener = greenio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let before = stack_rss_kib();
        let mut clients = Vec::new();
        let mut readers = Vec::new();
        for _ in 0..N {
            clients.push(std::net::TcpStream::connect(addr).unwrap());
            let (mut conn, _) = listener.accept().unwrap();
            readers.push(greenio::spawn(move || {
                let mut buf = [0u8; 64];
                let _ = conn.read(&mut buf);
            }));
        }
        greenio::sleep(Duration::from_millis(50));
        let after = stack_rss_kib();
        drop(clients);
        for r in readers {
            r.join().unwrap();
        }
        after.saturating_sub(before) as f64 / N as f64
    });
    // A parked reader touches a few pages (more in debug builds, whose
    // frames are larger); the bug added three more to every one of them.
    assert!(
        per_thread <= 12.0,
        "each parked reader committed {per_thread:.1} KiB of stack"
    );
}
