//! Boot entry: the Multiboot 1 (a.out kludge, for QEMU `-kernel`) and
//! Multiboot 2 (for GRUB) headers, and the 32-bit entry that builds boot page
//! tables (identity map of the first 4 GiB with 2 MiB pages), enables long
//! mode, NX and SSE, and calls `kmain(magic, info)` on the boot stack.

use core::arch::global_asm;

/// Size of the boot CPU's stack.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

global_asm!(
    r#"
.section .multiboot_header, "a"
.balign 8
mb2_header:
    .long 0xE85250D6
    .long 0
    .long mb2_header_end - mb2_header
    .long 0x100000000 - (0xE85250D6 + (mb2_header_end - mb2_header))
    .balign 8
    .short 3
    .short 0
    .long 12
    .long _start32
    .balign 8
    .short 6
    .short 0
    .long 8
    .short 0
    .short 0
    .long 8
mb2_header_end:

.balign 4
mb1_header:
    .long 0x1BADB002
    .long 0x00010003
    .long 0x100000000 - (0x1BADB002 + 0x00010003)
    .long mb1_header
    .long __image_start
    .long __load_end
    .long __bss_end
    .long _start32

.section .text.boot, "ax"
.code32
.global _start32
_start32:
    cli
    cld
    mov dword ptr [boot_magic], eax
    mov dword ptr [boot_info], ebx

    mov edi, offset __bss_start
    mov ecx, offset __bss_end
    sub ecx, edi
    xor eax, eax
    rep stosb

    mov eax, 0x80000000
    cpuid
    cmp eax, 0x80000001
    jb 90f
    mov eax, 0x80000001
    cpuid
    test edx, 0x20000000
    jz 90f
    mov esi, edx

    mov eax, offset boot_pdpt
    or eax, 3
    mov dword ptr [boot_pml4], eax

    xor ecx, ecx
1:
    mov eax, ecx
    shl eax, 12
    add eax, offset boot_pd
    or eax, 3
    mov dword ptr [boot_pdpt + ecx * 8], eax
    inc ecx
    cmp ecx, 4
    jb 1b

    xor ecx, ecx
2:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov dword ptr [boot_pd + ecx * 8], eax
    inc ecx
    cmp ecx, 2048
    jb 2b

    mov eax, offset boot_pml4
    mov cr3, eax
    mov eax, cr4
    or eax, 0x620
    mov cr4, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, 0x100
    test esi, 0x100000
    jz 3f
    or eax, 0x800
3:
    wrmsr
    mov eax, cr0
    and eax, 0xFFFFFFF3
    or eax, 0x80010023
    mov cr0, eax
    lgdt [boot_gdt_ptr]
    .byte 0xEA
    .long boot_start64
    .short 0x08

90:
    mov esi, offset boot_no_lm_msg
91:
    lodsb
    test al, al
    jz 92f
    mov dx, 0x3f8
    out dx, al
    jmp 91b
92:
    cli
    hlt
    jmp 92b

.code64
boot_start64:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    lea rsp, [rip + boot_stack_top]
    xor ebp, ebp
    mov edi, dword ptr [rip + boot_magic]
    mov esi, dword ptr [rip + boot_info]
    call {kmain}
93:
    cli
    hlt
    jmp 93b

.section .rodata.boot, "a"
.balign 16
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
boot_gdt_ptr:
    .short 23
    .quad boot_gdt
boot_no_lm_msg:
    .asciz "Warden: this CPU does not support 64-bit long mode; cannot boot.\r\n"

.section .data.boot, "aw"
.balign 4
.global boot_magic
boot_magic:
    .long 0
.global boot_info
boot_info:
    .long 0

.section .bss.boot, "aw", @nobits
.balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4 * 4096
.global boot_stack_bottom
boot_stack_bottom:
    .skip {stack_size}
.global boot_stack_top
boot_stack_top:

.section .text
"#,
    kmain = sym crate::kmain,
    stack_size = const BOOT_STACK_SIZE,
);

unsafe extern "C" {
    static boot_stack_bottom: u8;
    static boot_stack_top: u8;
}

/// The boot CPU's stack range.
pub fn boot_stack() -> core::ops::Range<u64> {
    (&raw const boot_stack_bottom) as u64..(&raw const boot_stack_top) as u64
}
