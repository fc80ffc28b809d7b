//! From runs to results: medians and spreads, the targets as ratios
//! with a verdict, and the markdown and SVG files in `results/`.

use std::borrow::Borrow;
use std::fmt::Write as _;

use crate::load::SPOILED_LOAD;
use crate::svg::{self, Bar, Series, Spread};
use crate::{Outcome, Run, Sample, Scenario};

/// The median and spread of `values`, or `None` for none.
pub fn spread(values: &[f64]) -> Option<Spread> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Spread {
        med,
        min: v[0],
        max: v[n - 1],
    })
}

/// Fewest clean runs a point needs before its spoiled runs are left out.
const MIN_CLEAN: usize = 2;

/// The runs of one server in one scenario that its figures are made of:
/// the successful runs, without the spoiled ones (more than
/// [`SPOILED_LOAD`] CPUs of other load) when at least [`MIN_CLEAN`] clean
/// runs remain. echo-runs.csv keeps every run.
fn samples(o: &Outcome, sc: usize) -> Vec<&Sample> {
    let ok: Vec<&Sample> = o
        .runs
        .get(sc)
        .map(|runs| {
            runs.iter()
                .filter_map(|r| match r {
                    Run::Ok(s) => Some(s),
                    Run::Failed(_) => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let clean: Vec<&Sample> = ok
        .iter()
        .copied()
        .filter(|s| s.foreign <= SPOILED_LOAD)
        .collect();
    if clean.len() >= MIN_CLEAN {
        clean
    } else {
        ok
    }
}

/// `3` when every run counts, `2/3` when one was failed or left out.
fn runs_used(o: &Outcome, sc: usize) -> String {
    let all = o.runs.get(sc).map_or(0, Vec::len);
    let used = samples(o, sc).len();
    if used == all {
        all.to_string()
    } else {
        format!("{used}/{all}")
    }
}

/// Median and spread of one figure of one server in one scenario.
fn figure(o: &Outcome, sc: usize, f: impl Fn(&Sample) -> Option<f64>) -> Option<Spread> {
    let v: Vec<f64> = samples(o, sc).into_iter().filter_map(f).collect();
    spread(&v)
}

/// User-space ns per message pooled over the runs (every run's user time
/// summed over every run's messages), steadier than a median of the
/// tick-sampled per-run figures.
fn pooled_user_ns(o: &Outcome, sc: usize) -> Option<f64> {
    let s = samples(o, sc);
    let msgs: f64 = s.iter().map(|s| s.messages).sum();
    let user: f64 = s
        .iter()
        .filter_map(|s| s.user.map(|u| u * s.messages))
        .sum();
    (msgs > 0.0 && s.iter().all(|s| s.user.is_some())).then(|| user / msgs * 1000.0)
}

/// User-space ns per message at the paced rate: perf's user share of the
/// median CPU per message when there are perf samples, else the /proc
/// figure pooled over the runs. The second value names the source.
fn user_ns(o: &Outcome, p: usize) -> Option<(f64, &'static str)> {
    match &o.split {
        Some(Ok(split)) => {
            figure(o, p, |s| s.cpu).map(|c| (c.med * split.user_share() * 1000.0, "perf"))
        }
        _ => pooled_user_ns(o, p).map(|v| (v, "/proc")),
    }
}

/// `1234567.0` as `1,234,567`.
pub fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn with_spread(s: Option<Spread>, fmt: impl Fn(f64) -> String) -> String {
    match s {
        Some(s) if s.min == s.max => fmt(s.med),
        Some(s) => format!("{} ({}–{})", fmt(s.med), fmt(s.min), fmt(s.max)),
        None => "–".to_owned(),
    }
}

fn med(s: Option<Spread>, fmt: impl Fn(f64) -> String) -> String {
    s.map_or("–".to_owned(), |s| fmt(s.med))
}

/// One of the targets, measured.
#[derive(Debug)]
pub struct Target {
    /// What is compared.
    pub what: String,
    /// The measured ratio or value, with the figures it comes from.
    pub measured: String,
    /// The goal.
    pub goal: String,
    /// Met, missed, or `None` when it could not be measured (or is information).
    pub verdict: Option<bool>,
    /// The goal lies within the ratio's range over the runs (smallest over
    /// largest to largest over smallest): the verdict could go either way.
    pub noisy: bool,
}

impl Target {
    fn verdict_text(&self) -> String {
        let v = match self.verdict {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "n/a",
        };
        if self.noisy {
            format!("{v} (within the runs' spread)")
        } else {
            v.to_owned()
        }
    }
}

/// A single value as a spread.
fn point(v: f64) -> Spread {
    Spread {
        med: v,
        min: v,
        max: v,
    }
}

/// Everything the reports are made from.
#[derive(Debug)]
pub struct Report<'a> {
    /// Scenarios, in run order.
    pub scenarios: &'a [Scenario],
    /// Per server, in the order of `crate::SERVERS`.
    pub outcomes: &'a [Outcome],
    /// Markdown lines describing the machine and the run.
    pub header: String,
    /// Markdown paragraph on how the load runs were made.
    pub method: String,
    /// Connections held in the memory test.
    pub memory_conns: usize,
}

impl Report<'_> {
    fn find(&self, key: &str) -> Option<&Outcome> {
        self.outcomes.iter().find(|o| o.spec.key == key)
    }

    fn paced(&self) -> Option<usize> {
        self.scenarios.iter().position(|s| s.rate > 0)
    }

    fn closed64(&self) -> Vec<(usize, usize)> {
        self.scenarios
            .iter()
            .enumerate()
            .filter(|(_, s)| s.rate == 0 && s.bytes == 64)
            .map(|(i, s)| (s.conns, i))
            .collect()
    }

    /// The targets, as ratios of medians.
    pub fn targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        let g = self.find("greenio");
        let m = self.find("mio");
        let tc = self.find("tokio-current");
        let may = self.find("may");
        let cb = self.find("greenio-callback");
        let cpu = |o: Option<&Outcome>, sc: usize| o.and_then(|o| figure(o, sc, |s| s.cpu));
        if let Some(p) = self.paced() {
            let rate = thousands(f64::from(self.scenarios[p].rate));
            let us = |v: f64| format!("{v:.2} µs");
            t.push(ratio(
                format!("greenio CPU/msg vs hand-written mio, {rate} msg/s"),
                cpu(g, p),
                cpu(m, p),
                1.03,
                us,
            ));
            let user = |o: Option<&Outcome>| o.and_then(|o| user_ns(o, p));
            let source = |a: Option<(f64, &str)>, b: Option<(f64, &str)>| match (a, b) {
                (Some((_, x)), Some((_, y))) if x == y => format!(" ({x})"),
                (Some((_, x)), Some((_, y))) => format!(" ({x} vs {y})"),
                _ => String::new(),
            };
            let ns = |v: f64| format!("{v:.0} ns");
            t.push(ratio(
                format!(
                    "greenio user-space ns/msg vs mio{}",
                    source(user(g), user(m))
                ),
                user(g).map(|u| point(u.0)),
                user(m).map(|u| point(u.0)),
                2.0,
                ns,
            ));
            t.push(ratio_lt(
                format!(
                    "greenio user-space ns/msg vs tokio current-thread{}",
                    source(user(g), user(tc))
                ),
                user(g).map(|u| point(u.0)),
                user(tc).map(|u| point(u.0)),
                ns,
            ));
            t.push(ratio(
                "greenio CPU/msg vs may (1 worker)".into(),
                cpu(g, p),
                cpu(may, p),
                0.95,
                us,
            ));
            let p99 = |o: Option<&Outcome>| o.and_then(|o| figure(o, p, |s| Some(s.p99)));
            t.push(ratio(
                format!("greenio p99 latency vs tokio current-thread, {rate} msg/s"),
                p99(g),
                p99(tc),
                1.0,
                |v| format!("{v:.0} µs"),
            ));
            t.push(ratio(
                format!("greenio CPU/msg vs its callback twin (echo_callback), {rate} msg/s"),
                cpu(g, p),
                cpu(cb, p),
                1.0,
                us,
            ));
            t.push(ratio(
                "callback reactor CPU/msg vs hand-written mio".into(),
                cpu(cb, p),
                cpu(m, p),
                1.03,
                us,
            ));
        }
        let rate =
            |o: Option<&Outcome>, sc: usize| o.and_then(|o| figure(o, sc, |s| Some(s.msg_per_s)));
        for (c, sc) in self.closed64() {
            t.push(ratio_ge(
                format!(
                    "greenio closed-loop msg/s vs mio, C = {}, 64 B",
                    thousands(c as f64)
                ),
                rate(g, sc),
                rate(m, sc),
                0.97,
            ));
        }
        if let Some(sc) = self
            .scenarios
            .iter()
            .position(|s| s.rate == 0 && s.bytes > 64)
        {
            let mut x = ratio_ge(
                format!(
                    "greenio closed-loop msg/s vs mio, C = {}, {} (information)",
                    self.scenarios[sc].conns,
                    bytes_label(self.scenarios[sc].bytes)
                ),
                rate(g, sc),
                rate(m, sc),
                0.97,
            );
            x.verdict = None;
            x.noisy = false;
            t.push(x);
        }
        let mem = g
            .and_then(|o| o.memory.as_ref())
            .and_then(|m| m.as_ref().ok())
            .and_then(|m| m.bytes_per_conn());
        t.push(Target {
            what: format!(
                "greenio RSS per idle connection ({} connections, with its green thread)",
                thousands(self.memory_conns as f64)
            ),
            measured: mem.map_or("not measured".into(), |b| {
                format!("{:.1} KiB ({} B)", b / 1024.0, thousands(b))
            }),
            goal: "≤ 12 KiB".into(),
            verdict: mem.map(|b| b <= 12.0 * 1024.0),
            noisy: false,
        });
        t
    }

    /// results/echo.md
    pub fn echo_md(&self, targets: &[Target]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Echo servers side by side\n\n{}\n{}",
            self.header, self.method
        );
        let _ = writeln!(out, "## Targets (issue 7)\n");
        out.push_str(&targets_md(targets));
        let _ = writeln!(
            out,
            "\nRatios are of medians (of the runs counted under *Every scenario*). User-space ns/msg (*perf*) is the median CPU per \
             message times the user-space share of `perf record -e cpu-clock` samples \
             of the server in one more paced run; (*/proc*) is the user time reported \
             by `/proc/PID/stat`, pooled over the paced runs. The kernel splits user and \
             system time by the scheduler tick, so the /proc figure is coarse (a few \
             dozen ticks of user time per run). *Runs a–b×* is the ratio's range over \
             the runs (smallest over largest, largest over smallest); when the goal lies \
             inside it the verdict says *within the runs' spread*: on this virtual machine \
             run-to-run spread is often larger than the 3% the goals ask for.\n"
        );
        let closed = self.closed64();
        if !closed.is_empty() {
            let _ = writeln!(out, "## Closed loop, 64 B messages: msg/s\n");
            let _ = writeln!(out, "![msg/s against connections](echo-msgs.svg)\n");
            let mut head = "| server |".to_owned();
            let mut rule = "|---|".to_owned();
            for (c, _) in &closed {
                let _ = write!(head, " C = {} |", thousands(*c as f64));
                rule.push_str("---:|");
            }
            let _ = writeln!(out, "{head}\n{rule}");
            for o in self.outcomes.iter().filter(|o| o.ran()) {
                let _ = write!(out, "| {} |", o.spec.label);
                for (_, sc) in &closed {
                    let _ = write!(
                        out,
                        " {} |",
                        with_spread(figure(o, *sc, |s| Some(s.msg_per_s)), thousands)
                    );
                }
                out.push('\n');
            }
            out.push('\n');
        }
        if let Some(p) = self.paced() {
            let sc = &self.scenarios[p];
            let _ = writeln!(
                out,
                "## Server CPU per message at {} msg/s (C = {}, {})\n",
                thousands(f64::from(sc.rate)),
                sc.conns,
                bytes_label(sc.bytes)
            );
            let _ = writeln!(out, "![CPU per message](echo-cpu.svg)\n");
            let _ = writeln!(
                out,
                "| server | CPU µs/msg | user ns/msg (perf) | perf samples, user share | user ns/msg (/proc, pooled) | p99 µs |"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
            for o in self.outcomes.iter().filter(|o| o.ran()) {
                let cpu = figure(o, p, |s| s.cpu);
                let (perf_ns, share) = match (&o.split, cpu) {
                    (Some(Ok(s)), Some(c)) => (
                        format!("{:.0}", c.med * s.user_share() * 1000.0),
                        format!(
                            "{}, {:.1}%",
                            thousands((s.user + s.kernel) as f64),
                            s.user_share() * 100.0
                        ),
                    ),
                    (Some(Err(e)), _) => ("–".into(), e.clone()),
                    _ => ("–".into(), "–".into()),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {perf_ns} | {share} | {} | {} |",
                    o.spec.label,
                    with_spread(cpu, |v| format!("{v:.2}")),
                    pooled_user_ns(o, p).map_or("–".into(), |v| format!("{v:.0}")),
                    with_spread(figure(o, p, |s| Some(s.p99)), |v| format!("{v:.0}")),
                );
            }
            out.push('\n');
        }
        let _ = writeln!(out, "## Every scenario\n");
        let _ = writeln!(
            out,
            "*Runs*: runs the figures are made of; a run during which other work kept \
             more than {:.0}% of a CPU busy is left out when at least {MIN_CLEAN} cleaner runs \
             remain (every run is in echo-runs.csv). \
             msg/s, p99 and CPU: median (min–max) of the runs; p50 and p99.9: median. \
             CPU is the server's user + system µs per message over the measured window. \
             *Other load*: CPUs busy with neither the server nor the client while the \
             client ran, host steal included (median, in % of one CPU; it is elapsed time × CPUs \
             − idle time − the server's and the client's CPU time, so the kernel's own work \
             entering and leaving idle counts too: about 10–15% at C = 1).\n",
            SPOILED_LOAD * 100.0
        );
        for (i, sc) in self.scenarios.iter().enumerate() {
            let _ = writeln!(
                out,
                "### {} ({} s measured after {} s warm-up)\n",
                sc.title(),
                sc.secs,
                sc.warmup
            );
            let _ = writeln!(
                out,
                "| server | runs | msg/s | p50 µs | p99 µs | p99.9 µs | CPU µs/msg | user | sys | other load | errors |"
            );
            let _ = writeln!(
                out,
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
            let mut failures = Vec::new();
            for o in self.outcomes.iter().filter(|o| o.ran()) {
                let errors: f64 = samples(o, i).iter().map(|s| s.errors).sum();
                let short_conns = samples(o, i)
                    .iter()
                    .filter(|s| (s.connections as usize) < sc.conns)
                    .count();
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}{} |",
                    o.spec.label,
                    runs_used(o, i),
                    with_spread(figure(o, i, |s| Some(s.msg_per_s)), thousands),
                    med(figure(o, i, |s| Some(s.p50)), |v| format!("{v:.0}")),
                    with_spread(figure(o, i, |s| Some(s.p99)), |v| format!("{v:.0}")),
                    med(figure(o, i, |s| Some(s.p999)), |v| format!("{v:.0}")),
                    with_spread(figure(o, i, |s| s.cpu), |v| format!("{v:.2}")),
                    med(figure(o, i, |s| s.user), |v| format!("{v:.2}")),
                    med(figure(o, i, |s| s.sys), |v| format!("{v:.2}")),
                    med(figure(o, i, |s| Some(s.foreign * 100.0)), |v| format!(
                        "{v:.0}%"
                    )),
                    thousands(errors),
                    if short_conns > 0 {
                        format!(" ({short_conns} runs short of connections)")
                    } else {
                        String::new()
                    }
                );
                if let Some(runs) = o.runs.get(i) {
                    for r in runs {
                        if let Run::Failed(why) = r {
                            failures.push(format!("- {}: {}", o.spec.label, why));
                        }
                    }
                }
            }
            if !failures.is_empty() {
                let _ = writeln!(out, "\nFailed runs:\n{}", failures.join("\n"));
            }
            out.push('\n');
        }
        let _ = writeln!(out, "## Servers\n");
        let _ = writeln!(out, "| server | command | stopped by SIGTERM |");
        let _ = writeln!(out, "|---|---|---|");
        for o in self.outcomes {
            let stop = match (&o.start_error, &o.stop) {
                (Some(e), _) => format!("not run: {e}"),
                (None, Some(s)) => s.text.clone(),
                (None, None) => "–".into(),
            };
            let _ = writeln!(
                out,
                "| {} | `{}` | {} |",
                o.spec.label,
                o.spec.command(),
                stop
            );
        }
        out
    }

    /// results/memory.md
    pub fn memory_md(&self, targets: &[Target]) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Memory per idle connection\n\n{}", self.header);
        let _ = writeln!(
            out,
            "Each server, freshly started, holds {} idle connections opened by the \
             harness; each connection first carried one 8-byte message and its echo, so \
             it has been accepted and has its green thread, task or OS thread. *Per \
             connection* is (`VmRSS` with the connections − `VmRSS` before) / \
             connections; kernel socket buffers are not in a resident set and are not \
             counted for any server. Peers use their default 4 KiB per-connection buffer; \
             greenio's `examples/echo.rs` reads into a 4 KiB buffer on its green thread's stack.\n",
            thousands(self.memory_conns as f64)
        );
        let _ = writeln!(
            out,
            "| server | connections | RSS before | RSS with connections | per connection | green-thread stacks | notes |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---|---|");
        for o in self.outcomes {
            let Some(m) = &o.memory else { continue };
            match m {
                Err(e) => {
                    let _ = writeln!(out, "| {} | – | – | – | – | – | {e} |", o.spec.label);
                }
                Ok(m) => {
                    let per = m.bytes_per_conn().map_or("–".into(), |b| {
                        format!("{:.1} KiB ({} B)", b / 1024.0, thousands(b))
                    });
                    let stacks = match m.stacks {
                        Some((before, after)) if m.open > 0 => {
                            let delta = after.rss_kib as f64 - before.rss_kib as f64;
                            format!(
                                "{} mappings ({} before), {} KiB resident: {:.1} KiB touched per connection",
                                thousands(after.count as f64),
                                thousands(before.count as f64),
                                thousands(after.rss_kib as f64),
                                delta / m.open as f64
                            )
                        }
                        _ => "–".into(),
                    };
                    let mut note = m.note.clone();
                    if let Some(s) = &o.memory_stop {
                        if !s.clean {
                            note = format!("{note} stop: {}", s.text);
                        }
                    }
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} KiB | {} KiB | {} | {} | {} |",
                        o.spec.label,
                        thousands(m.open as f64),
                        thousands(m.rss_before as f64),
                        thousands(m.rss_after as f64),
                        per,
                        stacks,
                        note.trim()
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "\nGreen-thread stacks are found in `/proc/PID/smaps` as anonymous `rw-p` \
             mappings of 16 stacks of {} KiB plus a guard page each (or, on kernels \
             without guard markers, one stack-sized mapping above a `---p` guard); \
             their `Rss` is pages touched, not address space reserved.\n",
            greenio::DEFAULT_STACK_SIZE / 1024
        );
        let mem: Vec<&Target> = targets.iter().filter(|t| t.what.contains("RSS")).collect();
        if !mem.is_empty() {
            let _ = writeln!(out, "## Target\n");
            out.push_str(&targets_md(&mem));
        }
        out
    }

    /// results/echo-msgs.svg
    pub fn throughput_svg(&self, subtitle: &str) -> String {
        let closed = self.closed64();
        let series: Vec<Series> = self
            .outcomes
            .iter()
            .filter(|o| o.ran())
            .map(|o| Series {
                label: o.spec.label.to_owned(),
                points: closed
                    .iter()
                    .filter_map(|(c, sc)| figure(o, *sc, |s| Some(s.msg_per_s)).map(|v| (*c, v)))
                    .collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        svg::throughput_chart(&series, subtitle)
    }

    /// results/echo-cpu.svg
    pub fn cpu_svg(&self, subtitle: &str) -> String {
        let Some(p) = self.paced() else {
            return svg::cpu_chart(&[], "no paced scenario", subtitle);
        };
        let sc = &self.scenarios[p];
        let bars: Vec<Bar> = self
            .outcomes
            .iter()
            .filter(|o| o.ran())
            .filter_map(|o| {
                Some(Bar {
                    label: o.spec.label.to_owned(),
                    total: figure(o, p, |s| s.cpu)?,
                    user: user_ns(o, p).map_or(0.0, |u| u.0) / 1000.0,
                })
            })
            .collect();
        let title = format!(
            "Echo server CPU per message at {} msg/s (C = {}, {})",
            thousands(f64::from(sc.rate)),
            sc.conns,
            bytes_label(sc.bytes)
        );
        svg::cpu_chart(&bars, &title, subtitle)
    }
}

/// A markdown table of targets.
pub fn targets_md<T: std::borrow::Borrow<Target>>(targets: &[T]) -> String {
    let mut out = String::from("| target | measured | goal | verdict |\n|---|---|---|---|\n");
    for t in targets.iter().map(Borrow::borrow) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            t.what,
            t.measured,
            t.goal,
            t.verdict_text()
        );
    }
    out
}

/// `64` as `64 B`, `16384` as `16 KiB`.
pub fn bytes_label(b: usize) -> String {
    if b >= 1024 && b % 1024 == 0 {
        format!("{} KiB", b / 1024)
    } else {
        format!("{b} B")
    }
}

/// `a / b ≤ limit`.
fn ratio(
    what: String,
    a: Option<Spread>,
    b: Option<Spread>,
    limit: f64,
    fmt: impl Fn(f64) -> String,
) -> Target {
    compare(
        what,
        a,
        b,
        (format!("≤ {limit:.2}×"), limit),
        |r| r <= limit,
        fmt,
    )
}

/// `a / b < 1`.
fn ratio_lt(
    what: String,
    a: Option<Spread>,
    b: Option<Spread>,
    fmt: impl Fn(f64) -> String,
) -> Target {
    compare(what, a, b, ("< 1.00×".into(), 1.0), |r| r < 1.0, fmt)
}

/// `a / b ≥ limit`.
fn ratio_ge(what: String, a: Option<Spread>, b: Option<Spread>, limit: f64) -> Target {
    compare(
        what,
        a,
        b,
        (format!("≥ {limit:.2}×"), limit),
        |r| r >= limit,
        thousands,
    )
}

/// The ratio of medians `a / b` against a goal `(text, threshold)`.
fn compare(
    what: String,
    a: Option<Spread>,
    b: Option<Spread>,
    (goal, threshold): (String, f64),
    ok: impl Fn(f64) -> bool,
    fmt: impl Fn(f64) -> String,
) -> Target {
    match (a, b) {
        (Some(a), Some(b)) if b.med > 0.0 && b.min > 0.0 => {
            let r = a.med / b.med;
            let (lo, hi) = (a.min / b.max, a.max / b.min);
            let range = if hi > lo {
                format!(", runs {lo:.2}–{hi:.2}×")
            } else {
                String::new()
            };
            Target {
                what,
                measured: format!("{r:.3}× ({} vs {}{range})", fmt(a.med), fmt(b.med)),
                goal,
                verdict: Some(ok(r)),
                noisy: hi > lo && (lo..=hi).contains(&threshold),
            }
        }
        _ => Target {
            what,
            measured: "not measured".into(),
            goal,
            verdict: None,
            noisy: false,
        },
    }
}

/// Every run, one CSV line each, for anyone who wants more than medians.
pub fn runs_csv(scenarios: &[Scenario], outcomes: &[Outcome]) -> String {
    let mut out = String::from(
        "server,connections,bytes,rate,run,msg_per_s,p50_us,p99_us,p999_us,cpu_us_per_msg,user_us_per_msg,sys_us_per_msg,messages,errors,other_load_cpus,failure\n",
    );
    for o in outcomes {
        for (sc, runs) in scenarios.iter().zip(&o.runs) {
            for (i, r) in runs.iter().enumerate() {
                let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.4}"));
                let line = match r {
                    Run::Ok(s) => format!(
                        "{},{},{},{},{},{:.1},{:.1},{:.1},{:.1},{},{},{},{},{},{:.3},",
                        o.spec.key,
                        sc.conns,
                        sc.bytes,
                        sc.rate,
                        i + 1,
                        s.msg_per_s,
                        s.p50,
                        s.p99,
                        s.p999,
                        opt(s.cpu),
                        opt(s.user),
                        opt(s.sys),
                        s.messages,
                        s.errors,
                        s.foreign
                    ),
                    Run::Failed(e) => format!(
                        "{},{},{},{},{},,,,,,,,,,,\"{}\"",
                        o.spec.key,
                        sc.conns,
                        sc.bytes,
                        sc.rate,
                        i + 1,
                        e.replace('"', "'")
                    ),
                };
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    out
}
