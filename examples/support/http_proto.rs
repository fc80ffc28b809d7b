//! The HTTP/1.1 rules shared by `examples/http.rs` (green threads),
//! `examples/http_callback.rs` (reactor callbacks) and the hand-written mio
//! peer `benches/peers/mio_http.rs`: a sans-I/O request parser on top of
//! `httparse`, the routes, and the response writer. Each server includes it
//! with `#[path = "support/http_proto.rs"] mod http_proto;` and does only
//! the I/O, so the three differ in exactly what the comparison is about:
//! how bytes get from the socket to this code and back.
//!
//! The contract (TechEmpower's plaintext and json tests, plus an echo):
//!
//! ```text
//! GET|HEAD /plaintext  200 text/plain        "Hello, World!"
//! GET|HEAD /json       200 application/json  {"message":"Hello, World!"}
//! POST /echo           200 the request body (Content-Length or chunked)
//! anything else        404
//! ```
//!
//! Every response has `Server` and `Date` (cached, rebuilt when the second
//! changes). HTTP/1.1 keeps the connection unless `Connection: close`;
//! HTTP/1.0 closes unless `Connection: keep-alive`. Bad input gets an error
//! status and the connection closes after it: 400 for a malformed head (bad
//! request line, unknown version, a header line without a colon, bad
//! framing), 431 for a head over [`MAX_HEAD`], 413 for a body over
//! [`MAX_BODY`], 501 for a transfer coding other than chunked. A client
//! that sends `Expect: 100-continue` (curl does, for bodies over 1 KiB) is
//! told to go on once its head is in.
#![allow(dead_code)] // every server uses a different subset

use std::cell::RefCell;
use std::ops::Range;

/// Longest request head (request line and headers) accepted, in bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// Largest request body accepted (decoded), in bytes.
pub const MAX_BODY: usize = 1 << 20;
/// Most headers in one request; more is answered like an overlong head.
pub const MAX_HEADERS: usize = 64;
/// Output a server lets build up before it writes it out and (green) waits
/// for the client to take it, or (callback) stops reading the client.
pub const OUT_HIGH_WATER: usize = 64 * 1024;

/// The body of `GET /plaintext`.
pub const PLAINTEXT: &[u8] = b"Hello, World!";
/// The body of `GET /json`.
pub const JSON: &[u8] = br#"{"message":"Hello, World!"}"#;

/// An error status; the connection closes after it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 400: a malformed request.
    BadRequest,
    /// 408: the request did not arrive within the server's timeout.
    RequestTimeout,
    /// 413: the body is over [`MAX_BODY`].
    PayloadTooLarge,
    /// 431: the head is over [`MAX_HEAD`] or [`MAX_HEADERS`].
    HeadersTooLarge,
    /// 501: a transfer coding other than `chunked`.
    NotImplemented,
    /// 503: the server is at its connection limit.
    Unavailable,
}

impl Status {
    /// The status line's code and reason.
    fn line(self) -> &'static str {
        match self {
            Status::BadRequest => "400 Bad Request",
            Status::RequestTimeout => "408 Request Timeout",
            Status::PayloadTooLarge => "413 Payload Too Large",
            Status::HeadersTooLarge => "431 Request Header Fields Too Large",
            Status::NotImplemented => "501 Not Implemented",
            Status::Unavailable => "503 Service Unavailable",
        }
    }
}

/// What a request asks for, reduced to what the routes need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /plaintext`.
    Plaintext,
    /// `GET /json`.
    Json,
    /// `POST /echo`.
    Echo,
    /// Everything else.
    NotFound,
}

/// A parsed request head.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    /// The route it maps to.
    pub route: Route,
    /// `HEAD`: the response carries the headers only.
    pub head_only: bool,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// HTTP/1.0 (the response then names keep-alive explicitly).
    pub http10: bool,
    /// HTTP/1.1 with `Expect: 100-continue`: the client waits for
    /// [`CONTINUE`] before it sends the body.
    expect_continue: bool,
}

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// `Content-Length: n` (0 when absent).
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What [`Parser::next`] found at the front of the input.
#[derive(Debug)]
pub enum Next<'a> {
    /// A whole request: its head and its body.
    Request(Head, &'a [u8]),
    /// The request at the front is incomplete: read more input.
    /// `started` says whether any of it has arrived (a timeout then
    /// deserves a 408; an idle keep-alive connection is just closed).
    NeedMore {
        /// Some bytes of the next request are buffered.
        started: bool,
    },
    /// The client asked to be told to go on before sending the body
    /// (`Expect: 100-continue`): append [`CONTINUE`] to the output, then
    /// call [`Parser::next`] again.
    Continue,
    /// Bad input: send this status and close.
    Error(Status),
}

/// The interim response to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A connection's input: bytes read but not yet parsed.
///
/// `data[start..end]` is the unparsed input; `data` is kept initialised so
/// that a read can go straight into [`spare`](Self::spare).
#[derive(Debug)]
pub struct Input {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

/// Room made available for each read, at least.
const READ_CHUNK: usize = 4096;

impl Input {
    /// An empty input buffer of 4 KiB (it grows only while a request with
    /// a large body is being read, and shrinks back after it).
    pub fn new() -> Input {
        Input {
            data: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
        }
    }

    /// The unparsed bytes.
    pub fn data(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Whether no unparsed bytes are buffered.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Room to read into (at least 4 KiB): moves the unparsed bytes to the
    /// front and grows the buffer when needed. Call [`filled`](Self::filled)
    /// with what the read returned.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.data.len() > 16 * READ_CHUNK {
                // A large body came and went: give the memory back.
                self.data = vec![0; READ_CHUNK];
            }
        }
        if self.data.len() - self.end < READ_CHUNK {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.data.len() - self.end < READ_CHUNK {
                let len = (self.data.len() * 2).max(self.end + READ_CHUNK);
                self.data.resize(len, 0);
            }
        }
        &mut self.data[self.end..]
    }

    /// Records that a read put `n` bytes into [`spare`](Self::spare).
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.data.len());
    }

    fn consume(&mut self, n: usize) -> Range<usize> {
        let r = self.start..self.start + n;
        self.start += n;
        r
    }
}

impl Default for Input {
    fn default() -> Input {
        Input::new()
    }
}

/// A connection's parser: the state kept between reads while a body
/// arrives (an incomplete head is parsed again from the buffer once more
/// of it is there: it is bounded and usually arrives in one read).
#[derive(Debug, Default)]
pub struct Parser {
    /// The head and decoder of a chunked request in progress.
    chunked: Option<(Head, Chunked)>,
    /// A `Content-Length` request whose body is still arriving: its head,
    /// the head's length in the buffer and the body's length (so the head
    /// is parsed once, not once per read of the body).
    pending: Option<(Head, usize, usize)>,
    /// Its body decoded so far.
    body: Vec<u8>,
    /// [`Next::Continue`] was returned for the request at the front.
    continued: bool,
}

impl Parser {
    /// A parser waiting for the first request.
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Parses the next request from `input`, consuming it when complete.
    pub fn next<'a>(&'a mut self, input: &'a mut Input) -> Next<'a> {
        if self.chunked.is_none() {
            let parsed = match self.pending.take() {
                Some((head, head_len, n)) => Ok(Some((head, Framing::Length(n), head_len))),
                None => parse_head(input.data()),
            };
            let (head, framing, head_len) = match parsed {
                Ok(Some(h)) => h,
                Ok(None) => {
                    return Next::NeedMore {
                        started: !input.is_empty(),
                    }
                }
                Err(status) => return Next::Error(status),
            };
            match framing {
                Framing::Length(n) => {
                    if input.data().len() < head_len + n {
                        self.pending = Some((head, head_len, n));
                        if head.expect_continue && !self.continued {
                            self.continued = true;
                            return Next::Continue;
                        }
                        return Next::NeedMore { started: true };
                    }
                    self.continued = false;
                    input.consume(head_len);
                    let body = input.consume(n);
                    return Next::Request(head, &input.data[body]);
                }
                Framing::Chunked => {
                    input.consume(head_len);
                    if self.body.capacity() > 16 * READ_CHUNK {
                        self.body = Vec::new(); // the last large body's memory goes back
                    }
                    self.body.clear();
                    self.chunked = Some((head, Chunked::default()));
                    if head.expect_continue && input.is_empty() {
                        return Next::Continue;
                    }
                }
            }
        }
        let (head, dec) = self
            .chunked
            .as_mut()
            .expect("a chunked request in progress");
        let head = *head;
        match dec.decode(input.data(), &mut self.body) {
            Ok((used, done)) => {
                input.consume(used);
                if !done {
                    return Next::NeedMore { started: true };
                }
                self.chunked = None;
                Next::Request(head, &self.body)
            }
            Err(status) => Next::Error(status),
        }
    }
}

/// Parses a request head at the front of `buf`: `Ok(None)` while it is
/// incomplete, else the head, its framing and its length in bytes.
fn parse_head(buf: &[u8]) -> Result<Option<(Head, Framing, usize)>, Status> {
    if buf.is_empty() {
        return Ok(None); // the usual end of a read batch: skip the parser
    }
    // Uninitialised: filling 64 empty headers per request would cost more
    // than parsing a short request does.
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(Status::HeadersTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Status::HeadersTooLarge),
        Err(_) => return Err(Status::BadRequest),
    };
    if len > MAX_HEAD {
        return Err(Status::HeadersTooLarge);
    }
    let http10 = req.version == Some(0);
    let mut keep_alive = !http10;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(h.value).ok_or(Status::BadRequest)?;
            if length.is_some_and(|l| l != n) {
                return Err(Status::BadRequest);
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if !trim(h.value).eq_ignore_ascii_case(b"chunked") || chunked {
                return Err(Status::NotImplemented);
            }
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("expect") {
            expect_continue = !http10 && trim(h.value).eq_ignore_ascii_case(b"100-continue");
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',').map(trim) {
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && http10 {
                    keep_alive = true;
                }
            }
        }
    }
    let framing = match (chunked, length) {
        // Both: a request smuggling attempt or a broken proxy (RFC 9112 6.1).
        (true, Some(_)) => return Err(Status::BadRequest),
        (true, None) if http10 => return Err(Status::BadRequest),
        (true, None) => Framing::Chunked,
        (false, Some(n)) if n > MAX_BODY => return Err(Status::PayloadTooLarge),
        (false, n) => Framing::Length(n.unwrap_or(0)),
    };
    let method = req.method.unwrap_or("");
    let route = match (method, req.path.unwrap_or("")) {
        ("GET" | "HEAD", "/plaintext") => Route::Plaintext,
        ("GET" | "HEAD", "/json") => Route::Json,
        ("POST", "/echo") => Route::Echo,
        _ => Route::NotFound,
    };
    let head = Head {
        route,
        head_only: method == "HEAD",
        keep_alive,
        http10,
        expect_continue,
    };
    Ok(Some((head, framing, len)))
}

/// A `Content-Length` value: decimal digits only (no sign, no spaces
/// inside), at most 19 of them.
fn parse_length(v: &[u8]) -> Option<usize> {
    let v = trim(v);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

/// Where a chunked body's decoder is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum ChunkState {
    /// At the start of a chunk-size line.
    #[default]
    Size,
    /// Inside a chunk's data, this many bytes to go.
    Data(usize),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last (zero-size) chunk: trailer lines until an empty one.
    Trailer,
}

/// An incremental `Transfer-Encoding: chunked` decoder.
#[derive(Debug, Default)]
struct Chunked {
    state: ChunkState,
    /// Bytes of framing (size lines, trailers) seen, bounded by
    /// [`MAX_HEAD`] per line and in total for the trailer.
    framing: usize,
}

impl Chunked {
    /// Decodes what it can from `input` into `body`; returns the bytes
    /// used and whether the body is complete.
    fn decode(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<(usize, bool), Status> {
        let mut at = 0;
        loop {
            let rest = &input[at..];
            match self.state {
                ChunkState::Size | ChunkState::Trailer => {
                    let Some(eol) = rest.iter().position(|&b| b == b'\n') else {
                        if rest.len() > MAX_HEAD {
                            return Err(Status::HeadersTooLarge);
                        }
                        return Ok((at, false));
                    };
                    self.framing += eol + 1;
                    if self.framing > MAX_HEAD * 16 {
                        // Framing overhead far beyond any real client's.
                        return Err(Status::PayloadTooLarge);
                    }
                    let line = rest[..eol].strip_suffix(b"\r").ok_or(Status::BadRequest)?;
                    at += eol + 1;
                    if self.state == ChunkState::Trailer {
                        if line.is_empty() {
                            return Ok((at, true));
                        }
                        continue; // trailer fields are ignored
                    }
                    let size = chunk_size(line).ok_or(Status::BadRequest)?;
                    if body.len() + size > MAX_BODY {
                        return Err(Status::PayloadTooLarge);
                    }
                    self.state = if size == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    let n = left.min(rest.len());
                    body.extend_from_slice(&rest[..n]);
                    at += n;
                    if n < left {
                        self.state = ChunkState::Data(left - n);
                        return Ok((at, false));
                    }
                    self.state = ChunkState::DataEnd;
                }
                ChunkState::DataEnd => {
                    if rest.len() < 2 {
                        return Ok((at, false));
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(Status::BadRequest);
                    }
                    at += 2;
                    self.state = ChunkState::Size;
                }
            }
        }
    }
}

/// The size on a chunk-size line (hex, optional `;extensions`).
fn chunk_size(line: &[u8]) -> Option<usize> {
    let hex = line.split(|&b| b == b';').next()?;
    let hex = trim(hex);
    if hex.is_empty() || hex.len() > 8 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    usize::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// Appends the response to `head` (with `body`, the request's body, for
/// the echo) to `out`; returns whether the connection stays open.
pub fn respond(head: &Head, body: &[u8], out: &mut Vec<u8>) -> bool {
    let (status, content_type, payload): (&str, &str, &[u8]) = match head.route {
        Route::Plaintext => ("200 OK", "text/plain", PLAINTEXT),
        Route::Json => ("200 OK", "application/json", JSON),
        Route::Echo => ("200 OK", "application/octet-stream", body),
        Route::NotFound => ("404 Not Found", "text/plain", b"Not Found"),
    };
    let connection = match (head.keep_alive, head.http10) {
        (false, _) => "Connection: close\r\n",
        (true, true) => "Connection: keep-alive\r\n",
        (true, false) => "",
    };
    write_head(out, status, content_type, payload.len(), connection);
    if !head.head_only {
        out.extend_from_slice(payload);
    }
    head.keep_alive
}

/// Appends the error response for `status` to `out`; the connection must
/// close after it.
pub fn respond_error(status: Status, out: &mut Vec<u8>) {
    let line = status.line();
    write_head(out, line, "text/plain", line.len(), "Connection: close\r\n");
    out.extend_from_slice(line.as_bytes());
}

fn write_head(out: &mut Vec<u8>, status: &str, content_type: &str, len: usize, connection: &str) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b"\r\nServer: greenio\r\nDate: ");
    with_date(|d| out.extend_from_slice(d));
    out.extend_from_slice(b"\r\nContent-Type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: ");
    let mut digits = [0u8; 20];
    out.extend_from_slice(decimal(len, &mut digits));
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(connection.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

// ----- the Date header --------------------------------------------------------

/// The IMF-fixdate of the current second, per thread (each hub formats
/// it at most once a second).
struct DateCache {
    /// Unix seconds `text` was formatted for.
    secs: u64,
    /// `Sun, 06 Nov 1994 08:49:37 GMT`.
    text: [u8; 29],
}

thread_local! {
    static DATE: RefCell<DateCache> = const {
        RefCell::new(DateCache { secs: u64::MAX, text: [b' '; 29] })
    };
}

/// Calls `f` with the current date, formatted for the `Date` header.
pub fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    let now = coarse_unix_secs();
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.secs != now {
            d.secs = now;
            d.text = imf_fixdate(now);
        }
        f(&d.text)
    })
}

/// Unix time in whole seconds from the coarse clock (a few nanoseconds:
/// it reads the kernel's last tick, no system call).
fn coarse_unix_secs() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    if r == 0 {
        ts.tv_sec as u64
    } else {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// Formats Unix time `secs` as an IMF-fixdate (RFC 9110 5.6.7).
pub fn imf_fixdate(secs: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    let mut t = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    t[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    let two = |t: &mut [u8; 29], at: usize, v: u64| {
        t[at] = b'0' + (v / 10) as u8;
        t[at + 1] = b'0' + (v % 10) as u8;
    };
    two(&mut t, 5, day as u64);
    t[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    two(&mut t, 12, (year / 100) as u64);
    two(&mut t, 14, (year % 100) as u64);
    two(&mut t, 17, rem / 3600);
    two(&mut t, 20, rem / 60 % 60);
    two(&mut t, 23, rem % 60);
    t
}

/// (year, month 1-12, day 1-31) of a count of days since 1970-01-01, by
/// counting in 400-year eras of 146,097 days that start on March 1st (so
/// the leap day is the last day of an era's year).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // day of the era, 0..146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of the era
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the year, from March 1st
    let mp = (5 * doy + 2) / 153; // month, March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
