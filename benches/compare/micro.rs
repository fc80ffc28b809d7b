//! The micro benchmarks of the other bench targets, run through cargo and
//! gathered as markdown.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{cargo, Options};

/// Longest a micro benchmark may take, build included.
const MICRO_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs the micro benchmarks and returns their output as markdown.
pub fn micro_phase(opts: &Options, root: &Path) -> String {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    let mut out = String::new();
    for (bench, what) in [
        (
            "runtime",
            "yield round trip, spawn+join and unpark latency against raw corosensei and std::thread",
        ),
        (
            "sync",
            "channel ping-pong against crossbeam-channel and std::sync::mpsc",
        ),
    ] {
        out.push_str(&format!("## `cargo bench --bench {bench}`\n\n{what}.\n\n"));
        if !manifest.contains(&format!("name = \"{bench}\"")) {
            out.push_str("Not in the workspace yet.\n\n");
            continue;
        }
        println!("compare: cargo bench --bench {bench}");
        let mut cmd = Command::new(cargo());
        cmd.args(["bench", "--bench", bench]).current_dir(root);
        if opts.quick {
            cmd.args(["--", "--quick"]);
        }
        match run_captured(cmd, MICRO_TIMEOUT) {
            Ok(text) => {
                print!("{text}");
                // A markdown table goes in as it is; plain columns in a code block.
                if text.lines().any(|l| l.starts_with('|')) {
                    out.push_str(text.trim());
                    out.push_str("\n\n");
                } else {
                    out.push_str(&format!("```text\n{}\n```\n\n", text.trim()));
                }
            }
            Err(e) => {
                println!("compare: {bench}: {e}");
                out.push_str(&format!("Failed: {e}\n\n"));
            }
        }
    }
    out
}

/// Runs `cmd` with stdout captured (stderr shown), killing it after `timeout`.
fn run_captured(mut cmd: Command, timeout: Duration) -> Result<String, String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(out) = stdout.as_mut() {
            let _ = std::io::Read::read_to_string(out, &mut s);
        }
        s
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("still running after {timeout:?}; killed"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e.to_string()),
        }
    };
    let text = reader.join().unwrap_or_default();
    if status.success() {
        Ok(text)
    } else {
        Err(format!("{status}: {}", text.trim()))
    }
}
