//! Producers, and the output queue every reactor connection owns.
//!
//! # The output queue
//!
//! A connection's output is a FIFO of *items*: bytes given to `push`, and
//! [`Producer`]s given to `push_producer` (async_chat's `producer_fifo`).
//! The front of the FIFO is the *head*: the bytes being written now.
//!
//! ```text
//!   head: [....written....|....unwritten....]   queue: [Bytes][Producer][Bytes]...
//!                          ^ pos
//! ```
//!
//! * A push appends to the head when nothing is queued behind it, else to
//!   the last queued `Bytes` item (consecutive pushes coalesce: one
//!   allocation, not one per push).
//! * A producer is asked for a chunk only when the head is empty and the
//!   socket is writable, so it is drained exactly as fast as the peer
//!   reads: a 10 MB reply never sits in memory at once, and a producer that
//!   computes its output computes it just in time.
//! * Only *pushed* bytes count against the connection's output limit;
//!   producers are pulled lazily and their chunks are bounded by the
//!   producer itself.
//!
//! The queue itself never calls a producer: it hands the producer out
//! ([`Next::Produce`]) and takes it back with its chunk
//! ([`Output::put_back`]), so user code never runs while the connection's
//! state is borrowed.

use std::collections::VecDeque;
use std::fmt;

/// A source of output produced on demand, async_chat style.
///
/// The connection calls [`more`](Producer::more) only when everything
/// produced before has been handed to the kernel, so a producer is drained
/// as fast as the peer reads and no faster. Return `None` when exhausted;
/// the producer is then dropped and the next item of the connection's
/// output FIFO is sent. An empty chunk is allowed and simply skipped.
///
/// Any `FnMut() -> Option<Vec<u8>>` closure is a producer.
///
/// # Examples
///
/// A producer that counts to three, one line per chunk:
///
/// ```
/// use greenio::net::reactor::Producer;
///
/// let mut n = 0;
/// let mut counter = move || {
///     n += 1;
///     (n <= 3).then(|| format!("{n}\n").into_bytes())
/// };
/// assert_eq!(counter.more(), Some(b"1\n".to_vec()));
/// assert_eq!(counter.more(), Some(b"2\n".to_vec()));
/// assert_eq!(counter.more(), Some(b"3\n".to_vec()));
/// assert_eq!(counter.more(), None);
/// ```
pub trait Producer {
    /// The next chunk of output, or `None` once there is no more.
    fn more(&mut self) -> Option<Vec<u8>>;
}

impl<F: FnMut() -> Option<Vec<u8>>> Producer for F {
    fn more(&mut self) -> Option<Vec<u8>> {
        self()
    }
}

/// The default chunk size of [`BytesProducer`]: 16 KiB (choose another
/// with [`BytesProducer::with_chunk_size`]).
const DEFAULT_CHUNK: usize = 16 * 1024;

/// A producer over a byte buffer that hands it out in fixed-size chunks
/// (the seed's `simple_producer`): one huge reply is sent piece by piece
/// as the socket accepts it, interleaved with every other connection's
/// work.
///
/// # Examples
///
/// ```
/// use greenio::net::reactor::{BytesProducer, Producer};
///
/// let mut p = BytesProducer::with_chunk_size(b"hello world".to_vec(), 4);
/// assert_eq!(p.more().as_deref(), Some(&b"hell"[..]));
/// assert_eq!(p.more().as_deref(), Some(&b"o wo"[..]));
/// assert_eq!(p.more().as_deref(), Some(&b"rld"[..]));
/// assert_eq!(p.more(), None);
/// ```
#[derive(Debug, Clone)]
pub struct BytesProducer {
    /// The whole reply.
    data: Vec<u8>,
    /// Bytes of `data` already handed out.
    pos: usize,
    /// Bytes per chunk (at least 1).
    chunk: usize,
}

impl BytesProducer {
    /// Hands `data` out in chunks of 16 KiB.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{BytesProducer, Producer};
    ///
    /// let mut p = BytesProducer::new(vec![7u8; 40_000]);
    /// assert_eq!(p.more().map(|c| c.len()), Some(16 * 1024));
    /// ```
    pub fn new(data: impl Into<Vec<u8>>) -> BytesProducer {
        BytesProducer::with_chunk_size(data, DEFAULT_CHUNK)
    }

    /// Hands `data` out in chunks of `chunk` bytes (a `chunk` of 0 is
    /// taken as 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{BytesProducer, Producer};
    ///
    /// let mut p = BytesProducer::with_chunk_size(vec![1u8; 10], 512);
    /// assert_eq!(p.more().map(|c| c.len()), Some(10));
    /// assert_eq!(p.more(), None);
    /// ```
    pub fn with_chunk_size(data: impl Into<Vec<u8>>, chunk: usize) -> BytesProducer {
        BytesProducer {
            data: data.into(),
            pos: 0,
            chunk: chunk.max(1),
        }
    }

    /// Bytes not yet handed out.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::{BytesProducer, Producer};
    ///
    /// let mut p = BytesProducer::with_chunk_size(vec![0u8; 10], 4);
    /// p.more();
    /// assert_eq!(p.remaining(), 6);
    /// ```
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
}

impl Producer for BytesProducer {
    fn more(&mut self) -> Option<Vec<u8>> {
        if self.pos >= self.data.len() {
            return None;
        }
        if self.pos == 0 && self.data.len() <= self.chunk {
            // The whole reply fits one chunk: hand over the buffer itself.
            self.pos = self.data.len();
            return Some(std::mem::take(&mut self.data));
        }
        let end = self.data.len().min(self.pos + self.chunk);
        let chunk = self.data[self.pos..end].to_vec();
        self.pos = end;
        Some(chunk)
    }
}

/// A producer over an iterator of chunks.
///
/// # Examples
///
/// ```
/// use greenio::net::reactor::{IterProducer, Producer};
///
/// let mut p = IterProducer::new((1..=2).map(|i| vec![i; 3]));
/// assert_eq!(p.more(), Some(vec![1, 1, 1]));
/// assert_eq!(p.more(), Some(vec![2, 2, 2]));
/// assert_eq!(p.more(), None);
/// ```
#[derive(Debug, Clone)]
pub struct IterProducer<I>(I);

impl<I: Iterator<Item = Vec<u8>>> IterProducer<I> {
    /// Wraps `iter`; each item is one chunk.
    ///
    /// # Examples
    ///
    /// ```
    /// use greenio::net::reactor::IterProducer;
    ///
    /// let _p = IterProducer::new(vec![b"a".to_vec(), b"b".to_vec()].into_iter());
    /// ```
    pub fn new(iter: I) -> IterProducer<I> {
        IterProducer(iter)
    }
}

impl<I: Iterator<Item = Vec<u8>>> Producer for IterProducer<I> {
    fn more(&mut self) -> Option<Vec<u8>> {
        self.0.next()
    }
}

/// One queued output item.
enum Item {
    /// Pushed bytes (counted in [`Output::pushed`]).
    Bytes(Vec<u8>),
    /// A producer not yet exhausted.
    Producer(Box<dyn Producer>),
}

/// What follows an empty head.
pub(crate) enum Next {
    /// The head holds new bytes: write them.
    Ready,
    /// Ask this producer for a chunk, then give it back with
    /// [`Output::put_back`].
    Produce(Box<dyn Producer>),
    /// Nothing left: the queue is empty.
    Empty,
}

/// A head buffer that grew past this is released once written, so an idle
/// connection does not keep a burst's memory.
const SHRINK_ABOVE: usize = 64 * 1024;

/// A connection's output FIFO. Owned by the connection's state; only the
/// dispatcher touches it, never while user code runs.
#[derive(Default)]
pub(crate) struct Output {
    /// The bytes being written; `head[pos..]` is unwritten.
    head: Vec<u8>,
    /// Start of the unwritten part of `head`.
    pos: usize,
    /// Whether `head` holds pushed bytes (counted in `pushed`) rather than
    /// a producer's chunk.
    head_pushed: bool,
    /// Items behind the head, in order.
    queue: VecDeque<Item>,
    /// Pushed bytes not yet written (head and queue): what the output limit
    /// bounds.
    pushed: usize,
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("unwritten", &self.pending().len())
            .field("queued_items", &self.queue.len())
            .field("pushed", &self.pushed)
            .finish()
    }
}

impl Output {
    /// Nothing at all to send.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.head.len() && self.queue.is_empty()
    }

    /// Pushed bytes not yet written.
    #[inline]
    pub(crate) fn pushed(&self) -> usize {
        self.pushed
    }

    /// Bytes held in memory, waiting: pushed bytes and the current chunk.
    #[inline]
    pub(crate) fn buffered(&self) -> usize {
        if self.head_pushed {
            self.pushed
        } else {
            self.pushed + (self.head.len() - self.pos)
        }
    }

    /// The unwritten bytes of the head.
    #[inline]
    pub(crate) fn pending(&self) -> &[u8] {
        &self.head[self.pos..]
    }

    /// Appends pushed bytes behind everything queued.
    pub(crate) fn push(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.pushed += data.len();
        if self.queue.is_empty() && (self.head_pushed || self.pos == self.head.len()) {
            if self.pos == self.head.len() {
                self.head.clear();
                self.pos = 0;
                self.head_pushed = true;
            }
            self.head.extend_from_slice(data);
        } else if let Some(Item::Bytes(last)) = self.queue.back_mut() {
            last.extend_from_slice(data);
        } else {
            self.queue.push_back(Item::Bytes(data.to_vec()));
        }
    }

    /// Appends a producer behind everything queued.
    pub(crate) fn push_producer(&mut self, p: Box<dyn Producer>) {
        self.queue.push_back(Item::Producer(p));
    }

    /// Marks `n` bytes of the head as written.
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.head_pushed {
            self.pushed -= n;
        }
        if self.pos == self.head.len() {
            self.pos = 0;
            if self.head.capacity() > SHRINK_ABOVE {
                self.head = Vec::new();
            } else {
                self.head.clear();
            }
        }
    }

    /// Moves the next item into the empty head, or hands out the producer
    /// that must fill it.
    pub(crate) fn next(&mut self) -> Next {
        debug_assert!(self.pending().is_empty());
        match self.queue.pop_front() {
            None => Next::Empty,
            Some(Item::Bytes(v)) => {
                self.head = v;
                self.pos = 0;
                self.head_pushed = true;
                Next::Ready
            }
            Some(Item::Producer(p)) => Next::Produce(p),
        }
    }

    /// Takes back the producer handed out by [`next`](Self::next) with the
    /// chunk it made: the chunk becomes the head and the producer goes back
    /// to the front of the queue. An exhausted producer (`None`) is
    /// returned so the caller drops it outside any borrow.
    pub(crate) fn put_back(
        &mut self,
        p: Box<dyn Producer>,
        chunk: Option<Vec<u8>>,
    ) -> Option<Box<dyn Producer>> {
        match chunk {
            Some(c) => {
                if self.pending().is_empty() {
                    self.head = c;
                    self.pos = 0;
                    self.head_pushed = false;
                    self.queue.push_front(Item::Producer(p));
                } else {
                    // Something was pushed into the head while the producer
                    // ran (from the producer itself): keep the FIFO order
                    // of what is already there.
                    // The chunk is queued as bytes, so it is counted as
                    // pushed until written.
                    self.pushed += c.len();
                    self.queue.push_front(Item::Producer(p));
                    self.queue.push_front(Item::Bytes(c));
                }
                None
            }
            None => Some(p),
        }
    }

    /// Empties the queue, returning its contents to be dropped outside any
    /// borrow (producers are user code).
    pub(crate) fn take(&mut self) -> Output {
        std::mem::take(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(out: &mut Output) -> Vec<u8> {
        let mut got = Vec::new();
        loop {
            let n = out.pending().len();
            if n > 0 {
                got.extend_from_slice(out.pending());
                out.consume(n);
                continue;
            }
            match out.next() {
                Next::Ready => {}
                Next::Empty => return got,
                Next::Produce(mut p) => {
                    let c = p.more();
                    drop(out.put_back(p, c));
                }
            }
        }
    }

    #[test]
    fn pushes_and_producers_keep_fifo_order() {
        let mut out = Output::default();
        out.push(b"a");
        out.push_producer(Box::new(BytesProducer::with_chunk_size(b"bcd".to_vec(), 2)));
        out.push(b"e");
        out.push(b"f");
        assert_eq!(out.pushed(), 3);
        assert_eq!(drain(&mut out), b"abcdef");
        assert_eq!(out.pushed(), 0);
        assert!(out.is_empty());
    }

    #[test]
    fn partial_consume_counts_pushed_bytes() {
        let mut out = Output::default();
        out.push(b"hello");
        out.consume(2);
        assert_eq!(out.pending(), b"llo");
        assert_eq!(out.pushed(), 3);
        out.push(b"!");
        assert_eq!(out.pending(), b"llo!");
        assert_eq!(out.buffered(), 4);
    }
}
