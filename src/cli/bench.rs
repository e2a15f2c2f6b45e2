//! `tahoma bench`: the benchmark suite of the optimizer and the lowering. For each workload
//! ([`workloads::suite`]: bf16 GEMMs, ResNet-50 conv layers, an MLP block, transformer encoder
//! layers, the corpus models) at -O0 and -O2 it measures emulated cycles (timed emulator),
//! roofline cycles and % of roofline, compile and emulate wall seconds (medians of `--repeat`
//! runs), and onnxruntime's CPU wall time for the same model and inputs ([`ort`]). The summary
//! gives the geometric mean of the -O0/-O2 cycle ratios and the Spearman rank correlation of the
//! predicted cycles per kernel against each kernel emulated alone ([`alone`]) and against the
//! emulator's per-op active cycles (`OpProfile::active`: a kernel's span without the waits on
//! other kernels) ([`stats`]), for the kernel-IR model on the whole lowered graph, for the
//! optimizer's own model (the same kernels lowered one node at a time, what extraction
//! minimises) and for the closed-form `op_cycles`.
//! Prints a table; `--json FILE` writes everything, per-kernel points included.

pub mod alone;
pub mod ort;
pub mod stats;
pub mod workloads;

use super::compile::{compile_with, ExtractArg};
use super::isa::write_file_atomic;
use super::model::{diag_error, load_graph, ModelArgs};
use super::CliError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tahoma_compiler::driver::CompileOptions;
use tahoma_compiler::graph::Graph;
use tahoma_compiler::lower::{LowerOptions, Precision};
use tahoma_compiler::onnx::{self, ImportOptions, NoExternalData};
use tahoma_compiler::opt::{
    cost::{lowered_node_cycles, model_work, node_cycles},
    node_cost::NodeCoster,
    ExtractMode, OptLevel,
};
use tahoma_compiler::tensor::DType;
use tahoma_isa::program::{IoKind, Program};
use tahoma_runtime::emulator::{Emulator, RunOptions};
use tahoma_runtime::npy::{NpyArray, NpyDtype};
use workloads::{Source, Workload};

/// What `bench` was asked to do.
#[derive(Clone, Debug)]
pub struct BenchArgs {
    /// Run only workloads whose name contains one of these (all when empty).
    pub filters: Vec<String>,
    /// Timed repetitions of compile, emulate and onnxruntime (medians are reported).
    pub repeat: usize,
    pub json: Option<PathBuf>,
    /// Write the synthetic workloads as `.onnx` files here and stop.
    pub emit_models: Option<PathBuf>,
    /// Skip the onnxruntime column.
    pub no_onnxruntime: bool,
    /// The corpus folder (default `TAHOMA_CORPUS_DIR`, else `target/corpus`).
    pub corpus: Option<PathBuf>,
    /// Python with onnxruntime.
    pub python: Option<PathBuf>,
    /// Seed of the weights of the synthetic workloads and of every input.
    pub seed: u64,
    /// The optimizer's extraction.
    pub extract: ExtractArg,
}

/// The levels every workload runs at.
const LEVELS: [OptLevel; 2] = [OptLevel::O0, OptLevel::O2];

/// The precision the suite compiles at (the CLI's default).
const PRECISION: Precision = Precision::Bf16;

/// One kernel: the cost model's prediction and the emulator's active cycles for the op.
#[derive(Clone, Debug, Serialize)]
struct KernelPoint {
    name: String,
    op: String,
    /// From the kernel IR the lowering emitted (`opt::cost::lowered_node_cycles`).
    predicted_cycles: f64,
    /// The optimizer's own model, the one extraction minimises: the node's kernels lowered
    /// alone (`opt::node_cost::NodeCoster`).
    extraction_cycles: f64,
    /// The closed-form per-node estimate (`opt::cost::op_cycles`).
    op_model_cycles: f64,
    /// The kernel compiled and emulated alone ([`alone`]).
    emulated_cycles: f64,
    /// Cycles during which the kernel had an instruction executing in the whole model
    /// (`OpProfile::active`).
    active_cycles: f64,
    /// First start to last end (includes waits on other kernels while they overlap).
    span_cycles: f64,
}

/// A workload at one level.
#[derive(Clone, Debug, Serialize)]
struct LevelResult {
    level: String,
    cycles: u64,
    roofline_cycles: u64,
    roofline_percent: f64,
    macs: u64,
    hbm_bytes: u64,
    /// The cost model's cycles for the whole graph as compiled.
    predicted_cycles: f64,
    nodes: usize,
    compile_seconds: f64,
    compile_seconds_runs: Vec<f64>,
    emulate_seconds: f64,
    emulate_seconds_runs: Vec<f64>,
    /// Spearman correlation of predicted vs emulated cycles over this workload's kernels.
    spearman: Option<f64>,
    kernels: Vec<KernelPoint>,
}

/// onnxruntime's timing of a workload.
#[derive(Clone, Debug, Serialize, Default)]
struct OrtResult {
    median_seconds: Option<f64>,
    runs: Vec<f64>,
    /// Why there is no timing, or what was timed instead.
    note: Option<String>,
}

/// One workload's results.
#[derive(Clone, Debug, Serialize)]
struct WorkloadResult {
    name: String,
    family: String,
    shape: String,
    /// The model file (corpus models) or `synthetic`.
    model: String,
    error: Option<String>,
    levels: Vec<LevelResult>,
    /// Emulated cycles at -O0 over -O2.
    o0_over_o2: Option<f64>,
    onnxruntime: OrtResult,
}

/// Where the corpus is.
fn corpus_dir(args: &BenchArgs) -> PathBuf {
    args.corpus
        .clone()
        .or_else(|| std::env::var_os("TAHOMA_CORPUS_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target/corpus"))
}

/// A workload's model, loaded: the graph, and the ONNX file onnxruntime runs (with a note
/// when it differs from what tahoma compiles).
struct Loaded {
    graph: Graph,
    model_path: Option<PathBuf>,
    /// The model for onnxruntime when it is not a file of the corpus.
    ort_model: Option<(Vec<u8>, Option<String>)>,
}

fn load(w: &Workload, args: &BenchArgs) -> Result<Loaded, String> {
    match &w.source {
        Source::Template(text) => {
            let m = workloads::build_model(&w.name, text, args.seed)?;
            let graph = onnx::import_model(&m, &ImportOptions::default(), &NoExternalData)
                .map_err(|d| format!("import: {}", diag_error(d)))?;
            let ort_model = match workloads::fp32_variant(&m) {
                Some(f) => (
                    onnx::encode_model(&f),
                    Some("fp32 model: onnxruntime has no CPU bf16 MatMul".to_string()),
                ),
                None => (onnx::encode_model(&m), None),
            };
            Ok(Loaded {
                graph,
                model_path: None,
                ort_model: Some(ort_model),
            })
        }
        Source::Corpus {
            pattern,
            dims,
            shapes,
        } => {
            let root = corpus_dir(args);
            let path = workloads::find_in_corpus(&root, pattern).ok_or_else(|| {
                format!(
                    "corpus model {}/{pattern} not found: run `bash tests/corpus/fetch.sh` (or point TAHOMA_CORPUS_DIR / --corpus at the corpus)",
                    root.display()
                )
            })?;
            let margs = ModelArgs {
                dims: dims.clone(),
                shapes: shapes.clone(),
            };
            let graph = load_graph(&path, &margs).map_err(|e| e.to_string())?;
            Ok(Loaded {
                graph,
                model_path: Some(path),
                ort_model: None,
            })
        }
    }
}

/// Compiles and emulates `g` at `level`, `repeat` times each; returns the figures and the
/// program.
fn run_level(
    g: &Graph,
    level: OptLevel,
    repeat: usize,
    seed: u64,
    extract: ExtractMode,
) -> Result<(LevelResult, Program), String> {
    let opts = CompileOptions {
        lower: LowerOptions {
            precision: PRECISION,
        },
        opt_level: level,
        keep_phase_graphs: false,
    };
    let mut compile_runs = Vec::new();
    let mut compiled = None;
    for _ in 0..repeat {
        let t0 = Instant::now();
        let r =
            compile_with(g, &opts, extract).map_err(|d| format!("compile: {}", diag_error(d)))?;
        compile_runs.push(t0.elapsed().as_secs_f64());
        compiled = Some(r);
    }
    let Some((compiled, optimized)) = compiled else {
        return Err("nothing compiled (--repeat 0?)".to_string());
    };
    let mut emulate_runs = Vec::new();
    let mut first = None;
    for _ in 0..repeat {
        let mut emu = Emulator::new(compiled.program.clone())
            .map_err(|e| format!("load: error[{}]: {e}", e.code()))?;
        emu.fill_random_inputs(seed)
            .map_err(|e| format!("inputs: error[{}]: {e}", e.code()))?;
        let r = emu
            .run(&RunOptions::timed())
            .map_err(|e| format!("emulate: error[{}]: {e}", e.code()))?;
        emulate_runs.push(r.emulate_seconds);
        match &first {
            None => first = Some(r),
            Some(f) if f.cycles != r.cycles => {
                return Err(format!(
                    "the timed emulator is not deterministic: {} then {} cycles",
                    f.cycles, r.cycles
                ))
            }
            Some(_) => {}
        }
    }
    let Some(mut r) = first else {
        return Err("nothing emulated (--repeat 0?)".to_string());
    };
    // The roofline counts the model's work (the workload's graph as given), not the padding
    // a lowering executes.
    let work = model_work(g, PRECISION);
    r.measure_against(work.macs, work.compulsory_bytes);
    // The prediction per kernel: nodes keep their names down to the instructions, and a node
    // name may repeat (the profile merges those, so the prediction is summed the same way).
    let g = &optimized.graph;
    let mut predicted: BTreeMap<&str, (f64, f64, f64, f64, String)> = BTreeMap::new();
    let extraction = NodeCoster::new(PRECISION).node_cycles(g);
    for (((node, c), o), x) in g
        .nodes
        .iter()
        .zip(lowered_node_cycles(g, PRECISION))
        .zip(node_cycles(g, PRECISION))
        .zip(extraction)
    {
        // Views and folded constants have no kernel; the others are also emulated alone.
        if c == 0.0 {
            continue;
        }
        let Some(alone) = alone::cycles(g, node, PRECISION, seed) else {
            continue;
        };
        let e = predicted.entry(node.name.as_str()).or_insert((
            0.0,
            0.0,
            0.0,
            0.0,
            node.op.name().to_string(),
        ));
        e.0 += c;
        e.1 += o;
        e.2 += alone;
        e.3 += x;
    }
    let kernels: Vec<KernelPoint> = r
        .ops
        .iter()
        .filter_map(|p| {
            predicted
                .get(p.name.as_str())
                .map(|(c, o, alone, x, op)| KernelPoint {
                    name: p.name.clone(),
                    op: op.clone(),
                    predicted_cycles: *c,
                    extraction_cycles: *x,
                    op_model_cycles: *o,
                    emulated_cycles: *alone,
                    active_cycles: p.active,
                    span_cycles: p.span(),
                })
        })
        .collect();
    let l = LevelResult {
        level: level.name().to_string(),
        cycles: r.cycles,
        roofline_cycles: r.roofline_cycles,
        roofline_percent: r.roofline_percent(),
        macs: r.macs,
        hbm_bytes: r.hbm_bytes,
        predicted_cycles: optimized.report.predicted_cycles_after,
        nodes: optimized.graph.nodes.len(),
        compile_seconds: stats::median(&compile_runs).unwrap_or(0.0),
        compile_seconds_runs: compile_runs,
        emulate_seconds: stats::median(&emulate_runs).unwrap_or(0.0),
        emulate_seconds_runs: emulate_runs,
        spearman: stats::spearman(
            &kernels
                .iter()
                .map(|k| (k.predicted_cycles, k.emulated_cycles))
                .collect::<Vec<_>>(),
        ),
        kernels,
    };
    Ok((l, compiled.program))
}

fn npy_dtype(d: DType) -> NpyDtype {
    match d {
        DType::F32 | DType::BF16 => NpyDtype::F4,
        DType::F16 => NpyDtype::F2,
        DType::I64 => NpyDtype::I8,
        DType::I32 => NpyDtype::I4,
        DType::Bool => NpyDtype::B1,
    }
}

/// A scratch folder for onnxruntime's model and inputs, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Times the workload on onnxruntime with the inputs the emulator got (the program's seeded
/// random values, written as `.npy` in the graph's dtypes).
fn run_ort(
    ort: &ort::Ort,
    w: &Workload,
    loaded: &Loaded,
    program: &Program,
    args: &BenchArgs,
) -> OrtResult {
    let scratch = Scratch(std::env::temp_dir().join(format!(
        "tahoma-bench-{}-{}",
        std::process::id(),
        w.name
    )));
    let go = || -> Result<(Vec<f64>, Option<String>), String> {
        std::fs::create_dir_all(&scratch.0)
            .map_err(|e| format!("cannot create {}: {e}", scratch.0.display()))?;
        let (model, note) = match (&loaded.model_path, &loaded.ort_model) {
            (_, Some((bytes, note))) => {
                let p = scratch.0.join("model.onnx");
                std::fs::write(&p, bytes)
                    .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
                (p, note.clone())
            }
            (Some(p), None) => (p.clone(), None),
            (None, None) => return Err("no model file".to_string()),
        };
        let mut inputs = Vec::new();
        for (i, e) in program.io.iter().enumerate() {
            if e.kind != IoKind::Input {
                continue;
            }
            let dtype = loaded
                .graph
                .inputs
                .iter()
                .map(|&v| loaded.graph.value(v))
                .find(|v| v.name == e.name)
                .map_or(DType::F32, |v| v.ty.dtype);
            let arr = NpyArray {
                dtype: npy_dtype(dtype),
                shape: e.shape.clone(),
                values: tahoma_runtime::inputs::random_values(e, args.seed.wrapping_add(i as u64)),
            };
            let p = scratch.0.join(format!("input_{i}.npy"));
            std::fs::write(&p, tahoma_runtime::npy::encode_array(&arr))
                .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
            inputs.push((e.name.clone(), p));
        }
        Ok((ort.time(&model, &inputs, args.repeat)?, note))
    };
    match go() {
        Ok((runs, note)) => OrtResult {
            median_seconds: stats::median(&runs),
            runs,
            note,
        },
        Err(e) => OrtResult {
            note: Some(format!("onnxruntime failed: {e}")),
            ..Default::default()
        },
    }
}

fn bench_one(w: &Workload, args: &BenchArgs, ort: Option<&ort::Ort>) -> WorkloadResult {
    let mut res = WorkloadResult {
        name: w.name.clone(),
        family: w.family.to_string(),
        shape: w.shape.clone(),
        model: "synthetic".to_string(),
        error: None,
        levels: Vec::new(),
        o0_over_o2: None,
        onnxruntime: OrtResult::default(),
    };
    let loaded = match load(w, args) {
        Ok(l) => l,
        Err(e) => {
            res.error = Some(e);
            return res;
        }
    };
    if let Some(p) = &loaded.model_path {
        res.model = p.display().to_string();
    }
    let mut program = None;
    for level in LEVELS {
        eprintln!("bench: {} -{} ...", w.name, level.name());
        match run_level(
            &loaded.graph,
            level,
            args.repeat,
            args.seed,
            args.extract.mode(),
        ) {
            Ok((l, p)) => {
                res.levels.push(l);
                // The program's I/O table gives the inputs' order and seeds (any level).
                program.get_or_insert(p);
            }
            Err(e) => {
                res.error = Some(format!("-{}: {e}", level.name()));
                return res;
            }
        }
    }
    if let [a, b] = res.levels.as_slice() {
        if b.cycles > 0 {
            res.o0_over_o2 = Some(a.cycles as f64 / b.cycles as f64);
        }
    }
    res.onnxruntime = match (ort, &program) {
        (Some(o), Some(p)) => {
            eprintln!("bench: {} onnxruntime ...", w.name);
            run_ort(o, w, &loaded, p, args)
        }
        _ => OrtResult::default(),
    };
    res
}

/// The suite-level figures.
#[derive(Clone, Debug, Serialize)]
struct Summary {
    /// Geometric mean of -O0/-O2 emulated cycles over the corpus models.
    geomean_o0_over_o2_models: Option<f64>,
    models: usize,
    /// The same over every workload that ran.
    geomean_o0_over_o2_all: Option<f64>,
    workloads: usize,
    /// Spearman rank correlation of predicted vs emulated cycles over every kernel of the
    /// suite, per level.
    spearman: BTreeMap<String, Option<f64>>,
    /// The same for the optimizer's own model (`extraction_cycles`).
    spearman_extraction: BTreeMap<String, Option<f64>>,
    /// The same for the closed-form per-node estimate (`op_model_cycles`).
    spearman_op_model: BTreeMap<String, Option<f64>>,
    /// The kernel-IR prediction against each kernel's active cycles in the whole model
    /// (which add the sharing and waits of overlapping kernels).
    spearman_active: BTreeMap<String, Option<f64>>,
    kernels: BTreeMap<String, usize>,
}

fn summarise(results: &[WorkloadResult]) -> Summary {
    let ratios = |family: Option<&str>| -> Vec<f64> {
        results
            .iter()
            .filter(|r| family.is_none_or(|f| r.family == f))
            .filter_map(|r| r.o0_over_o2)
            .collect()
    };
    let (models, all) = (ratios(Some("model")), ratios(None));
    let mut spearman = BTreeMap::new();
    let mut spearman_extraction = BTreeMap::new();
    let mut spearman_op_model = BTreeMap::new();
    let mut spearman_active = BTreeMap::new();
    let mut kernels = BTreeMap::new();
    for level in LEVELS {
        let ks: Vec<&KernelPoint> = results
            .iter()
            .flat_map(|r| &r.levels)
            .filter(|l| l.level == level.name())
            .flat_map(|l| &l.kernels)
            .collect();
        let pairs = |f: fn(&KernelPoint) -> f64| -> Vec<(f64, f64)> {
            ks.iter().map(|k| (f(k), k.emulated_cycles)).collect()
        };
        let name = level.name().to_string();
        spearman.insert(
            name.clone(),
            stats::spearman(&pairs(|k| k.predicted_cycles)),
        );
        spearman_extraction.insert(
            name.clone(),
            stats::spearman(&pairs(|k| k.extraction_cycles)),
        );
        spearman_op_model.insert(name.clone(), stats::spearman(&pairs(|k| k.op_model_cycles)));
        spearman_active.insert(
            name.clone(),
            stats::spearman(
                &ks.iter()
                    .map(|k| (k.predicted_cycles, k.active_cycles))
                    .collect::<Vec<_>>(),
            ),
        );
        kernels.insert(name, ks.len());
    }
    Summary {
        geomean_o0_over_o2_models: stats::geomean(&models),
        models: models.len(),
        geomean_o0_over_o2_all: stats::geomean(&all),
        workloads: all.len(),
        spearman,
        spearman_extraction,
        spearman_op_model,
        spearman_active,
        kernels,
    }
}

fn fmt_opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "n/a".to_string(), f)
}

/// The table: two rows per workload (-O0, -O2).
fn table(results: &[WorkloadResult], summary: &Summary) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<20} {:<36} {:<5} {:>11} {:>9} {:>6} {:>6} {:>9} {:>9} {:>10}",
        "workload",
        "shape (GEMM: M x K x N)",
        "level",
        "cycles",
        "roofline",
        "%roof",
        "O0/O2",
        "compile s",
        "emulate s",
        "ort ms"
    );
    for r in results {
        if let Some(e) = &r.error {
            let _ = writeln!(s, "{:<20} {:<36} error: {e}", r.name, r.shape);
            if r.levels.is_empty() {
                continue;
            }
        }
        for (i, l) in r.levels.iter().enumerate() {
            let (name, shape) = if i == 0 {
                (r.name.as_str(), r.shape.as_str())
            } else {
                ("", "")
            };
            let ratio = if i == 1 {
                fmt_opt(r.o0_over_o2, |x| format!("{x:.2}x"))
            } else {
                String::new()
            };
            let ort = if i == 0 {
                let t = fmt_opt(r.onnxruntime.median_seconds, |x| format!("{:.3}", x * 1e3));
                if r.onnxruntime.median_seconds.is_some() && r.onnxruntime.note.is_some() {
                    format!("{t}*")
                } else {
                    t
                }
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "{:<20} {:<36} {:<5} {:>11} {:>9} {:>5.1}% {:>6} {:>9.3} {:>9.3} {:>10}",
                name,
                shape,
                format!("-{}", l.level),
                l.cycles,
                l.roofline_cycles,
                l.roofline_percent,
                ratio,
                l.compile_seconds,
                l.emulate_seconds,
                ort
            );
        }
    }
    // Footnotes of the onnxruntime column, one per distinct note with the workloads it covers.
    let mut notes: Vec<(&str, Vec<&str>)> = Vec::new();
    for r in results {
        if let Some(n) = &r.onnxruntime.note {
            match notes.iter_mut().find(|(t, _)| t == n) {
                Some((_, names)) => names.push(&r.name),
                None => notes.push((n, vec![&r.name])),
            }
        }
    }
    for (n, names) in notes {
        let _ = writeln!(s, "* {}: {n}", names.join(", "));
    }
    let _ = writeln!(
        s,
        "-O0/-O2 emulated cycles, geometric mean: {} over the {} corpus models, {} over all {} workloads",
        fmt_opt(summary.geomean_o0_over_o2_models, |x| format!("{x:.2}x")),
        summary.models,
        fmt_opt(summary.geomean_o0_over_o2_all, |x| format!("{x:.2}x")),
        summary.workloads
    );
    for level in LEVELS {
        let n = level.name();
        let f3 = |m: &BTreeMap<String, Option<f64>>| {
            fmt_opt(m.get(n).copied().flatten(), |x| format!("{x:.3}"))
        };
        let _ = writeln!(
            s,
            "predicted vs emulated cycles per kernel at -{n}, Spearman over {} kernels: kernel-IR model {} against each kernel run alone ({} against its active cycles in the whole model); the optimizer's (extraction's) model {} alone; closed-form op_cycles {} alone",
            summary.kernels.get(n).copied().unwrap_or(0),
            f3(&summary.spearman),
            f3(&summary.spearman_active),
            f3(&summary.spearman_extraction),
            f3(&summary.spearman_op_model),
        );
    }
    s
}

/// The machine the figures come from (CPU model and threads).
fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    });
    serde_json::json!({
        "cpu": cpu,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}

/// The workloads `--filter` selects.
fn selected(args: &BenchArgs) -> Result<Vec<Workload>, CliError> {
    let all = workloads::suite();
    let picked: Vec<Workload> = all
        .iter()
        .filter(|w| args.filters.is_empty() || args.filters.iter().any(|f| w.name.contains(f)))
        .cloned()
        .collect();
    if picked.is_empty() {
        let names: Vec<&str> = all.iter().map(|w| w.name.as_str()).collect();
        return Err(CliError::new(
            "E0003",
            format!(
                "--filter {} matches no workload (workloads: {})",
                args.filters.join(", "),
                names.join(", ")
            ),
        ));
    }
    Ok(picked)
}

/// `--emit-models DIR`: writes the synthetic workloads as binary ONNX and prints how to run
/// each workload with `tahoma run`.
fn emit_models(dir: &Path, picked: &[Workload], args: &BenchArgs) -> Result<(), CliError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::new("E0002", format!("cannot create {}: {e}", dir.display())))?;
    for w in picked {
        match &w.source {
            Source::Template(text) => {
                let m = workloads::build_model(&w.name, text, args.seed)
                    .map_err(|e| CliError::new("E0007", e))?;
                let p = dir.join(format!("{}.onnx", w.name));
                write_file_atomic(&p, &onnx::encode_model(&m))?;
                println!("tahoma run {}", p.display());
            }
            Source::Corpus {
                pattern,
                dims,
                shapes,
            } => {
                let root = corpus_dir(args);
                let p =
                    workloads::find_in_corpus(&root, pattern).unwrap_or_else(|| root.join(pattern));
                let mut line = format!("tahoma run {}", p.display());
                for d in dims {
                    line.push_str(&format!(" --dim {d}"));
                }
                for s in shapes {
                    line.push_str(&format!(" --shape {s}"));
                }
                println!("{line}");
            }
        }
    }
    Ok(())
}

/// `tahoma bench`.
pub fn bench(args: &BenchArgs) -> Result<(), CliError> {
    if args.repeat == 0 {
        return Err(CliError::new("E0003", "--repeat must be at least 1"));
    }
    let picked = selected(args)?;
    if let Some(dir) = &args.emit_models {
        return emit_models(dir, &picked, args);
    }
    let (ort, ort_note) = if args.no_onnxruntime {
        (None, "skipped by --no-onnxruntime".to_string())
    } else {
        match ort::find(args.python.as_deref(), &corpus_dir(args)) {
            Ok(o) => {
                let note = format!("onnxruntime {} via {}", o.version, o.python.display());
                (Some(o), note)
            }
            Err(e) => (None, e),
        }
    };
    eprintln!("bench: {} workloads; onnxruntime: {ort_note}", picked.len());
    let results: Vec<WorkloadResult> = picked
        .iter()
        .map(|w| bench_one(w, args, ort.as_ref()))
        .collect();
    let summary = summarise(&results);
    print!("{}", table(&results, &summary));
    if ort.is_none() {
        println!("ort ms: n/a ({ort_note})");
    }
    let m = machine();
    println!(
        "machine: {} ({} threads); medians of {} runs; bf16 matmul operands; {} extraction",
        m["cpu"].as_str().unwrap_or("unknown CPU"),
        m["threads"],
        args.repeat,
        args.extract.mode().name()
    );
    if let Some(path) = &args.json {
        let v = serde_json::json!({
            "machine": m,
            "repeat": args.repeat,
            "precision": "bf16",
            "extraction": args.extract.mode().name(),
            "onnxruntime": ort_note,
            "workloads": results,
            "summary": summary,
        });
        let text =
            serde_json::to_string_pretty(&v).map_err(|e| CliError::new("E0002", e.to_string()))?;
        write_file_atomic(path, text.as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.name)))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::new(
            "E0007",
            format!(
                "{} of {} workloads failed:\n  {}",
                failed.len(),
                results.len(),
                failed.join("\n  ")
            ),
        ))
    }
}
