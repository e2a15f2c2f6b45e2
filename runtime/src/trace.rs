//! Chrome trace JSON (the Trace Event Format Perfetto and chrome://tracing open): one track
//! (thread) per engine and DMA queue, plus one for the tensor engine's background stationary
//! loads, named by metadata events; one complete (`X`) slice per executed instruction, named by
//! opcode, with args {pc, inst, op, macs/bytes, start/end cycles, and when the instruction
//! stalled on a semaphore, `stall_cycles` and `waited_on`}. Timestamps are µs
//! (`costs::cycles_to_us`).

use serde_json::{json, Value};
use tahoma_isa::costs::cycles_to_us;
use tahoma_isa::program::{Program, StreamId};
use tahoma_isa::{asm, machine};

/// One instruction's interval on its engine's timeline (cycles).
#[derive(Clone, Debug, PartialEq)]
pub struct Slice {
    pub stream: StreamId,
    pub pc: usize,
    /// A LOAD_STATIONARY, drawn on the tensor engine's stationary-load track.
    pub stationary: bool,
    pub start: f64,
    pub end: f64,
    pub macs: u64,
    pub bytes: u64,
    /// Cycles the engine sat idle before this instruction because a semaphore wait was not
    /// satisfied (0 when it started as soon as the engine was free).
    pub stall: f64,
    /// The semaphore it was waiting for (the last one to be satisfied), when it stalled.
    pub waited_on: Option<u64>,
}

const PID: u64 = 1;

/// Track id of a stream (the stationary-load track sits right after the tensor engine's).
fn tid(stream: StreamId, stationary: bool) -> u64 {
    match (stream, stationary) {
        (StreamId::Tensor, false) => 1,
        (StreamId::Tensor, true) => 2,
        (StreamId::Vector, _) => 3,
        (StreamId::Scalar, _) => 4,
        (StreamId::Gpsimd, _) => 5,
        (StreamId::Dma(q), _) => 6 + u64::from(q),
    }
}

fn track_name(stream: StreamId, stationary: bool) -> String {
    if stationary {
        format!("{stream} (load stationary)")
    } else {
        stream.to_string()
    }
}

/// Builds the trace for a timed run of `program`.
pub fn chrome_trace(program: &Program, slices: &[Slice]) -> Value {
    let mut events: Vec<Value> = Vec::with_capacity(slices.len() + 2 * program.streams.len() + 2);
    events.push(json!({
        "name": "process_name", "ph": "M", "pid": PID, "tid": 0,
        "args": {"name": format!("{} core 0", machine::NAME)}
    }));
    let mut tracks: Vec<(StreamId, bool)> = Vec::new();
    for s in &program.streams {
        tracks.push((s.id, false));
        if s.id == StreamId::Tensor {
            tracks.push((s.id, true));
        }
    }
    tracks.sort_by_key(|&(s, st)| tid(s, st));
    for &(s, st) in &tracks {
        let t = tid(s, st);
        events.push(json!({
            "name": "thread_name", "ph": "M", "pid": PID, "tid": t,
            "args": {"name": track_name(s, st)}
        }));
        events.push(json!({
            "name": "thread_sort_index", "ph": "M", "pid": PID, "tid": t,
            "args": {"sort_index": t}
        }));
    }
    for sl in slices {
        let Some(stream) = program.stream(sl.stream) else {
            continue;
        };
        let Some(inst) = stream.insts.get(sl.pc) else {
            continue;
        };
        let mut args = json!({
            "pc": sl.pc,
            "inst": asm::format_inst(inst),
            "start_cycle": sl.start,
            "end_cycle": sl.end,
        });
        if let Some(op) = program.op_of(stream, sl.pc) {
            args["op"] = json!(op);
        }
        if sl.macs > 0 {
            args["macs"] = json!(sl.macs);
        }
        if sl.bytes > 0 {
            args["bytes"] = json!(sl.bytes);
        }
        if sl.stall > 0.0 {
            args["stall_cycles"] = json!(sl.stall);
        }
        if let Some(sem) = sl.waited_on {
            args["waited_on"] = json!(format!("s{sem}"));
        }
        let name = match program.op_of(stream, sl.pc) {
            Some(op) => format!("{} {op}", inst.opcode().name()),
            None => inst.opcode().name().to_string(),
        };
        events.push(json!({
            "name": name,
            "cat": track_name(sl.stream, sl.stationary),
            "ph": "X",
            "pid": PID,
            "tid": tid(sl.stream, sl.stationary),
            "ts": cycles_to_us(sl.start),
            "dur": cycles_to_us(sl.end - sl.start),
            "args": args,
        }));
    }
    json!({ "traceEvents": events, "displayTimeUnit": "ns" })
}
