//! Child processes and `/proc` for the comparison: a pinned echo server, one
//! pinned run of `echo_client`, and the machine's load around it.
//!
//! Every wait here is bounded: a server has [`START_TIMEOUT`] to print its
//! `listening on IP:PORT` line and [`STOP_TIMEOUT`] to exit after SIGTERM
//! (then it is killed); a client run has the deadline its caller gives.
//! A [`Server`] that is dropped without [`Server::stop`] is killed, so an
//! early error in the harness leaves no server behind.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The CPU every server is pinned to (`taskset -c`).
pub const SERVER_CPU: usize = 0;
/// The CPU the load generator (and the harness's own socket work) runs on.
pub const CLIENT_CPU: usize = 1;
/// Longest wait for a server's `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait for a server to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// The machine counts as idle below this many CPUs busy (of all of them).
pub const IDLE_CPUS: f64 = 0.2;
/// Length of one idle probe.
const IDLE_SAMPLE: Duration = Duration::from_millis(200);

/// An echo server process, pinned to [`SERVER_CPU`], that has announced its
/// address.
#[derive(Debug)]
pub struct Server {
    /// Process id (taskset execs the server, so it is the server's own).
    pub pid: u32,
    /// The address from its `listening on IP:PORT` line.
    pub addr: SocketAddr,
    /// The child; reaped by [`Server::stop`] or on drop.
    child: Child,
    /// File that holds the server's stderr.
    log: PathBuf,
    /// Set once the child has been reaped.
    reaped: bool,
}

impl Server {
    /// Starts `exe args --listen 127.0.0.1:0` under `taskset -c 0`, its stderr
    /// going to `log`, and waits for its `listening on` line.
    ///
    /// # Errors
    ///
    /// A message saying why the server is not serving (with the end of its
    /// log); the child, if any, has been killed.
    pub fn start(exe: &Path, args: &[&str], log: PathBuf) -> Result<Server, String> {
        let log_file = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new("taskset")
            .arg("-c")
            .arg(SERVER_CPU.to_string())
            .arg(exe)
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run `taskset -c {SERVER_CPU} {}`: {e}",
                    exe.display()
                )
            })?;
        let stdout = child.stdout.take();
        let mut server = Server {
            pid: child.id(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
            log,
            reaped: false,
        };
        let (tx, rx) = mpsc::channel();
        thread::Builder::new()
            .name("server-stdout".into())
            .spawn(move || {
                let Some(out) = stdout else { return };
                let mut lines = BufReader::new(out).lines();
                let _ = tx.send(lines.next());
                // Keep draining, so a chatty server never blocks on a full pipe.
                lines.for_each(drop);
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            Ok(_) => return Err(format!("exited before listening{}", server.log_tail())),
            Err(_) => {
                return Err(format!(
                    "no `listening on` line within {START_TIMEOUT:?}{}",
                    server.log_tail()
                ))
            }
        };
        server.addr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| format!("unexpected first line {line:?}"))?;
        Ok(server)
    }

    /// Whether the server is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines of the server's stderr, formatted to append to a message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(5)..];
        if tail.is_empty() {
            String::new()
        } else {
            format!(" (stderr: {})", tail.join(" / "))
        }
    }

    /// Sends SIGTERM and waits up to [`STOP_TIMEOUT`] for the exit; kills the
    /// server if it does not go.
    pub fn stop(mut self) -> StopOutcome {
        self.reaped = true;
        if let Ok(Some(status)) = self.child.try_wait() {
            return StopOutcome {
                clean: false,
                text: format!("had already exited ({status}){}", self.log_tail()),
            };
        }
        // SAFETY: kill(2) with a pid we spawned and have not reaped (so the
        // pid cannot have been reused) and a valid signal number.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < STOP_TIMEOUT {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => {
                    return StopOutcome {
                        clean: true,
                        text: format!("exit 0 {} ms after SIGTERM", start.elapsed().as_millis()),
                    }
                }
                Ok(Some(status)) => {
                    return StopOutcome {
                        clean: false,
                        text: format!("{status} after SIGTERM{}", self.log_tail()),
                    }
                }
                Ok(None) => thread::sleep(Duration::from_millis(10)),
                Err(e) => {
                    return StopOutcome {
                        clean: false,
                        text: format!("waiting for it failed: {e}"),
                    }
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        StopOutcome {
            clean: false,
            text: format!("still running {STOP_TIMEOUT:?} after SIGTERM; killed"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How a server went when asked to stop.
#[derive(Debug, Clone)]
pub struct StopOutcome {
    /// Exit status 0 within [`STOP_TIMEOUT`] of SIGTERM.
    pub clean: bool,
    /// What happened, for the report.
    pub text: String,
}

/// What one `echo_client` run printed, and the load around it.
#[derive(Debug)]
pub struct ClientOutput {
    /// The JSON line.
    pub json: String,
    /// CPUs busy with neither the server nor the client while the client ran
    /// (other engineers' builds, the previous server cleaning up...), plus
    /// CPU time the hypervisor stole from this machine.
    pub foreign_cpus: f64,
}

/// Runs `echo_client args` under `taskset -c 1`, killing it after `timeout`.
///
/// # Errors
///
/// A message when the client cannot start, times out, fails or prints no
/// JSON line.
pub fn run_client(
    exe: &Path,
    args: &[String],
    server_pid: u32,
    timeout: Duration,
) -> Result<ClientOutput, String> {
    let before = Snapshot::take(server_pid)?;
    let start = Instant::now();
    let mut child = Command::new("taskset")
        .arg("-c")
        .arg(CLIENT_CPU.to_string())
        .arg(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run echo_client: {e}"))?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "echo_client still running after {timeout:?}; killed"
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for echo_client: {e}")),
        }
    };
    let after = Snapshot::take(server_pid)?;
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("echo_client {status}: {}", stderr.trim()));
    }
    let json = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| format!("echo_client printed no JSON line: {}", stdout.trim()))?
        .to_owned();
    let (busy, wall) = before.cpu.busy_until(&after.cpu);
    let server = after.server_ticks.saturating_sub(before.server_ticks) as f64 / clock_ticks();
    let client = after.children_us.saturating_sub(before.children_us) as f64 / 1e6;
    let foreign_cpus = if wall > 0.0 {
        ((busy - server - client) / wall).max(0.0)
    } else {
        0.0
    };
    Ok(ClientOutput { json, foreign_cpus })
}

/// Reads a pipe to its end on a thread.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

/// CPU counters read together around a client run.
#[derive(Debug)]
struct Snapshot {
    /// The machine's counters.
    cpu: CpuTimes,
    /// The server's user + system clock ticks.
    server_ticks: u64,
    /// User + system µs of this process's reaped children.
    children_us: u64,
}

impl Snapshot {
    fn take(server_pid: u32) -> Result<Snapshot, String> {
        Ok(Snapshot {
            cpu: CpuTimes::read().map_err(|e| format!("/proc/stat: {e}"))?,
            server_ticks: process_ticks(server_pid)
                .map_err(|e| format!("/proc/{server_pid}/stat: {e}"))?,
            children_us: children_cpu_us(),
        })
    }
}

/// Idle time of all CPUs together from the first line of `/proc/stat`,
/// read with the moment it was read.
///
/// Busy time is derived as elapsed time × CPUs − idle, not summed from the
/// user/system/softirq fields: those are sampled at the scheduler tick, and a
/// paced load whose 1 ms timer beats in step with the 250 Hz tick is busy
/// at nearly every tick while idle most of the time between them. Idle time
/// is measured from idle entry and exit (NO_HZ) and is exact; it excludes
/// host steal, which so counts as busy.
#[derive(Debug, Clone, Copy)]
pub struct CpuTimes {
    /// idle + iowait, in clock ticks.
    pub idle: u64,
    /// CPUs in the machine (the `cpuN` lines).
    pub cpus: usize,
    /// When it was read.
    pub at: Instant,
}

impl CpuTimes {
    /// Reads `/proc/stat`.
    pub fn read() -> io::Result<CpuTimes> {
        let text = std::fs::read_to_string("/proc/stat")?;
        let at = Instant::now();
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "no `cpu` line");
        let line = text
            .lines()
            .find(|l| l.starts_with("cpu "))
            .ok_or_else(bad)?;
        // user nice system idle iowait irq softirq steal ...
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        if f.len() < 5 {
            return Err(bad());
        }
        let cpus = text
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count()
            .max(1);
        Ok(CpuTimes {
            idle: f[3] + f[4],
            cpus,
            at,
        })
    }

    /// CPU-seconds busy (or stolen) from `self` to `later`, and the seconds
    /// between them.
    pub fn busy_until(&self, later: &CpuTimes) -> (f64, f64) {
        let wall = later.at.saturating_duration_since(self.at).as_secs_f64();
        let idle = later.idle.saturating_sub(self.idle) as f64 / clock_ticks();
        ((wall * self.cpus as f64 - idle).max(0.0), wall)
    }
}

/// Probes the machine until fewer than [`IDLE_CPUS`] are busy or `max` has
/// passed. Returns the time spent and the CPUs busy in the last probe.
pub fn wait_idle(max: Duration) -> (Duration, f64) {
    let start = Instant::now();
    loop {
        let busy = busy_cpus(IDLE_SAMPLE).unwrap_or(0.0);
        if busy < IDLE_CPUS || start.elapsed() >= max {
            return (start.elapsed(), busy);
        }
    }
}

/// CPUs busy (of all of them, host steal included) over `interval`.
pub fn busy_cpus(interval: Duration) -> io::Result<f64> {
    let a = CpuTimes::read()?;
    thread::sleep(interval);
    let b = CpuTimes::read()?;
    let (busy, wall) = a.busy_until(&b);
    Ok(if wall > 0.0 { busy / wall } else { 0.0 })
}

/// User + system clock ticks of a process (all its threads).
pub fn process_ticks(pid: u32) -> io::Result<u64> {
    let (user, system) = process_user_sys_ticks(pid)?;
    Ok(user + system)
}

/// User and system clock ticks of a process (all its threads), apart.
pub fn process_user_sys_ticks(pid: u32) -> io::Result<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')' comes field 3 (state); utime and stime are fields 14 and 15.
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok((field(11), field(12)))
}

/// A process's resident set (`VmRSS`) in KiB.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS line"))
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// User + system µs of the reaped children of this process.
pub fn children_cpu_us() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole `rusage` to the valid pointer it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    if rc != 0 {
        return 0;
    }
    // SAFETY: the call succeeded, so the struct is initialised (it was
    // zeroed before, too).
    let usage = unsafe { usage.assume_init() };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

/// Raises this process's open-file limit to its hard limit (children inherit
/// it). Returns the new soft limit.
pub fn raise_nofile() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the limit to the valid pointer it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: setrlimit reads the valid limit it is given; a soft limit equal
    // to the hard limit is always allowed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_cur)
}

/// Pins the calling thread (and threads and processes it starts later) to
/// `cpu`, or lets it run anywhere with `None`.
pub fn pin_self(cpu: Option<usize>) {
    let cpus = CpuTimes::read().map_or(1, |c| c.cpus);
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for c in 0..cpus {
        if cpu.is_none_or(|p| p == c) {
            // SAFETY: `c` is below the CPU count, far below CPU_SETSIZE.
            unsafe { libc::CPU_SET(c, &mut set) };
        }
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is this thread.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
}

/// Samples of CPU 0 taken by `perf record -e cpu-clock`, to split a
/// server's CPU time into user space and kernel precisely.
///
/// `/proc/PID/stat` splits user and system time by the scheduler tick
/// (250 Hz here), so over a few seconds of a server that spends 4% of its
/// time in user space it counts a few dozen user ticks: too coarse for a
/// 1.5× target. `perf` sampling the CPU clock every [`SAMPLE_PERIOD_NS`]
/// (20,000 samples per busy second; no hardware counters needed) counts
/// thousands. The sampler runs on [`CLIENT_CPU`] and samples
/// [`SERVER_CPU`], where the pinned server runs with all its threads.
#[derive(Debug)]
pub struct Sampler {
    /// The `perf record` process.
    child: Child,
    /// Its output file.
    data: PathBuf,
}

/// Nanoseconds of CPU clock between two samples.
const SAMPLE_PERIOD_NS: u32 = 50_000;

impl Sampler {
    /// Starts sampling; `data` receives perf's file, `log` its stderr.
    ///
    /// # Errors
    ///
    /// A message when `perf` is missing or not allowed to sample a CPU
    /// (it needs `perf_event_paranoid` ≤ 0 or root).
    pub fn start(data: PathBuf, log: &Path) -> Result<Sampler, String> {
        let log_file = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new("taskset")
            .arg("-c")
            .arg(CLIENT_CPU.to_string())
            .args(["perf", "record", "-q", "-e", "cpu-clock", "-c"])
            .arg(SAMPLE_PERIOD_NS.to_string())
            .arg("-C")
            .arg(SERVER_CPU.to_string())
            .arg("-o")
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot run perf: {e}"))?;
        // Give perf time to open its events; a refusal ends it at once.
        thread::sleep(Duration::from_millis(400));
        if let Ok(Some(status)) = child.try_wait() {
            let why = std::fs::read_to_string(log).unwrap_or_default();
            let first = why.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            return Err(format!("perf record {status}: {}", first.trim()));
        }
        Ok(Sampler { child, data })
    }

    /// Stops sampling and counts the samples of process `pid`:
    /// `(user, kernel)`.
    ///
    /// # Errors
    ///
    /// A message when perf fails or its file cannot be read.
    pub fn finish(mut self, pid: u32) -> Result<(u64, u64), String> {
        // SAFETY: kill(2) with a pid we spawned and have not reaped, and a
        // valid signal number; SIGINT makes perf write its file and exit.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if start.elapsed() > STOP_TIMEOUT * 2 => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err("perf record did not stop; killed".into());
                }
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(format!("waiting for perf: {e}")),
            }
        }
        let out = Command::new("perf")
            .args(["script", "-F", "pid,ip", "-i"])
            .arg(&self.data)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run perf script: {e}"))?;
        let _ = std::fs::remove_file(&self.data);
        let text = String::from_utf8_lossy(&out.stdout);
        let (mut user, mut kernel) = (0, 0);
        for line in text.lines() {
            let mut f = line.split_whitespace();
            let (Some(p), Some(ip)) = (f.next(), f.next()) else {
                continue;
            };
            if p.parse::<u32>().ok() != Some(pid) {
                continue;
            }
            match u64::from_str_radix(ip, 16) {
                Ok(ip) if ip >= 1 << 63 => kernel += 1,
                Ok(_) => user += 1,
                Err(_) => {}
            }
        }
        if user + kernel == 0 {
            return Err("perf recorded no samples of the server".into());
        }
        Ok((user, kernel))
    }
}
