//! The integration tests, one binary: each module is what its name says, and
//! linking the library (and Cranelift) once instead of per file is most of a
//! fresh clone's test build. The tests that measure the whole process (its
//! heap, its memory map) are binaries of their own: `no_alloc.rs` and
//! `jit_frees_code.rs` beside this folder.

#[path = "../common/mod.rs"]
mod common;

mod bench;
mod cli;
mod derived_cells;
mod gradients;
mod hostile;
mod hostile_cells;
mod jit;
mod jit_cell;
mod long_planner;
mod macro_expand;
mod plan_memory;
mod planner;
mod readme;
mod schedule;
mod weighted;
