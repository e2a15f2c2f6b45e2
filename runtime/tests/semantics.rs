//! Instruction semantics against references computed here: each test DMAs inputs into SBUF,
//! runs instructions, DMAs results out and compares.

mod common;
use common::*;
use std::collections::BTreeMap;
use tahoma_isa::program::{IoKind, StreamId};
use tahoma_isa::rng::Rng;
use tahoma_isa::{
    machine, Act, Activate, Alu, Ap, Dtype, Inst, Iota, Memset, Reduce, Scalar, Select, TensorCopy,
    TensorReduce, TensorScalar, TensorTensor, Transpose32,
};
use tahoma_runtime::engines::scalar::{erf, erfc};
use tahoma_runtime::{Emulator, Mode, RunOptions, Tensor};

#[derive(Clone, Copy)]
struct Buf {
    name: &'static str,
    dtype: Dtype,
    parts: u64,
    free: u64,
    off: u64,
}

impl Buf {
    fn ap(&self) -> Ap {
        sbuf(self.dtype, self.parts, self.off, &[(self.free, 1)])
    }
}

const HBM_STRIDE: u64 = 1 << 22;

/// Runs `compute` (each waits for all loads, signals s2) between loads and stores.
fn run_with(
    ins: &[(Buf, Vec<f32>)],
    compute: Vec<(StreamId, Inst)>,
    outs: &[Buf],
    mode: Mode,
) -> BTreeMap<String, Tensor> {
    let mut io_table = Vec::new();
    let mut loads = Vec::new();
    for (i, (b, _)) in ins.iter().enumerate() {
        let addr = i as u64 * HBM_STRIDE;
        io_table.push(io(b.name, IoKind::Input, b.dtype, &[b.parts, b.free], addr));
        loads.push(dma(
            0,
            hbm_rows(b.dtype, b.parts, b.free, addr),
            sbuf_rows(b.dtype, b.parts, b.free, b.off),
            signal(1, 1),
        ));
    }
    let ncomp = compute.len() as u64;
    let mut streams: Vec<(StreamId, Vec<Inst>)> = vec![(StreamId::Dma(0), loads)];
    for (sid, mut inst) in compute {
        let h = inst.sync_mut();
        h.add_wait(1, ins.len() as u64).unwrap();
        h.signal_sem = 2;
        h.signal_inc = 1;
        match streams.iter_mut().find(|(s, _)| *s == sid) {
            Some((_, v)) => v.push(inst),
            None => streams.push((sid, vec![inst])),
        }
    }
    let mut stores = Vec::new();
    for (i, b) in outs.iter().enumerate() {
        let addr = (ins.len() + i) as u64 * HBM_STRIDE;
        io_table.push(io(
            b.name,
            IoKind::Output,
            b.dtype,
            &[b.parts, b.free],
            addr,
        ));
        stores.push(dma(
            1,
            sbuf_rows(b.dtype, b.parts, b.free, b.off),
            hbm_rows(b.dtype, b.parts, b.free, addr),
            wait(2, ncomp),
        ));
    }
    streams.push((StreamId::Dma(1), stores));
    let mut emu = Emulator::new(program(streams, io_table)).unwrap();
    for (b, vals) in ins {
        emu.set_input(
            b.name,
            &Tensor::new(Dtype::Fp32, vec![b.parts, b.free], vals.clone()),
        )
        .unwrap();
    }
    emu.run(&RunOptions {
        mode,
        ..RunOptions::default()
    })
    .unwrap()
    .outputs
}

fn randoms(n: u64, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.uniform(lo, hi)).collect()
}

const P: u64 = 32;
const F: u64 = 64;

fn buf(name: &'static str, dtype: Dtype, off: u64) -> Buf {
    Buf {
        name,
        dtype,
        parts: P,
        free: F,
        off,
    }
}

#[test]
fn tensor_tensor_every_alu_op() {
    let a = randoms(P * F, 1, -2.0, 2.0);
    let mut b = randoms(P * F, 2, 0.25, 2.0);
    // Some equal elements for the comparisons, some zeros for the logical ops.
    for i in (0..b.len()).step_by(7) {
        b[i] = a[i];
    }
    let mut a = a;
    for i in (0..a.len()).step_by(5) {
        a[i] = 0.0;
    }
    let (ba, bb, bo) = (
        buf("a", Dtype::Fp32, 0),
        buf("b", Dtype::Fp32, 1024),
        buf("o", Dtype::Fp32, 2048),
    );
    for op in Alu::ALL {
        let inst = Inst::TensorTensor(TensorTensor {
            sync: Default::default(),
            dst: bo.ap(),
            a: ba.ap(),
            b: bb.ap(),
            op,
        });
        let out = run_with(
            &[(ba, a.clone()), (bb, b.clone())],
            vec![(StreamId::Vector, inst)],
            &[bo],
            Mode::Functional,
        );
        let got = &out["o"].data;
        for i in 0..a.len() {
            let (x, y) = (a[i], b[i]);
            let t = |c: bool| if c { 1.0 } else { 0.0 };
            let want = match op {
                Alu::Bypass => x,
                Alu::Add => x + y,
                Alu::Subtract => x - y,
                Alu::Multiply => x * y,
                Alu::Divide => x / y,
                Alu::Max => x.max(y),
                Alu::Min => x.min(y),
                Alu::Pow => x.powf(y),
                Alu::IsEqual => t(x == y),
                Alu::NotEqual => t(x != y),
                Alu::IsLt => t(x < y),
                Alu::IsLe => t(x <= y),
                Alu::IsGt => t(x > y),
                Alu::IsGe => t(x >= y),
                Alu::LogicalAnd => t(x != 0.0 && y != 0.0),
                Alu::LogicalOr => t(x != 0.0 || y != 0.0),
                Alu::LogicalXor => t((x != 0.0) ^ (y != 0.0)),
                Alu::AbsMax => x.abs().max(y.abs()),
            };
            assert!(
                got[i] == want || (got[i].is_nan() && want.is_nan()),
                "{op:?} at {i}: {} vs {want}",
                got[i]
            );
        }
    }
}

#[test]
fn tensor_scalar_fuses_two_ops_with_per_partition_scalars_and_reverse() {
    let src = randoms(P * F, 3, -1.0, 1.0);
    let scale: Vec<f32> = (0..P).map(|p| p as f32 + 1.0).collect();
    let (bs, bsc, bo) = (
        buf("s", Dtype::Fp32, 0),
        Buf {
            name: "sc",
            dtype: Dtype::Fp32,
            parts: P,
            free: 1,
            off: 1024,
        },
        buf("o", Dtype::Bf16, 2048),
    );
    // o = 10 - (src * scale[p])
    let inst = Inst::TensorScalar(TensorScalar {
        sync: Default::default(),
        dst: bo.ap(),
        src: bs.ap(),
        scalar0: Scalar::per_partition(bsc.ap()),
        scalar1: Scalar::imm(10.0),
        op0: Alu::Multiply,
        op1: Alu::Subtract,
        reverse0: false,
        reverse1: true,
    });
    for mode in [Mode::Functional, Mode::Timed] {
        let out = run_with(
            &[(bs, src.clone()), (bsc, scale.clone())],
            vec![(StreamId::Vector, inst)],
            &[bo],
            mode,
        );
        for (i, &g) in out["o"].data.iter().enumerate() {
            let want = half::bf16::from_f32(10.0 - src[i] * scale[i / F as usize]).to_f32();
            assert_eq!(g, want, "at {i}");
        }
    }
}

#[test]
fn tensor_reduce_over_trailing_dims() {
    let src = randoms(P * F, 4, -1.0, 1.0);
    let bs = buf("s", Dtype::Fp32, 0);
    let rows = |n| Buf {
        name: "o",
        dtype: Dtype::Fp32,
        parts: P,
        free: n,
        off: 1024,
    };
    // [P, 4, 16] summed over the last dim -> [P, 4]; max over both (negated) -> [P, 1].
    let src_ap = sbuf(Dtype::Fp32, P, 0, &[(4, 16), (16, 1)]);
    for (op, axes, negate, keep) in [
        (Reduce::Add, 1, false, 4u64),
        (Reduce::Max, 2, true, 1),
        (Reduce::Min, 1, false, 4),
    ] {
        let bo = rows(keep);
        let inst = Inst::TensorReduce(TensorReduce {
            sync: Default::default(),
            dst: bo.ap(),
            src: src_ap,
            op,
            axes,
            negate,
        });
        let out = run_with(
            &[(bs, src.clone())],
            vec![(StreamId::Vector, inst)],
            &[bo],
            Mode::Functional,
        );
        let red = (F / keep) as usize;
        for (j, &g) in out["o"].data.iter().enumerate() {
            let chunk = &src[j * red..(j + 1) * red];
            let mut want = match op {
                Reduce::Add => chunk.iter().sum::<f32>(),
                Reduce::Max => chunk.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                Reduce::Min => chunk.iter().copied().fold(f32::INFINITY, f32::min),
            };
            if negate {
                want = -want;
            }
            assert!((g - want).abs() <= 1e-6, "{op:?} {j}: {g} vs {want}");
        }
    }
}

#[test]
fn copy_casts_round_to_nearest_even_and_strided_reversed_access() {
    // Values straddling bf16 ties.
    let one = 1.0f32;
    let ulp = f32::from_bits(one.to_bits() + (1 << 16)) - one;
    let mut src = randoms(P * F, 5, -3.0, 3.0);
    src[0] = one + ulp / 2.0; // tie -> even (1.0)
    src[1] = one + ulp * 1.5; // tie -> even (1 + 2 ulp)
    src[2] = one + ulp * 0.75;
    let (bs, bo) = (buf("s", Dtype::Fp32, 0), buf("o", Dtype::Bf16, 1024));
    let inst = Inst::TensorCopy(TensorCopy {
        sync: Default::default(),
        dst: bo.ap(),
        src: bs.ap(),
    });
    let out = run_with(
        &[(bs, src.clone())],
        vec![(StreamId::Vector, inst)],
        &[bo],
        Mode::Functional,
    );
    assert_eq!(out["o"].data[0], one);
    assert_eq!(out["o"].data[1], one + 2.0 * ulp);
    assert_eq!(out["o"].data[2], one + ulp);
    for (i, &g) in out["o"].data.iter().enumerate() {
        assert_eq!(g, half::bf16::from_f32(src[i]).to_f32());
    }
    // Reverse each row: start at the last element, stride -1; and take every other element.
    let bo = buf("o", Dtype::Fp32, 1024);
    let rev = sbuf(Dtype::Fp32, P, (F - 1) * 4, &[(F, -1)]);
    let inst = Inst::TensorCopy(TensorCopy {
        sync: Default::default(),
        dst: bo.ap(),
        src: rev,
    });
    let out = run_with(
        &[(bs, src.clone())],
        vec![(StreamId::Vector, inst)],
        &[bo],
        Mode::Timed,
    );
    for p in 0..P as usize {
        for j in 0..F as usize {
            assert_eq!(
                out["o"].data[p * F as usize + j],
                src[p * F as usize + F as usize - 1 - j]
            );
        }
    }
    let half_o = Buf {
        name: "o",
        dtype: Dtype::Fp32,
        parts: P,
        free: F / 2,
        off: 1024,
    };
    let every_other = sbuf(Dtype::Fp32, P, 0, &[(F / 2, 2)]);
    let inst = Inst::TensorCopy(TensorCopy {
        sync: Default::default(),
        dst: half_o.ap(),
        src: every_other,
    });
    let out = run_with(
        &[(bs, src.clone())],
        vec![(StreamId::Vector, inst)],
        &[half_o],
        Mode::Functional,
    );
    for p in 0..P as usize {
        for j in 0..(F / 2) as usize {
            assert_eq!(
                out["o"].data[p * (F / 2) as usize + j],
                src[p * F as usize + 2 * j]
            );
        }
    }
}

#[test]
fn select_memset_iota() {
    let pred: Vec<f32> = (0..P * F).map(|i| (i % 3 == 0) as u8 as f32).collect();
    let t = randoms(P * F, 6, -1.0, 1.0);
    let f = randoms(P * F, 7, -1.0, 1.0);
    let (bp, bt, bf, bo) = (
        buf("p", Dtype::Fp32, 0),
        buf("t", Dtype::Fp32, 1024),
        buf("f", Dtype::Fp32, 2048),
        buf("o", Dtype::Fp32, 4096),
    );
    let inst = Inst::Select(Select {
        sync: Default::default(),
        dst: bo.ap(),
        pred: bp.ap(),
        on_true: bt.ap(),
        on_false: bf.ap(),
    });
    let out = run_with(
        &[(bp, pred.clone()), (bt, t.clone()), (bf, f.clone())],
        vec![(StreamId::Vector, inst)],
        &[bo],
        Mode::Functional,
    );
    for i in 0..pred.len() {
        assert_eq!(out["o"].data[i], if pred[i] != 0.0 { t[i] } else { f[i] });
    }
    // MEMSET then IOTA over part of it: [P, 4, 8] with steps.
    let bm = buf("m", Dtype::Fp32, 0);
    let bi = buf("i", Dtype::I32, 1024);
    let ms = Inst::Memset(Memset {
        sync: Default::default(),
        dst: bm.ap(),
        value: -2.5,
    });
    let iota = Inst::Iota(Iota {
        sync: Default::default(),
        dst: sbuf(Dtype::I32, P, 1024, &[(4, 16), (16, 1)]),
        base: -7,
        part_step: 1000,
        step0: 100,
        step1: 3,
        ..Iota::default()
    });
    let out = run_with(
        &[],
        vec![(StreamId::Vector, ms), (StreamId::Vector, iota)],
        &[bm, bi],
        Mode::Timed,
    );
    assert!(out["m"].data.iter().all(|&v| v == -2.5));
    for p in 0..P as usize {
        for a in 0..4usize {
            for b in 0..16usize {
                let want = -7 + 1000 * p as i64 + 100 * a as i64 + 3 * b as i64;
                assert_eq!(out["i"].data[p * 64 + a * 16 + b], want as f32);
            }
        }
    }
}

#[test]
fn transpose32_swaps_within_blocks() {
    let bl = machine::VECTOR_TRANSPOSE_BLOCK as usize;
    let (p, f) = (2 * bl as u64, 2 * bl as u64);
    let src: Vec<f32> = (0..p * f).map(|i| i as f32).collect();
    let bs = Buf {
        name: "s",
        dtype: Dtype::Fp32,
        parts: p,
        free: f,
        off: 0,
    };
    let bo = Buf {
        name: "o",
        dtype: Dtype::Fp32,
        parts: p,
        free: f,
        off: 1024,
    };
    let inst = Inst::Transpose32(Transpose32 {
        sync: Default::default(),
        dst: bo.ap(),
        src: bs.ap(),
    });
    let out = run_with(
        &[(bs, src.clone())],
        vec![(StreamId::Vector, inst)],
        &[bo],
        Mode::Functional,
    );
    let f = f as usize;
    for pb in 0..2 {
        for fb in 0..2 {
            for i in 0..bl {
                for j in 0..bl {
                    assert_eq!(
                        out["o"].data[(pb * bl + j) * f + fb * bl + i],
                        src[(pb * bl + i) * f + fb * bl + j]
                    );
                }
            }
        }
    }
}

#[test]
fn erf_matches_table_values() {
    for (x, want) in [
        (0.0, 0.0),
        (0.5, 0.520_499_877_813_046_5),
        (1.0, 0.842_700_792_949_714_9),
        (2.0, 0.995_322_265_018_952_7),
        (3.0, 0.999_977_909_503_001_4),
        (-1.5, -0.966_105_146_475_310_7),
    ] {
        assert!(
            (erf(x) - want).abs() < 1e-14,
            "erf({x}) = {} vs {want}",
            erf(x)
        );
    }
    assert!((erfc(3.0) - 2.209_049_699_858_544e-5).abs() < 1e-18);
    assert!((erfc(5.0) - 1.537_459_794_428_035e-12).abs() < 1e-24);
    assert!((erfc(-2.5) - 1.999_593_047_982_555).abs() < 1e-14);
}

#[test]
fn activate_every_function_with_scale_bias_and_accumulate() {
    let src = randoms(P * F, 8, -3.0, 3.0);
    let bias: Vec<f32> = (0..P).map(|p| p as f32 / 64.0).collect();
    let bs = buf("s", Dtype::Fp32, 0);
    let bb = Buf {
        name: "bias",
        dtype: Dtype::Fp32,
        parts: P,
        free: 1,
        off: 1024,
    };
    let bo = buf("o", Dtype::Fp32, 2048);
    let bacc = Buf {
        name: "acc",
        dtype: Dtype::Fp32,
        parts: P,
        free: 1,
        off: 4096,
    };
    let sqrt_2_pi = (2.0 / std::f64::consts::PI).sqrt();
    for func in Act::ALL {
        let inst = Inst::Activate(Activate {
            sync: Default::default(),
            dst: bo.ap(),
            src: bs.ap(),
            scale: Scalar::imm(0.5),
            bias: Scalar::per_partition(bb.ap()),
            acc: bacc.ap(),
            func,
            accumulate: true,
        });
        let out = run_with(
            &[(bs, src.clone()), (bb, bias.clone())],
            vec![(StreamId::Scalar, inst)],
            &[bo, bacc],
            Mode::Functional,
        );
        for (p, &bias_p) in bias.iter().enumerate() {
            let mut sum = 0f64;
            let mut nan = false;
            for j in 0..F as usize {
                let i = p * F as usize + j;
                let x = f64::from(src[i] * 0.5 + bias_p);
                let sig = 1.0 / (1.0 + (-x).exp());
                let cdf = 0.5 * erfc(-x / std::f64::consts::SQRT_2);
                let want = match func {
                    Act::Identity => x,
                    Act::Relu => x.max(0.0),
                    Act::Sigmoid => sig,
                    Act::Tanh => x.tanh(),
                    Act::Exp => x.exp(),
                    Act::Log => x.ln(),
                    Act::Sqrt => x.sqrt(),
                    Act::Rsqrt => 1.0 / x.sqrt(),
                    Act::Reciprocal => 1.0 / x,
                    Act::Gelu => x * cdf,
                    Act::GeluTanh => {
                        0.5 * x * (1.0 + (sqrt_2_pi * (x + 0.044715 * x.powi(3))).tanh())
                    }
                    Act::Erf => erf(x),
                    Act::Silu => x * sig,
                    Act::Square => x * x,
                    Act::Abs => x.abs(),
                    Act::Sign => x.signum() * (x != 0.0) as u8 as f64,
                    Act::GeluDx => {
                        cdf + x * (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
                    }
                    Act::SiluDx => sig * (1.0 + x * (1.0 - sig)),
                };
                let got = f64::from(out["o"].data[i]);
                if want.is_nan() {
                    assert!(got.is_nan(), "{func:?}({x}) = {got}, want NaN");
                    nan = true;
                    continue;
                }
                assert!(
                    (got - want).abs() <= 2e-6 * want.abs().max(1.0),
                    "{func:?}({x}) = {got}, want {want}"
                );
                sum += got;
            }
            let acc = f64::from(out["acc"].data[p]);
            if nan {
                assert!(acc.is_nan(), "{func:?} acc[{p}] {acc}, want NaN");
            } else if sum.is_finite() {
                assert!(
                    (acc - sum).abs() <= 1e-4 * sum.abs().max(1.0),
                    "{func:?} acc[{p}] {acc} vs {sum}"
                );
            }
        }
    }
}

#[test]
fn gelu_dx_is_the_derivative_of_gelu() {
    use tahoma_runtime::engines::scalar::activation;
    for i in -40..=40 {
        let x = i as f32 / 10.0;
        let h = 1e-2f32;
        let fd = (f64::from(activation(Act::Gelu, x + h))
            - f64::from(activation(Act::Gelu, x - h)))
            / (2.0 * f64::from(h));
        assert!(
            (f64::from(activation(Act::GeluDx, x)) - fd).abs() < 1e-3,
            "x = {x}"
        );
        let fd = (f64::from(activation(Act::Silu, x + h))
            - f64::from(activation(Act::Silu, x - h)))
            / (2.0 * f64::from(h));
        assert!(
            (f64::from(activation(Act::SiluDx, x)) - fd).abs() < 1e-3,
            "x = {x}"
        );
    }
}

#[test]
fn dma_casts_through_fp32_and_reads_psum() {
    // bf16 input -> (DMA cast) fp32 SBUF -> TENSOR_COPY into PSUM -> DMA PSUM -> fp16 HBM.
    let src = randoms(P * F, 9, -4.0, 4.0);
    let bi = buf("x", Dtype::Bf16, 0);
    let addr_out = HBM_STRIDE;
    let io_table = vec![
        io("x", IoKind::Input, Dtype::Bf16, &[P, F], 0),
        io("y", IoKind::Output, Dtype::Fp16, &[P, F], addr_out),
    ];
    let to_sbuf = dma(
        0,
        hbm_rows(Dtype::Bf16, P, F, 0),
        sbuf_rows(Dtype::Fp32, P, F, 4096),
        signal(1, 1),
    );
    let to_psum = Inst::TensorCopy(TensorCopy {
        sync: wait(1, 1),
        dst: psum(P, 0, &[(F, 1)]),
        src: sbuf(Dtype::Fp32, P, 4096, &[(F, 1)]),
    });
    let mut to_psum = to_psum;
    to_psum.sync_mut().signal_sem = 2;
    to_psum.sync_mut().signal_inc = 1;
    let from_psum = dma(
        1,
        tahoma_isa::DmaAp::new(tahoma_isa::Mem::Psum, Dtype::Fp32, 0, P, 0, 0, &[(F, 1)]),
        hbm_rows(Dtype::Fp16, P, F, addr_out),
        wait(2, 1),
    );
    let prog = program(
        vec![
            (StreamId::Dma(0), vec![to_sbuf]),
            (StreamId::Vector, vec![to_psum]),
            (StreamId::Dma(1), vec![from_psum]),
        ],
        io_table,
    );
    let mut emu = Emulator::new(prog).unwrap();
    emu.set_input(bi.name, &Tensor::new(Dtype::Fp32, vec![P, F], src.clone()))
        .unwrap();
    let res = emu.run(&RunOptions::timed()).unwrap();
    for (i, &g) in res.outputs["y"].data.iter().enumerate() {
        let want = half::f16::from_f32(half::bf16::from_f32(src[i]).to_f32()).to_f32();
        assert_eq!(g, want, "at {i}");
    }
    let es = |d: Dtype| d.size_bytes();
    assert_eq!(res.hbm_bytes, P * F * (es(Dtype::Bf16) + es(Dtype::Fp16)));
}

#[test]
fn f64_conversions_round_correctly() {
    use tahoma_runtime::access::{f64_to_bf16, f64_to_f16};
    // 1 + 2^-8 is a bf16 tie (rounds to 1); a hair above it must round up. half's from_f64
    // drops the bits that say "a hair above".
    let tie = 1.0 + 2f64.powi(-8);
    assert_eq!(f64_to_bf16(tie).to_f32(), 1.0);
    assert_eq!(
        f64_to_bf16(tie + 2f64.powi(-40)).to_f32(),
        1.0 + 2f32.powi(-7)
    );
    let tie16 = 1.0 + 2f64.powi(-11);
    assert_eq!(f64_to_f16(tie16).to_f32(), 1.0);
    assert_eq!(
        f64_to_f16(tie16 + 2f64.powi(-45)).to_f32(),
        1.0 + 2f32.powi(-10)
    );
    // Every f32 value converts like the f32 path.
    let mut r = Rng::new(11);
    for _ in 0..10000 {
        let v = f32::from_bits(r.next_u64() as u32);
        if v.is_nan() {
            continue;
        }
        assert_eq!(f64_to_bf16(f64::from(v)), half::bf16::from_f32(v), "{v:e}");
        assert_eq!(f64_to_f16(f64::from(v)), half::f16::from_f32(v), "{v:e}");
    }
}

/// A DMA_GATHER program: a `[rows, F]` fp32 table `t` in HBM, one index per partition from the
/// `[P, 1]` input `i`, the gathered `[P, F]` rows stored to `y`.
fn gather_prog(rows: u64) -> tahoma_isa::program::Program {
    use tahoma_isa::{DmaGather, Mem};
    let (t_addr, i_addr, y_addr) = (0, HBM_STRIDE, 2 * HBM_STRIDE);
    let io_table = vec![
        io("t", IoKind::Input, Dtype::Fp32, &[rows, F], t_addr),
        io("i", IoKind::Input, Dtype::Fp32, &[P, 1], i_addr),
        io("y", IoKind::Output, Dtype::Fp32, &[P, F], y_addr),
    ];
    let load = dma(
        0,
        hbm_rows(Dtype::Fp32, P, 1, i_addr),
        sbuf_rows(Dtype::Fp32, P, 1, 0),
        signal(1, 1),
    );
    let gather = Inst::DmaGather(DmaGather {
        sync: {
            let mut h = wait(1, 1);
            h.signal_sem = 2;
            h.signal_inc = 1;
            h
        },
        src: tahoma_isa::DmaAp::new(Mem::Hbm, Dtype::Fp32, 0, 1, F as i64, t_addr, &[(F, 1)]),
        dst: sbuf_rows(Dtype::Fp32, P, F, 64),
        index: sbuf(Dtype::Fp32, P, 0, &[(1, 1)]),
        queue: 1,
        rows,
    });
    let store = dma(
        2,
        sbuf_rows(Dtype::Fp32, P, F, 64),
        hbm_rows(Dtype::Fp32, P, F, y_addr),
        wait(2, 1),
    );
    program(
        vec![
            (StreamId::Dma(0), vec![load]),
            (StreamId::Dma(1), vec![gather]),
            (StreamId::Dma(2), vec![store]),
        ],
        io_table,
    )
}

#[test]
fn dma_gather_brings_the_indexed_rows() {
    let rows = 300;
    let table = randoms(rows * F, 11, -2.0, 2.0);
    let idx: Vec<f32> = (0..P).map(|p| ((p * 37 + 5) % rows) as f32).collect();
    for mode in [RunOptions::functional(), RunOptions::timed()] {
        let mut emu = Emulator::new(gather_prog(rows)).unwrap();
        emu.set_input("t", &Tensor::new(Dtype::Fp32, vec![rows, F], table.clone()))
            .unwrap();
        emu.set_input("i", &Tensor::new(Dtype::Fp32, vec![P, 1], idx.clone()))
            .unwrap();
        let res = emu.run(&mode).unwrap();
        let y = &res.outputs["y"].data;
        for p in 0..P as usize {
            let r = idx[p] as usize;
            assert_eq!(
                &y[p * F as usize..(p + 1) * F as usize],
                &table[r * F as usize..(r + 1) * F as usize],
                "partition {p}"
            );
        }
    }
}

#[test]
fn dma_gather_refuses_an_index_outside_its_table() {
    let rows = 300;
    for bad in [rows as f32, -1.0, 2.5] {
        let mut idx = vec![0.0; P as usize];
        idx[7] = bad;
        for mode in [RunOptions::functional(), RunOptions::timed()] {
            let mut emu = Emulator::new(gather_prog(rows)).unwrap();
            emu.set_input("i", &Tensor::new(Dtype::Fp32, vec![P, 1], idx.clone()))
                .unwrap();
            let e = emu.run(&mode).unwrap_err();
            assert_eq!(e.code(), "E4008", "{e}");
            let text = e.to_string();
            assert!(
                text.contains("DMA_GATHER") && text.contains("partition 7"),
                "{text}"
            );
        }
    }
}
