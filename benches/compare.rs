//! compare: greenio's echo servers against the servers a user would pick
//! instead, side by side, on this machine, in one command:
//!
//! ```text
//! cargo bench --bench compare                  # the full run, ~9 minutes on 2 cores
//! cargo bench --bench compare -- --quick       # a ~2 minute smoke run
//! cargo bench --bench compare -- greenio mio   # only servers whose name contains a filter
//! cargo bench --bench compare -- --help        # every option
//! cargo bench --bench compare -- http          # the HTTP servers under wrk (compare/http.rs)
//! ```
//!
//! A full run without filters writes `results/` (echo.md, echo-msgs.svg,
//! echo-cpu.svg, echo-runs.csv, memory.md, micro.md); a quick or filtered run
//! writes the same files to `target/compare-results/`, so a smoke run never
//! overwrites the committed figures.
//!
//! # What it does
//!
//! 1. `cargo build --release --examples` (through `$CARGO`), which builds
//!    greenio's servers, the peers in `benches/peers/` and the load generator
//!    `echo_client` (`benches/load/echo_client.rs`).
//! 2. **Load**: starts every server at once, each pinned to CPU 0 with
//!    `taskset`, and runs `echo_client --json --server-pid PID` pinned to CPU
//!    1 against each in turn: closed loop at C = 1, 10, 100, 1000, 10000
//!    connections with 64 B messages, C = 100 with 16 KiB, and a paced
//!    50,000 msg/s at C = 100. Runs are interleaved (round 1 of every
//!    scenario on every server, then round 2, ...), so a burst of load from
//!    elsewhere hurts one run of many servers rather than every run of one.
//!    Before each run the harness waits (within a budget) for the machine to
//!    go idle, and around each run it measures the CPU used by anything but
//!    the server and the client ("other load" in the tables). A run with
//!    more than a quarter of a CPU of other load is run again once at the
//!    end of its round (within a budget) and the cleaner of the two kept.
//!    Then one more paced run per server with `perf record -e cpu-clock`
//!    sampling CPU 0, for a precise user/kernel split of the server's CPU
//!    time (`/proc` splits it by the 250 Hz tick; skipped if perf is missing
//!    or not allowed).
//! 3. Every server is stopped with SIGTERM and must exit 0 within 5 s.
//! 4. **Memory**: each server, started afresh, holds 10,000 idle connections
//!    opened by the harness (see `compare/memory.rs`).
//! 5. **Micro**: `cargo bench --bench runtime` and, when the workspace has
//!    it, `cargo bench --bench sync`; their tables go to micro.md.
//! 6. Medians, spreads, the issue's target ratios with met/missed, the
//!    markdown tables and the two SVG charts.
//!
//! Rejected: one server process per run (seconds of start-up and idle
//! waiting per run, for no gain: every run has its own warm-up), and running
//! all of one server's runs back to back (a build elsewhere on the machine
//! would then skew one server's figures only).
//!
//! Every wait is bounded: a client run by its window plus 45 s, a server
//! start by 20 s and its stop by 5 s, idle waits by 10 s each and 30 s in
//! all, repeated runs by 45 s in all.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[path = "compare/http.rs"]
mod http;
#[path = "compare/load.rs"]
mod load;
#[path = "compare/machine.rs"]
mod machine;
#[path = "compare/memory.rs"]
mod memory;
#[path = "compare/micro.rs"]
mod micro;
#[path = "compare/procs.rs"]
mod procs;
#[path = "compare/report.rs"]
mod report;
#[path = "compare/svg.rs"]
mod svg;

use memory::Memory;
use procs::StopOutcome;

/// An echo server under test.
#[derive(Debug)]
pub struct ServerSpec {
    /// Short name, matched by the command-line filters.
    pub key: &'static str,
    /// Name in tables and charts.
    pub label: &'static str,
    /// Example binary in `target/release/examples/`.
    pub exe: &'static str,
    /// Arguments before `--listen 127.0.0.1:0`.
    pub args: &'static [&'static str],
}

impl ServerSpec {
    /// The command line, for the report.
    pub fn command(&self) -> String {
        let mut c = format!("taskset -c {} {}", procs::SERVER_CPU, self.exe);
        for a in self.args {
            c.push(' ');
            c.push_str(a);
        }
        c + " --listen 127.0.0.1:0"
    }
}

/// The servers, in table order.
pub const SERVERS: &[ServerSpec] = &[
    ServerSpec {
        key: "greenio",
        label: "greenio green threads",
        exe: "echo",
        args: &[],
    },
    ServerSpec {
        key: "greenio-callback",
        label: "greenio callback reactor",
        exe: "echo_callback",
        args: &[],
    },
    ServerSpec {
        key: "mio",
        label: "hand-written mio",
        exe: "peer_mio_echo",
        args: &[],
    },
    ServerSpec {
        key: "std",
        label: "std::net thread per connection",
        exe: "peer_std_echo",
        args: &[],
    },
    ServerSpec {
        key: "tokio-current",
        label: "tokio current-thread",
        exe: "peer_tokio_echo",
        args: &["--flavor", "current"],
    },
    ServerSpec {
        key: "tokio-multi1",
        label: "tokio multi-thread, 1 worker",
        exe: "peer_tokio_echo",
        args: &["--flavor", "multi1"],
    },
    ServerSpec {
        key: "may",
        label: "may, 1 worker",
        exe: "peer_may_echo",
        args: &[],
    },
];

/// One load setting of `echo_client`.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Connections (`-c`).
    pub conns: usize,
    /// Bytes per message (`-b`).
    pub bytes: usize,
    /// Offered msg/s (`--rate`), 0 for closed loop.
    pub rate: u32,
    /// Measured window in seconds (`--secs`).
    pub secs: f64,
    /// Warm-up in seconds (`--warmup`).
    pub warmup: f64,
    /// Runs beyond `--runs` (the paced point carries the CPU targets).
    pub extra_runs: usize,
}

impl Scenario {
    /// `C = 100, 64 B, closed loop`.
    pub fn title(&self) -> String {
        let mode = if self.rate > 0 {
            format!("paced {} msg/s", report::thousands(f64::from(self.rate)))
        } else {
            "closed loop".into()
        };
        format!(
            "C = {}, {}, {mode}",
            report::thousands(self.conns as f64),
            report::bytes_label(self.bytes)
        )
    }

    /// `echo_client` arguments against `addr`, reporting on `pid`.
    fn client_args(&self, addr: std::net::SocketAddr, pid: u32) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--addr".into(),
            addr.to_string(),
            "-c".into(),
            self.conns.to_string(),
            "-b".into(),
            self.bytes.to_string(),
            "--secs".into(),
            self.secs.to_string(),
            "--warmup".into(),
            self.warmup.to_string(),
            "--server-pid".into(),
            pid.to_string(),
            "--json".into(),
        ];
        if self.rate > 0 {
            a.extend(["--rate".into(), self.rate.to_string()]);
        }
        a
    }
}

/// The scenarios of a full or a quick run.
fn scenarios(quick: bool) -> Vec<Scenario> {
    // Closed-loop figures settle within a fraction of a second. CPU per
    // message at the paced rate needs longer windows, because /proc reports
    // CPU time in 10 ms ticks (3 s at 50,000 msg/s: within about ±2%), and
    // more runs, because it carries the targets and a busy machine spoils
    // some of them.
    let (closed_secs, closed_warmup, paced_secs, paced_warmup, paced_extra) = if quick {
        (0.5, 0.25, 1.0, 0.25, 0)
    } else {
        (1.0, 0.3, 3.0, 0.5, 2)
    };
    let closed = |conns, bytes| Scenario {
        conns,
        bytes,
        rate: 0,
        secs: closed_secs,
        warmup: closed_warmup,
        extra_runs: 0,
    };
    let mut v: Vec<Scenario> = [1, 10, 100, 1000, 10_000]
        .into_iter()
        .map(|c| closed(c, 64))
        .collect();
    v.push(closed(100, 16 * 1024));
    v.push(Scenario {
        conns: 100,
        bytes: 64,
        rate: 50_000,
        secs: paced_secs,
        warmup: paced_warmup,
        extra_runs: paced_extra,
    });
    v
}

/// The figures of one successful run, from `echo_client --json`.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Messages per second.
    pub msg_per_s: f64,
    /// Latency percentiles, µs.
    pub p50: f64,
    /// 99th percentile, µs.
    pub p99: f64,
    /// 99.9th percentile, µs.
    pub p999: f64,
    /// Server CPU µs per message, user + system.
    pub cpu: Option<f64>,
    /// User-space part.
    pub user: Option<f64>,
    /// System part.
    pub sys: Option<f64>,
    /// Messages measured.
    pub messages: f64,
    /// Connections established.
    pub connections: f64,
    /// Errors of every kind.
    pub errors: f64,
    /// CPUs busy with other work during the run.
    pub foreign: f64,
    /// The line as printed, for echo-runs.csv.
    pub json: String,
}

impl Sample {
    fn parse(json: &str, foreign: f64) -> Result<Sample, String> {
        let need = |k: &str| json_number(json, k).ok_or_else(|| format!("no {k:?} in {json}"));
        Ok(Sample {
            msg_per_s: need("msg_per_s")?,
            p50: need("p50")?,
            p99: need("p99")?,
            p999: need("p999")?,
            cpu: json_number(json, "us_per_msg"),
            user: json_number(json, "user_us_per_msg"),
            sys: json_number(json, "sys_us_per_msg"),
            messages: need("messages")?,
            connections: need("connections")?,
            errors: need("errors")?,
            foreign,
            json: json.to_owned(),
        })
    }
}

/// The number after `"key":` in a flat JSON line (`null` gives `None`).
fn json_number(json: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\":");
    let start = json.find(&pat)? + pat.len();
    let rest = &json[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

/// One run: its figures, or why it failed.
#[derive(Debug)]
pub enum Run {
    /// The client ran and reported.
    Ok(Sample),
    /// What went wrong.
    Failed(String),
}

/// Everything measured for one server.
#[derive(Debug)]
pub struct Outcome {
    /// Which server.
    pub spec: &'static ServerSpec,
    /// Runs per scenario.
    pub runs: Vec<Vec<Run>>,
    /// Why the server did not run, if it did not.
    pub start_error: Option<String>,
    /// How it stopped after the load runs.
    pub stop: Option<StopOutcome>,
    /// The idle-connection figures, or why there are none.
    pub memory: Option<Result<Memory, String>>,
    /// How it stopped after the memory test.
    pub memory_stop: Option<StopOutcome>,
    /// perf's samples of the server in one extra paced run, or why there are none.
    pub split: Option<Result<Split, String>>,
}

/// perf's samples of a server's CPU time in one paced run (see
/// `procs::Sampler`).
#[derive(Debug, Clone, Copy)]
pub struct Split {
    /// Samples in user space.
    pub user: u64,
    /// Samples in the kernel.
    pub kernel: u64,
}

impl Split {
    /// The user-space share of the server's CPU time.
    pub fn user_share(&self) -> f64 {
        self.user as f64 / (self.user + self.kernel).max(1) as f64
    }
}

impl Outcome {
    /// Whether the server took part in the load runs.
    pub fn ran(&self) -> bool {
        self.start_error.is_none() && self.runs.iter().any(|r| !r.is_empty())
    }
}

/// The command line.
#[derive(Debug)]
struct Options {
    quick: bool,
    runs: usize,
    filters: Vec<String>,
    out: Option<PathBuf>,
    build: bool,
    load: bool,
    memory: bool,
    micro: bool,
    memory_conns: usize,
}

/// Whether the server `key` is selected by the command-line `filters`
/// (every server is when there are none). Shared with the HTTP mode.
fn selected(filters: &[String], key: &str) -> bool {
    filters.is_empty() || filters.iter().any(|f| key.contains(f.as_str()))
}

const USAGE: &str = "\
usage: cargo bench --bench compare -- [options] [SERVER...]

Runs every echo server under the same load, pinned apart, and writes the
tables and charts. SERVER filters keep servers whose name contains them:
greenio, greenio-callback, mio, std, tokio-current, tokio-multi1, may.

  --quick        1 run per point, short windows, 2,000 idle connections (~2 min)
  --runs N       runs per point (default 3; 1 with --quick)
  --conns N      idle connections in the memory test (default 10000)
  --out DIR      where to write (default: results/ for a full unfiltered run,
                 target/compare-results/ otherwise)
  --no-build     do not run `cargo build --release --examples` first
  --no-load      skip the load runs
  --no-memory    skip the idle-connection memory test
  --no-micro     skip `cargo bench --bench runtime` / `--bench sync`
  -h, --help     this text

`cargo bench --bench compare -- http [--help]` runs the HTTP servers instead.";

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        runs: 0,
        filters: Vec::new(),
        out: None,
        build: true,
        load: true,
        memory: true,
        micro: true,
        memory_conns: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name} needs a positive number"))
        };
        match a.as_str() {
            "-h" | "--help" => return Err(String::new()),
            // `cargo bench` passes --bench to harness = false targets.
            "--bench" => {}
            "--quick" => o.quick = true,
            "--runs" => o.runs = number("--runs")?,
            "--conns" => o.memory_conns = number("--conns")?,
            "--out" => o.out = Some(args.next().ok_or("--out needs a directory")?.into()),
            "--no-build" => o.build = false,
            "--no-load" => o.load = false,
            "--no-memory" => o.memory = false,
            "--no-micro" => o.micro = false,
            f if !f.starts_with('-') => o.filters.push(f.to_owned()),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if o.runs == 0 {
        o.runs = if o.quick { 1 } else { 3 };
    }
    if o.memory_conns == 0 {
        o.memory_conns = if o.quick { 2_000 } else { 10_000 };
    }
    Ok(o)
}

/// The workspace root (where `Cargo.toml` and `results/` are).
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/release/` of this build: this binary runs from its `deps/`.
fn release_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent()?.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| workspace().join("target/release"))
}

/// The cargo that runs this benchmark (`$CARGO`), or `cargo` from `PATH`.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if http::wanted(&args) {
        return http::main(&args);
    }
    main_with("compare", USAGE, parse_options(), run);
}

/// The end of a `main`: an empty parse error prints `usage` (for
/// `--help`), another prints `name: error` with it and exits 2; then runs
/// `run`, exiting 1 after printing its error.
fn main_with<O>(
    name: &str,
    usage: &str,
    parsed: Result<O, String>,
    run: impl FnOnce(&O) -> Result<(), String>,
) {
    let opts = match parsed {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{usage}");
            return;
        }
        Err(e) => {
            eprintln!("{name}: {e}\n\n{usage}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&opts) {
        eprintln!("{name}: {e}");
        std::process::exit(1);
    }
}

/// The directories a run writes to, created: `out` or else `results/`
/// (for a run whose figures are the committed ones, `results`) or
/// `target/compare-results/`; and `target/compare-logs/`. With `build`,
/// first `cargo build --release --examples` (`who` names the caller in
/// the message).
fn prepare(
    who: &str,
    out: Option<PathBuf>,
    results: bool,
    build: bool,
) -> Result<(PathBuf, PathBuf), String> {
    let root = workspace();
    let target = release_dir()
        .parent()
        .map_or(root.join("target"), Path::to_path_buf);
    let out_dir = out.unwrap_or_else(|| {
        if results {
            root.join("results")
        } else {
            target.join("compare-results")
        }
    });
    let logs = target.join("compare-logs");
    for d in [&out_dir, &logs] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    if build {
        println!("{who}: cargo build --release --examples");
        let status = Command::new(cargo())
            .args(["build", "--release", "--examples"])
            .current_dir(&root)
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("cargo build --release --examples: {status}"));
        }
    }
    Ok((out_dir, logs))
}

fn run(opts: &Options) -> Result<(), String> {
    let started = Instant::now();
    let root = workspace();
    let release = release_dir();
    let examples = release.join("examples");
    let full = !opts.quick && opts.filters.is_empty() && opts.load && opts.memory && opts.micro;
    let (out_dir, logs) = prepare("compare", opts.out.clone(), full, opts.build)?;
    let client = examples.join("echo_client");
    if opts.load && !client.exists() {
        return Err(format!("{} is missing", client.display()));
    }
    let nofile = procs::raise_nofile().map_err(|e| format!("cannot raise RLIMIT_NOFILE: {e}"))?;
    let machine = machine::Machine::read(nofile);
    let scenarios = scenarios(opts.quick);

    let mut outcomes: Vec<Outcome> = SERVERS
        .iter()
        .filter(|s| selected(&opts.filters, s.key))
        .map(|spec| Outcome {
            spec,
            runs: scenarios.iter().map(|_| Vec::new()).collect(),
            start_error: (!examples.join(spec.exe).exists())
                .then(|| format!("{} is not built (no such example yet)", spec.exe)),
            stop: None,
            memory: None,
            memory_stop: None,
            split: None,
        })
        .collect();
    if outcomes.is_empty() {
        return Err(format!("no server matches {:?}", opts.filters));
    }
    for o in outcomes.iter().filter(|o| o.start_error.is_some()) {
        println!(
            "compare: skipping {}: {}",
            o.spec.label,
            o.start_error.as_deref().unwrap_or("")
        );
    }

    // The harness's own work (waiting, the memory test's sockets) stays off
    // the servers' CPU.
    procs::pin_self(Some(procs::CLIENT_CPU));
    let mut load_note = String::new();
    if opts.load {
        load_note = load::load_phase(opts, &examples, &client, &logs, &scenarios, &mut outcomes);
    }
    if opts.memory {
        memory::memory_phase(opts, &examples, &logs, &mut outcomes);
    }
    procs::pin_self(None);
    let micro = if opts.micro {
        micro::micro_phase(opts, &root)
    } else {
        String::new()
    };

    // Reports.
    let elapsed = started.elapsed();
    let header = machine.markdown(opts, elapsed);
    let rep = report::Report {
        scenarios: &scenarios,
        outcomes: &outcomes,
        header,
        method: machine::method(&scenarios, opts.runs, &load_note),
        memory_conns: opts.memory_conns,
    };
    let targets = rep.targets();
    let subtitle = format!(
        "{} · {} × {} · {}",
        machine.date,
        machine.cpus,
        machine.model,
        if opts.quick { "quick run" } else { "full run" }
    );
    let mut files: Vec<(&str, String)> = Vec::new();
    if opts.load {
        files.push(("echo.md", rep.echo_md(&targets)));
        files.push(("echo-msgs.svg", rep.throughput_svg(&subtitle)));
        files.push(("echo-cpu.svg", rep.cpu_svg(&subtitle)));
        files.push(("echo-runs.csv", report::runs_csv(&scenarios, &outcomes)));
    }
    if opts.memory {
        files.push(("memory.md", rep.memory_md(&targets)));
    }
    if opts.micro {
        files.push((
            "micro.md",
            format!("# Micro benchmarks\n\n{}\n{micro}", rep.header),
        ));
    }
    for (name, text) in &files {
        let path = out_dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }

    println!("\n## Targets\n");
    print!("{}", report::targets_md(&targets));
    if opts.load {
        println!("\n{}", section(&rep.echo_md(&targets), "## Closed loop"));
    }
    println!(
        "\ncompare: wrote {} files to {} in {:.0} s",
        files.len(),
        out_dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The part of `md` from the line `start` up to the next `## ` heading.
fn section(md: &str, start: &str) -> String {
    let Some(i) = md.find(start) else {
        return String::new();
    };
    let rest = &md[i..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |j| j + 3);
    rest[..end].trim_end().to_owned()
}
