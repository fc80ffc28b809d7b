//! TCP sockets through real loopback connections: echo under load, many
//! connections, half-close, resets, timeouts, try_clone, cancellation,
//! sendfile, name lookup.

mod util;

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenio::net::{TcpListener, TcpStream};
use util::{pattern, run};

/// Echoes everything until EOF, then returns the byte count.
fn echo(mut s: TcpStream) -> std::io::Result<usize> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        s.write_all(&buf[..n])?;
        total += n;
    }
}

/// A listener whose acceptor echoes `conns` connections, one green thread
/// each; the handle yields the per-connection byte counts.
fn echo_server(conns: usize) -> (SocketAddr, greenio::JoinHandle<Vec<usize>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = greenio::spawn(move || {
        let handlers: Vec<_> = (0..conns)
            .map(|_| {
                let (s, _) = l.accept().unwrap();
                greenio::spawn(move || echo(s).unwrap())
            })
            .collect();
        handlers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    (addr, h)
}

#[test]
fn echo_64_clients_of_1_5_mb_at_once() {
    const CLIENTS: usize = 64;
    const SIZE: usize = 1_500_000;
    run("echo_64", || {
        let (addr, server) = echo_server(CLIENTS);
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                greenio::spawn(move || {
                    let data = pattern(i as u32, SIZE);
                    let s = TcpStream::connect(addr).unwrap();
                    let mut w = s.try_clone().unwrap();
                    let writer = greenio::spawn(move || {
                        // Odd chunk sizes exercise partial writes.
                        for chunk in data.chunks(10_007) {
                            w.write_all(chunk).unwrap();
                        }
                        w.shutdown(Shutdown::Write).unwrap();
                        data
                    });
                    let mut got = Vec::with_capacity(SIZE);
                    (&s).read_to_end(&mut got).unwrap();
                    let data = writer.join().unwrap();
                    assert_eq!(got.len(), SIZE, "client {i}: byte count");
                    assert!(got == data, "client {i}: bytes differ");
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        let counts = server.join().unwrap();
        assert_eq!(counts, vec![SIZE; CLIENTS]);
    });
}

#[test]
fn five_thousand_concurrent_connections() {
    const N: usize = 5000;
    let limit = util::raise_fd_limit();
    assert!(
        limit >= 2 * N as u64 + 500,
        "this test needs {} descriptors; `ulimit -n` allows {limit}",
        2 * N + 500
    );
    run("5000_conns", || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let open = Rc::new(Cell::new(0usize));
        let peak = Rc::new(Cell::new(0usize));
        let (o, p) = (open.clone(), peak.clone());
        // Not Send: the acceptor and the handlers stay on this hub.
        let acceptor = greenio::spawn(move || {
            let handlers: Vec<_> = (0..N)
                .map(|_| {
                    let (mut s, _) = l.accept().unwrap();
                    let (o, p) = (o.clone(), p.clone());
                    o.set(o.get() + 1);
                    p.set(p.get().max(o.get()));
                    greenio::spawn(move || {
                        let mut id = [0u8; 4];
                        s.read_exact(&mut id).unwrap();
                        s.write_all(&id).unwrap();
                        let mut rest = Vec::new();
                        s.read_to_end(&mut rest).unwrap();
                        o.set(o.get() - 1);
                        assert!(rest.is_empty());
                    })
                })
                .collect();
            for h in handlers {
                h.join().unwrap();
            }
        });
        let clients: Vec<_> = (0..N as u32)
            .map(|i| {
                greenio::spawn(move || {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.write_all(&i.to_be_bytes()).unwrap();
                    let mut back = [0u8; 4];
                    s.read_exact(&mut back).unwrap();
                    assert_eq!(u32::from_be_bytes(back), i);
                    s
                })
            })
            .collect();
        // Hold every client stream: all N connections are open at once.
        let streams: Vec<TcpStream> = clients.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(streams.len(), N);
        assert_eq!(peak.get(), N, "server saw all connections open at once");
        drop(streams);
        acceptor.join().unwrap();
        assert_eq!(open.get(), 0);
    });
}

#[test]
fn half_close_reads_everything_back_then_eof() {
    run("half_close", || {
        let (addr, server) = echo_server(1);
        let mut s = TcpStream::connect(addr).unwrap();
        let data = pattern(7, 100_000);
        // Fits in the socket buffers of both directions on loopback? Not
        // necessarily: write from a second green thread.
        let mut w = s.try_clone().unwrap();
        let d2 = data.clone();
        let writer = greenio::spawn(move || {
            w.write_all(&d2).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert!(got == data);
        // EOF again, and the write half stays shut.
        assert_eq!(s.read(&mut [0u8; 16]).unwrap(), 0);
        assert!(s.write_all(b"late").is_err());
        assert_eq!(server.join().unwrap(), vec![data.len()]);
    });
}

#[test]
fn peer_reset_mid_write_is_an_error_and_server_keeps_serving() {
    run("reset", || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let results = Rc::new(std::cell::RefCell::new(Vec::new()));
        let r2 = results.clone();
        // Server loop: 'F' floods the client until the write fails; 'E'
        // echoes one message.
        let server = greenio::spawn(move || {
            let mut handlers = Vec::new();
            for _ in 0..2 {
                let (mut s, _) = l.accept().unwrap();
                let r2 = r2.clone();
                handlers.push(greenio::spawn(move || {
                    let mut cmd = [0u8; 1];
                    s.read_exact(&mut cmd).unwrap();
                    if cmd[0] == b'F' {
                        let chunk = vec![0x5a; 64 * 1024];
                        let mut sent = 0usize;
                        let err = loop {
                            match s.write(&chunk) {
                                Ok(n) => sent += n,
                                Err(e) => break e,
                            }
                            assert!(sent < 1 << 34, "writes never failed");
                        };
                        r2.borrow_mut().push(err.kind());
                    } else {
                        let mut msg = [0u8; 5];
                        s.read_exact(&mut msg).unwrap();
                        s.write_all(&msg).unwrap();
                    }
                }));
            }
            for h in handlers {
                h.join().unwrap();
            }
        });
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"F").unwrap();
        let mut buf = [0u8; 1000];
        c.read_exact(&mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0x5a));
        c.set_linger(Some(Duration::ZERO)).unwrap();
        drop(c); // RST
                 // A second client is served normally.
        let mut c2 = TcpStream::connect(addr).unwrap();
        c2.write_all(b"Ehello").unwrap();
        let mut back = [0u8; 5];
        c2.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello");
        server.join().unwrap();
        let kinds = results.borrow();
        assert_eq!(kinds.len(), 1);
        assert!(
            matches!(kinds[0], ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
            "unexpected error kind {:?}",
            kinds[0]
        );
    });
}

#[test]
fn read_timeout_fires_as_timed_out_and_socket_stays_usable() {
    run("read_timeout", || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let timeout = Duration::from_millis(100);
        s.set_read_timeout(Some(timeout)).unwrap();
        assert_eq!(s.read_timeout().unwrap(), Some(timeout));
        let t = Instant::now();
        let e = s.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        assert!(t.elapsed() >= timeout, "fired early: {:?}", t.elapsed());
        // Data that arrives later is still read.
        c.write_all(b"late").unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"late");
        assert!(s.set_read_timeout(Some(Duration::ZERO)).is_err());
    });
}

#[test]
fn write_timeout_fires_when_peer_does_not_read() {
    run("write_timeout", || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_s, _) = l.accept().unwrap();
        let timeout = Duration::from_millis(100);
        c.set_write_timeout(Some(timeout)).unwrap();
        let chunk = vec![1u8; 256 * 1024];
        let t = Instant::now();
        let mut total = 0usize;
        let e = loop {
            match c.write(&chunk) {
                Ok(n) => total += n,
                Err(e) => break e,
            }
            assert!(total < 1 << 32, "the send buffer never filled");
        };
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        assert!(t.elapsed() >= timeout);
        assert!(total > 0);
    });
}

#[test]
fn connect_to_closed_port_is_refused() {
    run("refused", || {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let e = TcpStream::connect(addr).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
        let e = TcpStream::connect_timeout(&addr, Duration::from_secs(30)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    });
}

#[test]
fn connect_timeout_expires_on_a_full_backlog() {
    run("connect_timeout", || {
        // A listener with a backlog of 0 that never accepts: once its
        // accept queue is full, the kernel drops further SYNs, so a connect
        // can only time out.
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        // SAFETY: the fd is the listener's, open for the call.
        assert_eq!(unsafe { libc::listen(std_l.as_raw_fd(), 0) }, 0);
        let addr = std_l.local_addr().unwrap();
        let timeout = Duration::from_millis(200);
        let mut held = Vec::new();
        let mut timed_out = None;
        for _ in 0..16 {
            let t = Instant::now();
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => held.push(s),
                Err(e) => {
                    timed_out = Some((e.kind(), t.elapsed()));
                    break;
                }
            }
        }
        let (kind, elapsed) = timed_out.expect("every connect succeeded");
        assert_eq!(kind, ErrorKind::TimedOut);
        assert!(elapsed >= timeout);
        assert!(
            !held.is_empty(),
            "the first connect should fit in the queue"
        );
    });
}

#[test]
fn reader_and_writer_green_threads_on_a_cloned_socket() {
    run("clone_rw", || {
        let (addr, server) = echo_server(1);
        let reader = TcpStream::connect(addr).unwrap();
        let mut writer = reader.try_clone().unwrap();
        let data = pattern(3, 2_000_000);
        let d2 = data.clone();
        let w = greenio::spawn(move || {
            for chunk in d2.chunks(65_536) {
                writer.write_all(chunk).unwrap();
            }
            writer.shutdown(Shutdown::Write).unwrap();
        });
        let r = greenio::spawn(move || {
            let mut got = Vec::new();
            let mut reader = reader;
            reader.read_to_end(&mut got).unwrap();
            got
        });
        w.join().unwrap();
        assert!(r.join().unwrap() == data);
        assert_eq!(server.join().unwrap(), vec![data.len()]);
    });
}

#[test]
fn reader_and_writer_share_one_stream_on_one_hub() {
    run("shared_rw", || {
        let (addr, server) = echo_server(1);
        let s = Rc::new(TcpStream::connect(addr).unwrap());
        let data = pattern(4, 1_500_000);
        let (s2, d2) = (s.clone(), data.clone());
        // Both green threads park on the same registration: one as its
        // reader, one as its writer.
        let w = greenio::spawn(move || {
            for chunk in d2.chunks(50_000) {
                (&*s2).write_all(chunk).unwrap();
            }
            s2.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        (&*s).read_to_end(&mut got).unwrap();
        w.join().unwrap();
        assert!(got == data);
        assert_eq!(server.join().unwrap(), vec![data.len()]);
    });
}

#[test]
fn cloned_socket_used_from_two_hubs() {
    let rt = greenio::Runtime::builder().hubs(2).build().unwrap();
    let outcome = std::sync::Arc::new(std::sync::Mutex::new(None));
    let o2 = outcome.clone();
    let worker = std::thread::spawn(move || {
        rt.run(move || {
            let (addr, server) = echo_server(1);
            let s = TcpStream::connect(addr).unwrap();
            let mut writer = s.try_clone().unwrap();
            let data = pattern(11, 1_000_000);
            let d2 = data.clone();
            // The writer handle is first used (registered) on hub 0, then
            // moves to hub 1: it deregisters from hub 0 and registers there.
            writer.write_all(&d2[..1000]).unwrap();
            let w = greenio::spawn_on(1, move || {
                assert_eq!(greenio::current().hub(), 1);
                writer.write_all(&d2[1000..]).unwrap();
                writer.shutdown(Shutdown::Write).unwrap();
            });
            let mut got = Vec::new();
            (&s).read_to_end(&mut got).unwrap();
            w.join().unwrap();
            server.join().unwrap();
            *o2.lock().unwrap() = Some(got == data);
        });
    });
    let t = Instant::now();
    while !worker.is_finished() {
        assert!(t.elapsed() < util::LIMIT, "two-hub test hung");
        std::thread::sleep(Duration::from_millis(20));
    }
    worker.join().unwrap();
    assert_eq!(*outcome.lock().unwrap(), Some(true));
}

#[test]
fn stream_made_outside_a_hub_moves_in() {
    // Created before any hub exists, used inside one.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let e = l.accept().unwrap_err();
    assert!(e.to_string().contains("greenio::run"), "{e}");
    run("outside", move || {
        let c = greenio::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"x").unwrap();
        });
        let (mut s, _) = l.accept().unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        c.join().unwrap();
        assert_eq!(&b, b"x");
    });
}

#[test]
fn cancelling_a_blocked_reader_closes_the_socket() {
    run("cancel_read", || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let h = greenio::spawn(move || {
            let mut buf = [0u8; 16];
            let _ = s.read(&mut buf);
            unreachable!("the read must not return");
        });
        greenio::sleep(Duration::from_millis(20));
        h.cancel();
        assert!(h.join().unwrap_err().is_cancelled());
        // The handler's socket was dropped while unwinding: EOF here.
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        assert_eq!(c.read(&mut [0u8; 16]).unwrap(), 0);
        // And a timeout scope around a blocked read unwinds it too.
        let (c2, s2) = (
            TcpStream::connect(l.local_addr().unwrap()).unwrap(),
            l.accept().unwrap().0,
        );
        let r = greenio::timeout(Duration::from_millis(30), || (&s2).read(&mut [0u8; 4]));
        assert!(r.is_err());
        drop(s2);
        assert_eq!((&c2).read(&mut [0u8; 4]).unwrap(), 0);
    });
}

#[test]
fn sendfile_sends_a_temp_file() {
    run("sendfile", || {
        let data = pattern(5, 3_000_000);
        let path = std::env::temp_dir().join(format!("greenio-sendfile-{}", std::process::id()));
        std::fs::write(&path, &data).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let reader = greenio::spawn(move || {
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            got
        });
        // Most of the file, from an offset; then past its end.
        assert_eq!(
            c.sendfile(&file, 1000, data.len() - 2000).unwrap(),
            data.len() - 2000
        );
        assert_eq!(
            c.sendfile(&file, data.len() as u64 - 1000, 5000).unwrap(),
            1000
        );
        drop(c);
        let got = reader.join().unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(got.len(), data.len() - 1000);
        assert!(got[..data.len() - 2000] == data[1000..data.len() - 1000]);
        assert!(got[data.len() - 2000..] == data[data.len() - 1000..]);
    });
}

#[test]
fn vectored_io_and_peek() {
    run("vectored", || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let n = c
            .write_vectored(&[
                std::io::IoSlice::new(b"hello "),
                std::io::IoSlice::new(b"world"),
            ])
            .unwrap();
        assert_eq!(n, 11);
        let mut first = [0u8; 11];
        let mut got = 0;
        while got < 11 {
            got = s.peek(&mut first).unwrap();
        }
        assert_eq!(&first, b"hello world");
        let (mut a, mut b) = ([0u8; 6], [0u8; 5]);
        let mut read = 0;
        while read < 11 {
            let mut bufs = [
                std::io::IoSliceMut::new(&mut a[read.min(6)..]),
                std::io::IoSliceMut::new(&mut b[read.saturating_sub(6)..]),
            ];
            read += s.read_vectored(&mut bufs).unwrap();
        }
        assert_eq!(&a, b"hello ");
        assert_eq!(&b, b"world");
    });
}

#[test]
fn lookup_host_localhost() {
    run("lookup", || {
        let addrs = greenio::net::lookup_host("localhost:80").unwrap();
        assert!(!addrs.is_empty());
        assert!(
            addrs.iter().all(|a| a.port() == 80 && a.ip().is_loopback()),
            "{addrs:?}"
        );
        assert!(greenio::net::lookup_host("no port here").is_err());
        // connect resolves names too.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let c = greenio::spawn(move || TcpStream::connect(("localhost", port)));
        let _ = l.accept().unwrap();
        assert!(c.join().unwrap().is_ok());
    });
}

#[test]
fn sockets_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<TcpStream>();
    assert_send::<TcpListener>();
}
