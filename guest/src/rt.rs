//! The runtime proper (feature `rt`): entry, panic handler, heap, and the
//! functions the prebuilt `core` links against.

use crate::start::Boot;
use core::arch::global_asm;

/// vCPU 0's stack.
pub const BOOT_STACK: usize = 64 * 1024;

// The PVH entry (Xen's, docs/misc/pvh.pandoc): 32-bit protected mode,
// paging off, EBX = the `hvm_start_info` address. Clear .bss, identity-map
// the first 4 GiB with 2 MiB pages (tables in .bss), enable PAE, long mode
// (EFER.LME|NXE) and paging, load a GDT with a 64-bit code segment, and
// continue in 64-bit mode on the boot stack with RDI = the start info.
// The Xen note PHYS32_ENTRY (type 18, 8-byte descriptor as Linux's) tells
// the builder where this is.
global_asm!(
    r#"
.section .text.start, "ax"
.code32
.global guest_pvh_start32
guest_pvh_start32:
    cld
    movl %ebx, %esi
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    xorl %eax, %eax
    rep stosb
    movl $guest_pvh_tables, %edi
    leal 0x1003(%edi), %eax
    movl %eax, (%edi)
    leal 0x2003(%edi), %eax
    movl %eax, 0x1000(%edi)
    addl $0x1000, %eax
    movl %eax, 0x1008(%edi)
    addl $0x1000, %eax
    movl %eax, 0x1010(%edi)
    addl $0x1000, %eax
    movl %eax, 0x1018(%edi)
    leal 0x2000(%edi), %ebx
    movl $0x83, %eax
    movl $2048, %ecx
1:
    movl %eax, (%ebx)
    addl $0x200000, %eax
    addl $8, %ebx
    loop 1b
    movl %edi, %cr3
    movl %cr4, %eax
    orl $0x620, %eax
    movl %eax, %cr4
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x900, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80010022, %eax
    movl %eax, %cr0
    lgdt guest_pvh_gdt_ptr
    ljmp $0x08, $guest_pvh_start64
.code64
guest_pvh_start64:
    movl $0x10, %eax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    leaq guest_boot_stack_top(%rip), %rsp
    xorl %ebp, %ebp
    movl %esi, %edi
    call {entry}
2:
    jmp 2b

.section .rodata.pvh, "a"
.balign 16
guest_pvh_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
guest_pvh_gdt_ptr:
    .word 23
    .long guest_pvh_gdt

.section .note.Xen, "a", @note
.balign 4
    .long 4
    .long 8
    .long 18
    .asciz "Xen"
    .balign 4
    .quad guest_pvh_start32

.section .bss.pvh_tables, "aw", @nobits
.balign 4096
guest_pvh_tables:
    .skip 6 * 4096

.section .bss.stack, "aw", @nobits
.balign 16
guest_boot_stack:
    .skip {size}
.global guest_boot_stack_top
guest_boot_stack_top:
.section .text
"#,
    entry = sym rust_entry,
    size = const BOOT_STACK,
    options(att_syntax)
);

unsafe extern "C" {
    fn warden_guest_main(boot: &'static Boot) -> !;
}

static BOOT: spin::Once<Boot> = spin::Once::new();

extern "C" fn rust_entry(start_info: u64) -> ! {
    crate::events::build_idt();
    crate::events::load_tables();
    let Some(boot) = Boot::from_phys(start_info) else {
        crate::println!("guest: no valid start information at {start_info:#x}");
        crate::exit::crash();
    };
    // The entry stub's page tables (in .bss) stay: they identity-map the
    // low 4 GiB (RAM, the ACPI tables, the console ring page).
    let boot = BOOT.call_once(|| boot);
    if let Err(e) = crate::events::register(0) {
        crate::println!("guest: cannot register vCPU 0's vcpu_info: {e}");
    }
    // SAFETY: `warden_guest_main` is defined by the program's `entry!`.
    unsafe { warden_guest_main(boot) }
}

/// The start information (after entry).
pub fn boot() -> Option<&'static Boot> {
    BOOT.get()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match info.location() {
        Some(l) => crate::println!(
            "guest panic at {}:{}: {}",
            l.file(),
            l.line(),
            info.message()
        ),
        None => crate::println!("guest panic: {}", info.message()),
    }
    crate::exit::crash()
}

// ---- heap

const HEAP_SIZE: usize = 2 << 20;
static mut HEAP: [u8; HEAP_SIZE] = [0; HEAP_SIZE];

#[global_allocator]
static ALLOC: talc::TalcLock<spin::mutex::SpinMutex<()>, talc::source::Claim> =
    // SAFETY: HEAP is used by nothing but the allocator.
    talc::TalcLock::new(unsafe { talc::source::Claim::array(&raw mut HEAP) });

// ---- what the prebuilt core/alloc link against
// (memcpy, memmove, memset, memcmp, bcmp: the `warden-bare-rt` crate)

use warden_bare_rt as _;

/// Referenced by the prebuilt `alloc` even with panic=abort; never called.
#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_Resume() -> ! {
    crate::exit::crash()
}

/// Referenced by the prebuilt crates even with panic=abort; never called.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}
