//! The load runs: every server started and pinned, every scenario run
//! against each (interleaved rounds), spoiled runs repeated, the perf runs
//! for the user/kernel split, and every server stopped.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::procs::{self, Server};
use crate::{report, Options, Outcome, Run, Sample, Scenario, Split};

/// Longest idle wait before one run.
pub const IDLE_WAIT_MAX: Duration = Duration::from_secs(10);

/// Starts every server, runs every scenario `opts.runs` times against each
/// (interleaved), and stops them.
pub fn load_phase(
    opts: &Options,
    examples: &Path,
    client: &Path,
    logs: &Path,
    scenarios: &[Scenario],
    outcomes: &mut [Outcome],
) -> String {
    let mut servers: Vec<Option<Server>> = Vec::new();
    for o in outcomes.iter_mut() {
        if o.start_error.is_some() {
            servers.push(None);
            continue;
        }
        let log = logs.join(format!("{}.log", o.spec.key));
        match Server::start(&examples.join(o.spec.exe), o.spec.args, log) {
            Ok(s) => {
                println!(
                    "compare: {} listening on {} (pid {})",
                    o.spec.label, s.addr, s.pid
                );
                servers.push(Some(s));
            }
            Err(e) => {
                println!("compare: {} failed to start: {e}", o.spec.label);
                o.start_error = Some(e);
                servers.push(None);
            }
        }
    }
    let live = servers.iter().filter(|s| s.is_some()).count();
    let runs_of = |s: &Scenario| opts.runs + s.extra_runs;
    let total = live * scenarios.iter().map(runs_of).sum::<usize>();
    let all_runs: f64 = scenarios
        .iter()
        .map(|s| (s.secs + s.warmup + 0.6) * runs_of(s) as f64)
        .sum();
    let split: f64 = scenarios
        .iter()
        .filter(|s| s.rate > 0)
        .map(|s| s.secs + s.warmup + 1.0)
        .sum();
    println!(
        "compare: {total} runs and {live} perf runs, about {:.0} s",
        (all_runs + split) * live as f64
    );
    let mut budget = Budgets {
        idle: Duration::from_secs(if opts.quick { 15 } else { 30 }),
        retry: Duration::from_secs(if opts.quick { 10 } else { 45 }),
        retried: 0,
    };
    let mut done = 0;
    let rounds = scenarios.iter().map(runs_of).max().unwrap_or(0);
    for round in 0..rounds {
        // Runs of this round spoiled by other load (or failed): (server, scenario).
        let mut spoiled: Vec<(usize, usize)> = Vec::new();
        for (si, sc) in scenarios.iter().enumerate() {
            if round >= runs_of(sc) {
                continue;
            }
            for (oi, (o, server)) in outcomes.iter_mut().zip(servers.iter_mut()).enumerate() {
                let Some(srv) = server.as_mut() else { continue };
                done += 1;
                let tag = format!("[{done}/{total}] round {}", round + 1);
                let run = measure(client, sc, srv, &mut budget, &tag, o.spec.label);
                if run_spoiled(&run) {
                    spoiled.push((oi, si));
                }
                o.runs[si].push(run);
            }
        }
        // Run spoiled runs again, once, while the retry budget lasts; keep
        // whichever of the two had less other load.
        for (oi, si) in spoiled {
            let Some(srv) = servers[oi].as_mut() else {
                continue;
            };
            if budget.retry.is_zero() || !srv.running() {
                break;
            }
            let started = Instant::now();
            let tag = format!("[retry] round {}", round + 1);
            let again = measure(
                client,
                &scenarios[si],
                srv,
                &mut budget,
                &tag,
                outcomes[oi].spec.label,
            );
            budget.retry = budget.retry.saturating_sub(started.elapsed());
            budget.retried += 1;
            let slot = outcomes[oi].runs[si].last_mut();
            if let Some(old) = slot {
                if other_load(&again) < other_load(old) {
                    *old = again;
                }
            }
        }
    }
    let note = format!(
        "Runs repeated: {}; idle-wait budget left: {:.0} s.",
        budget.retried,
        budget.idle.as_secs_f64()
    );
    println!("compare: {note}");
    if let Some(sc) = scenarios.iter().find(|s| s.rate > 0) {
        split_runs(sc, client, logs, outcomes, &mut servers, &mut budget.idle);
    }
    for (o, server) in outcomes.iter_mut().zip(servers) {
        if let Some(s) = server {
            let stop = s.stop();
            println!("compare: {} {}", o.spec.label, stop.text);
            o.stop = Some(stop);
        }
    }
    note
}

/// Time the harness may spend waiting for an idle machine and repeating
/// spoiled runs.
#[derive(Debug)]
struct Budgets {
    /// Idle waiting left; once spent, each run gets one short probe.
    idle: Duration,
    /// Repeating spoiled runs left.
    retry: Duration,
    /// Runs repeated.
    retried: usize,
}

/// A run is spoiled when it failed or something else kept more than this
/// many CPUs busy while it ran.
pub const SPOILED_LOAD: f64 = 0.25;

fn run_spoiled(run: &Run) -> bool {
    other_load(run) > SPOILED_LOAD
}

/// The other load during a run; a failed run counts as worst.
fn other_load(run: &Run) -> f64 {
    match run {
        Run::Ok(s) => s.foreign,
        Run::Failed(_) => f64::INFINITY,
    }
}

/// One run of `sc` against `srv`, after waiting (within the budget) for an
/// idle machine; prints a progress line.
fn measure(
    client: &Path,
    sc: &Scenario,
    srv: &mut Server,
    budget: &mut Budgets,
    tag: &str,
    label: &str,
) -> Run {
    if !srv.running() {
        return Run::Failed(format!("server not running{}", srv.log_tail()));
    }
    let (waited, busy) = procs::wait_idle(IDLE_WAIT_MAX.min(budget.idle));
    budget.idle = budget.idle.saturating_sub(waited);
    let timeout = Duration::from_secs_f64(sc.secs + sc.warmup + 45.0);
    let run = procs::run_client(client, &sc.client_args(srv.addr, srv.pid), srv.pid, timeout)
        .and_then(|c| Sample::parse(&c.json, c.foreign_cpus));
    let line = match &run {
        Ok(s) => format!(
            "{} msg/s, p99 {:.0} µs, CPU {} µs/msg, other load {:.0}%{}",
            report::thousands(s.msg_per_s),
            s.p99,
            s.cpu.map_or("–".into(), |c| format!("{c:.2}")),
            s.foreign * 100.0,
            if busy >= procs::IDLE_CPUS {
                format!(" (not idle before: {:.0}%)", busy * 100.0)
            } else {
                String::new()
            }
        ),
        Err(e) => format!("FAILED: {e}"),
    };
    println!("{tag} {label:<30} {:<32} {line}", sc.title());
    match run {
        Ok(s) => Run::Ok(s),
        Err(e) => Run::Failed(e),
    }
}

/// One more paced run per server with `perf` sampling CPU 0, for the
/// user/kernel split of the server's CPU time.
fn split_runs(
    sc: &Scenario,
    client: &Path,
    logs: &Path,
    outcomes: &mut [Outcome],
    servers: &mut [Option<Server>],
    idle_budget: &mut Duration,
) {
    let mut unavailable: Option<String> = None;
    for (o, server) in outcomes.iter_mut().zip(servers.iter_mut()) {
        let Some(srv) = server.as_mut() else { continue };
        if let Some(why) = &unavailable {
            o.split = Some(Err(why.clone()));
            continue;
        }
        if !srv.running() {
            continue;
        }
        let (waited, _) = procs::wait_idle(IDLE_WAIT_MAX.min(*idle_budget));
        *idle_budget = idle_budget.saturating_sub(waited);
        let data = logs.join(format!("{}.perf.data", o.spec.key));
        let sampler = match procs::Sampler::start(data, &logs.join("perf.log")) {
            Ok(s) => s,
            Err(e) => {
                println!("compare: no perf samples: {e}");
                unavailable = Some(e.clone());
                o.split = Some(Err(e));
                continue;
            }
        };
        let timeout = Duration::from_secs_f64(sc.secs + sc.warmup + 45.0);
        let run = procs::run_client(client, &sc.client_args(srv.addr, srv.pid), srv.pid, timeout);
        let split = sampler
            .finish(srv.pid)
            .and_then(|c| run.map(|_| c))
            .map(|(user, kernel)| Split { user, kernel });
        match &split {
            Ok(s) => println!(
                "compare: perf {:<30} {} samples, {:.1}% in user space",
                o.spec.label,
                s.user + s.kernel,
                s.user_share() * 100.0
            ),
            Err(e) => println!("compare: perf {:<30} FAILED: {e}", o.spec.label),
        }
        o.split = Some(split);
    }
}
