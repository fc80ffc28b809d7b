//! The echo protocol as test bodies that take the server's address: one
//! body, every echo server (`examples/echo.rs`, `examples/echo_callback.rs`,
//! library servers started in-process). Plain `std::net` clients on OS
//! threads, every read bounded by a timeout.
//!
//! Include it with `#[path = "util/echo_protocol.rs"] mod echo_protocol;`
//! next to `mod util;` (it uses `util::pattern`).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// Bound on any single read.
pub const READ_LIMIT: Duration = Duration::from_secs(30);

/// A protocol test body: takes the server's address, panics on failure.
pub type Body = fn(SocketAddr);

/// Every protocol test, by name.
pub const ALL: &[(&str, Body)] = &[
    ("small_messages_round_trip", small_messages_round_trip),
    (
        "half_close_returns_everything_then_eof",
        half_close_returns_everything_then_eof,
    ),
    (
        "many_clients_at_once_in_order",
        many_clients_at_once_in_order,
    ),
    (
        "pipelined_writes_come_back_whole",
        pipelined_writes_come_back_whole,
    ),
    (
        "reset_client_does_not_hurt_others",
        reset_client_does_not_hurt_others,
    ),
];

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to the echo server");
    s.set_read_timeout(Some(READ_LIMIT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

pub use crate::util::pattern;

/// Messages of 1 byte to 64 KiB come back unchanged, one at a time.
pub fn small_messages_round_trip(addr: SocketAddr) {
    let mut c = connect(addr);
    for (i, size) in [1usize, 2, 64, 1000, 4096, 4097, 65536]
        .into_iter()
        .enumerate()
    {
        let msg = pattern(i as u32, size);
        c.write_all(&msg).unwrap();
        let mut back = vec![0; size];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, msg, "message of {size} bytes");
    }
}

/// Send 1 MB, shut down the write side, read everything back, then EOF.
pub fn half_close_returns_everything_then_eof(addr: SocketAddr) {
    let c = connect(addr);
    let msg = pattern(7, 1 << 20);
    let mut w = c.try_clone().unwrap();
    let m = msg.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&m).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    let mut r = c;
    r.read_to_end(&mut back).expect("read to EOF");
    writer.join().unwrap();
    assert_eq!(back.len(), msg.len());
    assert!(back == msg, "bytes came back changed");
}

/// 16 clients send 512 KB each at the same time; each gets its own bytes
/// back in order.
pub fn many_clients_at_once_in_order(addr: SocketAddr) {
    let clients: Vec<_> = (0..16u32)
        .map(|i| {
            std::thread::spawn(move || {
                let c = connect(addr);
                let msg = pattern(100 + i, 512 * 1024);
                let mut w = c.try_clone().unwrap();
                let m = msg.clone();
                let writer = std::thread::spawn(move || w.write_all(&m).unwrap());
                let mut back = vec![0; msg.len()];
                let mut r = c;
                r.read_exact(&mut back).unwrap();
                writer.join().unwrap();
                assert!(back == msg, "client {i}: bytes changed");
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
}

/// Many small writes before reading anything come back as one stream.
pub fn pipelined_writes_come_back_whole(addr: SocketAddr) {
    let mut c = connect(addr);
    let mut all = Vec::new();
    for i in 0..1000u32 {
        let m = format!("command {i}\n");
        c.write_all(m.as_bytes()).unwrap();
        all.extend_from_slice(m.as_bytes());
    }
    let mut back = vec![0; all.len()];
    c.read_exact(&mut back).unwrap();
    assert_eq!(back, all);
}

/// A client that resets its connection mid-stream does not disturb the
/// server: another client is served normally afterwards.
pub fn reset_client_does_not_hurt_others(addr: SocketAddr) {
    for _ in 0..3 {
        let c = connect(addr);
        let mut w = &c;
        w.write_all(&pattern(3, 256 * 1024)).unwrap();
        set_linger_zero(&c);
        drop(c); // RST, with echoed bytes unread
    }
    let mut ok = connect(addr);
    ok.write_all(b"still alive").unwrap();
    let mut back = [0u8; 11];
    ok.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"still alive");
}

/// SO_LINGER 0: closing sends a reset.
pub fn set_linger_zero(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a valid, correctly sized option value.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
}
