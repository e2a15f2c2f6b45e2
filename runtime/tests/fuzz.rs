//! Random programs that pass the loader must run (or fail with an error) in both modes without
//! a panic. Instructions come from `Inst::arbitrary`, then get plausible shapes so that many of
//! them pass the checker and actually execute.

use tahoma_isa::check::check_inst;
use tahoma_isa::program::{GpsimdKernel, Program, Stream, StreamId};
use tahoma_isa::rng::Rng;
use tahoma_isa::{machine, Ap, DmaAp, Dtype, End, Header, Inst, Mem, Opcode, Scalar, ScalarMode};
use tahoma_runtime::{Emulator, RunOptions};

struct Shape {
    parts: u64,
    start: u64,
    dims: Vec<(u64, i64)>,
}

fn pick<T: Copy>(r: &mut Rng, xs: &[T]) -> T {
    xs[r.below(xs.len() as u64) as usize]
}

fn shape(r: &mut Rng) -> Shape {
    let parts = pick(r, &[1, 2, 32, 64, 128, 96]);
    let start = match parts {
        p if p <= 32 => pick(r, &[0, 32, 64, 96]),
        p if p <= 64 => pick(r, &[0, 64]),
        _ => 0,
    };
    let nd = r.below(4);
    let dims = (0..nd)
        .map(|_| {
            (
                pick(r, &[1, 2, 3, 8, 32, 64]),
                pick(r, &[1, 1, 1, 2, 0, -1, 64]),
            )
        })
        .collect();
    Shape { parts, start, dims }
}

fn ap(r: &mut Rng, s: &Shape) -> Ap {
    let mem = pick(r, &[Mem::Sbuf, Mem::Sbuf, Mem::Psum, Mem::Hbm]);
    let dtype = Dtype::ALL[r.below(4) as usize];
    let offset = r.below(8192) & !3;
    Ap::new(mem, dtype, s.start, s.parts, offset, &s.dims)
}

fn dma_ap(r: &mut Rng, s: &Shape) -> DmaAp {
    let mem = pick(r, &[Mem::Sbuf, Mem::Hbm, Mem::Hbm, Mem::Psum]);
    let dtype = Dtype::ALL[r.below(4) as usize];
    let pstride = if mem == Mem::Hbm {
        pick(r, &[0, 1, 64, 4096, -1])
    } else {
        0
    };
    let offset = if mem == Mem::Hbm {
        r.below(1 << 20)
    } else {
        r.below(8192) & !3
    };
    DmaAp::new(mem, dtype, s.start, s.parts, pstride, offset, &s.dims)
}

fn scalar(r: &mut Rng, s: &Shape) -> Scalar {
    if r.below(2) == 0 {
        Scalar::imm(r.uniform(-2.0, 2.0))
    } else {
        let one = Shape {
            parts: s.parts,
            start: s.start,
            dims: vec![(1, 1)],
        };
        Scalar::per_partition(ap(r, &one))
    }
}

fn sync(r: &mut Rng) -> Header {
    let mut h = Header::default();
    if r.below(10) == 0 {
        let _ = h.add_wait(1 + r.below(4), 1 + r.below(2));
    }
    if r.below(2) == 0 {
        h.signal_sem = 1 + r.below(4);
        h.signal_inc = 1;
    }
    h
}

fn tame(mut inst: Inst, r: &mut Rng, queue: u64) -> Inst {
    let s = shape(r);
    *inst.sync_mut() = sync(r);
    match &mut inst {
        Inst::Nop(_) | Inst::End(_) => {}
        Inst::LoadStationary(x) => x.src = ap(r, &s),
        Inst::Matmul(x) => {
            x.moving = ap(r, &s);
            let d = Shape {
                parts: pick(r, &[32, 64, 128]),
                start: 0,
                dims: s.dims.clone(),
            };
            x.dst = ap(r, &d);
        }
        Inst::TensorTensor(x) => {
            x.dst = ap(r, &s);
            x.a = ap(r, &s);
            x.b = ap(r, &s);
        }
        Inst::TensorScalar(x) => {
            x.dst = ap(r, &s);
            x.src = ap(r, &s);
            x.scalar0 = scalar(r, &s);
            x.scalar1 = scalar(r, &s);
        }
        Inst::TensorReduce(x) => {
            x.src = ap(r, &s);
            x.axes = 1 + r.below(s.dims.len().max(1) as u64);
            let keep: Vec<(u64, i64)> = s
                .dims
                .iter()
                .take(s.dims.len().saturating_sub(x.axes as usize))
                .copied()
                .collect();
            x.dst = ap(
                r,
                &Shape {
                    parts: s.parts,
                    start: s.start,
                    dims: keep,
                },
            );
        }
        Inst::TensorCopy(x) => {
            x.dst = ap(r, &s);
            x.src = ap(r, &s);
        }
        Inst::Select(x) => {
            x.dst = ap(r, &s);
            x.pred = ap(r, &s);
            x.on_true = ap(r, &s);
            x.on_false = ap(r, &s);
        }
        Inst::Memset(x) => x.dst = ap(r, &s),
        Inst::Iota(x) => x.dst = ap(r, &s),
        Inst::Transpose32(x) => {
            let t = Shape {
                parts: pick(r, &[32, 64, 128]),
                start: 0,
                dims: vec![(pick(r, &[32, 64]), 1)],
            };
            x.dst = ap(r, &t);
            x.src = ap(r, &t);
        }
        Inst::Activate(x) => {
            x.dst = ap(r, &s);
            x.src = ap(r, &s);
            x.scale = scalar(r, &s);
            x.bias = scalar(r, &s);
            if x.accumulate {
                x.acc = ap(
                    r,
                    &Shape {
                        parts: s.parts,
                        start: s.start,
                        dims: vec![(1, 1)],
                    },
                );
            }
        }
        Inst::DmaCopy(x) => {
            x.src = dma_ap(r, &s);
            x.dst = dma_ap(r, &s);
            x.queue = queue;
        }
        Inst::DmaGather(x) => {
            let row = Shape {
                parts: 1,
                start: 0,
                dims: s.dims.clone(),
            };
            x.src = dma_ap(r, &row);
            x.dst = dma_ap(r, &s);
            x.index = ap(
                r,
                &Shape {
                    parts: s.parts,
                    start: s.start,
                    dims: vec![(1, 1)],
                },
            );
            x.rows = pick(r, &[0, 1, 7, 300]);
            x.queue = queue;
        }
        Inst::GpsimdKernel(x) => {
            // Kernel k of `fuzz_kernels` takes k fp32 inputs.
            x.inputs = r.below(4);
            x.kernel = x.inputs;
            x.dst = Ap {
                dtype: Dtype::Fp32,
                ..ap(r, &s)
            };
            let mut used = [Ap::default(); 3];
            for a in used.iter_mut().take(x.inputs as usize) {
                *a = Ap {
                    dtype: Dtype::Fp32,
                    ..ap(r, &s)
                };
            }
            [x.a, x.b, x.c] = used;
        }
    }
    if let Inst::TensorScalar(x) = &mut inst {
        for sc in [&mut x.scalar0, &mut x.scalar1] {
            if sc.mode == ScalarMode::Imm {
                sc.ap = Ap::default();
            }
        }
    }
    inst
}

/// The kernel table of fuzzed programs: kernel k takes k fp32 inputs.
fn fuzz_kernels() -> Vec<GpsimdKernel> {
    [
        "function %k0() -> f32 {\nblock0:\n    v0 = f32const 0x1.0p0\n    return v0\n}\n",
        "function %k1(f32) -> f32 {\n    fn0 = %tahoma_sinf(f32) -> f32\nblock0(v0: f32):\n    v1 = call fn0(v0)\n    return v1\n}\n",
        "function %k2(f32, f32) -> f32 {\nblock0(v0: f32, v1: f32):\n    v2 = fdiv v0, v1\n    return v2\n}\n",
        "function %k3(f32, f32, f32) -> f32 {\nblock0(v0: f32, v1: f32, v2: f32):\n    v3 = fma v0, v1, v2\n    return v3\n}\n",
    ]
    .iter()
    .map(|t| GpsimdKernel {
        ops_per_elem: 2,
        clif: t.to_string(),
    })
    .collect()
}

fn opcodes_for(id: StreamId) -> Vec<Opcode> {
    let class = id.engine_class();
    Opcode::ALL
        .into_iter()
        .filter(|o| o.engine() == class || (*o == Opcode::Nop))
        .collect()
}

#[test]
fn random_legal_programs_never_panic() {
    let mut r = Rng::new(0x5eed);
    let ids = [
        StreamId::Tensor,
        StreamId::Vector,
        StreamId::Scalar,
        StreamId::Gpsimd,
        StreamId::Dma(0),
        StreamId::Dma(3),
    ];
    let (mut ran_ok, mut errors, mut executed) = (0, 0, 0usize);
    for _ in 0..300 {
        let mut streams = Vec::new();
        for &id in &ids {
            if r.below(3) == 0 {
                continue;
            }
            let ops = opcodes_for(id);
            let mut insts = Vec::new();
            for _ in 0..r.below(6) {
                // Re-roll until the checker accepts (or give up on this slot).
                for _ in 0..40 {
                    let op = pick(&mut r, &ops);
                    let q = match id {
                        StreamId::Dma(q) => u64::from(q),
                        _ => 0,
                    };
                    let inst = tame(Inst::arbitrary(op, &mut r), &mut r, q);
                    if check_inst(&inst, id).is_ok() {
                        insts.push(inst);
                        break;
                    }
                }
            }
            insts.push(Inst::End(End { sync: sync(&mut r) }));
            streams.push(Stream {
                id,
                op_ids: vec![None; insts.len()],
                insts,
            });
        }
        let prog = Program {
            streams,
            kernels: fuzz_kernels(),
            ..Program::default()
        };
        let bytes = prog.to_bytes().expect("encodable");
        let loaded = tahoma_runtime::load(&bytes).expect("checked instructions load");
        executed += loaded.streams.iter().map(|s| s.insts.len()).sum::<usize>();
        for opts in [RunOptions::functional(), RunOptions::timed().with_trace()] {
            let emu = Emulator::new(loaded.clone()).unwrap();
            match emu.run(&opts) {
                Ok(res) => {
                    ran_ok += 1;
                    let _ = res.summary();
                }
                Err(e) => {
                    errors += 1;
                    assert!(e.code().starts_with("E4"), "{e}");
                    let _ = e.to_string();
                }
            }
        }
    }
    assert!(executed > 1000, "only {executed} instructions generated");
    assert!(ran_ok > 100 && errors > 10, "ok {ran_ok}, errors {errors}");
}

#[test]
fn arbitrary_instructions_never_panic_the_loader() {
    let mut r = Rng::new(42);
    let ids = [
        StreamId::Tensor,
        StreamId::Vector,
        StreamId::Scalar,
        StreamId::Dma(1),
    ];
    for _ in 0..2000 {
        let id = pick(&mut r, &ids);
        let op = pick(&mut r, &Opcode::ALL);
        let inst = Inst::arbitrary(op, &mut r);
        let prog = Program {
            streams: vec![Stream {
                id,
                op_ids: vec![None; 2],
                insts: vec![inst, Inst::End(End::default())],
            }],
            ..Program::default()
        };
        if let Ok(bytes) = prog.to_bytes() {
            if let Ok(p) = tahoma_runtime::load(&bytes) {
                for opts in [RunOptions::functional(), RunOptions::timed()] {
                    let _ = Emulator::new(p.clone()).unwrap().run(&opts);
                }
            }
        }
    }
    let _ = machine::PARTITIONS;
}
