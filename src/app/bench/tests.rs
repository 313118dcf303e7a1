//! The benchmark runs end to end in its smallest configuration: every policy
//! row on every backend, finite ratios, memory never above the plan, and the
//! table and figures written. Nothing here is timed: the numbers are only
//! checked to exist and to be consistent. The test runs alone in its process
//! ([`crate::app::alone`]): the allocation counters are process-wide.

use bptt::{BackendKind, Policy};

use super::{BenchConfig, run};
use crate::HEAP;

#[test]
fn the_small_benchmark_runs_end_to_end() {
    if !crate::app::alone::alone("app::bench::tests::the_small_benchmark_runs_end_to_end") {
        return;
    }
    let config = BenchConfig::tiny();
    let report = run(&config, Some(&HEAP), &mut |_| {}).unwrap();
    assert!(report.heap_counted);
    let backends = report.backends();
    assert_eq!(backends, BackendKind::ALL);

    let mut expected = vec![
        "store-all -".to_string(),
        "sqrt -".to_string(),
        format!("interval:{} -", config.interval),
    ];
    for suffix in ["", "-w"] {
        for policy in ["hsm", "ism", "msm"] {
            for pct in &config.percents {
                expected.push(format!("{policy}{suffix} {pct}"));
            }
        }
    }
    for backend in &backends {
        let mut got: Vec<String> = report
            .rows
            .iter()
            .filter(|r| &r.backend == backend)
            .map(|r| {
                format!(
                    "{} {}",
                    r.label(),
                    r.percent.map_or("-".to_string(), |p| p.to_string())
                )
            })
            .collect();
        let mut want = expected.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{backend}");
    }

    for r in &report.rows {
        let what = format!("{} {} {:?}", r.backend, r.label(), r.percent);
        for (name, x) in [
            ("seconds", r.seconds),
            ("ratio", r.ratio),
            ("predicted", r.predicted_seconds),
            ("predicted ratio", r.predicted_ratio),
            ("unit ratio", r.unit_ratio),
        ] {
            assert!(x.is_finite() && x > 0.0, "{what}: {name} {x}");
        }
        // ISM below one tape's memory stores nothing.
        assert!(
            r.checkpoint_ratio.is_finite() && r.checkpoint_ratio >= 0.0,
            "{what}"
        );
        assert_eq!(r.samples.len(), config.runs, "{what}");
        // Memory: the arena holds exactly the plan's peak, within the budget,
        // and the timed iterations allocate nothing.
        assert!(r.checkpoint_bytes <= r.plan_bytes, "{what}");
        assert!(r.plan_bytes <= r.budget_bytes, "{what}");
        assert_eq!(r.run_allocations, Some(0), "{what}");
        let heap = r.heap_bytes.expect("counted");
        assert!(heap >= r.checkpoint_bytes, "{what}: heap {heap}");
        assert!(r.heap_ratio.unwrap().is_finite(), "{what}");
        assert!(r.identical, "{what}: gradients differ from store-all's");
        if r.policy == Policy::StoreAll {
            assert_eq!(r.ratio, 1.0);
            assert_eq!(r.predicted_ratio, 1.0);
            assert_eq!(r.checkpoint_ratio, 1.0);
        } else {
            assert!(
                r.checkpoint_bytes < report.rows[0].checkpoint_bytes,
                "{what}"
            );
        }
        // The unit model never predicts less than the forward steps allow.
        assert!(r.forward_per_step >= 1.0, "{what}");
    }
    let memory = report
        .targets
        .iter()
        .find(|t| t.name.contains("never above the plan"))
        .expect("the memory target is checked");
    assert!(memory.met, "{}", memory.measured);
    assert!(report.targets.iter().any(|t| t.name.contains("1.33")));

    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let written = report.write(dir).unwrap();
    assert_eq!(written.len(), 6, "{written:?}");
    for name in ["forward-steps.svg", "time-memory.svg", "memory-trace.svg"] {
        let svg = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{name}");
    }
    let md = std::fs::read_to_string(dir.join("bench.md")).unwrap();
    assert!(
        md.contains("| store-all |") || md.contains("| store-all"),
        "{md}"
    );
    let csv = std::fs::read_to_string(dir.join("bench.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + report.rows.len());
    assert_eq!(
        csv.lines().next().unwrap(),
        "backend,policy,weighted,percent,budget_units,forward_per_step,peak_units,seconds,\
         best_seconds,ratio,predicted_seconds,predicted_ratio,unit_ratio,checkpoint_bytes,\
         plan_bytes,checkpoint_ratio,heap_bytes,heap_ratio,run_allocations,identical"
    );
    let store_all = csv.lines().nth(1).unwrap();
    assert!(
        store_all.starts_with("interp,store-all,false,,"),
        "{store_all}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("bench.json")).unwrap()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), report.rows.len());
}
