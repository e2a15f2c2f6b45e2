//! Host I/O: `.npy` encoding/decoding and the Chrome trace's structure.

use std::collections::HashMap;
use tahoma_isa::{Act, Dtype};
use tahoma_runtime::npy::{decode, encode, encode_array, NpyArray, NpyDtype};
use tahoma_runtime::{kernels, Emulator, RunOptions, Tensor};

#[test]
fn npy_round_trips_and_matches_numpy_header_layout() {
    let t = Tensor::new(
        Dtype::Fp32,
        vec![2, 3],
        vec![0.0, 1.5, -2.0, 3.25, 1e-3, -7.0],
    );
    let bytes = encode(&t);
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!(
        (10 + hlen) % 64,
        0,
        "data is 64-byte aligned like numpy writes it"
    );
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
    assert!(header.ends_with('\n'));
    let a = decode(&bytes).unwrap();
    assert_eq!(a.dtype, NpyDtype::F4);
    assert_eq!(a.shape, vec![2, 3]);
    let back: Vec<f32> = a.values.iter().map(|&v| v as f32).collect();
    assert_eq!(back, t.data);
    // One-dimensional and scalar shapes.
    let one = encode(&Tensor::new(Dtype::I32, vec![3], vec![1.0, -2.0, 3.0]));
    let d = decode(&one).unwrap();
    assert_eq!(
        (d.dtype, d.shape.clone(), d.values.clone()),
        (NpyDtype::I4, vec![3], vec![1.0, -2.0, 3.0])
    );
    let s = decode(&encode(&Tensor::new(Dtype::Fp16, vec![], vec![0.5]))).unwrap();
    assert_eq!(
        (s.dtype, s.shape.len(), s.values[0]),
        (NpyDtype::F2, 0, 0.5)
    );
    for dtype in [
        NpyDtype::F8,
        NpyDtype::I8,
        NpyDtype::B1,
        NpyDtype::F2,
        NpyDtype::I4,
    ] {
        let a = NpyArray {
            dtype,
            shape: vec![2, 2],
            values: vec![1.0, 0.0, 1.0, 1.0],
        };
        assert_eq!(decode(&encode_array(&a)).unwrap(), a);
    }
}

fn with_header(major: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = b"\x93NUMPY".to_vec();
    v.push(major);
    v.push(0);
    if major == 1 {
        v.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        v.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

#[test]
fn npy_version_2_and_refusals() {
    let data: Vec<u8> = [1.0f64, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let ok = with_header(
        2,
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }\n",
        &data,
    );
    assert_eq!(decode(&ok).unwrap().values, vec![1.0, 2.0]);
    let fortran = with_header(
        1,
        "{'descr': '<f8', 'fortran_order': True, 'shape': (2,), }\n",
        &data,
    );
    assert_eq!(decode(&fortran).unwrap_err().code(), "E4203");
    let big = with_header(
        1,
        "{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }\n",
        &data,
    );
    assert_eq!(decode(&big).unwrap_err().code(), "E4202");
    let short = with_header(
        1,
        "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }\n",
        &data,
    );
    assert_eq!(decode(&short).unwrap_err().code(), "E4204");
    assert_eq!(decode(b"PK\x03\x04 not npy").unwrap_err().code(), "E4201");
    for cut in 0..ok.len() {
        assert!(decode(&ok[..cut]).is_err());
    }
}

#[test]
fn chrome_trace_has_named_tracks_and_non_overlapping_slices() {
    let prog = kernels::gemm(256, 256, 512, Dtype::Bf16, Act::Relu).unwrap();
    let total: usize = prog.streams.iter().map(|s| s.insts.len()).sum();
    let mut emu = Emulator::new(prog).unwrap();
    emu.fill_random_inputs(0).unwrap();
    let res = emu.run(&RunOptions::timed().with_trace()).unwrap();
    let json: serde_json::Value = serde_json::from_str(&res.trace_json().unwrap()).unwrap();
    let events = json["traceEvents"].as_array().unwrap();
    let names: HashMap<u64, &str> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .map(|e| {
            (
                e["tid"].as_u64().unwrap(),
                e["args"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    for want in [
        "tensor",
        "tensor (load stationary)",
        "scalar",
        "dma0",
        "dma1",
    ] {
        assert!(
            names.values().any(|n| *n == want),
            "no track {want}: {names:?}"
        );
    }
    let xs: Vec<&serde_json::Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert_eq!(xs.len(), total, "one slice per executed instruction");
    let mut by_tid: HashMap<u64, Vec<(f64, f64)>> = HashMap::new();
    for e in &xs {
        assert!(names.contains_key(&e["tid"].as_u64().unwrap()));
        assert!(e["args"]["inst"]
            .as_str()
            .unwrap()
            .starts_with(e["name"].as_str().unwrap().split(' ').next().unwrap()));
        assert!(e["args"]["op"].is_string() || e["name"] == "END");
        let (ts, dur) = (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap());
        assert!(dur > 0.0);
        by_tid
            .entry(e["tid"].as_u64().unwrap())
            .or_default()
            .push((ts, ts + dur));
    }
    for (tid, mut v) in by_tid {
        v.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        for w in v.windows(2) {
            assert!(
                w[1].0 >= w[0].1 - 1e-9,
                "track {tid}: slices overlap: {w:?}"
            );
        }
    }
    // The report and summary name the engines and the totals.
    let rep = res.report_json();
    assert_eq!(rep["cycles"].as_u64().unwrap(), res.cycles);
    assert!(rep["engines"]["tensor"]["busy_cycles"].as_f64().unwrap() > 0.0);
    let summary = res.summary();
    assert!(
        summary.contains("cycles:") && summary.contains("tensor") && summary.contains("output c")
    );
}
