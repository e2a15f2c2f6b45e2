# c[128,128] = a[128,512] . b[512,128] in bf16, accumulated in fp32 PSUM.
#
# The tensor engine computes dst[M,N] (+)= stationary[K,M]^T . moving[K,N] with the contraction
# dim K on the 128 SBUF partitions. K = 512 does not fit in one pass, so it is split into four
# K-tiles of 128 whose products accumulate in one PSUM bank (`accumulate=false` on the first
# MATMUL starts the accumulation group, `true` on the others adds to it).
#
# Memory map (HBM byte addresses):
.input  "a" bf16 [128,512] @0x0
.input  "b" bf16 [512,128] @0x20000
.output "c" fp32 [128,128] @0x40000

# Queue 0 loads a transposed: SBUF partition k holds a[:, k] for the four K-tiles, i.e.
# sbuf[k, kt*128 + m] = a[m, kt*128 + k]. In HBM, consecutive partitions are 1 element apart
# (partition stride 1), K-tiles 128 elements apart and rows m 512 elements apart.
.stream dma0
.op "load_a"
    DMA_COPY src=hbm:bf16[0,128;1]@0x0(4:128,128:512) dst=sbuf:bf16[0,128]@0x0(4:128,128:1) queue=0 signal(s1+=1)
    END

# Queue 1 loads b as four [128 x 128] K-tiles: sbuf[k, 0x400/2 + kt*128 + n] = b[kt*128 + k, n].
.stream dma1
.op "load_b"
    DMA_COPY src=hbm:bf16[0,128;128]@0x20000(4:16384,128:1) dst=sbuf:bf16[0,128]@0x400(4:128,128:1) queue=1 signal(s2+=1)
    END

# The tensor engine waits for both loads, then runs LOAD_STATIONARY + MATMUL per K-tile.
# Each K-tile of a^T is 128 bf16 = 256 bytes per partition; b's tiles start at byte 0x400.
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

# Queue 2 writes the fp32 result straight from PSUM to HBM once the last MATMUL is done:
# partition m of PSUM is row m of c.
.stream dma2
.op "store_c"
    DMA_COPY src=psum:fp32[0,128]@0x0(128:1) dst=hbm:fp32[0,128;128]@0x40000(128:1) queue=2 wait(s3>=1)
    END
