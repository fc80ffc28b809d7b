//! [`LineReader`]: lines from a byte stream, with a bound on their length.
//!
//! Line protocols (finger, chat, SMTP...) read "a line", and a peer decides
//! how long that line is. `BufRead::read_line` grows its `String` until the
//! newline arrives, so one client sending a gigabyte without a newline
//! costs a gigabyte. A `LineReader` holds at most `max_len + 2` bytes (the
//! line, a CR and the LF) whatever the peer sends: a longer line is
//! reported as [`Line::TooLong`] as soon as it is known to be too long, and
//! its remaining bytes are skipped up to and including its LF.
//!
//! | input                          | what [`LineReader::next_line`] returns      |
//! |--------------------------------|---------------------------------------------|
//! | `text\n` or `text\r\n`         | `Some(Line::Complete(b"text"))` (one CR before the LF is stripped) |
//! | more than `max_len` bytes before the LF | `Some(Line::TooLong)`, once; the rest of that line is skipped |
//! | `text` then end of stream      | `Some(Line::Complete(b"text"))`, then `None` |
//! | end of stream                  | `None` (also when it ends inside a skipped line) |
//!
//! It works on any [`Read`]: a green-thread [`TcpStream`](crate::TcpStream)
//! (or `&TcpStream`, so another green thread can write to the same socket
//! meanwhile), a Unix stream, a byte slice in a test.

use std::fmt;
use std::io::{self, Read};

/// One result of [`LineReader::next_line`].
///
/// # Examples
///
/// ```
/// use greenio::net::{Line, LineReader};
///
/// let mut lines = LineReader::new(&b"ok\r\nfar too long\n"[..], 8);
/// assert_eq!(lines.next_line().unwrap(), Some(Line::Complete(b"ok")));
/// assert_eq!(lines.next_line().unwrap(), Some(Line::TooLong));
/// assert_eq!(lines.next_line().unwrap(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// A line of at most `max_len` bytes, without its LF and without one CR
    /// just before the LF. Any bytes: check UTF-8 yourself if the protocol
    /// needs it.
    Complete(&'a [u8]),
    /// A line longer than `max_len` bytes. It is reported once, as soon as
    /// it is known to be too long (possibly before its LF has arrived); the
    /// reader then skips its bytes up to and including the LF, so the next
    /// call returns the line after it.
    TooLong,
}

/// Reads LF-terminated lines of at most `max_len` bytes from a [`Read`],
/// in a buffer of `max_len + 2` bytes allocated once.
///
/// See the [module docs](self) for what each input gives.
///
/// # Examples
///
/// A line server's loop, on a green thread:
///
/// ```
/// use greenio::net::{Line, LineReader, TcpListener, TcpStream};
/// use std::io::{Read, Write};
///
/// greenio::run(|| {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     greenio::spawn(move || {
///         let (conn, _) = listener.accept().unwrap();
///         let mut lines = LineReader::new(&conn, 16);
///         while let Ok(Some(line)) = lines.next_line() {
///             let reply: &[u8] = match line {
///                 Line::Complete(b"ping") => b"pong\n",
///                 Line::Complete(_) => b"?\n",
///                 Line::TooLong => b"too long\n",
///             };
///             if (&conn).write_all(reply).is_err() {
///                 break;
///             }
///         }
///     });
///
///     let mut c = TcpStream::connect(addr).unwrap();
///     c.write_all(b"ping\r\nhello\n").unwrap();
///     c.write_all(&[b'x'; 100]).unwrap();
///     c.write_all(b"\nping\n").unwrap();
///     c.shutdown(std::net::Shutdown::Write).unwrap();
///     let mut replies = String::new();
///     c.read_to_string(&mut replies).unwrap();
///     assert_eq!(replies, "pong\n?\ntoo long\npong\n");
/// });
/// ```
pub struct LineReader<R> {
    /// Where the bytes come from.
    inner: R,
    /// Holds `buf[start..end]`, read but not yet returned. Its length is
    /// `max_len + 2` and never changes.
    buf: Box<[u8]>,
    /// The first byte not yet returned.
    start: usize,
    /// One past the last byte read.
    end: usize,
    /// The longest line returned as [`Line::Complete`].
    max_len: usize,
    /// Inside a line already reported as too long: drop bytes up to its LF.
    skipping: bool,
    /// `inner` reported end of stream; nothing more will be read.
    eof: bool,
}

impl<R: Read> LineReader<R> {
    /// A reader of lines of at most `max_len` bytes (LF and a CR before it
    /// not counted) from `inner`.
    ///
    /// # Panics
    ///
    /// Panics if `max_len` is 0 or so large that `max_len + 2` overflows.
    ///
    /// # Examples
    ///
    /// ```
    /// let lines = greenio::net::LineReader::new(std::io::empty(), 4096);
    /// assert_eq!(lines.max_len(), 4096);
    /// ```
    pub fn new(inner: R, max_len: usize) -> LineReader<R> {
        assert!(max_len > 0, "LineReader::new: max_len must be at least 1");
        let cap = max_len
            .checked_add(2)
            .expect("LineReader::new: max_len too large");
        LineReader {
            inner,
            buf: vec![0; cap].into_boxed_slice(),
            start: 0,
            end: 0,
            max_len,
            skipping: false,
            eof: false,
        }
    }

    /// The next line, [`Line::TooLong`] for an overlong one, or `None` at
    /// the end of the stream. Reads from the inner reader only when no
    /// complete line is buffered. Bytes after the last LF are returned as a
    /// final line when the stream ends.
    ///
    /// # Errors
    ///
    /// The inner reader's errors (`Interrupted` is retried). Bytes read
    /// before an error stay buffered, so calling again after, say, a
    /// `TimedOut` continues where it stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::{Line, LineReader};
    ///
    /// let mut lines = LineReader::new(&b"one\ntwo"[..], 80);
    /// let mut got = Vec::new();
    /// while let Some(line) = lines.next_line().unwrap() {
    ///     if let Line::Complete(text) = line {
    ///         got.push(String::from_utf8_lossy(text).into_owned());
    ///     }
    /// }
    /// assert_eq!(got, ["one", "two"]);
    /// ```
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        // `scanned` bytes after `start` are known to hold no LF.
        let mut scanned = 0;
        loop {
            let pending = &self.buf[self.start + scanned..self.end];
            if let Some(i) = pending.iter().position(|&b| b == b'\n') {
                let lf = self.start + scanned + i;
                let line_start = self.start;
                self.start = lf + 1;
                if self.skipping {
                    self.skipping = false;
                    scanned = 0;
                    continue;
                }
                let mut line = &self.buf[line_start..lf];
                if let [rest @ .., b'\r'] = line {
                    line = rest;
                }
                if line.len() > self.max_len {
                    return Ok(Some(Line::TooLong));
                }
                return Ok(Some(Line::Complete(line)));
            }
            scanned = self.end - self.start;

            if self.skipping {
                // Nothing in the buffer is worth keeping.
                self.start = 0;
                self.end = 0;
                scanned = 0;
            } else if scanned >= self.buf.len() {
                // A full buffer without a LF: the line has at least
                // max_len + 2 bytes, too long even if a CR comes last.
                self.start = 0;
                self.end = 0;
                self.skipping = true;
                return Ok(Some(Line::TooLong));
            }

            if self.eof {
                if self.skipping || self.start == self.end {
                    self.skipping = false;
                    self.start = 0;
                    self.end = 0;
                    return Ok(None);
                }
                // The last line, without a LF.
                let line = &self.buf[self.start..self.end];
                self.start = self.end;
                if line.len() > self.max_len {
                    return Ok(Some(Line::TooLong));
                }
                return Ok(Some(Line::Complete(line)));
            }

            // Make room at the end, then read.
            if self.end == self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The longest line returned as [`Line::Complete`].
    ///
    /// # Examples
    ///
    /// ```
    /// let lines = greenio::net::LineReader::new(&b""[..], 1024);
    /// assert_eq!(lines.max_len(), 1024);
    /// ```
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Bytes read from the inner reader but not yet returned as part of a
    /// line (for handing the connection over to another protocol).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lines = greenio::net::LineReader::new(&b"HELO\nraw bytes"[..], 64);
    /// lines.next_line().unwrap();
    /// assert_eq!(lines.buffer(), b"raw bytes");
    /// ```
    pub fn buffer(&self) -> &[u8] {
        if self.skipping {
            &[]
        } else {
            &self.buf[self.start..self.end]
        }
    }

    /// The inner reader.
    ///
    /// # Examples
    ///
    /// ```
    /// let lines = greenio::net::LineReader::new(&b"abc"[..], 64);
    /// assert_eq!(*lines.get_ref(), b"abc");
    /// ```
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The inner reader, mutably. Reading from it directly skips the
    /// buffer; see [`buffer`](Self::buffer).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut lines = greenio::net::LineReader::new(std::io::Cursor::new(b"ab"), 64);
    /// lines.get_mut().set_position(1);
    /// assert_eq!(lines.next_line().unwrap(), Some(greenio::net::Line::Complete(b"b")));
    /// ```
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Gives back the inner reader; buffered bytes are lost (take them with
    /// [`buffer`](Self::buffer) first).
    ///
    /// # Examples
    ///
    /// ```
    /// let lines = greenio::net::LineReader::new(&b"abc"[..], 64);
    /// let inner: &[u8] = lines.into_inner();
    /// assert_eq!(inner, b"abc");
    /// ```
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: fmt::Debug> fmt::Debug for LineReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineReader")
            .field("inner", &self.inner)
            .field("max_len", &self.max_len)
            .field("buffered", &(self.end - self.start))
            .field("skipping", &self.skipping)
            .field("eof", &self.eof)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out its input in chunks of the given sizes, to
    /// split lines across reads.
    struct Chunks {
        data: Vec<u8>,
        pos: usize,
        sizes: Vec<usize>,
        reads: usize,
    }

    impl Chunks {
        fn new(data: &[u8], sizes: &[usize]) -> Chunks {
            Chunks {
                data: data.to_vec(),
                pos: 0,
                sizes: sizes.to_vec(),
                reads: 0,
            }
        }
    }

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let size = self.sizes[self.reads % self.sizes.len()];
            self.reads += 1;
            let n = size.min(buf.len()).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    /// Every result until the end, lines as strings, `TooLong` as "<long>".
    fn collect<R: Read>(mut r: LineReader<R>) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(line) = r.next_line().unwrap() {
            out.push(match line {
                Line::Complete(b) => String::from_utf8_lossy(b).into_owned(),
                Line::TooLong => "<long>".to_string(),
            });
        }
        out
    }

    #[test]
    fn lf_crlf_and_a_last_line_without_lf() {
        let r = LineReader::new(&b"a\nb\r\n\r\nc\rd\nlast"[..], 10);
        assert_eq!(collect(r), ["a", "b", "", "c\rd", "last"]);
    }

    #[test]
    fn the_limit_is_exact_with_and_without_cr() {
        let ok = "x".repeat(8);
        let long = "y".repeat(9);
        let input = format!("{ok}\n{ok}\r\n{long}\n{long}\r\n{ok}");
        for sizes in [&[1][..], &[3, 7], &[100]] {
            let r = LineReader::new(Chunks::new(input.as_bytes(), sizes), 8);
            assert_eq!(
                collect(r),
                [&*ok, &*ok, "<long>", "<long>", &*ok],
                "{sizes:?}"
            );
        }
    }

    #[test]
    fn an_endless_line_is_reported_once_and_memory_stays_bounded() {
        let mut input = b"first\n".to_vec();
        input.extend(vec![b'z'; 1_000_000]);
        input.extend(b"\nafter\n");
        let mut r = LineReader::new(Chunks::new(&input, &[4096, 1, 777]), 100);
        assert_eq!(r.next_line().unwrap(), Some(Line::Complete(b"first")));
        assert_eq!(r.next_line().unwrap(), Some(Line::TooLong));
        assert_eq!(r.buf.len(), 102, "the buffer never grows");
        assert_eq!(r.next_line().unwrap(), Some(Line::Complete(b"after")));
        assert_eq!(r.next_line().unwrap(), None);
        assert_eq!(r.next_line().unwrap(), None, "None again after the end");
    }

    #[test]
    fn too_long_is_reported_before_the_lf_arrives() {
        // The reader never gets a LF, yet returns TooLong once it has
        // max_len + 2 bytes.
        struct Endless;
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                buf.fill(b'q');
                Ok(buf.len())
            }
        }
        let mut r = LineReader::new(Endless, 1024);
        assert_eq!(r.next_line().unwrap(), Some(Line::TooLong));
    }

    #[test]
    fn the_stream_ending_inside_a_skipped_line_is_the_end() {
        let r = LineReader::new(&b"ok\nwaytoolong"[..], 4);
        assert_eq!(collect(r), ["ok", "<long>"]);
        // One byte over the limit, then the end: too long as well.
        let r = LineReader::new(&b"ok\n12345"[..], 4);
        assert_eq!(collect(r), ["ok", "<long>"]);
    }

    #[test]
    fn errors_keep_buffered_bytes_and_interrupted_is_retried() {
        struct Flaky(Vec<io::Result<&'static [u8]>>);
        impl Read for Flaky {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Ok(0);
                }
                let b = self.0.remove(0)?;
                buf[..b.len()].copy_from_slice(b);
                Ok(b.len())
            }
        }
        let mut r = LineReader::new(
            Flaky(vec![
                Ok(b"he"),
                Err(io::ErrorKind::Interrupted.into()),
                Ok(b"l"),
                Err(io::ErrorKind::TimedOut.into()),
                Ok(b"lo\n"),
            ]),
            16,
        );
        let e = r.next_line().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(r.buffer(), b"hel");
        assert_eq!(r.next_line().unwrap(), Some(Line::Complete(b"hello")));
        assert_eq!(r.next_line().unwrap(), None);
    }

    #[test]
    fn many_short_lines_pass_through_a_small_buffer() {
        let input: String = (0..1000).map(|i| format!("{i}\n")).collect();
        let r = LineReader::new(Chunks::new(input.as_bytes(), &[13]), 4);
        let want: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        assert_eq!(collect(r), want);
    }
}
