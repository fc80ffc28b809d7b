//! async_bridge: green-thread handlers calling an async library that needs
//! tokio's reactor. A tokio current-thread runtime runs on a side OS
//! thread; each green thread hands it a task and waits for the task's
//! `JoinHandle` with `greenio::block_on`, which parks only that green
//! thread until tokio's thread wakes it.
//!
//! The "async library" here is a tokio TCP client that asks an upstream
//! service (also on the tokio runtime, standing in for a database or an
//! HTTP API) to shout a line back in capitals. The front end is a plain
//! greenio line server: one green thread per connection, one upstream call
//! per line.
//!
//! Run it and poke it:
//!
//! ```text
//! cargo run --release --example async_bridge          # listening on 127.0.0.1:7004
//! nc 127.0.0.1 7004                                    # type hello, get HELLO
//! cargo run --release --example async_bridge -- --measure 20000
//! ```
//!
//! `--measure N` serves nothing: it times N calls of each kind and prints
//! the cost per call (what a bridge call adds to the work itself):
//!
//! - `os thread ping`: the green thread sends a number to a plain OS thread
//!   and `block_on`s the future the OS thread completes with the answer: a
//!   wakeup each way, without tokio.
//! - `tokio task`: `block_on(handle.spawn(async { n }))`: the hop to the
//!   tokio thread and the wakeup back.
//! - `tokio fetch`: one request/reply with the upstream over loopback,
//!   through the tokio client (its connection kept across calls).
//!
//! Options: `--listen ADDR` (port 0 picks a free port), `--measure N`.
//! SIGINT/SIGTERM stop the server (exit 0).

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use greenio::net::{Line, LineReader, Server, TcpStream};
use greenio::signal::{Signals, SIGINT, SIGTERM};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[path = "support/cli.rs"]
mod cli;

/// The longest line the front end accepts.
const MAX_LINE: usize = 4096;
/// How long open connections may go on after SIGINT/SIGTERM.
const GRACE: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------
// The tokio side: a runtime on its own OS thread, an upstream service, and
// an async client for it.

/// A tokio current-thread runtime driven by a side OS thread until dropped.
struct TokioThread {
    handle: tokio::runtime::Handle,
    stop: Arc<Mailbox<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokioThread {
    fn start() -> io::Result<TokioThread> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        let stop = Mailbox::new();
        let stopped = stop.recv();
        let thread = std::thread::Builder::new()
            .name("tokio".into())
            .spawn(move || {
                // The runtime's reactor and timers run while this waits.
                rt.block_on(stopped);
            })?;
        Ok(TokioThread {
            handle,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for TokioThread {
    fn drop(&mut self) {
        self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The upstream service: answers every line with the line in capitals.
async fn upstream_service(listener: tokio::net::TcpListener) {
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let (r, mut w) = conn.into_split();
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let reply = format!("{}\n", line.to_uppercase());
                if w.write_all(reply.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// The async client library: one connection to the upstream, one request
/// at a time. It lives on the tokio runtime and is used from green threads
/// only through `call`.
struct Client {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: SocketAddr) -> io::Result<Client> {
        let (r, writer) = tokio::net::TcpStream::connect(addr).await?.into_split();
        Ok(Client {
            lines: BufReader::new(r).lines(),
            writer,
        })
    }

    async fn shout(&mut self, text: String) -> io::Result<String> {
        self.writer
            .write_all(format!("{text}\n").as_bytes())
            .await?;
        self.lines
            .next_line()
            .await?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "upstream closed"))
    }
}

// ---------------------------------------------------------------------------
// The bridge: run an async call on the tokio thread, park this green thread
// until it is done.

/// Runs `fut` on the tokio runtime and waits for it on this green thread.
/// Other green threads of the hub run meanwhile; cancelling or timing out
/// this green thread drops the `JoinHandle` (the tokio task runs on).
fn on_tokio<T: Send + 'static>(
    rt: &tokio::runtime::Handle,
    fut: impl Future<Output = T> + Send + 'static,
) -> io::Result<T> {
    greenio::block_on(rt.spawn(fut)).map_err(io::Error::other)
}

/// One front-end connection: a line in, the upstream's answer out. Each
/// connection has its own upstream client, moved to the tokio thread for
/// each call and back.
fn serve_conn(
    conn: TcpStream,
    peer: SocketAddr,
    rt: &tokio::runtime::Handle,
    upstream: SocketAddr,
) {
    let mut client = match on_tokio(rt, Client::connect(upstream)).and_then(|r| r) {
        Ok(c) => Some(c),
        Err(e) => return log::warn!("{peer}: cannot reach the upstream: {e}"),
    };
    let mut lines = LineReader::new(&conn, MAX_LINE);
    loop {
        let text = match lines.next_line() {
            Ok(Some(Line::Complete(l))) => String::from_utf8_lossy(l).into_owned(),
            Ok(Some(Line::TooLong)) => {
                if (&conn).write_all(b"error: line too long\n").is_err() {
                    return;
                }
                continue;
            }
            Ok(None) | Err(_) => return,
        };
        let mut c = client.take().expect("the client is back after every call");
        let reply = on_tokio(rt, async move {
            let reply = c.shout(text).await;
            (c, reply)
        });
        let answer = match reply {
            Ok((c, Ok(answer))) => {
                client = Some(c);
                answer
            }
            Ok((_, Err(e))) | Err(e) => return log::warn!("{peer}: upstream call failed: {e}"),
        };
        if (&conn).write_all(format!("{answer}\n").as_bytes()).is_err() {
            return;
        }
    }
}

fn main() -> ExitCode {
    let opts = cli::parse_or_exit("async_bridge", USAGE, Options::parse);
    cli::init_logger();
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("async_bridge: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: Options) -> io::Result<()> {
    let tokio_thread = TokioThread::start()?;
    let rt = tokio_thread.handle.clone();
    // block_on outside green threads blocks this OS thread, like any
    // executor's block_on.
    let upstream = greenio::block_on(rt.spawn(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(upstream_service(listener));
        Ok::<_, io::Error>(addr)
    }))
    .map_err(io::Error::other)??;
    if let Some(n) = opts.measure {
        return greenio::run(move || measure(&rt, upstream, n));
    }
    greenio::run(move || -> io::Result<()> {
        let signals = Signals::new(&[SIGINT, SIGTERM])?;
        let server = Server::builder()
            .name("async_bridge")
            .bind(opts.listen.as_str(), move |conn, peer| {
                serve_conn(conn, peer, &rt, upstream)
            })?;
        server.handle().stop_on(signals, GRACE);
        println!("listening on {}", server.local_addr()?);
        io::stdout().flush()?;
        server.serve()
    })
}

// ---------------------------------------------------------------------------
// --measure: what one bridge call costs.

fn measure(rt: &tokio::runtime::Handle, upstream: SocketAddr, n: usize) -> io::Result<()> {
    // A neighbour green thread keeps the hub honest: it must keep running
    // while the measuring green thread is parked.
    let ticks = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let t2 = ticks.clone();
    let neighbour = greenio::spawn(move || loop {
        t2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        greenio::sleep(Duration::from_millis(1));
    });

    // 1. a plain OS thread completes each future: the bare wakeup
    let requests = Mailbox::new();
    let replies = Mailbox::new();
    let (rq, rp) = (requests.clone(), replies.clone());
    let echo = std::thread::spawn(move || {
        while let Some(v) = rq.recv_blocking() {
            rp.send(Some(v));
        }
    });
    let per_call = time(n, |i| {
        requests.send(Some(i as u64));
        assert_eq!(greenio::block_on(replies.recv()), Some(i as u64));
    });
    requests.send(None);
    let _ = greenio::unblock(move || echo.join());
    report("os thread ping", per_call, n);

    // 2. a tokio task that does nothing: the hop there and back
    let per_call = time(n, |i| {
        assert_eq!(on_tokio(rt, async move { i }).unwrap(), i);
    });
    report("tokio task", per_call, n);

    // 3. a request to the upstream through the async client
    let mut client = Some(on_tokio(rt, Client::connect(upstream))??);
    let per_call = time(n, |_| {
        let mut c = client.take().unwrap();
        let (c, reply) = on_tokio(rt, async move {
            let r = c.shout("ping".into()).await;
            (c, r)
        })
        .unwrap();
        assert_eq!(reply.unwrap(), "PING");
        client = Some(c);
    });
    report("tokio fetch", per_call, n);

    neighbour.cancel();
    let _ = neighbour.join();
    log::info!(
        "the neighbour green thread ticked {} times meanwhile",
        ticks.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}

/// Runs `f` `n` times (after a tenth as many warm-up calls) and returns the
/// time per call.
fn time(n: usize, mut f: impl FnMut(usize)) -> Duration {
    for i in 0..n.div_ceil(10) {
        f(i);
    }
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    t.elapsed() / n.max(1) as u32
}

fn report(what: &str, per_call: Duration, n: usize) {
    println!(
        "{what:<16} {:>8.2} us/call  ({n} calls)",
        per_call.as_secs_f64() * 1e6
    );
}

/// A one-way queue whose receiving end is a future (for the green thread)
/// or a blocking call (for the OS thread): the smallest thing a plain OS
/// thread can complete.
struct Mailbox<T> {
    state: Mutex<(VecDeque<T>, Option<Waker>)>,
    cond: std::sync::Condvar,
}

impl<T> Mailbox<T> {
    fn new() -> Arc<Mailbox<T>> {
        Arc::new(Mailbox {
            state: Mutex::new((VecDeque::new(), None)),
            cond: std::sync::Condvar::new(),
        })
    }

    fn send(&self, v: T) {
        let waker = {
            let mut s = self.state.lock().unwrap();
            s.0.push_back(v);
            s.1.take()
        };
        self.cond.notify_one();
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn recv_blocking(&self) -> T {
        let mut s = self.state.lock().unwrap();
        loop {
            if let Some(v) = s.0.pop_front() {
                return v;
            }
            s = self.cond.wait(s).unwrap();
        }
    }

    fn recv(self: &Arc<Self>) -> MailboxRecv<T> {
        MailboxRecv(self.clone())
    }
}

struct MailboxRecv<T>(Arc<Mailbox<T>>);

impl<T> Future for MailboxRecv<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut s = self.0.state.lock().unwrap();
        match s.0.pop_front() {
            Some(v) => Poll::Ready(v),
            None => {
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The command line; nothing greenio-specific below.

const USAGE: &str = "\
usage: async_bridge [--listen ADDR] [--measure N]

  --listen ADDR    address to listen on (default 127.0.0.1:7004; port 0 picks a free port)
  --measure N      serve nothing: time N bridge calls of each kind, print the cost per call
  -h, --help       this text

Each line a client sends goes to an upstream service through a tokio client
on a side thread; the reply comes back in capitals.
Prints `listening on IP:PORT` once it accepts; SIGINT/SIGTERM stop it (exit 0).
Log filter from GREENIO_LOG or RUST_LOG (default warn).";

struct Options {
    listen: String,
    measure: Option<usize>,
}

impl Options {
    /// The options, or `None` for `--help`.
    fn parse(args: &mut lexopt::Parser) -> Result<Option<Options>, lexopt::Error> {
        use lexopt::prelude::*;
        let mut opts = Options {
            listen: "127.0.0.1:7004".to_string(),
            measure: None,
        };
        while let Some(arg) = args.next()? {
            match arg {
                Short('h') | Long("help") => return Ok(None),
                Long("listen") => opts.listen = args.value()?.string()?,
                Long("measure") => opts.measure = Some(cli::positive("--measure", args.value()?)?),
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(Some(opts))
    }
}
