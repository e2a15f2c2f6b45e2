# y = softmax(x) along each row of x[128,512] fp32; one row per partition.
#
#   m[p]    = -max_j x[p,j]                 vector: TENSOR_REDUCE max, negated
#   e[p,j]  = exp(x[p,j] + m[p]),  s[p] = sum_j e[p,j]
#                                           scalar: ACTIVATE exp with per-partition bias and
#                                           the free add-reduce into acc
#   y[p,j]  = e[p,j] / s[p]                 vector: TENSOR_SCALAR divide by a per-partition scalar
#
# SBUF layout (bytes per partition): x @0x0 (2 KiB), e @0x800, y @0x1000, m @0x1800, s @0x1804.
.input  "x" fp32 [128,512] @0x0
.output "y" fp32 [128,512] @0x40000

.stream dma0
.op "load_x"
    DMA_COPY src=hbm:fp32[0,128;512]@0x0(512:1) dst=sbuf:fp32[0,128]@0x0(512:1) queue=0 signal(s1+=1)
    END

.stream vector
.op "row_max"
    TENSOR_REDUCE dst=sbuf:fp32[0,128]@0x1800(1:1) src=sbuf:fp32[0,128]@0x0(512:1) op=max axes=1 negate=true wait(s1>=1) signal(s2+=1)
.op "normalize"
    TENSOR_SCALAR dst=sbuf:fp32[0,128]@0x1000(512:1) src=sbuf:fp32[0,128]@0x800(512:1) scalar0=sbuf:fp32[0,128]@0x1804(1:1) op0=divide wait(s3>=1) signal(s4+=1)
    END

.stream scalar
.op "exp_sum"
    ACTIVATE dst=sbuf:fp32[0,128]@0x800(512:1) src=sbuf:fp32[0,128]@0x0(512:1) bias=sbuf:fp32[0,128]@0x1800(1:1) acc=sbuf:fp32[0,128]@0x1804(1:1) func=exp accumulate=true wait(s2>=1) signal(s3+=1)
    END

.stream dma1
.op "store_y"
    DMA_COPY src=sbuf:fp32[0,128]@0x1000(512:1) dst=hbm:fp32[0,128;512]@0x40000(512:1) queue=1 wait(s4>=1)
    END
