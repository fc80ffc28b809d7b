//! `net::reactor`: the callback style on the hub loop.
//!
//! In-process tests run a reactor server and green-thread clients on one
//! hub (so "split across reads" and "while the other transfer is running"
//! are deterministic: a client's write lands in the server's socket before
//! the client parks). The example tests start the built binaries
//! `echo_callback` and `chat_callback` and run the shared protocol bodies
//! of `tests/util/{echo,chat}_protocol.rs` against them: the same bodies
//! the green-thread twins are tested with.

#[path = "util/chat_protocol.rs"]
mod chat_protocol;
#[path = "util/echo_protocol.rs"]
mod echo_protocol;
mod util;

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use greenio::net::reactor::{
    self, AsyncChat, BytesProducer, ChatContext, ChatHandler, Context, Handle, Handler,
    IterProducer, Overflow, Producer, Terminator,
};
use greenio::net::TcpStream;

use util::Example;

const LONG: Duration = Duration::from_secs(30);

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A green-thread client with bounded reads.
fn client(addr: SocketAddr) -> TcpStream {
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(LONG)).unwrap();
    c.set_nodelay(true).unwrap();
    c
}

fn read_exactly(c: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    c.read_exact(&mut v).unwrap();
    v
}

/// Reads until EOF (a reset also ends it).
fn read_to_close(c: &mut TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return v,
            Ok(n) => v.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return v,
            Err(e) => panic!("read: {e}"),
        }
    }
}

// ----- async_chat framing ----------------------------------------------------

/// Records every record and every piece collected; answers `ok` per record.
struct Recorder {
    records: Rc<RefCell<Vec<Vec<u8>>>>,
    pieces: Rc<Cell<usize>>,
}

impl ChatHandler for Recorder {
    fn collect_incoming_data(&mut self, cx: &mut ChatContext<'_>, data: &[u8]) {
        self.pieces.set(self.pieces.get() + 1);
        cx.collect(data);
    }

    fn found_terminator(&mut self, cx: &mut ChatContext<'_>, record: &[u8]) {
        self.records.borrow_mut().push(record.to_vec());
        let _ = cx.push(b"ok\n");
    }
}

#[test]
fn byte_string_terminator_split_across_reads() {
    util::run("split terminator", || {
        let records = Rc::new(RefCell::new(Vec::new()));
        let pieces = Rc::new(Cell::new(0));
        let (r, p) = (records.clone(), pieces.clone());
        let l = reactor::listen(any_port(), move |_| {
            AsyncChat::new(Recorder {
                records: r.clone(),
                pieces: p.clone(),
            })
            .terminator(Terminator::bytes(b"<END>"))
        })
        .unwrap();
        let mut c = client(l.local_addr().unwrap());
        // Each write lands in the server's socket before we park, and the
        // server reads it while we sleep: one read per piece.
        for piece in [
            &b"hel"[..],
            b"lo<E",
            b"ND>wor",
            b"ld<",
            b"EN",
            b"D><END",
            b">",
        ] {
            c.write_all(piece).unwrap();
            greenio::sleep(Duration::from_millis(5));
        }
        assert_eq!(read_exactly(&mut c, 9), b"ok\nok\nok\n");
        assert_eq!(
            *records.borrow(),
            vec![b"hello".to_vec(), b"world".to_vec(), Vec::new()]
        );
        // "hello" and "world" each arrived in two pieces; the held-back
        // partial terminators were never collected as data.
        assert_eq!(pieces.get(), 4);
    });
}

#[test]
fn crlf_terminator_split_between_cr_and_lf() {
    util::run("split crlf", || {
        let records = Rc::new(RefCell::new(Vec::new()));
        let r = records.clone();
        let l = reactor::listen(any_port(), move |_| {
            AsyncChat::new(Recorder {
                records: r.clone(),
                pieces: Rc::new(Cell::new(0)),
            })
            .terminator(Terminator::CRLF)
        })
        .unwrap();
        let mut c = client(l.local_addr().unwrap());
        for piece in [&b"a\r"[..], b"\nb\r", b"x\r\n", b"\r", b"\n"] {
            c.write_all(piece).unwrap();
            greenio::sleep(Duration::from_millis(5));
        }
        assert_eq!(read_exactly(&mut c, 9), b"ok\nok\nok\n");
        assert_eq!(
            *records.borrow(),
            vec![b"a".to_vec(), b"b\rx".to_vec(), Vec::new()]
        );
    });
}

/// `LEN n` announces a body of n bytes (which may contain line ends).
struct Bodies;

impl ChatHandler for Bodies {
    fn found_terminator(&mut self, cx: &mut ChatContext<'_>, rec: &[u8]) {
        if cx.terminator() == &Terminator::None {
            // A Count just completed (it turns into None).
            let _ = cx.push(format!("body {:?}\n", String::from_utf8_lossy(rec)).as_bytes());
            cx.set_terminator(Terminator::CRLF);
            return;
        }
        let line = String::from_utf8_lossy(rec).into_owned();
        if let Some(n) = line.strip_prefix("LEN ") {
            cx.set_terminator(Terminator::Count(n.parse().unwrap()));
        } else {
            let _ = cx.push(format!("line {line}\n").as_bytes());
        }
    }
}

#[test]
fn count_terminator_switches_with_lines_even_pipelined() {
    util::run("count terminator", || {
        let l = reactor::listen(any_port(), |_| {
            AsyncChat::new(Bodies).terminator(Terminator::CRLF)
        })
        .unwrap();
        let mut c = client(l.local_addr().unwrap());
        // All in one packet: lines, a body containing CRLF, a line.
        c.write_all(b"hi\r\nLEN 4\r\na\r\nbLEN 0\r\nlast\r\n")
            .unwrap();
        let want = "line hi\nbody \"a\\r\\nb\"\nbody \"\"\nline last\n";
        assert_eq!(read_exactly(&mut c, want.len()), want.as_bytes());
        // A count split over several reads.
        c.write_all(b"LEN 6\r\nab").unwrap();
        greenio::sleep(Duration::from_millis(5));
        c.write_all(b"cd").unwrap();
        greenio::sleep(Duration::from_millis(5));
        c.write_all(b"efend\r\n").unwrap();
        let want = "body \"abcdef\"\nline end\n";
        assert_eq!(read_exactly(&mut c, want.len()), want.as_bytes());
    });
}

/// Terminator::None: the whole stream is one record, found at EOF.
struct Whole;

impl ChatHandler for Whole {
    fn found_terminator(&mut self, cx: &mut ChatContext<'_>, rec: &[u8]) {
        let sum: u64 = rec.iter().map(|&b| u64::from(b)).sum();
        let _ = cx.push(format!("{} bytes, sum {sum}\n", rec.len()).as_bytes());
    }
}

#[test]
fn no_terminator_collects_until_close() {
    util::run("terminator none", || {
        let l = reactor::listen(any_port(), |_| {
            AsyncChat::new(Whole)
                .terminator(Terminator::None)
                .max_record(1 << 20)
        })
        .unwrap();
        let mut c = client(l.local_addr().unwrap());
        let data = util::pattern(1, 300_000);
        c.write_all(&data).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let sum: u64 = data.iter().map(|&b| u64::from(b)).sum();
        let reply = String::from_utf8(read_to_close(&mut c)).unwrap();
        assert_eq!(reply, format!("300000 bytes, sum {sum}\n"));
    });
}

/// Errors seen by a handler, for assertions.
#[derive(Default)]
struct Seen {
    errors: RefCell<Vec<(ErrorKind, String)>>,
    closes: Cell<usize>,
}

struct Strict(Rc<Seen>);

impl ChatHandler for Strict {
    fn found_terminator(&mut self, cx: &mut ChatContext<'_>, rec: &[u8]) {
        let _ = cx.push(format!("{}\n", rec.len()).as_bytes());
    }
    fn handle_error(&mut self, _cx: &mut ChatContext<'_>, err: &std::io::Error) {
        self.0
            .errors
            .borrow_mut()
            .push((err.kind(), err.to_string()));
    }
    fn handle_close(&mut self, _cx: &mut ChatContext<'_>) {
        self.0.closes.set(self.0.closes.get() + 1);
    }
}

#[test]
fn a_record_over_the_limit_closes_by_default_with_bounded_memory() {
    util::run("record limit", || {
        let seen = Rc::new(Seen::default());
        let s = seen.clone();
        let l = reactor::listen(any_port(), move |_| {
            AsyncChat::new(Strict(s.clone())).max_record(1000)
        })
        .unwrap();
        let mut c = client(l.local_addr().unwrap());
        c.write_all(b"short\n").unwrap();
        assert_eq!(read_exactly(&mut c, 2), b"5\n");
        // 100 KB without a line end: closed long before all of it is kept.
        let _ = c.write_all(&vec![b'x'; 100_000]);
        let rest = read_to_close(&mut c);
        assert!(rest.is_empty(), "{rest:?}");
        greenio::sleep(Duration::from_millis(20));
        let errors = seen.errors.borrow();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].0, ErrorKind::InvalidData);
        assert!(errors[0].1.contains("1000"), "{}", errors[0].1);
        assert_eq!(seen.closes.get(), 1);
    });
}

/// Answers `! too long` and skips the record.
struct Lenient;

impl ChatHandler for Lenient {
    fn found_terminator(&mut self, cx: &mut ChatContext<'_>, rec: &[u8]) {
        let _ = cx.push(format!("{}\n", rec.len()).as_bytes());
    }
    fn record_too_long(&mut self, cx: &mut ChatContext<'_>) -> Overflow {
        let _ = cx.push(b"! too long\n");
        Overflow::Discard
    }
}

#[test]
fn a_record_over_the_limit_can_be_discarded_up_to_its_terminator() {
    util::run("record discard", || {
        let l = reactor::listen(any_port(), |_| AsyncChat::new(Lenient).max_record(100)).unwrap();
        let mut c = client(l.local_addr().unwrap());
        let mut msg = b"ab\n".to_vec();
        msg.extend(std::iter::repeat_n(b'y', 5000));
        msg.extend_from_slice(b"\ncd\n");
        c.write_all(&msg).unwrap();
        let want = b"2\n! too long\n2\n";
        assert_eq!(read_exactly(&mut c, want.len()), want);
    });
}

/// Doubles numbers, one per line.
struct Doubler;

impl ChatHandler for Doubler {
    fn found_terminator(&mut self, cx: &mut ChatContext<'_>, rec: &[u8]) {
        let n: u64 = std::str::from_utf8(rec).unwrap().parse().unwrap();
        let _ = cx.push(format!("{}\n", n * 2).as_bytes());
    }
}

#[test]
fn pipelined_commands_are_each_answered_in_order() {
    util::run("pipelined", || {
        let l = reactor::listen(any_port(), |_| AsyncChat::new(Doubler)).unwrap();
        let mut c = client(l.local_addr().unwrap());
        let mut req = String::new();
        let mut want = String::new();
        for i in 0..5000u64 {
            req.push_str(&format!("{i}\n"));
            want.push_str(&format!("{}\n", i * 2));
        }
        c.write_all(req.as_bytes()).unwrap(); // one barrage
        assert_eq!(
            String::from_utf8(read_exactly(&mut c, want.len())).unwrap(),
            want
        );
    });
}

// ----- producers --------------------------------------------------------------

/// Pushes and producers mixed, then closes.
struct Mixed;

impl Handler for Mixed {
    fn handle_connect(&mut self, cx: &mut Context<'_>) {
        let _ = cx.push(b"head|");
        let _ = cx.push_producer(IterProducer::new(
            vec![b"p1|".to_vec(), Vec::new(), b"p2|".to_vec()].into_iter(),
        ));
        let _ = cx.push(b"mid|");
        let _ = cx.push_producer(BytesProducer::with_chunk_size(
            util::pattern(9, 1 << 20),
            16 * 1024,
        ));
        let _ = cx.push(b"|tail");
        cx.close();
    }
}

#[test]
fn producers_are_delivered_in_fifo_order() {
    util::run("producer order", || {
        let l = reactor::listen(any_port(), |_| Mixed).unwrap();
        let mut c = client(l.local_addr().unwrap());
        let got = read_to_close(&mut c);
        let mut want = b"head|p1|p2|mid|".to_vec();
        want.extend(util::pattern(9, 1 << 20));
        want.extend_from_slice(b"|tail");
        assert_eq!(got.len(), want.len());
        assert!(got == want, "bytes out of order");
    });
}

/// A lazily computed 48 MB reply that counts what it produced.
struct Lazy(Rc<Cell<usize>>);

impl Handler for Lazy {
    fn handle_connect(&mut self, cx: &mut Context<'_>) {
        let produced = self.0.clone();
        let mut i = 0u32;
        let _ = cx.push_producer(move || {
            if i == 768 {
                return None;
            }
            i += 1;
            produced.set(produced.get() + 65536);
            Some(vec![(i % 251) as u8; 65536])
        });
        cx.close();
    }
}

#[test]
fn a_producer_is_drained_only_as_fast_as_the_peer_reads() {
    util::run("producer laziness", || {
        let produced = Rc::new(Cell::new(0));
        let p = produced.clone();
        let l = reactor::listen(any_port(), move |_| Lazy(p.clone())).unwrap();
        let mut c = client(l.local_addr().unwrap());
        // Not reading: the kernel's buffers fill, then production stops.
        greenio::sleep(Duration::from_millis(300));
        let early = produced.get();
        assert!(early > 0);
        assert!(
            early <= 24 << 20,
            "{early} bytes produced while the peer read nothing"
        );
        let got = read_to_close(&mut c);
        assert_eq!(got.len(), 768 * 65536);
        assert_eq!(produced.get(), 768 * 65536);
        for (k, chunk) in got.chunks(65536).enumerate() {
            let b = ((k + 1) % 251) as u8;
            assert!(chunk.iter().all(|&x| x == b), "chunk {k} out of order");
        }
    });
}

/// `big`: a 10 MB producer reply; anything else: echo. Records the most
/// bytes produced within one turn of the hub's loop (`turns` is advanced
/// once per turn by a ticker green thread).
struct BigOrEcho {
    buf: [u8; 4096],
    turns: Rc<Cell<usize>>,
    max_per_turn: Rc<Cell<usize>>,
}

impl Handler for BigOrEcho {
    fn handle_read(&mut self, cx: &mut Context<'_>) {
        while let Ok(n) = cx.recv(&mut self.buf) {
            if n == 0 {
                return;
            }
            if &self.buf[..n] == b"big" {
                let mut inner = BytesProducer::new(util::pattern(5, 10 << 20));
                let (turns, max) = (self.turns.clone(), self.max_per_turn.clone());
                let (mut turn, mut this_turn) = (usize::MAX, 0);
                let _ = cx.push_producer(move || {
                    let chunk = inner.more()?;
                    if turns.get() != turn {
                        turn = turns.get();
                        this_turn = 0;
                    }
                    this_turn += chunk.len();
                    max.set(max.get().max(this_turn));
                    Some(chunk)
                });
            } else {
                let _ = cx.push(&self.buf[..n]);
            }
        }
    }
}

#[test]
fn a_10_mb_reply_does_not_starve_another_connection() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    const BIG: usize = 10 << 20;
    util::run("no starvation", || {
        // Counts turns of the hub's loop: a zero sleep ends after each poll.
        let turns = Rc::new(Cell::new(0usize));
        let max_per_turn = Rc::new(Cell::new(0usize));
        let (t, m) = (turns.clone(), max_per_turn.clone());
        let l = reactor::listen(any_port(), move |_| BigOrEcho {
            buf: [0; 4096],
            turns: t.clone(),
            max_per_turn: m.clone(),
        })
        .unwrap();
        let addr = l.local_addr().unwrap();
        let t = turns.clone();
        let ticker = greenio::spawn(move || loop {
            greenio::sleep(Duration::ZERO);
            t.set(t.get() + 1);
        });

        // The big reply is read as fast as possible by a plain OS thread,
        // so the kernel's buffers never slow the server down: only the
        // reactor's write budget can make it yield.
        let received = Arc::new(AtomicUsize::new(0));
        let rcv = received.clone();
        let (done_tx, done_rx) = greenio::sync::channel();
        let turns_at_start = turns.get();
        std::thread::spawn(move || {
            let mut big = std::net::TcpStream::connect(addr).unwrap();
            big.set_read_timeout(Some(LONG)).unwrap();
            big.write_all(b"big").unwrap();
            let mut got = Vec::with_capacity(BIG);
            let mut buf = vec![0u8; 256 * 1024];
            while got.len() < BIG {
                let n = big.read(&mut buf).unwrap();
                assert!(n > 0, "EOF before the whole reply");
                got.extend_from_slice(&buf[..n]);
                rcv.store(got.len(), Ordering::SeqCst);
            }
            done_tx.send(got).unwrap();
        });
        while received.load(Ordering::SeqCst) == 0 {
            greenio::sleep(Duration::from_millis(1));
        }

        // Meanwhile another client does round trips.
        let mut small = client(addr);
        for i in 0..5u8 {
            small.write_all(&[b'a' + i; 10]).unwrap();
            assert_eq!(read_exactly(&mut small, 10), [b'a' + i; 10]);
        }
        let at_echo_done = received.load(Ordering::SeqCst);
        let got = done_rx.recv_timeout(LONG).expect("the big reply arrives");
        let turns_during = turns.get() - turns_at_start;
        ticker.cancel();

        assert!(got == util::pattern(5, BIG), "the big reply changed");
        assert!(
            at_echo_done < BIG,
            "the echo waited for the whole 10 MB reply"
        );
        // Each run writes at most WRITE_BUDGET, and a connection runs at
        // most twice per turn (its event, its scheduled continuation): the
        // reply is produced in pieces, with the loop turning in between.
        // The reactor's private budget (256 KiB, conn_core.rs) and
        // BytesProducer's default chunk (16 KiB).
        const WRITE_BUDGET: usize = 256 * 1024;
        let chunk = 16 * 1024;
        assert!(
            max_per_turn.get() <= 2 * (WRITE_BUDGET + chunk),
            "{} bytes produced in one turn of the loop",
            max_per_turn.get()
        );
        assert!(
            turns_during >= BIG / (2 * (WRITE_BUDGET + chunk)),
            "only {turns_during} loop turns while 10 MB were sent"
        );
    });
}

// ----- errors -----------------------------------------------------------------

/// Echoes lines; panics on `boom`.
struct Fragile(Rc<Seen>);

impl ChatHandler for Fragile {
    fn found_terminator(&mut self, cx: &mut ChatContext<'_>, rec: &[u8]) {
        if rec == b"boom" {
            panic!("boom requested");
        }
        let _ = cx.push(rec);
        let _ = cx.push(b"\n");
    }
    fn handle_error(&mut self, _cx: &mut ChatContext<'_>, err: &std::io::Error) {
        self.0
            .errors
            .borrow_mut()
            .push((err.kind(), err.to_string()));
    }
    fn handle_close(&mut self, _cx: &mut ChatContext<'_>) {
        self.0.closes.set(self.0.closes.get() + 1);
    }
}

#[test]
fn a_handler_panic_closes_only_its_connection() {
    util::run("handler panic", || {
        let seen = Rc::new(Seen::default());
        let s = seen.clone();
        let l = reactor::listen(any_port(), move |_| AsyncChat::new(Fragile(s.clone()))).unwrap();
        let addr = l.local_addr().unwrap();
        let mut victim = client(addr);
        let mut other = client(addr);
        victim.write_all(b"hi\n").unwrap();
        assert_eq!(read_exactly(&mut victim, 3), b"hi\n");
        other.write_all(b"yo\n").unwrap();
        assert_eq!(read_exactly(&mut other, 3), b"yo\n");

        victim.write_all(b"boom\nnever answered\n").unwrap();
        assert!(read_to_close(&mut victim).is_empty());

        // The other connection and the listener are unharmed.
        other.write_all(b"still\n").unwrap();
        assert_eq!(read_exactly(&mut other, 6), b"still\n");
        let mut late = client(addr);
        late.write_all(b"new\n").unwrap();
        assert_eq!(read_exactly(&mut late, 4), b"new\n");

        let errors = seen.errors.borrow();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].1.contains("boom requested"), "{}", errors[0].1);
        assert_eq!(seen.closes.get(), 1, "only the victim was closed");
        assert_eq!(l.connections(), 2);
    });
}

/// Records errors and closes of a plain handler; echoes.
struct Watch {
    seen: Rc<Seen>,
    buf: [u8; 4096],
}

impl Handler for Watch {
    fn handle_read(&mut self, cx: &mut Context<'_>) {
        while let Ok(n) = cx.recv(&mut self.buf) {
            if n == 0 {
                return;
            }
            let _ = cx.push(&self.buf[..n]);
        }
    }
    fn handle_error(&mut self, _cx: &mut Context<'_>, err: &std::io::Error) {
        self.seen
            .errors
            .borrow_mut()
            .push((err.kind(), err.to_string()));
    }
    fn handle_close(&mut self, _cx: &mut Context<'_>) {
        self.seen.closes.set(self.seen.closes.get() + 1);
    }
}

#[test]
fn a_reset_is_an_event_and_the_server_keeps_serving() {
    util::run("reset", || {
        let seen = Rc::new(Seen::default());
        let s = seen.clone();
        let l = reactor::listen(any_port(), move |_| Watch {
            seen: s.clone(),
            buf: [0; 4096],
        })
        .unwrap();
        let addr = l.local_addr().unwrap();
        for _ in 0..3 {
            let c = client(addr);
            (&c).write_all(&util::pattern(2, 200_000)).unwrap();
            c.set_linger(Some(Duration::ZERO)).unwrap();
            drop(c); // RST with the echo unread
        }
        let mut ok = client(addr);
        ok.write_all(b"after").unwrap();
        assert_eq!(read_exactly(&mut ok, 5), b"after");
        // Bounded wait for the three closes to be delivered.
        for _ in 0..1000 {
            if seen.closes.get() == 3 {
                break;
            }
            greenio::sleep(Duration::from_millis(5));
        }
        assert_eq!(seen.closes.get(), 3);
        for (kind, msg) in seen.errors.borrow().iter() {
            assert!(
                matches!(kind, ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
                "{kind:?}: {msg}"
            );
        }
    });
}

#[test]
fn an_output_queue_over_its_limit_disconnects_the_slow_reader() {
    util::run("output limit", || {
        let seen = Rc::new(Seen::default());
        let handles: Rc<RefCell<Vec<Handle>>> = Rc::default();
        let (s, h) = (seen.clone(), handles.clone());
        struct Keep(Rc<Seen>, Rc<RefCell<Vec<Handle>>>);
        impl Handler for Keep {
            fn handle_connect(&mut self, cx: &mut Context<'_>) {
                cx.set_output_limit(256 * 1024);
                self.1.borrow_mut().push(cx.handle());
            }
            fn handle_error(&mut self, _cx: &mut Context<'_>, err: &std::io::Error) {
                self.0
                    .errors
                    .borrow_mut()
                    .push((err.kind(), err.to_string()));
            }
        }
        let l = reactor::listen(any_port(), move |_| Keep(s.clone(), h.clone())).unwrap();
        let _sleeper = client(l.local_addr().unwrap()); // never reads
        while handles.borrow().is_empty() {
            greenio::sleep(Duration::from_millis(1));
        }
        let handle = handles.borrow()[0].clone();
        let chunk = vec![b'q'; 16 * 1024];
        let mut pushed = 0usize;
        let err = loop {
            match handle.push(&chunk) {
                Ok(()) => pushed += chunk.len(),
                Err(e) => break e,
            }
            assert!(pushed < 256 << 20, "never over the limit");
            if pushed % (1 << 20) == 0 {
                greenio::yield_now(); // let the loop flush what it can
            }
        };
        assert_eq!(err.kind(), ErrorKind::OutOfMemory);
        assert!(handle.is_closed());
        assert_eq!(
            handle.push(b"more").unwrap_err().kind(),
            ErrorKind::NotConnected
        );
        greenio::sleep(Duration::from_millis(20));
        let errors = seen.errors.borrow();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, ErrorKind::OutOfMemory);
    });
}

#[test]
fn connect_refused_is_reported_to_the_handler() {
    util::run("connect refused", || {
        // A port that was free a moment ago.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let seen = Rc::new(Seen::default());
        struct Never(Rc<Seen>, Rc<Cell<bool>>);
        impl Handler for Never {
            fn handle_connect(&mut self, _cx: &mut Context<'_>) {
                self.1.set(true);
            }
            fn handle_error(&mut self, _cx: &mut Context<'_>, err: &std::io::Error) {
                self.0
                    .errors
                    .borrow_mut()
                    .push((err.kind(), err.to_string()));
            }
            fn handle_close(&mut self, _cx: &mut Context<'_>) {
                self.0.closes.set(self.0.closes.get() + 1);
            }
        }
        let connected = Rc::new(Cell::new(false));
        let h = reactor::connect(addr, Never(seen.clone(), connected.clone())).unwrap();
        for _ in 0..2000 {
            if seen.closes.get() == 1 {
                break;
            }
            greenio::sleep(Duration::from_millis(5));
        }
        assert_eq!(seen.closes.get(), 1);
        assert!(!connected.get());
        assert_eq!(seen.errors.borrow()[0].0, ErrorKind::ConnectionRefused);
        assert!(h.is_closed());
    });
}

// ----- interop with green threads ---------------------------------------------

/// Forwards each request line to a worker green thread through a channel
/// and pauses reading until the worker answered through the handle.
struct Delegate(greenio::sync::Sender<(Handle, Vec<u8>)>);

impl ChatHandler for Delegate {
    fn found_terminator(&mut self, cx: &mut ChatContext<'_>, rec: &[u8]) {
        cx.pause_reading(); // one request at a time
        self.0.send((cx.handle(), rec.to_vec())).unwrap(); // wakes the worker
    }
}

#[test]
fn a_handler_wakes_a_green_thread_and_a_green_thread_answers_through_a_handle() {
    util::run("interop", || {
        let (tx, rx) = greenio::sync::channel::<(Handle, Vec<u8>)>();
        let worker = greenio::spawn(move || {
            let mut served = 0;
            while let Ok((h, req)) = rx.recv() {
                greenio::sleep(Duration::from_millis(2)); // slow work, parked
                let n: u32 = std::str::from_utf8(&req).unwrap().parse().unwrap();
                h.push(format!("{}\n", n * n).as_bytes()).unwrap();
                h.resume_reading();
                served += 1;
            }
            served
        });
        let l = reactor::listen(any_port(), move |_| AsyncChat::new(Delegate(tx.clone()))).unwrap();
        let mut c = client(l.local_addr().unwrap());
        // Twenty pipelined requests: the handler takes them one by one,
        // resuming from what it buffered each time the worker answers.
        let req: String = (0..20).map(|i| format!("{i}\n")).collect();
        c.write_all(req.as_bytes()).unwrap();
        let want: String = (0..20u32).map(|i| format!("{}\n", i * i)).collect();
        assert_eq!(
            String::from_utf8(read_exactly(&mut c, want.len())).unwrap(),
            want
        );
        c.shutdown(Shutdown::Write).unwrap();
        assert!(read_to_close(&mut c).is_empty());
        // The connection's handler is gone with its sender; the listener's
        // acceptor holds the last one.
        l.close();
        drop(l);
        let served = greenio::timeout(LONG, || worker.join().unwrap()).expect("worker ends");
        assert_eq!(served, 20);
    });
}

// ----- the echo protocol, in-process and through the example -------------------

/// The echo handler of `examples/echo_callback.rs`.
struct Echo {
    buf: [u8; 4096],
}

impl Handler for Echo {
    fn handle_read(&mut self, cx: &mut Context<'_>) {
        while let Ok(n) = cx.recv(&mut self.buf) {
            if n == 0 {
                return;
            }
            let _ = cx.push(&self.buf[..n]);
        }
    }
}

#[test]
fn echo_protocol_against_an_in_process_reactor_echo() {
    // The server runs on its own OS thread; std clients on the test thread.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = greenio::sync::channel::<()>();
    let server = std::thread::spawn(move || {
        greenio::run(move || {
            let l = reactor::listen(any_port(), |_| Echo { buf: [0; 4096] }).unwrap();
            addr_tx.send(l.local_addr().unwrap()).unwrap();
            // Parked on a channel fed by a plain OS thread: the hub keeps
            // serving the reactor meanwhile.
            let _ = stop_rx.recv();
            l.shutdown(Duration::from_secs(1));
            l.connections()
        })
    });
    let addr = addr_rx.recv_timeout(LONG).expect("server started");
    for (name, body) in echo_protocol::ALL {
        eprintln!("echo protocol: {name}");
        body(addr);
    }
    stop_tx.send(()).unwrap();
    assert_eq!(server.join().unwrap(), 0, "every connection closed");
}

/// One test body, two servers: the green-thread `echo` and the callback
/// `echo_callback` examples pass the same echo protocol tests.
#[test]
fn echo_protocol_against_the_green_and_the_callback_examples() {
    for name in ["echo", "echo_callback"] {
        let server = Example::start_any_port(name);
        for (test, body) in echo_protocol::ALL {
            eprintln!("{name}: {test}");
            body(server.addr);
        }
    }
}

#[test]
fn the_echo_callback_example_stops_on_sigterm_with_exit_code_0() {
    let mut server = Example::start_any_port("echo_callback");
    let mut open = std::net::TcpStream::connect(server.addr).unwrap();
    open.set_read_timeout(Some(LONG)).unwrap();
    open.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    open.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
    server.signal(libc::SIGTERM);
    let st = server.wait_exit();
    assert_eq!(st.code(), Some(0), "{st:?}");
    assert!(
        server.rest_of_stdout().is_empty(),
        "exactly one line on stdout"
    );
    match open.read(&mut b) {
        Ok(n) => assert_eq!(n, 0, "the open connection was closed"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
    }
    assert!(std::net::TcpStream::connect(server.addr).is_err());
}

#[test]
fn the_callback_examples_show_help_and_reject_bad_arguments() {
    for (name, default) in [
        ("echo_callback", "127.0.0.1:7000"),
        ("chat_callback", "127.0.0.1:7001"),
    ] {
        let bin = util::example_binary(name);
        let out = std::process::Command::new(&bin)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name} --help");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("--listen") && text.contains(default),
            "{name}: {text}"
        );
        let out = std::process::Command::new(&bin)
            .arg("--bogus")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name} --bogus");
        // A port in use is an error, not a hang.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let out = std::process::Command::new(&bin)
            .args(["--listen", &addr])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{name} on a taken port");
        assert!(String::from_utf8_lossy(&out.stderr).contains("in use"));
    }
}

// ----- the chat protocol through chat_callback ----------------------------------

/// One test per rule of the chat protocol, each against a fresh
/// `chat_callback` server: the same bodies `examples/chat.rs` is tested
/// with.
mod chat_callback {
    use super::chat_protocol;
    use super::util::Example;

    macro_rules! protocol_tests {
        ($($name:ident),* $(,)?) => {
            $(
                #[test]
                fn $name() {
                    let server = Example::start_any_port("chat_callback");
                    chat_protocol::$name(server.addr);
                }
            )*
        };
    }

    protocol_tests!(
        greeting,
        nick_join_rename,
        nick_taken_and_invalid,
        broadcast_not_echoed,
        text_before_nick,
        who_is_sorted,
        quit_says_bye_and_others_see_left,
        abrupt_disconnect_is_left,
        unknown_command,
        invalid_utf8_keeps_the_connection,
        line_too_long_is_discarded,
        crlf_and_pipelined_lines,
        order_under_8_concurrent_senders,
        slow_receiver_is_disconnected,
    );

    #[test]
    fn every_protocol_rule_has_a_test_here() {
        // Keeps this list and chat_protocol::ALL in step.
        assert_eq!(chat_protocol::ALL.len(), 14);
    }

    #[test]
    fn sigint_stops_it_with_exit_code_0() {
        let mut server = Example::start_any_port("chat_callback");
        let _c = chat_protocol::Client::with_nick(server.addr, "zed");
        server.signal(libc::SIGINT);
        let st = server.wait_exit();
        assert_eq!(st.code(), Some(0), "{st:?}");
    }
}

// ----- out of descriptors ------------------------------------------------------

const CHILD_ENV: &str = "GREENIO_REACTOR_CHILD";

#[test]
fn out_of_descriptors_the_listener_backs_off_and_accepts_again() {
    util::in_child(
        CHILD_ENV,
        "out_of_descriptors_the_listener_backs_off_and_accepts_again",
        || {
            let lim = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            // SAFETY: a valid rlimit; lowering our own limit is always allowed.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
            greenio::run(|| {
                struct Counting(Rc<Cell<u32>>);
                impl reactor::Accept for Counting {
                    type Handler = Echo;
                    fn handle_accept(&mut self, _peer: SocketAddr) -> Option<Echo> {
                        Some(Echo { buf: [0; 4096] })
                    }
                    fn handle_error(&mut self, err: &std::io::Error) {
                        assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
                        self.0.set(self.0.get() + 1);
                    }
                }
                let errors = Rc::new(Cell::new(0));
                let l = reactor::listen(any_port(), Counting(errors.clone())).unwrap();
                // The handshake completes in the kernel's backlog; the
                // reactor has not run yet (this green thread has not parked).
                let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
                let mut c = TcpStream::from_std(c).unwrap();
                c.set_read_timeout(Some(LONG)).unwrap();

                let mut hog = Vec::new();
                loop {
                    match std::fs::File::open("/dev/null") {
                        Ok(f) => hog.push(f),
                        Err(e) => {
                            assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                            break;
                        }
                    }
                }
                // accept fails, the listener backs off and retries (bounded
                // wait: never a spin, never a give-up).
                for _ in 0..2000 {
                    if errors.get() >= 3 {
                        break;
                    }
                    greenio::sleep(Duration::from_millis(5));
                }
                assert!(errors.get() >= 3, "{} accept errors", errors.get());
                assert_eq!(l.connections(), 0);

                drop(hog);
                c.write_all(b"back").unwrap();
                assert_eq!(read_exactly(&mut c, 4), b"back");
                assert_eq!(l.connections(), 1);
            });
        },
    );
}
