//! The chip's memories as host byte arrays: SBUF and PSUM are flat (`partitions x partition
//! bytes`, partition-major); HBM is flat over the program's footprint (the bytes its image, I/O
//! and DMAs can touch, allocated when the emulator is built) and sparse past it (pages allocated
//! on first write). Never-written bytes read as zero. Every flat array is touched when it is
//! allocated, so a run takes no page faults for it. All geometry comes from `tahoma_isa::machine`.

use std::cell::RefCell;
use tahoma_isa::{machine, Mem};

/// Byte-addressed memory the access layer reads and writes.
pub trait ByteMem {
    /// Size in bytes.
    fn size(&self) -> u64;
    /// `len` bytes at `addr` as one host slice, when they are stored contiguously.
    fn slice(&self, addr: u64, len: usize) -> Option<&[u8]>;
    /// Mutable form of [`ByteMem::slice`]; may allocate backing storage.
    fn slice_mut(&mut self, addr: u64, len: usize) -> Option<&mut [u8]>;
    /// Copies bytes `[addr, addr + out.len())` into `out` (caller checked the range).
    fn read_into(&self, addr: u64, out: &mut [u8]);
    /// Copies `data` to `[addr, addr + data.len())` (caller checked the range).
    fn write_from(&mut self, addr: u64, data: &[u8]);
    /// The bytes `[0, len)` of the memory stored as one host slice (all of SBUF and PSUM, the
    /// footprint of HBM): the access layer's fast paths index it directly, instead of asking per
    /// run or per element, for an access that lies within it.
    fn flat(&self) -> Option<&[u8]> {
        None
    }
    /// Mutable form of [`ByteMem::flat`].
    fn flat_mut(&mut self) -> Option<&mut [u8]> {
        None
    }
}

/// A flat on-chip memory of `partitions x partition_bytes` bytes.
pub struct Flat {
    pub partition_bytes: u64,
    pub bytes: Vec<u8>,
}

impl Flat {
    pub fn new(partition_bytes: u64) -> Flat {
        Flat {
            partition_bytes,
            bytes: zeroed(machine::PARTITIONS * partition_bytes),
        }
    }
}

/// `n` zero bytes, written once so the host maps their pages now rather than on first use
/// inside a run (a fresh allocation is zero-filled lazily, one page fault per page).
fn zeroed(n: u64) -> Vec<u8> {
    let mut v = vec![0u8; n as usize];
    // black_box: the optimiser may not drop the store as redundant with the zeroed allocation.
    std::hint::black_box(&mut v).fill(0);
    v
}

impl ByteMem for Flat {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
    #[inline]
    fn slice(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let a = usize::try_from(addr).ok()?;
        self.bytes.get(a..a.checked_add(len)?)
    }
    #[inline]
    fn slice_mut(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
        let a = usize::try_from(addr).ok()?;
        self.bytes.get_mut(a..a.checked_add(len)?)
    }
    fn read_into(&self, addr: u64, out: &mut [u8]) {
        if let Some(s) = self.slice(addr, out.len()) {
            out.copy_from_slice(s);
        }
    }
    fn write_from(&mut self, addr: u64, data: &[u8]) {
        if let Some(s) = self.slice_mut(addr, data.len()) {
            s.copy_from_slice(data);
        }
    }
    fn flat(&self) -> Option<&[u8]> {
        Some(&self.bytes)
    }
    fn flat_mut(&mut self) -> Option<&mut [u8]> {
        Some(&mut self.bytes)
    }
}

/// Host page size of the sparse part of HBM (an emulator implementation choice, not a chip
/// parameter).
const PAGE_BITS: u32 = 16;
const PAGE: u64 = 1 << PAGE_BITS;

/// Most bytes of HBM stored flat (a host memory limit, not a property of the chip): a program
/// whose footprint reaches past it keeps the rest in pages.
pub const MAX_FLAT_HBM: u64 = 1 << 32;

/// HBM: `machine::HBM_BYTES` addressable; bytes `[0, flat.len())` stored flat, the rest in
/// pages allocated on write. The page table is a flat vector indexed by page number (one pointer
/// per page), so an access past the flat part costs an index, not a hash lookup.
pub struct Hbm {
    flat: Vec<u8>,
    pages: Vec<Option<Box<[u8]>>>,
    resident: u64,
}

impl Default for Hbm {
    fn default() -> Self {
        Hbm::with_flat(0)
    }
}

impl Hbm {
    /// An HBM whose first `footprint` bytes (at most [`MAX_FLAT_HBM`]) are stored flat.
    pub fn with_flat(footprint: u64) -> Hbm {
        let n = machine::HBM_BYTES.div_ceil(PAGE) as usize;
        Hbm {
            flat: zeroed(footprint.min(MAX_FLAT_HBM).min(machine::HBM_BYTES)),
            pages: std::iter::repeat_with(|| None).take(n).collect(),
            resident: 0,
        }
    }
    /// Bytes of host memory in use.
    pub fn resident_bytes(&self) -> u64 {
        self.flat.len() as u64 + self.resident * PAGE
    }
    fn flat_end(&self) -> u64 {
        self.flat.len() as u64
    }
    #[inline]
    fn page(&self, page: u64) -> Option<&[u8]> {
        self.pages.get(page as usize)?.as_deref()
    }
    fn page_mut(&mut self, page: u64) -> &mut [u8] {
        let slot = &mut self.pages[page as usize];
        if slot.is_none() {
            self.resident += 1;
        }
        slot.get_or_insert_with(|| vec![0u8; PAGE as usize].into_boxed_slice())
    }
    /// Bytes from `a` to the end of the storage unit (flat part or page) that holds `a`.
    fn unit_left(&self, a: u64) -> u64 {
        if a < self.flat_end() {
            self.flat_end() - a
        } else {
            PAGE - a % PAGE
        }
    }
}

impl ByteMem for Hbm {
    fn size(&self) -> u64 {
        machine::HBM_BYTES
    }
    #[inline]
    fn slice(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let end = addr.checked_add(len as u64)?;
        if end <= self.flat_end() {
            return self.flat.get(addr as usize..end as usize);
        }
        let (page, off) = (addr >> PAGE_BITS, (addr % PAGE) as usize);
        if addr < self.flat_end() || off + len > PAGE as usize {
            return None;
        }
        self.page(page).map(|p| &p[off..off + len])
    }
    fn slice_mut(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
        let end = addr.checked_add(len as u64)?;
        if end <= self.flat_end() {
            return self.flat.get_mut(addr as usize..end as usize);
        }
        let (page, off) = (addr >> PAGE_BITS, (addr % PAGE) as usize);
        if addr < self.flat_end() || off + len > PAGE as usize || end > machine::HBM_BYTES {
            return None;
        }
        Some(&mut self.page_mut(page)[off..off + len])
    }
    fn read_into(&self, addr: u64, out: &mut [u8]) {
        let mut done = 0usize;
        while done < out.len() {
            let a = addr + done as u64;
            let n = (self.unit_left(a) as usize).min(out.len() - done);
            let dst = &mut out[done..done + n];
            match self.slice(a, n) {
                Some(s) => dst.copy_from_slice(s),
                None => dst.fill(0),
            }
            done += n;
        }
    }
    fn write_from(&mut self, addr: u64, data: &[u8]) {
        let mut done = 0usize;
        while done < data.len() {
            let a = addr + done as u64;
            let n = (self.unit_left(a) as usize).min(data.len() - done);
            if let Some(s) = self.slice_mut(a, n) {
                s.copy_from_slice(&data[done..done + n]);
            }
            done += n;
        }
    }
    fn flat(&self) -> Option<&[u8]> {
        Some(&self.flat)
    }
    fn flat_mut(&mut self) -> Option<&mut [u8]> {
        Some(&mut self.flat)
    }
}

/// All memories of one core.
pub struct Memories {
    pub sbuf: Flat,
    pub psum: Flat,
    pub hbm: Hbm,
    /// Host buffers of finished instructions, reused for the next ones' operand values (see
    /// [`Memories::spare`]): no fresh allocation, zero-fill or page fault per instruction.
    spare: RefCell<Vec<Vec<f32>>>,
    /// The byte buffer of same-dtype copies, reused likewise.
    pub(crate) spare_bytes: Vec<u8>,
}

/// Most buffers [`Memories::recycle`] keeps (an instruction holds at most a handful).
const SPARE_BUFFERS: usize = 8;

impl Default for Memories {
    fn default() -> Self {
        Memories::new()
    }
}

impl Memories {
    pub fn new() -> Memories {
        Memories::with_hbm_footprint(0)
    }

    /// Memories whose HBM stores its first `footprint` bytes flat (see [`Hbm::with_flat`]).
    pub fn with_hbm_footprint(footprint: u64) -> Memories {
        Memories {
            sbuf: Flat::new(machine::SBUF_PARTITION_BYTES),
            psum: Flat::new(machine::PSUM_PARTITION_BYTES),
            hbm: Hbm::with_flat(footprint),
            spare: RefCell::new(Vec::new()),
            spare_bytes: Vec::new(),
        }
    }

    /// An empty f32 buffer for `n` values, recycled from an earlier instruction when one is
    /// spare: the smallest that holds `n`, else the largest (which then grows once).
    pub fn spare(&self, n: usize) -> Vec<f32> {
        let mut spare = self.spare.borrow_mut();
        let fits = (0..spare.len())
            .filter(|&i| spare[i].capacity() >= n)
            .min_by_key(|&i| spare[i].capacity());
        let pick = fits.or_else(|| (0..spare.len()).max_by_key(|&i| spare[i].capacity()));
        let mut v = pick.map(|i| spare.swap_remove(i)).unwrap_or_default();
        v.clear();
        v.reserve(n);
        v
    }

    /// Hands a buffer back for [`Memories::spare`] to reuse (keeping the largest ones).
    pub fn recycle(&self, v: Vec<f32>) {
        let mut spare = self.spare.borrow_mut();
        if v.capacity() == 0 {
            return;
        }
        if spare.len() < SPARE_BUFFERS {
            spare.push(v);
        } else if let Some(small) = (0..spare.len()).min_by_key(|&i| spare[i].capacity()) {
            if spare[small].capacity() < v.capacity() {
                spare[small] = v;
            }
        }
    }
}

/// Bytes per partition of an on-chip memory (HBM has no partitions: its whole size).
pub fn partition_bytes(mem: Mem) -> u64 {
    match mem {
        Mem::Sbuf => machine::SBUF_PARTITION_BYTES,
        Mem::Psum => machine::PSUM_PARTITION_BYTES,
        Mem::Hbm => machine::HBM_BYTES,
    }
}

#[cfg(test)]
mod tests {
    //! HBM's flat part against the all-paged HBM, across the boundary between the two.
    use super::*;

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn flat_and_paged_hbm_agree_across_the_boundary() {
        let flat_len = PAGE + 1000; // the boundary inside a page
        let (mut mixed, mut paged) = (Hbm::with_flat(flat_len), Hbm::default());
        // Writes below, across and past the boundary, and across a page edge.
        for (addr, len, seed) in [
            (10, 500, 1),
            (flat_len - 300, 900, 2),
            (flat_len + 20, 3000, 3),
            (3 * PAGE - 7, 20, 4),
        ] {
            let data = pattern(len, seed);
            mixed.write_from(addr, &data);
            paged.write_from(addr, &data);
        }
        let (mut a, mut b) = (vec![0u8; 4 * PAGE as usize], vec![0u8; 4 * PAGE as usize]);
        mixed.read_into(0, &mut a);
        paged.read_into(0, &mut b);
        assert!(a == b);
        assert_eq!(
            mixed.slice(flat_len - 4, 8),
            None,
            "straddles: no one slice"
        );
        assert_eq!(mixed.slice(flat_len - 4, 4), paged.slice(flat_len - 4, 4));
        assert_eq!(
            mixed.slice(flat_len + 20, 16),
            Some(&pattern(16, 3)[..]),
            "past the boundary: from a page"
        );
        assert_eq!(mixed.flat().map(<[u8]>::len), Some(flat_len as usize));
    }
}
