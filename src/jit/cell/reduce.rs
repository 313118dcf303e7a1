//! [`Instr::RowSum`](crate::cell_lang::Instr::RowSum) as a CLIF loop nest:
//! for each row, the columns added one after another into a scalar that
//! starts at `0.0`, exactly the order the program fixes.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{BlockArg, InstBuilder, MemFlagsData, types};
use cranelift_frontend::FunctionBuilder;

use super::kernel::{Args, temp};
use crate::cell_lang::Temp;

/// Emits `out[b] = Σ_j a[b, j]` for every row at the current position;
/// code after it goes on in a new block.
pub(super) fn emit_row_sum(b: &mut FunctionBuilder<'_>, args: &Args, a: Temp, out: Temp) {
    if a.width == 0 {
        return;
    }
    let flags = MemFlagsData::new().with_notrap();
    let (a_ptr, out_ptr) = (temp(b, args, a), temp(b, args, out));
    let row_block = b.create_block();
    let row = b.append_block_param(row_block, args.ty);
    let col_block = b.create_block();
    let col = b.append_block_param(col_block, args.ty);
    let sum = b.append_block_param(col_block, types::F32);
    let row_end = b.create_block();
    let total = b.append_block_param(row_end, types::F32);
    let exit = b.create_block();
    let zero = b.ins().iconst(args.ty, 0);
    b.ins()
        .brif(args.rows(), row_block, &[BlockArg::Value(zero)], exit, &[]);

    // One row: its pointer, then the columns from 0.0.
    b.switch_to_block(row_block);
    let bytes = b.ins().imul_imm_u(row, (a.width * 4) as i64);
    let p = b.ins().iadd(a_ptr, bytes);
    let start = b.ins().iconst(args.ty, 0);
    let zero_f = b.ins().f32const(0.0);
    b.ins().jump(
        col_block,
        &[BlockArg::Value(start), BlockArg::Value(zero_f)],
    );

    b.switch_to_block(col_block);
    let at = b.ins().iadd(p, col);
    let v = b.ins().load(types::F32, flags, at, 0);
    let next_sum = b.ins().fadd(sum, v);
    let next = b.ins().iadd_imm_u(col, 4);
    let more = b
        .ins()
        .icmp_imm_u(IntCC::UnsignedLessThan, next, (a.width * 4) as i64);
    b.ins().brif(
        more,
        col_block,
        &[BlockArg::Value(next), BlockArg::Value(next_sum)],
        row_end,
        &[BlockArg::Value(next_sum)],
    );

    b.switch_to_block(row_end);
    let o = b.ins().imul_imm_u(row, 4);
    let o = b.ins().iadd(out_ptr, o);
    b.ins().store(flags, total, o, 0);
    let next_row = b.ins().iadd_imm_u(row, 1);
    let more = b.ins().icmp(IntCC::UnsignedLessThan, next_row, args.rows());
    b.ins()
        .brif(more, row_block, &[BlockArg::Value(next_row)], exit, &[]);
    b.switch_to_block(exit);
}
