//! Scalar engine: ACTIVATE, dst = f(src * scale + bias) for every function of the `act` table,
//! with the optional per-partition add-reduce of the results into `acc`. Arithmetic is fp32
//! (erf-based functions evaluate erf in f64 and round once).

use super::vector::scalar_values;
use super::{expect_len, read, write, Effects};
use crate::error::Fault;
use crate::memory::Memories;
use tahoma_isa::{Act, Activate};

const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// erf(x) in f64: Maclaurin series for |x| < 2, continued fraction for erfc beyond.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x.abs() < 2.0 {
        erf_series(x)
    } else {
        x.signum() * (1.0 - erfc_cf(x.abs()))
    }
}

/// erfc(x) = 1 - erf(x) in f64, accurate in the tails.
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        x
    } else if x >= 2.0 {
        erfc_cf(x)
    } else if x <= -2.0 {
        2.0 - erfc_cf(-x)
    } else {
        1.0 - erf_series(x)
    }
}

fn erf_series(x: f64) -> f64 {
    // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
    let x2 = x * x;
    let mut term = x;
    let mut sum = x;
    let mut n = 0.0;
    loop {
        n += 1.0;
        term *= -x2 / n;
        let t = term / (2.0 * n + 1.0);
        sum += t;
        if t.abs() < 1e-17 * sum.abs() || n > 100.0 {
            break;
        }
    }
    sum * std::f64::consts::FRAC_2_SQRT_PI
}

fn erfc_cf(x: f64) -> f64 {
    // erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...))))), x >= 2.
    if x > 27.0 {
        return 0.0;
    }
    let mut f = x;
    for n in (1..=60).rev() {
        f = x + (n as f64 / 2.0) / f;
    }
    (-x * x).exp() / (std::f64::consts::PI.sqrt() * f)
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Evaluates activation `f` at `x` in fp32.
pub fn activation(f: Act, x: f32) -> f32 {
    let xd = f64::from(x);
    match f {
        Act::Identity => x,
        Act::Relu => x.max(0.0),
        Act::Sigmoid => sigmoid(x),
        Act::Tanh => x.tanh(),
        Act::Exp => x.exp(),
        Act::Log => x.ln(),
        Act::Sqrt => x.sqrt(),
        Act::Rsqrt => 1.0 / x.sqrt(),
        Act::Reciprocal => 1.0 / x,
        // 0.5 x (1 + erf(x / sqrt 2)) = 0.5 x erfc(-x / sqrt 2), accurate for large negative x.
        Act::Gelu => (0.5 * xd * erfc(-xd * std::f64::consts::FRAC_1_SQRT_2)) as f32,
        Act::GeluTanh => {
            let c = (2.0 / std::f32::consts::PI).sqrt();
            0.5 * x * (1.0 + (c * (x + 0.044_715 * x * x * x)).tanh())
        }
        Act::Erf => erf(xd) as f32,
        Act::Silu => x * sigmoid(x),
        Act::Square => x * x,
        Act::Abs => x.abs(),
        Act::Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        }
        // d/dx gelu = Phi(x) + x phi(x)
        Act::GeluDx => {
            let cdf = 0.5 * erfc(-xd * std::f64::consts::FRAC_1_SQRT_2);
            let pdf = FRAC_1_SQRT_2PI * (-0.5 * xd * xd).exp();
            (cdf + xd * pdf) as f32
        }
        // d/dx x sigmoid(x) = s (1 + x (1 - s))
        Act::SiluDx => {
            let s = sigmoid(x);
            s * (1.0 + x * (1.0 - s))
        }
    }
}

/// Appends `activation(f, v * s + b)` for each `v` of `row` to `out`. The cheap functions get
/// a loop of their own (the same arithmetic as [`activation`] with its match hoisted out, so
/// the loop vectorises); the rest share one. (Functions built from several operations stay
/// in the shared loop: inlined into a specialised one, the compiler may reorder commutative
/// operands, which can change the sign of a NaN result.)
fn apply_row(f: Act, row: &[f32], s: f32, b: f32, out: &mut Vec<f32>) {
    fn each(row: &[f32], s: f32, b: f32, out: &mut Vec<f32>, g: impl Fn(f32) -> f32) {
        out.extend(row.iter().map(|&v| g(v * s + b)));
    }
    match f {
        Act::Identity => each(row, s, b, out, |x| activation(Act::Identity, x)),
        Act::Relu => each(row, s, b, out, |x| activation(Act::Relu, x)),
        Act::Square => each(row, s, b, out, |x| activation(Act::Square, x)),
        _ => each(row, s, b, out, |x| activation(f, x)),
    }
}

pub fn activate(mem: &mut Memories, x: &Activate) -> Result<Effects, Fault> {
    let src = read(mem, "src", &x.src)?;
    let parts = x.src.part_count as usize;
    let free = x.src.free_elems() as usize;
    let scale = scalar_values(mem, "scale", &x.scale, parts)?;
    let bias = scalar_values(mem, "bias", &x.bias, parts)?;
    let mut out = mem.spare(src.len());
    let mut sums = Vec::with_capacity(parts);
    if free == 0 {
        sums.resize(parts, 0.0);
    }
    for (p, row) in src.chunks(free.max(1)).enumerate().take(parts) {
        let (s, b) = (scale[p], bias[p]);
        let start = out.len();
        apply_row(x.func, row, s, b, &mut out);
        if x.accumulate {
            // Summed in element order, as the engine accumulates.
            sums.push(out[start..].iter().fold(0.0f32, |sum, &y| sum + y));
        }
    }
    write(mem, "dst", &x.dst, &out)?;
    mem.recycle(src);
    mem.recycle(out);
    if x.accumulate {
        expect_len("acc", x.acc.elems() as usize, parts)?;
        write(mem, "acc", &x.acc, &sums)?;
    }
    Ok(Effects::default())
}

#[cfg(test)]
mod tests {
    //! The hoisted loops against `activation` applied element by element.
    use super::*;

    #[test]
    fn apply_row_matches_activation() {
        let mut row = vec![0.0, -0.0, 1.0, -1.5, 30.0, -90.0, f32::INFINITY, f32::NAN];
        row.extend((0..40).map(|i| (i as f32 - 20.0) * 0.37));
        for f in Act::ALL {
            for (s, b) in [(1.0, 0.0), (-0.5, 0.25)] {
                let mut out = Vec::new();
                apply_row(f, &row, s, b, &mut out);
                let want: Vec<u32> = row
                    .iter()
                    .map(|&v| activation(f, v * s + b).to_bits())
                    .collect();
                let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
                assert_eq!(got, want, "{f:?}");
            }
        }
    }
}
