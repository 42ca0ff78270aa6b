//! Debian's Linux kernel and an initramfs, for the Linux guest tests and
//! `cargo xtask bench-linux` (issue 10). Nothing of it is committed: the
//! packages are downloaded once with `apt-get download` into
//! `target/linux/` and unpacked there.
//!
//! - The kernel: `linux-image-<version>-amd64-unsigned`, the version that
//!   `linux-image-amd64` depends on (resolved with `apt-cache depends`).
//!   `vmlinuz` is its bzImage; `vmlinux` the uncompressed ELF inside it (the
//!   xz payload the bzImage header points at, decompressed with the `xz`
//!   command: host code, so no decompressor crate is needed here). The ELF
//!   carries the Xen notes, PHYS32_ENTRY among them (checked).
//! - The initramfs `initrd`: an uncompressed newc cpio written here, holding
//!   busybox (from `busybox-static`) with a symlink per applet, `/dev/console`,
//!   and `/init` (`xtask/src/linux-init.sh`: the guest's checks, or a shell).
//! - Xen 4.17 (`xen-hypervisor-4.17-amd64`), for the reference side of the
//!   benchmark: `xen` is the uncompressed Multiboot image from `xen-4.17-amd64.gz`.
//!
//! The kernel package's `/boot` and `/lib/modules` are unpacked once into
//! `target/linux/package-VERSION/` ([`kernel_package`]); the dom0 image's
//! modules come from there too.
//!
//! Once unpacked, the files are reused without asking apt again (the kernel
//! version is recorded in `target/linux/kernel-version`);
//! `cargo xtask linux-assets --refresh` resolves and downloads again.

use crate::{Error, Result, bail, deps, workspace_root};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The init script of the initramfs.
pub const INIT: &str = include_str!("linux-init.sh");

/// The kernel's meta-package: its dependency names the kernel version.
pub const KERNEL_META: &str = "linux-image-amd64";
/// busybox, statically linked (the initramfs's only binary).
pub const BUSYBOX: &str = "busybox-static";
/// Debian's Xen 4.17 hypervisor (the benchmark's reference).
pub const XEN: &str = "xen-hypervisor-4.17-amd64";

/// Where the assets live.
pub fn dir() -> PathBuf {
    workspace_root().join("target").join("linux")
}

/// The kernel, busybox and the initramfs.
#[derive(Debug, Clone)]
pub struct Assets {
    /// The kernel release, e.g. `6.1.0-57-amd64`.
    pub version: String,
    /// The bzImage (`vmlinuz`).
    pub bzimage: PathBuf,
    /// The uncompressed ELF kernel.
    pub vmlinux: PathBuf,
    /// The initramfs (newc cpio).
    pub initrd: PathBuf,
    /// PHYS32_ENTRY of the ELF kernel (its Xen PVH entry point).
    pub pvh_entry: u64,
}

/// Ensure the assets exist (downloading and unpacking what is missing) and
/// return them. `refresh`: resolve the kernel version and download again.
pub fn assets(refresh: bool) -> Result<Assets> {
    let d = dir();
    std::fs::create_dir_all(&d)?;
    let stamp = d.join("kernel-version");
    let (bzimage, vmlinux, busybox) = (d.join("vmlinuz"), d.join("vmlinux"), d.join("busybox"));
    let have = |p: &Path| p.is_file();
    let mut version = std::fs::read_to_string(&stamp)
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    if refresh || version.is_empty() || !have(&bzimage) {
        version = kernel_version()?;
        let package = kernel_package(&version)?;
        let tmp = scratch(&d, "kernel")?;
        let member = format!("./boot/vmlinuz-{version}");
        copy_members(&package, &tmp, &[&member])?;
        rename(&tmp.join(&member), &bzimage)?;
        let _ = std::fs::remove_dir_all(&tmp);
        let _ = std::fs::remove_file(&vmlinux);
        write_atomic(&stamp, format!("{version}\n").as_bytes())?;
    }
    if !have(&vmlinux) {
        let elf = unpack_bzimage(&std::fs::read(&bzimage)?)?;
        write_atomic(&vmlinux, &elf)?;
    }
    if refresh || !have(&busybox) {
        let tmp = scratch(&d, "busybox")?;
        let deb = download(BUSYBOX, &tmp)?;
        extract(&deb, &tmp, &["./bin/busybox"])?;
        rename(&tmp.join("bin/busybox"), &busybox)?;
        let _ = std::fs::remove_dir_all(&tmp);
    }
    let pvh_entry = pvh_entry(&std::fs::read(&vmlinux)?)?
        .ok_or_else(|| Error(format!("{}: no PHYS32_ENTRY note", vmlinux.display())))?;
    let initrd = d.join("initrd");
    let cpio = initramfs(&busybox)?;
    if std::fs::read(&initrd).ok().as_deref() != Some(&cpio[..]) {
        write_atomic(&initrd, &cpio)?;
    }
    Ok(Assets {
        version,
        bzimage,
        vmlinux,
        initrd,
        pvh_entry,
    })
}

/// Xen 4.17's hypervisor image (uncompressed, Multiboot), downloaded once.
pub fn xen(refresh: bool) -> Result<PathBuf> {
    let d = dir();
    std::fs::create_dir_all(&d)?;
    let xen = d.join("xen-4.17");
    if refresh || !xen.is_file() {
        let tmp = scratch(&d, "xen")?;
        let deb = download(XEN, &tmp)?;
        extract(&deb, &tmp, &["./boot/xen-4.17-amd64.gz"])?;
        let out = Command::new("gzip")
            .arg("-dc")
            .arg(tmp.join("boot/xen-4.17-amd64.gz"))
            .output()
            .map_err(|e| Error(format!("gzip: {e}")))?;
        if !out.status.success() {
            bail!("gzip -dc xen-4.17-amd64.gz failed");
        }
        write_atomic(&xen, &out.stdout)?;
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(xen)
}

/// A fresh scratch directory under `d` (per process: tests may race).
pub(crate) fn scratch(d: &Path, what: &str) -> Result<PathBuf> {
    let t = d.join(format!(".{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&t);
    std::fs::create_dir_all(&t)?;
    Ok(t)
}

pub(crate) fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to)
        .map_err(|e| Error(format!("{} -> {}: {e}", from.display(), to.display())))
}

/// Write through a temporary file and a rename (another process may read it).
pub(crate) fn write_atomic(p: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = p.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    rename(&tmp, p)
}

fn have_lists() -> bool {
    std::fs::read_dir("/var/lib/apt/lists")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
        })
        .unwrap_or(false)
}

/// `apt-get update` (as root) when the package lists are missing.
pub(crate) fn ensure_lists() -> Result<()> {
    if have_lists() {
        return Ok(());
    }
    if !deps::is_root() {
        bail!("the apt package lists are missing; run: sudo apt-get update");
    }
    if !deps::apt(&["update"]) {
        bail!("apt-get update failed");
    }
    Ok(())
}

/// The kernel release `linux-image-amd64` depends on (e.g. `6.1.0-57-amd64`).
pub fn kernel_version() -> Result<String> {
    ensure_lists()?;
    let out = Command::new("apt-cache")
        .args(["depends", KERNEL_META])
        .output()
        .map_err(|e| Error(format!("apt-cache: {e} (a Debian system is needed)")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_kernel_version(&text).ok_or_else(|| {
        Error(format!(
            "apt-cache depends {KERNEL_META} names no linux-image-*: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ))
    })
}

/// `Depends: linux-image-6.1.0-57-amd64` -> `6.1.0-57-amd64`.
pub fn parse_kernel_version(apt_cache_depends: &str) -> Option<String> {
    apt_cache_depends.lines().find_map(|l| {
        let v = l.trim().strip_prefix("Depends: linux-image-")?;
        (v.starts_with(|c: char| c.is_ascii_digit()) && !v.contains(' ')).then(|| v.to_string())
    })
}

/// `apt-get download PKG` into `dir` (retried once after `apt-get update`
/// as root); returns the .deb.
pub(crate) fn download(pkg: &str, dir: &Path) -> Result<PathBuf> {
    Ok(download_all(&[pkg], dir)?.remove(0))
}

/// `apt-get download PKG...` of several packages in one apt run (each run
/// reads apt's cache first: a second or so apiece); returns their .debs in
/// the order of `pkgs`.
pub(crate) fn download_all(pkgs: &[&str], dir: &Path) -> Result<Vec<PathBuf>> {
    ensure_lists()?;
    let list = pkgs.join(" ");
    let get = || {
        eprintln!("xtask: apt-get download {list}");
        let mut c = Command::new("apt-get");
        if deps::is_root() {
            // apt's sandbox user cannot write into a root-owned target/.
            c.args(["-o", "APT::Sandbox::User=root"]);
        }
        c.args(["download", "-q"])
            .args(pkgs)
            .current_dir(dir)
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let ok = get() || (deps::is_root() && deps::apt(&["update"]) && get());
    if !ok {
        bail!("apt-get download {list} failed (network to the Debian registry needed)");
    }
    let debs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    pkgs.iter()
        .map(|pkg| {
            debs.iter()
                .find(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{pkg}_")))
                })
                .cloned()
                .ok_or_else(|| {
                    Error(format!(
                        "apt-get download {pkg}: no .deb in {}",
                        dir.display()
                    ))
                })
        })
        .collect()
}

/// Debian's kernel package `linux-image-VERSION-unsigned`, its `./boot` and
/// `./lib/modules` unpacked once into `target/linux/package-VERSION/` (about
/// 400 MB): the kernel, its config and every module are read from there.
/// Taking members out of the .deb one `tar` run at a time decompressed its
/// 70 MB of xz anew each time (the kernel, the module list, the config, each
/// round of module dependencies, the network modules: about eight times).
pub(crate) fn kernel_package(version: &str) -> Result<PathBuf> {
    let d = dir();
    let root = d.join(format!("package-{version}"));
    let done = |r: &Path| r.join(".complete").is_file();
    if done(&root) {
        return Ok(root);
    }
    let tmp = scratch(&d, "package")?;
    let deb = download(&format!("linux-image-{version}-unsigned"), &tmp)?;
    let out = tmp.join("root");
    std::fs::create_dir_all(&out)?;
    extract(&deb, &out, &["./boot", "./lib/modules"])?;
    std::fs::remove_file(&deb)?;
    std::fs::write(out.join(".complete"), b"")?;
    let _ = std::fs::remove_dir_all(&root);
    // Another process may have put its copy in place first: keep that one.
    if let Err(e) = std::fs::rename(&out, &root)
        && !done(&root)
    {
        bail!("{} -> {}: {e}", out.display(), root.display());
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(root)
}

/// Copy `members` (`./PATH` names, as [`extract`] takes them) of an unpacked
/// package at `root` into `dir`, under the same paths.
pub(crate) fn copy_members(root: &Path, dir: &Path, members: &[&str]) -> Result<()> {
    for m in members {
        let rel = m.trim_start_matches("./");
        let (from, to) = (root.join(rel), dir.join(rel));
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&from, &to)
            .map_err(|e| Error(format!("{} -> {}: {e}", from.display(), to.display())))?;
    }
    Ok(())
}

/// Unpack `members` of a .deb into `dir` (`dpkg-deb --fsys-tarfile | tar`:
/// like `dpkg -x`, but only the files needed: the kernel package's modules
/// alone are hundreds of megabytes).
pub(crate) fn extract(deb: &Path, dir: &Path, members: &[&str]) -> Result<()> {
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error(format!("dpkg-deb: {e}")))?;
    let tar_in = dpkg
        .stdout
        .take()
        .ok_or_else(|| Error("dpkg-deb: no stdout".into()))?;
    let tar = Command::new("tar")
        .args(["-x", "-C"])
        .arg(dir)
        .args(members)
        .stdin(tar_in)
        .status()
        .map_err(|e| Error(format!("tar: {e}")))?;
    let d = dpkg.wait()?;
    if !tar.success() || !d.success() {
        bail!("unpacking {:?} from {} failed", members, deb.display());
    }
    Ok(())
}

/// The xz magic at the start of a bzImage's payload.
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];

/// Where a bzImage's compressed payload is: the boot protocol header
/// (`HdrS` at 0x202) gives the setup sectors (0x1f1), the payload's offset
/// in the protected-mode part (0x248) and its length (0x24c).
pub fn bzimage_payload(bz: &[u8]) -> Result<&[u8]> {
    let u32_at = |o: usize| {
        bz.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    if bz.get(0x202..0x206) != Some(b"HdrS") {
        bail!("not a bzImage (no HdrS boot header)");
    }
    let setup_sects = match bz.get(0x1f1) {
        Some(0) => 4,
        Some(&n) => n as usize,
        None => bail!("bzImage too short"),
    };
    let (Some(off), Some(len)) = (u32_at(0x248), u32_at(0x24c)) else {
        bail!("bzImage too short");
    };
    let start = (setup_sects + 1) * 512 + off;
    let p = bz.get(start..start + len).ok_or_else(|| {
        Error(format!(
            "bzImage payload {start:#x}+{len:#x} outside the file"
        ))
    })?;
    if !p.starts_with(XZ_MAGIC) {
        bail!("the bzImage payload at {start:#x} is not xz (this kernel is built otherwise)");
    }
    Ok(p)
}

/// The uncompressed ELF kernel inside a bzImage (`xz -dc --single-stream`).
pub fn unpack_bzimage(bz: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let payload = bzimage_payload(bz)?.to_vec();
    let mut xz = Command::new("xz")
        .args(["-dc", "--single-stream"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error(format!("xz: {e} (apt-get install xz-utils)")))?;
    let mut stdin = xz
        .stdin
        .take()
        .ok_or_else(|| Error("xz: no stdin".into()))?;
    let feeder = std::thread::spawn(move || stdin.write_all(&payload));
    let out = xz.wait_with_output()?;
    let fed = feeder.join();
    if !out.status.success() || !matches!(fed, Ok(Ok(()))) {
        bail!(
            "xz -d of the bzImage payload failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if !out.stdout.starts_with(b"\x7fELF") {
        bail!("the bzImage payload is not an ELF kernel");
    }
    Ok(out.stdout)
}

/// XEN_ELFNOTE_PHYS32_ENTRY.
const PHYS32_ENTRY: u32 = 18;

/// The PHYS32_ENTRY note of an ELF kernel (4- or 8-byte descriptor).
pub fn pvh_entry(elf: &[u8]) -> Result<Option<u64>> {
    use object::read::elf::{ElfFile64, ProgramHeader};
    let f = ElfFile64::<object::Endianness>::parse(elf)
        .map_err(|e| Error(format!("not an ELF64 kernel: {e}")))?;
    let endian = f.endian();
    for ph in f.elf_program_headers() {
        let Ok(Some(mut notes)) = ph.notes(endian, elf) else {
            continue;
        };
        while let Ok(Some(n)) = notes.next() {
            if n.name() == b"Xen" && n.n_type(endian) == PHYS32_ENTRY {
                let d = n.desc();
                return Ok(match d.len() {
                    4 => Some(u32::from_le_bytes([d[0], d[1], d[2], d[3]]).into()),
                    8 => Some(u64::from_le_bytes([
                        d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7],
                    ])),
                    _ => None,
                });
            }
        }
    }
    Ok(None)
}

/// The applets of a busybox binary as paths relative to `/` (`bin/sh`,
/// `sbin/insmod`, ...; `bin/busybox` itself left out), from `--list-full`.
pub fn busybox_applets(busybox: &Path) -> Result<Vec<String>> {
    let out = Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| Error(format!("{} --list-full: {e}", busybox.display())))?;
    if !out.status.success() {
        bail!("{} --list-full failed", busybox.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty() && l != "bin/busybox")
        .collect())
}

/// The initramfs: busybox, its applet symlinks, `/dev/console` and `/init`.
pub fn initramfs(busybox: &Path) -> Result<Vec<u8>> {
    let applets = busybox_applets(busybox)?;
    let mut c = Cpio::default();
    for d in [
        "bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "run", "etc",
        "root",
    ] {
        c.dir(d);
    }
    c.file("bin/busybox", 0o755, &std::fs::read(busybox)?);
    for a in &applets {
        // bin/sh -> /bin/busybox
        c.symlink(a, "/bin/busybox");
    }
    c.node("dev/console", 0o600, 5, 1);
    c.file("init", 0o755, INIT.as_bytes());
    c.file("etc/profile", 0o644, b"export PS1='linux# '\n");
    Ok(c.finish())
}

/// Where the init looks for the command `cargo xtask run --exec` gives it.
pub const EXEC_FILE: &str = "etc/warden-exec";

/// The initramfs `base` with `/etc/warden-exec` = `cmd` added: a second
/// newc archive after the first (the kernel unpacks concatenated archives
/// in order), so any bytes of the command reach the init unquoted, and its
/// length is not bounded by the kernel's command line (Xen 4.17 keeps 1023
/// bytes of dom0's). Both inits (the test initramfs's and the dom0 image's)
/// run it. Written once per (initramfs, command) under
/// `target/warden/linux-exec/`; files there unused for a day are removed
/// (the dom0 image is about 85 MiB).
pub fn initrd_with_exec(base: &Path, cmd: &str) -> Result<PathBuf> {
    initrd_with(base, Some(cmd), &[])
}

/// A file to add to an initramfs: its path there (relative, no leading
/// `/`) and its bytes.
pub type ExtraFile = (String, Vec<u8>);

/// The initramfs `base` with, in a second archive, `/etc/warden-exec` =
/// `exec` (if given) and `files` (their parent directories made, mode
/// 0644), written as [`initrd_with_exec`] writes its file.
pub fn initrd_with(base: &Path, exec: Option<&str>, files: &[ExtraFile]) -> Result<PathBuf> {
    use std::hash::{Hash, Hasher};
    let mut bytes = std::fs::read(base).map_err(|e| Error(format!("{}: {e}", base.display())))?;
    let mut c = Cpio::default();
    if let Some(cmd) = exec {
        c.file(EXEC_FILE, 0o644, cmd.as_bytes());
    }
    let mut dirs = std::collections::BTreeSet::new();
    for (path, data) in files {
        let path = path.trim_start_matches('/');
        if path.is_empty()
            || path
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(Error(format!(
                "initramfs path '{path}': not a plain relative path"
            )));
        }
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            let d = &path[..at + i];
            if dirs.insert(d.to_string()) {
                c.dir(d);
            }
            at += i + 1;
        }
        c.file(path, 0o644, data);
    }
    bytes.extend_from_slice(&c.finish());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    let dir = crate::bare_metal_target_dir().join("linux-exec");
    std::fs::create_dir_all(&dir)?;
    let name = format!("initrd-{:016x}", h.finish());
    let p = dir.join(&name);
    if std::fs::read(&p).ok().as_deref() != Some(&bytes[..]) {
        write_atomic(&p, &bytes)?;
    } else if let Ok(f) = std::fs::File::options().write(true).open(&p) {
        // Reused: it is not stale.
        let _ = f.set_modified(std::time::SystemTime::now());
    }
    prune_stale(&dir, &name, std::time::Duration::from_secs(24 * 3600));
    Ok(p)
}

/// Remove the `initrd-*` files of `dir` but `keep` not modified for `age`.
fn prune_stale(dir: &Path, keep: &str, age: std::time::Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == keep || !name.starts_with("initrd-") {
            continue;
        }
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|d| d > age);
        if stale {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A newc ("070701") cpio archive, as the kernel's initramfs unpacker reads it.
#[derive(Default)]
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime: reproducible
            data.len() as u32,
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }
    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }
    pub fn dir(&mut self, name: &str) {
        self.entry(name, S_IFDIR | 0o755, 2, (0, 0), &[]);
    }
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, S_IFREG | perm, 1, (0, 0), data);
    }
    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes());
    }
    pub fn node(&mut self, name: &str, perm: u32, major: u32, minor: u32) {
        self.entry(name, S_IFCHR | perm, 1, (major, minor), &[]);
    }
    /// The trailer; the archive's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[]);
        while !self.out.len().is_multiple_of(512) {
            self.out.push(0);
        }
        self.out
    }
}

/// `cargo xtask linux-assets --help`.
pub const ASSETS_HELP: &str = "\
cargo xtask linux-assets [--refresh] [--xen]
  Download Debian's Linux kernel (linux-image-<version>-amd64-unsigned, the version
  linux-image-amd64 depends on) and busybox-static with apt-get download into
  target/linux/ (once), unpack the ELF vmlinux from the bzImage, build the
  initramfs (busybox + xtask/src/linux-init.sh as /init) and print the paths.
  --refresh: resolve the kernel version and download again
  --xen:     also Debian's Xen 4.17 (xen-hypervisor-4.17-amd64), for bench-linux";

/// `cargo xtask linux-assets`.
pub fn assets_cmd(args: &[String]) -> Result<()> {
    use lexopt::prelude::*;
    let (mut refresh, mut with_xen) = (false, false);
    let mut p = lexopt::Parser::from_args(args.iter().cloned());
    while let Some(arg) = p.next()? {
        match arg {
            Long("refresh") => refresh = true,
            Long("xen") => with_xen = true,
            Long("help") | Short('h') => {
                println!("{ASSETS_HELP}");
                return Ok(());
            }
            other => bail!("linux-assets: {}", other.unexpected()),
        }
    }
    deps::ensure(deps::LINUX)?;
    let a = assets(refresh)?;
    println!("kernel {}", a.version);
    println!("{}  (bzImage)", a.bzimage.display());
    println!(
        "{}  (ELF, PVH entry PHYS32_ENTRY {:#x})",
        a.vmlinux.display(),
        a.pvh_entry
    );
    println!("{}  (initramfs: busybox, /init)", a.initrd.display());
    if with_xen {
        println!("{}  (Xen 4.17)", xen(refresh)?.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_version_from_apt_cache() {
        let t = "linux-image-amd64\n  Depends: linux-image-6.1.0-57-amd64\n";
        assert_eq!(parse_kernel_version(t).as_deref(), Some("6.1.0-57-amd64"));
        assert_eq!(parse_kernel_version("x\n  Depends: linux-base\n"), None);
    }

    #[test]
    fn cpio_newc_layout() {
        let mut c = Cpio::default();
        c.file("init", 0o755, b"#!/bin/sh\n");
        let a = c.finish();
        assert!(a.starts_with(b"070701"));
        // Header (110 bytes) + "init\0" padded to 4, then the data.
        assert_eq!(&a[110..115], b"init\0");
        assert_eq!(&a[116..126], b"#!/bin/sh\n");
        // The size field (7th) is the data length.
        assert_eq!(&a[6 + 6 * 8..6 + 7 * 8], b"0000000a");
        let t = a.windows(10).position(|w| w == b"TRAILER!!!").unwrap();
        assert!(t > 126);
        assert_eq!(a.len() % 512, 0);
    }

    #[test]
    fn bzimage_header_is_checked() {
        assert!(bzimage_payload(&[0u8; 1024]).is_err());
        let mut bz = vec![0u8; 4096];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        bz[0x1f1] = 1; // setup: 2 sectors; payload at 1024 + 0x10
        bz[0x248..0x24c].copy_from_slice(&0x10u32.to_le_bytes());
        bz[0x24c..0x250].copy_from_slice(&8u32.to_le_bytes());
        assert!(bzimage_payload(&bz).is_err(), "not xz");
        bz[1024 + 0x10..1024 + 0x16].copy_from_slice(XZ_MAGIC);
        assert_eq!(bzimage_payload(&bz).unwrap().len(), 8);
        bz[0x24c..0x250].copy_from_slice(&0x10000u32.to_le_bytes());
        assert!(bzimage_payload(&bz).is_err(), "outside the file");
    }
}
