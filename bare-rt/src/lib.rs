//! # warden-bare-rt — memory functions for bare-metal images
//!
//! On the `x86_64-unknown-linux-gnu` target Warden builds its images for,
//! `compiler_builtins` does not export `memcpy`, `memmove`, `memset`,
//! `memcmp` and `bcmp`, yet the prebuilt `core` and `alloc` call them (see
//! `../shared/reference/bare-metal-build.md`). This crate defines them once
//! for every bare-metal image: the hypervisor (`hypervisor/`) and the guests
//! (`guest/` with its `rt` feature). Copies and fills use `rep movsq` /
//! `rep stosq` for the whole 8-byte words and `rep movsb` / `rep stosb` for
//! the rest, so LLVM cannot turn a body back into a call to itself. Whole
//! words, not bytes alone: QEMU's TCG runs one iteration of a `rep` string
//! instruction per element, so a byte-wise copy costs eight times the
//! iterations. Building a 512 MiB Linux dom0 (every page zeroed) took 1.39 s
//! with bytes and 0.32 s with words ("Warden ready" to "Domain 0: ...",
//! back-to-back `cargo xtask run --exec true`); hardware with fast strings
//! copies either way at the same speed.
//!
//! Only bare-metal binaries may depend on it: linked into a hosted program
//! it would replace the C library's functions. An image links it with
//! `use warden_bare_rt as _;` (a dependency nothing refers to is not linked).

#![no_std]

use core::arch::asm;

/// # Safety
/// Standard `memcpy` contract: valid, non-overlapping ranges.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract is copy_words'.
    unsafe { copy_words(dst, src, n) };
    dst
}

/// Copy `n` bytes forwards from `src` to `dst`: `rep movsq` for the n / 8
/// whole words, then `rep movsb` for the rest. The copy is an `asm!` block,
/// opaque to the compiler, so the hypervisor also uses it for memory a guest
/// may change meanwhile (no assumption about its contents is made).
///
/// # Safety
/// `src` valid for reads and `dst` for writes of `n` bytes; the ranges do
/// not overlap, or `dst` is below `src`.
#[inline]
pub unsafe fn copy_words(dst: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller guarantees both ranges are valid for `n` bytes.
    unsafe {
        asm!(
            "mov {n}, rcx",
            "shr rcx, 3",
            "rep movsq",
            "mov rcx, {n}",
            "and rcx, 7",
            "rep movsb",
            n = out(reg) _,
            inout("rcx") n => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack),
        );
    }
}

/// # Safety
/// Standard `memmove` contract: valid ranges, which may overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if n == 0 {
        return dst;
    }
    if (dst as usize).wrapping_sub(src as usize) >= n {
        // dst is below src, or the ranges do not overlap: copy forwards.
        // SAFETY: as for memcpy; forward copying is correct for this overlap.
        unsafe { memcpy(dst, src, n) };
    } else {
        // SAFETY: the caller guarantees both ranges; copying backwards from the
        // last byte (DF set, then cleared) handles dst above src.
        unsafe {
            asm!("std", "rep movsb", "cld", inout("rcx") n => _,
                 inout("rdi") dst.add(n - 1) => _, inout("rsi") src.add(n - 1) => _,
                 options(nostack));
        }
    }
    dst
}

/// # Safety
/// Standard `memset` contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // The byte in every byte of a word (`rep stosb` uses its low byte).
    let word = u64::from(c as u8) * 0x0101_0101_0101_0101;
    // SAFETY: the caller guarantees the range is valid for `n` bytes:
    // n / 8 words, then n % 8 bytes.
    unsafe {
        asm!(
            "mov {n}, rcx",
            "shr rcx, 3",
            "rep stosq",
            "mov rcx, {n}",
            "and rcx, 7",
            "rep stosb",
            n = out(reg) _,
            inout("rcx") n => _,
            inout("rdi") dst => _,
            in("rax") word,
            options(nostack),
        );
    }
    dst
}

/// # Safety
/// Standard `memcmp` contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: the caller guarantees both ranges are valid for `n` bytes;
        // volatile reads keep LLVM from turning the loop into a memcmp call.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return x as i32 - y as i32;
        }
    }
    0
}

/// # Safety
/// Standard `bcmp` contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}
