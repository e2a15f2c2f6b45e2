//! Vector engine: elementwise ALU ops (TENSOR_TENSOR, TENSOR_SCALAR with two fused ops),
//! reductions over trailing free dims, copy/cast, SELECT, MEMSET, IOTA and 32x32 block
//! transposes. Arithmetic is fp32; results are cast to the destination dtype on write.

use super::{expect_len, read, write, Effects};
use crate::access::{write_plan, Plan};
use crate::error::Fault;
use crate::memory::Memories;
use tahoma_isa::{
    machine, Alu, Ap, Dtype, Iota, Memset, Reduce, Scalar, ScalarMode, Select, TensorCopy,
    TensorReduce, TensorScalar, TensorTensor, Transpose32,
};

fn truth(x: f32) -> bool {
    x != 0.0
}

fn b2f(b: bool) -> f32 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// Applies a binary ALU op in fp32. `bypass` passes its first operand through.
#[inline]
pub fn alu(op: Alu, x: f32, y: f32) -> f32 {
    match op {
        Alu::Bypass => x,
        Alu::Add => x + y,
        Alu::Subtract => x - y,
        Alu::Multiply => x * y,
        Alu::Divide => x / y,
        Alu::Max => x.max(y),
        Alu::Min => x.min(y),
        Alu::Pow => x.powf(y),
        Alu::IsEqual => b2f(x == y),
        Alu::NotEqual => b2f(x != y),
        Alu::IsLt => b2f(x < y),
        Alu::IsLe => b2f(x <= y),
        Alu::IsGt => b2f(x > y),
        Alu::IsGe => b2f(x >= y),
        Alu::LogicalAnd => b2f(truth(x) && truth(y)),
        Alu::LogicalOr => b2f(truth(x) || truth(y)),
        Alu::LogicalXor => b2f(truth(x) != truth(y)),
        Alu::AbsMax => x.abs().max(y.abs()),
    }
}

/// The value of a scalar operand for each of `parts` partitions.
pub(crate) fn scalar_values(
    mem: &Memories,
    name: &str,
    s: &Scalar,
    parts: usize,
) -> Result<Vec<f32>, Fault> {
    match s.mode {
        ScalarMode::Imm => Ok(vec![s.imm; parts]),
        ScalarMode::Ap => {
            let v = read(mem, &format!("{name}.ap"), &s.ap)?;
            expect_len(&format!("{name}.ap"), v.len(), parts)?;
            Ok(v)
        }
    }
}

/// Appends `alu(op, a[i], b[i])` to `out`. The common ops get a loop of their own (the same
/// arithmetic as [`alu`], with the op's match hoisted out of the loop); the rest share one.
fn zip_alu(op: Alu, a: &[f32], b: &[f32], out: &mut Vec<f32>) {
    fn each(a: &[f32], b: &[f32], out: &mut Vec<f32>, f: impl Fn(f32, f32) -> f32) {
        out.extend(a.iter().zip(b).map(|(&p, &q)| f(p, q)));
    }
    match op {
        Alu::Add => each(a, b, out, |p, q| alu(Alu::Add, p, q)),
        Alu::Subtract => each(a, b, out, |p, q| alu(Alu::Subtract, p, q)),
        Alu::Multiply => each(a, b, out, |p, q| alu(Alu::Multiply, p, q)),
        Alu::Max => each(a, b, out, |p, q| alu(Alu::Max, p, q)),
        _ => each(a, b, out, |p, q| alu(op, p, q)),
    }
}

pub fn tensor_tensor(mem: &mut Memories, x: &TensorTensor) -> Result<Effects, Fault> {
    let a = read(mem, "a", &x.a)?;
    let b = read(mem, "b", &x.b)?;
    expect_len("b", b.len(), a.len())?;
    let mut out = mem.spare(a.len());
    zip_alu(x.op, &a, &b, &mut out);
    write(mem, "dst", &x.dst, &out)?;
    for v in [a, b, out] {
        mem.recycle(v);
    }
    Ok(Effects::default())
}

/// `v = alu(op, v, c)` (`alu(op, c, v)` when `reverse`) for each `v` of `xs`. The common ops
/// get a loop of their own (the same arithmetic as [`alu`], match hoisted); the rest share one.
fn scalar_in_place(op: Alu, reverse: bool, c: f32, xs: &mut [f32]) {
    fn each(xs: &mut [f32], g: impl Fn(f32) -> f32) {
        xs.iter_mut().for_each(|v| *v = g(*v));
    }
    match (op, reverse) {
        (Alu::Bypass, false) => {} // alu(Bypass, v, c) is v
        (Alu::Add, false) => each(xs, |v| alu(Alu::Add, v, c)),
        (Alu::Add, true) => each(xs, |v| alu(Alu::Add, c, v)),
        (Alu::Multiply, false) => each(xs, |v| alu(Alu::Multiply, v, c)),
        (Alu::Multiply, true) => each(xs, |v| alu(Alu::Multiply, c, v)),
        (Alu::Subtract, false) => each(xs, |v| alu(Alu::Subtract, v, c)),
        (Alu::Subtract, true) => each(xs, |v| alu(Alu::Subtract, c, v)),
        (Alu::Max, false) => each(xs, |v| alu(Alu::Max, v, c)),
        (Alu::Min, false) => each(xs, |v| alu(Alu::Min, v, c)),
        (Alu::Divide, false) => each(xs, |v| alu(Alu::Divide, v, c)),
        (Alu::Divide, true) => each(xs, |v| alu(Alu::Divide, c, v)),
        (_, false) => each(xs, |v| alu(op, v, c)),
        (_, true) => each(xs, |v| alu(op, c, v)),
    }
}

pub fn tensor_scalar(mem: &mut Memories, x: &TensorScalar) -> Result<Effects, Fault> {
    let src = read(mem, "src", &x.src)?;
    let parts = x.src.part_count as usize;
    let s0 = scalar_values(mem, "scalar0", &x.scalar0, parts)?;
    let s1 = scalar_values(mem, "scalar1", &x.scalar1, parts)?;
    let free = x.src.free_elems() as usize;
    let mut out = mem.spare(src.len());
    for (p, row) in src.chunks(free.max(1)).enumerate().take(parts) {
        let start = out.len();
        out.extend_from_slice(row);
        let row = &mut out[start..];
        scalar_in_place(x.op0, x.reverse0, s0[p], row);
        scalar_in_place(x.op1, x.reverse1, s1[p], row);
    }
    write(mem, "dst", &x.dst, &out)?;
    mem.recycle(src);
    mem.recycle(out);
    Ok(Effects::default())
}

pub fn tensor_reduce(mem: &mut Memories, x: &TensorReduce) -> Result<Effects, Fault> {
    let src = read(mem, "src", &x.src)?;
    let dims = x.src.dims();
    let axes = (x.axes as usize).min(dims.len());
    let red: usize = dims[dims.len() - axes..]
        .iter()
        .map(|d| d.0 as usize)
        .product();
    let keep_elems = (x.src.part_count as usize)
        * dims[..dims.len() - axes]
            .iter()
            .map(|d| d.0 as usize)
            .product::<usize>();
    let init = match x.op {
        Reduce::Add => 0.0f32,
        Reduce::Max => f32::NEG_INFINITY,
        Reduce::Min => f32::INFINITY,
    };
    let fold = |acc: f32, v: f32| match x.op {
        Reduce::Add => acc + v,
        Reduce::Max => acc.max(v),
        Reduce::Min => acc.min(v),
    };
    let mut out = Vec::with_capacity(keep_elems);
    if red == 0 {
        out.resize(keep_elems, init);
    } else {
        for chunk in src.chunks(red) {
            out.push(chunk.iter().fold(init, |a, &v| fold(a, v)));
        }
    }
    if x.negate {
        out.iter_mut().for_each(|v| *v = -*v);
    }
    write(mem, "dst", &x.dst, &out)?;
    mem.recycle(src);
    Ok(Effects::default())
}

pub fn tensor_copy(mem: &mut Memories, x: &TensorCopy) -> Result<Effects, Fault> {
    copy(mem, "src", &x.src, "dst", &x.dst)?;
    Ok(Effects::default())
}

/// Copies one on-chip access to another: bit-exact when dtypes match, else through fp32.
fn copy(mem: &mut Memories, sn: &str, src: &Ap, dn: &str, dst: &Ap) -> Result<(), Fault> {
    let sp = Plan::of_ap(src).map_err(|f| f.within(sn))?;
    let dp = Plan::of_ap(dst).map_err(|f| f.within(dn))?;
    expect_len(dn, dp.count, sp.count)?;
    if src.dtype == dst.dtype {
        crate::access::copy_raw(mem, &sp, &dp);
    } else {
        let mut v = mem.spare(sp.count);
        crate::access::gather(mem.mem(sp.mem), &sp, &mut v);
        write_plan(mem, &dp, &v).map_err(|f| f.within(dn))?;
        mem.recycle(v);
    }
    Ok(())
}

pub fn select(mem: &mut Memories, x: &Select) -> Result<Effects, Fault> {
    let pred = read(mem, "pred", &x.pred)?;
    let t = read(mem, "on_true", &x.on_true)?;
    let f = read(mem, "on_false", &x.on_false)?;
    expect_len("on_true", t.len(), pred.len())?;
    expect_len("on_false", f.len(), pred.len())?;
    let mut out = mem.spare(pred.len());
    out.extend(
        pred.iter()
            .zip(t.iter().zip(&f))
            .map(|(&p, (&a, &b))| if p != 0.0 { a } else { b }),
    );
    write(mem, "dst", &x.dst, &out)?;
    for v in [pred, t, f, out] {
        mem.recycle(v);
    }
    Ok(Effects::default())
}

pub fn memset(mem: &mut Memories, x: &Memset) -> Result<Effects, Fault> {
    let n = x.dst.elems() as usize;
    let mut vals = mem.spare(n);
    vals.resize(n, x.value);
    write(mem, "dst", &x.dst, &vals)?;
    mem.recycle(vals);
    Ok(Effects::default())
}

pub fn iota(mem: &mut Memories, x: &Iota) -> Result<Effects, Fault> {
    // Computed in i64 (wrapping on overflow) and converted once to the destination dtype; an
    // i32 destination saturates.
    let mut dims = x.dst.dims();
    let steps = [x.step0, x.step1, x.step2, x.step3];
    let mut sizes: Vec<(u64, i64)> = vec![(x.dst.part_count, x.part_step)];
    for (k, d) in dims.iter_mut().enumerate() {
        sizes.push((d.0, steps[k]));
    }
    let total = x.dst.elems() as usize;
    let mut vals: Vec<i64> = Vec::with_capacity(total);
    if total > 0 {
        // Outer dims by an odometer, the innermost as one straight run: the value is
        // base + sum(index * step), wrapping.
        let (inner, outer) = sizes.split_last().unwrap_or((&(1, 0), &[]));
        let mut idx = vec![0u64; outer.len()];
        let mut row = x.base;
        loop {
            let (n, step) = (inner.0 as i64, inner.1);
            vals.extend((0..n).map(|j| row.wrapping_add(step.wrapping_mul(j))));
            let mut k = outer.len();
            let mut finished = true;
            while k > 0 {
                k -= 1;
                idx[k] += 1;
                row = row.wrapping_add(outer[k].1);
                if idx[k] < outer[k].0 {
                    finished = false;
                    break;
                }
                row = row.wrapping_sub(outer[k].1.wrapping_mul(outer[k].0 as i64));
                idx[k] = 0;
            }
            if finished {
                break;
            }
        }
    }
    let plan = Plan::of_ap(&x.dst).map_err(|f| f.within("dst"))?;
    expect_len("dst", vals.len(), plan.count)?;
    if x.dst.dtype == Dtype::I32 {
        let raw: Vec<u8> = vals
            .iter()
            .flat_map(|&v| (v.clamp(i32::MIN as i64, i32::MAX as i64) as i32).to_le_bytes())
            .collect();
        crate::access::scatter_raw(mem.mem_mut(plan.mem), &plan, &raw);
    } else {
        let mut f = mem.spare(vals.len());
        f.extend(vals.iter().map(|&v| v as f32));
        write_plan(mem, &plan, &f).map_err(|e| e.within("dst"))?;
        mem.recycle(f);
    }
    Ok(Effects::default())
}

pub fn transpose32(mem: &mut Memories, x: &Transpose32) -> Result<Effects, Fault> {
    let b = machine::VECTOR_TRANSPOSE_BLOCK as usize;
    let src = read(mem, "src", &x.src)?;
    let (p, f) = (x.src.part_count as usize, x.src.free_elems() as usize);
    if !p.is_multiple_of(b) || !f.is_multiple_of(b) || src.len() != p * f {
        return Err(Fault::new(
            "E4007",
            "src",
            format!("[{p}, {f}] is not made of {b}x{b} blocks"),
        ));
    }
    let mut out = mem.spare(p * f);
    out.resize(p * f, 0.0);
    for pb in 0..p / b {
        for fb in 0..f / b {
            for i in 0..b {
                for j in 0..b {
                    out[(pb * b + j) * f + fb * b + i] = src[(pb * b + i) * f + fb * b + j];
                }
            }
        }
    }
    write(mem, "dst", &x.dst, &out)?;
    mem.recycle(src);
    mem.recycle(out);
    Ok(Effects::default())
}

#[cfg(test)]
mod tests {
    //! The hoisted loops against `alu` applied element by element.
    use super::*;

    fn values() -> Vec<f32> {
        let mut v = vec![
            0.0,
            -0.0,
            1.0,
            -1.5,
            3.25,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ];
        v.extend((0..40).map(|i| (i as f32 - 20.0) * 0.37));
        v
    }

    #[test]
    fn zip_alu_matches_alu() {
        let a = values();
        let b: Vec<f32> = a.iter().rev().copied().collect();
        for op in Alu::ALL {
            let mut out = Vec::new();
            zip_alu(op, &a, &b, &mut out);
            let want: Vec<u32> = a
                .iter()
                .zip(&b)
                .map(|(&x, &y)| alu(op, x, y).to_bits())
                .collect();
            let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want, "{op:?}");
        }
    }

    #[test]
    fn scalar_in_place_matches_alu() {
        let xs = values();
        for op in Alu::ALL {
            for reverse in [false, true] {
                for c in [0.0, -0.0, 2.5, -3.0, f32::NAN, f32::INFINITY] {
                    let mut got = xs.clone();
                    scalar_in_place(op, reverse, c, &mut got);
                    for (g, &v) in got.iter().zip(&xs) {
                        let want = if reverse {
                            alu(op, c, v)
                        } else {
                            alu(op, v, c)
                        };
                        assert_eq!(
                            g.to_bits(),
                            want.to_bits(),
                            "{op:?} rev {reverse} c {c} v {v}"
                        );
                    }
                }
            }
        }
    }
}
