//! The HTTP/1.1 contract of issue 12 as test bodies that take the
//! server's address: one body, both server twins (`examples/http.rs`,
//! `examples/http_callback.rs`; see `tests/http.rs`). Plain `std::net`
//! clients on OS threads, every read bounded by a timeout.
//!
//! The bodies in [`ALL`] expect a server started with `--timeout`
//! [`LONG_TIMEOUT`]; those in [`TIMEOUTS`] one started with
//! [`SHORT_TIMEOUT`].
//!
//! Include it with `#[path = "util/http_protocol.rs"] mod http_protocol;`
//! next to `mod util;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Bound on any single read.
pub const READ_LIMIT: Duration = Duration::from_secs(30);
/// `--timeout` for the bodies in [`ALL`], in seconds: no connection of
/// theirs is idle that long, however busy the machine.
pub const LONG_TIMEOUT: &str = "60";
/// `--timeout` for the bodies in [`TIMEOUTS`], in seconds.
pub const SHORT_TIMEOUT: &str = "1";

/// A protocol test body: takes the server's address, panics on failure.
pub type Body = fn(SocketAddr);

/// Every protocol test, by name.
pub const ALL: &[(&str, Body)] = &[
    ("plaintext_and_json", plaintext_and_json),
    ("head_has_headers_only", head_has_headers_only),
    ("echo_with_content_length", echo_with_content_length),
    ("echo_chunked", echo_chunked),
    ("expect_100_continue", expect_100_continue),
    ("not_found", not_found),
    ("keep_alive_and_close", keep_alive_and_close),
    ("http10_closes_unless_asked", http10_closes_unless_asked),
    ("pipelined_answers_in_order", pipelined_answers_in_order),
    ("malformed_requests_get_400", malformed_requests_get_400),
    ("overlong_head_gets_431", overlong_head_gets_431),
    ("overlarge_body_gets_413", overlarge_body_gets_413),
    (
        "non_reading_pipeliner_is_held_back",
        non_reading_pipeliner_is_held_back,
    ),
    ("garbage_does_not_hurt_others", garbage_does_not_hurt_others),
    (
        "thousand_keep_alive_connections",
        thousand_keep_alive_connections,
    ),
];

/// The protocol tests that need a server with a short `--timeout`.
pub const TIMEOUTS: &[(&str, Body)] = &[
    ("slow_head_gets_408", slow_head_gets_408),
    ("trickling_client_is_closed", trickling_client_is_closed),
    ("idle_keep_alive_is_closed", idle_keep_alive_is_closed),
];

/// A parsed response.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One client connection.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects, with reads bounded by [`READ_LIMIT`].
    pub fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).expect("connect to the HTTP server");
        s.set_read_timeout(Some(READ_LIMIT)).unwrap();
        s.set_nodelay(true).unwrap();
        Client {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send to the server");
    }

    /// Sends `GET path` (HTTP/1.1) and returns the response.
    pub fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        self.response(false)
    }

    /// Reads one response; `head_only` for the answer to a HEAD request
    /// (its Content-Length describes a body that is not sent).
    pub fn response(&mut self, head_only: bool) -> Response {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("read a status line");
        assert!(!line.is_empty(), "EOF instead of a response");
        let mut parts = line.trim_end().splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "status line {line:?}");
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).expect("read a header line");
            let h = h.trim_end_matches(['\r', '\n']);
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':').unwrap_or_else(|| panic!("header {h:?}"));
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
        let mut r = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let len: usize = r
            .header("content-length")
            .expect("every response has a Content-Length")
            .parse()
            .expect("a numeric Content-Length");
        if !head_only {
            r.body = vec![0; len];
            self.reader.read_exact(&mut r.body).expect("read the body");
        }
        r
    }

    /// Asserts the server closes the connection (EOF, or a reset) with no
    /// further bytes.
    pub fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "bytes after the last response: {rest:?}"),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) => panic!("expected the server to close, got {e}"),
        }
    }
}

/// Checks the headers every response carries.
fn assert_common_headers(r: &Response) {
    assert_eq!(r.header("server"), Some("greenio"));
    let date = r.header("date").expect("a Date header");
    // IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
    assert_eq!(date.len(), 29, "Date {date:?}");
    assert!(
        date.ends_with(" GMT") && date.as_bytes()[3] == b',',
        "Date {date:?}"
    );
}

/// `GET /plaintext` and `GET /json` give TechEmpower's exact answers.
pub fn plaintext_and_json(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    let r = c.get("/plaintext");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.body, b"Hello, World!");
    assert_common_headers(&r);
    let r = c.get("/json");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body, br#"{"message":"Hello, World!"}"#);
    assert_common_headers(&r);
}

/// `HEAD` gets the GET's headers and no body: the next response on the
/// connection follows the headers directly.
pub fn head_has_headers_only(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    for (path, len) in [("/plaintext", "13"), ("/json", "27")] {
        c.send(format!("HEAD {path} HTTP/1.1\r\n\r\n").as_bytes());
        let r = c.response(true);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), Some(len));
        assert_common_headers(&r);
    }
    assert_eq!(c.get("/plaintext").body, b"Hello, World!");
}

/// `POST /echo` with a Content-Length body, from empty to 1 MiB.
pub fn echo_with_content_length(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    for (i, size) in [0usize, 1, 100, 4096, 70_000, 1 << 20]
        .into_iter()
        .enumerate()
    {
        let body = crate::util::pattern(i as u32, size);
        c.send(format!("POST /echo HTTP/1.1\r\nContent-Length: {size}\r\n\r\n").as_bytes());
        c.send(&body);
        let r = c.response(false);
        assert_eq!(r.status, 200, "body of {size} bytes");
        assert!(r.body == body, "body of {size} bytes came back changed");
    }
}

/// `POST /echo` with a chunked body: several chunk sizes, extensions and
/// trailers, sent in small pieces; the decoded body comes back.
pub fn echo_chunked(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    let body = crate::util::pattern(9, 300_000);
    let mut req = b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut at = 0;
    for (i, size) in [1usize, 15, 16, 4095, 65536, 0].iter().cycle().enumerate() {
        if at == body.len() {
            break;
        }
        let n = (*size).max(7).min(body.len() - at);
        if i % 3 == 0 {
            req.extend_from_slice(format!("{n:X};ext=1\r\n").as_bytes());
        } else {
            req.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        }
        req.extend_from_slice(&body[at..at + n]);
        req.extend_from_slice(b"\r\n");
        at += n;
    }
    req.extend_from_slice(b"0\r\nX-Trailer: yes\r\n\r\n");
    for piece in req.chunks(1000) {
        c.send(piece);
    }
    let r = c.response(false);
    assert_eq!(r.status, 200);
    assert!(r.body == body, "chunked body came back changed");
    // The connection is still good.
    assert_eq!(c.get("/json").status, 200);
}

/// `Expect: 100-continue` gets `100 Continue` once the head is in, then
/// the answer once the body is (Content-Length and chunked).
pub fn expect_100_continue(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    for (framing, body) in [
        ("Content-Length: 5", &b"hello"[..]),
        (
            "Transfer-Encoding: chunked",
            &b"5\r\nhello\r\n0\r\n\r\n"[..],
        ),
    ] {
        c.send(
            format!("POST /echo HTTP/1.1\r\nExpect: 100-continue\r\n{framing}\r\n\r\n").as_bytes(),
        );
        let mut line = String::new();
        c.reader
            .read_line(&mut line)
            .expect("read the interim status line");
        assert_eq!(line, "HTTP/1.1 100 Continue\r\n", "{framing}");
        line.clear();
        c.reader
            .read_line(&mut line)
            .expect("read the interim blank line");
        assert_eq!(line, "\r\n");
        c.send(body);
        let r = c.response(false);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"hello"[..]),
            "{framing}"
        );
    }
}

/// Other paths and methods get 404, and the connection stays open.
pub fn not_found(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    assert_eq!(c.get("/").status, 404);
    assert_eq!(c.get("/plaintext/x").status, 404);
    c.send(b"POST /plaintext HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    let r = c.response(false);
    assert_eq!(r.status, 404);
    assert_common_headers(&r);
    c.send(b"DELETE /json HTTP/1.1\r\n\r\n");
    assert_eq!(c.response(false).status, 404);
    assert_eq!(c.get("/plaintext").status, 200);
}

/// HTTP/1.1 keeps the connection; `Connection: close` closes it after
/// the response, which says so.
pub fn keep_alive_and_close(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    for _ in 0..5 {
        let r = c.get("/plaintext");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), None);
    }
    c.send(b"GET /json HTTP/1.1\r\nConnection: close\r\n\r\n");
    let r = c.response(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    c.expect_closed();
}

/// HTTP/1.0 closes after each response unless it asks for keep-alive.
pub fn http10_closes_unless_asked(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    c.send(b"GET /plaintext HTTP/1.0\r\n\r\n");
    let r = c.response(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    c.expect_closed();

    let mut c = Client::connect(addr);
    for _ in 0..3 {
        c.send(b"GET /json HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        let r = c.response(false);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
}

/// 300 requests of every route in one write are answered in order.
pub fn pipelined_answers_in_order(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    let mut batch = Vec::new();
    let mut expect: Vec<(u16, Vec<u8>)> = Vec::new();
    for i in 0..300u32 {
        match i % 4 {
            0 => {
                batch.extend_from_slice(b"GET /plaintext HTTP/1.1\r\n\r\n");
                expect.push((200, b"Hello, World!".to_vec()));
            }
            1 => {
                batch.extend_from_slice(b"GET /json HTTP/1.1\r\n\r\n");
                expect.push((200, br#"{"message":"Hello, World!"}"#.to_vec()));
            }
            2 => {
                let body = format!("request {i}");
                batch.extend_from_slice(
                    format!(
                        "POST /echo HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
                expect.push((200, body.into_bytes()));
            }
            _ => {
                batch.extend_from_slice(b"GET /missing HTTP/1.1\r\n\r\n");
                expect.push((404, b"Not Found".to_vec()));
            }
        }
    }
    c.send(&batch);
    for (i, (status, body)) in expect.into_iter().enumerate() {
        let r = c.response(false);
        assert_eq!((r.status, &r.body), (status, &body), "response {i}");
    }
}

/// A bad request line, an unknown version, a header line without a colon
/// or bad framing: 400 and close.
pub fn malformed_requests_get_400(addr: SocketAddr) {
    let cases: &[&[u8]] = &[
        b"GARBAGE\r\n\r\n",
        b"GET /plaintext\r\n\r\n",
        b"GET /plaintext HTTP/2.0\r\n\r\n",
        b"GET /plaintext HTTP/1.1\r\nNo colon here\r\n\r\n",
        b"GET /plaintext HTTP/1.1\r\nContent-Length: nine\r\n\r\n",
        b"GET /plaintext HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"\x00\x01\x02\xff\r\n\r\n",
    ];
    for (i, bad) in cases.iter().enumerate() {
        let mut c = Client::connect(addr);
        c.send(bad);
        let r = c.response(false);
        assert_eq!(
            r.status,
            400,
            "case {i}: {:?}",
            String::from_utf8_lossy(bad)
        );
        assert_eq!(r.header("connection"), Some("close"));
        c.expect_closed();
    }
    // A good request before a bad one is still answered first.
    let mut c = Client::connect(addr);
    c.send(b"GET /json HTTP/1.1\r\n\r\nBAD REQUEST\r\n\r\n");
    assert_eq!(c.response(false).status, 200);
    assert_eq!(c.response(false).status, 400);
    c.expect_closed();
}

/// A head over 8 KiB gets 431 and close, whether it comes as one huge
/// header or as an endless stream of headers.
pub fn overlong_head_gets_431(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    let big = "x".repeat(9000);
    c.send(format!("GET /plaintext HTTP/1.1\r\nX-Big: {big}\r\n\r\n").as_bytes());
    let r = c.response(false);
    assert_eq!(r.status, 431);
    c.expect_closed();

    let mut c = Client::connect(addr);
    let mut head = b"GET /plaintext HTTP/1.1\r\n".to_vec();
    for i in 0..400 {
        head.extend_from_slice(format!("X-H{i}: {}\r\n", "v".repeat(40)).as_bytes());
    }
    // No terminating blank line: the server must not wait for one.
    let _ = c.writer.write_all(&head);
    let r = c.response(false);
    assert_eq!(r.status, 431);
    c.expect_closed();
}

/// A body over 1 MiB gets 413 and close, announced or chunked.
pub fn overlarge_body_gets_413(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    c.send(b"POST /echo HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n");
    let r = c.response(false);
    assert_eq!(r.status, 413);
    c.expect_closed();

    let mut c = Client::connect(addr);
    c.send(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunk = vec![b'z'; 0x10000];
    let mut sent = 0;
    // 17 chunks of 64 KiB: the 17th crosses 1 MiB. The server may close
    // before it has all of them: stop at the first failed send.
    for _ in 0..17 {
        if c.writer.write_all(b"10000\r\n").is_err()
            || c.writer.write_all(&chunk).is_err()
            || c.writer.write_all(b"\r\n").is_err()
        {
            break;
        }
        sent += 1;
    }
    assert!(sent > 0);
    let r = c.response(false);
    assert_eq!(r.status, 413);
}

/// A head that does not complete within the timeout gets 408 and close.
pub fn slow_head_gets_408(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    c.send(b"GET /plaintext HTTP/1.1\r\nHost: sl");
    let r = c.response(false);
    assert_eq!(r.status, 408);
    c.expect_closed();
}

/// A client that trickles its head a byte at a time (each byte well within
/// the timeout) is still closed: the timeout bounds the whole head.
pub fn trickling_client_is_closed(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    c.send(b"GET /plaintext HTTP/1.1\r\n");
    let start = Instant::now();
    let mut closed = false;
    // At most 600 bytes, 50 ms apart: 30 s, far past the 1 s timeout.
    for _ in 0..600 {
        if c.writer.write_all(b"X").is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        let mut probe = [0u8; 1];
        c.writer.set_nonblocking(true).unwrap();
        let peeked = c.writer.peek(&mut probe);
        c.writer.set_nonblocking(false).unwrap();
        if !matches!(peeked, Err(ref e) if e.kind() == ErrorKind::WouldBlock) {
            closed = true; // a response, an EOF or a reset arrived
            break;
        }
    }
    assert!(
        closed,
        "still open after trickling for {:?}",
        start.elapsed()
    );
    let mut rest = Vec::new();
    let _ = c.reader.read_to_end(&mut rest);
    let text = String::from_utf8_lossy(&rest);
    assert!(
        rest.is_empty() || text.starts_with("HTTP/1.1 408") || text.starts_with("HTTP/1.1 431"),
        "unexpected answer {text:?}"
    );
}

/// An idle keep-alive connection is closed after the timeout, without a
/// response.
pub fn idle_keep_alive_is_closed(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    assert_eq!(c.get("/plaintext").status, 200);
    c.expect_closed();
}

/// A client that pipelines requests and never reads the answers is held
/// back (the server stops reading it), and others are served meanwhile.
pub fn non_reading_pipeliner_is_held_back(addr: SocketAddr) {
    let hog = TcpStream::connect(addr).unwrap();
    hog.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut w = hog.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let batch = b"GET /plaintext HTTP/1.1\r\n\r\n".repeat(1000);
        let mut sent = 0usize;
        // At most 256 MiB: far more than socket buffers hold.
        while sent < 256 << 20 {
            match w.write(&batch) {
                Ok(n) => sent += n,
                Err(_) => break, // timed out: the server stopped reading
            }
        }
        sent
    });
    // Others are served while the hog pushes.
    for _ in 0..20 {
        let mut c = Client::connect(addr);
        assert_eq!(c.get("/json").status, 200);
    }
    let sent = writer.join().unwrap();
    assert!(
        sent < 256 << 20,
        "the server read {sent} bytes of requests whose answers nobody reads"
    );
    let mut c = Client::connect(addr);
    assert_eq!(c.get("/plaintext").status, 200);
    drop(hog);
}

/// Random bytes, resets and half requests on some connections do not
/// stop the server from answering the others.
pub fn garbage_does_not_hurt_others(addr: SocketAddr) {
    for seed in 0..20u32 {
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.write_all(&crate::util::pattern(seed, 1 + seed as usize * 300));
        if seed % 2 == 0 {
            // Reset: close with unread data, linger 0 is not in std; just drop.
            drop(s);
        } else {
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
    }
    let mut c = Client::connect(addr);
    c.send(b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    drop(c);
    let mut c = Client::connect(addr);
    assert_eq!(c.get("/plaintext").body, b"Hello, World!");
}

/// 1,000 keep-alive connections at once, three rounds of a request on
/// each, all answered.
pub fn thousand_keep_alive_connections(addr: SocketAddr) {
    let n = 1000;
    let mut conns: Vec<Client> = (0..n).map(|_| Client::connect(addr)).collect();
    for round in 0..3 {
        for c in conns.iter_mut() {
            c.send(b"GET /plaintext HTTP/1.1\r\n\r\n");
        }
        for (i, c) in conns.iter_mut().enumerate() {
            let r = c.response(false);
            assert_eq!(r.status, 200, "connection {i}, round {round}");
            assert_eq!(r.body, b"Hello, World!");
        }
    }
}
