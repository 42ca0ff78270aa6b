//! Replays the committed fuzz corpus (live-patch/fuzz/corpus/payload) through
//! the fuzz target's code, and keeps the seed payloads valid.

use livepatch_engine::fuzzing::{self, BUILD_ID, MemPlatform, SYMBOLS, TEXT};
use livepatch_format::elf::{R_X86_64_64, R_X86_64_PC32, R_X86_64_PLT32};
use livepatch_format::payload::{HookKind, Region};
use livepatch_format::write::{Builder, FuncSpec};
use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn expect(addr: u64, n: usize) -> Vec<u8> {
    let t = MemPlatform::new().text;
    let o = (addr - TEXT) as usize;
    t[o..o + n].to_vec()
}

/// Seed payloads for the simulated image: a plain patch with relocations,
/// a NOP patch, hooks, data, a stacked one, an address-disambiguated one.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let (extra, _, extra_size, _) = (SYMBOLS[0].0, SYMBOLS[0].1, SYMBOLS[0].2, ());
    let code = vec![0x48, 0x8d, 0x05, 0, 0, 0, 0, 0xe8, 0, 0, 0, 0, 0xc3];
    let base = |with: &dyn Fn(&mut Builder)| {
        let mut b = Builder::new(&BUILD_ID);
        let t = b.section(".text", Region::Text, 16, code.clone());
        let ro = b.section(
            ".rodata",
            Region::ReadOnly,
            8,
            b"Hello World\0\0\0\0\0".to_vec(),
        );
        let new = b.define("new", t, 0, code.len() as u64, true);
        let msg = b.define("msg", ro, 0, 11, false);
        let w = b.import("core::fmt::write", 0);
        b.reloc(t, 3, R_X86_64_PC32, msg, -4);
        b.reloc(t, 8, R_X86_64_PLT32, w, -4);
        b.reloc(ro, 8, R_X86_64_64, w, 0);
        let old = b.import(extra, 0);
        b.func(FuncSpec {
            old,
            new: Some(new),
            old_size: extra_size as u32,
            new_size: code.len() as u32,
            expect: expect(TEXT, 8),
        });
        b.meta("name", "seed");
        with(&mut b);
        b.build()
    };
    let nop = {
        let mut b = Builder::new(&BUILD_ID);
        let t = b.section(".text", Region::Text, 16, vec![0xc3]);
        b.define("f", t, 0, 1, true);
        let old = b.import(SYMBOLS[6].0, 0);
        b.func(FuncSpec {
            old,
            new: None,
            old_size: SYMBOLS[6].2 as u32,
            new_size: 7,
            expect: expect(SYMBOLS[6].1, 4),
        });
        b.build()
    };
    let by_addr = {
        let mut b = Builder::new(&BUILD_ID);
        let t = b.section(".text.x", Region::Text, 16, vec![0xc3]);
        let new = b.define("f", t, 0, 1, true);
        let old = b.import(SYMBOLS[4].0, SYMBOLS[4].1);
        b.func(FuncSpec {
            old,
            new: Some(new),
            old_size: 0x20,
            new_size: 1,
            expect: vec![],
        });
        b.build()
    };
    vec![
        ("plain", base(&|_| {})),
        (
            "hooks",
            base(&|b| {
                for k in HookKind::ALL {
                    let t = b.section(
                        &format!(".text.{}", k.suffix()),
                        Region::Text,
                        16,
                        vec![0x31, 0xc0, 0xc3],
                    );
                    let s = b.define(k.suffix(), t, 0, 3, true);
                    b.hook(k, s);
                }
            }),
        ),
        (
            "data",
            base(&|b| {
                b.section(".data", Region::ReadWrite, 8, vec![1, 2, 3, 4]);
                b.bss(".bss", 64, 4096);
            }),
        ),
        (
            "stacked",
            base(&|b| {
                b.depends(&[0x11; 20]);
            }),
        ),
        ("nop", nop),
        ("by_addr", by_addr),
    ]
}

#[test]
fn seeds_upload_and_apply() {
    for (name, elf) in seeds() {
        let uploaded = fuzzing::exercise(&elf);
        // The stacked seed depends on a payload that is not loaded.
        assert_eq!(uploaded, name != "stacked", "seed {name}");
    }
}

#[test]
fn corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/payload");
    let all = files(&dir);
    assert!(all.len() >= 20, "corpus missing ({} files)", all.len());
    let mut uploaded = 0;
    for p in &all {
        if fuzzing::exercise(&std::fs::read(p).unwrap()) {
            uploaded += 1;
        }
    }
    assert!(
        uploaded >= 5,
        "the corpus must keep valid payloads ({uploaded})"
    );
}

/// `cargo test -p livepatch-engine --test corpus -- --ignored write_seeds`
/// writes the seeds to live-patch/fuzz/seeds/payload.
#[test]
#[ignore]
fn write_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/payload");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, elf) in seeds() {
        std::fs::write(dir.join(name), elf).unwrap();
    }
}
