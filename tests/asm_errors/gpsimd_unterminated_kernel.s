# expect: E2101 at 3:1
# A `.kernel` block runs to `.endkernel`; this one never ends.
.kernel 0 ops=1
    function %neg(f32) -> f32 {
    block0(v0: f32):
        v1 = fneg v0
        return v1
    }
