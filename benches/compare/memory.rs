//! What an idle connection costs a server: its resident set grown by holding
//! N open connections, and for greenio how much of that is green-thread
//! stack.
//!
//! The harness itself opens the connections (blocking `std::net`, in batches)
//! and has each carry one 8-byte message and its echo, so every connection
//! has been accepted and has its green thread, task or OS thread before the
//! resident set is read. `VmRSS` after minus `VmRSS` before, over N, is the
//! cost per connection. Kernel socket buffers are not in a process's resident
//! set and so are not counted, for any server.
//!
//! Green-thread stacks are found in `/proc/PID/smaps` by their shape (see
//! `runtime/src/stack.rs`): an anonymous `rw-p` mapping of a batch of 16
//! stacks, each a guard page plus the stack size (guard pages installed
//! with `MADV_GUARD_INSTALL` do not split it), or, on kernels without guard
//! markers, a mapping of exactly the stack size that starts where a
//! one-page `---p` guard mapping ends. Their `Rss` is the stack pages
//! touched, not the address space reserved; `count` counts stacks
//! (batches mapped back to back merge into one mapping).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::procs::{self, Server};
use crate::{Options, Outcome};

/// Connections opened, then sent a message, then read, at a time.
const BATCH: usize = 64;
/// Bound on each connect, write and read.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on opening all the connections.
const OPEN_DEADLINE: Duration = Duration::from_secs(90);
/// Failures after which the server is given up on.
const MAX_FAILURES: usize = 50;
/// Pause before reading a resident set, so the server settles.
const SETTLE: Duration = Duration::from_millis(400);

/// One server's figures.
#[derive(Debug, Clone)]
pub struct Memory {
    /// Connections asked for.
    pub wanted: usize,
    /// Connections that echoed their message.
    pub open: usize,
    /// `VmRSS` in KiB before connecting.
    pub rss_before: u64,
    /// `VmRSS` in KiB with the connections open.
    pub rss_after: u64,
    /// Green-thread stack mappings before and after, if the server has any.
    pub stacks: Option<(Stacks, Stacks)>,
    /// Failures and other remarks.
    pub note: String,
}

impl Memory {
    /// Bytes of resident set per open connection.
    pub fn bytes_per_conn(&self) -> Option<f64> {
        (self.open > 0)
            .then(|| (self.rss_after as f64 - self.rss_before as f64) * 1024.0 / self.open as f64)
    }
}

/// Green-thread stack mappings of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stacks {
    /// Mappings found.
    pub count: usize,
    /// Their resident pages, in KiB.
    pub rss_kib: u64,
}

/// Measures `server` holding `conns` idle connections.
pub fn measure(server: &mut Server, conns: usize, stack_size: usize) -> Memory {
    std::thread::sleep(SETTLE);
    let mut m = Memory {
        wanted: conns,
        open: 0,
        rss_before: procs::rss_kib(server.pid).unwrap_or(0),
        rss_after: 0,
        stacks: None,
        note: String::new(),
    };
    let stacks_before = stacks(server.pid, stack_size);
    let (open, failures) = open_connections(server.addr, conns);
    m.open = open.len();
    if failures > 0 {
        m.note = format!("{failures} connections failed");
    }
    std::thread::sleep(SETTLE);
    if !server.running() {
        m.note = format!("server died{}", server.log_tail());
        return m;
    }
    m.rss_after = procs::rss_kib(server.pid).unwrap_or(0);
    let stacks_after = stacks(server.pid, stack_size);
    if stacks_after.count > 0 {
        m.stacks = Some((stacks_before, stacks_after));
    }
    drop(open);
    m
}

/// Opens up to `n` connections that have each echoed one message. Returns
/// them and the number of failures.
fn open_connections(addr: SocketAddr, n: usize) -> (Vec<TcpStream>, usize) {
    let start = Instant::now();
    let mut open = Vec::with_capacity(n);
    let mut failures = 0;
    let msg = *b"idle-mem";
    while open.len() < n && failures < MAX_FAILURES && start.elapsed() < OPEN_DEADLINE {
        let mut batch = Vec::with_capacity(BATCH);
        for _ in 0..BATCH.min(n - open.len()) {
            match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
                Ok(s) => batch.push(s),
                Err(_) => failures += 1,
            }
        }
        batch.retain_mut(|s| {
            let ok = s.set_nodelay(true).is_ok()
                && s.set_read_timeout(Some(IO_TIMEOUT)).is_ok()
                && s.set_write_timeout(Some(IO_TIMEOUT)).is_ok()
                && s.write_all(&msg).is_ok();
            failures += usize::from(!ok);
            ok
        });
        batch.retain_mut(|s| {
            let mut back = [0u8; 8];
            let ok = s.read_exact(&mut back).is_ok() && back == msg;
            failures += usize::from(!ok);
            ok
        });
        open.extend(batch);
    }
    (open, failures)
}

/// Sums the green-thread stack mappings of `pid` (see the module docs).
pub fn stacks(pid: u32, stack_size: usize) -> Stacks {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return Stacks::default();
    };
    let page = page_size();
    let mut found = Stacks::default();
    // The mapping before the one being read, and the one being read: a
    // mapping is complete (its `Rss:` line seen) once the next header comes.
    let mut prev: Option<Mapping> = None;
    let mut cur: Option<Mapping> = None;
    let batch = 16 * (stack_size + page);
    let mut check = |prev: &Option<Mapping>, m: &Mapping| {
        // Batches mapped one after another merge into one mapping.
        let len = m.end - m.start;
        let stride = stack_size + page;
        if m.perms == "rw-p" && m.anonymous && len >= batch && len % stride == 0 {
            found.count += len / stride;
            found.rss_kib += m.rss_kib;
            return;
        }
        if let Some(p) = prev {
            if p.end == m.start
                && p.perms.starts_with("---p")
                && p.end - p.start == page
                && m.perms == "rw-p"
                && m.anonymous
                && m.end - m.start == stack_size
            {
                found.count += 1;
                found.rss_kib += m.rss_kib;
            }
        }
    };
    for line in text.lines() {
        if let Some(m) = Mapping::parse_header(line) {
            if let Some(done) = cur.take() {
                check(&prev, &done);
                prev = Some(done);
            }
            cur = Some(m);
        } else if let (Some(m), Some(v)) = (cur.as_mut(), line.strip_prefix("Rss:")) {
            m.rss_kib = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
        }
    }
    if let Some(done) = cur {
        check(&prev, &done);
    }
    found
}

/// One mapping of `/proc/PID/smaps`.
#[derive(Debug)]
struct Mapping {
    start: usize,
    end: usize,
    perms: String,
    /// No file, no name (`[heap]`, `[stack]`...).
    anonymous: bool,
    rss_kib: u64,
}

impl Mapping {
    /// Parses a header line `start-end perms offset dev inode [path]`.
    fn parse_header(line: &str) -> Option<Mapping> {
        let mut f = line.split_whitespace();
        let (start, end) = f.next()?.split_once('-')?;
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        let perms = f.next()?;
        if perms.len() != 4 {
            return None;
        }
        let _offset = f.next()?;
        let _dev = f.next()?;
        let inode = f.next()?;
        let path = f.next();
        Some(Mapping {
            start,
            end,
            perms: perms.to_owned(),
            anonymous: inode == "0" && path.is_none(),
            rss_kib: 0,
        })
    }
}

/// The page size.
fn page_size() -> usize {
    // SAFETY: sysconf only reads a configuration value.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).unwrap_or(4096)
}

/// Each server, started afresh, holding `opts.memory_conns` idle connections.
pub fn memory_phase(opts: &Options, examples: &Path, logs: &Path, outcomes: &mut [Outcome]) {
    for o in outcomes.iter_mut() {
        if !examples.join(o.spec.exe).exists() {
            continue;
        }
        let log = logs.join(format!("{}-memory.log", o.spec.key));
        let mut server = match Server::start(&examples.join(o.spec.exe), o.spec.args, log) {
            Ok(s) => s,
            Err(e) => {
                o.memory = Some(Err(e));
                continue;
            }
        };
        let m = measure(&mut server, opts.memory_conns, greenio::DEFAULT_STACK_SIZE);
        println!(
            "compare: memory {:<30} {} connections, {} KiB -> {} KiB: {}{}",
            o.spec.label,
            m.open,
            m.rss_before,
            m.rss_after,
            m.bytes_per_conn().map_or("–".into(), |b| format!(
                "{:.1} KiB per connection",
                b / 1024.0
            )),
            m.stacks.map_or(String::new(), |(b, a)| format!(
                ", {} stacks, {:.1} KiB stack touched per connection",
                a.count,
                (a.rss_kib as f64 - b.rss_kib as f64) / m.open.max(1) as f64
            ))
        );
        o.memory = Some(Ok(m));
        o.memory_stop = Some(server.stop());
    }
}
