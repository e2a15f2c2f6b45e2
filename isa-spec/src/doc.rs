//! Renders the ISA reference (isa-spec/ISA.md) from spec.toml. A test keeps the checked-in file
//! equal to this output; regenerate with `cargo run -q -- isa > isa-spec/ISA.md`.

use crate::spec_model::{FieldDef, Spec};
use std::fmt::Write as _;

fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::Array(rows) => rows.iter().map(value_text).collect::<Vec<_>>().join("; "),
        toml::Value::Table(t) => t
            .iter()
            .map(|(k, v)| format!("{k}={}", value_text(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

fn kind_text(f: &FieldDef) -> String {
    match (&f.kind[..], &f.enum_name) {
        ("enum", Some(e)) => format!("enum `{e}`"),
        (k, _) => k.to_string(),
    }
}

fn field_rows(out: &mut String, fields: &[FieldDef]) {
    out.push_str("| bits | field | kind | default |\n|---|---|---|---|\n");
    for f in fields {
        let _ = writeln!(
            out,
            "| {}..{} | `{}` | {} | {} |",
            f.lsb,
            f.lsb + f.width - 1,
            f.name,
            kind_text(f),
            f.default
                .as_deref()
                .map(|d| format!("`{d}`"))
                .unwrap_or_default()
        );
    }
}

/// The ISA reference as Markdown.
pub fn isa_markdown() -> String {
    let spec = match Spec::parse(crate::SPEC_TOML) {
        Ok(s) => s,
        Err(e) => return format!("spec.toml does not parse: {e}\n"),
    };
    let mut out = String::new();
    out.push_str("# tahoma ISA reference\n\n");
    out.push_str("Generated from `isa-spec/spec.toml` by `isa-spec/src/doc.rs`; do not edit. Regenerate with\n`cargo run -q -- isa > isa-spec/ISA.md` (a test fails when this file and the spec disagree).\n\n");
    out.push_str("Cycles are core cycles (cc). Encodings are little-endian bit strings: bit 0 is the least\nsignificant bit of byte 0. Every instruction starts with the 128-bit `header`; its first byte is the opcode.\n\n");
    out.push_str("## Machine parameters\n\n| parameter | value |\n|---|---|\n");
    for (k, v) in &spec.machine {
        let _ = writeln!(out, "| `{k}` | {} |", value_text(v));
    }
    out.push_str("\n## Cost parameters\n\n| parameter | value |\n|---|---|\n");
    for (k, v) in &spec.cost {
        let _ = writeln!(out, "| `{k}` | {} |", value_text(v));
    }
    out.push_str("\nCost rules: `matmul` = max(N, matmul_min_free) x matmul_cycles_per_col (x matmul_fp32_factor for fp32);\n`load_stationary` = max(M, matmul_min_free) x matmul_cycles_per_col / load_stationary_speedup, overlapping the previous MATMUL;\n`vectorK` = vector_fixed + max(N, vector_min_free) x K inputs; `scalar` = scalar_fixed + max(N, scalar_min_free);\nthe per-element term doubles (stride_penalty_factor) when an innermost stride exceeds stride_penalty_bytes;\n`dma`: data starts dma_trigger_latency after issue, and not before the previous transfer of the same queue has finished (the latency overlaps the transfers ahead; queues are in order);
its work in engine-bytes = bytes x 100 / rate% + descriptors x dma_descriptor_cycles x dma_engine_bytes_per_cycle, one descriptor per run of elements contiguous on both sides (a row-major tile: one per partition row; a DMA transpose of 2/4-byte types, single elements against runs: one per run, at dma_transpose_hbm_rate_percent or dma_transpose_sbuf_rate_percent);
the engines of the partitions it touches (partitions / dma_engines each) do that work at dma_engine_bytes_per_cycle each, shared max-min fairly with the transfers on the same engines, transfers touching HBM together at most hbm_bytes_per_cycle;
rate% = 100 / penalty, where penalty = stride_penalty_factor when consecutive elements of either side lie more than stride_penalty_bytes apart (innermost free dim of more than one element, else the HBM partition stride), else 1;
`gpsimd` = gpsimd_fixed + ceil(E / gpsimd_lanes) x ops x gpsimd_cycles_per_op (x penalty), E = the busiest core's elements (its share of the gpsimd_core_partitions-partition groups x free elements), ops = the kernel's op count per element;
`control` = control_cycles.\n");
    out.push_str("\n## Enumerations\n\n");
    for (name, e) in &spec.enums {
        let _ = writeln!(out, "### `{name}`\n\n{}\n", e.doc);
        let vals: Vec<String> = e
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{i} `{v}`"))
            .collect();
        let _ = writeln!(out, "{}\n", vals.join(", "));
    }
    out.push_str("## Operand layouts\n\n");
    out.push_str("Assembly syntax: an access pattern is `MEM:DTYPE[START,COUNT]@OFFSET(SIZE:STRIDE,...)`, free dims outermost\nfirst, strides in elements (`sbuf:bf16[0,128]@0x400(4:512,512:1)`); a DMA access into HBM adds its partition\nstride: `hbm:fp32[0,128;512]@0x1000(512:1)`. A scalar operand is a number or an access pattern. Semaphores:\n`wait(sN>=V)` (at most two) and `signal(sN+=K)` follow the fields.\n\n");
    for (name, l) in &spec.layouts {
        let _ = writeln!(out, "### `{name}` ({} bits)\n\n{}\n", l.bits, l.doc);
        field_rows(&mut out, &l.fields);
        out.push('\n');
    }
    out.push_str("## Instructions\n\n| opcode | name | engine | bits |\n|---|---|---|---|\n");
    for i in &spec.instructions {
        let _ = writeln!(
            out,
            "| {:#04x} | [`{}`](#{}) | {} | {} |",
            i.opcode,
            i.name,
            i.name.to_lowercase(),
            i.engine,
            i.bits
        );
    }
    out.push('\n');
    for i in &spec.instructions {
        let _ = writeln!(out, "### {}\n", i.name);
        let _ = writeln!(
            out,
            "Engine `{}`, opcode {:#04x}, {} bits ({} bytes), cost rule `{}`.\n",
            i.engine,
            i.opcode,
            i.bits,
            i.bits / 8,
            i.cost
        );
        let _ = writeln!(out, "{}\n", i.semantics);
        if !i.fields.is_empty() {
            out.push_str("Fields after the header:\n\n");
            field_rows(&mut out, &i.fields);
            out.push('\n');
        }
        if !i.constraints.is_empty() {
            out.push_str("Constraints:\n\n");
            for c in &i.constraints {
                let text = spec
                    .constraints
                    .get(c)
                    .map(String::as_str)
                    .unwrap_or("(undocumented)");
                let _ = writeln!(out, "- `{c}`: {text}");
            }
            out.push('\n');
        }
    }
    gpsimd_section(&mut out);
    out
}

/// The GpSimd kernel contract: the program's kernel table, the instructions a kernel may use
/// and the host functions.
fn gpsimd_section(out: &mut String) {
    use crate::gpsimd::{ALLOWED_OPCODES, HOST_FNS};
    out.push_str(
        "## GpSimd kernels

",
    );
    out.push_str("A program carries a kernel table; `GPSIMD_KERNEL kernel=N` calls entry N once per element. An entry is one
Cranelift IR function (CLIF text) and its cost in ops per element (a host call counts `gpsimd_math_call_ops`).
In assembly:

```text
.kernel 0 ops=3
    function %cube(f32) -> f32 {
    block0(v0: f32):
        v1 = fmul v0, v0
        v2 = fmul v1, v0
        return v2
    }
.endkernel
```

");
    out.push_str("The emulator JIT-compiles every kernel when it loads the program and refuses (E2008) a kernel that is not
one block of scalar code over f32/i32 parameters with one f32/i32 result, or that uses an instruction outside
this list: ");
    let ops: Vec<String> = ALLOWED_OPCODES.iter().map(|o| format!("`{o}`")).collect();
    out.push_str(&ops.join(", "));
    out.push_str(".
Calls go to these host functions only (implemented with Rust's f32 math, so results are deterministic):

| name | signature | computes |
|---|---|---|
");
    for h in HOST_FNS {
        let params: Vec<&str> = h.params.iter().map(|p| p.clif()).collect();
        let _ = writeln!(
            out,
            "| `%{}` | ({}) -> {} | {} |",
            h.name,
            params.join(", "),
            h.ret.clif(),
            h.doc
        );
    }
}
