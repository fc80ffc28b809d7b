//! examples/tls_echo (issue 13): rustls over greenio sockets, both ends.
//! The clients here are rustls `ClientConnection`s over greenio
//! `TcpStream`s on green threads, many at once; one test drives the real
//! `openssl s_client`.

mod util;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use greenio::net::TcpStream;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use util::Example;

/// A certificate for `localhost` written as PEM files the example loads,
/// and the client configuration that trusts it.
struct Cert {
    dir: PathBuf,
    cert: String,
    key: String,
    client: Arc<ClientConfig>,
}

impl Cert {
    fn new(tag: &str) -> Cert {
        let dir = std::env::temp_dir().join(format!("greenio-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(generated.cert.der().to_vec()))
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Cert {
            cert: cert.to_str().unwrap().to_string(),
            key: key.to_str().unwrap().to_string(),
            dir,
            client: Arc::new(client),
        }
    }

    fn start(&self) -> Example {
        Example::start(
            "tls_echo",
            &[
                "--listen",
                "127.0.0.1:0",
                "--cert",
                &self.cert,
                "--key",
                &self.key,
            ],
        )
    }
}

impl Drop for Cert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Connects and finishes the handshake (on a green thread).
fn connect(config: &Arc<ClientConfig>, addr: SocketAddr) -> Tls {
    let sock = TcpStream::connect(addr).expect("connect");
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(config.clone(), name).unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("handshake");
    }
    tls
}

/// Sends `msg` and reads the same number of bytes back.
fn round_trip(tls: &mut Tls, msg: &[u8]) -> Vec<u8> {
    tls.write_all(msg).unwrap();
    tls.flush().unwrap();
    let mut back = vec![0u8; msg.len()];
    tls.read_exact(&mut back).unwrap();
    back
}

fn close(mut tls: Tls) {
    tls.conn.send_close_notify();
    let _ = tls.flush();
    // The server answers with its own close_notify: a clean EOF.
    let mut rest = Vec::new();
    let n = tls.read_to_end(&mut rest).expect("clean TLS close");
    assert_eq!(n, 0, "unexpected data after close");
}

#[test]
fn tls_round_trips_many_connections_at_once() {
    let cert = Cert::new("many");
    let mut ex = cert.start();
    let addr = ex.addr;
    let config = cert.client.clone();
    let clients = 64;
    let checked = util::run("tls many", move || {
        let hs: Vec<_> = (0..clients)
            .map(|i| {
                let config = config.clone();
                greenio::spawn(move || {
                    let mut tls = connect(&config, addr);
                    let mut bytes = 0;
                    for round in 0..10u32 {
                        let size = 1 + ((i * 977 + round as usize * 131) % 12_000);
                        let msg = util::pattern(i as u32 * 100 + round, size);
                        assert_eq!(round_trip(&mut tls, &msg), msg, "client {i} round {round}");
                        bytes += size;
                    }
                    close(tls);
                    bytes
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&b| b > 0)
            .count()
    });
    assert_eq!(checked, clients);
    ex.signal(libc::SIGTERM);
    assert!(ex.wait_exit().success(), "stderr:\n{}", ex.stderr());
}

/// Reads until EOF or an error, at most 64 KiB; `true` if the server
/// closed the connection.
fn server_closes(sock: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    loop {
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => return true,
            Ok(n) => total += n,
        }
        if total > 65536 {
            return false;
        }
    }
}

#[test]
fn garbage_and_resets_close_only_their_own_connection() {
    let cert = Cert::new("garbage");
    let mut ex = cert.start();
    let addr = ex.addr;
    let config = cert.client.clone();
    util::run("tls garbage", move || {
        // A session that is up before the bad clients arrive...
        let mut good = connect(&config, addr);
        assert_eq!(round_trip(&mut good, b"before\n"), b"before\n");

        // 1. a plain-text client
        let mut plain = TcpStream::connect(addr).unwrap();
        plain.set_read_timeout(Some(util::LIMIT)).unwrap();
        plain.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(server_closes(&mut plain), "plain-text client not closed");

        // 2. random bytes that look like the start of a TLS record
        let mut junk = TcpStream::connect(addr).unwrap();
        junk.set_read_timeout(Some(util::LIMIT)).unwrap();
        let mut bytes = vec![0x16, 0x03, 0x01, 0x00, 0x40];
        bytes.extend(util::pattern(7, 64));
        junk.write_all(&bytes).unwrap();
        assert!(server_closes(&mut junk), "junk client not closed");

        // 3. a reset in the middle of the handshake
        let mut half = TcpStream::connect(addr).unwrap();
        half.write_all(&[0x16, 0x03, 0x01]).unwrap();
        half.set_linger(Some(Duration::ZERO)).unwrap();
        drop(half);

        // 4. a client that connects and closes at once
        drop(TcpStream::connect(addr).unwrap());

        // ...still works, and so does a new one.
        assert_eq!(round_trip(&mut good, b"after\n"), b"after\n");
        let mut fresh = connect(&config, addr);
        assert_eq!(round_trip(&mut fresh, b"fresh\n"), b"fresh\n");
        close(fresh);
        close(good);
    });
    ex.wait_stderr("TLS handshake failed");
    ex.signal(libc::SIGTERM);
    assert!(ex.wait_exit().success(), "stderr:\n{}", ex.stderr());
}

#[test]
fn openssl_s_client_gets_its_line_back() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipped: `openssl` is not installed (apt-get install openssl)");
        return;
    }
    // No --cert/--key: the example generates a self-signed certificate,
    // which s_client reports but accepts.
    let mut ex = Example::start_any_port("tls_echo");
    let mut client = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &ex.addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start openssl s_client");
    let mut stdin = client.stdin.take().unwrap();
    let mut stdout = client.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
            if got.ends_with(b"\n") {
                break;
            }
        }
        let _ = tx.send(got);
    });
    stdin
        .write_all(b"hello through openssl s_client\n")
        .unwrap();
    stdin.flush().unwrap();
    let got = rx.recv_timeout(util::PROCESS_LIMIT);
    drop(stdin);
    let _ = client.kill();
    let _ = client.wait();
    let got = got.expect("openssl s_client printed nothing back");
    assert_eq!(
        String::from_utf8_lossy(&got),
        "hello through openssl s_client\n",
        "stderr of tls_echo:\n{}",
        ex.stderr()
    );
    ex.signal(libc::SIGTERM);
    assert!(ex.wait_exit().success(), "stderr:\n{}", ex.stderr());
}

#[test]
fn cert_without_key_is_a_usage_error() {
    let (status, _out, err) = util::run_example("tls_echo", &["--cert", "/nonexistent.pem"]);
    assert_eq!(status.code(), Some(2), "stderr:\n{err}");
    assert!(err.contains("--cert and --key go together"), "{err}");
}
