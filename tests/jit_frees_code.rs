//! Dropping a compiled schedule frees its code: the test reads the process's
//! memory map, which every JIT in the process changes, so it is a process of
//! its own (the integration tests compile in parallel).

#[path = "common/mod.rs"]
mod common;

use bptt::jit::{CompiledSchedule, JitOptions};
use bptt::{Alpha, Budget, Plan, Policy, Schedule};
use common::Problem;

/// Bytes of anonymous executable memory in this process: cranelift-jit maps
/// its code pages with `mmap`, so code that is not freed shows up here.
#[cfg(target_os = "linux")]
fn jit_code_bytes() -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // address perms offset device inode [path]
            let anonymous = fields.len() == 5 && fields[4] == "0";
            if !anonymous || !fields[1].contains('x') {
                return None;
            }
            let (start, end) = fields[0].split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            Some(end - start)
        })
        .sum()
}

#[cfg(target_os = "linux")]
#[test]
fn dropping_the_compiled_schedule_frees_its_code() {
    let problem = Problem::new("gru", 50, 2, 9);
    let compile = || {
        let alpha = Alpha::new(problem.cell.alpha()).unwrap();
        let plan = Plan::new(Policy::Msm, alpha, 50, Budget::Percent(10.0)).unwrap();
        let schedule = Schedule::from_plan(&plan);
        let options = JitOptions {
            runs_per_function: 4,
            verifier: false,
            loops: true,
        };
        CompiledSchedule::compile_with(schedule, &*problem.cell, &problem.readout, 2, options)
            .unwrap()
    };
    // Warm up (thread pool, lazily initialised state), then measure.
    let warm = compile();
    let functions = warm.functions();
    assert!(functions > 5);
    drop(warm);
    let before = jit_code_bytes();
    for _ in 0..200 {
        let mut compiled = compile();
        let mut grads = compiled.gradients(&*problem.cell, &problem.readout);
        compiled
            .run(
                &*problem.cell,
                &problem.readout,
                problem.x.view(),
                problem.h0.view(),
                problem.targets(),
                &mut grads,
            )
            .unwrap();
    }
    let after = jit_code_bytes();
    // Leaking would keep at least a page per compiled function (over a
    // thousand pages in all).
    assert_eq!(after, before, "executable bytes before and after");
}
