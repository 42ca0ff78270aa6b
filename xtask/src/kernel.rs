//! Kernels given as boot modules: a bzImage (Debian's `vmlinuz`) is unpacked
//! to its ELF vmlinux on the host before the boot, because Warden's builder
//! loads ELF kernels only (docs/ARCHITECTURE.md, "PVH domain building"). The
//! payload is found with the builder's own bzImage parser
//! (`hvcore::domain::builder::bzimage`) and decompressed with the host's
//! `xz` (or `gzip`, `zstd`) tool.

use crate::{Error, Result, bail};
use hvcore::domain::builder::bzimage::{self, Compression};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// If `path` is a compressed bzImage, unpack its ELF payload into
/// `out_dir` (once; reused while newer than `path`) and return that file.
pub fn unpack_bzimage(path: &Path, out_dir: &Path) -> Result<Option<PathBuf>> {
    let data = std::fs::read(path).map_err(|e| Error(format!("{}: {e}", path.display())))?;
    let payload = match bzimage::detect(&data) {
        None => return Ok(None),
        Some(Err(why)) => bail!("{}: bzImage: {why}", path.display()),
        Some(Ok(p)) => p,
    };
    let tool: &[&str] = match payload.compression {
        Compression::None => &[],
        Compression::Xz => &["xz", "-dc"],
        Compression::Gzip => &["gzip", "-dc"],
        Compression::Zstd => &["zstd", "-dc"],
        c => bail!(
            "{}: bzImage with a {} payload: only xz, gzip and zstd are unpacked",
            path.display(),
            c.name()
        ),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kernel".into());
    std::fs::create_dir_all(out_dir).map_err(|e| Error(format!("{}: {e}", out_dir.display())))?;
    let out = out_dir.join(format!("{name}.vmlinux"));
    let fresh = |o: &Path| -> Option<bool> {
        Some(o.metadata().ok()?.modified().ok()? >= path.metadata().ok()?.modified().ok()?)
    };
    if fresh(&out) == Some(true) {
        return Ok(Some(out));
    }
    let elf = if tool.is_empty() {
        payload.data.to_vec()
    } else {
        let mut child = Command::new(tool[0])
            .args(&tool[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error(format!("{}: cannot run {}: {e}", path.display(), tool[0])))?;
        let mut stdin = child.stdin.take().ok_or_else(|| Error("no stdin".into()))?;
        let input = payload.data.to_vec();
        let writer = std::thread::spawn(move || {
            // xz stops reading at the end of the stream; the rest is padding.
            let _ = stdin.write_all(&input);
        });
        let o = child
            .wait_with_output()
            .map_err(|e| Error(format!("{}: {}: {e}", path.display(), tool[0])))?;
        let _ = writer.join();
        // `xz -dc` complains about trailing garbage after the stream but has
        // written the whole ELF by then; judge by the output.
        if !o.stdout.starts_with(b"\x7fELF") {
            bail!(
                "{}: {} did not produce an ELF image from the bzImage payload",
                path.display(),
                tool[0]
            );
        }
        o.stdout
    };
    // Written aside and renamed, so a boot running at the same time (tests
    // in parallel) never reads half a kernel.
    let tmp = out_dir.join(format!("{name}.vmlinux.{}.tmp", std::process::id()));
    std::fs::write(&tmp, &elf).map_err(|e| Error(format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, &out).map_err(|e| Error(format!("{}: {e}", out.display())))?;
    eprintln!(
        "xtask: {} is a bzImage ({} payload): unpacked the ELF kernel to {}",
        path.display(),
        payload.compression.name(),
        out.display()
    );
    Ok(Some(out))
}

/// Replace every bzImage among `modules` by its unpacked ELF kernel (in the
/// bare-metal target directory's `unpacked/`), as `cargo xtask run` and the
/// QEMU tests boot them.
pub fn unpack_modules(modules: &mut [crate::qemu::Module]) -> Result<()> {
    let dir = crate::bare_metal_target_dir().join("unpacked");
    for m in modules {
        if let Some(elf) = unpack_bzimage(&m.path, &dir)? {
            m.path = elf;
        }
    }
    Ok(())
}
