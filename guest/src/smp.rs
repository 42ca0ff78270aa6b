//! Starting the domain's other vCPUs (VCPUOP_initialise + VCPUOP_up).

use alloc::boxed::Box;
use core::sync::atomic::{AtomicPtr, Ordering};
use warden_abi::vcpu::{HVM_MODE_64B, HvmContext, MAX_VCPUS};

/// Stack of a secondary vCPU.
pub const STACK: usize = 32 * 1024;

type Entry = fn(vcpu: u32) -> !;
static ENTRIES: [AtomicPtr<()>; MAX_VCPUS as usize] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_VCPUS as usize];

extern "C" fn ap_entry(vcpu: u64) -> ! {
    crate::events::load_tables();
    let v = vcpu as u32;
    // The program may have registered the vcpu_info already (EINVAL then).
    match crate::events::register(v) {
        Ok(()) | Err(crate::Errno(warden_abi::errno::EINVAL)) => {}
        Err(e) => crate::println!("vCPU {v}: cannot register vcpu_info: {e}"),
    }
    let f = ENTRIES[(v as usize).min(MAX_VCPUS as usize - 1)].load(Ordering::Acquire);
    if f.is_null() {
        crate::exit::crash();
    }
    // SAFETY: only `start` stores here, an `Entry`.
    let f: Entry = unsafe { core::mem::transmute::<*mut (), Entry>(f) };
    f(v)
}

fn read_cr(which: u8) -> u64 {
    let v: u64;
    // SAFETY: reading control registers in ring 0 has no side effects.
    unsafe {
        match which {
            0 => core::arch::asm!("mov {}, cr0", out(reg) v),
            3 => core::arch::asm!("mov {}, cr3", out(reg) v),
            _ => core::arch::asm!("mov {}, cr4", out(reg) v),
        }
    }
    v
}

fn read_efer() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: EFER exists on every x86-64 CPU; the hypervisor emulates the read.
    unsafe { core::arch::asm!("rdmsr", in("ecx") 0xC000_0080u32, out("eax") lo, out("edx") hi) };
    ((hi as u64) << 32) | lo as u64
}

/// Start vCPU `vcpu` running `f(vcpu)` on a new stack, with this vCPU's
/// paging (same page tables, CR0, CR4, EFER).
pub fn start(vcpu: u32, f: Entry) -> Result<(), crate::Errno> {
    let ctx = context(vcpu, f)?;
    crate::hypercall::vcpu_initialise(vcpu, &ctx)?;
    crate::hypercall::vcpu_up(vcpu)?;
    Ok(())
}

/// The initial state for vCPU `vcpu` to run `f(vcpu)` on a new stack (for
/// VCPUOP_initialise), without starting it.
pub fn context(vcpu: u32, f: Entry) -> Result<HvmContext, crate::Errno> {
    if vcpu == 0 || vcpu >= MAX_VCPUS {
        return Err(crate::Errno(warden_abi::errno::EINVAL));
    }
    ENTRIES[vcpu as usize].store(f as *mut (), Ordering::Release);
    let stack: Box<[u8]> = alloc::vec![0u8; STACK].into_boxed_slice();
    let top = (Box::leak(stack).as_ptr() as u64 + STACK as u64) & !0xf;
    Ok(HvmContext {
        mode: HVM_MODE_64B,
        rip: ap_entry as *const () as u64,
        // Entered as if called: the return address slot keeps the ABI's alignment.
        rsp: top - 8,
        rdi: vcpu as u64,
        rflags: 2,
        cr0: read_cr(0),
        cr3: read_cr(3),
        cr4: read_cr(4),
        efer: read_efer(),
        ..Default::default()
    })
}
