//! The kernel-IR cost model (`opt::kernel_cost`) on hand-checked kernels: a tiled loop that
//! reuses one SBUF tile runs its iterations one after the other (load, compute, store, then the
//! next load may overwrite the tile), one that gives every iteration its own slice of the
//! buffer overlaps them over the DMA queues, and both follow isa-spec's costs exactly.

use tahoma_compiler::kernel::text::parse;
use tahoma_compiler::opt::kernel_cost::{kernel_cycles_by_name, kernel_work, schedule_cycles};
use tahoma_isa::{costs, machine};

const TILES: u64 = 4;

fn program(rotating: bool) -> String {
    let p = machine::PARTITIONS;
    let f = p; // a square tile of fp32
    let (buf_free, off) = if rotating {
        (f * TILES, format!("{f}*$t"))
    } else {
        (f, "0".to_string())
    };
    let n = p * f;
    format!(
        "input @x \"x\" fp32[{TILES},{p},{f}]\n\
         output @y \"y\" fp32[{TILES},{p},{f}]\n\
         kernel \"relu\" Relu {{\n\
           sbuf %a fp32[{p}x{buf_free}]\n\
           for $t in 0..{TILES} {{\n\
             dma dst=%a[0,{p}]+{off}({f}:1) src=@x[0,{p};{f}]+{n}*$t({f}:1)\n\
             activate dst=%a[0,{p}]+{off}({f}:1) src=%a[0,{p}]+{off}({f}:1) func=relu scale=1.0 bias=0.0\n\
             dma dst=@y[0,{p};{f}]+{n}*$t({f}:1) src=%a[0,{p}]+{off}({f}:1)\n\
           }}\n\
         }}\n"
    )
}

/// One tile's DMA (fp32, contiguous) and its activation, by isa-spec's rules.
fn tile_costs() -> (f64, f64) {
    let p = machine::PARTITIONS;
    let dma = costs::dma_work_of(p * p * 4, p, 100, (0, p), true).cycles_alone() as f64;
    let act = costs::scalar_cycles(p, 1) as f64;
    (dma, act)
}

#[test]
fn a_loop_reusing_one_tile_runs_its_iterations_in_sequence() {
    let kp = parse(&program(false)).unwrap();
    let (dma, act) = tile_costs();
    let got = schedule_cycles(&kp, &kp.kernels[0]).unwrap();
    assert_eq!(got, TILES as f64 * (dma + act + dma));
    assert_eq!(kernel_cycles_by_name(&kp)["relu"], got);
}

#[test]
fn a_loop_over_distinct_slices_overlaps_its_loads_with_the_dma_engines_busy() {
    let kp = parse(&program(true)).unwrap();
    let (dma, act) = tile_costs();
    // Every load is issued at once on its own queue, but they share the DMA engines (each
    // covers all partitions), so they land one transfer time apart; each activation follows
    // its load, and the last store follows the last activation.
    let lat = machine::DMA_TRIGGER_LATENCY as f64;
    let transfer = dma - lat;
    assert!(transfer > act);
    let got = schedule_cycles(&kp, &kp.kernels[0]).unwrap();
    assert_eq!(got, lat + TILES as f64 * transfer + act + dma);
    // The resource bound agrees on the work: the scalar engine's time is the activations'.
    let w = kernel_work(&kp, &kp.kernels[0]);
    assert_eq!(w.scalar, TILES as f64 * act);
    assert_eq!(w.dma_pieces, 2.0 * TILES as f64);
}
