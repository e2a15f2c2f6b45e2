//! Ready-made programs built directly from isa-spec types, for tests, examples and benchmarks.
//! [`gemm`] emits a tiled `c[M, N] = a[M, K] · b[K, N]` (fp32 result) with DMA in, the tensor
//! engine, PSUM evacuation through the scalar engine and DMA out, ordered by semaphores.

use tahoma_isa::program::{IoEntry, IoKind, Program, Stream, StreamId};
use tahoma_isa::{
    machine, Act, Activate, Ap, DmaAp, DmaCopy, Dtype, End, Header, Inst, LoadStationary, Matmul,
    Mem, Scalar,
};

fn end() -> Inst {
    Inst::End(End::default())
}

fn hdr(waits: &[(u64, u64)], signal: Option<(u64, u64)>) -> Header {
    let mut h = Header::default();
    for &(s, v) in waits {
        let _ = h.add_wait(s, v);
    }
    if let Some((s, k)) = signal {
        h.signal_sem = s;
        h.signal_inc = k;
    }
    h
}

/// Streams under construction, with op ids.
struct Builder {
    streams: Vec<Stream>,
}

impl Builder {
    fn push(&mut self, id: StreamId, inst: Inst, op: u32) {
        let pos = match self.streams.iter().position(|s| s.id == id) {
            Some(p) => p,
            None => {
                self.streams.push(Stream {
                    id,
                    insts: Vec::new(),
                    op_ids: Vec::new(),
                });
                self.streams.len() - 1
            }
        };
        self.streams[pos].insts.push(inst);
        self.streams[pos].op_ids.push(Some(op));
    }
}

/// A tiled GEMM: inputs `a` [m, k] and `b` [k, n] of `dtype`, output `c` [m, n] fp32, with
/// `epilogue` applied while evacuating PSUM. Tiles: K by `pe_rows`, M by `pe_cols`, N by
/// `max_moving_free`; each dimension must be a multiple of its tile (or smaller than it).
pub fn gemm(m: u64, k: u64, n: u64, dtype: Dtype, epilogue: Act) -> Result<Program, String> {
    let kt = k.min(machine::PE_ROWS);
    let mt = m.min(machine::PE_COLS);
    let nt = n.min(machine::MAX_MOVING_FREE);
    if kt == 0
        || mt == 0
        || nt == 0
        || !k.is_multiple_of(kt)
        || !m.is_multiple_of(mt)
        || !n.is_multiple_of(nt)
    {
        return Err(format!(
            "gemm {m}x{k}x{n}: each dimension must be a multiple of its tile ({mt}, {kt}, {nt})"
        ));
    }
    let (nk, nm, nn) = (k / kt, m / mt, n / nt);
    if nn > machine::MAX_OPEN_ACCUMULATION_GROUPS.min(machine::PSUM_BANKS) {
        return Err(format!("gemm: {nn} N tiles exceed the PSUM banks"));
    }
    let es = dtype.size_bytes();
    let f32s = Dtype::Fp32.size_bytes();
    // SBUF per partition: aT (all of M per k tile), b (all of N per k tile), c staging.
    let a_off = 0;
    let b_off = a_off + nk * m * es;
    let c_off = b_off + nk * n * es;
    let sbuf_end = c_off + nm * n * f32s;
    if sbuf_end > machine::SBUF_PARTITION_BYTES {
        return Err(format!(
            "gemm: needs {sbuf_end} SBUF bytes per partition, {} available",
            machine::SBUF_PARTITION_BYTES
        ));
    }
    let queues = machine::DMA_QUEUES;
    // Semaphores: 1 = matmul tiles done, 2 = tiles evacuated, 3.. = loads per queue.
    let (sem_mm, sem_evac, sem_load0) = (1u64, 2u64, 3u64);
    if sem_load0 + queues > machine::SEMAPHORES {
        return Err("gemm: not enough semaphores".into());
    }
    let (a_addr, b_addr) = (0u64, m * k * es);
    let c_addr = b_addr + k * n * es;
    let ops = vec![
        "load_a".to_string(),
        "load_b".to_string(),
        "matmul".to_string(),
        "evacuate".to_string(),
        "store_c".to_string(),
    ];
    let mut bld = Builder {
        streams: Vec::new(),
    };

    // Loads: k tile ki on queue ki % queues: aT[ki] then b[ki]; the second signals the queue's sem.
    for ki in 0..nk {
        let q = ki % queues;
        let sq = StreamId::Dma(q as u8);
        let a_src = DmaAp::new(
            Mem::Hbm,
            dtype,
            0,
            kt,
            1,
            a_addr + ki * kt * es,
            &[(m, k as i64)],
        );
        let a_dst = DmaAp::new(Mem::Sbuf, dtype, 0, kt, 0, a_off + ki * m * es, &[(m, 1)]);
        bld.push(
            sq,
            Inst::DmaCopy(DmaCopy {
                sync: Header::default(),
                src: a_src,
                dst: a_dst,
                queue: q,
            }),
            0,
        );
        let b_src = DmaAp::new(
            Mem::Hbm,
            dtype,
            0,
            kt,
            n as i64,
            b_addr + ki * kt * n * es,
            &[(n, 1)],
        );
        let b_dst = DmaAp::new(Mem::Sbuf, dtype, 0, kt, 0, b_off + ki * n * es, &[(n, 1)]);
        bld.push(
            sq,
            Inst::DmaCopy(DmaCopy {
                sync: hdr(&[], Some((sem_load0 + q, 1))),
                src: b_src,
                dst: b_dst,
                queue: q,
            }),
            1,
        );
    }

    let bank_bytes = machine::PSUM_PARTITION_BYTES / machine::PSUM_BANKS;
    for mi in 0..nm {
        for ki in 0..nk {
            let q = ki % queues;
            let load_wait = (sem_load0 + q, ki / queues + 1);
            let st = Ap::new(
                Mem::Sbuf,
                dtype,
                0,
                kt,
                a_off + (ki * m + mi * mt) * es,
                &[(mt, 1)],
            );
            bld.push(
                StreamId::Tensor,
                Inst::LoadStationary(LoadStationary {
                    sync: hdr(&[load_wait], None),
                    src: st,
                }),
                2,
            );
            for ni in 0..nn {
                let t = mi * nn + ni;
                let bank = t % machine::PSUM_BANKS;
                let mut waits = Vec::new();
                if ki == 0 && t >= machine::PSUM_BANKS {
                    waits.push((sem_evac, t - machine::PSUM_BANKS + 1));
                }
                let signal = (ki == nk - 1).then_some((sem_mm, 1));
                let mv = Ap::new(
                    Mem::Sbuf,
                    dtype,
                    0,
                    kt,
                    b_off + (ki * n + ni * nt) * es,
                    &[(nt, 1)],
                );
                let dst = Ap::new(Mem::Psum, Dtype::Fp32, 0, mt, bank * bank_bytes, &[(nt, 1)]);
                bld.push(
                    StreamId::Tensor,
                    Inst::Matmul(Matmul {
                        sync: hdr(&waits, signal),
                        moving: mv,
                        dst,
                        accumulate: ki > 0,
                    }),
                    2,
                );
            }
        }
    }
    bld.push(StreamId::Tensor, end(), 2);

    for t in 0..nm * nn {
        let (mi, ni) = (t / nn, t % nn);
        let bank = t % machine::PSUM_BANKS;
        let src = Ap::new(Mem::Psum, Dtype::Fp32, 0, mt, bank * bank_bytes, &[(nt, 1)]);
        let dst = Ap::new(
            Mem::Sbuf,
            Dtype::Fp32,
            0,
            mt,
            c_off + (mi * n + ni * nt) * f32s,
            &[(nt, 1)],
        );
        bld.push(
            StreamId::Scalar,
            Inst::Activate(Activate {
                sync: hdr(&[(sem_mm, t + 1)], Some((sem_evac, 1))),
                dst,
                src,
                scale: Scalar::imm(1.0),
                bias: Scalar::imm(0.0),
                acc: Ap::new(Mem::Sbuf, Dtype::Fp32, 0, 0, 0, &[]),
                func: epilogue,
                accumulate: false,
            }),
            3,
        );
        let q = t % queues;
        let src = DmaAp::new(
            Mem::Sbuf,
            Dtype::Fp32,
            0,
            mt,
            0,
            c_off + (mi * n + ni * nt) * f32s,
            &[(nt, 1)],
        );
        let dst = DmaAp::new(
            Mem::Hbm,
            Dtype::Fp32,
            0,
            mt,
            n as i64,
            c_addr + (mi * mt * n + ni * nt) * f32s,
            &[(nt, 1)],
        );
        bld.push(
            StreamId::Dma(q as u8),
            Inst::DmaCopy(DmaCopy {
                sync: hdr(&[(sem_evac, t + 1)], None),
                src,
                dst,
                queue: q,
            }),
            4,
        );
    }
    bld.push(StreamId::Scalar, end(), 3);
    let mut streams = bld.streams;
    for s in &mut streams {
        if !matches!(s.insts.last(), Some(Inst::End(_))) {
            s.insts.push(end());
            s.op_ids.push(None);
        }
    }
    streams.sort_by_key(|s| s.id);
    Ok(Program {
        streams,
        io: vec![
            IoEntry {
                name: "a".into(),
                kind: IoKind::Input,
                dtype,
                shape: vec![m, k],
                addr: a_addr,
            },
            IoEntry {
                name: "b".into(),
                kind: IoKind::Input,
                dtype,
                shape: vec![k, n],
                addr: b_addr,
            },
            IoEntry {
                name: "c".into(),
                kind: IoKind::Output,
                dtype: Dtype::Fp32,
                shape: vec![m, n],
                addr: c_addr,
            },
        ],
        consts: Vec::new(),
        ops,
        kernels: Vec::new(),
    })
}
