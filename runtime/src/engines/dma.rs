//! DMA engine: DMA_COPY moves src to dst element by element in access order between any of
//! HBM, SBUF and PSUM (PSUM only as a source). Same-dtype copies move bytes exactly; others
//! convert through fp32 with round-to-nearest-even on write. DMA_GATHER copies, into each
//! partition of dst, the HBM table row its index names (an indirect DMA), as DMA_COPY would.

use super::Effects;
use crate::access::{copy_raw, gather, write_plan, Plan};
use crate::error::Fault;
use crate::memory::Memories;
use tahoma_isa::costs::dma_bytes;
use tahoma_isa::{DmaCopy, DmaGather, Mem};

pub fn dma_copy(mem: &mut Memories, x: &DmaCopy) -> Result<Effects, Fault> {
    if x.dst.mem == Mem::Psum {
        return Err(Fault::new("E4007", "dst.mem", "DMA cannot write PSUM"));
    }
    let sp = Plan::of_dma(&x.src).map_err(|f| f.within("src"))?;
    let dp = Plan::of_dma(&x.dst).map_err(|f| f.within("dst"))?;
    if sp.count != dp.count {
        return Err(Fault::new(
            "E4007",
            "dst",
            format!("{} elements but src has {}", dp.count, sp.count),
        ));
    }
    if x.src.dtype == x.dst.dtype {
        copy_raw(mem, &sp, &dp);
    } else {
        let mut v = mem.spare(sp.count);
        gather(mem.mem(sp.mem), &sp, &mut v);
        write_plan(mem, &dp, &v).map_err(|f| f.within("dst"))?;
        mem.recycle(v);
    }
    let mut hbm = 0;
    if x.src.mem == Mem::Hbm {
        hbm += dma_bytes(&x.src);
    }
    if x.dst.mem == Mem::Hbm {
        hbm += dma_bytes(&x.dst);
    }
    Ok(Effects {
        hbm_bytes: hbm,
        ..Effects::default()
    })
}

pub fn dma_gather(mem: &mut Memories, x: &DmaGather) -> Result<Effects, Fault> {
    let index = super::read(mem, "index", &x.index)?;
    let esize = x.src.dtype.size_bytes();
    let mut hbm = 0;
    for (p, &r) in index.iter().enumerate() {
        if !(r >= 0.0 && r < x.rows as f32 && r.fract() == 0.0) {
            return Err(Fault::new(
                "E4008",
                "index",
                format!("partition {p} asks for row {r} of a {}-row table", x.rows),
            ));
        }
        let mut src = x.src;
        src.offset += r as u64 * x.src.part_stride as u64 * esize;
        let mut dst = x.dst;
        dst.part_start += p as u64;
        dst.part_count = 1;
        dma_copy(
            mem,
            &DmaCopy {
                sync: x.sync,
                src,
                dst,
                queue: x.queue,
            },
        )?;
        hbm += dma_bytes(&src);
    }
    Ok(Effects {
        hbm_bytes: hbm,
        ..Effects::default()
    })
}
