//! Bare-metal builds.
//!
//! Every bare-metal package (the image `warden`; later, test guests) is built
//! for the host triple `x86_64-unknown-linux-gnu` with an explicit `--target`
//! (so the compile-only flags below spare build scripts), in release mode,
//! into [`crate::bare_metal_target_dir`]. Link arguments come from the
//! package's own build.rs. After linking, if the ELF has a `.wsymtab` section,
//! its symbol table is written there ([`write_symbol_table`]).

use crate::{Error, Result, bail, bare_metal_target_dir, workspace_root};
use hvcore::symbols::{FLAG_FUNC, InputSymbol, RESERVED};
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target triple of every bare-metal build.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Compile flags for bare-metal code: no red zone (interrupts), static
/// relocations, frame pointers (backtraces).
pub const RUSTFLAGS: &str = "-Cno-redzone=yes -Crelocation-model=static -Cforce-frame-pointers=yes";

/// A bare-metal binary to build.
#[derive(Debug, Clone)]
pub struct BareMetal<'a> {
    /// Cargo package name.
    pub package: &'a str,
    /// Binary name within the package.
    pub bin: &'a str,
    /// Cargo features to enable.
    pub features: &'a [&'a str],
    /// File name of the result in `<target>/images/`.
    pub output: &'a str,
    /// A Multiboot image (the hypervisor): check the boot loaders' layout rules.
    pub multiboot: bool,
}

/// Build a bare-metal package and return the path of the finished ELF
/// (post-processed and copied to `<target dir>/images/<output>`).
pub fn build_bare_metal(b: &BareMetal<'_>) -> Result<PathBuf> {
    let target_dir = bare_metal_target_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "--package",
            b.package,
            "--bin",
            b.bin,
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", RUSTFLAGS)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("CARGO_PROFILE_RELEASE_STRIP", "none")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "1");
    if !b.features.is_empty() {
        cmd.arg("--features").arg(b.features.join(","));
    }
    let status = cmd
        .status()
        .map_err(|e| Error(format!("cannot run cargo: {e}")))?;
    if !status.success() {
        bail!("building {} failed ({status})", b.package);
    }
    let built = target_dir.join(TARGET).join("release").join(b.bin);
    let images = target_dir.join("images");
    std::fs::create_dir_all(&images)?;
    let out = images.join(b.output);
    // Copy to a temporary name and rename, so a concurrent reader never sees half a file.
    let tmp = images.join(format!(".{}.{}", b.output, std::process::id()));
    std::fs::copy(&built, &tmp).map_err(|e| Error(format!("copying {}: {e}", built.display())))?;
    let mut data = std::fs::read(&tmp)?;
    if b.multiboot {
        check_layout(&data)?;
    }
    if write_symbol_table(&mut data)?.is_some() {
        std::fs::write(&tmp, &data)?;
    }
    std::fs::rename(&tmp, &out)?;
    Ok(out)
}

/// Build the Warden image; `test_hooks` selects the test build (feature
/// `test-hooks`: `test_exit`, `test_fault=`).
pub fn build_image(test_hooks: bool) -> Result<PathBuf> {
    build_bare_metal(&BareMetal {
        package: "warden",
        bin: "warden",
        features: if test_hooks { &["test-hooks"] } else { &[] },
        output: if test_hooks { "warden-test" } else { "warden" },
        multiboot: true,
    })
}

/// Build dom0 (the test dom0 for now): `<images>/dom0`.
pub fn build_dom0() -> Result<PathBuf> {
    build_bare_metal(&BareMetal {
        package: "warden-dom0",
        bin: "dom0",
        features: &[],
        output: "dom0",
        multiboot: false,
    })
}

/// Build the test guest kernel: `<images>/tguest`.
pub fn build_test_guest() -> Result<PathBuf> {
    build_bare_metal(&BareMetal {
        package: "warden-test-guests",
        bin: "tguest",
        features: &[],
        output: "tguest",
        multiboot: false,
    })
}

/// Compile the default policy (`policies/warden.m4`) with the policy
/// compiler (`-t xen -c 30`, plus `-M -D enable_mls` when `mls`) into
/// `<images>/xenpolicy-warden[-mls]`; rebuilt only when a source changed.
pub fn build_policy(mls: bool) -> Result<PathBuf> {
    let root = workspace_root().join("policies");
    let images = bare_metal_target_dir().join("images");
    std::fs::create_dir_all(&images)?;
    let out = images.join(if mls {
        "xenpolicy-warden-mls"
    } else {
        "xenpolicy-warden"
    });
    let newest_src = newest_mtime(&root)?;
    if let Ok(m) = std::fs::metadata(&out).and_then(|m| m.modified())
        && m >= newest_src
    {
        return Ok(out);
    }
    let mut opts = policy_compiler::Options::default();
    let mut defines = Vec::new();
    if mls {
        opts.mls = true;
        defines.push("enable_mls".to_string());
    }
    let job = policy_compiler::Job {
        files: vec![root.join("warden.m4")],
        defines,
        opts,
        ..Default::default()
    };
    let mut sm = policy_compiler::diag::SourceMap::default();
    let compiled = match policy_compiler::compile(&job, &mut sm) {
        Ok(o) => o,
        Err(e) => bail!("compiling the default policy:\n{}", e.render(&sm)),
    };
    let bytes = policy_compiler::write::write(&compiled.db);
    let tmp = images.join(format!(".policy.{}", std::process::id()));
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, &out)?;
    Ok(out)
}

fn newest_mtime(dir: &Path) -> Result<std::time::SystemTime> {
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        let t = if m.is_dir() {
            newest_mtime(&e.path())?
        } else {
            m.modified()?
        };
        newest = newest.max(t);
    }
    Ok(newest)
}

/// Check what the boot loaders need: loadable segments at a constant
/// file-offset-to-address delta (the Multiboot 1 a.out kludge loads one
/// range of the file) and the Multiboot headers early enough in the file.
pub fn check_layout(elf: &[u8]) -> Result<()> {
    let file = object::read::elf::ElfFile64::<object::LittleEndian>::parse(elf)
        .map_err(|e| Error(format!("not an ELF64 file: {e}")))?;
    let endian = file.endian();
    let mut delta = None;
    for ph in file.elf_program_headers() {
        use object::read::elf::ProgramHeader;
        if ph.p_type(endian) != object::elf::PT_LOAD || ph.p_filesz(endian) == 0 {
            continue;
        }
        let d = ph.p_vaddr(endian).wrapping_sub(ph.p_offset(endian));
        match delta {
            None => delta = Some(d),
            Some(x) if x == d => {}
            Some(_) => bail!(
                "loadable segments are not at one file-offset-to-address delta (Multiboot 1 needs it)"
            ),
        }
    }
    let find = |magic: u32, limit: usize, align: usize| {
        let m = magic.to_le_bytes();
        (0..limit.min(elf.len().saturating_sub(4)))
            .step_by(align)
            .any(|o| elf[o..o + 4] == m)
    };
    if !find(hvcore::multiboot1::HEADER_MAGIC, 8192, 4) {
        bail!("no Multiboot 1 header in the first 8 KiB of the image");
    }
    if !find(hvcore::multiboot2::HEADER_MAGIC, 32768, 8) {
        bail!("no Multiboot 2 header in the first 32 KiB of the image");
    }
    Ok(())
}

/// Demangle a symbol name without its hash suffix.
pub fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

/// Collect the ELF's symbols and write the table into `.wsymtab`. Returns the
/// table's size, or `None` if the ELF has no such section.
pub fn write_symbol_table(elf: &mut [u8]) -> Result<Option<usize>> {
    let (offset, size, table) = {
        let file =
            object::File::parse(&*elf).map_err(|e| Error(format!("cannot parse ELF: {e}")))?;
        let Some(section) = file.section_by_name(".wsymtab") else {
            return Ok(None);
        };
        let Some((offset, size)) = section.file_range() else {
            bail!(".wsymtab has no file contents (must be PROGBITS)");
        };
        let mut syms = Vec::new();
        for s in file.symbols() {
            let Ok(name) = s.name() else { continue };
            if name.is_empty()
                || name.starts_with(".L")
                || name.starts_with("$")
                || s.is_undefined()
            {
                continue;
            }
            let func = match s.kind() {
                SymbolKind::Text => true,
                SymbolKind::Data | SymbolKind::Unknown => false,
                _ => continue,
            };
            if s.address() == 0 {
                continue;
            }
            syms.push(InputSymbol {
                name: demangle(name),
                addr: s.address(),
                size: s.size(),
                flags: if func { FLAG_FUNC } else { 0 },
            });
        }
        (offset as usize, size as usize, hvcore::symbols::build(syms))
    };
    if size < RESERVED {
        bail!(".wsymtab is {size} bytes, expected {RESERVED}");
    }
    if table.len() > size {
        bail!(
            "symbol table needs {} bytes but .wsymtab reserves {size}; raise hvcore::symbols::RESERVED",
            table.len()
        );
    }
    let dst = &mut elf[offset..offset + size];
    dst.fill(0);
    dst[..table.len()].copy_from_slice(&table);
    // Prove the image will be able to read it.
    hvcore::symbols::SymbolTable::parse(dst)
        .map_err(|e| Error(format!("symbol table check failed: {e}")))?;
    Ok(Some(table.len()))
}

/// The GNU build-id of an ELF, as hex.
pub fn build_id(elf: &Path) -> Result<String> {
    let data = std::fs::read(elf)?;
    let file = object::File::parse(&*data).map_err(|e| Error(format!("cannot parse ELF: {e}")))?;
    match file.build_id() {
        Ok(Some(id)) => Ok(id.iter().map(|b| format!("{b:02x}")).collect()),
        _ => bail!("{} has no GNU build-id note", elf.display()),
    }
}
