//! The chip's memories as host byte arrays: SBUF and PSUM are flat (`partitions x partition
//! bytes`, partition-major), HBM is sparse (pages allocated on first write; never-written bytes
//! read as zero). All geometry comes from `tahoma_isa::machine`.

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
    /// The whole memory as one host slice, when it is stored flat (SBUF, PSUM): the access
    /// layer's fast paths index it directly instead of asking per run or per element.
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
            bytes: vec![0; (machine::PARTITIONS * partition_bytes) as usize],
        }
    }
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

/// Host page size of the sparse HBM (an emulator implementation choice, not a chip parameter).
const PAGE_BITS: u32 = 16;
const PAGE: u64 = 1 << PAGE_BITS;

/// Sparse HBM: `machine::HBM_BYTES` addressable, pages allocated on write. The page table is
/// a flat vector indexed by page number (one pointer per page), so an access costs an index,
/// not a hash lookup: strided DMAs touch HBM element by element.
pub struct Hbm {
    pages: Vec<Option<Box<[u8]>>>,
    resident: u64,
}

impl Default for Hbm {
    fn default() -> Self {
        let n = machine::HBM_BYTES.div_ceil(PAGE) as usize;
        Hbm {
            pages: std::iter::repeat_with(|| None).take(n).collect(),
            resident: 0,
        }
    }
}

impl Hbm {
    /// Bytes of host memory in use.
    pub fn resident_bytes(&self) -> u64 {
        self.resident * PAGE
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
}

impl ByteMem for Hbm {
    fn size(&self) -> u64 {
        machine::HBM_BYTES
    }
    fn slice(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let (page, off) = (addr >> PAGE_BITS, (addr % PAGE) as usize);
        if off + len > PAGE as usize {
            return None;
        }
        self.page(page).map(|p| &p[off..off + len])
    }
    fn slice_mut(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
        let (page, off) = (addr >> PAGE_BITS, (addr % PAGE) as usize);
        if off + len > PAGE as usize || addr.checked_add(len as u64)? > machine::HBM_BYTES {
            return None;
        }
        Some(&mut self.page_mut(page)[off..off + len])
    }
    fn read_into(&self, addr: u64, out: &mut [u8]) {
        let mut done = 0usize;
        while done < out.len() {
            let a = addr + done as u64;
            let (page, off) = (a >> PAGE_BITS, (a % PAGE) as usize);
            let n = (PAGE as usize - off).min(out.len() - done);
            match self.page(page) {
                Some(p) => out[done..done + n].copy_from_slice(&p[off..off + n]),
                None => out[done..done + n].fill(0),
            }
            done += n;
        }
    }
    fn write_from(&mut self, addr: u64, data: &[u8]) {
        let mut done = 0usize;
        while done < data.len() {
            let a = addr + done as u64;
            let (page, off) = (a >> PAGE_BITS, (a % PAGE) as usize);
            let n = (PAGE as usize - off).min(data.len() - done);
            self.page_mut(page)[off..off + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
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
        Memories {
            sbuf: Flat::new(machine::SBUF_PARTITION_BYTES),
            psum: Flat::new(machine::PSUM_PARTITION_BYTES),
            hbm: Hbm::default(),
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
