//! The per-kernel explanation of the profile on hand-checked programs: a GEMM whose matmuls
//! keep the tensor engine busy is tensor-bound; an elementwise kernel streaming a tensor in and
//! out over all DMA queues is HBM-bound; a load on one queue is queue-bound; and stalls name the
//! semaphore and who signals it.

mod common;

use common::*;
use tahoma_isa::program::StreamId;
use tahoma_isa::{machine, Alu, Dtype, Inst, Mem, Scalar, TensorScalar};
use tahoma_runtime::profile::Bound;
use tahoma_runtime::{kernels, Emulator, RunOptions};

#[test]
fn a_gemm_is_tensor_bound() {
    let prog = kernels::gemm(512, 1024, 512, Dtype::Bf16, tahoma_isa::Act::Identity).unwrap();
    let mut emu = Emulator::new(prog).unwrap();
    emu.fill_random_inputs(1).unwrap();
    let r = emu.run(&RunOptions::default()).unwrap();
    let mm = r.ops.iter().find(|p| p.name == "matmul").unwrap();
    // 4 M tiles x 8 K tiles of one N=512 matmul each, max(512, 64)/2 cycles apiece.
    assert_eq!(mm.tensor_cycles, 4.0 * 8.0 * 256.0);
    assert_eq!(mm.bound().0, Bound::Tensor, "{mm:?}");
    // The tensor engine first waits for the loads: the stall names a DMA queue's semaphore.
    assert!(
        mm.stalls
            .iter()
            .any(|(r, _)| r.starts_with("tensor waits on s") && r.contains("dma")),
        "{:?}",
        mm.stalls
    );
}

/// `y = 2x + 1` over an fp32 [128, cols] tensor: every queue loads a column slice, the vector
/// engine computes once all have landed, every queue stores its slice back.
fn streaming_kernel(cols: u64, queues: u64) -> tahoma_isa::program::Program {
    let parts = machine::PARTITIONS;
    let es = Dtype::Fp32.size_bytes();
    let slice = cols / queues;
    let (x_addr, y_addr) = (0, parts * cols * es);
    let hbm = |addr: u64, q: u64| {
        tahoma_isa::DmaAp::new(
            Mem::Hbm,
            Dtype::Fp32,
            0,
            parts,
            cols as i64,
            addr + q * slice * es,
            &[(slice, 1)],
        )
    };
    let sb = |q: u64| {
        tahoma_isa::DmaAp::new(
            Mem::Sbuf,
            Dtype::Fp32,
            0,
            parts,
            0,
            q * slice * es,
            &[(slice, 1)],
        )
    };
    let (loaded, computed) = (1, 2);
    let mut streams = Vec::new();
    for q in 0..queues {
        streams.push((
            StreamId::Dma(q as u8),
            vec![
                dma(q, hbm(x_addr, q), sb(q), signal(loaded, 1)),
                dma(q, sb(q), hbm(y_addr, q), wait(computed, 1)),
            ],
        ));
    }
    let x = sbuf(Dtype::Fp32, parts, 0, &[(cols, 1)]);
    let mut h = wait(loaded, queues);
    h.signal_sem = computed;
    h.signal_inc = 1;
    streams.push((
        StreamId::Vector,
        vec![Inst::TensorScalar(TensorScalar {
            sync: h,
            dst: x,
            src: x,
            op0: Alu::Multiply,
            scalar0: Scalar::imm(2.0),
            op1: Alu::Add,
            scalar1: Scalar::imm(1.0),
            reverse0: false,
            reverse1: false,
        })],
    ));
    let mut p = program(streams, vec![]);
    // One op for the whole kernel.
    p.ops = vec!["chain".into()];
    for s in &mut p.streams {
        s.op_ids.iter_mut().for_each(|o| *o = Some(0));
    }
    p
}

#[test]
fn an_elementwise_kernel_in_long_rows_is_hbm_bound_and_in_short_rows_dma_engine_bound() {
    // One queue moving whole 16 KiB rows: the descriptors are a small share, HBM is the bound.
    let cols = 4096;
    let r = Emulator::new(streaming_kernel(cols, 1))
        .unwrap()
        .run(&RunOptions::default())
        .unwrap();
    let chain = &r.ops[0];
    let bytes = 2 * machine::PARTITIONS * cols * Dtype::Fp32.size_bytes();
    assert_eq!(chain.hbm_bytes, bytes);
    let (bound, cycles) = chain.bound();
    assert_eq!(bound, Bound::Hbm, "{chain:?}");
    assert!(cycles >= bytes as f64 / machine::HBM_BYTES_PER_CYCLE as f64);

    // The same work cut in column slices over every queue: rows of a sixteenth, a descriptor
    // each, so the DMA engines' time exceeds HBM's.
    let r = Emulator::new(streaming_kernel(cols, machine::DMA_QUEUES))
        .unwrap()
        .run(&RunOptions::default())
        .unwrap();
    let chain = &r.ops[0];
    let (bound, _) = chain.bound();
    assert_eq!(bound, Bound::DmaEngines, "{chain:?}");
    // The vector engine waited for the loads, the stores for the vector engine.
    let reasons: Vec<&str> = chain.stalls.iter().map(|s| s.0.as_str()).collect();
    assert!(reasons.contains(&"vector waits on s1 (dma0, dma1, dma10, dma11, dma12, dma13, dma14, dma15, dma2, dma3, dma4, dma5, dma6, dma7, dma8, dma9)"), "{reasons:?}");
    assert!(reasons.contains(&"dma waits on s2 (vector)"), "{reasons:?}");
}
