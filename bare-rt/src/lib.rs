//! # warden-bare-rt — memory functions for bare-metal images
//!
//! On the `x86_64-unknown-linux-gnu` target Warden builds its images for,
//! `compiler_builtins` does not export `memcpy`, `memmove`, `memset`,
//! `memcmp` and `bcmp`, yet the prebuilt `core` and `alloc` call them (see
//! `../shared/reference/bare-metal-build.md`). This crate defines them once
//! for every bare-metal image: the hypervisor (`hypervisor/`) and the guests
//! (`guest/` with its `rt` feature). Copies and fills use `rep movsb` /
//! `rep stosb` so LLVM cannot turn a body back into a call to itself.
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
    // SAFETY: the caller guarantees both ranges are valid for `n` bytes.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dst
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
    // SAFETY: the caller guarantees the range is valid for `n` bytes.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8,
             options(nostack, preserves_flags));
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
