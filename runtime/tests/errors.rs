//! Every error path: its stable code, what it names, and no panic.

mod common;
use common::*;
use tahoma_isa::program::{IoKind, Program, StreamId};
use tahoma_isa::{machine, Ap, DmaAp, Dtype, Header, Inst, LoadStationary, Matmul, Mem, Nop};
use tahoma_runtime::access::Plan;
use tahoma_runtime::{load, npy, Emulator, RunError, RunOptions, Tensor};

fn both_modes(p: &Program) -> Vec<RunError> {
    [RunOptions::functional(), RunOptions::timed()]
        .iter()
        .map(|o| Emulator::new(p.clone()).unwrap().run(o).unwrap_err())
        .collect()
}

fn nop(sync: Header) -> Inst {
    Inst::Nop(Nop { sync })
}

#[test]
fn deadlock_names_stream_pc_semaphore_and_op() {
    let p = program(
        vec![
            (StreamId::Tensor, vec![nop(Header::default())]),
            (StreamId::Vector, vec![nop(signal(5, 1)), nop(wait(5, 2))]),
        ],
        vec![],
    );
    for e in both_modes(&p) {
        assert_eq!(e.code(), "E4005");
        let RunError::Deadlock { blocked, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(blocked.len(), 1);
        let b = &blocked[0];
        assert_eq!(
            (b.stream, b.pc, b.sem, b.value, b.awaited),
            (StreamId::Vector, 1, 5, 1, 2)
        );
        assert_eq!(b.op.as_deref(), Some("op_vector"));
        assert!(
            b.inst.starts_with("NOP") && b.inst.contains("s5"),
            "{}",
            b.inst
        );
        let text = e.to_string();
        assert!(
            text.contains("vector") && text.contains("pc 1") && text.contains("s5 >= 2"),
            "{text}"
        );
    }
}

#[test]
fn circular_waits_are_a_deadlock_of_both_streams() {
    let p = program(
        vec![
            (StreamId::Vector, vec![nop(wait(1, 1)), nop(signal(2, 1))]),
            (StreamId::Scalar, vec![nop(wait(2, 1)), nop(signal(1, 1))]),
        ],
        vec![],
    );
    for e in both_modes(&p) {
        let RunError::Deadlock { blocked, .. } = e else {
            panic!()
        };
        let who: Vec<_> = blocked.iter().map(|b| (b.stream, b.sem)).collect();
        assert_eq!(who, vec![(StreamId::Vector, 1), (StreamId::Scalar, 2)]);
    }
}

fn mm_prog(ls_k: Option<(u64, Dtype)>, mv_k: u64, mv_dtype: Dtype, dst_parts: u64) -> Program {
    let mut insts = Vec::new();
    if let Some((k, d)) = ls_k {
        insts.push(Inst::LoadStationary(LoadStationary {
            sync: Header::default(),
            src: sbuf(d, k, 0, &[(machine::PE_COLS, 1)]),
        }));
    }
    insts.push(Inst::Matmul(Matmul {
        sync: Header::default(),
        moving: sbuf(mv_dtype, mv_k, 0, &[(machine::MAX_MOVING_FREE, 1)]),
        dst: psum(dst_parts, 0, &[(machine::MAX_MOVING_FREE, 1)]),
        accumulate: true,
    }));
    program(vec![(StreamId::Tensor, insts)], vec![])
}

fn exec_fault(e: &RunError) -> (&'static str, String, usize) {
    let RunError::Exec(x) = e else { panic!("{e}") };
    (x.fault.code, x.fault.field.clone(), x.pc)
}

#[test]
fn matmul_state_errors_name_the_field() {
    let full = machine::PE_ROWS;
    let cases = [
        (mm_prog(None, full, Dtype::Bf16, full), "E4002", "moving", 0),
        (
            mm_prog(Some((full, Dtype::Bf16)), full / 2, Dtype::Bf16, full),
            "E4003",
            "moving.part_count",
            1,
        ),
        (
            mm_prog(Some((full, Dtype::Bf16)), full, Dtype::Fp16, full),
            "E4004",
            "moving.dtype",
            1,
        ),
        (
            mm_prog(Some((full, Dtype::Bf16)), full, Dtype::Bf16, full / 2),
            "E4003",
            "dst.part_count",
            1,
        ),
    ];
    for (p, code, field, pc) in cases {
        for e in both_modes(&p) {
            assert_eq!(exec_fault(&e), (code, field.to_string(), pc), "{e}");
            let text = e.to_string();
            assert!(
                text.contains("stream tensor") && text.contains("MATMUL") && text.contains(field),
                "{text}"
            );
        }
    }
}

fn dma_prog(src: DmaAp, dst: DmaAp) -> Program {
    program(
        vec![(StreamId::Dma(0), vec![dma(0, src, dst, Header::default())])],
        vec![],
    )
}

#[test]
fn illegal_programs_are_refused_at_load_with_the_checker_codes() {
    let p = machine::PARTITIONS;
    // Out of range: the SBUF partition ends before the access does.
    let far = sbuf_rows(Dtype::Fp32, p, 1, machine::SBUF_PARTITION_BYTES);
    let e = Emulator::new(dma_prog(hbm_rows(Dtype::Fp32, p, 1, 0), far))
        .err()
        .unwrap();
    assert_eq!(e.code(), "E3001", "{e}");
    // Partition rule: 32 partitions starting at 16.
    let odd = DmaAp::new(Mem::Sbuf, Dtype::Fp32, 16, 32, 0, 0, &[(4, 1)]);
    let e = Emulator::new(dma_prog(hbm_rows(Dtype::Fp32, 32, 4, 0), odd))
        .err()
        .unwrap();
    assert_eq!(e.code(), "E3002", "{e}");
    // N > max_moving_free.
    let n = machine::MAX_MOVING_FREE + 1;
    let mm = Inst::Matmul(Matmul {
        sync: Header::default(),
        moving: sbuf(Dtype::Bf16, p, 0, &[(n, 1)]),
        dst: psum(p, 0, &[(n, 1)]),
        accumulate: false,
    });
    let e = Emulator::new(program(vec![(StreamId::Tensor, vec![mm])], vec![]))
        .err()
        .unwrap();
    assert_eq!(e.code(), "E3003", "{e}");
    // A stream without END.
    let mut prog = program(vec![(StreamId::Vector, vec![])], vec![]);
    prog.streams[0].insts.clear();
    prog.streams[0].op_ids.clear();
    prog.streams[0].insts.push(nop(Header::default()));
    prog.streams[0].op_ids.push(None);
    assert!(Emulator::new(prog).is_err());
}

#[test]
fn an_access_too_large_for_the_host_is_refused_not_a_panic() {
    // HBM to HBM with stride-0 dims: legal per the checker's bounds, 2^64+ elements.
    let huge = DmaAp::new(Mem::Hbm, Dtype::Fp32, 0, 255, 0, 0, &[(65535, 0); 4]);
    let e = Emulator::new(dma_prog(huge, huge)).err().unwrap();
    assert_eq!(e.code(), "E4006", "{e}");
    let RunError::Exec(x) = &e else { panic!() };
    assert_eq!(
        (x.stream, x.pc, x.fault.field.as_str()),
        (StreamId::Dma(0), 0, "src")
    );
}

#[test]
fn out_of_range_accesses_are_caught_by_the_access_layer() {
    let bad = Ap::new(
        Mem::Psum,
        Dtype::Fp32,
        0,
        1,
        machine::PSUM_PARTITION_BYTES - 4,
        &[(2, 1)],
    );
    assert_eq!(Plan::of_ap(&bad).unwrap_err().code, "E4001");
    let parts = Ap::new(
        Mem::Sbuf,
        Dtype::Fp32,
        machine::PARTITIONS - 1,
        2,
        0,
        &[(1, 1)],
    );
    assert_eq!(Plan::of_ap(&parts).unwrap_err().code, "E4001");
    let neg = DmaAp::new(Mem::Hbm, Dtype::Fp32, 0, 2, -1, 0, &[(1, 1)]);
    assert_eq!(Plan::of_dma(&neg).unwrap_err().code, "E4001");
    let past = DmaAp::new(
        Mem::Hbm,
        Dtype::Bf16,
        0,
        1,
        0,
        machine::HBM_BYTES - 2,
        &[(2, 1)],
    );
    assert_eq!(Plan::of_dma(&past).unwrap_err().code, "E4001");
    let ok = DmaAp::new(
        Mem::Hbm,
        Dtype::Bf16,
        0,
        1,
        0,
        machine::HBM_BYTES - 4,
        &[(2, 1)],
    );
    assert!(Plan::of_dma(&ok).is_ok());
}

#[test]
fn malformed_images_keep_the_isa_spec_codes() {
    let p = program(
        vec![(StreamId::Vector, vec![nop(Header::default())])],
        vec![],
    );
    let bytes = p.to_bytes().unwrap();
    assert!(load(&bytes).is_ok());
    assert_eq!(load(&bytes[..bytes.len() - 3]).unwrap_err().code(), "E2001");
    assert_eq!(load(b"NOPE....").unwrap_err().code(), "E2002");
    let mut v = bytes.clone();
    v[4] = 99;
    assert_eq!(load(&v).unwrap_err().code(), "E2003");
    // The first instruction's opcode byte: header 12, section tag+len 12, kind/index/count 10,
    // code length 8.
    let mut v = bytes.clone();
    v[42] = 0xEE;
    assert_eq!(load(&v).unwrap_err().code(), "E2005");
    for cut in 0..bytes.len() {
        assert!(load(&bytes[..cut]).is_err());
    }
}

#[test]
fn input_errors_have_their_codes() {
    let io = vec![
        io("x", IoKind::Input, Dtype::Fp32, &[2, 3], 0),
        io("idx", IoKind::Input, Dtype::I32, &[4], 64),
        io("y", IoKind::Output, Dtype::Fp32, &[2, 3], 128),
    ];
    let p = program(vec![(StreamId::Vector, vec![])], io);
    let mut emu = Emulator::new(p).unwrap();
    let t = |dtype, shape: &[u64], data: Vec<f32>| Tensor::new(dtype, shape.to_vec(), data);
    let e = emu
        .set_input("nope", &t(Dtype::Fp32, &[1], vec![0.0]))
        .unwrap_err();
    assert_eq!(e.code(), "E4101");
    assert!(e.to_string().contains("x, idx"));
    let e = emu
        .set_input("x", &t(Dtype::Fp32, &[3, 2], vec![0.0; 6]))
        .unwrap_err();
    assert_eq!(e.code(), "E4102");
    let e = emu
        .set_input("idx", &t(Dtype::Fp32, &[4], vec![0.5, 1.0, 2.0, 3.0]))
        .unwrap_err();
    assert_eq!(e.code(), "E4103");
    let e = emu
        .set_input("y", &t(Dtype::Fp32, &[2, 3], vec![0.0; 6]))
        .unwrap_err();
    assert_eq!(e.code(), "E4104");
    let floats = npy::NpyArray {
        dtype: npy::NpyDtype::F4,
        shape: vec![4],
        values: vec![1.0; 4],
    };
    assert_eq!(
        emu.set_input_npy("idx", &floats).unwrap_err().code(),
        "E4103"
    );
    let ints = npy::NpyArray {
        dtype: npy::NpyDtype::I8,
        shape: vec![4],
        values: vec![1.0, 2.0, 3.0, 4.0],
    };
    emu.set_input_npy("idx", &ints).unwrap();
    assert_eq!(
        emu.read_tensor("idx").unwrap().data,
        vec![1.0, 2.0, 3.0, 4.0]
    );
    assert_eq!(emu.missing_inputs(), vec!["x".to_string()]);
    assert_eq!(emu.fill_random_inputs(0).unwrap(), vec!["x".to_string()]);
    assert!(emu.missing_inputs().is_empty());
}
