//! Cost tests from the spec's own numbers: matmul, DMA latency and bandwidth, HBM sharing,
//! background LOAD_STATIONARY, semaphore hand-offs and stall accounting.

mod common;
use common::*;
use tahoma_isa::costs::{self, inst_cost, load_stationary_cycles, matmul_cycles, Cost};
use tahoma_isa::program::StreamId;
use tahoma_isa::{cost, machine, DmaAp, Dtype, Header, Inst, LoadStationary, Matmul, Mem, Memset};
use tahoma_runtime::trace::Slice;
use tahoma_runtime::{Emulator, RunOptions, RunResult, TimingParams};

fn run_timed(p: tahoma_isa::program::Program, timing: TimingParams) -> (RunResult, Vec<Slice>) {
    let emu = Emulator::new(p).unwrap();
    let opts = RunOptions {
        timing,
        ..RunOptions::timed().with_trace()
    };
    // Slices come back through the trace; rebuild them from its X events.
    let res = emu.run(&opts).unwrap();
    let slices = slices_of(&res);
    (res, slices)
}

/// The X events of a run's trace as (track name, pc, start cycle, end cycle).
fn slices_of(res: &RunResult) -> Vec<Slice> {
    let trace = res.trace.as_ref().unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    let mut names = std::collections::HashMap::new();
    for e in events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
    {
        names.insert(
            e["tid"].as_u64().unwrap(),
            e["args"]["name"].as_str().unwrap().to_string(),
        );
    }
    events
        .iter()
        .filter(|e| e["ph"] == "X")
        .map(|e| {
            let track = &names[&e["tid"].as_u64().unwrap()];
            let stationary = track.ends_with("(load stationary)");
            let stream = StreamId::parse(track.split(' ').next().unwrap()).unwrap();
            Slice {
                stream,
                pc: e["args"]["pc"].as_u64().unwrap() as usize,
                stationary,
                start: e["args"]["start_cycle"].as_f64().unwrap(),
                end: e["args"]["end_cycle"].as_f64().unwrap(),
                macs: e["args"]["macs"].as_u64().unwrap_or(0),
                bytes: e["args"]["bytes"].as_u64().unwrap_or(0),
                stall: e["args"]["stall_cycles"].as_f64().unwrap_or(0.0),
                waited_on: e["args"]["waited_on"]
                    .as_str()
                    .and_then(|s| s.trim_start_matches('s').parse().ok()),
            }
        })
        .collect()
}

fn find(slices: &[Slice], stream: StreamId, pc: usize) -> &Slice {
    slices
        .iter()
        .find(|s| s.stream == stream && s.pc == pc)
        .unwrap_or_else(|| panic!("no slice for {stream} pc {pc}"))
}

fn ls(k: u64, m: u64, sync: Header) -> Inst {
    Inst::LoadStationary(LoadStationary {
        sync,
        src: sbuf(Dtype::Bf16, k, 0, &[(m, 1)]),
    })
}

fn mm(k: u64, m: u64, n: u64, sync: Header) -> Inst {
    Inst::Matmul(Matmul {
        sync,
        moving: sbuf(Dtype::Bf16, k, 0, &[(n, 1)]),
        dst: psum(m, 0, &[(n, 1)]),
        accumulate: false,
    })
}

#[test]
fn matmul_of_512_columns_takes_the_spec_cycles() {
    let (k, m, n) = (machine::PE_ROWS, machine::PE_COLS, machine::MAX_MOVING_FREE);
    let p = program(
        vec![(
            StreamId::Tensor,
            vec![ls(k, m, Header::default()), mm(k, m, n, Header::default())],
        )],
        vec![],
    );
    let (res, sl) = run_timed(p, TimingParams::default());
    let mmsl = find(&sl, StreamId::Tensor, 1);
    assert_eq!(mmsl.end - mmsl.start, matmul_cycles(n, Dtype::Bf16) as f64);
    assert_eq!(mmsl.macs, k * m * n);
    let ls_c = load_stationary_cycles(m, Dtype::Bf16);
    assert_eq!(mmsl.start, ls_c as f64);
    assert_eq!(
        res.cycles,
        ls_c + matmul_cycles(n, Dtype::Bf16) + cost::CONTROL_CYCLES
    );
    assert_eq!(res.macs, k * m * n);
}

#[test]
fn load_stationary_overlaps_the_previous_matmul() {
    let (k, m, n) = (machine::PE_ROWS, machine::PE_COLS, machine::MAX_MOVING_FREE);
    let h = Header::default;
    let p = program(
        vec![(
            StreamId::Tensor,
            vec![
                ls(k, m, h()),
                mm(k, m, n, h()),
                ls(k, m, h()),
                mm(k, m, n, h()),
            ],
        )],
        vec![],
    );
    let (res, sl) = run_timed(p, TimingParams::default());
    let (mm1, ls2, mm2) = (
        find(&sl, StreamId::Tensor, 1),
        find(&sl, StreamId::Tensor, 2),
        find(&sl, StreamId::Tensor, 3),
    );
    assert!(ls2.stationary);
    assert_eq!(
        ls2.start, mm1.start,
        "background load starts with the previous matmul"
    );
    assert_eq!(mm2.start, mm1.end, "the next matmul follows without a gap");
    let ls_c = load_stationary_cycles(m, Dtype::Bf16);
    let mm_c = matmul_cycles(n, Dtype::Bf16);
    assert_eq!(res.cycles, ls_c + 2 * mm_c + cost::CONTROL_CYCLES);
    // Busy is the union of intervals: the overlapped load adds nothing.
    let busy = res.streams[0].1.busy_cycles;
    assert_eq!(busy, (ls_c + 2 * mm_c + cost::CONTROL_CYCLES) as f64);
}

#[test]
fn a_late_load_stationary_starts_when_its_wait_holds_and_delays_the_next_matmul() {
    // LS2 waits on s4, signalled by a vector MEMSET of `free` elements: once mid-MM1, once
    // after MM1 ended. MM2 starts at max(MM1 end, LS2 end).
    let (k, m, n) = (machine::PE_ROWS, machine::PE_COLS, machine::MAX_MOVING_FREE);
    let h = Header::default;
    let mm_c = matmul_cycles(n, Dtype::Bf16) as f64;
    let ls_c = load_stationary_cycles(m, Dtype::Bf16) as f64;
    for free in [
        cost::VECTOR_MIN_FREE,
        matmul_cycles(n, Dtype::Bf16) + cost::VECTOR_MIN_FREE,
    ] {
        let mut ms = memset_inst(h(), free);
        ms.sync_mut().signal_sem = 4;
        ms.sync_mut().signal_inc = 1;
        let p = program(
            vec![
                (
                    StreamId::Tensor,
                    vec![
                        ls(k, m, h()),
                        mm(k, m, n, h()),
                        ls(k, m, wait(4, 1)),
                        mm(k, m, n, h()),
                    ],
                ),
                (StreamId::Vector, vec![ms]),
            ],
            vec![],
        );
        let (_, sl) = run_timed(p, TimingParams::default());
        let (mm1, ls2, mm2) = (
            find(&sl, StreamId::Tensor, 1),
            find(&sl, StreamId::Tensor, 2),
            find(&sl, StreamId::Tensor, 3),
        );
        let signal_at = (cost::VECTOR_FIXED + free) as f64;
        assert_eq!(mm1.start, ls_c);
        assert_eq!(ls2.start, signal_at.max(mm1.start));
        assert_eq!(mm2.start, mm1.end.max(ls2.end));
        assert_eq!(mm2.start, (ls_c + mm_c).max(signal_at + ls_c));
    }
}

fn one_dma_program(
    queues: u64,
    bytes_per_queue: u64,
    timing_hbm: bool,
) -> tahoma_isa::program::Program {
    let parts = machine::PARTITIONS;
    let free = bytes_per_queue / parts / Dtype::Fp32.size_bytes();
    let mut streams = Vec::new();
    for q in 0..queues {
        let src = if timing_hbm {
            hbm_rows(Dtype::Fp32, parts, free, q * bytes_per_queue)
        } else {
            sbuf_rows(Dtype::Fp32, parts, free, 0)
        };
        let dst = sbuf_rows(
            Dtype::Fp32,
            parts,
            free,
            q * free * Dtype::Fp32.size_bytes(),
        );
        streams.push((
            StreamId::Dma(q as u8),
            vec![dma(q, src, dst, Header::default())],
        ));
    }
    program(streams, vec![])
}

/// Engine-bytes of the descriptors of a row-major transfer over every partition (one per row).
fn all_partition_descriptors() -> u64 {
    machine::PARTITIONS * machine::DMA_DESCRIPTOR_CYCLES * machine::DMA_ENGINE_BYTES_PER_CYCLE
}

/// Bytes per cycle of all the DMA engines together.
fn all_engines() -> f64 {
    (machine::DMA_ENGINES * machine::DMA_ENGINE_BYTES_PER_CYCLE) as f64
}

#[test]
fn one_dma_takes_latency_then_descriptors_plus_bytes_over_its_engines() {
    let bytes = machine::PARTITIONS * machine::DMA_ENGINE_BYTES_PER_CYCLE * 64;
    let p = one_dma_program(1, bytes, true);
    let work = bytes + all_partition_descriptors();
    assert_eq!(
        inst_cost(&p.streams[0].insts[0], &p.kernels),
        Cost::Dma(costs::DmaWork {
            bytes,
            work,
            first_engine: 0,
            engines: machine::DMA_ENGINES,
            uses_hbm: true,
        })
    );
    let (res, sl) = run_timed(p, TimingParams::default());
    let s = find(&sl, StreamId::Dma(0), 0);
    // The slice is the transfer moving; the trigger latency precedes it.
    let moving = work as f64 / all_engines();
    assert_eq!(s.start, machine::DMA_TRIGGER_LATENCY as f64);
    assert!((s.end - s.start - moving).abs() < 1e-6);
    assert_eq!(s.bytes, bytes);
    assert_eq!(res.hbm_bytes, bytes);
    assert_eq!(
        res.cycles,
        machine::DMA_TRIGGER_LATENCY + moving.ceil() as u64
    );
}

#[test]
fn a_transfer_over_fewer_partitions_uses_fewer_engines() {
    // A quarter of the partitions: a quarter of the engines, so the same bytes per partition
    // take as long as over all of them, and four such transfers run side by side.
    let parts = machine::PARTITIONS / 4;
    let free = 1024u64;
    let bytes = parts * free * Dtype::Fp32.size_bytes();
    let streams = (0..4u64)
        .map(|q| {
            let src = hbm_rows(Dtype::Fp32, parts, free, q * bytes);
            let mut dst = sbuf_rows(Dtype::Fp32, parts, free, 0);
            dst.part_start = q * parts;
            (
                StreamId::Dma(q as u8),
                vec![dma(q, src, dst, Header::default())],
            )
        })
        .collect();
    let (_, sl) = run_timed(program(streams, vec![]), TimingParams::default());
    let w = costs::dma_work_of(bytes, parts, 100, (0, parts), true);
    assert_eq!(w.engines, machine::DMA_ENGINES / 4);
    for q in 0..4u8 {
        let s = find(&sl, StreamId::Dma(q), 0);
        assert!(
            (s.end - s.start - w.cycles() as f64).abs() < 1.0,
            "queue {q}"
        );
    }
}

#[test]
fn a_queue_overlaps_the_next_trigger_latency_with_the_transfer_ahead_and_stays_in_order() {
    // Two transfers on one queue, issued back to back: the second's latency runs while the
    // first moves its bytes, so it starts the moment the first ends (it is long enough to hide
    // the latency); the signals land in order.
    let parts = machine::PARTITIONS;
    let free = machine::DMA_TRIGGER_LATENCY; // fp32 elements per partition: hides the latency
    let bytes = parts * free * Dtype::Fp32.size_bytes();
    let mk = |k: u64| {
        dma(
            0,
            hbm_rows(Dtype::Fp32, parts, free, k * bytes),
            sbuf_rows(Dtype::Fp32, parts, free, k * free * 4),
            signal(1, 1),
        )
    };
    let (res, sl) = run_timed(
        program(vec![(StreamId::Dma(0), vec![mk(0), mk(1)])], vec![]),
        TimingParams::default(),
    );
    let (a, b) = (
        find(&sl, StreamId::Dma(0), 0),
        find(&sl, StreamId::Dma(0), 1),
    );
    let moving = (all_partition_descriptors() + bytes) as f64 / all_engines();
    assert_eq!(a.start, machine::DMA_TRIGGER_LATENCY as f64);
    assert_eq!(b.start, a.end);
    assert!((b.end - b.start - moving).abs() < 1e-6);
    assert_eq!(res.cycles as f64, b.end.ceil());
}

#[test]
fn small_rows_per_partition_are_overhead_bound_and_large_ones_stream() {
    // The research figures the descriptor cost is fitted to: < 256 B per partition is severely
    // overhead-bound, >= 4 KiB per partition runs near the engine rate.
    let eff = |row_bytes: u64| {
        let bytes = machine::PARTITIONS * row_bytes;
        let w = costs::dma_work_of(
            bytes,
            machine::PARTITIONS,
            100,
            (0, machine::PARTITIONS),
            true,
        );
        bytes as f64 / all_engines() / w.cycles() as f64
    };
    assert!(eff(128) < 0.25, "{}", eff(128));
    assert!(eff(2048) > 0.75, "{}", eff(2048));
    assert!(eff(4096) > 0.85, "{}", eff(4096));
}

#[test]
fn transfers_on_the_same_engines_share_them() {
    // Every queue moves a transfer over all partitions at once: each gets a sixteenth of every
    // engine, so all end together, as one queue moving them one after another would.
    let q = machine::DMA_QUEUES;
    let bytes = machine::PARTITIONS * machine::DMA_ENGINE_BYTES_PER_CYCLE * 32;
    let (_, sl) = run_timed(one_dma_program(q, bytes, true), TimingParams::default());
    let want = (q * (bytes + all_partition_descriptors())) as f64 / all_engines();
    for i in 0..q {
        let s = find(&sl, StreamId::Dma(i as u8), 0);
        assert!(
            (s.end - s.start - want).abs() < 1e-6,
            "queue {i}: {} vs {want}",
            s.end - s.start
        );
    }
}

#[test]
fn a_narrower_hbm_caps_hbm_transfers_and_spares_on_chip_copies() {
    let q = machine::DMA_QUEUES;
    let bytes = machine::PARTITIONS * machine::DMA_ENGINE_BYTES_PER_CYCLE * 32;
    // An HBM a quarter as wide as all engines together: the cap binds on the bytes.
    let hbm = all_engines() / 4.0;
    let timing = TimingParams {
        hbm_bytes_per_cycle: hbm,
        ..TimingParams::default()
    };
    let (_, sl) = run_timed(one_dma_program(q, bytes, true), timing);
    let want = (q * bytes) as f64 / hbm;
    for i in 0..q {
        let s = find(&sl, StreamId::Dma(i as u8), 0);
        assert!((s.end - s.start - want).abs() < 1e-6);
    }
    // SBUF-to-SBUF copies do not touch HBM: the engines alone bound them.
    let (_, sl) = run_timed(one_dma_program(q, bytes, false), timing);
    let want = (q * (bytes + all_partition_descriptors())) as f64 / all_engines();
    for i in 0..q {
        let s = find(&sl, StreamId::Dma(i as u8), 0);
        assert!((s.end - s.start - want).abs() < 1e-6);
    }
}

#[test]
fn hbm_shares_are_recomputed_when_a_transfer_finishes() {
    // HBM as wide as one engine: two moving transfers share it until the short one ends.
    let parts = machine::PARTITIONS;
    let es = Dtype::Fp32.size_bytes();
    let (f1, f2) = (64u64, 256u64);
    let (b1, b2) = (parts * f1 * es, parts * f2 * es);
    let p = program(
        vec![
            (
                StreamId::Dma(0),
                vec![dma(
                    0,
                    hbm_rows(Dtype::Fp32, parts, f1, 0),
                    sbuf_rows(Dtype::Fp32, parts, f1, 0),
                    Header::default(),
                )],
            ),
            (
                StreamId::Dma(1),
                vec![dma(
                    1,
                    hbm_rows(Dtype::Fp32, parts, f2, b1),
                    sbuf_rows(Dtype::Fp32, parts, f2, f1 * es),
                    Header::default(),
                )],
            ),
        ],
        vec![],
    );
    let hbm = machine::DMA_ENGINE_BYTES_PER_CYCLE as f64;
    let timing = TimingParams {
        hbm_bytes_per_cycle: hbm,
        ..TimingParams::default()
    };
    let (_, sl) = run_timed(p, timing);
    let lat = machine::DMA_TRIGGER_LATENCY as f64;
    let (w1, w2) = (
        (b1 + all_partition_descriptors()) as f64,
        (b2 + all_partition_descriptors()) as f64,
    );
    // Equal work rates r while both move, their bytes together at the HBM rate.
    let r = hbm / (b1 as f64 / w1 + b2 as f64 / w2);
    let short_end = lat + w1 / r;
    let long_end = short_end + (w2 - w1) / (hbm * w2 / b2 as f64);
    let (s0, s1) = (
        find(&sl, StreamId::Dma(0), 0),
        find(&sl, StreamId::Dma(1), 0),
    );
    assert!(
        (s0.end - short_end).abs() < 1e-6,
        "{} vs {short_end}",
        s0.end
    );
    assert!((s1.end - long_end).abs() < 1e-6, "{} vs {long_end}", s1.end);
}

fn memset_inst(sync: Header, n: u64) -> Inst {
    Inst::Memset(Memset {
        sync,
        dst: sbuf(Dtype::Fp32, machine::PARTITIONS, 0, &[(n, 1)]),
        value: 1.0,
    })
}

#[test]
fn a_wait_starts_when_the_signal_lands_and_counts_as_stall() {
    let n = cost::VECTOR_MIN_FREE * 4;
    // Scalar-engine-free hand-off: DMA queue 0 signals s3 when its copy ends; vector waits.
    let bytes_free = 64u64;
    let p = program(
        vec![
            (StreamId::Vector, vec![memset_inst(wait(3, 1), n)]),
            (
                StreamId::Dma(0),
                vec![dma(
                    0,
                    hbm_rows(Dtype::Fp32, machine::PARTITIONS, bytes_free, 0),
                    sbuf_rows(Dtype::Fp32, machine::PARTITIONS, bytes_free, n * 4),
                    signal(3, 1),
                )],
            ),
        ],
        vec![],
    );
    let (res, sl) = run_timed(p, TimingParams::default());
    let d = find(&sl, StreamId::Dma(0), 0);
    let v = find(&sl, StreamId::Vector, 0);
    assert_eq!(v.start, d.end);
    let vector = &res
        .streams
        .iter()
        .find(|(id, _)| *id == StreamId::Vector)
        .unwrap()
        .1;
    assert_eq!(vector.stall_cycles, d.end);
    assert_eq!(v.end - v.start, (cost::VECTOR_FIXED + n) as f64);
}

#[test]
fn the_tiled_gemm_overlaps_dma_tensor_and_scalar_work() {
    use tahoma_isa::Act;
    let prog = tahoma_runtime::kernels::gemm(512, 512, 1024, Dtype::Bf16, Act::Identity).unwrap();
    let mut emu = Emulator::new(prog).unwrap();
    emu.fill_random_inputs(0).unwrap();
    let res = emu.run(&RunOptions::timed()).unwrap();
    let busy: f64 = res.streams.iter().map(|(_, s)| s.busy_cycles).sum();
    assert!(
        (res.cycles as f64) < busy,
        "engines overlap: {} cycles, {busy} busy cycles in total",
        res.cycles
    );
    // No engine is busy longer than the run.
    for (id, s) in &res.streams {
        assert!(s.busy_cycles <= res.cycles as f64, "{id}");
        assert!(
            s.busy_cycles + s.stall_cycles <= res.cycles as f64 + 1e-6,
            "{id}"
        );
    }
    assert!(res.roofline_cycles <= res.cycles);
}

#[test]
fn a_dma_transpose_streams_at_its_rate_and_an_element_strided_copy_pays_per_element() {
    // [parts, free] fp32 rows of HBM read column-major into SBUF rows: a DMA transpose, one
    // descriptor per SBUF row at the transpose's share of the engine rate.
    let parts = machine::PARTITIONS;
    let free = parts;
    let bytes = parts * free * Dtype::Fp32.size_bytes();
    let all = (0, parts);
    let transposed = DmaAp::new(
        Mem::Hbm,
        Dtype::Fp32,
        0,
        parts,
        1,
        0,
        &[(free, parts as i64)],
    );
    let streaming = hbm_rows(Dtype::Fp32, parts, free, 0);
    let dst = sbuf_rows(Dtype::Fp32, parts, free, 0);
    // Both sides element-strided (every other element): one descriptor per element, half rate.
    let every_other = |mem| DmaAp::new(mem, Dtype::Fp32, 0, parts, 0, 0, &[(free / 2, 8)]);
    let half = bytes / 2;
    let cases = [
        (
            transposed,
            dst,
            costs::dma_work_of(
                bytes,
                parts,
                machine::DMA_TRANSPOSE_HBM_RATE_PERCENT,
                all,
                true,
            ),
        ),
        (
            streaming,
            dst,
            costs::dma_work_of(bytes, parts, 100, all, true),
        ),
        (
            every_other(Mem::Sbuf),
            every_other(Mem::Sbuf),
            costs::dma_work_of(
                half,
                parts * free / 2,
                100 / machine::STRIDE_PENALTY_FACTOR,
                all,
                false,
            ),
        ),
    ];
    for (src, dst, want) in cases {
        let inst = dma(0, src, dst, Header::default());
        assert_eq!(inst_cost(&inst, &[]), Cost::Dma(want));
        let (_, sl) = run_timed(
            program(vec![(StreamId::Dma(0), vec![inst])], vec![]),
            TimingParams::default(),
        );
        let s = find(&sl, StreamId::Dma(0), 0);
        assert!((s.end - s.start - want.cycles() as f64).abs() < 1.0);
    }
}
