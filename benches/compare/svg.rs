//! The two charts, written as plain SVG text (no plotting crate): msg/s
//! against connections (log x), and server CPU per message at the paced
//! rate as stacked user + system bars. Each point or bar is a median; the
//! whiskers span the runs' min–max.

use std::fmt::Write as _;

/// Line colours, one per server, in the order servers are listed.
const COLORS: &[&str] = &[
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// A value with its spread.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    /// Median.
    pub med: f64,
    /// Smallest run.
    pub min: f64,
    /// Largest run.
    pub max: f64,
}

/// One server's line in the msg/s chart: (connections, msg/s) points.
#[derive(Debug)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Points in increasing connections.
    pub points: Vec<(usize, Spread)>,
}

/// One server's bar in the CPU chart.
#[derive(Debug)]
pub struct Bar {
    /// Label left of the bar.
    pub label: String,
    /// Total µs per message.
    pub total: Spread,
    /// User-space share of the median, µs.
    pub user: f64,
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A round step for about `n` grid lines up to `max`.
pub fn nice_step(max: f64, n: f64) -> f64 {
    let raw = (max / n).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 2.5 {
        2.5
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// `1234567` as `1.2M`, `250000` as `250k`.
fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        let k = v / 1e3;
        if (k - k.round()).abs() < 0.05 {
            format!("{k:.0}k")
        } else {
            format!("{k:.1}k")
        }
    } else {
        format!("{v:.0}")
    }
}

fn header(out: &mut String, w: f64, h: f64, title: &str, subtitle: &str) {
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"##
    );
    let _ = writeln!(out, r##"<rect width="{w}" height="{h}" fill="#ffffff"/>"##);
    let _ = writeln!(
        out,
        r##"<text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"##,
        w / 2.0,
        esc(title)
    );
    let _ = writeln!(
        out,
        r##"<text x="{}" y="40" text-anchor="middle" fill="#555555">{}</text>"##,
        w / 2.0,
        esc(subtitle)
    );
}

/// msg/s against connections, log-x, one line per server.
pub fn throughput_chart(series: &[Series], subtitle: &str) -> String {
    let (w, h) = (820.0, 460.0);
    let (left, right, top, bottom) = (70.0, 250.0, 60.0, 50.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let max_c = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .max()
        .unwrap_or(10)
        .max(10) as f64;
    let max_y = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1.max))
        .fold(1.0, f64::max);
    let step = nice_step(max_y, 5.0);
    let top_y = (max_y / step).ceil() * step;
    let decades = max_c.log10().ceil();
    let x = |c: usize| left + (c.max(1) as f64).log10() / decades * pw;
    let y = |v: f64| top + ph - v / top_y * ph;

    let mut out = String::new();
    header(
        &mut out,
        w,
        h,
        "Echo, 64 B messages, closed loop: msg/s",
        subtitle,
    );
    // Grid and axes.
    let mut v = 0.0;
    while v <= top_y + step / 2.0 {
        let _ = writeln!(
            out,
            r##"<line x1="{left}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#e0e0e0"/><text x="{2}" y="{3:.1}" text-anchor="end">{4}</text>"##,
            y(v),
            left + pw,
            left - 6.0,
            y(v) + 4.0,
            short(v)
        );
        v += step;
    }
    for d in 0..=decades as u32 {
        let c = 10usize.pow(d);
        let _ = writeln!(
            out,
            r##"<line x1="{0:.1}" y1="{top}" x2="{0:.1}" y2="{1}" stroke="#e0e0e0"/><text x="{0:.1}" y="{2}" text-anchor="middle">{3}</text>"##,
            x(c),
            top + ph,
            top + ph + 18.0,
            short(c as f64)
        );
    }
    let _ = writeln!(
        out,
        r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444444"/>"##
    );
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{}" text-anchor="middle">concurrent connections (log scale)</text>"##,
        left + pw / 2.0,
        h - 12.0
    );
    let _ = writeln!(
        out,
        r##"<text transform="translate(16 {}) rotate(-90)" text-anchor="middle">messages per second (median; bars: min–max)</text>"##,
        top + ph / 2.0
    );
    // Lines, whiskers, markers, legend.
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|(c, v)| format!("{:.1},{:.1}", x(*c), y(v.med)))
            .collect();
        let _ = writeln!(
            out,
            r##"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"##,
            pts.join(" ")
        );
        for (c, v) in &s.points {
            let _ = writeln!(
                out,
                r##"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="{color}"/><circle cx="{0:.1}" cy="{3:.1}" r="3.5" fill="{color}"/>"##,
                x(*c),
                y(v.min),
                y(v.max),
                y(v.med)
            );
        }
        let ly = top + 10.0 + i as f64 * 22.0;
        let lx = left + pw + 16.0;
        let _ = writeln!(
            out,
            r##"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{}</text>"##,
            lx + 22.0,
            lx + 28.0,
            ly + 4.0,
            esc(&s.label)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Server CPU µs per message, one stacked user + system bar per server.
pub fn cpu_chart(bars: &[Bar], title: &str, subtitle: &str) -> String {
    let row = 30.0;
    let (left, right, top, bottom) = (230.0, 150.0, 60.0, 60.0);
    let w = 820.0;
    let pw = w - left - right;
    let h = top + bottom + row * bars.len().max(1) as f64;
    let max_v = bars.iter().map(|b| b.total.max).fold(0.1, f64::max);
    let step = nice_step(max_v, 5.0);
    let top_v = (max_v / step).ceil() * step;
    let x = |v: f64| left + v / top_v * pw;

    let mut out = String::new();
    header(&mut out, w, h, title, subtitle);
    let bottom_y = top + row * bars.len() as f64;
    let mut v = 0.0;
    while v <= top_v + step / 2.0 {
        let _ = writeln!(
            out,
            r##"<line x1="{0:.1}" y1="{top}" x2="{0:.1}" y2="{bottom_y}" stroke="#e0e0e0"/><text x="{0:.1}" y="{1}" text-anchor="middle">{2}</text>"##,
            x(v),
            bottom_y + 16.0,
            trim_num(v)
        );
        v += step;
    }
    for (i, b) in bars.iter().enumerate() {
        let y0 = top + i as f64 * row + 5.0;
        let bh = row - 10.0;
        let color = COLORS[i % COLORS.len()];
        let user = b.user.clamp(0.0, b.total.med);
        let _ = writeln!(
            out,
            r##"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            left - 8.0,
            y0 + bh / 2.0 + 4.0,
            esc(&b.label)
        );
        let _ = writeln!(
            out,
            r##"<rect x="{left}" y="{y0:.1}" width="{:.1}" height="{bh}" fill="{color}"/><rect x="{:.1}" y="{y0:.1}" width="{:.1}" height="{bh}" fill="{color}" fill-opacity="0.4"/>"##,
            x(user) - left,
            x(user),
            x(b.total.med) - x(user)
        );
        let wy = y0 + bh / 2.0;
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{wy:.1}" x2="{:.1}" y2="{wy:.1}" stroke="#222222"/><line x1="{0:.1}" y1="{2:.1}" x2="{0:.1}" y2="{3:.1}" stroke="#222222"/><line x1="{1:.1}" y1="{2:.1}" x2="{1:.1}" y2="{3:.1}" stroke="#222222"/>"##,
            x(b.total.min),
            x(b.total.max),
            wy - 5.0,
            wy + 5.0
        );
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}">{:.2} µs (user {:.2})</text>"##,
            x(b.total.max.max(b.total.med)) + 6.0,
            wy + 4.0,
            b.total.med,
            user
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{}" text-anchor="middle">server CPU µs per message: solid = user, light = system (median; whisker: min–max of the total)</text>"##,
        left + pw / 2.0,
        h - 14.0
    );
    out.push_str("</svg>\n");
    out
}

/// `2.5` as `2.5`, `2.0` as `2`.
fn trim_num(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}
