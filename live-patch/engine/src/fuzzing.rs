//! Drives the whole engine with arbitrary payload bytes, for the fuzz
//! target (`live-patch/fuzz`) and the corpus replay test. Everything runs
//! against an in-memory image; nothing here is used by the hypervisor.
//!
//! The input is the payload's ELF part. It is parsed; if it parses, it is
//! signed with a key the simulated image trusts and taken through upload,
//! APPLY, REVERT and UNLOAD, so every check after the signature is reached.

use crate::{
    Action, AllocRequest, Allocation, Engine, Image, Level, Patcher, Platform, QuiesceError,
};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use livepatch_format::payload::Payload;
use livepatch_format::sig::{self, TrustedKey};
use warden_symbols::{FLAG_FUNC, InputSymbol, SymbolTable};

/// The simulated image's text base and size.
pub const TEXT: u64 = 0x10_0000;
pub const TEXT_LEN: usize = 0x2000;
/// Its build-id (payloads in the corpus target it).
pub const BUILD_ID: [u8; 20] = [0xab; 20];
/// The key the simulated image trusts (a fuzzing key, trusted nowhere else).
pub const SEED: [u8; 32] = [0x42; 32];

/// Symbols of the simulated image: (name, address, size, function).
pub const SYMBOLS: [(&str, u64, u64, bool); 8] = [
    ("warden::version::extra_version", TEXT, 0x40, true),
    ("warden::tiny", TEXT + 0x40, 4, true),
    ("warden::endbr", TEXT + 0x50, 0x20, true),
    ("alloc::vec::Vec<T,A>::push", TEXT + 0x80, 0x20, true),
    ("alloc::vec::Vec<T,A>::push", TEXT + 0xa0, 0x20, true),
    ("core::fmt::write", TEXT + 0x100, 0x80, true),
    ("warden::version::compile_info", TEXT + 0x180, 0x40, true),
    ("warden::STATE", 0x20_0000, 0x10, false),
];

/// The simulated image's symbol table bytes.
pub fn symbol_table() -> Vec<u8> {
    warden_symbols::build(
        SYMBOLS
            .iter()
            .map(|&(n, a, s, f)| InputSymbol {
                name: n.into(),
                addr: a,
                size: s,
                flags: if f { FLAG_FUNC } else { 0 },
            })
            .collect(),
    )
}

/// An in-memory platform: text is a byte vector, payload memory is not
/// executed, hooks return 0, every rendezvous succeeds.
#[derive(Debug)]
pub struct MemPlatform {
    pub text: Vec<u8>,
    next: u64,
    pub live: usize,
}

impl MemPlatform {
    pub fn new() -> Self {
        let mut text = vec![0x90u8; TEXT_LEN];
        text[..4].copy_from_slice(&[0x55, 0x48, 0x89, 0xe5]);
        text[0x50..0x54].copy_from_slice(&crate::insn::ENDBR64);
        MemPlatform {
            text,
            next: 0x40_0000,
            live: 0,
        }
    }
}

impl Default for MemPlatform {
    fn default() -> Self {
        Self::new()
    }
}

fn copy_out(text: &[u8], addr: u64, buf: &mut [u8]) {
    let off = addr.wrapping_sub(TEXT) as usize;
    for (i, b) in buf.iter_mut().enumerate() {
        *b = text.get(off.wrapping_add(i)).copied().unwrap_or(0);
    }
}

fn copy_in(text: &mut [u8], addr: u64, bytes: &[u8]) {
    let off = addr.wrapping_sub(TEXT) as usize;
    for (i, b) in bytes.iter().enumerate() {
        if let Some(t) = text.get_mut(off.wrapping_add(i)) {
            *t = *b;
        }
    }
}

struct MemPatcher<'a>(&'a mut Vec<u8>);

impl Patcher for MemPatcher<'_> {
    unsafe fn write_text(&mut self, addr: u64, bytes: &[u8]) {
        copy_in(self.0, addr, bytes);
    }
    fn read_text(&self, addr: u64, buf: &mut [u8]) {
        copy_out(self.0, addr, buf);
    }
    unsafe fn call_hook(&mut self, _: u64) -> i32 {
        0
    }
}

impl Platform for MemPlatform {
    fn alloc(&mut self, req: &AllocRequest) -> Option<Allocation> {
        let total = req.text.checked_add(req.ro)?.checked_add(req.rw)?;
        if total > 64 << 20 {
            return None;
        }
        let base = self.next;
        self.next += total + 0x1000;
        self.live += 1;
        Some(Allocation {
            text: base,
            ro: base + req.text,
            rw: base + req.text + req.ro,
            cookie: base,
        })
    }
    fn install(&mut self, _: &Allocation, _: &[u8], _: &[u8], _: &[u8]) {}
    fn free(&mut self, _: &Allocation) {
        self.live -= 1;
    }
    fn read_text(&self, addr: u64, buf: &mut [u8]) {
        copy_out(&self.text, addr, buf);
    }
    unsafe fn call_hook(&mut self, _: u64) -> i32 {
        0
    }
    fn quiesce(
        &mut self,
        _: u64,
        work: &mut dyn FnMut(&mut dyn Patcher),
    ) -> Result<u64, QuiesceError> {
        work(&mut MemPatcher(&mut self.text));
        Ok(1)
    }
    fn log(&mut self, _: Level, _: fmt::Arguments<'_>) {}
}

/// Run `elf` through the parser and, if it parses, the whole engine.
/// Returns whether it was uploaded. Panics only on an engine bug (an
/// invariant below does not hold).
pub fn exercise(elf: &[u8]) -> bool {
    let Ok(_) = Payload::parse(elf) else {
        return false;
    };
    let table = symbol_table();
    let image = Image {
        build_id: &BUILD_ID,
        symbols: SymbolTable::parse(&table).expect("valid table"),
        text: (TEXT, TEXT + TEXT_LEN as u64),
    };
    let keys = [TrustedKey::new(sig::public_of(&SEED))];
    let mut e = Engine::new(image, &keys);
    let mut p = MemPlatform::new();
    let pristine = p.text.clone();
    let mut file = elf.to_vec();
    file.extend_from_slice(&sig::sign(elf, &SEED));
    if e.upload(&mut p, "fuzz", &file).is_err() {
        assert_eq!(p.live, 0, "a refused upload leaked memory");
        assert!(e.payloads().is_empty());
        return false;
    }
    assert_eq!(p.text, pristine, "upload changed text");
    for a in [Action::Apply, Action::Revert] {
        if e.action(
            &mut p,
            "fuzz",
            a as u32,
            0,
            crate::APPLY_NODEPS * (a == Action::Apply) as u32,
        )
        .is_ok()
        {
            let o = e.run_pending(&mut p).expect("pending action");
            assert_eq!(o.rc, 0);
        }
    }
    assert_eq!(p.text, pristine, "apply + revert did not restore the text");
    e.action(&mut p, "fuzz", Action::Unload as u32, 0, 0)
        .expect("unload of a checked payload");
    assert_eq!(p.live, 0);
    true
}
