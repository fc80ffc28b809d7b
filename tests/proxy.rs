//! The proxy example as a user runs it: start the built binary in front of
//! an upstream made of plain OS threads in this test, and check what goes
//! through: bytes both ways, half-closes, a dead upstream.
//!
//! Build the examples first when running this file alone:
//! `cargo build --examples && cargo test --test proxy`.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use util::{pattern, run_example, Example};

const LONG: Duration = Duration::from_secs(30);

/// Starts the proxy in front of `upstream`.
fn proxy_to(upstream: SocketAddr) -> Example {
    Example::start(
        "proxy",
        &["--listen", "127.0.0.1:0", "--to", &upstream.to_string()],
    )
}

/// An upstream that runs `serve` on each connection, on its own thread.
fn upstream(serve: fn(TcpStream)) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { break };
            conn.set_read_timeout(Some(LONG)).unwrap();
            thread::spawn(move || serve(conn));
        }
    });
    addr
}

fn echo(mut conn: TcpStream) {
    let mut buf = [0u8; 8192];
    while let Ok(n @ 1..) = conn.read(&mut buf) {
        if conn.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(LONG)).unwrap();
    c.set_write_timeout(Some(LONG)).unwrap();
    c
}

/// Reads until EOF; a reset also counts as closed.
fn read_until_closed(c: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("waiting for the close: {e}"),
        }
    }
}

#[test]
fn bytes_go_both_ways_unchanged() {
    let p = proxy_to(upstream(echo));
    // Several connections at once, each writing on one thread while
    // reading on another, so neither direction waits for the other.
    let clients: Vec<_> = (0..8u32)
        .map(|i| {
            let addr = p.addr;
            thread::spawn(move || {
                let data = pattern(i, 1 << 20);
                let mut c = connect(addr);
                let mut w = c.try_clone().unwrap();
                let sent = data.clone();
                let writer = thread::spawn(move || {
                    for chunk in sent.chunks(7919) {
                        w.write_all(chunk).unwrap();
                    }
                    w.shutdown(Shutdown::Write).unwrap();
                });
                let back = read_until_closed(&mut c);
                writer.join().unwrap();
                assert!(back == data, "connection {i}: {} bytes back", back.len());
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
fn a_client_half_close_reaches_upstream_and_the_answer_still_comes_back() {
    // The upstream answers only once it has seen EOF: the client's
    // half-close must be passed on, and the way back must stay open.
    fn answer_after_eof(mut conn: TcpStream) {
        let mut request = Vec::new();
        conn.read_to_end(&mut request).unwrap();
        let reply = format!(
            "got {} bytes: {}",
            request.len(),
            String::from_utf8_lossy(&request)
        );
        conn.write_all(reply.as_bytes()).unwrap();
    }
    let p = proxy_to(upstream(answer_after_eof));
    let mut c = connect(p.addr);
    c.write_all(b"the whole request").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let reply = read_until_closed(&mut c);
    assert_eq!(reply, b"got 17 bytes: the whole request");
}

#[test]
fn an_upstream_half_close_reaches_the_client_which_can_still_send() {
    // The upstream sends a banner and shuts down its sending half, then
    // reads what the client sends and reports it through a channel.
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    thread::spawn(move || {
        let (mut conn, _) = l.accept().unwrap();
        conn.set_read_timeout(Some(LONG)).unwrap();
        conn.write_all(b"banner, then silence").unwrap();
        conn.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).unwrap();
        let _ = tx.send(rest);
    });

    let p = proxy_to(up);
    let mut c = connect(p.addr);
    let mut banner = Vec::new();
    c.read_to_end(&mut banner).unwrap(); // EOF: the half-close arrived
    assert_eq!(banner, b"banner, then silence");
    c.write_all(b"still talking").unwrap();
    c.write_all(b" after EOF").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let got = rx
        .recv_timeout(LONG)
        .expect("the upstream saw the client's EOF");
    assert_eq!(got, b"still talking after EOF");
}

#[test]
fn a_dead_upstream_closes_the_client_promptly_with_a_log_line() {
    // A port where nothing listens.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let p = proxy_to(dead);
    for _ in 0..3 {
        let mut c = connect(p.addr);
        let got = read_until_closed(&mut c);
        assert!(got.is_empty(), "{got:?}");
    }
    let line = p.wait_stderr("cannot reach upstream");
    assert!(line.contains(&dead.to_string()), "{line}");

    // The proxy itself is fine: once the upstream is back, it forwards.
    let l = TcpListener::bind(dead);
    if let Ok(l) = l {
        thread::spawn(move || {
            if let Ok((conn, _)) = l.accept() {
                echo(conn);
            }
        });
        let mut c = connect(p.addr);
        c.write_all(b"back").unwrap();
        let mut b = [0u8; 4];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"back");
    }
}

#[test]
fn an_upstream_reset_mid_stream_closes_the_client() {
    fn reset_after_hello(mut conn: TcpStream) {
        let mut b = [0u8; 5];
        conn.read_exact(&mut b).unwrap();
        conn.write_all(b"bye").unwrap();
        // Unread input plus close: the kernel sends a reset.
        thread::sleep(Duration::from_millis(50));
        drop(conn);
    }
    let p = proxy_to(upstream(reset_after_hello));
    let mut c = connect(p.addr);
    c.write_all(b"hello and more bytes the upstream never reads")
        .unwrap();
    let got = read_until_closed(&mut c);
    assert!(b"bye".starts_with(&got), "{got:?}");
}

#[test]
fn a_client_reset_closes_the_upstream() {
    let (tx, rx) = mpsc::channel::<()>();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    thread::spawn(move || {
        let (mut conn, _) = l.accept().unwrap();
        conn.set_read_timeout(Some(LONG)).unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = tx.send(());
    });
    let p = proxy_to(up);
    let c = connect(p.addr);
    // Linger 0: dropping the client sends a reset, not a FIN.
    let fd = std::os::fd::AsRawFd::as_raw_fd(&c);
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` lives across the call and its size is passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
    (&c).write_all(b"partial").unwrap();
    drop(c);
    rx.recv_timeout(LONG)
        .expect("the upstream connection ended after the client's reset");
}

#[test]
fn help_bad_arguments_unresolvable_upstream_and_signals() {
    let (st, out, _) = run_example("proxy", &["--help"]);
    assert!(st.success());
    for want in ["--listen", "--to", "127.0.0.1:7002"] {
        assert!(out.contains(want), "{want} in {out}");
    }
    let (st, _, _) = run_example("proxy", &["--bogus"]);
    assert_eq!(st.code(), Some(2));
    let (st, _, err) = run_example(
        "proxy",
        &["--listen", "127.0.0.1:0", "--to", "no-port-here"],
    );
    assert_eq!(st.code(), Some(1), "{st:?} {err}");
    assert!(err.contains("--to no-port-here"), "{err}");

    for sig in [libc::SIGINT, libc::SIGTERM] {
        let mut p = proxy_to(upstream(echo));
        let mut open = connect(p.addr);
        open.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        open.read_exact(&mut b).unwrap();
        p.signal(sig);
        let st = p.wait_exit();
        assert_eq!(st.code(), Some(0), "{st:?}");
        assert!(p.more_stdout().is_empty(), "exactly one stdout line");
        read_until_closed(&mut open);
    }
}
