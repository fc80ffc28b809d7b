//! async_chat: records framed by a terminator, on top of [`Handler`].
//!
//! # Framing
//!
//! [`AsyncChat`] reads into a fixed buffer and cuts the input into
//! *records* by the current [`Terminator`]:
//!
//! ```text
//!   input:  b"nick bob\r\nwho\r\nhel" | b"lo\r\n"        (two reads)
//!   calls:  collect("nick bob") found   collect("who") found
//!           collect("hel")  ... collect("lo") found
//! ```
//!
//! * `Bytes(t)`: a record ends at `t` (not included). A terminator split
//!   across reads is found: the bytes that could begin `t` are held back
//!   until the next read decides.
//! * `Count(n)`: a record is the next `n` bytes; after it the terminator
//!   becomes `None` unless `found_terminator` sets another (async_chat's
//!   rule).
//! * `None` (or an empty byte string): everything until the peer closes;
//!   `found_terminator` is called at EOF.
//!
//! Every record found in one read is handled in order before the next read
//! (an impatient client pipelining commands gets every answer, in order),
//! and the terminator may change between records (a header line announcing
//! a `Count` body). Handling stops early when the handler pauses reading,
//! closes, or its output is over the high-water mark; the rest of the
//! input stays buffered and is handled when reading resumes.
//!
//! # Bounded records
//!
//! The bytes of the current record are counted whoever collects them. Past
//! the limit ([`ChatContext::set_max_record`], default 64 KiB) the
//! handler's
//! [`record_too_long`](ChatHandler::record_too_long) decides: close the
//! connection with `ErrorKind::InvalidData` (the default), or
//! [`Overflow::Discard`]: drop the record and skip input up to the next
//! terminator, then go on. Either way memory stays bounded however long
//! the record.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};

use super::handler::{Context, Handler};

/// The default limit of one record: 64 KiB (change it with
/// [`AsyncChat::max_record`] or [`ChatContext::set_max_record`]).
const DEFAULT_MAX_RECORD: usize = 64 * 1024;
/// Size of the read buffer of an [`AsyncChat`].
const READ_SIZE: usize = 16 * 1024;
/// The longest byte-string terminator (it must fit the read buffer many
/// times over).
const MAX_TERMINATOR: usize = 1024;
/// A record buffer that grew past this is released after its record.
const SHRINK_ABOVE: usize = 64 * 1024;

/// Where a record ends (async_chat's `set_terminator`).
///
/// # Examples
///
/// ```
/// use greenio::net::reactor::Terminator;
///
/// let crlf = Terminator::CRLF;
/// let custom = Terminator::bytes(b"\r\n.\r\n"); // SMTP's end of DATA
/// let body = Terminator::Count(512);
/// let rest = Terminator::None;
/// assert_eq!(crlf, Terminator::bytes(&b"\r\n"[..]));
/// # let _ = (custom, body, rest);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Terminator {
    /// A record ends at this byte string (not included in the record).
    Bytes(Cow<'static, [u8]>),
    /// A record is the next `n` bytes.
    Count(usize),
    /// A record is everything until the peer closes.
    None,
}

impl Terminator {
    /// Lines ending in `\n`.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::Terminator;
    /// assert_eq!(Terminator::LF, Terminator::bytes(b"\n"));
    /// ```
    pub const LF: Terminator = Terminator::Bytes(Cow::Borrowed(b"\n"));
    /// Lines ending in `\r\n`.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::Terminator;
    /// assert_eq!(Terminator::CRLF, Terminator::bytes(b"\r\n"));
    /// ```
    pub const CRLF: Terminator = Terminator::Bytes(Cow::Borrowed(b"\r\n"));

    /// A byte-string terminator.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::Terminator;
    ///
    /// let t = Terminator::bytes(b"\0");
    /// let u = Terminator::bytes(String::from("END").into_bytes());
    /// # let _ = (t, u);
    /// ```
    pub fn bytes(t: impl Into<Cow<'static, [u8]>>) -> Terminator {
        Terminator::Bytes(t.into())
    }
}

/// What to do with a record over its limit (see
/// [`ChatHandler::record_too_long`]).
///
/// # Examples
///
/// ```
/// use greenio::net::reactor::{ChatContext, ChatHandler, Overflow};
///
/// struct Lenient;
/// impl ChatHandler for Lenient {
///     fn found_terminator(&mut self, _cx: &mut ChatContext<'_>, _line: &[u8]) {}
///     fn record_too_long(&mut self, cx: &mut ChatContext<'_>) -> Overflow {
///         let _ = cx.push(b"! line too long\n");
///         Overflow::Discard
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Close the connection; `handle_error` gets `ErrorKind::InvalidData`.
    Close,
    /// Drop the record, skip input up to the next terminator, go on.
    Discard,
}

/// The callbacks of an async_chat connection. Only
/// [`found_terminator`](Self::found_terminator) is required.
///
/// # Examples
///
/// A key-value protocol: `SET key len\r\n` followed by `len` bytes, or
/// `GET key\r\n` — the terminator switches between a line and a count:
///
/// ```
/// use greenio::net::reactor::{AsyncChat, ChatContext, ChatHandler, Terminator};
/// use std::collections::HashMap;
///
/// #[derive(Default)]
/// struct Kv {
///     map: HashMap<String, Vec<u8>>,
///     pending: Option<String>, // key of the body being read
/// }
///
/// impl ChatHandler for Kv {
///     fn found_terminator(&mut self, cx: &mut ChatContext<'_>, rec: &[u8]) {
///         if let Some(key) = self.pending.take() {
///             self.map.insert(key, rec.to_vec());
///             let _ = cx.push(b"OK\r\n");
///             cx.set_terminator(Terminator::CRLF);
///             return;
///         }
///         let line = String::from_utf8_lossy(rec);
///         let words: Vec<&str> = line.split(' ').collect();
///         match words.as_slice() {
///             ["SET", key, len] => match len.parse() {
///                 Ok(n) => {
///                     self.pending = Some(key.to_string());
///                     cx.set_terminator(Terminator::Count(n));
///                 }
///                 Err(_) => {
///                     let _ = cx.push(b"ERR\r\n");
///                 }
///             },
///             ["GET", key] => {
///                 let v = self.map.get(*key).cloned().unwrap_or_default();
///                 let _ = cx.push(&v);
///                 let _ = cx.push(b"\r\n");
///             }
///             _ => {
///                 let _ = cx.push(b"ERR\r\n");
///             }
///         }
///     }
/// }
///
/// let _handler = AsyncChat::new(Kv::default()).terminator(Terminator::CRLF);
/// ```
pub trait ChatHandler: 'static {
    /// A piece of the current record (never the terminator). The default
    /// keeps it ([`ChatContext::collect`]) for `found_terminator`; override
    /// it to stream a large record somewhere else.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{ChatContext, ChatHandler};
    ///
    /// /// Counts body bytes without keeping them.
    /// struct Counter(u64);
    /// impl ChatHandler for Counter {
    ///     fn collect_incoming_data(&mut self, _cx: &mut ChatContext<'_>, data: &[u8]) {
    ///         self.0 += data.len() as u64;
    ///     }
    ///     fn found_terminator(&mut self, _cx: &mut ChatContext<'_>, record: &[u8]) {
    ///         assert!(record.is_empty()); // nothing was collected
    ///     }
    /// }
    /// ```
    fn collect_incoming_data(&mut self, cx: &mut ChatContext<'_>, data: &[u8]) {
        cx.collect(data);
    }

    /// A record is complete; `record` is what was collected (without the
    /// terminator).
    fn found_terminator(&mut self, cx: &mut ChatContext<'_>, record: &[u8]);

    /// The current record passed its limit. The default closes the
    /// connection ([`Overflow::Close`]).
    ///
    /// # Examples
    ///
    /// See [`Overflow`].
    fn record_too_long(&mut self, cx: &mut ChatContext<'_>) -> Overflow {
        let _ = cx;
        Overflow::Close
    }

    /// The connection is established; see [`Handler::handle_connect`].
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{ChatContext, ChatHandler, Terminator};
    ///
    /// struct Smtp;
    /// impl ChatHandler for Smtp {
    ///     fn handle_connect(&mut self, cx: &mut ChatContext<'_>) {
    ///         cx.set_terminator(Terminator::CRLF);
    ///         let _ = cx.push(b"220 ready\r\n");
    ///     }
    ///     fn found_terminator(&mut self, _: &mut ChatContext<'_>, _: &[u8]) {}
    /// }
    /// ```
    fn handle_connect(&mut self, cx: &mut ChatContext<'_>) {
        let _ = cx;
    }

    /// The output queue drained; see [`Handler::handle_write`].
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{ChatContext, ChatHandler};
    ///
    /// struct Resume;
    /// impl ChatHandler for Resume {
    ///     fn handle_write(&mut self, cx: &mut ChatContext<'_>) {
    ///         cx.resume_reading();
    ///     }
    ///     fn found_terminator(&mut self, _: &mut ChatContext<'_>, _: &[u8]) {}
    /// }
    /// ```
    fn handle_write(&mut self, cx: &mut ChatContext<'_>) {
        let _ = cx;
    }

    /// The peer finished sending; see [`Handler::handle_eof`]. The default
    /// closes gracefully.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{ChatContext, ChatHandler};
    ///
    /// struct Total(usize);
    /// impl ChatHandler for Total {
    ///     fn found_terminator(&mut self, _: &mut ChatContext<'_>, _: &[u8]) {
    ///         self.0 += 1;
    ///     }
    ///     fn handle_eof(&mut self, cx: &mut ChatContext<'_>) {
    ///         let _ = cx.push(format!("{} lines\n", self.0).as_bytes());
    ///         cx.close();
    ///     }
    /// }
    /// ```
    fn handle_eof(&mut self, cx: &mut ChatContext<'_>) {
        cx.close();
    }

    /// The connection is over; see [`Handler::handle_close`].
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{ChatContext, ChatHandler};
    ///
    /// struct Bye;
    /// impl ChatHandler for Bye {
    ///     fn found_terminator(&mut self, _: &mut ChatContext<'_>, _: &[u8]) {}
    ///     fn handle_close(&mut self, _cx: &mut ChatContext<'_>) {
    ///         println!("gone");
    ///     }
    /// }
    /// ```
    fn handle_close(&mut self, cx: &mut ChatContext<'_>) {
        let _ = cx;
    }

    /// An error ended the connection; see [`Handler::handle_error`]. The
    /// default logs it at debug level.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{ChatContext, ChatHandler};
    ///
    /// struct Log;
    /// impl ChatHandler for Log {
    ///     fn found_terminator(&mut self, _: &mut ChatContext<'_>, _: &[u8]) {}
    ///     fn handle_error(&mut self, _cx: &mut ChatContext<'_>, err: &std::io::Error) {
    ///         eprintln!("{err}");
    ///     }
    /// }
    /// ```
    fn handle_error(&mut self, cx: &mut ChatContext<'_>, err: &io::Error) {
        let _ = cx;
        log::debug!("greenio reactor: chat connection: {err}");
    }
}

/// Framing settings and the record being collected.
#[derive(Debug)]
struct Frame {
    /// The current terminator; a `Count` counts down as bytes arrive.
    terminator: Terminator,
    /// Limit of one record (`None`: unbounded).
    max_record: Option<usize>,
    /// What the default `collect_incoming_data` kept of the current record.
    record: Vec<u8>,
}

/// The [`Context`] of an async_chat callback, plus the framing settings.
/// Dereferences to [`Context`] for `push`, `close`, `handle`...
///
/// # Examples
///
/// ```
/// use greenio::net::reactor::{ChatContext, ChatHandler, Terminator};
///
/// struct Lines;
/// impl ChatHandler for Lines {
///     fn handle_connect(&mut self, cx: &mut ChatContext<'_>) {
///         cx.set_terminator(Terminator::LF);
///         cx.set_max_record(Some(4096));
///         let _ = cx.push(b"* hello\n"); // a Context method
///     }
///     fn found_terminator(&mut self, _: &mut ChatContext<'_>, _: &[u8]) {}
/// }
/// ```
pub struct ChatContext<'a> {
    cx: Context<'a>,
    frame: &'a mut Frame,
}

impl fmt::Debug for ChatContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatContext")
            .field("cx", &self.cx)
            .field("terminator", &self.frame.terminator)
            .field("max_record", &self.frame.max_record)
            .finish()
    }
}

impl<'a> Deref for ChatContext<'a> {
    type Target = Context<'a>;
    fn deref(&self) -> &Context<'a> {
        &self.cx
    }
}

impl DerefMut for ChatContext<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.cx
    }
}

impl ChatContext<'_> {
    /// Sets the terminator for the next records (it applies from the next
    /// byte of input on, even to input already received).
    ///
    /// # Panics
    ///
    /// A byte-string terminator longer than 1024 bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{ChatContext, ChatHandler, Terminator};
    ///
    /// struct Http;
    /// impl ChatHandler for Http {
    ///     fn found_terminator(&mut self, cx: &mut ChatContext<'_>, line: &[u8]) {
    ///         if line.is_empty() {
    ///             cx.set_terminator(Terminator::Count(42)); // the body
    ///         }
    ///     }
    /// }
    /// ```
    pub fn set_terminator(&mut self, t: Terminator) {
        if let Terminator::Bytes(b) = &t {
            assert!(
                b.len() <= MAX_TERMINATOR,
                "greenio reactor: a terminator of {} bytes is longer than {MAX_TERMINATOR}",
                b.len()
            );
        }
        self.frame.terminator = t;
    }

    /// The current terminator (a `Count` shows the bytes still expected).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{ChatContext, ChatHandler, Terminator};
    ///
    /// struct T;
    /// impl ChatHandler for T {
    ///     fn found_terminator(&mut self, cx: &mut ChatContext<'_>, _: &[u8]) {
    ///         if cx.terminator() == &Terminator::None {
    ///             cx.set_terminator(Terminator::LF);
    ///         }
    ///     }
    /// }
    /// ```
    pub fn terminator(&self) -> &Terminator {
        &self.frame.terminator
    }

    /// Sets the record limit (`None`: unbounded, only sensible when
    /// `collect_incoming_data` does not keep the data).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{ChatContext, ChatHandler};
    ///
    /// struct Small;
    /// impl ChatHandler for Small {
    ///     fn handle_connect(&mut self, cx: &mut ChatContext<'_>) {
    ///         cx.set_max_record(Some(512));
    ///     }
    ///     fn found_terminator(&mut self, _: &mut ChatContext<'_>, _: &[u8]) {}
    /// }
    /// ```
    pub fn set_max_record(&mut self, max: Option<usize>) {
        self.frame.max_record = max;
    }

    /// Keeps `data` as part of the current record (what the default
    /// `collect_incoming_data` does).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{ChatContext, ChatHandler};
    ///
    /// /// Keeps only printable bytes.
    /// struct Printable;
    /// impl ChatHandler for Printable {
    ///     fn collect_incoming_data(&mut self, cx: &mut ChatContext<'_>, data: &[u8]) {
    ///         let clean: Vec<u8> = data.iter().copied().filter(|b| !b.is_ascii_control()).collect();
    ///         cx.collect(&clean);
    ///     }
    ///     fn found_terminator(&mut self, _: &mut ChatContext<'_>, _: &[u8]) {}
    /// }
    /// ```
    pub fn collect(&mut self, data: &[u8]) {
        self.frame.record.extend_from_slice(data);
    }
}

/// async_chat: a [`Handler`] that frames input into records for a
/// [`ChatHandler`]. Starts with [`Terminator::LF`] and records of at most
/// 64 KiB.
///
/// # Examples
///
/// ```
/// use greenio::net::reactor::{self, AsyncChat, ChatContext, ChatHandler, Terminator};
/// use std::io::{Read, Write};
///
/// struct Count;
/// impl ChatHandler for Count {
///     fn found_terminator(&mut self, cx: &mut ChatContext<'_>, rec: &[u8]) {
///         let _ = cx.push(format!("{}\n", rec.len()).as_bytes());
///     }
/// }
///
/// greenio::run(|| {
///     let l = reactor::listen("127.0.0.1:0".parse().unwrap(), |_| {
///         AsyncChat::new(Count).terminator(Terminator::bytes(b";")).max_record(100)
///     })
///     .unwrap();
///     let mut c = greenio::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
///     c.write_all(b"abc;de;;").unwrap();
///     c.shutdown(std::net::Shutdown::Write).unwrap();
///     let mut out = String::new();
///     c.read_to_string(&mut out).unwrap();
///     assert_eq!(out, "3\n2\n0\n");
/// });
/// ```
pub struct AsyncChat<C> {
    /// The user's callbacks.
    inner: C,
    /// Terminator, limit, collected record.
    frame: Frame,
    /// Read buffer; `buf[start..end]` is input not yet framed.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Bytes of the current record seen so far (collected or not).
    seen: usize,
    /// Skipping the rest of an over-long record.
    discarding: bool,
}

impl<C> fmt::Debug for AsyncChat<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncChat")
            .field("frame", &self.frame)
            .field("buffered", &(self.end - self.start))
            .field("seen", &self.seen)
            .field("discarding", &self.discarding)
            .finish()
    }
}

impl<C: ChatHandler> AsyncChat<C> {
    /// Wraps `inner`.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{AsyncChat, ChatContext, ChatHandler};
    ///
    /// struct Nop;
    /// impl ChatHandler for Nop {
    ///     fn found_terminator(&mut self, _: &mut ChatContext<'_>, _: &[u8]) {}
    /// }
    /// let _h = AsyncChat::new(Nop);
    /// ```
    pub fn new(inner: C) -> AsyncChat<C> {
        AsyncChat {
            inner,
            frame: Frame {
                terminator: Terminator::LF,
                max_record: Some(DEFAULT_MAX_RECORD),
                record: Vec::new(),
            },
            buf: vec![0; READ_SIZE].into_boxed_slice(),
            start: 0,
            end: 0,
            seen: 0,
            discarding: false,
        }
    }

    /// Sets the initial terminator.
    ///
    /// # Panics
    ///
    /// A byte-string terminator longer than 1024 bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{AsyncChat, ChatContext, ChatHandler, Terminator};
    ///
    /// struct Nop;
    /// impl ChatHandler for Nop {
    ///     fn found_terminator(&mut self, _: &mut ChatContext<'_>, _: &[u8]) {}
    /// }
    /// let _h = AsyncChat::new(Nop).terminator(Terminator::CRLF);
    /// ```
    pub fn terminator(mut self, t: Terminator) -> AsyncChat<C> {
        if let Terminator::Bytes(b) = &t {
            assert!(
                b.len() <= MAX_TERMINATOR,
                "greenio reactor: a terminator of {} bytes is longer than {MAX_TERMINATOR}",
                b.len()
            );
        }
        self.frame.terminator = t;
        self
    }

    /// Sets the initial record limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{AsyncChat, ChatContext, ChatHandler};
    ///
    /// struct Nop;
    /// impl ChatHandler for Nop {
    ///     fn found_terminator(&mut self, _: &mut ChatContext<'_>, _: &[u8]) {}
    /// }
    /// let _h = AsyncChat::new(Nop).max_record(4096);
    /// ```
    pub fn max_record(mut self, max: usize) -> AsyncChat<C> {
        self.frame.max_record = Some(max);
        self
    }

    /// The wrapped handler.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{AsyncChat, ChatContext, ChatHandler};
    ///
    /// struct Named(&'static str);
    /// impl ChatHandler for Named {
    ///     fn found_terminator(&mut self, _: &mut ChatContext<'_>, _: &[u8]) {}
    /// }
    /// assert_eq!(AsyncChat::new(Named("x")).get_ref().0, "x");
    /// ```
    pub fn get_ref(&self) -> &C {
        &self.inner
    }

    /// Frames the buffered input; `false` when handling must stop
    /// (paused, closing, over the high-water mark).
    fn process(&mut self, conn: &Context<'_>) -> bool {
        loop {
            if !conn.twin().keep_reading() {
                return false;
            }
            let avail = self.end - self.start;
            match &mut self.frame.terminator {
                Terminator::Count(0) => {
                    self.frame.terminator = Terminator::None;
                    self.found(conn);
                }
                _ if avail == 0 => return true,
                Terminator::Count(n) => {
                    let take = avail.min(*n);
                    *n -= take;
                    let done = *n == 0;
                    let (s, e) = (self.start, self.start + take);
                    self.start = e;
                    if !self.deliver(conn, s, e) {
                        return false;
                    }
                    if done {
                        self.frame.terminator = Terminator::None;
                        self.found(conn);
                    }
                }
                Terminator::Bytes(t) if !t.is_empty() => {
                    let t_len = t.len();
                    let data = &self.buf[self.start..self.end];
                    match find(data, t) {
                        Some(i) => {
                            let (s, e) = (self.start, self.start + i);
                            self.start = e + t_len;
                            if !self.deliver(conn, s, e) {
                                return false;
                            }
                            self.found(conn);
                        }
                        None => {
                            let keep = partial_suffix(data, t);
                            let (s, e) = (self.start, self.end - keep);
                            self.start = e;
                            return self.deliver(conn, s, e);
                        }
                    }
                }
                _ => {
                    // None, or an empty byte string: everything is record.
                    let (s, e) = (self.start, self.end);
                    self.start = e;
                    if !self.deliver(conn, s, e) {
                        return false;
                    }
                }
            }
        }
    }

    /// Hands `buf[s..e]` to `collect_incoming_data`, enforcing the record
    /// limit; `false` if the connection is being closed for it.
    fn deliver(&mut self, conn: &Context<'_>, s: usize, e: usize) -> bool {
        if s == e {
            return true;
        }
        self.seen += e - s;
        if let Some(max) = self.frame.max_record {
            if self.seen > max && !self.discarding {
                let mut cx = ChatContext {
                    cx: conn.twin(),
                    frame: &mut self.frame,
                };
                match self.inner.record_too_long(&mut cx) {
                    Overflow::Close => {
                        cx.fail(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("record longer than {max} bytes"),
                        ));
                        return false;
                    }
                    Overflow::Discard => {
                        self.discarding = true;
                        self.frame.record.clear();
                    }
                }
            }
        }
        if self.discarding {
            return true;
        }
        let mut cx = ChatContext {
            cx: conn.twin(),
            frame: &mut self.frame,
        };
        self.inner.collect_incoming_data(&mut cx, &self.buf[s..e]);
        true
    }

    /// A record ended: hand it to `found_terminator` (or end the skipping
    /// of an over-long one).
    fn found(&mut self, conn: &Context<'_>) {
        self.seen = 0;
        if self.discarding {
            self.discarding = false;
            self.frame.record.clear();
            return;
        }
        let mut record = std::mem::take(&mut self.frame.record);
        let mut cx = ChatContext {
            cx: conn.twin(),
            frame: &mut self.frame,
        };
        self.inner.found_terminator(&mut cx, &record);
        if self.frame.record.is_empty() && record.capacity() <= SHRINK_ABOVE {
            record.clear();
            self.frame.record = record; // keep the allocation
        }
    }
}

impl<C: ChatHandler> Handler for AsyncChat<C> {
    fn handle_connect(&mut self, cx: &mut Context<'_>) {
        let mut cx = ChatContext {
            cx: cx.twin(),
            frame: &mut self.frame,
        };
        self.inner.handle_connect(&mut cx);
    }

    fn handle_read(&mut self, cx: &mut Context<'_>) {
        // The run's context for the framing calls, apart from `cx`, which
        // reads.
        let conn = &cx.twin();
        loop {
            if !self.process(conn) {
                return;
            }
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            } else if self.start > 0 {
                // Only a partial terminator is left: move it to the front.
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                return; // cannot happen: terminators are far shorter
            }
            match cx.recv(&mut self.buf[self.end..]) {
                Ok(0) => {
                    // EOF: a `None` terminator's record is complete; a
                    // partial record of another kind is dropped.
                    if matches!(&self.frame.terminator, Terminator::None)
                        || matches!(&self.frame.terminator, Terminator::Bytes(t) if t.is_empty())
                    {
                        self.found(conn);
                    }
                    return;
                }
                Ok(n) => self.end += n,
                Err(_) => return,
            }
        }
    }

    fn handle_write(&mut self, cx: &mut Context<'_>) {
        let mut cx = ChatContext {
            cx: cx.twin(),
            frame: &mut self.frame,
        };
        self.inner.handle_write(&mut cx);
    }

    fn handle_eof(&mut self, cx: &mut Context<'_>) {
        let mut cx = ChatContext {
            cx: cx.twin(),
            frame: &mut self.frame,
        };
        self.inner.handle_eof(&mut cx);
    }

    fn handle_close(&mut self, cx: &mut Context<'_>) {
        let mut cx = ChatContext {
            cx: cx.twin(),
            frame: &mut self.frame,
        };
        self.inner.handle_close(&mut cx);
    }

    fn handle_error(&mut self, cx: &mut Context<'_>, err: &io::Error) {
        let mut cx = ChatContext {
            cx: cx.twin(),
            frame: &mut self.frame,
        };
        self.inner.handle_error(&mut cx, err);
    }
}

/// Position of `t` in `data`.
fn find(data: &[u8], t: &[u8]) -> Option<usize> {
    let first = t[0];
    if t.len() == 1 {
        return data.iter().position(|&b| b == first);
    }
    let mut from = 0;
    while from + t.len() <= data.len() {
        let i = from
            + data[from..=data.len() - t.len()]
                .iter()
                .position(|&b| b == first)?;
        if &data[i..i + t.len()] == t {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// Length of the longest proper prefix of `t` that `data` ends with: the
/// bytes to hold back because the next read may complete the terminator.
fn partial_suffix(data: &[u8], t: &[u8]) -> usize {
    let max = (t.len() - 1).min(data.len());
    (1..=max)
        .rev()
        .find(|&k| data[data.len() - k..] == t[..k])
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_and_partial_suffix() {
        assert_eq!(find(b"abc\r\ndef", b"\r\n"), Some(3));
        assert_eq!(find(b"abc\rdef", b"\r\n"), None);
        assert_eq!(find(b"\r\r\n", b"\r\n"), Some(1));
        assert_eq!(find(b"x\n", b"\n"), Some(1));
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(partial_suffix(b"abc\r", b"\r\n"), 1);
        assert_eq!(partial_suffix(b"abc", b"\r\n"), 0);
        assert_eq!(partial_suffix(b"xx\r\n.", b"\r\n.\r\n"), 3);
        assert_eq!(partial_suffix(b"", b"\r\n"), 0);
    }
}
