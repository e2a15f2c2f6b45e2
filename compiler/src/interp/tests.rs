//! Unit tests of the reference kernels, one module per op family, on small hand-checked
//! values (many from the examples in the ONNX operator documentation).

use super::conv::*;
use super::elementwise::*;
use super::index_ops::*;
use super::linalg::*;
use super::normalize::*;
use super::pool::*;
use super::reduce::*;
use super::resize::*;
use super::shape_ops::*;
use super::window::AutoPad;
use crate::tensor::{DType, Tensor};

fn f(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(DType::F32, shape, v)
}

fn i64t(shape: &[usize], v: &[i64]) -> Tensor {
    Tensor::I64(ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), v.to_vec()).unwrap())
}

fn assert_close(t: &Tensor, shape: &[usize], want: &[f32]) {
    assert_eq!(t.shape(), shape, "shape");
    let got = t.to_f32_vec();
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 + 1e-4 * w.abs(),
            "element {i}: got {g}, want {w} (all: {got:?})"
        );
    }
}

mod elementwise_tests {
    use super::*;

    #[test]
    fn add_broadcasts_multidirectionally() {
        let a = f(&[2, 1], &[1.0, 2.0]);
        let b = f(&[3], &[10.0, 20.0, 30.0]);
        let y = binary(BinaryOp::Add, &a, &b).unwrap();
        assert_close(&y, &[2, 3], &[11.0, 21.0, 31.0, 12.0, 22.0, 32.0]);
    }

    #[test]
    fn incompatible_broadcast_is_an_error_naming_shapes() {
        let e = binary(
            BinaryOp::Mul,
            &f(&[2], &[1.0, 2.0]),
            &f(&[3], &[1.0, 2.0, 3.0]),
        )
        .unwrap_err();
        assert_eq!(e.op, "Mul");
        assert!(
            e.message.contains("[2]") && e.message.contains("[3]"),
            "{e}"
        );
    }

    #[test]
    fn integer_division_truncates_and_refuses_zero() {
        let y = binary(BinaryOp::Div, &i64t(&[2], &[7, -7]), &i64t(&[1], &[2])).unwrap();
        assert_eq!(y, i64t(&[2], &[3, -3]));
        assert!(binary(BinaryOp::Div, &i64t(&[1], &[1]), &i64t(&[1], &[0])).is_err());
    }

    #[test]
    fn pow_with_integer_exponent_keeps_base_type() {
        let y = binary(BinaryOp::Pow, &f(&[3], &[1.0, 2.0, 3.0]), &i64t(&[1], &[2])).unwrap();
        assert_close(&y, &[3], &[1.0, 4.0, 9.0]);
    }

    #[test]
    fn unary_math_matches_reference_values() {
        let x = f(&[3], &[-1.0, 0.0, 1.0]);
        assert_close(
            &unary(UnaryOp::Sigmoid, &x).unwrap(),
            &[3],
            &[0.268_941_43, 0.5, 0.731_058_6],
        );
        assert_close(
            &unary(UnaryOp::Erf, &x).unwrap(),
            &[3],
            &[-0.842_700_8, 0.0, 0.842_700_8],
        );
        assert_close(&unary(UnaryOp::Relu, &x).unwrap(), &[3], &[0.0, 0.0, 1.0]);
        assert_close(&unary(UnaryOp::Sign, &x).unwrap(), &[3], &[-1.0, 0.0, 1.0]);
        assert_close(
            &unary(UnaryOp::Exp, &x).unwrap(),
            &[3],
            &[1.0 / std::f32::consts::E, 1.0, std::f32::consts::E],
        );
        assert_eq!(
            unary(UnaryOp::Abs, &i64t(&[2], &[-3, 4])).unwrap(),
            i64t(&[2], &[3, 4])
        );
        assert!(unary(UnaryOp::Exp, &i64t(&[1], &[1])).is_err());
    }

    #[test]
    fn erf_is_accurate_for_tiny_and_large_arguments() {
        assert!((erf(1e-6) / 1.128_379_167_095_136_5e-6 - 1.0).abs() < 1e-12);
        assert!((erf(2.5) - 0.999_593_047_982_555).abs() < 1e-14);
        assert_eq!(erf(5.0), 1.0);
    }

    #[test]
    fn activations_with_attributes() {
        let x = f(&[3], &[-1.0, 0.0, 1.0]);
        assert_close(&leaky_relu(&x, 0.1).unwrap(), &[3], &[-0.1, 0.0, 1.0]);
        assert_close(&hard_sigmoid(&x, 0.5, 0.6).unwrap(), &[3], &[0.1, 0.6, 1.0]);
        assert_close(
            &hard_swish(&f(&[3], &[-4.0, 1.0, 4.0])).unwrap(),
            &[3],
            &[0.0, 0.666_666_7, 4.0],
        );
        assert_close(
            &gelu(&x, GeluApprox::None).unwrap(),
            &[3],
            &[-0.158_655_26, 0.0, 0.841_344_7],
        );
        assert_close(
            &gelu(&x, GeluApprox::Tanh).unwrap(),
            &[3],
            &[-0.158_808, 0.0, 0.841_192],
        );
    }

    #[test]
    fn half_types_compute_in_f32_and_round_back() {
        let a = Tensor::from_f32(DType::F16, &[2], &[1.0, 2.0]);
        let y = binary(BinaryOp::Add, &a, &a).unwrap();
        assert_eq!(y.dtype(), DType::F16);
        assert_close(&y, &[2], &[2.0, 4.0]);
        let b = Tensor::from_f32(DType::BF16, &[1], &[3.0]);
        assert_eq!(unary(UnaryOp::Sqrt, &b).unwrap().dtype(), DType::BF16);
    }

    #[test]
    fn cast_to_half_types_rounds_to_nearest_even() {
        let x = f(
            &[3],
            &[1.0 + 2f32.powi(-11), 1.0 + 3.0 * 2f32.powi(-11), 65520.0],
        );
        let h = cast(&x, DType::F16).to_f32_vec();
        assert_eq!(h, vec![1.0, 1.0 + 2f32.powi(-9), f32::INFINITY]);
        let b = cast(
            &f(&[2], &[1.0 + 2f32.powi(-8), 1.0 + 3.0 * 2f32.powi(-8)]),
            DType::BF16,
        );
        assert_eq!(b.to_f32_vec(), vec![1.0, 1.0 + 2f32.powi(-6)]);
    }

    #[test]
    fn comparisons_logic_and_where() {
        let a = f(&[3], &[1.0, 2.0, 3.0]);
        let b = f(&[1], &[2.0]);
        let lt = compare(CompareOp::Less, &a, &b).unwrap();
        assert_eq!(lt.to_f32_vec(), vec![1.0, 0.0, 0.0]);
        let ge = compare(CompareOp::GreaterOrEqual, &a, &b).unwrap();
        let x = logical(LogicOp::Xor, &lt, &ge).unwrap();
        assert_eq!(x.to_f32_vec(), vec![1.0, 1.0, 1.0]);
        assert_eq!(not(&lt).unwrap().to_f32_vec(), vec![0.0, 1.0, 1.0]);
        let w = where_(&lt, &a, &f(&[], &[-1.0])).unwrap();
        assert_close(&w, &[3], &[1.0, -1.0, -1.0]);
        assert!(compare(CompareOp::Equal, &a, &i64t(&[1], &[1])).is_err());
    }

    #[test]
    fn clip_cast_isnan_isinf_and_variadic() {
        let x = f(&[4], &[-2.0, 0.5, 3.0, f32::NAN]);
        let c = clip(&x, Some(&f(&[], &[-1.0])), Some(&f(&[], &[1.0]))).unwrap();
        let v = c.to_f32_vec();
        assert_eq!(&v[..3], &[-1.0, 0.5, 1.0]);
        assert_eq!(is_nan(&x).unwrap().to_f32_vec(), vec![0.0, 0.0, 0.0, 1.0]);
        let inf = f(&[3], &[f32::INFINITY, f32::NEG_INFINITY, 1.0]);
        assert_eq!(
            is_inf(&inf, true, false).unwrap().to_f32_vec(),
            vec![1.0, 0.0, 0.0]
        );
        assert_eq!(
            cast(&f(&[2], &[1.7, -1.7]), DType::I64),
            i64t(&[2], &[1, -1])
        );
        assert_eq!(
            cast(&f(&[2], &[0.0, 2.0]), DType::Bool).to_f32_vec(),
            vec![0.0, 1.0]
        );
        let s = variadic(
            VariadicOp::Sum,
            &[
                &f(&[2], &[1.0, 2.0]),
                &f(&[1], &[10.0]),
                &f(&[2], &[100.0, 200.0]),
            ],
        )
        .unwrap();
        assert_close(&s, &[2], &[111.0, 212.0]);
        let m = variadic(
            VariadicOp::Max,
            &[&f(&[2], &[1.0, 5.0]), &f(&[2], &[3.0, 2.0])],
        )
        .unwrap();
        assert_close(&m, &[2], &[3.0, 5.0]);
    }
}

mod reduce_tests {
    use super::*;

    fn x() -> Tensor {
        // ONNX ReduceSum example data, shape [3, 2, 2].
        f(
            &[3, 2, 2],
            &[1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.],
        )
    }

    #[test]
    fn reduce_sum_keepdims_and_all_axes() {
        let p = ReduceParams {
            axes: Some(vec![1]),
            keepdims: true,
            noop_with_empty_axes: false,
        };
        assert_close(
            &reduce(ReduceOp::Sum, &x(), &p).unwrap(),
            &[3, 1, 2],
            &[4., 6., 12., 14., 20., 22.],
        );
        let all = ReduceParams {
            axes: None,
            keepdims: false,
            noop_with_empty_axes: false,
        };
        assert_close(&reduce(ReduceOp::Sum, &x(), &all).unwrap(), &[], &[78.]);
        let noop = ReduceParams {
            axes: None,
            keepdims: true,
            noop_with_empty_axes: true,
        };
        assert_eq!(reduce(ReduceOp::Sum, &x(), &noop).unwrap(), x());
    }

    #[test]
    fn mean_max_min_over_negative_axes() {
        let p = ReduceParams {
            axes: Some(vec![-2]),
            keepdims: false,
            noop_with_empty_axes: false,
        };
        assert_close(
            &reduce(ReduceOp::Mean, &x(), &p).unwrap(),
            &[3, 2],
            &[2., 3., 6., 7., 10., 11.],
        );
        let p = ReduceParams {
            axes: Some(vec![0, 2]),
            keepdims: false,
            noop_with_empty_axes: false,
        };
        assert_close(&reduce(ReduceOp::Max, &x(), &p).unwrap(), &[2], &[10., 12.]);
        assert_close(&reduce(ReduceOp::Min, &x(), &p).unwrap(), &[2], &[1., 3.]);
        let bad = ReduceParams {
            axes: Some(vec![3]),
            keepdims: false,
            noop_with_empty_axes: false,
        };
        assert!(reduce(ReduceOp::Sum, &x(), &bad).is_err());
    }

    #[test]
    fn integer_sum_and_argmax() {
        let t = i64t(&[2, 2], &[1, 5, 7, 2]);
        let p = ReduceParams {
            axes: Some(vec![1]),
            keepdims: false,
            noop_with_empty_axes: false,
        };
        assert_eq!(reduce(ReduceOp::Sum, &t, &p).unwrap(), i64t(&[2], &[6, 9]));
        assert_eq!(
            arg_reduce(&t, 1, false, false, true).unwrap(),
            i64t(&[2], &[1, 0])
        );
    }
}

mod normalize_tests {
    use super::*;

    /// Half-precision softmax equals onnx's reference evaluator bit for bit (values produced by
    /// `onnx.reference.ReferenceEvaluator` on a one-node Softmax model); rounding only the
    /// quotient would give 0.26171875 (bf16) and 0.015945435 (f16) where the reference gives
    /// the values below.
    #[test]
    fn half_softmax_matches_the_reference_evaluator_exactly() {
        let cases = [
            (
                DType::BF16,
                [-0.125f32, 0.0, 1.0, 1.75],
                [0.08544922f32, 0.09667969, 0.26367188, 0.5546875],
            ),
            (
                DType::F16,
                [-1.875, -1.5, 1.25, 1.75],
                [0.015930176, 0.02319336, 0.36279297, 0.59814453],
            ),
        ];
        for (dtype, x, want) in cases {
            let y = softmax(&Tensor::from_f32(dtype, &[1, 4], &x), -1, false).unwrap();
            assert_eq!(y.dtype(), dtype);
            assert_eq!(y.to_f32_vec(), want, "{dtype}");
        }
    }

    #[test]
    fn softmax_rows_sum_to_one_on_any_axis() {
        let x = f(&[2, 3], &[1., 2., 3., 1., 1., 1.]);
        let y = softmax(&x, 1, false).unwrap();
        assert_close(
            &y,
            &[2, 3],
            &[
                0.090_030_57,
                0.244_728_48,
                0.665_240_94,
                1. / 3.,
                1. / 3.,
                1. / 3.,
            ],
        );
        let y0 = softmax(&x, 0, false).unwrap();
        assert_close(
            &y0,
            &[2, 3],
            &[
                0.5,
                0.731_058_6,
                0.880_797_1,
                0.5,
                0.268_941_43,
                0.119_202_92,
            ],
        );
        let l = log_softmax(&x, -1, false).unwrap();
        assert_close(
            &l,
            &[2, 3],
            &[
                -2.407_605_7,
                -1.407_605_7,
                -0.407_605_7,
                -1.098_612_3,
                -1.098_612_3,
                -1.098_612_3,
            ],
        );
    }

    #[test]
    fn layer_norm_matches_hand_computation() {
        let x = f(&[2, 2], &[1., 3., 2., 4.]);
        let out = layer_norm(&x, &f(&[2], &[2., 1.]), Some(&f(&[2], &[0.5, 0.])), -1, 0.0).unwrap();
        assert_close(&out.y, &[2, 2], &[-1.5, 1., -1.5, 1.]);
        assert_close(&out.mean, &[2, 1], &[2., 3.]);
        assert_close(&out.inv_std_dev, &[2, 1], &[1., 1.]);
    }

    #[test]
    fn batch_norm_per_channel() {
        let x = f(&[1, 2, 1, 2], &[1., 2., 3., 4.]);
        let y = batch_norm(
            &x,
            &f(&[2], &[1., 2.]),
            &f(&[2], &[0., 1.]),
            &f(&[2], &[1., 3.]),
            &f(&[2], &[1., 4.]),
            0.0,
        )
        .unwrap();
        assert_close(&y, &[1, 2, 1, 2], &[0., 1., 1., 2.]);
        assert!(batch_norm(
            &x,
            &f(&[3], &[1., 1., 1.]),
            &f(&[2], &[0., 0.]),
            &f(&[2], &[0., 0.]),
            &f(&[2], &[1., 1.]),
            0.0
        )
        .is_err());
    }

    #[test]
    fn lrn_over_channels() {
        let x = f(&[1, 2, 1, 1], &[1., 2.]);
        let y = lrn(
            &x,
            &LrnParams {
                size: 3,
                alpha: 3.0,
                beta: 1.0,
                bias: 1.0,
            },
        )
        .unwrap();
        // square sum over both channels = 5 for each; den = 1 + 3/3*5 = 6.
        assert_close(&y, &[1, 2, 1, 1], &[1. / 6., 2. / 6.]);
    }
}

mod linalg_tests {
    use super::*;

    #[test]
    fn matmul_batches_and_promotes_vectors() {
        let a = f(&[2, 1, 2], &[1., 2., 3., 4.]);
        let b = f(&[2, 1], &[10., 100.]);
        assert_close(&matmul(&a, &b).unwrap(), &[2, 1, 1], &[210., 430.]);
        let v = f(&[2], &[1., 1.]);
        assert_close(
            &matmul(&v, &f(&[2, 2], &[1., 2., 3., 4.])).unwrap(),
            &[2],
            &[4., 6.],
        );
        assert!(matmul(&a, &f(&[3, 1], &[0.; 3])).is_err());
        let ai = i64t(&[1, 2], &[2, 3]);
        assert_eq!(
            matmul(&ai, &i64t(&[2, 1], &[4, 5])).unwrap(),
            i64t(&[1, 1], &[23])
        );
    }

    #[test]
    fn gemm_transposes_scales_and_broadcasts_c() {
        let a = f(&[2, 1], &[1., 2.]); // transA -> [1, 2]
        let b = f(&[3, 2], &[1., 0., 0., 1., 1., 1.]); // transB -> [2, 3]
        let c = f(&[1], &[1.]);
        let p = GemmParams {
            alpha: 2.0,
            beta: 0.5,
            trans_a: true,
            trans_b: true,
        };
        assert_close(
            &gemm(&a, &b, Some(&c), &p).unwrap(),
            &[1, 3],
            &[2.5, 4.5, 6.5],
        );
    }
}

mod conv_tests {
    use super::*;

    fn x5() -> Tensor {
        f(
            &[1, 1, 5, 5],
            &(0..25).map(|v| v as f32).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn conv_with_and_without_padding_matches_onnx_example() {
        let w = f(&[1, 1, 3, 3], &[1.; 9]);
        let p = ConvParams {
            pads: vec![1, 1, 1, 1],
            ..Default::default()
        };
        let y = conv(&x5(), &w, None, &p).unwrap();
        assert_eq!(y.shape(), &[1, 1, 5, 5]);
        assert_eq!(&y.to_f32_vec()[..5], &[12., 21., 27., 33., 24.]);
        let y = conv(&x5(), &w, None, &ConvParams::default()).unwrap();
        assert_close(
            &y,
            &[1, 1, 3, 3],
            &[54., 63., 72., 99., 108., 117., 144., 153., 162.],
        );
        let p = ConvParams {
            strides: vec![2, 2],
            pads: vec![1, 1, 1, 1],
            ..Default::default()
        };
        assert_close(
            &conv(&x5(), &w, None, &p).unwrap(),
            &[1, 1, 3, 3],
            &[12., 27., 24., 63., 108., 81., 72., 117., 84.],
        );
    }

    #[test]
    fn conv_groups_bias_and_same_padding() {
        let x = f(&[1, 2, 2, 2], &[1., 2., 3., 4., 10., 20., 30., 40.]);
        let w = f(&[2, 1, 1, 1], &[1., 2.]);
        let b = f(&[2], &[0.5, -0.5]);
        let p = ConvParams {
            group: 2,
            ..Default::default()
        };
        assert_close(
            &conv(&x, &w, Some(&b), &p).unwrap(),
            &[1, 2, 2, 2],
            &[1.5, 2.5, 3.5, 4.5, 19.5, 39.5, 59.5, 79.5],
        );
        let w3 = f(&[1, 1, 3, 3], &[1.; 9]);
        let p = ConvParams {
            auto_pad: AutoPad::SameUpper,
            strides: vec![2, 2],
            ..Default::default()
        };
        assert_eq!(conv(&x5(), &w3, None, &p).unwrap().shape(), &[1, 1, 3, 3]);
        let bad = f(&[1, 3, 3, 3], &[1.; 27]);
        assert!(conv(&x5(), &bad, None, &ConvParams::default()).is_err());
    }

    #[test]
    fn conv_transpose_inverts_the_window() {
        // ONNX ConvTranspose example (1-D): x = [0, 1, 2], w = ones(2 out channels, 3).
        let x = f(&[1, 1, 3], &[0., 1., 2.]);
        let w = f(&[1, 2, 3], &[1.; 6]);
        let y = conv_transpose(&x, &w, None, &ConvTransposeParams::default()).unwrap();
        assert_close(&y, &[1, 2, 5], &[0., 1., 3., 3., 2., 0., 1., 3., 3., 2.]);
        let p = ConvTransposeParams {
            strides: vec![2],
            ..Default::default()
        };
        let y = conv_transpose(&x, &f(&[1, 1, 1], &[1.]), None, &p).unwrap();
        assert_close(&y, &[1, 1, 5], &[0., 0., 1., 0., 2.]);
    }
}

mod pool_tests {
    use super::*;

    fn x4() -> Tensor {
        f(
            &[1, 1, 4, 4],
            &(1..=16).map(|v| v as f32).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn max_pool_with_indices_and_ceil_mode() {
        let p = PoolParams {
            kernel_shape: vec![2, 2],
            strides: vec![2, 2],
            ..Default::default()
        };
        let (y, i) = max_pool(&x4(), &p).unwrap();
        assert_close(&y, &[1, 1, 2, 2], &[6., 8., 14., 16.]);
        assert_eq!(i, i64t(&[1, 1, 2, 2], &[5, 7, 13, 15]));
        let p = PoolParams {
            kernel_shape: vec![3, 3],
            strides: vec![2, 2],
            ceil_mode: true,
            ..Default::default()
        };
        assert_close(
            &max_pool(&x4(), &p).unwrap().0,
            &[1, 1, 2, 2],
            &[11., 12., 15., 16.],
        );
    }

    #[test]
    fn average_pool_padding_counts() {
        let p = PoolParams {
            kernel_shape: vec![3, 3],
            pads: vec![1, 1, 1, 1],
            ..Default::default()
        };
        let y = average_pool(&x4(), &p).unwrap();
        assert_eq!(y.shape(), &[1, 1, 4, 4]);
        assert!((y.to_f32_vec()[0] - (1. + 2. + 5. + 6.) / 4.).abs() < 1e-6);
        let p = PoolParams {
            count_include_pad: true,
            ..p
        };
        assert!((average_pool(&x4(), &p).unwrap().to_f32_vec()[0] - 14. / 9.).abs() < 1e-6);
    }

    #[test]
    fn global_pools() {
        assert_close(
            &global_pool(GlobalPool::Average, &x4()).unwrap(),
            &[1, 1, 1, 1],
            &[8.5],
        );
        assert_close(
            &global_pool(GlobalPool::Max, &x4()).unwrap(),
            &[1, 1, 1, 1],
            &[16.],
        );
        assert!(global_pool(GlobalPool::Max, &f(&[3], &[1., 2., 3.])).is_err());
    }
}

mod shape_tests {
    use super::*;

    fn x() -> Tensor {
        f(&[2, 3], &[1., 2., 3., 4., 5., 6.])
    }

    #[test]
    fn reshape_flatten_transpose() {
        assert_eq!(reshape(&x(), &[3, -1], false).unwrap().shape(), &[3, 2]);
        assert_eq!(reshape(&x(), &[0, 3], false).unwrap().shape(), &[2, 3]);
        assert!(reshape(&x(), &[4, -1], false).is_err());
        assert_eq!(
            flatten(&f(&[2, 3, 4], &[0.; 24]), 2).unwrap().shape(),
            &[6, 4]
        );
        assert_close(
            &transpose(&x(), None).unwrap(),
            &[3, 2],
            &[1., 4., 2., 5., 3., 6.],
        );
        assert!(transpose(&x(), Some(&[0, 0])).is_err());
    }

    #[test]
    fn concat_split_slice() {
        let c = concat(&[&x(), &x()], 1).unwrap();
        assert_eq!(c.shape(), &[2, 6]);
        let parts = split(&c, 1, Some(&[2, 4]), 0).unwrap();
        assert_close(&parts[0], &[2, 2], &[1., 2., 4., 5.]);
        let parts = split(&f(&[5], &[1., 2., 3., 4., 5.]), 0, None, 2).unwrap();
        assert_eq!((parts[0].shape(), parts[1].shape()), (&[3][..], &[2][..]));
        let s = slice(&x(), &[0, -1], &[1, -4], None, Some(&[1, -1])).unwrap();
        assert_close(&s, &[1, 3], &[3., 2., 1.]);
        let s = slice(&x(), &[1], &[i64::MAX], Some(&[1]), None).unwrap();
        assert_close(&s, &[2, 2], &[2., 3., 5., 6.]);
        assert!(concat(&[&x(), &f(&[2, 2], &[0.; 4])], 0).is_err());
    }

    #[test]
    fn squeeze_unsqueeze_expand_tile() {
        let u = unsqueeze(&x(), &[0, 3]).unwrap();
        assert_eq!(u.shape(), &[1, 2, 3, 1]);
        assert_eq!(squeeze(&u, None).unwrap().shape(), &[2, 3]);
        assert!(squeeze(&u, Some(&[1])).is_err());
        let e = expand(&f(&[3, 1], &[1., 2., 3.]), &[2, 1, 2]).unwrap();
        assert_close(
            &e,
            &[2, 3, 2],
            &[1., 1., 2., 2., 3., 3., 1., 1., 2., 2., 3., 3.],
        );
        let t = tile(&f(&[2], &[1., 2.]), &[3]).unwrap();
        assert_close(&t, &[6], &[1., 2., 1., 2., 1., 2.]);
    }

    #[test]
    fn pad_modes_match_onnx_examples() {
        let x = f(&[3, 2], &[1.0, 1.2, 2.3, 3.4, 4.5, 5.7]);
        let pads = [0, 2, 0, 0];
        let c = pad(&x, &pads, PadMode::Constant, None, None).unwrap();
        assert_close(
            &c,
            &[3, 4],
            &[0., 0., 1.0, 1.2, 0., 0., 2.3, 3.4, 0., 0., 4.5, 5.7],
        );
        let r = pad(&x, &pads, PadMode::Reflect, None, None).unwrap();
        assert_close(
            &r,
            &[3, 4],
            &[1.0, 1.2, 1.0, 1.2, 2.3, 3.4, 2.3, 3.4, 4.5, 5.7, 4.5, 5.7],
        );
        let e = pad(&x, &pads, PadMode::Edge, None, None).unwrap();
        assert_close(
            &e,
            &[3, 4],
            &[1.0, 1.0, 1.0, 1.2, 2.3, 2.3, 2.3, 3.4, 4.5, 4.5, 4.5, 5.7],
        );
        assert!(pad(&x, &[0, 1], PadMode::Constant, None, None).is_err());
    }

    #[test]
    fn shape_constant_of_shape_range() {
        assert_eq!(shape_of(&x(), Some(-1), None), i64t(&[1], &[3]));
        let c = constant_of_shape(&[2, 2], Some(&i64t(&[1], &[7]))).unwrap();
        assert_eq!(c, i64t(&[2, 2], &[7, 7, 7, 7]));
        let r = range(&f(&[], &[1.]), &f(&[], &[2.]), &f(&[], &[0.25])).unwrap();
        assert_close(&r, &[4], &[1., 1.25, 1.5, 1.75]);
        let r = range(&i64t(&[], &[10]), &i64t(&[], &[4]), &i64t(&[], &[-3])).unwrap();
        assert_eq!(r, i64t(&[2], &[10, 7]));
    }
}

mod index_tests {
    use super::*;

    #[test]
    fn gather_along_axes_with_negative_indices() {
        let data = f(&[3, 2], &[1.0, 1.2, 2.3, 3.4, 4.5, 5.7]);
        let idx = i64t(&[2, 2], &[0, 1, 1, -1]);
        let y = gather(&data, &idx, 0).unwrap();
        assert_close(&y, &[2, 2, 2], &[1.0, 1.2, 2.3, 3.4, 2.3, 3.4, 4.5, 5.7]);
        let y = gather(&data, &i64t(&[1], &[1]), 1).unwrap();
        assert_close(&y, &[3, 1], &[1.2, 3.4, 5.7]);
        assert!(gather(&data, &i64t(&[1], &[3]), 0).is_err());
    }

    #[test]
    fn gather_nd_and_elements() {
        let data = i64t(&[2, 2], &[0, 1, 2, 3]);
        assert_eq!(
            gather_nd(&data, &i64t(&[2, 2], &[0, 0, 1, 1]), 0).unwrap(),
            i64t(&[2], &[0, 3])
        );
        assert_eq!(
            gather_nd(&data, &i64t(&[2, 1], &[1, 0]), 0).unwrap(),
            i64t(&[2, 2], &[2, 3, 0, 1])
        );
        let d3 = i64t(&[2, 2, 2], &[0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(
            gather_nd(&d3, &i64t(&[2, 1], &[1, 0]), 1).unwrap(),
            i64t(&[2, 2], &[2, 3, 4, 5])
        );
        let ge = gather_elements(&data, &i64t(&[2, 2], &[0, 0, 1, 0]), 1).unwrap();
        assert_eq!(ge, i64t(&[2, 2], &[0, 0, 3, 2]));
    }
}

mod resize_tests {
    use super::*;

    fn x() -> Tensor {
        f(&[1, 1, 2, 2], &[1., 2., 3., 4.])
    }

    #[test]
    fn nearest_upsample_by_scales() {
        let p = ResizeParams {
            coord: CoordMode::Asymmetric,
            nearest: NearestMode::Floor,
            ..Default::default()
        };
        let y = resize(&x(), None, Some(&[1., 1., 2., 3.]), None, &p).unwrap();
        assert_close(
            &y,
            &[1, 1, 4, 6],
            &[
                1., 1., 1., 2., 2., 2., 1., 1., 1., 2., 2., 2., 3., 3., 3., 4., 4., 4., 3., 3., 3.,
                4., 4., 4.,
            ],
        );
    }

    #[test]
    fn linear_half_pixel_and_align_corners() {
        let p = ResizeParams {
            mode: ResizeMode::Linear,
            ..Default::default()
        };
        let y = resize(&x(), None, Some(&[1., 1., 2., 2.]), None, &p).unwrap();
        // ONNX resize_upsample_scales_linear expected output.
        assert_close(
            &y,
            &[1, 1, 4, 4],
            &[
                1., 1.25, 1.75, 2., 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3., 3.25, 3.75, 4.,
            ],
        );
        let p = ResizeParams {
            mode: ResizeMode::Linear,
            coord: CoordMode::AlignCorners,
            ..Default::default()
        };
        let y = resize(&x(), None, None, Some(&[1, 1, 3, 3]), &p).unwrap();
        assert_close(&y, &[1, 1, 3, 3], &[1., 1.5, 2., 2., 2.5, 3., 3., 3.5, 4.]);
        assert!(resize(&x(), None, None, None, &p).is_err());
    }
}
