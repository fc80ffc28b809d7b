//! The chat protocol of issue 5 as test bodies that take the server's
//! address: one body, two servers (`examples/chat.rs` with green threads,
//! `examples/chat_callback.rs` with the reactor). Each function asserts one
//! rule of the protocol through real loopback sockets, with plain
//! `std::net` clients (and OS threads where clients act at once).
//!
//! Include it with `#[path = "util/chat_protocol.rs"] mod chat_protocol;`
//! and call every function in [`ALL`] against a fresh server, e.g.
//! `chat_protocol::greeting(server.addr)`. Nicks are unique within a
//! function, so one server per function is enough (and no two functions
//! share a server).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bound on any single read: a test fails instead of hanging.
pub const READ_LIMIT: Duration = Duration::from_secs(30);

/// A protocol test body: takes the server's address, panics on failure.
pub type Body = fn(SocketAddr);

/// Every protocol test, by name.
pub const ALL: &[(&str, Body)] = &[
    ("greeting", greeting),
    ("nick_join_rename", nick_join_rename),
    ("nick_taken_and_invalid", nick_taken_and_invalid),
    ("broadcast_not_echoed", broadcast_not_echoed),
    ("text_before_nick", text_before_nick),
    ("who_is_sorted", who_is_sorted),
    (
        "quit_says_bye_and_others_see_left",
        quit_says_bye_and_others_see_left,
    ),
    ("abrupt_disconnect_is_left", abrupt_disconnect_is_left),
    ("unknown_command", unknown_command),
    (
        "invalid_utf8_keeps_the_connection",
        invalid_utf8_keeps_the_connection,
    ),
    ("line_too_long_is_discarded", line_too_long_is_discarded),
    ("crlf_and_pipelined_lines", crlf_and_pipelined_lines),
    (
        "order_under_8_concurrent_senders",
        order_under_8_concurrent_senders,
    ),
    (
        "slow_receiver_is_disconnected",
        slow_receiver_is_disconnected,
    ),
];

/// A line-oriented chat client.
pub struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    /// Connects and reads the greeting (which must start with `* `).
    pub fn connect(addr: SocketAddr) -> Client {
        let mut c = Client::connect_raw(addr);
        let g = c.line();
        assert!(
            g.starts_with("* "),
            "greeting should start with `* `: {g:?}"
        );
        c
    }

    /// Connects without reading anything.
    pub fn connect_raw(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).expect("connect to the chat server");
        s.set_read_timeout(Some(READ_LIMIT)).unwrap();
        s.set_nodelay(true).unwrap();
        let w = s.try_clone().unwrap();
        Client {
            r: BufReader::new(s),
            w,
        }
    }

    /// Connects, sets `nick`, checks the answer.
    pub fn with_nick(addr: SocketAddr, nick: &str) -> Client {
        let mut c = Client::connect(addr);
        c.send(&format!("/nick {nick}"));
        c.expect(&format!("* you are now {nick}"));
        c
    }

    /// Sends one line (LF added).
    pub fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes());
    }

    /// Sends raw bytes.
    pub fn send_bytes(&mut self, b: &[u8]) {
        self.w.write_all(b).expect("write to the chat server");
    }

    /// The next line, without its LF (and CR). Panics at EOF or timeout.
    pub fn line(&mut self) -> String {
        let mut l = String::new();
        match self.r.read_line(&mut l) {
            Ok(0) => panic!("unexpected EOF from the chat server"),
            Ok(_) => {}
            Err(e) => panic!("reading from the chat server: {e}"),
        }
        assert!(l.ends_with('\n'), "line without LF: {l:?}");
        l.pop();
        if l.ends_with('\r') {
            l.pop();
        }
        l
    }

    /// Asserts the next line is `want`.
    pub fn expect(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got, want);
    }

    /// Reads until a line equal to `want`, skipping others (bounded).
    pub fn expect_eventually(&mut self, want: &str) -> Vec<String> {
        let mut skipped = Vec::new();
        loop {
            let l = self.line();
            if l == want {
                return skipped;
            }
            skipped.push(l);
            assert!(skipped.len() < 100_000, "never saw {want:?}");
        }
    }

    /// Asserts the server closes the connection (EOF or reset), reading at
    /// most a few stray lines first.
    pub fn expect_closed(&mut self) {
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + READ_LIMIT;
        loop {
            match self.r.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
                Err(e) => panic!("waiting for the server to close: {e}"),
            }
            assert!(Instant::now() < deadline, "the server did not close");
        }
    }

    /// The underlying stream (to shut it down, set options...).
    pub fn stream(&self) -> &TcpStream {
        &self.w
    }
}

/// On connect the server greets with a line starting with `* `.
pub fn greeting(addr: SocketAddr) {
    let mut c = Client::connect_raw(addr);
    let g = c.line();
    assert!(g.starts_with("* "), "{g:?}");
}

/// First nick: `* you are now NAME`, others see `* NAME joined`; rename:
/// others see `* OLD is now NAME`.
pub fn nick_join_rename(addr: SocketAddr) {
    let mut alice = Client::with_nick(addr, "alice");
    let mut bob = Client::with_nick(addr, "bob");
    alice.expect("* bob joined");
    bob.send("/nick bobby");
    bob.expect("* you are now bobby");
    alice.expect("* bob is now bobby");
    // Users without a nick see nothing of it.
    let mut anon = Client::connect(addr);
    let mut carol = Client::with_nick(addr, "carol");
    alice.expect("* carol joined");
    bob.expect("* carol joined");
    anon.send("/who");
    anon.expect("* users: alice, bobby, carol");
    carol.send("/who");
    carol.expect("* users: alice, bobby, carol");
}

/// `! nick NAME is taken`, `! invalid nick` for bad characters, empty,
/// and over 32 characters; 32 characters is fine.
pub fn nick_taken_and_invalid(addr: SocketAddr) {
    let _dave = Client::with_nick(addr, "dave");
    let mut c = Client::connect(addr);
    c.send("/nick dave");
    c.expect("! nick dave is taken");
    for bad in [
        "/nick",
        "/nick bad!name",
        "/nick two words",
        "/nick caf\u{e9}",
    ] {
        c.send(bad);
        c.expect("! invalid nick");
    }
    let long = "x".repeat(33);
    c.send(&format!("/nick {long}"));
    c.expect("! invalid nick");
    let ok = "Ab_-9".repeat(6) + "zz"; // 32 characters
    assert_eq!(ok.len(), 32);
    c.send(&format!("/nick {ok}"));
    c.expect(&format!("* you are now {ok}"));
}

/// A plain line goes to everyone else with a nick as `<NAME> text`, and is
/// not echoed to the sender.
pub fn broadcast_not_echoed(addr: SocketAddr) {
    let mut a = Client::with_nick(addr, "ann");
    let mut b = Client::with_nick(addr, "ben");
    a.expect("* ben joined");
    let mut c = Client::with_nick(addr, "cat");
    a.expect("* cat joined");
    b.expect("* cat joined");
    let mut nobody = Client::connect(addr);

    a.send("hello there, friends");
    b.expect("<ann> hello there, friends");
    c.expect("<ann> hello there, friends");
    // Not echoed: the next thing the sender reads is its /who answer.
    a.send("/who");
    a.expect("* users: ann, ben, cat");
    // A client without a nick does not receive messages.
    nobody.send("/who");
    nobody.expect("* users: ann, ben, cat");
}

/// Text before a nick is refused.
pub fn text_before_nick(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    c.send("hello?");
    c.expect("! set a nick first: /nick NAME");
}

/// `/who` lists every nick, sorted.
pub fn who_is_sorted(addr: SocketAddr) {
    let _z = Client::with_nick(addr, "zoe");
    let _a = Client::with_nick(addr, "abe");
    let mut m = Client::with_nick(addr, "mia");
    m.send("/who");
    m.expect("* users: abe, mia, zoe");
}

/// `/quit`: `* bye`, the server closes, the others see `* NAME left`.
pub fn quit_says_bye_and_others_see_left(addr: SocketAddr) {
    let mut stay = Client::with_nick(addr, "stay");
    let mut go = Client::with_nick(addr, "go");
    stay.expect("* go joined");
    go.send("/quit");
    go.expect("* bye");
    go.expect_closed();
    stay.expect("* go left");
    stay.send("/who");
    stay.expect("* users: stay");
}

/// An abrupt disconnect also gives `* NAME left`, and the nick is free
/// again.
pub fn abrupt_disconnect_is_left(addr: SocketAddr) {
    let mut stay = Client::with_nick(addr, "keeper");
    let gone = Client::with_nick(addr, "runner");
    stay.expect("* runner joined");
    drop(gone);
    stay.expect("* runner left");
    let _again = Client::with_nick(addr, "runner");
    stay.expect("* runner joined");
}

/// An unknown command: `! unknown command /x`.
pub fn unknown_command(addr: SocketAddr) {
    let mut c = Client::with_nick(addr, "cmd");
    c.send("/dance");
    c.expect("! unknown command /dance");
    c.send("/dance with me");
    c.expect("! unknown command /dance");
}

/// Invalid UTF-8: `! invalid utf-8`, the line is dropped, the connection
/// stays.
pub fn invalid_utf8_keeps_the_connection(addr: SocketAddr) {
    let mut a = Client::with_nick(addr, "utfa");
    let mut b = Client::with_nick(addr, "utfb");
    a.expect("* utfb joined");
    a.send_bytes(b"caf\xe9 \xff\xfe\n");
    a.expect("! invalid utf-8");
    a.send("still here");
    b.expect("<utfa> still here"); // the bad line never reached b
}

/// A line over 4096 bytes: `! line too long`, the rest of the line is
/// discarded, the connection stays; also for a line of megabytes sent in
/// pieces.
pub fn line_too_long_is_discarded(addr: SocketAddr) {
    let mut a = Client::with_nick(addr, "longa");
    let mut b = Client::with_nick(addr, "longb");
    a.expect("* longb joined");

    let ok = "y".repeat(4000);
    a.send(&ok);
    b.expect(&format!("<longa> {ok}"));

    a.send(&"x".repeat(5000));
    a.expect("! line too long");
    a.send("after the long line");
    b.expect("<longa> after the long line");

    // 8 MiB without a newline, in pieces, then the end of the line.
    let piece = vec![b'z'; 64 * 1024];
    for _ in 0..128 {
        a.send_bytes(&piece);
    }
    a.send_bytes(b"tail of it\n");
    a.expect("! line too long");
    a.send("/who");
    a.expect("* users: longa, longb");
    a.send("fine again");
    b.expect("<longa> fine again");
}

/// A trailing CR is stripped; several lines in one packet are each
/// handled, in order.
pub fn crlf_and_pipelined_lines(addr: SocketAddr) {
    let mut a = Client::with_nick(addr, "pipa");
    let mut b = Client::with_nick(addr, "pipb");
    a.expect("* pipb joined");
    a.send_bytes(b"one\r\ntwo\nthree\r\n/who\r\n/nick pipz\n/dance\n");
    b.expect("<pipa> one");
    b.expect("<pipa> two");
    b.expect("<pipa> three");
    a.expect("* users: pipa, pipb");
    a.expect("* you are now pipz");
    a.expect("! unknown command /dance");
    b.expect("* pipa is now pipz");
}

/// Eight senders at once: every receiver gets each sender's messages in
/// the order sent, none lost.
pub fn order_under_8_concurrent_senders(addr: SocketAddr) {
    const SENDERS: usize = 8;
    const EACH: usize = 300;
    let mut rx = Client::with_nick(addr, "listener");
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = std::sync::Arc::new(std::sync::Mutex::new(go_rx));
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let go = go_rx.clone();
        senders.push(std::thread::spawn(move || {
            let mut c = Client::with_nick(addr, &format!("s{s}"));
            // Wait until everyone joined, then send as fast as possible.
            go.lock().unwrap().recv().unwrap();
            let mut batch = String::new();
            for n in 0..EACH {
                batch.push_str(&format!("msg {n} from s{s}\n"));
                if n % 50 == 49 {
                    c.send_bytes(batch.as_bytes());
                    batch.clear();
                }
            }
            c.send_bytes(batch.as_bytes());
            c // keep the connection open until the listener has everything
        }));
    }
    for _ in 0..SENDERS {
        let l = rx.line();
        assert!(l.ends_with(" joined"), "{l:?}");
    }
    for _ in 0..SENDERS {
        go_tx.send(()).unwrap();
    }
    let mut next = [0usize; SENDERS];
    let mut got = 0;
    while got < SENDERS * EACH {
        let l = rx.line();
        let (who, text) = l
            .strip_prefix('<')
            .and_then(|r| r.split_once("> "))
            .unwrap_or_else(|| panic!("unexpected line {l:?}"));
        let s: usize = who[1..].parse().unwrap();
        assert_eq!(text, format!("msg {} from s{s}", next[s]), "from {who}");
        next[s] += 1;
        got += 1;
    }
    for h in senders {
        drop(h.join().unwrap());
    }
}

/// A receiver that stops reading is disconnected once its backlog passes
/// about 1 MiB; the others see `* NAME left` and keep getting every
/// message, in order.
pub fn slow_receiver_is_disconnected(addr: SocketAddr) {
    const LIMIT_BYTES: usize = 128 << 20; // give up sending after this
    let slow = Client::with_nick(addr, "slowpoke");
    let mut fast = Client::with_nick(addr, "speedy");
    let mut talker = Client::with_nick(addr, "talker");
    fast.expect("* talker joined");

    // The fast receiver reads everything on its own thread and publishes
    // how far it got: the talker never runs more than WINDOW lines ahead of
    // it, so on a busy machine the fast receiver's backlog stays far below
    // the server's 1 MiB limit while the slow one's grows past it.
    const WINDOW: usize = 128; // lines of ~1 KB
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = progress.clone();
    let (left_tx, left_rx) = mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut n = 0usize;
        let mut saw_left = false;
        loop {
            let l = fast.line();
            if l == "* slowpoke left" {
                saw_left = true;
                let _ = left_tx.send(());
                continue;
            }
            if l == "<talker> done" {
                return (n, saw_left);
            }
            let rest = l
                .strip_prefix("<talker> ")
                .unwrap_or_else(|| panic!("unexpected line {l:?}"));
            let (num, _) = rest.split_once(' ').expect("numbered line");
            assert_eq!(num.parse::<usize>().unwrap(), n, "lost or reordered");
            n += 1;
            seen.store(n, std::sync::atomic::Ordering::Release);
        }
    });

    let filler = "f".repeat(1000);
    let mut sent = 0usize;
    let mut n = 0usize;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut left = false;
    loop {
        while n >= progress.load(std::sync::atomic::Ordering::Acquire) + WINDOW {
            if left_rx.try_recv().is_ok() {
                left = true;
                break;
            }
            if reader.is_finished() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the fast receiver stalled at line {}",
                progress.load(std::sync::atomic::Ordering::Acquire)
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        if left {
            break;
        }
        let mut batch = String::new();
        for _ in 0..64 {
            batch.push_str(&format!("{n} {filler}\n"));
            n += 1;
        }
        talker.send_bytes(batch.as_bytes());
        sent += batch.len();
        if left_rx.try_recv().is_ok() {
            break;
        }
        assert!(
            sent < LIMIT_BYTES && Instant::now() < deadline,
            "the slow receiver was never disconnected ({sent} bytes sent)"
        );
    }
    talker.send("done");
    let (received, saw_left) = reader.join().expect("fast reader");
    assert!(saw_left);
    assert_eq!(received, n, "the fast receiver got every message");
    // The slow one is gone: after its buffers, EOF or a reset.
    let _ = slow.stream().shutdown(Shutdown::Write);
    let mut slow = slow;
    slow.expect_closed();
}
