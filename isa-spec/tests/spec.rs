//! Checks of spec.toml itself and of everything generated from it: bit coverage, field widths,
//! encode/decode and print/parse round trips over random instances, the ISA.md reference.

use tahoma_isa::asm::{format_inst, parse_inst_line};
use tahoma_isa::spec_model::{FieldDef, Spec};
use tahoma_isa::{machine, DecodeError, Inst, Opcode};

fn spec() -> Spec {
    Spec::parse(tahoma_isa::SPEC_TOML).expect("spec.toml parses")
}

/// Asserts that `fields` cover `[0, bits)` exactly once and that each fits its kind.
fn check_cover(spec: &Spec, what: &str, bits: usize, fields: &[&FieldDef]) {
    let mut owner: Vec<Option<&str>> = vec![None; bits];
    for f in fields {
        assert!(f.width > 0, "{what}.{}: zero width", f.name);
        assert!(
            f.lsb + f.width <= bits,
            "{what}.{}: bits {}..{} exceed {bits}",
            f.name,
            f.lsb,
            f.lsb + f.width
        );
        for (b, slot) in owner.iter_mut().enumerate().skip(f.lsb).take(f.width) {
            if let Some(o) = slot {
                panic!("{what}: bit {b} belongs to both `{o}` and `{}`", f.name);
            }
            *slot = Some(&f.name);
        }
        match f.kind.as_str() {
            "uint" | "int" | "sem" => {
                assert!(f.width <= 64, "{what}.{}: wider than 64 bits", f.name)
            }
            "bool" => assert_eq!(f.width, 1, "{what}.{}: bool must be one bit", f.name),
            "f32" => assert_eq!(f.width, 32, "{what}.{}: f32 must be 32 bits", f.name),
            "reserved" => {}
            "enum" => {
                let e = &spec.enums[f.enum_name.as_ref().expect("enum name")];
                assert!(
                    e.values.len() <= 1 << f.width,
                    "{what}.{}: {} values do not fit {} bits",
                    f.name,
                    e.values.len(),
                    f.width
                );
            }
            layout => assert_eq!(
                spec.layouts[layout].bits, f.width,
                "{what}.{}: width differs from layout `{layout}`",
                f.name
            ),
        }
        if f.kind == "sem" {
            assert!(
                machine::SEMAPHORES <= 1 << f.width,
                "{what}.{}: cannot name every semaphore",
                f.name
            );
        }
    }
    if let Some(b) = owner.iter().position(Option::is_none) {
        panic!("{what}: bit {b} is not covered by any field");
    }
    assert_eq!(
        bits % 64,
        0,
        "{what}: {bits} bits is not a whole number of 64-bit words"
    );
}

#[test]
fn every_bit_of_every_encoding_is_covered_once() {
    let spec = spec();
    for (name, l) in &spec.layouts {
        check_cover(&spec, name, l.bits, &l.fields.iter().collect::<Vec<_>>());
    }
    let header = &spec.layouts["header"];
    for i in &spec.instructions {
        let mut all: Vec<&FieldDef> = header.fields.iter().collect();
        all.extend(i.fields.iter());
        check_cover(&spec, &i.name, i.bits, &all);
    }
}

#[test]
fn opcodes_are_unique_and_fit_the_opcode_field() {
    let spec = spec();
    let mut seen = std::collections::HashSet::new();
    for i in &spec.instructions {
        assert!(seen.insert(i.opcode), "opcode {:#x} used twice", i.opcode);
    }
    assert_eq!(Opcode::ALL.len(), spec.instructions.len());
}

#[test]
fn operand_fields_can_address_the_whole_machine() {
    let spec = spec();
    let width = |layout: &str, field: &str| {
        spec.layouts[layout]
            .fields
            .iter()
            .find(|f| f.name == field)
            .expect(field)
            .width
    };
    let fits = |w: usize, v: u64| v < (1u64 << w);
    assert!(fits(
        width("ap", "offset"),
        machine::SBUF_PARTITION_BYTES.max(machine::PSUM_PARTITION_BYTES)
    ));
    assert!(fits(width("dma_ap", "offset"), machine::HBM_BYTES));
    assert!(fits(width("ap", "part_count"), machine::PARTITIONS));
    assert!(fits(width("ap", "part_start"), machine::PARTITIONS - 1));
    assert!(fits(width("ap", "size0"), machine::MAX_FREE_ELEMS_SBUF));
    assert!(fits(width("ap", "ndims"), machine::MAX_FREE_DIMS));
    let queue = spec
        .instructions
        .iter()
        .find(|i| i.name == "DMA_COPY")
        .unwrap()
        .fields
        .iter()
        .find(|f| f.name == "queue")
        .unwrap();
    assert!(fits(queue.width, machine::DMA_QUEUES - 1));
}

#[test]
fn every_constraint_is_documented_and_implemented() {
    let spec = spec();
    for i in &spec.instructions {
        for c in &i.constraints {
            assert!(
                spec.constraints.contains_key(c),
                "{}: constraint `{c}` has no text in [constraints]",
                i.name
            );
            assert!(
                tahoma_isa::check::KNOWN.contains(&c.as_str()),
                "{}: constraint `{c}` is not implemented in check.rs",
                i.name
            );
        }
    }
    for k in tahoma_isa::check::KNOWN {
        assert!(
            spec.constraints.contains_key(*k),
            "check.rs implements `{k}` but spec.toml does not document it"
        );
    }
}

const ROUNDS: usize = 300;

#[test]
fn encode_decode_encode_over_random_instances() {
    let mut rng = tahoma_isa::rng::Rng::new(7);
    for op in Opcode::ALL {
        for _ in 0..ROUNDS {
            let inst = Inst::arbitrary(op, &mut rng);
            let mut a = Vec::new();
            inst.encode(&mut a)
                .unwrap_or_else(|e| panic!("{}: {e}", op.name()));
            assert_eq!(a.len(), op.size_bytes());
            let (back, n) = Inst::decode(&a).unwrap_or_else(|e| panic!("{}: {e}", op.name()));
            assert_eq!(n, a.len());
            let mut b = Vec::new();
            back.encode(&mut b).unwrap();
            assert_eq!(
                a,
                b,
                "{}: encode -> decode -> encode changed the bytes",
                op.name()
            );
        }
    }
}

#[test]
fn print_parse_print_over_random_instances() {
    let mut rng = tahoma_isa::rng::Rng::new(11);
    for op in Opcode::ALL {
        for _ in 0..ROUNDS {
            let inst = Inst::arbitrary(op, &mut rng);
            let text = format_inst(&inst);
            let back = parse_inst_line(&text).unwrap_or_else(|e| panic!("{text}\n{e}"));
            assert_eq!(format_inst(&back), text);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            inst.encode(&mut a).unwrap();
            back.encode(&mut b).unwrap();
            if !text.contains("NaN") {
                assert_eq!(a, b, "{text}: parse(print(x)) encodes differently");
            }
        }
    }
}

#[test]
fn reserved_bits_set_are_refused() {
    let spec = spec();
    let mut rng = tahoma_isa::rng::Rng::new(3);
    for i in &spec.instructions {
        let op = Opcode::from_name(&i.name).unwrap();
        let inst = Inst::arbitrary(op, &mut rng);
        let mut bytes = Vec::new();
        inst.encode(&mut bytes).unwrap();
        for f in i.fields.iter().filter(|f| f.kind == "reserved") {
            let mut bad = bytes.clone();
            bad[f.lsb / 8] ^= 1 << (f.lsb % 8);
            match Inst::decode(&bad) {
                Err(DecodeError::ReservedNonZero { field }) => assert_eq!(field, f.name),
                other => panic!("{}: flipping reserved bit {} gave {other:?}", i.name, f.lsb),
            }
        }
    }
}

#[test]
fn unknown_opcode_and_truncation_are_decode_errors() {
    let used: Vec<u8> = Opcode::ALL.iter().map(|o| o.byte()).collect();
    let free = (0..=255u8).find(|b| !used.contains(b)).unwrap();
    assert_eq!(
        Inst::decode(&[free; 16]),
        Err(DecodeError::UnknownOpcode(free))
    );
    let mut bytes = Vec::new();
    Inst::arbitrary(Opcode::Matmul, &mut tahoma_isa::rng::Rng::new(1))
        .encode(&mut bytes)
        .unwrap();
    assert!(matches!(
        Inst::decode(&bytes[..bytes.len() - 1]),
        Err(DecodeError::Truncated { .. })
    ));
    assert!(matches!(
        Inst::decode(&[]),
        Err(DecodeError::Truncated { .. })
    ));
}

#[test]
fn isa_md_is_what_the_spec_generates() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/ISA.md");
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    let generated = tahoma_isa::doc::isa_markdown();
    assert!(
        on_disk == generated,
        "isa-spec/ISA.md is out of date with spec.toml; regenerate it with `cargo run -q -- isa > isa-spec/ISA.md`"
    );
}
