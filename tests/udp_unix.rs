//! UDP and Unix domain sockets through real loopback round trips.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use greenio::net::{UdpSocket, UnixDatagram, UnixListener, UnixStream};
use util::{pattern, run};

/// A fresh directory for socket files, removed by the guard.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("greenio-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn udp_round_trip() {
    run("udp", || {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let echo = greenio::spawn(move || {
            let mut buf = [0u8; 2048];
            for _ in 0..100 {
                let (n, from) = server.recv_from(&mut buf).unwrap();
                server.send_to(&buf[..n], from).unwrap();
            }
        });
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(addr).unwrap();
        assert_eq!(client.peer_addr().unwrap(), addr);
        client
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut buf = [0u8; 2048];
        for i in 0..100u32 {
            let msg = pattern(i, 1 + (i as usize * 13) % 1400);
            assert_eq!(client.send(&msg).unwrap(), msg.len());
            let n = client.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &msg[..], "datagram {i}");
        }
        echo.join().unwrap();
    });
}

#[test]
fn udp_recv_timeout_and_peek() {
    run("udp_timeout", || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let timeout = Duration::from_millis(50);
        s.set_read_timeout(Some(timeout)).unwrap();
        let t = Instant::now();
        let e = s.recv_from(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        assert!(t.elapsed() >= timeout);
        // A datagram to ourselves: peek leaves it queued.
        s.send_to(b"self", s.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 8];
        let (n, from) = s.peek_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"self"[..], s.local_addr().unwrap()));
        let (n, _) = s.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"self");
        s.set_broadcast(true).unwrap();
        assert!(s.broadcast().unwrap());
    });
}

#[test]
fn unix_stream_round_trip() {
    run("unix_stream", || {
        let dir = TempDir::new("ustream");
        let path = dir.path("echo.sock");
        let l = UnixListener::bind(&path).unwrap();
        let server = greenio::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = vec![0u8; 32 * 1024];
            let mut total = 0;
            loop {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break total;
                }
                s.write_all(&buf[..n]).unwrap();
                total += n;
            }
        });
        let s = UnixStream::connect(&path).unwrap();
        let mut w = s.try_clone().unwrap();
        let data = pattern(9, 1_000_000);
        let d2 = data.clone();
        let writer = greenio::spawn(move || {
            w.write_all(&d2).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        (&s).read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert!(got == data);
        assert_eq!(server.join().unwrap(), data.len());
        drop(dir);
    });
}

#[test]
fn unix_stream_pair_and_broken_pipe() {
    run("unix_pair", || {
        let (a, mut b) = UnixStream::pair().unwrap();
        (&a).write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        // Read timeout.
        b.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        assert_eq!(b.read(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
        // Writing to a closed peer is an error, never SIGPIPE.
        drop(b);
        let e = (&a).write_all(&[0u8; 100_000]).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
            "{e:?}"
        );
    });
}

#[test]
fn unix_datagram_round_trips() {
    run("unix_dgram", || {
        let dir = TempDir::new("udgram");
        let spath = dir.path("server.sock");
        let cpath = dir.path("client.sock");
        let server = UnixDatagram::bind(&spath).unwrap();
        let echo = greenio::spawn(move || {
            let mut buf = [0u8; 4096];
            for _ in 0..50 {
                let (n, from) = server.recv_from(&mut buf).unwrap();
                let to = from.as_pathname().unwrap().to_path_buf();
                server.send_to(&buf[..n], to).unwrap();
            }
        });
        let client = UnixDatagram::bind(&cpath).unwrap();
        client.connect(&spath).unwrap();
        let mut buf = [0u8; 4096];
        for i in 0..50u32 {
            let msg = pattern(i, 1 + i as usize * 61);
            client.send(&msg).unwrap();
            let n = client.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &msg[..]);
        }
        echo.join().unwrap();

        // A pair: many datagrams queued before the reader runs; the sender
        // parks when the queue is full and resumes as it drains.
        let (a, b) = UnixDatagram::pair().unwrap();
        let sender = greenio::spawn(move || {
            for i in 0..2000u32 {
                a.send(&i.to_be_bytes()).unwrap();
            }
        });
        let mut four = [0u8; 4];
        for i in 0..2000u32 {
            assert_eq!(b.recv(&mut four).unwrap(), 4);
            assert_eq!(u32::from_be_bytes(four), i);
        }
        sender.join().unwrap();
        drop(dir);
    });
}

#[test]
fn unix_sockets_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<UnixStream>();
    assert_send::<UnixListener>();
    assert_send::<UnixDatagram>();
    assert_send::<UdpSocket>();
}
