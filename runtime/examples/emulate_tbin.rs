//! Emulator wall time on one `.tbin`: loads it once, then builds an emulator, fills seeded
//! inputs and runs the timed schedule `REPEATS` times; prints the median of the run times (the
//! same figure `tahoma bench` reports as emulate seconds) and the cycles. A harness for
//! profiling the emulator itself (`perf record` spends most of its samples in the runs).
//!
//! `cargo run --release -p tahoma-runtime --example emulate_tbin -- FILE.tbin [REPEATS]`

use tahoma_runtime::{Emulator, RunOptions};

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: emulate_tbin FILE.tbin [REPEATS]")?;
    let repeats: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let bytes = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    let program = tahoma_runtime::load::load(&bytes).map_err(|e| e.to_string())?;
    let mut times = Vec::new();
    let mut cycles = 0;
    for _ in 0..repeats.max(1) {
        let mut emu = Emulator::new(program.clone()).map_err(|e| e.to_string())?;
        emu.fill_random_inputs(0).map_err(|e| e.to_string())?;
        let r = emu.run(&RunOptions::timed()).map_err(|e| e.to_string())?;
        times.push(r.emulate_seconds);
        cycles = r.cycles;
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{path}: {cycles} cycles; emulated in {:.4} s (median of {}; min {:.4} s, max {:.4} s)",
        times[times.len() / 2],
        times.len(),
        times[0],
        times[times.len() - 1]
    );
    Ok(())
}
