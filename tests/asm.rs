//! Assembler and `.tbin` loader on bad input: every file in `tests/asm_errors/` names the error
//! code and location it must produce (`# expect: CODE at LINE[:COLUMN]` on its first line), and
//! damaged binaries are refused with their own codes, never a panic.

use tahoma_isa::asm::{assemble, AsmError};
use tahoma_isa::program::Program;

fn expectation(text: &str) -> (String, usize, Option<usize>) {
    let first = text.lines().next().unwrap_or_default();
    let spec = first
        .strip_prefix("# expect: ")
        .expect("first line is `# expect: CODE at LINE[:COL]`");
    let (code, loc) = spec.split_once(" at ").expect("expectation has ` at `");
    let (line, col) = match loc.split_once(':') {
        Some((l, c)) => (l.parse().unwrap(), Some(c.parse().unwrap())),
        None => (loc.parse().unwrap(), None),
    };
    (code.to_string(), line, col)
}

#[test]
fn each_bad_assembly_file_gives_its_code_and_location() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/asm_errors");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the error corpus is missing");
    let mut report = String::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let (code, line, col) = expectation(&text);
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let err = match assemble(&text) {
            Ok(_) => panic!("{name}: assembled, expected {code}"),
            Err(e) => e,
        };
        assert_eq!(err.code(), code, "{name}: {err}");
        let (l, c) = match &err {
            AsmError::Syntax { line, column, .. } | AsmError::Field { line, column, .. } => {
                (*line, Some(*column))
            }
            AsmError::Illegal { line, .. } => (*line, None),
        };
        assert_eq!(l, line, "{name}: wrong line in `{err}`");
        if col.is_some() {
            assert_eq!(c, col, "{name}: wrong column in `{err}`");
        }
        report.push_str(&format!("{name}: error[{}]: {err}\n", err.code()));
    }
    insta::assert_snapshot!("asm_error_messages", report);
}

fn example_bytes() -> Vec<u8> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/asm/matmul.s"
    ))
    .unwrap();
    assemble(&text).unwrap().to_bytes().unwrap()
}

#[test]
fn truncated_tbin_is_refused_at_every_length() {
    let bytes = example_bytes();
    for n in 0..bytes.len() {
        let err = Program::from_bytes(&bytes[..n]).expect_err("a truncated file must not load");
        assert!(
            ["E2001", "E2002", "E2004"].contains(&err.code()),
            "length {n}: {err} ({})",
            err.code()
        );
    }
    assert!(Program::from_bytes(&bytes).is_ok());
}

#[test]
fn wrong_magic_and_version_are_refused() {
    let mut bytes = example_bytes();
    bytes[0] = b'X';
    assert_eq!(Program::from_bytes(&bytes).unwrap_err().code(), "E2002");
    let mut bytes = example_bytes();
    bytes[4] = 9;
    let err = Program::from_bytes(&bytes).unwrap_err();
    assert_eq!(err.code(), "E2003");
    let version = format!("9.{}", tahoma_isa::program::VERSION_MINOR);
    assert!(err.to_string().contains(&version), "{err}");
}

/// Byte offset of the first instruction of the first stream section.
const FIRST_INST: usize = 4 + 2 + 2 + 4 + 4 + 8 + 1 + 1 + 8 + 8;

#[test]
fn unknown_opcode_and_bad_field_values_are_refused() {
    let mut bytes = example_bytes();
    bytes[FIRST_INST] = 0xEE;
    let err = Program::from_bytes(&bytes).unwrap_err();
    assert_eq!(err.code(), "E2005", "{err}");
    assert!(err.to_string().contains("pc 0"), "{err}");
    // The first instruction is a DMA_COPY; its src access starts at bit 128. Set its dtype
    // field (bits 2..6 of the access) to a code no dtype has.
    let mut bytes = example_bytes();
    bytes[FIRST_INST + 16] |= 0b0011_1100;
    let err = Program::from_bytes(&bytes).unwrap_err();
    assert_eq!(err.code(), "E2006", "{err}");
    assert!(err.to_string().contains("src.dtype"), "{err}");
}

#[test]
fn random_damage_never_panics() {
    let good = example_bytes();
    let mut rng = tahoma_isa::rng::Rng::new(5);
    for _ in 0..3000 {
        let mut bytes = good.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(bytes.len() as u64) as usize;
            bytes[i] ^= 1 << rng.below(8);
        }
        if let Ok(p) = Program::from_bytes(&bytes) {
            let _ = tahoma_isa::check::check_program(&p);
        }
    }
}

#[test]
fn examples_disassemble_and_reassemble_to_the_same_program() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/asm");
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let p = assemble(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let text = tahoma_isa::asm::print_program(&p, true);
        let back = assemble(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()));
        assert_eq!(back, p, "{}", path.display());
        assert_eq!(tahoma_isa::asm::print_program(&back, true), text);
        assert_eq!(Program::from_bytes(&p.to_bytes().unwrap()).unwrap(), p);
    }
}
