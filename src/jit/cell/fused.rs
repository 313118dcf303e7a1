//! A fused loop as a CLIF loop nest: rows in order, and in each row the
//! columns in passes of [`UNROLL`] interleaved `f32x4` vectors, then the
//! remaining columns in one last pass, the last `width % 4` of them in the
//! low lanes of one more vector.
//!
//! Every [`LoopOp`] is one CLIF operation per vector (the activations a
//! fixed sequence of them, see [`super::act`]), so a column gets the same
//! bits whichever lane and vector it is in. Each view's row is addressed
//! from a pointer computed once per row; columns are immediate offsets from
//! it.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{BlockArg, InstBuilder, MemFlagsData, Value, types};
use cranelift_frontend::FunctionBuilder;

use super::act::{Bundle, Vectors};
use super::kernel::{Args, temp};
use crate::cell_lang::{Binary, Buffer, FusedLoop, LoopOp, Reg, Sink, Temp, View};

/// Columns per vector.
const LANES: usize = 4;

/// Loads and stores: in bounds and aligned to a float only.
fn flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// What a loop's row pointer points into: rows of a buffer, rows of a
/// temporary, or the (row-independent) parameters or their gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    Rows { buffer: Buffer, stride: usize },
    Temp(Temp),
    Params,
    Grads,
}

impl Base {
    /// The base and first column of a view.
    fn of(view: View) -> (Base, usize) {
        match view {
            View::Rows {
                buffer,
                stride,
                col,
            } => (Base::Rows { buffer, stride }, col),
            View::Temp { temp, col } => (Base::Temp(temp), col),
        }
    }

    /// Floats from one row to the next.
    fn stride(self) -> usize {
        match self {
            Base::Rows { stride, .. } => stride,
            Base::Temp(t) => t.width,
            Base::Params | Base::Grads => 0,
        }
    }

    /// The pointer to row 0.
    fn start(self, b: &mut FunctionBuilder<'_>, args: &Args) -> Value {
        match self {
            Base::Rows { buffer, .. } => args.buffer(buffer),
            Base::Temp(t) => temp(b, args, t),
            Base::Params => args.params(),
            Base::Grads => args.grads(),
        }
    }
}

/// The distinct bases a loop reads and writes, in order of first use.
struct Bases(Vec<Base>);

impl Bases {
    /// The bases of every load and sink of `fused`.
    fn of(fused: &FusedLoop) -> Bases {
        let loads = fused.ops.iter().filter_map(|op| match *op {
            LoopOp::Load(view) | LoopOp::LoadScalar(view) => Some(Base::of(view).0),
            LoopOp::Param(_) | LoopOp::ParamScalar(_) => Some(Base::Params),
            _ => None,
        });
        let sinks = fused.sinks.iter().map(|sink| match *sink {
            Sink::Store(view, _) => Base::of(view).0,
            Sink::AccumulateGrad(..) => Base::Grads,
        });
        let mut bases = Vec::new();
        for base in loads.chain(sinks) {
            if !bases.contains(&base) {
                bases.push(base);
            }
        }
        Bases(bases)
    }

    /// The index of `base`, one of the loop's.
    fn index(&self, base: Base) -> usize {
        let found = self.0.iter().position(|&b| b == base);
        found.expect("the bases are collected from the loop")
    }
}

/// Full vectors interleaved in one pass of the column loop.
const UNROLL: usize = 4;

/// `lanes` columns from column `first` of a view (plus the loop's step),
/// in one vector.
#[derive(Clone, Copy)]
struct Group {
    first: usize,
    lanes: usize,
}

/// The columns one pass of the loop body handles: a group per vector of
/// its bundles and, in the column loop, the byte offset `step` of the
/// pass's first column.
struct Columns {
    step: Option<Value>,
    groups: Vec<Group>,
}

/// Emits the loop nest of `fused` at the current position; code after it
/// goes on in a new block.
pub(super) fn emit_loop(b: &mut FunctionBuilder<'_>, args: &Args, fused: &FusedLoop) {
    if fused.width == 0 {
        return;
    }
    let bases = Bases::of(fused);
    let starts: Vec<Value> = bases.0.iter().map(|p| p.start(b, args)).collect();
    let row_block = b.create_block();
    let row = b.append_block_param(row_block, args.ty);
    let exit = b.create_block();
    let zero = b.ins().iconst(args.ty, 0);
    b.ins()
        .brif(args.rows(), row_block, &[BlockArg::Value(zero)], exit, &[]);

    // One row: its pointers, the passes of full vectors, the rest, the next row.
    b.switch_to_block(row_block);
    let rows: Vec<Value> = bases
        .0
        .iter()
        .zip(&starts)
        .map(|(base, &start)| match base.stride() {
            0 => start,
            stride => {
                let bytes = b.ins().imul_imm_u(row, (stride * 4) as i64);
                b.ins().iadd(start, bytes)
            }
        })
        .collect();
    let invariant = invariant_registers(b, fused, &bases, &rows);
    let full = |first: usize| Group {
        first,
        lanes: LANES,
    };
    let pass = UNROLL * LANES;
    let passes = fused.width / pass;
    if passes > 0 {
        let col_block = b.create_block();
        let step = b.append_block_param(col_block, args.ty);
        let done = b.create_block();
        let zero = b.ins().iconst(args.ty, 0);
        b.ins().jump(col_block, &[BlockArg::Value(zero)]);
        b.switch_to_block(col_block);
        let columns = Columns {
            step: Some(step),
            groups: (0..UNROLL).map(|v| full(v * LANES)).collect(),
        };
        emit_columns(b, fused, &bases, &rows, &invariant, &columns);
        let next = b.ins().iadd_imm_u(step, (pass * 4) as i64);
        let end = (passes * pass * 4) as i64;
        let more = b.ins().icmp_imm_u(IntCC::UnsignedLessThan, next, end);
        b.ins()
            .brif(more, col_block, &[BlockArg::Value(next)], done, &[]);
        b.switch_to_block(done);
    }
    // The columns after the passes: full vectors, then the last few.
    let done = passes * pass;
    let rest = (fused.width - done) / LANES;
    let mut groups: Vec<Group> = (0..rest).map(|v| full(done + v * LANES)).collect();
    let tail = done + rest * LANES;
    if tail < fused.width {
        groups.push(Group {
            first: tail,
            lanes: fused.width - tail,
        });
    }
    if !groups.is_empty() {
        let columns = Columns { step: None, groups };
        emit_columns(b, fused, &bases, &rows, &invariant, &columns);
    }
    let next = b.ins().iadd_imm_u(row, 1);
    let more = b.ins().icmp(IntCC::UnsignedLessThan, next, args.rows());
    b.ins()
        .brif(more, row_block, &[BlockArg::Value(next)], exit, &[]);
    b.switch_to_block(exit);
}

/// The row-invariant registers ([`LoopOp::is_row_invariant`]), computed
/// once per row in one vector each, before the column loop: a
/// scalar gate broadcast over a matrix memory's 4,096 columns is one
/// `softplus` per row. The same operations on the same operands, so the
/// same bits as computing them in every column.
fn invariant_registers(
    b: &mut FunctionBuilder<'_>,
    fused: &FusedLoop,
    bases: &Bases,
    rows: &[Value],
) -> Vec<Option<Value>> {
    let mut v = Vectors { b, n: 1 };
    let mut regs: Vec<Option<Value>> = Vec::with_capacity(fused.ops.len());
    for op in &fused.ops {
        let value = op
            .is_row_invariant(|r| regs[r.0 as usize].is_some())
            .then(|| {
                let reg = |r: Reg| [regs[r.0 as usize].expect("read by an invariant op")];
                let bundle = match *op {
                    LoopOp::Const(c) => v.splat(c),
                    LoopOp::LoadScalar(view) => {
                        let (base, col) = Base::of(view);
                        scalar(&mut v, rows[bases.index(base)], col)
                    }
                    LoopOp::ParamScalar(offset) => {
                        scalar(&mut v, rows[bases.index(Base::Params)], offset)
                    }
                    LoopOp::Unary(f, a) => v.unary(f, &reg(a)),
                    LoopOp::Binary(f, x, y) => v.binary(f, &reg(x), &reg(y)),
                    LoopOp::Load(_) | LoopOp::Param(_) => unreachable!("not row-invariant"),
                };
                bundle[0]
            });
        regs.push(value);
    }
    regs
}

/// The loop body for `columns` of the current row, whose pointer per base
/// is `rows` (in the order of `bases`): every op (the `invariant` ones
/// already computed), then every sink.
fn emit_columns(
    b: &mut FunctionBuilder<'_>,
    fused: &FusedLoop,
    bases: &Bases,
    rows: &[Value],
    invariant: &[Option<Value>],
    columns: &Columns,
) {
    let pointers: Vec<Value> = match columns.step {
        Some(step) => rows.iter().map(|&row| b.ins().iadd(row, step)).collect(),
        None => rows.to_vec(),
    };
    let at = |(base, col): (Base, usize)| (pointers[bases.index(base)], col);
    let mut v = Vectors {
        b,
        n: columns.groups.len(),
    };
    let mut regs: Vec<Bundle> = Vec::with_capacity(fused.ops.len());
    for (op, invariant) in fused.ops.iter().zip(invariant) {
        if let Some(x) = *invariant {
            regs.push(vec![x; v.n]);
            continue;
        }
        let value = match *op {
            LoopOp::Load(view) => load(v.b, at(Base::of(view)), &columns.groups),
            LoopOp::Param(offset) => load(v.b, at((Base::Params, offset)), &columns.groups),
            LoopOp::LoadScalar(_) | LoopOp::ParamScalar(_) | LoopOp::Const(_) => {
                unreachable!("computed once per row")
            }
            LoopOp::Unary(f, a) => v.unary(f, &regs[a.0 as usize]),
            LoopOp::Binary(f, x, y) => v.binary(f, &regs[x.0 as usize], &regs[y.0 as usize]),
        };
        regs.push(value);
    }
    for sink in &fused.sinks {
        match *sink {
            Sink::Store(view, r) => {
                store(
                    v.b,
                    &regs[r.0 as usize],
                    at(Base::of(view)),
                    &columns.groups,
                );
            }
            Sink::AccumulateGrad(offset, r) => {
                let place = at((Base::Grads, offset));
                let g = load(v.b, place, &columns.groups);
                let sum = v.binary(Binary::Add, &g, &regs[r.0 as usize]);
                store(v.b, &sum, place, &columns.groups);
            }
        }
    }
}

/// The float at column `col` of the row at `p` (whatever the pass's
/// columns), in every lane of every vector.
fn scalar(v: &mut Vectors<'_, '_>, p: Value, col: usize) -> Bundle {
    // In range: `check` bounds every row by `i32::MAX / 4` floats.
    let x = v.b.ins().load(types::F32, flags(), p, (col * 4) as i32);
    vec![v.b.ins().splat(types::F32X4, x); v.n]
}

/// The byte offset of lane `lane` of `group` in a view from `col`.
fn lane_offset(col: usize, group: Group, lane: usize) -> i32 {
    // In range: `check` bounds every row by `i32::MAX / 4` floats.
    ((col + group.first + lane) * 4) as i32
}

/// Reads `groups` from column `col` of the row at `p`, a vector each;
/// lanes past a group's `lanes` are unspecified.
fn load(b: &mut FunctionBuilder<'_>, (p, col): (Value, usize), groups: &[Group]) -> Bundle {
    let mut bundle = Vec::with_capacity(groups.len());
    for &group in groups {
        let at = |lane| lane_offset(col, group, lane);
        if group.lanes == LANES {
            bundle.push(b.ins().load(types::F32X4, flags(), p, at(0)));
            continue;
        }
        let first = b.ins().load(types::F32, flags(), p, at(0));
        let mut v = b.ins().scalar_to_vector(types::F32X4, first);
        for lane in 1..group.lanes {
            let x = b.ins().load(types::F32, flags(), p, at(lane));
            v = b.ins().insertlane(v, x, lane as u8);
        }
        bundle.push(v);
    }
    bundle
}

/// Writes the first `lanes` lanes of each vector of `bundle` to its group
/// from column `col` of the row at `p`.
fn store(
    b: &mut FunctionBuilder<'_>,
    bundle: &[Value],
    (p, col): (Value, usize),
    groups: &[Group],
) {
    for (&v, &group) in bundle.iter().zip(groups) {
        let at = |lane| lane_offset(col, group, lane);
        if group.lanes == LANES {
            b.ins().store(flags(), v, p, at(0));
            continue;
        }
        for lane in 0..group.lanes {
            let x = b.ins().extractlane(v, lane as u8);
            b.ins().store(flags(), x, p, at(lane));
        }
    }
}
