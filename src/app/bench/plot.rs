//! The benchmark's figures, drawn as SVG with plotters.
//!
//! - [`cost_curve`]: the paper's figure, forward steps per time step against
//!   memory for HSM, ISM, MSM and Chen's sqrt(t) (from the planner alone);
//! - [`time_memory`]: measured time against measured checkpoint memory for
//!   every row of a [`BenchReport`];
//! - [`memory_trace`]: live checkpoint memory against the operation index over
//!   one iteration of one schedule.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::report::{BenchReport, Row, Trace};
use bptt::Error;
use bptt::Policy;
use bptt::planner::{Plan, Table};
use bptt::{Alpha, Budget};

/// Figure size in pixels.
const SIZE: (u32, u32) = (900, 600);

const HSM: RGBColor = RGBColor(31, 119, 180);
const ISM: RGBColor = RGBColor(44, 160, 44);
const MSM: RGBColor = RGBColor(214, 39, 40);
const BASE: RGBColor = RGBColor(60, 60, 60);
const GUIDE: RGBColor = RGBColor(150, 150, 150);

fn color(policy: Policy) -> RGBColor {
    match policy {
        Policy::Hsm => HSM,
        Policy::Ism => ISM,
        Policy::Msm => MSM,
        _ => BASE,
    }
}

/// A plotting error as one line naming the file.
fn failed(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |e| Error::File(format!("cannot draw {}: {e}", path.display()))
}

fn svg(path: &Path) -> Result<DrawingArea<SVGBackend<'_>, Shift>, Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(Error::io(format!("cannot create {}", dir.display())))?;
    }
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(path)(e.to_string()))?;
    Ok(root)
}

/// Draws a chart's legend in its upper right corner and writes the file.
fn legend_and_save<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    root: &DrawingArea<SVGBackend<'a>, Shift>,
    fail: &dyn Fn(String) -> Error,
) -> Result<(), Error> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(e.to_string()))?;
    root.present().map_err(|e| fail(e.to_string()))
}

/// Up to `n` budgets from one unit to `max`, spaced evenly on a log scale,
/// in whole units (duplicates dropped).
fn log_budgets(max: f64, n: usize) -> Vec<f64> {
    let mut out: Vec<f64> = (0..n)
        .map(|i| (max.ln() * i as f64 / (n - 1) as f64).exp().floor())
        .collect();
    out.dedup();
    out
}

/// Draws the paper's figure for `len` steps and `alpha` into an SVG file:
/// forward steps per time step against memory (percent of store-all, log
/// scale) for HSM, ISM and MSM, with Chen's sqrt(t) and store-all as points.
pub fn cost_curve(path: &Path, len: u32, alpha: Alpha) -> Result<(), Error> {
    if len < 2 {
        return Err(Error::File(format!(
            "cannot draw {}: a curve needs T >= 2 (at T = 1 store-all holds nothing)",
            path.display()
        )));
    }
    let store_all = alpha.store_all_units(len);
    let full = alpha.to_ticks(store_all)?;
    let budgets = log_budgets(store_all, 240);
    let y_max = 6.0;
    let mut series = Vec::new();
    for policy in [Policy::Hsm, Policy::Ism, Policy::Msm] {
        // The exact table over every budget where it can be built; beyond
        // (long sequences), one table-free plan per budget, fewer of them.
        let table = Table::build(policy, alpha, len, full).ok();
        let step = if table.is_some() { 1 } else { 4 };
        let mut points = Vec::new();
        for &units in budgets.iter().step_by(step) {
            let ticks = alpha.to_ticks(units)?.min(full);
            let q = match &table {
                Some(table) => table.cost(len, ticks),
                None => Plan::new(policy, alpha, len, Budget::Units(alpha.to_units(ticks)))
                    .ok()
                    .map(|plan| plan.forward_steps()),
            };
            let Some(q) = q else {
                continue;
            };
            let per_step = q as f64 / f64::from(len);
            if per_step <= y_max {
                points.push((100.0 * alpha.to_units(ticks) / store_all, per_step));
            }
        }
        series.push((policy, points));
    }
    let sqrt = Plan::new(Policy::Sqrt, alpha, len, Budget::Percent(100.0))?.summary();
    let x_min = 100.0 / store_all;
    let fail = failed(path);
    let root = svg(path)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Forward steps per time step against memory, T = {len}, alpha = {alpha}"),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d((x_min..100.0).log_scale(), 1.0..y_max)
        .map_err(|e| fail(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("checkpoint memory, % of store-all's alpha (T - 1) units (log scale)")
        .y_desc("forward steps per time step")
        .x_label_formatter(&|x| format!("{x}"))
        .draw()
        .map_err(|e| fail(e.to_string()))?;
    for (policy, points) in series {
        let c = color(policy);
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))
            .map_err(|e| fail(e.to_string()))?
            .label(policy.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    let sqrt_point = (100.0 * sqrt.peak_units / store_all, sqrt.cost_per_step);
    chart
        .draw_series(std::iter::once(TriangleMarker::new(
            sqrt_point,
            8,
            BASE.filled(),
        )))
        .map_err(|e| fail(e.to_string()))?
        .label(format!(
            "Chen's sqrt(t): {:.2} at {:.1}%",
            sqrt_point.1, sqrt_point.0
        ))
        .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, BASE.filled()));
    chart
        .draw_series(std::iter::once(Circle::new((100.0, 1.0), 6, BASE.filled())))
        .map_err(|e| fail(e.to_string()))?
        .label("store-all: 1 at 100%")
        .legend(|(x, y)| Circle::new((x + 10, y), 5, BASE.filled()));
    chart
        .draw_series(LineSeries::new(
            [(5.0, 1.0), (5.0, y_max)],
            GUIDE.stroke_width(1),
        ))
        .map_err(|e| fail(e.to_string()))?
        .label("5% of store-all")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GUIDE.stroke_width(1)));
    legend_and_save(&mut chart, &root, &fail)
}

/// Draws measured time (over store-all's) against measured checkpoint memory
/// (percent of store-all's, log scale) for every row of a report, one colour
/// per policy, one marker per backend; time-weighted plans hollow.
pub fn time_memory(path: &Path, report: &BenchReport) -> Result<(), Error> {
    let fail = failed(path);
    let rows = &report.rows;
    let x_of = |r: &Row| 100.0 * r.checkpoint_ratio;
    let x_min = rows
        .iter()
        .map(x_of)
        .fold(f64::INFINITY, f64::min)
        .max(1e-3)
        / 1.5;
    let y_max = rows.iter().map(|r| r.ratio).fold(1.5, f64::max) * 1.05;
    let y_min = rows.iter().map(|r| r.ratio).fold(1.0, f64::min).min(0.9) * 0.95;
    let root = svg(path)?;
    let store_all_mb = rows
        .iter()
        .find(|r| r.policy == Policy::StoreAll)
        .map_or(0.0, |r| r.checkpoint_bytes as f64 / 1e6);
    let cfg = &report.config;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Measured time against memory, LSTM {}x{} batch {}, T = {}",
                cfg.input, cfg.hidden, cfg.batch, cfg.len
            ),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d((x_min..150.0).log_scale(), y_min..y_max)
        .map_err(|e| fail(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc(format!(
            "arena checkpoint memory, % of store-all's {store_all_mb:.1} MB (log scale)"
        ))
        .y_desc("median time per iteration / store-all's")
        .x_label_formatter(&|x| format!("{x}"))
        .draw()
        .map_err(|e| fail(e.to_string()))?;
    let backends = report.backends();
    for (b, backend) in backends.iter().enumerate() {
        for policy in [Policy::Hsm, Policy::Ism, Policy::Msm] {
            for weighted in [false, true] {
                let mut points: Vec<(f64, f64)> = rows
                    .iter()
                    .filter(|r| {
                        &r.backend == backend && r.policy == policy && r.weighted == weighted
                    })
                    .map(|r| (x_of(r), r.ratio))
                    .collect();
                if points.is_empty() {
                    continue;
                }
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                let c = color(policy);
                let style = if weighted {
                    c.stroke_width(1)
                } else {
                    c.stroke_width(2)
                };
                let label = format!("{policy}{} ({backend})", if weighted { "-w" } else { "" });
                chart
                    .draw_series(LineSeries::new(points.clone(), style))
                    .map_err(|e| fail(e.to_string()))?
                    .label(label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
                let fill = if weighted {
                    c.stroke_width(2)
                } else {
                    c.filled()
                };
                chart
                    .draw_series(points.iter().map(|&p| -> DynElement<_, _> {
                        if b == 0 {
                            Circle::new(p, 5, fill).into_dyn()
                        } else {
                            TriangleMarker::new(p, 6, fill).into_dyn()
                        }
                    }))
                    .map_err(|e| fail(e.to_string()))?;
            }
        }
        for r in rows
            .iter()
            .filter(|r| &r.backend == backend && !r.policy.is_dynamic())
        {
            let p = (x_of(r), r.ratio);
            chart
                .draw_series(std::iter::once(if b == 0 {
                    Circle::new(p, 5, BASE.filled()).into_dyn()
                } else {
                    TriangleMarker::new(p, 6, BASE.filled()).into_dyn()
                }))
                .map_err(|e| fail(e.to_string()))?;
            if b == 0 {
                chart
                    .draw_series(std::iter::once(Text::new(
                        r.policy.to_string(),
                        (p.0 * 1.08, p.1),
                        ("sans-serif", 13).into_font(),
                    )))
                    .map_err(|e| fail(e.to_string()))?;
            }
        }
    }
    chart
        .draw_series(LineSeries::new(
            [(x_min, 1.33), (150.0, 1.33)],
            GUIDE.stroke_width(1),
        ))
        .map_err(|e| fail(e.to_string()))?
        .label("the paper: 1.33x at 5%")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GUIDE.stroke_width(1)));
    chart
        .draw_series(LineSeries::new(
            [(5.0, y_min), (5.0, y_max)],
            GUIDE.stroke_width(1),
        ))
        .map_err(|e| fail(e.to_string()))?;
    if backends.len() > 1 {
        chart
            .draw_series(std::iter::once(Text::new(
                format!(
                    "circles: {}; triangles: {}",
                    backends[0],
                    backends[1..]
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                (x_min * 1.1, y_min + 0.03 * (y_max - y_min)),
                ("sans-serif", 13).into_font(),
            )))
            .map_err(|e| fail(e.to_string()))?;
    }
    legend_and_save(&mut chart, &root, &fail)
}

/// Draws the live checkpoint memory (hidden-state units) after each operation
/// of one schedule's iteration, with its budget.
pub fn memory_trace(path: &Path, trace: &Trace, len: u32) -> Result<(), Error> {
    let fail = failed(path);
    let n = trace.live_units.len();
    // Only the points where the memory changes, as a step function.
    let mut points = vec![(0.0, 0.0)];
    let mut last = 0.0;
    for (i, &v) in trace.live_units.iter().enumerate() {
        if v != last {
            points.push((i as f64, last));
            points.push((i as f64, v));
            last = v;
        }
    }
    points.push((n as f64, last));
    let peak = trace.live_units.iter().copied().fold(0.0, f64::max);
    let y_max = trace.budget_units.max(peak).max(1.0) * 1.1;
    let root = svg(path)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Live checkpoint memory over one iteration: {}, T = {len}",
                trace.label
            ),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..n.max(1) as f64, 0.0..y_max)
        .map_err(|e| fail(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("operation index")
        .y_desc("live checkpoints, hidden-state units")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| fail(e.to_string()))?;
    chart
        .draw_series(LineSeries::new(points, MSM.stroke_width(1)))
        .map_err(|e| fail(e.to_string()))?
        .label(format!("live memory (peak {peak})"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], MSM.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            [(0.0, trace.budget_units), (n as f64, trace.budget_units)],
            BASE.stroke_width(1),
        ))
        .map_err(|e| fail(e.to_string()))?
        .label(format!("budget ({} units)", trace.budget_units))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BASE.stroke_width(1)));
    legend_and_save(&mut chart, &root, &fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_budgets_are_increasing_and_end_at_the_maximum() {
        let b = log_budgets(2997.0, 240);
        assert_eq!(b[0], 1.0);
        assert_eq!(*b.last().unwrap(), 2997.0);
        assert!(b.windows(2).all(|w| w[0] < w[1]));
    }
}
