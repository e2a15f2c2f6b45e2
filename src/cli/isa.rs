//! `tahoma isa`, `tahoma asm`, `tahoma disasm`: the ISA reference and the assembler/disassembler
//! over `.tbin` files.

use super::CliError;
use std::path::{Path, PathBuf};
use tahoma_isa::asm::{assemble, print_program};
use tahoma_isa::program::Program;

/// Prints the ISA reference generated from spec.toml.
pub fn isa() -> Result<(), CliError> {
    print!("{}", tahoma_isa::doc::isa_markdown());
    Ok(())
}

pub fn read_file(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path)
        .map_err(|e| CliError::new("E0001", format!("cannot read {}: {e}", path.display())))
}

/// Writes `bytes` to `path` through a temporary file renamed into place, so a failed write
/// never leaves a half-written file where a good one was.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("out")
    ));
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            CliError::new("E0002", format!("cannot write {}: {e}", path.display()))
        })
}

/// Assembles `input` and writes the `.tbin` to `output` (default: input with `.tbin`).
pub fn asm(input: &Path, output: Option<PathBuf>) -> Result<(), CliError> {
    let text = String::from_utf8(read_file(input)?)
        .map_err(|_| CliError::new("E2101", format!("{} is not UTF-8 text", input.display())))?;
    let program =
        assemble(&text).map_err(|e| CliError::new(e.code(), format!("{}:{e}", input.display())))?;
    let bytes = program
        .to_bytes()
        .map_err(|e| CliError::new(e.code(), e.to_string()))?;
    let out = output.unwrap_or_else(|| input.with_extension("tbin"));
    write_file_atomic(&out, &bytes)?;
    let n: usize = program.streams.iter().map(|s| s.insts.len()).sum();
    eprintln!(
        "wrote {} ({} bytes, {} streams, {n} instructions)",
        out.display(),
        bytes.len(),
        program.streams.len()
    );
    Ok(())
}

/// Prints a `.tbin` file as assembly.
pub fn disasm(input: &Path, full: bool) -> Result<(), CliError> {
    let bytes = read_file(input)?;
    let p = Program::from_bytes(&bytes)
        .map_err(|e| CliError::new(e.code(), format!("{}: {e}", input.display())))?;
    print!("{}", print_program(&p, full));
    Ok(())
}
