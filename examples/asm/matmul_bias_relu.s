# y[128,128] = relu(a[128,512] . b[512,128] + bias[128, broadcast over columns]).
#
# The same K-tiled matmul as matmul.s; the bias add and the relu are applied while the scalar
# engine evacuates PSUM to SBUF: ACTIVATE computes f(x * scale + bias) with a per-partition
# bias (row m of the result lives on partition m, so bias[m] is one value per partition).
.input  "a"    bf16 [128,512] @0x0
.input  "b"    bf16 [512,128] @0x20000
.input  "bias" fp32 [128]     @0x40000
.output "y"    fp32 [128,128] @0x50000

.stream dma0
.op "load_a"
    DMA_COPY src=hbm:bf16[0,128;1]@0x0(4:128,128:512) dst=sbuf:bf16[0,128]@0x0(4:128,128:1) queue=0 signal(s1+=1)
    END

.stream dma1
.op "load_b"
    DMA_COPY src=hbm:bf16[0,128;128]@0x20000(4:16384,128:1) dst=sbuf:bf16[0,128]@0x400(4:128,128:1) queue=1 signal(s2+=1)
    END

# The bias: one fp32 per partition, at SBUF byte 0x800.
.stream dma2
.op "load_bias"
    DMA_COPY src=hbm:fp32[0,128;1]@0x40000(1:1) dst=sbuf:fp32[0,128]@0x800(1:1) queue=2 signal(s4+=1)
    END

.stream tensor
.op "matmul"
    LOAD_STATIONARY src=sbuf:bf16[0,128]@0x0(128:1) wait(s1>=1) wait(s2>=1)
    MATMUL moving=sbuf:bf16[0,128]@0x400(128:1) dst=psum:fp32[0,128]@0x0(128:1) accumulate=false
    LOAD_STATIONARY src=sbuf:bf16[0,128]@0x100(128:1)
    MATMUL moving=sbuf:bf16[0,128]@0x500(128:1) dst=psum:fp32[0,128]@0x0(128:1) accumulate=true
    LOAD_STATIONARY src=sbuf:bf16[0,128]@0x200(128:1)
    MATMUL moving=sbuf:bf16[0,128]@0x600(128:1) dst=psum:fp32[0,128]@0x0(128:1) accumulate=true
    LOAD_STATIONARY src=sbuf:bf16[0,128]@0x300(128:1)
    MATMUL moving=sbuf:bf16[0,128]@0x700(128:1) dst=psum:fp32[0,128]@0x0(128:1) accumulate=true signal(s3+=1)
    END

# Bias + relu while evacuating PSUM into SBUF (fp32 at byte 0x1000), then signal the store.
.stream scalar
.op "bias_relu"
    ACTIVATE dst=sbuf:fp32[0,128]@0x1000(128:1) src=psum:fp32[0,128]@0x0(128:1) bias=sbuf:fp32[0,128]@0x800(1:1) func=relu wait(s3>=1) wait(s4>=1) signal(s5+=1)
    END

.stream dma3
.op "store_y"
    DMA_COPY src=sbuf:fp32[0,128]@0x1000(128:1) dst=hbm:fp32[0,128;128]@0x50000(128:1) queue=3 wait(s5>=1)
    END
