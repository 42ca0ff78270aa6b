//! A simulated hypervisor for engine tests: a text region with a symbol
//! table, an allocator, a quiesce that can time out, hooks that count calls.
#![allow(dead_code)]

use livepatch_engine::{
    AllocRequest, Allocation, Engine, Image, Level, Patcher, Platform, QuiesceError,
};
use livepatch_format::elf::{R_X86_64_PC32, R_X86_64_PLT32};
use livepatch_format::payload::Region;
use livepatch_format::sig::{self, TrustedKey};
use livepatch_format::write::{Builder, FuncSpec};
use std::collections::BTreeMap;
use std::fmt;
use warden_symbols::{FLAG_FUNC, InputSymbol};

pub const TEXT: u64 = 0x10_0000;
pub const TEXT_LEN: usize = 0x1000;
pub const BUILD_ID: [u8; 20] = [0xab; 20];
pub const SEED: [u8; 32] = [0x42; 32];
pub const OTHER_SEED: [u8; 32] = [0x43; 32];

/// Functions of the simulated image: (name, address, size, first bytes).
pub const EXTRA: (&str, u64, u64) = ("warden::version::extra_version", TEXT, 0x40);
pub const TINY: (&str, u64, u64) = ("warden::tiny", TEXT + 0x40, 4);
pub const ENDBR_FN: (&str, u64, u64) = ("warden::endbr", TEXT + 0x50, 0x20);
pub const DUP_A: (&str, u64, u64) = ("alloc::vec::Vec<T,A>::push", TEXT + 0x80, 0x20);
pub const DUP_B: (&str, u64, u64) = ("alloc::vec::Vec<T,A>::push", TEXT + 0xa0, 0x20);
pub const FMT_WRITE: (&str, u64, u64) = ("core::fmt::write", TEXT + 0x100, 0x80);
pub const SECOND: (&str, u64, u64) = ("warden::version::compile_info", TEXT + 0x180, 0x40);
pub const ENDBR_TINY: (&str, u64, u64) = ("warden::endbr_tiny", TEXT + 0x1c0, 8);
pub const DATA: (&str, u64, u64) = ("warden::STATE", 0x20_0000, 0x10);

pub fn symbol_table() -> Vec<u8> {
    let f = |(n, a, s): (&str, u64, u64), flags| InputSymbol {
        name: n.to_string(),
        addr: a,
        size: s,
        flags,
    };
    warden_symbols::build(vec![
        f(EXTRA, FLAG_FUNC),
        f(TINY, FLAG_FUNC),
        f(ENDBR_FN, FLAG_FUNC),
        f(DUP_A, FLAG_FUNC),
        f(DUP_B, FLAG_FUNC),
        f(FMT_WRITE, FLAG_FUNC),
        f(SECOND, FLAG_FUNC),
        f(ENDBR_TINY, FLAG_FUNC),
        f(DATA, 0),
    ])
}

pub fn initial_text() -> Vec<u8> {
    let mut t: Vec<u8> = (0..TEXT_LEN).map(|i| (i * 7 + 3) as u8).collect();
    let put = |t: &mut Vec<u8>, a: u64, b: &[u8]| {
        let o = (a - TEXT) as usize;
        t[o..o + b.len()].copy_from_slice(b);
    };
    put(
        &mut t,
        EXTRA.1,
        &[0x55, 0x48, 0x89, 0xe5, 0x48, 0x8d, 0x05, 0x11, 0x22],
    );
    put(&mut t, SECOND.1, &[0x55, 0x48, 0x89, 0xe5, 0x31, 0xc0]);
    put(
        &mut t,
        ENDBR_FN.1,
        &[0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48, 0x89, 0xe5],
    );
    put(
        &mut t,
        ENDBR_TINY.1,
        &[0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x5d, 0xc3, 0xcc],
    );
    t
}

/// First bytes of a function in the initial text.
pub fn orig_bytes(addr: u64, n: usize) -> Vec<u8> {
    let t = initial_text();
    let o = (addr - TEXT) as usize;
    t[o..o + n].to_vec()
}

pub struct Sim {
    pub text: Vec<u8>,
    pub next: u64,
    pub mem: BTreeMap<u64, Vec<u8>>,
    pub live: Vec<Allocation>,
    pub freed: usize,
    pub installs: usize,
    pub hooks: Vec<u64>,
    pub hook_rc: BTreeMap<u64, i32>,
    pub timeout: bool,
    pub fail_alloc: bool,
    pub log: Vec<String>,
    pub quiesces: usize,
    pub writes_outside_quiesce: usize,
    in_quiesce: bool,
}

impl Sim {
    pub fn new() -> Self {
        Sim {
            text: initial_text(),
            next: 0x40_0000,
            mem: BTreeMap::new(),
            live: Vec::new(),
            freed: 0,
            installs: 0,
            hooks: Vec::new(),
            hook_rc: BTreeMap::new(),
            timeout: false,
            fail_alloc: false,
            log: Vec::new(),
            quiesces: 0,
            writes_outside_quiesce: 0,
            in_quiesce: false,
        }
    }

    pub fn text_at(&self, addr: u64, n: usize) -> Vec<u8> {
        let o = (addr - TEXT) as usize;
        self.text[o..o + n].to_vec()
    }

    /// Read installed payload memory.
    pub fn mem_at(&self, addr: u64, n: usize) -> Vec<u8> {
        let (base, m) = self
            .mem
            .range(..=addr)
            .next_back()
            .expect("installed memory");
        let o = (addr - base) as usize;
        m[o..o + n].to_vec()
    }

    pub fn last_log(&self) -> &str {
        self.log.last().map(|s| s.as_str()).unwrap_or("")
    }

    pub fn hook_calls(&self, addr: u64) -> usize {
        self.hooks.iter().filter(|&&a| a == addr).count()
    }
}

struct SimPatcher<'a> {
    text: &'a mut Vec<u8>,
    hooks: &'a mut Vec<u64>,
    hook_rc: &'a BTreeMap<u64, i32>,
}

impl Patcher for SimPatcher<'_> {
    unsafe fn write_text(&mut self, addr: u64, bytes: &[u8]) {
        let o = (addr - TEXT) as usize;
        self.text[o..o + bytes.len()].copy_from_slice(bytes);
    }
    fn read_text(&self, addr: u64, buf: &mut [u8]) {
        let o = (addr - TEXT) as usize;
        buf.copy_from_slice(&self.text[o..o + buf.len()]);
    }
    unsafe fn call_hook(&mut self, addr: u64) -> i32 {
        self.hooks.push(addr);
        self.hook_rc.get(&addr).copied().unwrap_or(0)
    }
}

impl Platform for Sim {
    fn alloc(&mut self, req: &AllocRequest) -> Option<Allocation> {
        if self.fail_alloc {
            return None;
        }
        let base = self.next;
        let a = Allocation {
            text: base,
            ro: base + req.text,
            rw: base + req.text + req.ro,
            cookie: base,
        };
        self.next += req.text + req.ro + req.rw + 0x1000;
        self.live.push(a);
        Some(a)
    }
    fn install(&mut self, at: &Allocation, text: &[u8], ro: &[u8], rw: &[u8]) {
        assert!(self.live.contains(at));
        self.installs += 1;
        self.mem.insert(at.text, text.to_vec());
        self.mem.insert(at.ro, ro.to_vec());
        self.mem.insert(at.rw, rw.to_vec());
    }
    fn free(&mut self, at: &Allocation) {
        let i = self.live.iter().position(|a| a == at).expect("double free");
        self.live.remove(i);
        self.freed += 1;
    }
    fn read_text(&self, addr: u64, buf: &mut [u8]) {
        let o = (addr - TEXT) as usize;
        buf.copy_from_slice(&self.text[o..o + buf.len()]);
    }
    unsafe fn call_hook(&mut self, addr: u64) -> i32 {
        self.hooks.push(addr);
        self.hook_rc.get(&addr).copied().unwrap_or(0)
    }
    fn quiesce(
        &mut self,
        _timeout_ns: u64,
        work: &mut dyn FnMut(&mut dyn Patcher),
    ) -> Result<u64, QuiesceError> {
        self.quiesces += 1;
        if self.timeout {
            return Err(QuiesceError::Timeout {
                arrived: 1,
                cpus: 4,
            });
        }
        self.in_quiesce = true;
        let mut p = SimPatcher {
            text: &mut self.text,
            hooks: &mut self.hooks,
            hook_rc: &self.hook_rc,
        };
        work(&mut p);
        self.in_quiesce = false;
        Ok(12_345)
    }
    fn log(&mut self, level: Level, msg: fmt::Arguments<'_>) {
        self.log.push(format!("{level:?}: {msg}"));
    }
}

/// Leak the table so the engine can borrow it for 'static (tests only).
pub fn image() -> Image<'static> {
    let table: &'static [u8] = Box::leak(symbol_table().into_boxed_slice());
    Image {
        build_id: &BUILD_ID,
        symbols: warden_symbols::SymbolTable::parse(table).unwrap(),
        text: (TEXT, TEXT + TEXT_LEN as u64),
    }
}

pub fn keys() -> &'static [TrustedKey] {
    Box::leak(vec![TrustedKey::new(sig::public_of(&SEED))].into_boxed_slice())
}

pub fn engine() -> Engine<'static> {
    Engine::new(image(), keys())
}

pub fn sign(elf: &[u8]) -> Vec<u8> {
    sign_with(elf, &SEED)
}

pub fn sign_with(elf: &[u8], seed: &[u8; 32]) -> Vec<u8> {
    let mut f = elf.to_vec();
    f.extend_from_slice(&sig::sign(elf, seed));
    f
}

/// New code of the hello payload: `lea rax, [rip+msg]; call core::fmt::write; ret`.
pub const HELLO_CODE: [u8; 13] = [
    0x48, 0x8d, 0x05, 0, 0, 0, 0, // lea rax, [rip+disp32]  (disp at 3)
    0xe8, 0, 0, 0, 0, // call rel32             (rel at 8)
    0xc3,
];
pub const HELLO_MSG: &[u8] = b"Hello World";

/// A payload replacing `target` (name, addr, size) with HELLO_CODE.
pub fn patch_of(target: (&str, u64, u64), tag: &str) -> Builder {
    let mut b = Builder::new(&BUILD_ID);
    let text = b.section(".text", Region::Text, 16, HELLO_CODE.to_vec());
    let ro = b.section(".rodata", Region::ReadOnly, 8, HELLO_MSG.to_vec());
    let new = b.define(
        &format!("{tag}_new"),
        text,
        0,
        HELLO_CODE.len() as u64,
        true,
    );
    let msg = b.define("msg", ro, 0, HELLO_MSG.len() as u64, false);
    let write = b.import(FMT_WRITE.0, 0);
    b.reloc(text, 3, R_X86_64_PC32, msg, -4);
    b.reloc(text, 8, R_X86_64_PLT32, write, -4);
    let old = b.import(target.0, if target.0 == DUP_A.0 { target.1 } else { 0 });
    b.func(FuncSpec {
        old,
        new: Some(new),
        old_size: target.2 as u32,
        new_size: HELLO_CODE.len() as u32,
        expect: if (TEXT..TEXT + TEXT_LEN as u64).contains(&target.1) {
            orig_bytes(target.1, 8.min(target.2 as usize))
        } else {
            vec![]
        },
    });
    b.meta("name", tag);
    b
}

pub fn hello() -> Builder {
    patch_of(EXTRA, "hello")
}
