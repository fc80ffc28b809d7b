//! echo_client: a load generator for echo servers, on one OS thread driving
//! mio directly, so that it measures the server and not a runtime of its own.
//!
//! Run it against any echo server on loopback:
//!
//! ```text
//! cargo build --release --examples
//! target/release/examples/peer_mio_echo --listen 127.0.0.1:7000 &
//! target/release/examples/echo_client --addr 127.0.0.1:7000 -c 100 --secs 5
//! # a fixed offered rate of 50,000 msg/s, with the server's CPU per message:
//! target/release/examples/echo_client --addr 127.0.0.1:7000 -c 100 --rate 50000 \
//!     --server-pid "$(pgrep -n peer_mio_echo)"
//! ```
//!
//! On a 2-core machine pin the server and the client apart
//! (`taskset -c 0 SERVER`, `taskset -c 1 echo_client ...`). Run with
//! `--help` for every option; `--json` prints one JSON line for a harness.
//!
//! # How it measures
//!
//! 1. **Connect**: `-c` connections, at most 128 opening at once, all within
//!    30 s. A connection counts once a first message (not measured) has made
//!    the round trip, which proves the server accepted it; so 10,000
//!    connections never overflow a listen backlog (`ulimit -n 20000` is
//!    enough for them).
//! 2. **Warm-up** (`--warmup`, default 1 s): load runs, nothing is counted.
//! 3. **Measured window** (`--secs`, default 10 s, or until every connection
//!    has had its `-t` messages): messages released in it are counted when
//!    their whole echo arrives before it ends; the server's CPU time comes from
//!    `/proc/PID/stat` read at both ends of the window.
//!
//! Two ways to offer load:
//!
//! - **Closed loop** (default): exactly one message in flight per connection;
//!   the next is sent as soon as the echo of the last is complete. Latency runs
//!   from the send to the last echoed byte. This gives the saturation figure.
//! - **Paced** (`--rate R`): a timerfd ticks every millisecond and each tick
//!   releases the messages due by then (R per second in all), dealt
//!   round-robin over the connections; a connection whose previous echo is
//!   still out pipelines the new message behind it. Latency runs from the
//!   message's *scheduled* release, not from when it was written, so a
//!   server (or client) that falls behind shows up in the figures instead of
//!   silently lowering the offered load (no coordinated omission). This gives
//!   the fair efficiency figure: CPU per message at a fixed rate.
//!
//! Every message is the same `-b` byte pattern; every echoed byte is checked
//! against it. A mismatch is counted as an error (the stream stays aligned,
//! so the connection goes on); end of stream, a reset or more bytes than were
//! sent count as an error and drop that connection. Nothing a server does
//! makes the client panic.
//!
//! # Output
//!
//! Connections established, messages measured, msg/s and MB/s (payload, each
//! way), latency p50/p99/p99.9/max in µs (from an HdrHistogram keeping 3
//! significant digits: within 0.1%), errors by kind, with `--server-pid` the server's CPU µs
//! per message (user and system), and the client's own CPU use. In paced mode
//! it also tells how late the client released its ticks: a lag far below the
//! reported latencies means the tail is the server's, not the client's (a
//! busy machine shows up here first).
//!
//! Exit status: 0 after a run, 1 if no connection could be made, 2 for a bad
//! command line.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

/// Usage text for `--help` and command-line errors.
const USAGE: &str = "\
usage: echo_client [options]

Load generator for an echo server (one thread, mio).
  --addr HOST:PORT   server address (default 127.0.0.1:7000)
  -c N               connections (default 100)
  -t N               messages per connection in the measured window
                     (default 0 = unbounded; --secs still bounds the run)
  -b N               bytes per message (default 64)
  --secs S           measured window in seconds (default 10; fractions allowed)
  --rate R           paced mode: R messages/s in all, released on a 1 ms tick
                     (default 0 = closed loop, one message in flight per connection)
  --warmup S         seconds of load before measuring (default 1)
  --server-pid PID   report the server's CPU time per message from /proc/PID/stat
  --json             print one JSON line instead of text
  -h, --help         this text";

/// Most connections opening at once (connecting, or waiting for the echo of
/// their first message): no more than `std::net`'s listen backlog of 128.
const MAX_CONNECTING: usize = 128;
/// Bound on the whole connect phase.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest measured window or warm-up accepted, in seconds.
const MAX_SECS: f64 = 3600.0;
/// Longest message accepted, in bytes.
const MAX_BYTES: usize = 16 << 20;
/// Size of the shared read buffer and (about) of the write pattern buffer.
const IO_CHUNK: usize = 64 * 1024;
/// Token of the paced mode's tick timer; connections use their index.
const TICK: Token = Token(usize::MAX);
/// The paced mode's tick.
const TICK_PERIOD: Duration = Duration::from_millis(1);

/// The command line, parsed.
#[derive(Debug, Clone)]
struct Options {
    /// Server address (`--addr`).
    addr: SocketAddr,
    /// Connections to open (`-c`).
    conns: usize,
    /// Measured messages per connection, 0 for no bound (`-t`).
    per_conn: u64,
    /// Bytes per message (`-b`).
    bytes: usize,
    /// Measured window (`--secs`).
    secs: Duration,
    /// Offered messages per second in paced mode, 0.0 for closed loop (`--rate`).
    rate: f64,
    /// Warm-up before the window (`--warmup`).
    warmup: Duration,
    /// Server process whose CPU time to report (`--server-pid`).
    server_pid: Option<u32>,
    /// Print one JSON line (`--json`).
    json: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            addr: SocketAddr::from(([127, 0, 0, 1], 7000)),
            conns: 100,
            per_conn: 0,
            bytes: 64,
            secs: Duration::from_secs(10),
            rate: 0.0,
            warmup: Duration::from_secs(1),
            server_pid: None,
            json: false,
        }
    }
}

/// Parses the command line: the options, or `None` for `-h`/`--help`.
fn parse_args(args: &mut lexopt::Parser) -> Result<Option<Options>, lexopt::Error> {
    use lexopt::prelude::*;
    /// The value of `name` as a number.
    fn number<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, lexopt::Error> {
        v.parse()
            .map_err(|_| format!("{name} {v}: not a valid number").into())
    }
    /// The value of `name` as seconds, up to [`MAX_SECS`].
    fn seconds(name: &str, v: &str, zero_ok: bool) -> Result<Duration, lexopt::Error> {
        let s: f64 = number(name, v)?;
        let min_ok = if zero_ok { s >= 0.0 } else { s > 0.0 };
        if !min_ok || s > MAX_SECS {
            return Err(format!(
                "{name} {v}: want {} to {MAX_SECS} seconds",
                if zero_ok { "0" } else { "more than 0" }
            )
            .into());
        }
        Ok(Duration::from_secs_f64(s))
    }
    let mut o = Options::default();
    while let Some(arg) = args.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("json") => o.json = true,
            Long("addr") => {
                let v = args.value()?.string()?;
                o.addr = v
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut addrs| addrs.next())
                    .ok_or_else(|| format!("--addr {v}: want HOST:PORT"))?;
            }
            Short('c') => {
                o.conns = number("-c", &args.value()?.string()?)?;
                if o.conns == 0 {
                    return Err("-c 0: want at least 1 connection".into());
                }
            }
            Short('t') => o.per_conn = number("-t", &args.value()?.string()?)?,
            Short('b') => {
                let v = args.value()?.string()?;
                o.bytes = number("-b", &v)?;
                if !(1..=MAX_BYTES).contains(&o.bytes) {
                    return Err(format!("-b {v}: want 1 to {MAX_BYTES} bytes").into());
                }
            }
            Long("secs") => o.secs = seconds("--secs", &args.value()?.string()?, false)?,
            Long("warmup") => o.warmup = seconds("--warmup", &args.value()?.string()?, true)?,
            Long("rate") => {
                let v = args.value()?.string()?;
                o.rate = number("--rate", &v)?;
                if !(0.0..=1e9).contains(&o.rate) {
                    return Err(format!("--rate {v}: want 0 to 1e9 msg/s").into());
                }
            }
            Long("server-pid") => {
                o.server_pid = Some(number("--server-pid", &args.value()?.string()?)?)
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(o))
}

/// Largest latency the histogram tells apart, in nanoseconds (an hour, the
/// longest run accepted); a longer one is counted as this.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;
/// Significant decimal digits the latency histogram keeps: a reported
/// percentile is within 0.1% of the true value.
const LATENCY_DIGITS: u8 = 3;

/// An empty latency histogram (nanoseconds, 1 ns to [`MAX_LATENCY_NS`], to
/// [`LATENCY_DIGITS`] significant digits).
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, LATENCY_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// The message pattern, and the buffer writes are taken from.
#[derive(Debug)]
struct Pattern {
    /// Bytes per message.
    len: usize,
    /// The pattern repeated at least twice and to about [`IO_CHUNK`] bytes,
    /// so a write of back-to-back messages starting at any offset in a
    /// message is one slice: byte `i` is the message's byte `i % len`.
    wire: Vec<u8>,
}

impl Pattern {
    /// The pattern for messages of `len` bytes: a sequence that does not
    /// repeat within 251 bytes, so shifted or reordered bytes do not match.
    fn new(len: usize) -> Self {
        let copies = (IO_CHUNK / len).max(2);
        let wire = (0..len * copies)
            .map(|i| ((i % len) * 7 % 251) as u8 ^ 0x5a)
            .collect();
        Pattern { len, wire }
    }

    /// Whether `data` matches the message's bytes from offset `off`.
    fn matches(&self, off: usize, data: &[u8]) -> bool {
        self.wire[off..off + data.len()] == *data
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A non-blocking connect is in progress.
    Connecting,
    /// Connected; the first message (not counted) is out, to learn that the
    /// server accepted the connection.
    Greeting,
    /// Connected; carries load.
    Ready,
}

/// One client connection.
#[derive(Debug)]
struct Conn {
    /// The socket, registered READABLE | WRITABLE, edge-triggered.
    stream: TcpStream,
    /// Connecting or ready.
    state: State,
    /// Release instants of the messages released and not yet wholly echoed,
    /// oldest first (the scheduled instants in paced mode).
    released: VecDeque<Instant>,
    /// Bytes of released messages not yet written.
    unsent: u64,
    /// Offset in the message of the next byte to write.
    write_off: usize,
    /// Offset in the message of the next byte expected back.
    read_off: usize,
    /// Bytes written and not yet echoed.
    outstanding: u64,
    /// Whether the message being received had a wrong byte.
    corrupt: bool,
    /// Messages released in the measured window (bounded by `-t`).
    measured: u64,
    /// False from a short write until the next WRITABLE edge.
    writable: bool,
}

/// Why a connection was dropped.
#[derive(Debug, PartialEq, Eq)]
enum DropReason {
    /// The server closed the connection.
    Eof,
    /// A read or write failed (reset, broken pipe, ...).
    Io,
    /// The server sent more bytes than it was sent.
    Extra,
}

/// Counters of one run.
#[derive(Debug)]
struct Stats {
    /// Latency of every measured message, in nanoseconds.
    hist: Histogram<u64>,
    /// Connects that failed or timed out.
    connect_errors: u64,
    /// Connections the server closed.
    eof_errors: u64,
    /// Connections dropped on a read or write error.
    io_errors: u64,
    /// Connections dropped because the server sent more than it was sent.
    extra_errors: u64,
    /// Echoed messages with at least one wrong byte.
    mismatches: u64,
}

/// CPU time of a process, in clock ticks.
#[derive(Debug, Clone, Copy)]
struct CpuTicks {
    /// User time.
    user: u64,
    /// System time.
    system: u64,
}

/// Reads utime and stime (fields 14 and 15) of `/proc/PID/stat`; they cover
/// every thread of the process, live or exited.
///
/// # Errors
///
/// Fails, naming the file, if it cannot be read or parsed.
fn server_cpu(pid: u32) -> io::Result<CpuTicks> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("--server-pid {pid}: {path}: {e}")))?;
    // The command name (field 2) may hold spaces and parentheses: the other
    // fields start after its last ')'.
    let rest = stat.rfind(')').map(|i| &stat[i + 1..]).unwrap_or("");
    let mut fields = rest.split_whitespace().skip(11); // field 3 is the first
    let mut next = || -> io::Result<u64> {
        fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::new(ErrorKind::InvalidData, format!("{path}: malformed")))
    };
    Ok(CpuTicks {
        user: next()?,
        system: next()?,
    })
}

/// Clock ticks per second, the unit of `/proc/PID/stat` times.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// CPU time (user plus system) this process has used.
fn own_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given and RUSAGE_SELF is valid.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } != 0 {
        return Duration::ZERO;
    }
    // SAFETY: getrusage returned 0, so it initialised `usage`.
    let usage = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// A periodic timer on a timerfd, for the paced mode's ticks: its wakeups
/// are not rounded to epoll_wait's millisecond timeouts.
#[derive(Debug)]
struct Ticker {
    /// The timerfd.
    fd: OwnedFd,
}

impl Ticker {
    /// Starts a timer firing every `period`, first after one period.
    fn new(period: Duration) -> io::Result<Self> {
        // SAFETY: timerfd_create takes no pointers.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let ts = libc::timespec {
            tv_sec: period.as_secs() as libc::time_t,
            tv_nsec: period.subsec_nanos() as libc::c_long,
        };
        let spec = libc::itimerspec {
            it_interval: ts,
            it_value: ts,
        };
        // SAFETY: `fd` is a timerfd, `spec` is valid for the call and a null
        // old-value pointer is allowed.
        if unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Ticker { fd })
    }

    /// Consumes the expirations so that the next one raises a new edge.
    fn clear(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: `buf` is valid for 8 bytes, the size a timerfd read needs;
        // the fd is non-blocking, so this returns at once either way.
        unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    }
}

/// Everything a run shares: the poll, the connections and the counters.
#[derive(Debug)]
struct Client {
    /// Parsed options.
    opts: Options,
    /// The event loop.
    poll: Poll,
    /// Connections by token; `None` once dropped or failed.
    conns: Vec<Option<Conn>>,
    /// Connections established.
    established: usize,
    /// Connections connecting or greeting (at most [`MAX_CONNECTING`]).
    opening: usize,
    /// Ready connections that can still take load (not dropped, `-t` not
    /// exhausted or messages still out).
    live: usize,
    /// The message pattern.
    pattern: Pattern,
    /// Shared read buffer.
    rbuf: Vec<u8>,
    /// Counters.
    stats: Stats,
    /// Start of the measured window once it has begun.
    window_start: Option<Instant>,
    /// End of the measured window once it has begun.
    window_end: Option<Instant>,
    /// Server CPU time at the window's start, with `--server-pid`.
    server_cpu_start: Option<CpuTicks>,
    /// This process's CPU time at the window's start.
    own_cpu_start: Duration,
    /// When the last measured message completed.
    last_completion: Option<Instant>,
}

impl Client {
    /// Starts the measured window at `now`: from here on released messages
    /// count, and CPU times are taken.
    ///
    /// # Errors
    ///
    /// Fails if `/proc/PID/stat` of `--server-pid` cannot be read.
    fn begin_window(&mut self, now: Instant) -> io::Result<()> {
        self.window_start = Some(now);
        self.window_end = Some(now + self.opts.secs);
        self.own_cpu_start = own_cpu();
        if let Some(pid) = self.opts.server_pid {
            self.server_cpu_start = Some(server_cpu(pid)?);
        }
        Ok(())
    }

    /// Whether a message released at `at` is counted.
    fn is_measured(&self, at: Instant) -> bool {
        self.window_start.is_some_and(|start| at >= start)
    }

    /// Whether the connection may release one more message at `at`.
    fn can_release(&self, conn: &Conn, at: Instant) -> bool {
        !self.is_measured(at) || self.opts.per_conn == 0 || conn.measured < self.opts.per_conn
    }

    /// Whether a connection has nothing left to do: its `-t` messages are
    /// released and all of them are back.
    fn is_done(&self, conn: &Conn) -> bool {
        self.window_start.is_some()
            && self.opts.per_conn != 0
            && conn.measured >= self.opts.per_conn
            && conn.released.is_empty()
    }

    /// Opens `-c` connections, at most [`MAX_CONNECTING`] at a time, within
    /// [`CONNECT_TIMEOUT`]. A connection counts as established once one
    /// message has made the round trip: the kernel completes a handshake
    /// before the server accepts, so without it the client could outrun the
    /// server's accept queue, and the SYN retransmissions and syncookies of
    /// an overflowing queue would stall messages well into the measurement.
    fn connect_all(&mut self, events: &mut Events) {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let mut started = 0;
        while started < self.opts.conns || self.opening > 0 {
            while self.opening < MAX_CONNECTING && started < self.opts.conns {
                started += 1;
                match self.start_connect() {
                    Ok(()) => self.opening += 1,
                    Err(e) => {
                        self.stats.connect_errors += 1;
                        if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                            eprintln!("echo_client: connect: {e} (raise `ulimit -n`)");
                            self.stats.connect_errors += (self.opts.conns - started) as u64;
                            started = self.opts.conns;
                        }
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if let Err(e) = self.poll.poll(events, Some(deadline - now)) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                eprintln!("echo_client: poll: {e}");
                break;
            }
            for event in events.iter() {
                let i = event.token().0;
                let Some(Some(conn)) = self.conns.get_mut(i) else {
                    continue;
                };
                match conn.state {
                    State::Connecting => match connect_result(&conn.stream, event.is_error()) {
                        None => {}
                        Some(Ok(())) => {
                            conn.state = State::Greeting;
                            self.release(i, Instant::now());
                            self.flush(i);
                        }
                        Some(Err(_)) => self.drop_conn(i, DropReason::Io),
                    },
                    // Completes in `after_completions` when the echo is back.
                    State::Greeting => self.on_event(i, event),
                    State::Ready => {}
                }
            }
        }
        // Whatever is still opening ran out of time.
        for i in 0..self.conns.len() {
            if self.conns[i]
                .as_ref()
                .is_some_and(|c| c.state != State::Ready)
            {
                self.drop_conn(i, DropReason::Io);
            }
        }
    }

    /// Starts one non-blocking connect and registers it.
    fn start_connect(&mut self) -> io::Result<()> {
        let mut stream = TcpStream::connect(self.opts.addr)?;
        let token = Token(self.conns.len());
        self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.conns.push(Some(Conn {
            stream,
            state: State::Connecting,
            released: VecDeque::new(),
            unsent: 0,
            write_off: 0,
            read_off: 0,
            outstanding: 0,
            corrupt: false,
            measured: 0,
            writable: true,
        }));
        Ok(())
    }

    /// Queues one message on connection `i`, released (or scheduled) at `at`.
    fn release(&mut self, i: usize, at: Instant) {
        let measured = self.is_measured(at);
        if let Some(Some(conn)) = self.conns.get_mut(i) {
            conn.released.push_back(at);
            conn.unsent += self.pattern.len as u64;
            if measured {
                conn.measured += 1;
            }
        }
    }

    /// Writes what connection `i` has unsent, until done or the send buffer
    /// is full. Drops the connection on an error.
    fn flush(&mut self, i: usize) {
        let Some(Some(conn)) = self.conns.get_mut(i) else {
            return;
        };
        let len = self.pattern.len;
        while conn.unsent > 0 && conn.writable {
            let off = conn.write_off;
            let n =
                (self.pattern.wire.len() - off).min(conn.unsent.try_into().unwrap_or(usize::MAX));
            match conn.stream.write(&self.pattern.wire[off..off + n]) {
                Ok(0) => return self.drop_conn(i, DropReason::Io),
                Ok(m) => {
                    conn.unsent -= m as u64;
                    conn.outstanding += m as u64;
                    conn.write_off = (off + m) % len;
                    if m < n {
                        conn.writable = false;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => conn.writable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.drop_conn(i, DropReason::Io),
            }
        }
    }

    /// Reads what connection `i` has, checks it, and completes messages.
    /// `read_closed` says the event carried the server's FIN.
    fn on_readable(&mut self, i: usize, read_closed: bool) {
        loop {
            let Some(Some(conn)) = self.conns.get_mut(i) else {
                return;
            };
            let n = match conn.stream.read(&mut self.rbuf) {
                Ok(0) => return self.drop_conn(i, DropReason::Eof),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return self.drop_conn(i, DropReason::Io),
            };
            if n as u64 > conn.outstanding {
                return self.drop_conn(i, DropReason::Extra);
            }
            conn.outstanding -= n as u64;
            let now = Instant::now();
            let len = self.pattern.len;
            let mut completed = 0;
            let mut data = &self.rbuf[..n];
            while !data.is_empty() {
                let take = (len - conn.read_off).min(data.len());
                if !self.pattern.matches(conn.read_off, &data[..take]) {
                    conn.corrupt = true;
                }
                conn.read_off += take;
                data = &data[take..];
                if conn.read_off < len {
                    continue;
                }
                // A whole message is back. `outstanding` covered its bytes,
                // so it was released and its instant is queued.
                conn.read_off = 0;
                completed += 1;
                if std::mem::take(&mut conn.corrupt) {
                    self.stats.mismatches += 1;
                }
                let at = conn.released.pop_front().unwrap_or(now);
                if self.window_start.is_some_and(|start| at >= start) {
                    let ns = now.saturating_duration_since(at).as_nanos();
                    self.stats
                        .hist
                        .saturating_record(ns.try_into().unwrap_or(u64::MAX));
                    self.last_completion = Some(now);
                }
            }
            if completed > 0 {
                self.after_completions(i, completed, now);
            }
            // A short read drained the socket (epoll(7), stream sockets):
            // new data raises a new edge, unless the FIN is already in.
            if n < self.rbuf.len() && !read_closed {
                return;
            }
        }
    }

    /// After `completed` messages came back on connection `i`: completes a
    /// greeting, or in closed loop releases as many new ones; retires the
    /// connection once done.
    fn after_completions(&mut self, i: usize, completed: usize, now: Instant) {
        if let Some(Some(conn)) = self.conns.get_mut(i) {
            if conn.state == State::Greeting {
                conn.state = State::Ready;
                self.opening -= 1;
                self.established += 1;
                self.live += 1;
                return;
            }
        }
        if self.opts.rate == 0.0 {
            for _ in 0..completed {
                match self.conns.get(i) {
                    Some(Some(conn)) if self.can_release(conn, now) => self.release(i, now),
                    _ => break,
                }
            }
        }
        if let Some(Some(conn)) = self.conns.get(i) {
            if self.is_done(conn) {
                self.live -= 1;
                self.conns[i] = None;
            }
        }
    }

    /// Drops connection `i` and counts why.
    fn drop_conn(&mut self, i: usize, why: DropReason) {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::take) else {
            return;
        };
        if conn.state != State::Ready {
            // It never carried load: a failed connect.
            self.opening -= 1;
            self.stats.connect_errors += 1;
            return;
        }
        self.live -= 1;
        match why {
            DropReason::Eof => self.stats.eof_errors += 1,
            DropReason::Io => self.stats.io_errors += 1,
            DropReason::Extra => self.stats.extra_errors += 1,
        }
    }

    /// Handles one event for connection `i`.
    fn on_event(&mut self, i: usize, event: &mio::event::Event) {
        let Some(Some(conn)) = self.conns.get_mut(i) else {
            return;
        };
        if event.is_writable() || event.is_error() || event.is_write_closed() {
            conn.writable = true;
        }
        self.on_readable(i, event.is_read_closed() || event.is_error());
        self.flush(i);
    }

    /// Paced mode: releases the messages due on every tick up to `now`,
    /// round-robin from `cursor`, scheduled at their tick's instant.
    fn release_due(&mut self, pace: &mut Pace, now: Instant) {
        while pace.next_tick <= now {
            pace.ticks += 1;
            let due = (self.opts.rate * pace.ticks as f64 / 1000.0) as u64;
            let at = pace.next_tick;
            pace.next_tick += TICK_PERIOD;
            if self.is_measured(at) {
                let lag = now.saturating_duration_since(at);
                pace.max_lag = pace.max_lag.max(lag);
                if lag > TICK_PERIOD {
                    pace.late_ticks += 1;
                }
            }
            let n = self.conns.len();
            let mut touched = Vec::new();
            while pace.released < due {
                // Find the next connection that may take a message.
                let mut found = None;
                for step in 0..n {
                    let i = (pace.cursor + step) % n;
                    if let Some(Some(conn)) = self.conns.get(i) {
                        if conn.state == State::Ready && self.can_release(conn, at) {
                            found = Some(i);
                            break;
                        }
                    }
                }
                let Some(i) = found else {
                    // Nobody can take more: the offer lapses.
                    pace.released = due;
                    break;
                };
                pace.cursor = (i + 1) % n;
                pace.released += 1;
                self.release(i, at);
                touched.push(i);
            }
            for i in touched {
                self.flush(i);
            }
        }
    }
}

/// The paced mode's schedule.
#[derive(Debug)]
struct Pace {
    /// Instant of the next tick.
    next_tick: Instant,
    /// Ticks released so far.
    ticks: u64,
    /// Messages released so far.
    released: u64,
    /// Next connection to deal a message to.
    cursor: usize,
    /// Largest delay, in the measured window, between a tick's instant and
    /// the client releasing its messages: the client's own share of the
    /// latency tail (it should stay well under the latencies reported).
    max_lag: Duration,
    /// Ticks in the measured window released more than one tick late.
    late_ticks: u64,
}

/// Completion of a non-blocking connect: `None` while it is in progress.
fn connect_result(stream: &TcpStream, error_event: bool) -> Option<io::Result<()>> {
    match stream.take_error() {
        Ok(Some(e)) | Err(e) => return Some(Err(e)),
        Ok(None) => {}
    }
    match stream.peer_addr() {
        Ok(_) => Some(stream.set_nodelay(true)),
        Err(e) if e.kind() == ErrorKind::NotConnected && !error_event => None,
        Err(e) => Some(Err(e)),
    }
}

/// Results of a run, for printing.
#[derive(Debug)]
struct Report {
    /// Measured window.
    window: Duration,
    /// Server CPU used in the window (user, system), if `--server-pid`.
    server: Option<(Duration, Duration)>,
    /// This process's CPU used in the window.
    client_cpu: Duration,
    /// Paced mode: the largest tick lag and the count of late ticks (see
    /// [`Pace`]).
    pacing: Option<(Duration, u64)>,
}

/// Parses the command line and runs the load; see the module docs.
fn main() -> ExitCode {
    let opts = match parse_args(&mut lexopt::Parser::from_env()) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("echo_client: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("echo_client: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Connects, runs the load, and prints the report.
fn run(opts: Options) -> io::Result<ExitCode> {
    if let Some(pid) = opts.server_pid {
        server_cpu(pid)?; // fail before connecting, not after the warm-up
    }
    let mut client = Client {
        poll: Poll::new()?,
        conns: Vec::with_capacity(opts.conns),
        established: 0,
        opening: 0,
        live: 0,
        pattern: Pattern::new(opts.bytes),
        rbuf: vec![0; IO_CHUNK],
        stats: Stats {
            hist: latency_histogram(),
            connect_errors: 0,
            eof_errors: 0,
            io_errors: 0,
            extra_errors: 0,
            mismatches: 0,
        },
        window_start: None,
        window_end: None,
        server_cpu_start: None,
        own_cpu_start: Duration::ZERO,
        last_completion: None,
        opts,
    };
    let mut events = Events::with_capacity(1024);
    client.connect_all(&mut events);
    if client.established == 0 {
        eprintln!(
            "echo_client: no connection to {} could be made ({} failed)",
            client.opts.addr, client.stats.connect_errors
        );
        return Ok(ExitCode::FAILURE);
    }

    let start = Instant::now();
    let warmup_end = start + client.opts.warmup;
    if client.opts.warmup.is_zero() {
        client.begin_window(start)?;
    }
    let paced = client.opts.rate > 0.0;
    let ticker = if paced {
        let ticker = Ticker::new(TICK_PERIOD)?;
        client.poll.registry().register(
            &mut SourceFd(&ticker.fd.as_raw_fd()),
            TICK,
            Interest::READABLE,
        )?;
        Some(ticker)
    } else {
        for i in 0..client.conns.len() {
            client.release(i, start);
            client.flush(i);
        }
        None
    };
    let mut pace = Pace {
        next_tick: start + TICK_PERIOD,
        ticks: 0,
        released: 0,
        cursor: 0,
        max_lag: Duration::ZERO,
        late_ticks: 0,
    };

    // Bounded in time: the window ends at most `--warmup` + `--secs` from now.
    let end = loop {
        let now = Instant::now();
        if client.window_start.is_none() && now >= warmup_end {
            client.begin_window(now)?;
        }
        if client.window_end.is_some_and(|end| now >= end) {
            break now;
        }
        if client.live == 0 {
            break client
                .last_completion
                .unwrap_or(now)
                .max(client.window_start.unwrap_or(now));
        }
        if paced {
            client.release_due(&mut pace, now);
        }
        let deadline = client.window_end.unwrap_or(warmup_end);
        if let Err(e) = client
            .poll
            .poll(&mut events, Some(deadline.saturating_duration_since(now)))
        {
            if e.kind() != ErrorKind::Interrupted {
                return Err(e);
            }
        }
        for event in events.iter() {
            match event.token() {
                TICK => {
                    if let Some(ticker) = &ticker {
                        ticker.clear();
                    }
                }
                Token(i) => client.on_event(i, event),
            }
        }
    };

    let window_start = client.window_start.unwrap_or(start);
    let server = match (client.opts.server_pid, client.server_cpu_start) {
        (Some(pid), Some(before)) => {
            let after = server_cpu(pid)?;
            let tick = clock_ticks();
            let secs = |t: u64| Duration::from_secs_f64(t as f64 / tick);
            Some((
                secs(after.user.saturating_sub(before.user)),
                secs(after.system.saturating_sub(before.system)),
            ))
        }
        _ => None,
    };
    if let (Some(pid), Some((user, system))) = (client.opts.server_pid, server) {
        if user + system == Duration::ZERO && client.stats.hist.len() > 10_000 {
            eprintln!(
                "echo_client: warning: pid {pid} used no CPU while serving; \
                 is it the server itself and not a wrapper such as `timeout`?"
            );
        }
    }
    let report = Report {
        window: end.saturating_duration_since(window_start),
        server,
        client_cpu: own_cpu().saturating_sub(client.own_cpu_start),
        pacing: paced.then_some((pace.max_lag, pace.late_ticks)),
    };
    let out = if client.opts.json {
        json_report(&client, &report)
    } else {
        text_report(&client, &report)
    };
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// Derived figures shared by both report formats.
#[derive(Debug)]
struct Figures {
    /// Messages measured.
    messages: u64,
    /// Messages per second.
    rate: f64,
    /// Payload megabytes (10^6) per second, each way.
    mb_per_s: f64,
    /// Errors of every kind.
    errors: u64,
    /// Server CPU µs per message: (user, system).
    server_us: Option<(f64, f64)>,
    /// Client CPU as a percentage of the window.
    client_pct: f64,
}

/// Computes the derived figures.
fn figures(client: &Client, report: &Report) -> Figures {
    let s = &client.stats;
    let messages = s.hist.len();
    let secs = report.window.as_secs_f64().max(1e-9);
    let per_msg = |d: Duration| d.as_secs_f64() * 1e6 / messages.max(1) as f64;
    Figures {
        messages,
        rate: messages as f64 / secs,
        mb_per_s: (messages * client.pattern.len as u64) as f64 / secs / 1e6,
        errors: s.connect_errors + s.eof_errors + s.io_errors + s.extra_errors + s.mismatches,
        server_us: report
            .server
            .map(|(user, system)| (per_msg(user), per_msg(system))),
        client_pct: report.client_cpu.as_secs_f64() / secs * 100.0,
    }
}

/// Nanoseconds to microseconds.
fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// The human-readable report.
fn text_report(client: &Client, report: &Report) -> String {
    let o = &client.opts;
    let s = &client.stats;
    let f = figures(client, report);
    let mode = if o.rate > 0.0 {
        format!("paced {} msg/s", o.rate)
    } else {
        "closed loop".to_owned()
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "echo_client: {}, {}/{} connections, {mode}, {} B messages, {:.2} s measured after {:.2} s warm-up",
        o.addr,
        client.established,
        o.conns,
        o.bytes,
        report.window.as_secs_f64(),
        o.warmup.as_secs_f64(),
    );
    let _ = writeln!(
        out,
        "messages  {} ({:.0} msg/s, {:.2} MB/s each way)",
        f.messages, f.rate, f.mb_per_s
    );
    let h = &s.hist;
    let _ = writeln!(
        out,
        "latency   p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs (mean {:.1} µs)",
        us(h.value_at_quantile(0.5)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max()),
        h.mean() / 1000.0,
    );
    let _ = writeln!(
        out,
        "errors    {} (connect {}, closed by server {}, I/O {}, extra bytes {}, mismatched messages {})",
        f.errors, s.connect_errors, s.eof_errors, s.io_errors, s.extra_errors, s.mismatches
    );
    if let (Some(pid), Some((user, system))) = (o.server_pid, f.server_us) {
        let _ = writeln!(
            out,
            "server    pid {pid}: {:.3} µs CPU/msg (user {:.3}, system {:.3})",
            user + system,
            user,
            system
        );
    }
    let _ = write!(out, "client    {:.0}% of a CPU", f.client_pct);
    if let Some((lag, late)) = report.pacing {
        let _ = write!(
            out,
            ", ticks released at most {:.1} µs late ({late} more than a tick late)",
            lag.as_secs_f64() * 1e6
        );
    }
    out
}

/// The report as one JSON object on one line.
fn json_report(client: &Client, report: &Report) -> String {
    let o = &client.opts;
    let s = &client.stats;
    let f = figures(client, report);
    let h = &s.hist;
    let server = match f.server_us {
        Some((user, system)) => format!(
            "{{\"pid\":{},\"us_per_msg\":{:.4},\"user_us_per_msg\":{:.4},\"sys_us_per_msg\":{:.4}}}",
            o.server_pid.unwrap_or(0),
            user + system,
            user,
            system
        ),
        None => "null".to_owned(),
    };
    format!(
        concat!(
            "{{\"addr\":\"{}\",\"mode\":\"{}\",\"rate\":{},\"connections_requested\":{},",
            "\"connections\":{},\"bytes\":{},\"per_conn\":{},\"warmup_s\":{:.3},\"secs\":{:.4},",
            "\"messages\":{},\"msg_per_s\":{:.1},\"mb_per_s\":{:.3},",
            "\"latency_us\":{{\"p50\":{:.1},\"p99\":{:.1},\"p999\":{:.1},\"max\":{:.1},\"mean\":{:.1}}},",
            "\"errors\":{},\"connect_errors\":{},\"eof_errors\":{},\"io_errors\":{},",
            "\"extra_errors\":{},\"mismatches\":{},\"server_cpu\":{},\"client_cpu_pct\":{:.1},",
            "\"tick_lag_max_us\":{},\"late_ticks\":{}}}"
        ),
        o.addr,
        if o.rate > 0.0 { "paced" } else { "closed" },
        o.rate,
        o.conns,
        client.established,
        o.bytes,
        o.per_conn,
        o.warmup.as_secs_f64(),
        report.window.as_secs_f64(),
        f.messages,
        f.rate,
        f.mb_per_s,
        us(h.value_at_quantile(0.5)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max()),
        h.mean() / 1000.0,
        f.errors,
        s.connect_errors,
        s.eof_errors,
        s.io_errors,
        s.extra_errors,
        s.mismatches,
        server,
        f.client_pct,
        report
            .pacing
            .map_or("null".to_owned(), |(lag, _)| format!("{:.1}", lag.as_secs_f64() * 1e6)),
        report
            .pacing
            .map_or("null".to_owned(), |(_, late)| late.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_are_within_the_stated_precision() {
        let mut h = latency_histogram();
        assert_eq!(h.len(), 0);
        assert_eq!(h.value_at_quantile(0.5), 0, "an empty histogram reports 0");
        for v in 1..=1000u64 {
            h.saturating_record(v * 1000);
        }
        let within = |got: u64, want: u64| got.abs_diff(want) as f64 <= want as f64 / 1000.0;
        let p50 = h.value_at_quantile(0.5);
        assert!(within(p50, 500_000), "p50 {p50}");
        let p99 = h.value_at_quantile(0.99);
        assert!(within(p99, 990_000), "p99 {p99}");
        assert!(within(h.max(), 1_000_000), "max {}", h.max());
        h.saturating_record(u64::MAX);
        assert!(
            within(h.max(), MAX_LATENCY_NS),
            "an overlong latency is capped"
        );
    }

    #[test]
    fn pattern_wire_repeats_the_message() {
        for len in [1, 3, 64, 1000, 70_000] {
            let p = Pattern::new(len);
            assert!(p.wire.len() >= 2 * len);
            for (i, b) in p.wire.iter().enumerate().step_by(97) {
                assert_eq!(*b, p.wire[i % len]);
            }
            assert!(p.matches(0, &p.wire[..len]));
        }
    }

    #[test]
    fn parses_arguments() {
        let args = |s: &str| parse_args(&mut lexopt::Parser::from_args(s.split_whitespace()));
        let o = args("--addr 127.0.0.1:9 -c 7 -t 3 -b 16 --secs 0.5 --rate 100 --warmup 0 --json")
            .unwrap()
            .unwrap();
        assert_eq!(o.addr, SocketAddr::from(([127, 0, 0, 1], 9)));
        assert_eq!((o.conns, o.per_conn, o.bytes), (7, 3, 16));
        assert_eq!(o.secs, Duration::from_millis(500));
        assert_eq!(o.warmup, Duration::ZERO);
        assert!(o.json && o.rate == 100.0);
        assert!(args("--help").unwrap().is_none());
        assert!(args("-c 0").is_err());
        assert!(args("--secs 0").is_err());
        assert!(args("-b").is_err());
        assert!(args("--bogus 1").is_err());
        assert!(args("-c x").is_err());
    }
}
