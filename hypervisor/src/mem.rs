//! Memory: the functions the prebuilt crates expect from the platform
//! (`memcpy` & co., unwinding symbols), the heap, and the global frame
//! allocator.

use core::arch::asm;
use hvcore::frames::{FrameAllocator, Zone};
use hvcore::lent::LentFrames;
use hvcore::{PAGE_SIZE, Result, err};
use talc::TalcLock;
use talc::source::Claim;
use warden_bare_rt::copy_words;

/// Heap available before the frame allocator exists.
const BOOT_HEAP_SIZE: usize = 4 << 20;
static mut BOOT_HEAP: [u8; BOOT_HEAP_SIZE] = [0; BOOT_HEAP_SIZE];

#[global_allocator]
static HEAP: TalcLock<spin::mutex::SpinMutex<()>, Claim> =
    // SAFETY: BOOT_HEAP is used by nothing but the allocator.
    TalcLock::new(unsafe { Claim::array(&raw mut BOOT_HEAP) });

/// Give the heap `size` more bytes at `base`.
///
/// # Safety
/// `[base, base + size)` must be mapped, writable, and used by nothing else, forever.
pub unsafe fn extend_heap(base: u64, size: u64) -> Result<()> {
    // SAFETY: per the contract the region belongs to the heap from now on.
    match unsafe { HEAP.lock().claim(base as *mut u8, size as usize) } {
        Some(_) => Ok(()),
        None => Err(err!(
            NoMemory,
            "heap refused the region {base:#x}+{size:#x}"
        )),
    }
}

static FRAMES: spin::Mutex<Option<FrameAllocator>> = spin::Mutex::new(None);

/// Install the frame allocator.
pub fn set_frame_allocator(fa: FrameAllocator) {
    *FRAMES.lock() = Some(fa);
}

/// Allocate `count` frames in `zone` without clearing them.
pub fn alloc_frames_uninit(count: u64, zone: Zone) -> Result<u64> {
    FRAMES
        .lock()
        .as_mut()
        .ok_or_else(|| err!(NoMemory, "frame allocator not initialised"))?
        .alloc(count, 1, zone)
}

/// Allocate `count` frames aligned to `align` frames in `zone`, uncleared.
pub fn alloc_frames_aligned(count: u64, align: u64, zone: Zone) -> Result<u64> {
    FRAMES
        .lock()
        .as_mut()
        .ok_or_else(|| err!(NoMemory, "frame allocator not initialised"))?
        .alloc(count, align, zone)
}

/// Allocate `count` zeroed frames in `zone` (identity-mapped memory).
pub fn alloc_frames(count: u64, zone: Zone) -> Result<u64> {
    let addr = alloc_frames_uninit(count, zone)?;
    // SAFETY: the frames were just allocated to us and RAM is identity-mapped.
    unsafe { core::ptr::write_bytes(addr as *mut u8, 0, (count * PAGE_SIZE) as usize) };
    Ok(addr)
}

/// Free frames previously allocated.
pub fn free_frames(addr: u64, count: u64) -> Result<()> {
    FRAMES
        .lock()
        .as_mut()
        .ok_or_else(|| err!(NoMemory, "frame allocator not initialised"))?
        .free(addr, count)
}

/// Give back boot-time reservations no longer needed (see
/// [`FrameAllocator::release`]); returns the frames freed.
pub fn release_boot_memory(
    release: &[hvcore::memmap::PhysRange],
    keep: &[hvcore::memmap::PhysRange],
) -> u64 {
    FRAMES
        .lock()
        .as_mut()
        .map_or(0, |f| f.release(release, keep))
}

/// Free frames and their total.
pub fn frame_stats() -> (u64, u64) {
    FRAMES
        .lock()
        .as_ref()
        .map_or((0, 0), |f| (f.free_frames(), f.total_frames()))
}

// ---- what the prebuilt core/alloc link against ----
// (memcpy, memmove, memset, memcmp, bcmp: the `warden-bare-rt` crate)

/// Referenced by the prebuilt `alloc` even with panic=abort; never called.
#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_Resume() -> ! {
    crate::arch::halt_forever()
}

/// Referenced by the prebuilt crates even with panic=abort; never called.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

// ---- host memory for domains (hvcore::p2m::HostMem)

static MAX_MFN: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The frames [`FrameMem`] has lent to domains (set up with the highest RAM
/// frame, before any domain exists).
static LENT: spin::Once<LentFrames> = spin::Once::new();

/// Record the highest RAM frame number (for XENMEM_maximum_ram_page,
/// physinfo) and size the set of frames lent to domains (one bit per frame).
pub fn set_max_mfn(mfn: u64) {
    MAX_MFN.store(mfn, core::sync::atomic::Ordering::Relaxed);
    LENT.call_once(|| LentFrames::new(mfn.saturating_add(1)));
}

/// Frames from the global allocator, reached through the identity map. Each
/// access is checked against the frames lent (release builds too): the
/// memory safety `HostMem` promises does not depend on its callers.
pub struct FrameMem;

impl FrameMem {
    /// Whether `len` bytes at `pa` lie within one lent frame; reports a
    /// refused access (a hypervisor bug: callers pass only their frames).
    fn lent(&self, what: &str, pa: u64, len: usize) -> bool {
        let ok = LENT.get().is_some_and(|l| l.covers(pa, len));
        if !ok {
            log::error!(
                "host memory: {what} of {len} bytes at {pa:#x} refused: not within a frame lent to a domain"
            );
        }
        ok
    }
}

// SAFETY: every access, zeroing and free is first checked to lie within one
// frame this allocator lent and has not taken back (`lent`); such a frame is
// RAM, identity-mapped, and used by nothing but the domain it was lent for.
unsafe impl hvcore::p2m::HostMem for FrameMem {
    fn alloc_frame(&self) -> Option<u64> {
        let lent = LENT.get()?;
        let pa = alloc_frames(1, Zone::Any).ok()?;
        if !lent.insert(pa) {
            log::error!("host memory: frame {pa:#x} is beyond the highest RAM frame or lent twice");
            return None;
        }
        Some(pa)
    }

    fn free_frame(&self, pa: u64) {
        if !LENT.get().is_some_and(|l| l.remove(pa)) {
            log::error!("host memory: free of frame {pa:#x} refused: not lent to a domain");
            return;
        }
        if let Err(e) = free_frames(pa, 1) {
            log::error!("freeing frame {pa:#x}: {e}");
        }
    }

    fn read(&self, pa: u64, buf: &mut [u8]) {
        if !self.lent("read", pa, buf.len()) {
            buf.fill(0);
            return;
        }
        // `pa..pa+len` lies in a lent frame (checked above); RAM is
        // identity-mapped. The copy is opaque to the compiler (an `asm!`
        // block, see `copy_words`), so memory a guest writes concurrently is
        // read without the compiler assuming anything about it.
        // SAFETY: a lent, identity-mapped range (see above); `buf` is ours.
        unsafe { copy_words(buf.as_mut_ptr(), pa as *const u8, buf.len()) };
    }

    fn write(&self, pa: u64, buf: &[u8]) {
        if !self.lent("write", pa, buf.len()) {
            return;
        }
        // SAFETY: as for `read`, with the frame as destination.
        unsafe { copy_words(pa as *mut u8, buf.as_ptr(), buf.len()) };
    }

    fn zero_frame(&self, pa: u64) {
        if !self.lent("zeroing", pa, 1) {
            return;
        }
        // SAFETY: the frame containing `pa` is lent (checked above),
        // identity-mapped: its PAGE_SIZE / 8 words are zeroed.
        unsafe {
            asm!("rep stosq", inout("rcx") PAGE_SIZE / 8 => _, inout("rdi") (pa & !(PAGE_SIZE - 1)) as *mut u8 => _,
                 in("rax") 0u64, options(nostack, preserves_flags));
        }
    }

    fn free_frames(&self) -> u64 {
        frame_stats().0
    }

    fn total_frames(&self) -> u64 {
        frame_stats().1
    }

    fn max_mfn(&self) -> u64 {
        MAX_MFN.load(core::sync::atomic::Ordering::Relaxed)
    }

    fn cmpxchg_u32(&self, pa: u64, old: u32, new: u32) -> u32 {
        if !pa.is_multiple_of(4) || !self.lent("cmpxchg", pa, 4) {
            // Refused: report a value that never equals what was expected.
            return !old;
        }
        let found: u32;
        // SAFETY: an aligned 4-byte word in a lent, identity-mapped frame
        // (checked above); `lock cmpxchg` is atomic against the guest's
        // accesses to the same word.
        unsafe {
            asm!("lock cmpxchg dword ptr [{p}], {n:e}", p = in(reg) pa, n = in(reg) new,
                 inout("eax") old => found, options(nostack));
        }
        found
    }

    fn fetch_or_u64(&self, pa: u64, v: u64) -> u64 {
        match self.atomic_word(pa) {
            Some(w) => w.fetch_or(v, core::sync::atomic::Ordering::SeqCst),
            None => 0,
        }
    }

    fn fetch_and_u64(&self, pa: u64, v: u64) -> u64 {
        match self.atomic_word(pa) {
            Some(w) => w.fetch_and(v, core::sync::atomic::Ordering::SeqCst),
            None => 0,
        }
    }
}

impl FrameMem {
    /// The u64 at `pa` as an atomic, if it is 8-byte aligned within a lent frame.
    fn atomic_word(&self, pa: u64) -> Option<&'static core::sync::atomic::AtomicU64> {
        if !pa.is_multiple_of(8) || !self.lent("atomic update", pa, 8) {
            return None;
        }
        // The word is aligned and in a lent frame (checked above): identity-mapped
        // RAM kept allocated while the caller holds the domain's memory lock.
        // SAFETY: valid, aligned, live (above); every access through it is atomic.
        let word = unsafe { core::sync::atomic::AtomicU64::from_ptr(pa as *mut u64) };
        Some(word)
    }
}
