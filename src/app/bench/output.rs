//! Reporting: a [`BenchReport`] as aligned text, Markdown, CSV and JSON,
//! and the files of `bptt bench --out` with the figures.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use bptt::Alpha;
use bptt::BackendKind;
use bptt::Error;
use bptt::Policy;

use super::plot;
use super::report::{BenchReport, Row};

/// The columns of the text and Markdown tables.
const COLUMNS: [&str; 16] = [
    "backend",
    "policy",
    "budget",
    "units",
    "fwd/step",
    "s/iter",
    "best s",
    "time x",
    "pred x",
    "unit x",
    "vs pred",
    "ckpt MB",
    "ckpt %",
    "heap MB",
    "heap %",
    "same grads",
];

/// A row's cells in the text and Markdown tables.
fn cells(r: &Row) -> [String; 16] {
    let heap = r
        .heap_bytes
        .map_or_else(|| "n/a".to_string(), |h| format!("{:.2}", mb(h)));
    let heap_ratio = r
        .heap_ratio
        .map_or_else(|| "n/a".to_string(), |h| format!("{:.1}%", 100.0 * h));
    [
        r.backend.to_string(),
        r.label(),
        r.budget_label(),
        format!("{:.1}", r.budget_units),
        format!("{:.3}", r.forward_per_step),
        format!("{:.3}", r.seconds),
        format!("{:.3}", r.best_seconds),
        format!("{:.3}", r.ratio),
        format!("{:.3}", r.predicted_ratio),
        format!("{:.3}", r.unit_ratio),
        format!("{:+.1}%", 100.0 * r.prediction_error()),
        format!("{:.2}", mb(r.checkpoint_bytes)),
        format!("{:.1}%", 100.0 * r.checkpoint_ratio),
        heap,
        heap_ratio,
        if r.identical { "yes" } else { "NO" }.to_string(),
    ]
}

/// Megabytes.
fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// A row of `bench.csv`: a [`Row`]'s figures, without its samples and its
/// budget in bytes.
#[derive(Serialize)]
struct CsvRow {
    backend: BackendKind,
    policy: Policy,
    weighted: bool,
    percent: Option<f64>,
    budget_units: f64,
    forward_per_step: f64,
    peak_units: f64,
    seconds: f64,
    best_seconds: f64,
    ratio: f64,
    predicted_seconds: f64,
    predicted_ratio: f64,
    unit_ratio: f64,
    checkpoint_bytes: u64,
    plan_bytes: u64,
    checkpoint_ratio: f64,
    heap_bytes: Option<u64>,
    heap_ratio: Option<f64>,
    run_allocations: Option<u64>,
    identical: bool,
}

impl From<&Row> for CsvRow {
    fn from(r: &Row) -> Self {
        CsvRow {
            backend: r.backend,
            policy: r.policy,
            weighted: r.weighted,
            percent: r.percent,
            budget_units: r.budget_units,
            forward_per_step: r.forward_per_step,
            peak_units: r.peak_units,
            seconds: r.seconds,
            best_seconds: r.best_seconds,
            ratio: r.ratio,
            predicted_seconds: r.predicted_seconds,
            predicted_ratio: r.predicted_ratio,
            unit_ratio: r.unit_ratio,
            checkpoint_bytes: r.checkpoint_bytes,
            plan_bytes: r.plan_bytes,
            checkpoint_ratio: r.checkpoint_ratio,
            heap_bytes: r.heap_bytes,
            heap_ratio: r.heap_ratio,
            run_allocations: r.run_allocations,
            identical: r.identical,
        }
    }
}

impl BenchReport {
    /// One line per setting: the problem, the costs, the machine.
    pub fn header(&self) -> String {
        let c = &self.costs;
        let mut s = String::new();
        let cfg = &self.config;
        let _ = writeln!(
            s,
            "LSTM input {} hidden {} batch {} classes {}, T = {}, alpha = {} (state {} KB, tape {} KB per step)",
            cfg.input,
            cfg.hidden,
            cfg.batch,
            cfg.classes,
            cfg.len,
            self.alpha,
            self.state_bytes / 1000,
            self.tape_bytes / 1000
        );
        let _ = writeln!(
            s,
            "measured costs: forward {:.1} us, forward* {:.1} us, backward {:.1} us (b/f = {:.2}), copy {:.2} us, state from tape {:.2} us, set-up {:.1} us",
            c.forward * 1e6,
            c.forward_tape * 1e6,
            c.backward * 1e6,
            c.backward_over_forward(),
            c.copy * 1e6,
            c.from_tape * 1e6,
            c.setup * 1e6
        );
        let _ = writeln!(
            s,
            "machine: {}, {} cores, kernel threads {}; load {} before, {} after; {} timed runs per row, interleaved; {:.0} s in all",
            self.machine.cpu,
            self.machine.cores,
            self.machine.threads.as_deref().map_or_else(
                || "as many as cores".to_string(),
                |t| format!("BPTT_THREADS={t}")
            ),
            self.machine.load_before,
            self.machine.load_after,
            cfg.runs,
            self.total_seconds
        );
        for p in &self.planning {
            let _ = writeln!(
                s,
                "planning {}{} up to {}%: {:.2} s",
                p.policy,
                if p.weighted { " (time-weighted)" } else { "" },
                p.percent,
                p.seconds
            );
        }
        s
    }

    /// The table as aligned text.
    pub fn table(&self) -> String {
        let body: Vec<[String; 16]> = self.rows.iter().map(cells).collect();
        let widths: Vec<usize> = (0..16)
            .map(|i| {
                body.iter()
                    .map(|c| c[i].len())
                    .chain([COLUMNS[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if i < 2 {
                        format!("{c:<w$}", w = widths[i])
                    } else {
                        format!("{c:>w$}", w = widths[i])
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
        };
        let mut s = line(COLUMNS.to_vec()) + "\n";
        for c in &body {
            s += &line(c.iter().map(String::as_str).collect());
            s += "\n";
        }
        s
    }

    /// The targets as text lines.
    pub fn targets_text(&self) -> String {
        self.targets
            .iter()
            .map(|t| {
                format!(
                    "[{}] {}: {}\n",
                    if t.met { "met" } else { "MISSED" },
                    t.name,
                    t.measured
                )
            })
            .collect()
    }

    /// The header, the table and the targets as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        for line in self.header().lines() {
            let _ = writeln!(s, "- {line}");
        }
        s += "\n| ";
        s += &COLUMNS.join(" | ");
        s += " |\n|";
        s += &COLUMNS
            .iter()
            .enumerate()
            .map(|(i, _)| if i < 2 { " --- |" } else { " ---: |" })
            .collect::<String>();
        s += "\n";
        for r in &self.rows {
            s += "| ";
            s += &cells(r).join(" | ");
            s += " |\n";
        }
        s += "\n";
        for t in &self.targets {
            let _ = writeln!(
                s,
                "- **{}** {}: {}",
                if t.met { "met" } else { "missed" },
                t.name,
                t.measured
            );
        }
        s
    }

    /// The rows as CSV: a header of the field names, then one line per row.
    pub fn csv(&self) -> Result<String, Error> {
        let failed =
            |e: &dyn std::fmt::Display| Error::File(format!("cannot write bench.csv: {e}"));
        let mut writer = csv::Writer::from_writer(Vec::new());
        for r in &self.rows {
            writer.serialize(CsvRow::from(r)).map_err(|e| failed(&e))?;
        }
        let bytes = writer.into_inner().map_err(|e| failed(&e))?;
        String::from_utf8(bytes).map_err(|e| failed(&e))
    }

    /// The whole report as pretty JSON (all but the trace).
    pub fn json(&self) -> Result<String, Error> {
        serde_json::to_string_pretty(self)
            .map(|json| json + "\n")
            .map_err(|e| Error::File(format!("cannot write bench.json: {e}")))
    }

    /// Writes `bench.md`, `bench.csv`, `bench.json` and the three figures
    /// (`forward-steps.svg`, `time-memory.svg`, `memory-trace.svg`, the last
    /// when a schedule was traced) into `dir`, creating it; returns the paths
    /// written.
    pub fn write(&self, dir: &Path) -> Result<Vec<String>, Error> {
        std::fs::create_dir_all(dir)
            .map_err(Error::io(format!("cannot create {}", dir.display())))?;
        let mut written = Vec::new();
        for (name, text) in [
            ("bench.md", self.markdown()),
            ("bench.csv", self.csv()?),
            ("bench.json", self.json()?),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text)
                .map_err(Error::io(format!("cannot write {}", path.display())))?;
            written.push(path);
        }
        let alpha = Alpha::new(self.alpha)?;
        let path = dir.join("forward-steps.svg");
        plot::cost_curve(&path, self.config.len, alpha)?;
        written.push(path);
        let path = dir.join("time-memory.svg");
        plot::time_memory(&path, self)?;
        written.push(path);
        if let Some(trace) = &self.trace {
            let path = dir.join("memory-trace.svg");
            plot::memory_trace(&path, trace, self.config.len)?;
            written.push(path);
        }
        Ok(written.iter().map(|p| p.display().to_string()).collect())
    }
}
