//! `net::Server`: graceful stop, the connection limit, surviving EMFILE, a
//! panicking handler, serving on several hubs.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use greenio::net::{Server, ServerHandle, TcpStream};

mod util;

/// Bound of every wait in these tests (the machine may be busy).
const LONG: Duration = Duration::from_secs(30);

/// Runs `f`, failing the test if it has not finished within [`LONG`].
fn bounded<T>(what: &str, f: impl FnOnce() -> T) -> T {
    greenio::timeout(LONG, f).unwrap_or_else(|_| panic!("{what}: not done within {LONG:?}"))
}

/// Parks until `cond` holds (checked every millisecond), within [`LONG`].
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    bounded(what, || {
        while !cond() {
            greenio::sleep(Duration::from_millis(1));
        }
    })
}

fn echo(mut conn: TcpStream, _peer: std::net::SocketAddr) {
    let mut buf = [0u8; 1024];
    while let Ok(n @ 1..) = conn.read(&mut buf) {
        if conn.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

/// Starts `server` in its own green thread.
fn start(
    server: Server,
) -> (
    std::net::SocketAddr,
    ServerHandle,
    greenio::JoinHandle<std::io::Result<()>>,
) {
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let serving = greenio::spawn(move || server.serve());
    (addr, handle, serving)
}

fn stop_and_join(handle: &ServerHandle, serving: greenio::JoinHandle<std::io::Result<()>>) {
    handle.stop(Duration::from_secs(1));
    bounded("serve returns after stop", || serving.join())
        .unwrap()
        .unwrap();
}

fn echo_once(addr: std::net::SocketAddr, msg: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(LONG)).unwrap();
    c.write_all(msg).unwrap();
    let mut back = vec![0; msg.len()];
    c.read_exact(&mut back).unwrap();
    back
}

/// Records how a handler ended.
#[derive(Default)]
struct Outcomes {
    finished: AtomicUsize,
    unwound: AtomicUsize,
}

struct Track {
    outcomes: Arc<Outcomes>,
    done: bool,
}

impl Drop for Track {
    fn drop(&mut self) {
        let c = if self.done {
            &self.outcomes.finished
        } else {
            &self.outcomes.unwound
        };
        c.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn stop_lets_handlers_finish_then_cancels_the_stuck_ones() {
    greenio::run(|| {
        let outcomes = Arc::new(Outcomes::default());
        let o2 = outcomes.clone();
        let server = Server::bind("127.0.0.1:0", move |mut conn: TcpStream, _| {
            let mut track = Track {
                outcomes: o2.clone(),
                done: false,
            };
            let mut cmd = [0u8; 1];
            if conn.read_exact(&mut cmd).is_err() {
                return;
            }
            if cmd[0] == b'q' {
                // Mid-connection when the stop comes; finishes in time.
                greenio::sleep(Duration::from_millis(50));
                conn.write_all(b"bye").unwrap();
                track.done = true;
            } else {
                // Stuck: waits for a byte that never comes.
                let _ = conn.read(&mut cmd);
                track.done = true;
            }
        })
        .unwrap();
        let (addr, handle, serving) = start(server);

        let mut quick = TcpStream::connect(addr).unwrap();
        quick.write_all(b"q").unwrap();
        let mut stuck = TcpStream::connect(addr).unwrap();
        stuck.write_all(b"s").unwrap();
        wait_until("both connections served", || handle.connections() == 2);

        let grace = Duration::from_secs(2);
        let t0 = Instant::now();
        handle.stop(grace);

        quick.set_read_timeout(Some(LONG)).unwrap();
        let mut reply = Vec::new();
        quick.read_to_end(&mut reply).unwrap();
        assert_eq!(reply, b"bye", "the handler mid-connection finished");

        bounded("serve returns", || serving.join())
            .unwrap()
            .unwrap();
        assert!(
            t0.elapsed() >= grace,
            "serve waited for the grace period before cancelling the stuck handler"
        );
        assert_eq!(outcomes.finished.load(Ordering::SeqCst), 1);
        assert_eq!(
            outcomes.unwound.load(Ordering::SeqCst),
            1,
            "stuck handler cancelled"
        );
        assert_eq!(handle.connections(), 0);

        // The cancelled handler's stream was closed: EOF (or a reset).
        stuck.set_read_timeout(Some(LONG)).unwrap();
        let mut b = [0u8; 1];
        match stuck.read(&mut b) {
            Ok(n) => assert_eq!(n, 0),
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
        }

        // The listener is closed: new connects are refused.
        let err = TcpStream::connect(addr).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    });
}

#[test]
fn stop_with_no_connections_returns_at_once_and_before_serve_too() {
    greenio::run(|| {
        let server = Server::bind("127.0.0.1:0", echo).unwrap();
        let (addr, handle, serving) = start(server);
        assert_eq!(echo_once(addr, b"x"), b"x");
        // From a plain OS thread: the handle is Send + Sync.
        let h2 = handle.clone();
        std::thread::spawn(move || h2.stop(Duration::from_secs(3600)))
            .join()
            .unwrap();
        bounded("serve returns", || serving.join())
            .unwrap()
            .unwrap();
        assert!(handle.is_stopping());
        assert!(handle.accepted() >= 1);

        let server = Server::bind("127.0.0.1:0", echo).unwrap();
        server.handle().stop(Duration::ZERO);
        bounded("serve of a stopped server", || server.serve()).unwrap();
    });
}

#[test]
fn max_connections_parks_the_acceptor_until_one_closes() {
    greenio::run(|| {
        let server = Server::builder()
            .max_connections(2)
            .bind("127.0.0.1:0", |mut conn: TcpStream, _| {
                conn.write_all(b"hi").unwrap();
                let mut b = [0u8; 16];
                while let Ok(1..) = conn.read(&mut b) {}
            })
            .unwrap();
        let (addr, handle, serving) = start(server);

        let greet = |c: &mut TcpStream| {
            let mut b = [0u8; 2];
            c.read_exact(&mut b).map(|_| b)
        };
        let mut c1 = TcpStream::connect(addr).unwrap();
        let mut c2 = TcpStream::connect(addr).unwrap();
        c1.set_read_timeout(Some(LONG)).unwrap();
        c2.set_read_timeout(Some(LONG)).unwrap();
        assert_eq!(&greet(&mut c1).unwrap(), b"hi");
        assert_eq!(&greet(&mut c2).unwrap(), b"hi");

        // The third connection completes its handshake in the backlog but
        // is not served while two are live.
        let mut c3 = TcpStream::connect(addr).unwrap();
        c3.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let err = greet(&mut c3).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock),
            "{err:?}"
        );
        assert_eq!(handle.connections(), 2);
        assert_eq!(handle.accepted(), 2);

        // One closes: the third is served.
        drop(c1);
        c3.set_read_timeout(Some(LONG)).unwrap();
        assert_eq!(&greet(&mut c3).unwrap(), b"hi");
        assert_eq!(handle.accepted(), 3);
        assert!(handle.connections() <= 2);

        drop((c2, c3));
        stop_and_join(&handle, serving);
    });
}

#[test]
fn a_panicking_handler_does_not_take_the_server_down() {
    greenio::run(|| {
        let server = Server::bind("127.0.0.1:0", |mut conn: TcpStream, _| {
            let mut b = [0u8; 1];
            conn.read_exact(&mut b).unwrap();
            if b[0] == b'!' {
                panic!("handler asked to panic");
            }
            conn.write_all(&b).unwrap();
        })
        .unwrap();
        let (addr, handle, serving) = start(server);
        for _ in 0..3 {
            let mut bad = TcpStream::connect(addr).unwrap();
            bad.set_read_timeout(Some(LONG)).unwrap();
            bad.write_all(b"!").unwrap();
            let mut rest = Vec::new();
            // The panicking green thread dropped the stream: EOF or reset.
            match bad.read_to_end(&mut rest) {
                Ok(_) => assert!(rest.is_empty()),
                Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
            }
            assert_eq!(echo_once(addr, b"a"), b"a", "still serving");
        }
        wait_until("panicked connections released", || {
            handle.connections() == 0
        });
        assert!(!serving.is_finished());
        stop_and_join(&handle, serving);
    });
}

/// Serves on two hubs and returns the hub of each of `n` connections.
fn hubs_of_connections(reuse_port: bool, n: usize) -> Vec<u8> {
    let rt = greenio::Runtime::builder().hubs(2).build().unwrap();
    rt.run(move || {
        let server = Server::builder()
            .reuse_port(reuse_port)
            .bind("127.0.0.1:0", |mut conn: TcpStream, _| {
                let hub = greenio::current().hub() as u8;
                let _ = conn.write_all(&[hub]);
                let mut b = [0u8; 1];
                let _ = conn.read(&mut b);
            })
            .unwrap();
        let (addr, handle, serving) = start(server);
        // Keep every connection open until all have answered, so each is
        // a separate live connection.
        let mut conns = Vec::new();
        let mut hubs = Vec::new();
        for _ in 0..n {
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(LONG)).unwrap();
            let mut b = [0u8; 1];
            c.read_exact(&mut b).unwrap();
            hubs.push(b[0]);
            conns.push(c);
        }
        drop(conns);
        stop_and_join(&handle, serving);
        hubs
    })
}

#[test]
fn two_hubs_serve_connections_with_one_dealing_acceptor() {
    let hubs = hubs_of_connections(false, 8);
    // Round-robin: exactly alternating.
    assert_eq!(hubs.iter().filter(|&&h| h == 0).count(), 4, "{hubs:?}");
    assert_eq!(hubs.iter().filter(|&&h| h == 1).count(), 4, "{hubs:?}");
}

#[test]
fn two_hubs_serve_connections_with_reuse_port() {
    // The kernel hashes each connection to one of the two listeners; with
    // 40 connections both hubs get some (all on one: probability 2^-39).
    let hubs = hubs_of_connections(true, 40);
    assert!(hubs.contains(&0), "{hubs:?}");
    assert!(hubs.contains(&1), "{hubs:?}");
}

#[test]
fn reuse_port_shares_the_port_and_plain_bind_does_not() {
    greenio::run(|| {
        let a = Server::builder()
            .reuse_port(true)
            .bind("127.0.0.1:0", echo)
            .unwrap();
        let addr = a.local_addr().unwrap();
        let b = Server::builder()
            .reuse_port(true)
            .bind(addr, echo)
            .expect("a second SO_REUSEPORT server on the same port");
        assert_eq!(b.local_addr().unwrap(), addr);

        let c = Server::bind("127.0.0.1:0", echo).unwrap();
        let err = Server::bind(c.local_addr().unwrap(), echo).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse);
    });
}

#[test]
fn a_broken_listener_ends_serve_with_its_error() {
    greenio::run(|| {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = std_listener.as_raw_fd();
        let listener = greenio::net::TcpListener::from_std(std_listener).unwrap();
        let server = Server::builder().listener(listener, echo);
        let (addr, handle, serving) = start(server);
        assert_eq!(echo_once(addr, b"ok"), b"ok");
        // shutdown(2) on a listening socket makes accept fail with EINVAL:
        // retrying cannot help, so serve must end (not spin) with the error.
        // SAFETY: `fd` is the listener's open descriptor, owned by the
        // server, which is still running.
        assert_eq!(unsafe { libc::shutdown(fd, libc::SHUT_RDWR) }, 0);
        let err = bounded("serve ends", || serving.join())
            .unwrap()
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err:?}");
        assert!(handle.is_stopping());
    });
}

const CHILD_ENV: &str = "GREENIO_SERVER_CHILD";

#[test]
fn out_of_descriptors_the_server_backs_off_and_serves_again() {
    util::in_child(
        CHILD_ENV,
        "out_of_descriptors_the_server_backs_off_and_serves_again",
        || {
            // A low limit so that exhausting it is quick.
            let lim = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            // SAFETY: a valid rlimit; lowering our own limit is always allowed.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
            greenio::run(|| {
                let server = Server::bind("127.0.0.1:0", echo).unwrap();
                let (addr, handle, serving) = start(server);

                // A client whose handshake completes while descriptors remain;
                // the server has not run yet (this green thread has not parked).
                let client = std::net::TcpStream::connect(addr).unwrap();
                let client = TcpStream::from_std(client).unwrap();

                // Use up every descriptor.
                let mut hog = Vec::new();
                loop {
                    match std::fs::File::open("/dev/null") {
                        Ok(f) => hog.push(f),
                        Err(e) => {
                            assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e:?}");
                            break;
                        }
                    }
                    assert!(hog.len() < 1024, "the descriptor limit did not apply");
                }

                // The acceptor now fails with EMFILE and must back off.
                let t0 = Instant::now();
                wait_until("accept failed with EMFILE", || handle.accept_errors() >= 3);
                greenio::sleep(Duration::from_millis(300));
                let errors = handle.accept_errors();
                let elapsed = t0.elapsed();
                assert!(!serving.is_finished(), "the server kept running");
                assert_eq!(handle.accepted(), 0);
                // Sleeps of 1, 2, 4 ... 100 ms between tries: about ten tries a
                // second at most (plus the first few quick ones). A spinning
                // loop would make many thousands.
                let most = 20 + 20 * elapsed.as_secs();
                assert!(
                    errors <= most,
                    "{errors} accept errors in {elapsed:?}: spinning?"
                );

                // Descriptors free up: the pending connection is served.
                drop(hog);
                client.set_read_timeout(Some(LONG)).unwrap();
                (&client).write_all(b"back").unwrap();
                let mut reply = [0u8; 4];
                (&client).read_exact(&mut reply).unwrap();
                assert_eq!(&reply, b"back");
                assert_eq!(echo_once(addr, b"new"), b"new");
                assert_eq!(handle.accepted(), 2);
                drop(client);
                stop_and_join(&handle, serving);
            });
        },
    );
}

#[test]
fn connection_green_threads_carry_the_configured_name() {
    greenio::run(|| {
        let names = Arc::new(Mutex::new(Vec::new()));
        let n2 = names.clone();
        let server = Server::builder()
            .name("echo")
            .stack_size(64 * 1024)
            .bind("127.0.0.1:0", move |mut conn: TcpStream, peer| {
                let me = greenio::current();
                n2.lock()
                    .unwrap()
                    .push((me.name().map(str::to_owned), peer));
                let _ = conn.write_all(b".");
            })
            .unwrap();
        let (addr, handle, serving) = start(server);
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(LONG)).unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        let local = c.local_addr().unwrap();
        let names = names.lock().unwrap().clone();
        assert_eq!(names, vec![(Some(format!("echo {local}")), local)]);
        stop_and_join(&handle, serving);
    });
}

#[test]
fn serve_outside_a_runtime_is_a_misuse_error_a_caller_can_match() {
    let server = Server::bind("127.0.0.1:0", echo).unwrap();
    let err = server.serve().unwrap_err();
    assert_eq!(
        greenio::net::Misuse::of(&err),
        Some(greenio::net::Misuse::OutsideRuntime)
    );
    assert!(err.to_string().contains("greenio::run"), "{err}");
}
