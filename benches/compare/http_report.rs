//! The HTTP mode's report: `http.md` (tables, targets, method) and
//! `http.svg` (requests/s per point, one bar per server, whiskers over the
//! runs' min–max).

use std::fmt::Write as _;

use super::{HttpOptions, Outcome, Point, PACED_CONNS, PACED_RATE};
use crate::report::{spread, thousands};
use crate::svg::{esc, nice_step, Spread};

/// Everything the report is made of.
#[derive(Debug)]
pub struct Report<'a> {
    /// The wrk points.
    pub points: &'a [Point],
    /// Per server.
    pub outcomes: &'a [Outcome],
    /// The run's one-line description.
    pub header: String,
    /// The chart's second line: date, machine, kind of run.
    pub subtitle: String,
    /// The command line.
    pub opts: &'a HttpOptions,
}

/// One of the targets.
struct Target {
    what: String,
    ratio: Option<f64>,
    goal: String,
    met: Option<bool>,
}

impl Report<'_> {
    /// Median and spread of requests/s of `key` at point `pi`.
    fn rps(&self, key: &str, pi: usize) -> Option<Spread> {
        let o = self.outcomes.iter().find(|o| o.spec.key == key)?;
        let v: Vec<f64> = o.runs[pi].iter().flatten().map(|r| r.rps).collect();
        spread(&v)
    }

    /// Median server CPU µs per request at the paced rate.
    fn cpu(&self, key: &str) -> Option<Spread> {
        let o = self.outcomes.iter().find(|o| o.spec.key == key)?;
        let v: Vec<f64> = o.paced.iter().flatten().map(|r| r.cpu_us).collect();
        spread(&v)
    }

    fn targets(&self) -> Vec<Target> {
        let c100 = self
            .points
            .iter()
            .position(|p| p.path == "/plaintext" && p.conns == 100 && p.depth == 1)
            .unwrap_or(0);
        let ratio = |a: Option<Spread>, b: Option<Spread>| Some(a?.med / b?.med);
        let mut t = Vec::new();
        let mut rps_target = |what: &str, a: &str, b: &str, goal: f64| {
            let r = ratio(self.rps(a, c100), self.rps(b, c100));
            t.push(Target {
                what: format!("{what} (/plaintext, C = 100)"),
                ratio: r,
                goal: format!("≥ {goal:.2}×"),
                met: r.map(|r| r >= goal),
            });
        };
        rps_target("greenio green / mio, req/s", "greenio", "mio", 0.95);
        rps_target("greenio green / hyper, req/s", "greenio", "hyper", 1.10);
        rps_target("greenio green / may_minihttp, req/s", "greenio", "may", 1.0);
        rps_target(
            "greenio callback / mio, req/s",
            "greenio-callback",
            "mio",
            0.97,
        );
        let r = ratio(self.cpu("greenio"), self.cpu("mio"));
        t.push(Target {
            what: format!(
                "greenio green / mio, server CPU per request (paced {} req/s)",
                thousands(f64::from(PACED_RATE))
            ),
            ratio: r,
            goal: "≤ 1.05×".into(),
            met: r.map(|r| r <= 1.05),
        });
        t
    }

    /// The targets as a markdown table.
    pub fn targets_md(&self) -> String {
        let mut s = String::from("| target | ratio | goal | |\n|---|---:|---|---|\n");
        for t in self.targets() {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                t.what,
                t.ratio.map_or("—".into(), |r| format!("{r:.2}×")),
                t.goal,
                match t.met {
                    Some(true) => "met",
                    Some(false) => "**missed**",
                    None => "no data",
                }
            );
        }
        s
    }

    /// The whole of `http.md`.
    pub fn markdown(&self) -> String {
        let mut s = String::from("# HTTP/1.1: greenio against mio, hyper and may_minihttp\n\n");
        let _ = writeln!(
            s,
            "Written by `cargo bench --bench compare -- http{}` (issue 12). {}.\n",
            if self.opts.quick { " --quick" } else { "" },
            self.header
        );
        s.push_str(
            "Every server is pinned to CPU 0 and wrk (`-t1`, `--latency`) to CPU 1. \
             Figures are medians over the runs (min–max in brackets when there \
             are several). \"Other load\" is the CPU used by anything but the \
             server and wrk during a run, in CPUs: above 0.25 the run shared \
             the machine with someone else's work and its figures are \
             suspect.\n\n![requests/s](http.svg)\n\n## Targets\n\n",
        );
        s.push_str(&self.targets_md());
        s.push_str("\n## Requests per second (wrk)\n\n");
        for (pi, p) in self.points.iter().enumerate() {
            let _ = writeln!(
                s,
                "### {}\n\n| server | req/s | vs mio | p50 µs | p99 µs | errors | other load |\n|---|---:|---:|---:|---:|---:|---:|",
                p.title()
            );
            let mio = self.rps("mio", pi);
            for o in self.outcomes {
                let runs: Vec<_> = o.runs[pi].iter().flatten().collect();
                let Some(rps) = spread(&runs.iter().map(|r| r.rps).collect::<Vec<_>>()) else {
                    let why = o.runs[pi]
                        .iter()
                        .find_map(|r| r.as_ref().err().cloned())
                        .or_else(|| o.start_error.clone())
                        .unwrap_or_else(|| "no run".into());
                    let _ = writeln!(s, "| {} | — ({why}) | | | | | |", o.spec.label);
                    continue;
                };
                let med = |f: fn(&super::WrkRun) -> f64| {
                    spread(&runs.iter().map(|r| f(r)).collect::<Vec<_>>())
                        .map_or(f64::NAN, |x| x.med)
                };
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {:.2} |",
                    o.spec.label,
                    with_spread(rps, 0),
                    mio.map_or("—".into(), |m| format!("{:.2}×", rps.med / m.med)),
                    latency(med(|r| r.p50)),
                    latency(med(|r| r.p99)),
                    runs.iter().map(|r| r.errors).sum::<u64>(),
                    med(|r| r.foreign),
                );
            }
            s.push('\n');
        }
        let _ = writeln!(
            s,
            "## Server CPU per request at a fixed rate\n\n\
             {} requests/s of `GET /plaintext` over {PACED_CONNS} keep-alive \
             connections from the harness's paced client (`benches/compare/http_load.rs`); \
             server user + system time from `/proc/PID/stat` over the requests answered.\n\n\
             | server | µs CPU / request | user µs | vs mio | req/s achieved | errors |\n|---|---:|---:|---:|---:|---:|",
            thousands(f64::from(PACED_RATE))
        );
        let mio = self.cpu("mio");
        for o in self.outcomes {
            let runs: Vec<_> = o.paced.iter().flatten().collect();
            let Some(cpu) = spread(&runs.iter().map(|r| r.cpu_us).collect::<Vec<_>>()) else {
                let _ = writeln!(s, "| {} | — | | | | |", o.spec.label);
                continue;
            };
            let user =
                spread(&runs.iter().map(|r| r.user_us).collect::<Vec<_>>()).map_or(0.0, |x| x.med);
            let rps =
                spread(&runs.iter().map(|r| r.rps).collect::<Vec<_>>()).map_or(0.0, |x| x.med);
            let _ = writeln!(
                s,
                "| {} | {} | {user:.2} | {} | {} | {} |",
                o.spec.label,
                with_spread(cpu, 2),
                mio.map_or("—".into(), |m| format!("{:.2}×", cpu.med / m.med)),
                thousands(rps),
                runs.iter().map(|r| r.errors).sum::<u64>(),
            );
        }
        s.push_str("\n## Servers\n\n| server | binary | stop |\n|---|---|---|\n");
        for o in self.outcomes {
            let _ = writeln!(
                s,
                "| {} | `target/release/examples/{}` | {} |",
                o.spec.label,
                o.spec.exe,
                o.stop
                    .as_deref()
                    .or(o.start_error.as_deref())
                    .unwrap_or("—")
            );
        }
        s
    }

    /// `http.svg`: one group of bars per point without pipelining (the
    /// pipelined run is ten times higher and would flatten the rest; it is
    /// in the tables), one bar per server.
    pub fn svg(&self) -> String {
        const COLORS: &[&str] = &["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];
        let servers = self.outcomes.len().max(1);
        let shown: Vec<usize> = (0..self.points.len())
            .filter(|&pi| self.points[pi].depth == 1)
            .collect();
        let (left, right, top, bottom) = (80.0, 20.0, 60.0, 110.0);
        let group = 24.0 * servers as f64 + 30.0;
        let w = (left + right + group * shown.len() as f64).max(760.0);
        let h = 460.0;
        let ph = h - top - bottom;
        let max = shown
            .iter()
            .flat_map(|&pi| {
                self.outcomes
                    .iter()
                    .filter_map(move |o| self.rps(o.spec.key, pi))
            })
            .map(|s| s.max)
            .fold(1.0, f64::max);
        let step = nice_step(max, 5.0);
        let ymax = (max / step).ceil() * step;
        let y = |v: f64| top + ph - v / ymax * ph;
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" \
             font-family=\"sans-serif\" font-size=\"12\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"{:.0}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">HTTP/1.1 requests/s under wrk, server on one CPU (pipelined runs: see http.md)</text>\n\
             <text x=\"{:.0}\" y=\"42\" text-anchor=\"middle\" fill=\"#555\">{}</text>\n",
            w / 2.0,
            w / 2.0,
            esc(&self.subtitle)
        );
        let mut v = 0.0;
        while v <= ymax + 1e-9 {
            let _ = writeln!(
                s,
                "<line x1=\"{left}\" x2=\"{:.0}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
                 <text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                w - right,
                y(v),
                y(v),
                left - 6.0,
                y(v) + 4.0,
                thousands(v)
            );
            v += step;
        }
        for (gi, &pi) in shown.iter().enumerate() {
            let p = &self.points[pi];
            let gx = left + group * gi as f64 + 15.0;
            for (si, o) in self.outcomes.iter().enumerate() {
                let Some(r) = self.rps(o.spec.key, pi) else {
                    continue;
                };
                let x = gx + 24.0 * si as f64;
                let _ = writeln!(
                    s,
                    "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"20\" height=\"{:.1}\" fill=\"{}\"><title>{}: {}</title></rect>\
                     <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>",
                    y(r.med),
                    top + ph - y(r.med),
                    COLORS[si % COLORS.len()],
                    esc(o.spec.label),
                    thousands(r.med),
                    x + 10.0,
                    x + 10.0,
                    y(r.min),
                    y(r.max)
                );
            }
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                gx + 12.0 * servers as f64,
                top + ph + 18.0,
                esc(&p.title().replace(", pipelined", " pipe"))
            );
        }
        for (si, o) in self.outcomes.iter().enumerate() {
            let lx = left + 10.0 + 170.0 * (si % 4) as f64;
            let ly = h - bottom + 50.0 + 20.0 * (si / 4) as f64;
            let _ = writeln!(
                s,
                "<rect x=\"{lx:.0}\" y=\"{:.0}\" width=\"12\" height=\"12\" fill=\"{}\"/>\
                 <text x=\"{:.0}\" y=\"{:.0}\">{}</text>",
                ly - 10.0,
                COLORS[si % COLORS.len()],
                lx + 16.0,
                ly,
                esc(o.spec.label)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

/// A latency in µs; wrk reports none (0) for pipelined requests.
fn latency(us: f64) -> String {
    if us > 0.0 {
        format!("{us:.0}")
    } else {
        "—".into()
    }
}

/// `123,456 (120,000–125,000)` or just the median for one run.
fn with_spread(s: Spread, decimals: usize) -> String {
    let f = |v: f64| {
        if decimals == 0 {
            thousands(v)
        } else {
            format!("{v:.decimals$}")
        }
    };
    if (s.max - s.min).abs() < f64::EPSILON {
        f(s.med)
    } else {
        format!("{} ({}–{})", f(s.med), f(s.min), f(s.max))
    }
}
