//! One source of truth: no hardware number (array size, memory geometry, latencies, bandwidths)
//! is written as a literal in compiler, runtime or CLI code; they come from isa-spec's
//! `spec.toml`. This test greps the non-test code for the spec's distinctive values. A line that
//! legitimately contains such a number for another reason carries `// not-hw: <why>`.

use std::path::{Path, PathBuf};

/// The spec values this test looks for: every [machine]/[cost] integer of at least 100.
fn hardware_numbers() -> Vec<String> {
    let spec: toml::Table = toml::from_str(tahoma_isa::SPEC_TOML).unwrap();
    let mut out = Vec::new();
    for table in ["machine", "cost"] {
        for (_, v) in spec[table].as_table().unwrap() {
            if let Some(i) = v.as_integer() {
                if i >= 100 && !out.contains(&i.to_string()) {
                    out.push(i.to_string());
                }
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if p.file_name()
                .is_some_and(|n| n != "tests" && n != "generated")
            {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Numeric literals of a line of code (comments and strings removed).
fn literals(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut in_str = false;
    let mut cleaned = String::new();
    for c in code.chars() {
        if c == '"' {
            in_str = !in_str;
        } else if !in_str {
            cleaned.push(c);
        }
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_ident = false;
    for c in cleaned.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() || (c == '_' && !cur.is_empty()) {
            if cur.is_empty() && prev_ident {
                continue;
            }
            cur.push(c);
        } else {
            if !cur.is_empty() {
                out.push(cur.replace('_', ""));
                cur.clear();
            }
            prev_ident = c.is_ascii_alphabetic() || c == '_';
        }
    }
    out
}

#[test]
fn no_hardware_number_is_written_outside_isa_spec() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let numbers = hardware_numbers();
    assert!(numbers.contains(&"128".to_string()) && numbers.contains(&"1800".to_string()));
    let mut files = Vec::new();
    for d in ["src", "compiler/src", "runtime/src"] {
        rust_files(&root.join(d), &mut files);
    }
    let mut found = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break; // unit tests may spell out the numbers they check
            }
            if line.contains("not-hw:") || line.trim_start().starts_with("//") {
                continue;
            }
            for lit in literals(line) {
                if numbers.contains(&lit) {
                    found.push(format!(
                        "{}:{}: {lit} in `{}`",
                        f.strip_prefix(root).unwrap().display(),
                        i + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "hardware numbers written as literals (take them from tahoma_isa::machine/cost):\n{}",
        found.join("\n")
    );
}
