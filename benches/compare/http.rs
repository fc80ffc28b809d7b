//! The HTTP mode of the comparison (issue 12): greenio's two HTTP/1.1
//! servers against a hand-written mio server, hyper and may_minihttp,
//! driven by wrk.
//!
//! ```text
//! cargo bench --bench compare -- http              # 3 runs a point, ~10 minutes
//! cargo bench --bench compare -- http --quick      # 1 short run a point, ~2 minutes
//! cargo bench --bench compare -- http mio greenio  # only servers matching a filter
//! ```
//!
//! An unfiltered run writes `results/http.md` and `results/http.svg` (the
//! header says whether it was a quick run); a filtered one writes to
//! `target/compare-results/`.
//!
//! # What it does
//!
//! 1. `cargo build --release --examples`; installs wrk (the Debian package,
//!    `apt-get install -y wrk`) when it is missing, and says so.
//! 2. Starts every server pinned to CPU 0 (`procs::Server`), and runs
//!    `wrk -t1 -cC --latency` pinned to CPU 1 against each in turn:
//!    `/plaintext` and `/json` at C = 10, 100, 1000, and `/plaintext` at
//!    C = 100 with 16 requests pipelined per write (a wrk Lua script, as in
//!    TechEmpower's plaintext test). Runs are interleaved across servers,
//!    each preceded by a bounded wait for the machine to go idle; the CPU
//!    used by anything but the server and wrk during a run is recorded as
//!    "other load", and a run with more than `load::SPOILED_LOAD` of it is
//!    run again (twice at most), the cleanest kept.
//! 3. CPU per request at a fixed rate: wrk cannot pace, so the harness's
//!    own paced client (`http_load.rs`) sends [`PACED_RATE`] requests/s
//!    over [`PACED_CONNS`] keep-alive connections, and the server's CPU
//!    time from `/proc/PID/stat` is divided by the requests answered.
//! 4. Medians and spreads, the issue's target ratios, `http.md`, `http.svg`.
//!
//! Every wait is bounded: a wrk run by its duration plus 30 s, idle waits
//! by `load::IDLE_WAIT_MAX`, servers by `procs`' start and stop limits.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "http_load.rs"]
mod http_load;
#[path = "http_report.rs"]
mod http_report;

use crate::procs;

/// Paced load: requests per second.
pub const PACED_RATE: u32 = 20_000;
/// Paced load: keep-alive connections.
pub const PACED_CONNS: usize = 100;
/// Requests per write in the pipelined run.
const PIPELINE_DEPTH: usize = 16;

/// An HTTP server under test.
#[derive(Debug)]
pub struct Spec {
    /// Short name, matched by the command-line filters.
    pub key: &'static str,
    /// Name in tables and charts.
    pub label: &'static str,
    /// Example binary in `target/release/examples/`.
    pub exe: &'static str,
}

/// The servers, in table order.
pub const SERVERS: &[Spec] = &[
    Spec {
        key: "greenio",
        label: "greenio green threads",
        exe: "http",
    },
    Spec {
        key: "greenio-callback",
        label: "greenio callback reactor",
        exe: "http_callback",
    },
    Spec {
        key: "mio",
        label: "hand-written mio",
        exe: "peer_mio_http",
    },
    Spec {
        key: "hyper",
        label: "hyper, tokio current-thread",
        exe: "peer_hyper_http",
    },
    Spec {
        key: "may",
        label: "may_minihttp, 1 worker",
        exe: "peer_may_http",
    },
];

/// One wrk setting.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    /// `/plaintext` or `/json`.
    pub path: &'static str,
    /// Connections (`-c`).
    pub conns: usize,
    /// Requests per write (1: no pipelining).
    pub depth: usize,
}

impl Point {
    /// `/plaintext, C = 100, pipelined ×16`.
    pub fn title(&self) -> String {
        let mut t = format!("{}, C = {}", self.path, self.conns);
        if self.depth > 1 {
            let _ = write!(t, ", pipelined ×{}", self.depth);
        }
        t
    }
}

/// The wrk points, in table order.
pub fn points() -> Vec<Point> {
    let mut v = Vec::new();
    for path in ["/plaintext", "/json"] {
        for conns in [10, 100, 1000] {
            v.push(Point {
                path,
                conns,
                depth: 1,
            });
        }
    }
    v.push(Point {
        path: "/plaintext",
        conns: 100,
        depth: PIPELINE_DEPTH,
    });
    v
}

/// The figures of one wrk run.
#[derive(Debug, Clone)]
pub struct WrkRun {
    /// Requests per second.
    pub rps: f64,
    /// Latency percentiles, µs: 50, 99.
    pub p50: f64,
    /// 99th percentile, µs.
    pub p99: f64,
    /// Socket errors plus non-2xx responses.
    pub errors: u64,
    /// CPUs busy with other work during the run.
    pub foreign: f64,
}

/// The figures of one paced run.
#[derive(Debug, Clone, Copy)]
pub struct PacedRun {
    /// Requests answered per second.
    pub rps: f64,
    /// Server CPU µs per request, user + system.
    pub cpu_us: f64,
    /// Its user-space part.
    pub user_us: f64,
    /// Requests that failed.
    pub errors: u64,
}

/// Everything measured for one server.
#[derive(Debug)]
pub struct Outcome {
    /// Which server.
    pub spec: &'static Spec,
    /// wrk runs per point (or why a run failed).
    pub runs: Vec<Vec<Result<WrkRun, String>>>,
    /// Paced runs.
    pub paced: Vec<Result<PacedRun, String>>,
    /// Why the server did not run, if it did not.
    pub start_error: Option<String>,
    /// How it stopped.
    pub stop: Option<String>,
}

/// The HTTP mode's command line.
#[derive(Debug)]
pub struct HttpOptions {
    /// One short run a point.
    pub quick: bool,
    /// Runs a point.
    pub runs: usize,
    /// Seconds a wrk run.
    pub secs: u64,
    /// Server filters.
    pub filters: Vec<String>,
    /// Where to write.
    pub out: Option<PathBuf>,
    /// Build first.
    pub build: bool,
}

const USAGE: &str = "\
usage: cargo bench --bench compare -- http [options] [SERVER...]

Runs every HTTP server under wrk, pinned apart, and writes http.md and
http.svg. SERVER filters keep servers whose name contains them:
greenio, greenio-callback, mio, hyper, may.

  --quick        1 run a point, 2 s windows (~2 min)
  --runs N       runs a point (default 3; 1 with --quick)
  --out DIR      where to write (default: results/ unfiltered,
                 target/compare-results/ otherwise)
  --no-build     do not run `cargo build --release --examples` first
  -h, --help     this text";

fn parse(args: &[String]) -> Result<HttpOptions, String> {
    let mut o = HttpOptions {
        quick: false,
        runs: 0,
        secs: 5,
        filters: Vec::new(),
        out: None,
        build: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "http" | "--http" | "--bench" => {}
            "-h" | "--help" => return Err(String::new()),
            "--quick" => o.quick = true,
            "--runs" => {
                o.runs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--runs needs a positive number")?
            }
            "--out" => o.out = Some(it.next().ok_or("--out needs a directory")?.into()),
            "--no-build" => o.build = false,
            f if !f.starts_with('-') => o.filters.push(f.to_owned()),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if o.runs == 0 {
        o.runs = if o.quick { 1 } else { 3 };
    }
    if o.quick {
        o.secs = 2;
    }
    Ok(o)
}

/// Whether the command line asks for the HTTP mode (`http` or `--http`).
pub fn wanted(args: &[String]) -> bool {
    args.iter().any(|a| a == "http" || a == "--http")
}

/// Runs the HTTP mode; exits the process on a bad command line.
pub fn main(args: &[String]) {
    crate::main_with("compare http", USAGE, parse(args), run);
}

fn run(opts: &HttpOptions) -> Result<(), String> {
    let started = Instant::now();
    let examples = crate::release_dir().join("examples");
    let (out_dir, logs) = crate::prepare(
        "compare http",
        opts.out.clone(),
        opts.filters.is_empty(),
        opts.build,
    )?;
    ensure_wrk()?;
    let nofile = procs::raise_nofile().map_err(|e| format!("cannot raise RLIMIT_NOFILE: {e}"))?;
    let loadavg_start = crate::machine::loadavg();
    let m = crate::machine::Machine::read(nofile);
    let script = logs.join("pipeline.lua");
    std::fs::write(&script, pipeline_script(PIPELINE_DEPTH))
        .map_err(|e| format!("{}: {e}", script.display()))?;

    let points = points();
    let mut outcomes: Vec<Outcome> = SERVERS
        .iter()
        .filter(|s| crate::selected(&opts.filters, s.key))
        .map(|spec| Outcome {
            spec,
            runs: points.iter().map(|_| Vec::new()).collect(),
            paced: Vec::new(),
            start_error: (!examples.join(spec.exe).exists())
                .then(|| format!("{} is not built", spec.exe)),
            stop: None,
        })
        .collect();
    if outcomes.is_empty() {
        return Err(format!("no server matches {:?}", opts.filters));
    }

    procs::pin_self(Some(procs::CLIENT_CPU));
    let mut servers: Vec<Option<procs::Server>> = Vec::new();
    for o in outcomes.iter_mut() {
        if o.start_error.is_some() {
            servers.push(None);
            continue;
        }
        let log = logs.join(format!("http-{}.log", o.spec.key));
        match procs::Server::start(&examples.join(o.spec.exe), &[], log) {
            Ok(s) => servers.push(Some(s)),
            Err(e) => {
                println!("compare http: {} did not start: {e}", o.spec.label);
                o.start_error = Some(e);
                servers.push(None);
            }
        }
    }

    // 2. wrk, interleaved: round r of every point on every server.
    for round in 0..opts.runs {
        for (pi, point) in points.iter().enumerate() {
            for (o, server) in outcomes.iter_mut().zip(servers.iter_mut()) {
                let Some(server) = server.as_mut() else {
                    continue;
                };
                // A run that shared the machine with other work is run
                // again (twice at most) and the cleanest one kept.
                let mut run: Result<WrkRun, String> = Err(String::new());
                for _ in 0..3 {
                    procs::wait_idle(crate::load::IDLE_WAIT_MAX);
                    let again = wrk_run(server, point, opts.secs, &script);
                    let cleaner = match (&again, &run) {
                        (Ok(a), Ok(r)) => a.foreign < r.foreign,
                        (Ok(_), Err(_)) => true,
                        _ => run.is_err(),
                    };
                    if cleaner {
                        run = again;
                    }
                    if run
                        .as_ref()
                        .is_ok_and(|r| r.foreign <= crate::load::SPOILED_LOAD)
                    {
                        break;
                    }
                }
                match &run {
                    Ok(r) => println!(
                        "compare http: round {} {:<28} {:<30} {:>10.0} req/s  p99 {:>8.0} µs  other load {:.2}",
                        round + 1,
                        o.spec.label,
                        point.title(),
                        r.rps,
                        r.p99,
                        r.foreign
                    ),
                    Err(e) => println!(
                        "compare http: round {} {} {}: {e}",
                        round + 1,
                        o.spec.label,
                        point.title()
                    ),
                }
                o.runs[pi].push(run);
            }
        }
    }

    // 3. Paced CPU per request.
    let paced_secs = if opts.quick { 2.0 } else { 5.0 };
    for _ in 0..opts.runs {
        for (o, server) in outcomes.iter_mut().zip(servers.iter_mut()) {
            let Some(server) = server.as_mut() else {
                continue;
            };
            procs::wait_idle(crate::load::IDLE_WAIT_MAX);
            let run = http_load::paced(server, PACED_CONNS, PACED_RATE, paced_secs);
            match &run {
                Ok(r) => println!(
                    "compare http: paced {:<28} {:>8.0} req/s  {:.2} µs CPU/request",
                    o.spec.label, r.rps, r.cpu_us
                ),
                Err(e) => println!("compare http: paced {}: {e}", o.spec.label),
            }
            o.paced.push(run);
        }
    }

    for (o, server) in outcomes.iter_mut().zip(servers) {
        if let Some(s) = server {
            let stop = s.stop();
            o.stop = Some(if stop.clean {
                "exit 0 after SIGTERM".into()
            } else {
                stop.text
            });
        }
    }
    procs::pin_self(None);

    let header = format!(
        "{}, {} × {}, Linux {}, {}, greenio {}. {} run, runs per point: {}, {} s each; \
         started at load average {loadavg_start}, ended at {}; open-files limit {nofile}; \
         {:.0} s in all",
        m.date,
        m.cpus,
        m.model,
        m.kernel,
        m.rustc,
        m.commit,
        if opts.quick { "Quick" } else { "Full" },
        opts.runs,
        opts.secs,
        crate::machine::loadavg(),
        started.elapsed().as_secs_f64()
    );
    let subtitle = format!(
        "{} · {} × {} · {} run",
        m.date,
        m.cpus,
        m.model,
        if opts.quick { "quick" } else { "full" }
    );
    let rep = http_report::Report {
        points: &points,
        outcomes: &outcomes,
        header,
        subtitle,
        opts,
    };
    let md = rep.markdown();
    let svg = rep.svg();
    for (name, text) in [("http.md", &md), ("http.svg", &svg)] {
        let path = out_dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!("\n{}", rep.targets_md());
    println!(
        "compare http: wrote http.md and http.svg to {} in {:.0} s",
        out_dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Installs wrk with apt-get when it is missing, saying so.
fn ensure_wrk() -> Result<(), String> {
    if wrk_runs() {
        return Ok(());
    }
    println!("compare http: wrk is not installed; installing the Debian package (apt-get install -y wrk)");
    let ok = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok(&["update", "-qq"]) || !ok(&["install", "-y", "-qq", "wrk"]) || !wrk_runs() {
        return Err("wrk is missing and `apt-get install -y wrk` failed (run it as root)".into());
    }
    println!("compare http: wrk installed");
    Ok(())
}

fn wrk_runs() -> bool {
    Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok_and(|o| !o.stdout.is_empty() || !o.stderr.is_empty())
}

/// A wrk script that sends `depth` requests for /plaintext per write.
fn pipeline_script(depth: usize) -> String {
    format!(
        "-- {depth} pipelined requests per write (written by benches/compare/http.rs)\n\
         init = function(args)\n\
         \x20 local r = {{}}\n\
         \x20 for i = 1, {depth} do r[i] = wrk.format(nil, \"/plaintext\") end\n\
         \x20 req = table.concat(r)\n\
         end\n\
         request = function() return req end\n"
    )
}

/// One wrk run against `server`, pinned to the client CPU.
fn wrk_run(
    server: &mut procs::Server,
    point: &Point,
    secs: u64,
    script: &Path,
) -> Result<WrkRun, String> {
    if !server.running() {
        return Err(format!("the server is gone{}", server.log_tail()));
    }
    let mut cmd = Command::new("taskset");
    cmd.arg("-c")
        .arg(procs::CLIENT_CPU.to_string())
        .args(["wrk", "-t1", "--latency", "--timeout", "10s"])
        .arg(format!("-c{}", point.conns))
        .arg(format!("-d{secs}s"));
    if point.depth > 1 {
        cmd.arg("-s").arg(script);
    }
    cmd.arg(format!("http://{}{}", server.addr, point.path));
    let before_cpu = procs::CpuTimes::read().map_err(|e| e.to_string())?;
    let before_server = procs::process_ticks(server.pid).map_err(|e| e.to_string())?;
    let before_children = procs::children_cpu_us();
    let out = run_bounded(cmd, Duration::from_secs(secs + 30))?;
    let after_server = procs::process_ticks(server.pid).unwrap_or(before_server);
    let after_cpu = procs::CpuTimes::read().map_err(|e| e.to_string())?;
    let (busy, wall) = before_cpu.busy_until(&after_cpu);
    let server_s = after_server.saturating_sub(before_server) as f64 / procs::clock_ticks();
    let wrk_s = procs::children_cpu_us().saturating_sub(before_children) as f64 / 1e6;
    let foreign = ((busy - server_s - wrk_s) / wall.max(1e-3)).max(0.0);
    parse_wrk(&out, foreign)
}

/// Runs `cmd`, killing it after `limit`; returns its stdout.
fn run_bounded(mut cmd: Command, limit: Duration) -> Result<String, String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut o) = stdout {
            use std::io::Read;
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(Some(status)) => return Err(format!("wrk: {status}")),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("wrk ran longer than {limit:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("wrk: {e}")),
        }
    }
    reader
        .join()
        .map_err(|_| "wrk's reader panicked".to_string())
}

/// The figures in wrk's report.
fn parse_wrk(out: &str, foreign: f64) -> Result<WrkRun, String> {
    let number_after = |key: &str| -> Option<f64> {
        let line = out.lines().find(|l| l.trim_start().starts_with(key))?;
        line.trim_start()[key.len()..]
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let rps = number_after("Requests/sec:").ok_or_else(|| format!("no Requests/sec in {out}"))?;
    let pct = |p: &str| -> f64 {
        out.lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(p)).then(|| w.next().and_then(duration_us))?
            })
            .unwrap_or(f64::NAN)
    };
    let mut errors = number_after("Non-2xx or 3xx responses:").unwrap_or(0.0) as u64;
    if let Some(line) = out
        .lines()
        .find(|l| l.trim_start().starts_with("Socket errors:"))
    {
        errors += line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse::<u64>().ok())
            .sum::<u64>();
    }
    Ok(WrkRun {
        rps,
        p50: pct("50%"),
        p99: pct("99%"),
        errors,
        foreign,
    })
}

/// wrk's `123.45us`, `1.23ms`, `1.00s` in µs.
fn duration_us(s: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60e6)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}
