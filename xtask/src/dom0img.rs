//! The dom0 image (issue 11 §4): Debian's Linux as the control domain with
//! Debian 12's own Xen 4.17 toolstack, in one initramfs; `cargo xtask
//! dom0-image` builds it, `cargo xtask run-xen` boots it on Debian's Xen 4.17
//! (the reference Warden is compared with).
//!
//! Nothing downloaded is committed. Under `target/dom0/`:
//! - `toolstack/`: the packages of [`PACKAGES`] unpacked with `dpkg -x`
//!   (`apt-get download`, once), plus the shared libraries `ldd` finds
//!   outside them (libc, libz, liblzma, libzstd, libuuid, ... and the
//!   dynamic loader), copied from the host (a Debian 12 host: the same
//!   libraries Debian's binaries were built against), and the files of
//!   [`HOTPLUG_TOOLS`]. `toolstack.list` names the packages and the host
//!   libraries.
//! - `modules-VERSION/`: the kernel modules of [`MODULES`] and what they
//!   depend on (`depends=` of their `.modinfo`), from the same
//!   `linux-image-VERSION-unsigned` package as `target/linux/vmlinux`
//!   (unpacked once: [`crate::linux::kernel_package`]); its
//!   `config-VERSION` says which are built in (`=y`: nothing to load).
//!   `order` lists them dependencies first, as dom0's init loads them;
//!   `demo-order` the same for the demo domU's [`DEMO_MODULES`].
//! - `initrd`: dom0's initramfs (newc cpio, uncompressed): busybox and its
//!   applets, the toolstack tree, the modules, `/init` (`dom0-init.sh`), the
//!   demo domU (`/etc/xen/demo.cfg`, `/etc/xen/demo-disk.cfg`, the same ELF
//!   vmlinux as `/boot/demo-vmlinux`, `/boot/demo-initrd`), `/var/run -> /run`,
//!   `/var/lock -> /run/lock`.
//! - `demo-initrd`: the demo domU's initramfs (busybox, `demo-init.sh`, its
//!   modules, [`DEMO_SCRIPTS`], `gnttool`).
//!
//! A command for dom0 reaches it as `/etc/warden-exec`, a second cpio
//! archive appended to the initramfs ([`initrd_for`],
//! [`crate::linux::initrd_with_exec`]): run with `sh -c` once the toolstack
//! is up, after which dom0 prints `dom0: exec status N` and powers off.

use crate::linux::{self, Cpio};
use crate::qemu::{self, Boot, Machine, Module};
use crate::{Error, Result, bail, deps, linuxbench, workspace_root};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// dom0's `/init`.
pub const INIT: &str = include_str!("dom0-init.sh");
/// The demo domU's `/init`.
pub const DEMO_INIT: &str = include_str!("demo-init.sh");
/// Scripts in the demo domU's `/etc/demo/`, run by its init for
/// `demo.run=NAME` on its command line.
pub const DEMO_SCRIPTS: &[(&str, &str)] = &[
    ("disk-test", include_str!("demo-disk-test.sh")),
    ("disk-bench", include_str!("demo-disk-bench.sh")),
];

/// Debian 12's Xen 4.17 toolstack: `xl`, xenstored, xenconsoled,
/// xen-init-dom0, the xenstore clients and the libraries they load.
pub const PACKAGES: &[&str] = &[
    "xen-utils-4.17",
    "xen-utils-common",
    "xenstore-utils",
    "libxenmisc4.17",
    "libxencall1",
    "libxenevtchn1",
    "libxenforeignmemory1",
    "libxengnttab1",
    "libxenstore4",
    "libxentoollog1",
    "libxendevicemodel1",
    "libxenhypfs1",
    "libxentoolcore1",
    "libyajl2",
];

/// The programs Debian's hotplug scripts (`/etc/xen/scripts/block` and the
/// files it sources, from xen-utils-common; xl runs them for a `disk=` of a
/// file) call that busybox lacks or implements differently, each from its
/// Debian package (unpacked, only these files kept): the scripts' `bash`,
/// `flock` of locking.sh, and util-linux's `losetup`, whose `-a` output is
/// what the script's sharing check parses.
pub const HOTPLUG_TOOLS: &[(&str, &[&str])] = &[
    ("bash", &["bin/bash"]),
    ("util-linux", &["usr/bin/flock"]),
    ("mount", &["sbin/losetup"]),
];

/// The kernel modules dom0 wants, with the Kconfig symbol that says whether
/// Debian's kernel builds each in (`y`) or as a module (`m`): the toolstack's
/// devices (privcmd, evtchn, gntdev, gntalloc, xenfs), the disk and network
/// backends, loop files for guest disks and a bridge for guest networks.
pub const MODULES: &[(&str, &str)] = &[
    ("xen-privcmd", "XEN_PRIVCMD"),
    ("xen-evtchn", "XEN_DEV_EVTCHN"),
    ("xen-gntdev", "XEN_GNTDEV"),
    ("xen-gntalloc", "XEN_GRANT_DEV_ALLOC"),
    ("xenfs", "XENFS"),
    ("xen-blkback", "XEN_BLKDEV_BACKEND"),
    ("xen-netback", "XEN_NETDEV_BACKEND"),
    ("loop", "BLK_DEV_LOOP"),
    ("bridge", "BRIDGE"),
];

/// The kernel modules the demo domU loads (its init, in load order), as
/// [`MODULES`]: the block frontend (xvda) and ext4, which Debian's kernel
/// uses for ext2 (`CONFIG_EXT4_USE_FOR_EXT2`; busybox's mke2fs makes ext2),
/// with crc32c's generic driver for its checksums; the grant devices
/// `/dev/xen/gntdev` and `/dev/xen/gntalloc` for [`GNTTOOL`].
pub const DEMO_MODULES: &[(&str, &str)] = &[
    ("xen-blkfront", "XEN_BLKDEV_FRONTEND"),
    ("crc32c-generic", "CRYPTO_CRC32C"),
    ("ext4", "EXT4_FS"),
    ("xen-gntdev", "XEN_GNTDEV"),
    ("xen-gntalloc", "XEN_GRANT_DEV_ALLOC"),
];

/// Where the demo domU has `gnttool` (`tests/gnttool`, built by
/// [`crate::build::build_gnttool`]): `gnttool share DOMID...` grants pages
/// through gntalloc, `gnttool map DOMID GREF` maps another domain's grant
/// through gntdev (the cross-guest grant test in `tests/tests/network.rs`).
pub const GNTTOOL: &str = "/usr/bin/gnttool";

/// Network (issue 12): what Debian's `vif-bridge` hotplug script (from
/// xen-utils-common; xl runs it for a `vif=[bridge=...]`) needs beyond
/// busybox, each from its Debian package (only these files kept, in
/// `target/dom0/net-VERSION/root/`): the scripts' `bash`. Its `ip`, `brctl`,
/// `awk`, `logger` and `expr` are busybox's.
pub const NET_TOOLS: &[(&str, &[&str])] = &[("bash", &["bin/bash"])];

/// The demo domU's network modules (Kconfig symbols as [`MODULES`]): the
/// network frontend, loaded by its init for `demo.net=ADDR/LEN`. They go
/// into the demo's initramfs as a second archive ([`demo_net_archive`]).
pub const DEMO_NET_MODULES: &[(&str, &str)] = &[("xen-netfront", "XEN_NETDEV_FRONTEND")];

/// dom0's bridge for guest networks, with its address (made by dom0's init;
/// the demo domU on it with [`DEMO_NET_CFG`]). The addresses are in
/// TEST-NET-1 (RFC 5737): the bridge has no uplink, nothing leaves the
/// emulated machine.
pub const BRIDGE: &str = "xenbr0";
/// dom0's address on [`BRIDGE`].
pub const DOM0_NET_ADDR: &str = "192.0.2.1";
/// The demo domU's address with [`DEMO_NET_CFG`] (`demo.net=` on its
/// command line).
pub const DEMO_NET_ADDR: &str = "192.0.2.2";
/// The demo domU with a network interface on [`BRIDGE`].
pub const DEMO_NET_CFG: &str = "/etc/xen/demo-net.cfg";

/// dom0's line once xenstored, xen-init-dom0 and xenconsoled are up.
pub const TOOLSTACK_UP: &str = "dom0: toolstack up";
/// The start of dom0's line after its command (`/etc/warden-exec`) ended.
pub const EXEC_STATUS: &str = "dom0: exec status ";
/// The demo domU's first line (in its console log).
pub const DEMO_UP: &str = "demo: userspace up";
/// The demo domU's configuration in dom0.
pub const DEMO_CFG: &str = "/etc/xen/demo.cfg";
/// The demo domU with a disk: `/root/disk.img` (dom0 makes it) as its xvda.
pub const DEMO_DISK_CFG: &str = "/etc/xen/demo-disk.cfg";
/// Where xenconsoled logs the demo domU's console.
pub const DEMO_LOG: &str = "/var/log/xen/console/guest-demo.log";
/// dom0's command line.
pub const DOM0_CMDLINE: &str = "console=hvc0";

/// Where the image and its parts live.
pub fn dir() -> PathBuf {
    workspace_root().join("target").join("dom0")
}

/// The built image.
#[derive(Debug, Clone)]
pub struct Image {
    /// The kernel release (dom0's and the demo domU's kernel).
    pub kernel_version: String,
    /// dom0's kernel: the ELF vmlinux of `target/linux/`.
    pub vmlinux: PathBuf,
    /// dom0's initramfs.
    pub initrd: PathBuf,
    /// The demo domU's initramfs (also inside `initrd`).
    pub demo_initrd: PathBuf,
    /// The .deb files the toolstack came from.
    pub packages: Vec<String>,
    /// Shared libraries copied from the host (paths inside the image).
    pub host_libraries: Vec<String>,
    /// Kernel modules in load order (paths under /lib/modules/VERSION/).
    pub modules: Vec<String>,
    /// Wanted modules the kernel has built in.
    pub builtin: Vec<String>,
    /// The demo domU's modules in load order (in its initramfs).
    pub demo_modules: Vec<String>,
}

/// Build the image (downloading what is missing) and return it.
/// `refresh`: download and unpack everything again.
pub fn image(refresh: bool) -> Result<Image> {
    let d = dir();
    std::fs::create_dir_all(&d)?;
    // Test binaries run side by side and each asks for the image: one
    // builds it at a time (the others then find it built). Without this,
    // two unpacked the toolstack at once and the second rename of its tree
    // onto `toolstack/` failed with ENOTEMPTY. The lock is released when
    // the file is closed, also if this process dies.
    let lock_path = d.join(".build-lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| Error(format!("{}: {e}", lock_path.display())))?;
    lock.lock()
        .map_err(|e| Error(format!("lock {}: {e}", lock_path.display())))?;
    let a = linux::assets(refresh)?;
    let busybox = linux::dir().join("busybox");
    let (packages, host_libraries) = toolstack(refresh)?;
    let (dom0_modules, demo_modules) = kernel_modules(&a.version, refresh)?;
    let (modules, builtin) = (dom0_modules.order, dom0_modules.builtin);
    let mdir = d.join(format!("modules-{}", a.version));

    let net = net_parts(&a.version, refresh)?;
    let demo = [
        demo_initramfs(
            &busybox,
            &mdir,
            &a.version,
            &demo_modules.order,
            &crate::build::build_gnttool()?,
        )?,
        demo_net_archive(&net, &a.version)?,
    ]
    .concat();
    let demo_initrd = d.join("demo-initrd");
    write_if_changed(&demo_initrd, &demo)?;

    let mut t = Tree::default();
    busybox_tree(&mut t, &busybox)?;
    t.add_dir_tree(&d.join("toolstack"), "", &|p| !excluded(p))?;
    let demo_only: BTreeSet<String> = demo_modules
        .order
        .iter()
        .filter(|m| !modules.contains(m))
        .map(|m| format!("modules/{}/{m}", a.version))
        .collect();
    t.add_dir_tree(&mdir.join("lib"), "lib", &|p| !demo_only.contains(p))?;
    t.file(
        "etc/warden/modules",
        0o644,
        modules.iter().map(|m| format!("{m}\n")).collect::<String>(),
    );
    t.file("init", 0o755, INIT);
    t.file("usr/local/bin/wait-log", 0o755, WAIT_LOG);
    t.file("usr/local/bin/vbd-plug", 0o755, VBD_PLUG);
    t.file("etc/xen/demo.cfg", 0o644, demo_cfg());
    t.file("etc/xen/demo-disk.cfg", 0o644, demo_disk_cfg());
    t.add_dir_tree(&net.join("root"), "", &|_| true)?;
    t.file("etc/xen/demo-net.cfg", 0o644, demo_net_cfg());
    t.file("boot/demo-vmlinux", 0o644, std::fs::read(&a.vmlinux)?);
    t.file("boot/demo-initrd", 0o644, demo);
    t.file(
        "etc/profile",
        0o644,
        "export PS1='dom0# '\nexport PATH=/usr/lib/xen-4.17/bin:/usr/local/bin:/bin:/sbin:/usr/bin:/usr/sbin\n",
    );
    t.file("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n");
    t.file("etc/group", 0o644, "root:x:0:\n");
    for p in [
        "dev",
        "proc",
        "sys",
        "tmp",
        "run",
        "root",
        "var/log/xen/console",
        "var/lib/xen",
    ] {
        t.dir(p);
    }
    t.symlink("var/run", "/run");
    t.symlink("var/lock", "/run/lock");
    t.node("dev/console", 0o600, 5, 1);
    let initrd = d.join("initrd");
    write_if_changed(&initrd, &t.cpio())?;
    Ok(Image {
        kernel_version: a.version,
        vmlinux: a.vmlinux,
        initrd,
        demo_initrd,
        packages,
        host_libraries,
        modules,
        builtin,
        demo_modules: demo_modules.order,
    })
}

/// `vbd-plug DOMAIN [N [MIB]]`: parallel VBD plug (issue 12): one disk
/// attached to a running domU and detached, then N (default 8) at once,
/// each timed until the domU's blkfront is Connected (`plug: ` lines; the
/// QEMU test `tests/tests/block.rs` and `cargo xtask bench-plug` run it).
pub const VBD_PLUG: &str = include_str!("vbd-plug.sh");

/// `wait-log FILE TEXT [SECONDS]`: wait until FILE has a line with TEXT
/// (print it), polling every 0.2 s; exit 1 after SECONDS (default 300).
pub const WAIT_LOG: &str = r#"#!/bin/sh
# wait-log FILE TEXT [SECONDS]: wait until FILE has a line containing TEXT
# (printed), polling every 0.2 s; status 1 after SECONDS (default 300).
[ $# -ge 2 ] || { echo "usage: wait-log FILE TEXT [SECONDS]" >&2; exit 2; }
n=$(( ${3:-300} * 5 ))
while [ "$n" -gt 0 ]; do
    grep -F -m 1 -- "$2" "$1" 2>/dev/null && exit 0
    sleep 0.2
    n=$((n - 1))
done
echo "wait-log: no '$2' in $1 after ${3:-300} s" >&2
exit 1
"#;

/// The demo domU's xl configuration.
pub fn demo_cfg() -> String {
    "# The demo domU (xtask::dom0img): Debian's kernel as a PVH guest with a busybox\n\
     # initramfs whose init prints \"demo: userspace up\" on its console\n\
     # (/var/log/xen/console/guest-demo.log), then idles with a shell on it\n\
     # (xl console demo). To power off instead:\n\
     #   xl create /etc/xen/demo.cfg 'extra=\"console=hvc0 demo.poweroff\"'\n\
     name = \"demo\"\n\
     type = \"pvh\"\n\
     kernel = \"/boot/demo-vmlinux\"\n\
     ramdisk = \"/boot/demo-initrd\"\n\
     memory = 128\n\
     vcpus = 1\n\
     extra = \"console=hvc0\"\n\
     on_poweroff = \"destroy\"\n"
        .to_string()
}

/// The demo domU with a disk ([`DEMO_DISK_CFG`]): [`demo_cfg`] plus the
/// image file `/root/disk.img` as its xvda, which dom0 makes first.
pub fn demo_disk_cfg() -> String {
    "# The demo domU (/etc/xen/demo.cfg) with /root/disk.img as its disk xvda,\n\
     # served by dom0's xen-blkback from a loop device (Debian's hotplug script\n\
     # /etc/xen/scripts/block). Make the image first, e.g.\n\
     #   dd if=/dev/zero of=/root/disk.img bs=1M count=64\n\
     # The domU's init runs /etc/demo/NAME for demo.run=NAME (disk-test,\n\
     # disk-bench), e.g.\n\
     #   xl create /etc/xen/demo-disk.cfg 'extra=\"console=hvc0 demo.run=disk-test demo.poweroff\"'\n"
        .to_string()
        + demo_cfg()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .as_str()
        + "disk = [ 'format=raw, vdev=xvda, access=rw, target=/root/disk.img' ]\n"
}

/// The demo domU with a network interface ([`DEMO_NET_CFG`]): [`demo_cfg`]
/// plus a vif on dom0's bridge; `demo.net=` gives the domU its address.
pub fn demo_net_cfg() -> String {
    format!(
        "# The demo domU (/etc/xen/demo.cfg) with a network interface on dom0's bridge\n\
         # {BRIDGE} ({DOM0_NET_ADDR}): xen-netback in dom0, Debian's vif-bridge hotplug\n\
         # script, xen-netfront in the domU, which takes {DEMO_NET_ADDR} (demo.net=).\n\
         # demo.net-test=1 also runs its side of the network test (a 16 MiB TCP\n\
         # transfer each way with busybox nc, SHA-256 on its console).\n\
         {}\
         extra = \"console=hvc0 demo.net={DEMO_NET_ADDR}/24\"\n\
         vif = [ 'bridge={BRIDGE}' ]\n",
        demo_cfg()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("extra"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    )
}

/// The network parts (once unpacked into `target/dom0/net-VERSION/`):
/// `root/` with the files of [`NET_TOOLS`] (for dom0's image) and
/// `demo/lib/modules/VERSION/` with [`DEMO_NET_MODULES`], listed in load
/// order in `demo/order`. Returns the directory.
fn net_parts(version: &str, refresh: bool) -> Result<PathBuf> {
    let d = dir();
    let ndir = d.join(format!("net-{version}"));
    if !refresh && ndir.join("demo").join("order").is_file() && ndir.join("root").is_dir() {
        return Ok(ndir);
    }
    let tmp = linux::scratch(&d, "net")?;
    let pkgs: Vec<&str> = NET_TOOLS.iter().map(|(p, _)| *p).collect();
    for (deb, (_, files)) in linux::download_all(&pkgs, &tmp)?.iter().zip(NET_TOOLS) {
        let members: Vec<String> = files.iter().map(|f| format!("./{f}")).collect();
        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
        std::fs::create_dir_all(tmp.join("root"))?;
        linux::extract(deb, &tmp.join("root"), &refs)?;
        std::fs::remove_file(deb)?;
    }
    let package = linux::kernel_package(version)?;
    let config = std::fs::read_to_string(package.join(format!("boot/config-{version}")))?;
    let mut order = Vec::new();
    for (name, symbol) in DEMO_NET_MODULES {
        match config_value(&config, symbol) {
            Some('y') => continue,
            Some(_) => {}
            None => bail!("Debian's kernel {version} lacks CONFIG_{symbol} ({name})"),
        }
        // The network frontends live under drivers/net/.
        let member = format!("./lib/modules/{version}/kernel/drivers/net/{name}.ko");
        let demo = tmp.join("demo");
        std::fs::create_dir_all(&demo)?;
        linux::copy_members(&package, &demo, &[&member])?;
        let ko = std::fs::read(demo.join(&member))?;
        let deps = module_depends(&ko).map_err(|e| Error(format!("{member}: {e}")))?;
        if !deps.is_empty() {
            bail!("{name} depends on {deps:?}, which the demo domU's image does not load");
        }
        order.push(format!("kernel/drivers/net/{name}.ko"));
    }
    std::fs::create_dir_all(tmp.join("demo"))?;
    let lines: String = order.iter().map(|m| format!("{m}\n")).collect();
    std::fs::write(tmp.join("demo").join("order"), lines)?;
    let _ = std::fs::remove_dir_all(&ndir);
    std::fs::create_dir_all(&ndir)?;
    linux::rename(&tmp.join("root"), &ndir.join("root"))?;
    linux::rename(&tmp.join("demo"), &ndir.join("demo"))?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(ndir)
}

/// The demo domU's network modules as a second cpio archive appended to its
/// initramfs: the modules under `/lib/modules/VERSION/` and their load
/// order in `/etc/demo/net-modules` (read by its init for `demo.net=`).
fn demo_net_archive(net: &Path, version: &str) -> Result<Vec<u8>> {
    let order = std::fs::read_to_string(net.join("demo").join("order"))?;
    let mut t = Tree::default();
    let mroot = net.join("demo").join("lib").join("modules").join(version);
    for m in order.lines().filter(|l| !l.is_empty()) {
        t.file(
            &format!("lib/modules/{version}/{m}"),
            0o644,
            std::fs::read(mroot.join(m))?,
        );
    }
    t.file("etc/demo/net-modules", 0o644, order);
    Ok(t.cpio())
}

/// Paths of the unpacked packages left out of the image: documentation,
/// the Python tools (pygrub, the migration helpers: no Python in dom0) with
/// pygrub's file-system library and plugins, and SysV init scripts.
fn excluded(rel: &str) -> bool {
    let under = |d: &str| rel == d || rel.strip_prefix(d).is_some_and(|r| r.starts_with('/'));
    under("usr/share")
        || under("usr/lib/xen-4.17/lib/python")
        || under("usr/lib/xen-4.17/lib/x86_64-linux-gnu")
        || under("etc/init.d")
}

fn write_if_changed(p: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(p).ok().as_deref() != Some(bytes) {
        linux::write_atomic(p, bytes)?;
    }
    Ok(())
}

/// The toolstack tree `target/dom0/toolstack/` (unpacked once): the .deb
/// names and the host libraries copied into it.
fn toolstack(refresh: bool) -> Result<(Vec<String>, Vec<String>)> {
    let d = dir();
    let root = d.join("toolstack");
    let list = d.join("toolstack.list");
    if !refresh
        && root.is_dir()
        && let Ok(text) = std::fs::read_to_string(&list)
    {
        let (debs, libs) = parse_toolstack_list(&text);
        // A list from before a package was added: unpack again.
        let all = PACKAGES
            .iter()
            .chain(HOTPLUG_TOOLS.iter().map(|(p, _)| p))
            .all(|p| debs.iter().any(|d| d.starts_with(&format!("{p}_"))));
        if all {
            return Ok((debs, libs));
        }
    }
    let tmp = linux::scratch(&d, "toolstack")?;
    let new_root = tmp.join("root");
    let mut debs = Vec::new();
    for deb in linux::download_all(PACKAGES, &tmp)? {
        let st = Command::new("dpkg")
            .arg("-x")
            .arg(&deb)
            .arg(&new_root)
            .status()
            .map_err(|e| Error(format!("dpkg -x: {e}")))?;
        if !st.success() {
            bail!("dpkg -x {} failed", deb.display());
        }
        debs.push(
            deb.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        std::fs::remove_file(&deb)?;
    }
    let hotplug: Vec<&str> = HOTPLUG_TOOLS.iter().map(|(p, _)| *p).collect();
    for (deb, (pkg, files)) in linux::download_all(&hotplug, &tmp)?
        .into_iter()
        .zip(HOTPLUG_TOOLS)
    {
        let members: Vec<String> = files.iter().map(|f| format!("./{f}")).collect();
        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
        let unpacked = tmp.join(format!("{pkg}-files"));
        std::fs::create_dir_all(&unpacked)?;
        linux::extract(&deb, &unpacked, &refs)?;
        for f in *files {
            let to = new_root.join(f);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            linux::rename(&unpacked.join(f), &to)?;
        }
        debs.push(
            deb.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        std::fs::remove_file(&deb)?;
    }
    let libs = copy_host_libraries(&new_root)?;
    let _ = std::fs::remove_dir_all(&root);
    linux::rename(&new_root, &root)?;
    let _ = std::fs::remove_dir_all(&tmp);
    let mut text = String::new();
    for deb in &debs {
        text.push_str(&format!("package {deb}\n"));
    }
    for l in &libs {
        text.push_str(&format!("host {l}\n"));
    }
    linux::write_atomic(&list, text.as_bytes())?;
    Ok((debs, libs))
}

fn parse_toolstack_list(text: &str) -> (Vec<String>, Vec<String>) {
    let (mut debs, mut libs) = (Vec::new(), Vec::new());
    for l in text.lines() {
        if let Some(d) = l.strip_prefix("package ") {
            debs.push(d.to_string());
        } else if let Some(h) = l.strip_prefix("host ") {
            libs.push(h.to_string());
        }
    }
    (debs, libs)
}

/// What `ldd` says of one dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LddLine {
    /// Resolved to this file (`libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6
    /// (0x...)`, or the loader's own `/lib64/ld-linux-x86-64.so.2 (0x...)`).
    Found(String),
    /// `libfoo.so.1 => not found`.
    Missing(String),
}

/// The dependencies in `ldd`'s output (the vDSO, which has no file, left out).
pub fn parse_ldd(out: &str) -> Vec<LddLine> {
    out.lines()
        .filter_map(|l| {
            let l = l.trim();
            if let Some((name, rest)) = l.split_once(" => ") {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    return Some(LddLine::Missing(name.trim().to_string()));
                }
                let path = rest.split_whitespace().next()?;
                return path.starts_with('/').then(|| LddLine::Found(path.into()));
            }
            let path = l.split_whitespace().next()?;
            path.starts_with('/').then(|| LddLine::Found(path.into()))
        })
        .collect()
}

/// Host libraries that `ldd` does not show because they are loaded at run
/// time: glibc opens libgcc_s for `pthread_cancel` (xl aborts without it:
/// "libgcc_s.so.1 must be installed for pthread_cancel to work").
pub const DLOPENED: &[&str] = &["libgcc_s.so.1"];

/// Whether `p` is an ELF file.
fn is_elf(p: &Path) -> bool {
    use std::io::Read;
    let mut m = [0u8; 4];
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut m))
        .is_ok()
        && &m == b"\x7fELF"
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let ft = e.file_type()?;
        if ft.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// `ldd` every ELF file of the unpacked packages (with `LD_LIBRARY_PATH` on
/// their own library directories) and copy each library found outside
/// them from the host into `root` at the path `ldd` names (symbolic links
/// followed: the image holds the file under that name). Returns the copied
/// paths (relative to `/`).
fn copy_host_libraries(root: &Path) -> Result<Vec<String>> {
    let lib_path = [
        "usr/lib/x86_64-linux-gnu",
        "usr/lib/xen-4.17/lib/x86_64-linux-gnu",
    ]
    .iter()
    .map(|p| root.join(p).to_string_lossy().into_owned())
    .collect::<Vec<_>>()
    .join(":");
    let mut files = Vec::new();
    walk(root, &mut files)?;
    let mut host = BTreeSet::new();
    let mut missing = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(root).unwrap_or(f).to_string_lossy();
        if excluded(&rel) || f.is_symlink() || !is_elf(f) {
            continue;
        }
        let out = Command::new("ldd")
            .arg(f)
            .env("LD_LIBRARY_PATH", &lib_path)
            .output()
            .map_err(|e| Error(format!("ldd: {e}")))?;
        // "not a dynamic executable" (static files) is not an error here.
        for dep in parse_ldd(&String::from_utf8_lossy(&out.stdout)) {
            match dep {
                LddLine::Found(p) if !Path::new(&p).starts_with(root) => {
                    host.insert(p);
                }
                LddLine::Found(_) => {}
                LddLine::Missing(name) => missing.push(format!("{rel}: {name}")),
            }
        }
    }
    for lib in DLOPENED {
        let p = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"]
            .iter()
            .map(|d| format!("{d}/{lib}"))
            .find(|p| Path::new(p).is_file())
            .ok_or_else(|| {
                Error(format!(
                    "{lib} is not on this host (apt-get install libgcc-s1)"
                ))
            })?;
        host.insert(p);
    }
    if !missing.is_empty() {
        bail!(
            "libraries neither in the Xen packages nor on this host (a Debian 12 host is expected):\n  {}",
            missing.join("\n  ")
        );
    }
    let mut copied = Vec::new();
    for p in host {
        let rel = p.trim_start_matches('/');
        let to = root.join(rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&p, &to).map_err(|e| Error(format!("copy {p}: {e}")))?;
        copied.push(format!("/{rel}"));
    }
    Ok(copied)
}

/// `CONFIG_SYMBOL` in a kernel config file: `Some('y')`, `Some('m')`, or
/// `None` when not set.
pub fn config_value(config: &str, symbol: &str) -> Option<char> {
    let key = format!("CONFIG_{symbol}=");
    config
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.chars().next())
        .filter(|c| *c == 'y' || *c == 'm')
}

/// A module's name as `depends=` and file names compare (`-` and `_` equal).
fn module_key(name: &str) -> String {
    name.trim_end_matches(".ko").replace('_', "-")
}

/// The `depends=` list of a module's `.modinfo` section.
pub fn module_depends(ko: &[u8]) -> Result<Vec<String>> {
    use object::{Object, ObjectSection};
    let f = object::File::parse(ko).map_err(|e| Error(format!("not an ELF module: {e}")))?;
    let Some(s) = f.section_by_name(".modinfo") else {
        bail!("no .modinfo section");
    };
    let data = s
        .data()
        .map_err(|e| Error(format!(".modinfo unreadable: {e}")))?;
    Ok(modinfo_depends(data))
}

/// The `depends=` list of a `.modinfo` section's NUL-separated `key=value`s.
pub fn modinfo_depends(modinfo: &[u8]) -> Vec<String> {
    modinfo
        .split(|b| *b == 0)
        .filter_map(|kv| kv.strip_prefix(b"depends="))
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Module names in load order: each after its dependencies, otherwise in the
/// order of `wanted`. `deps`: a module's dependencies (by [`module_key`]).
pub fn load_order(wanted: &[String], deps: &BTreeMap<String, Vec<String>>) -> Result<Vec<String>> {
    fn visit(
        m: &str,
        deps: &BTreeMap<String, Vec<String>>,
        done: &mut Vec<String>,
        path: &mut Vec<String>,
    ) -> Result<()> {
        if done.iter().any(|d| d == m) {
            return Ok(());
        }
        if path.iter().any(|p| p == m) {
            bail!(
                "modules depend on each other in a cycle: {} -> {m}",
                path.join(" -> ")
            );
        }
        path.push(m.to_string());
        for d in deps.get(m).into_iter().flatten() {
            visit(d, deps, done, path)?;
        }
        path.pop();
        done.push(m.to_string());
        Ok(())
    }
    let mut done = Vec::new();
    for m in wanted {
        visit(m, deps, &mut done, &mut Vec::new())?;
    }
    Ok(done)
}

/// Modules of one list in load order (paths under `/lib/modules/VERSION/`)
/// and the list's modules the kernel has built in.
#[derive(Debug, Clone, Default)]
pub struct ModuleSet {
    /// Paths in load order, dependencies first.
    pub order: Vec<String>,
    /// Wanted modules built into the kernel (nothing to load).
    pub builtin: Vec<String>,
}

/// The modules (once unpacked into `target/dom0/modules-VERSION/`) of
/// dom0 ([`MODULES`]) and of the demo domU ([`DEMO_MODULES`]).
fn kernel_modules(version: &str, refresh: bool) -> Result<(ModuleSet, ModuleSet)> {
    let d = dir();
    let mdir = d.join(format!("modules-{version}"));
    let read = |name: &str| -> Option<Vec<String>> {
        std::fs::read_to_string(mdir.join(name))
            .ok()
            .map(|t| t.lines().map(String::from).collect())
    };
    // Does a cached list hold every module of `list` (loaded or built in)?
    let covers = |list: &[(&str, &str)], order: &[String], builtin: &[String]| {
        list.iter().all(|(name, _)| {
            builtin.iter().any(|b| b == name)
                || order
                    .iter()
                    .any(|p| module_key(p.rsplit('/').next().unwrap_or(p)) == module_key(name))
        })
    };
    if !refresh
        && let (Some(order), Some(builtin), Some(demo_order), Some(demo_builtin)) = (
            read("order"),
            read("builtin"),
            read("demo-order"),
            read("demo-builtin"),
        )
        // Lists from before a module was added: unpack again.
        && covers(MODULES, &order, &builtin)
        && covers(DEMO_MODULES, &demo_order, &demo_builtin)
    {
        return Ok((
            ModuleSet { order, builtin },
            ModuleSet {
                order: demo_order,
                builtin: demo_builtin,
            },
        ));
    }
    let tmp = linux::scratch(&d, "modules")?;
    let package = linux::kernel_package(version)?;
    // Every module of the package by name.
    let prefix = format!("./lib/modules/{version}/");
    let mut by_name = BTreeMap::new();
    let mut dirs = vec![package.join(prefix.trim_start_matches("./"))];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).map_err(|e| Error(format!("{}: {e}", dir.display())))? {
            let e = e?;
            let path = e.path();
            if e.file_type()?.is_dir() {
                dirs.push(path);
            } else if let Some(file) = e.file_name().to_str()
                && file.ends_with(".ko")
                && let Ok(rel) = path.strip_prefix(&package)
            {
                by_name.insert(module_key(file), format!("./{}", rel.display()));
            }
        }
    }
    let config_member = format!("./boot/config-{version}");
    linux::copy_members(&package, &tmp, &[&config_member])?;
    let config = std::fs::read_to_string(tmp.join(&config_member))?;
    let split = |list: &[(&str, &str)]| -> Result<(Vec<String>, Vec<String>)> {
        let (mut wanted, mut builtin) = (Vec::new(), Vec::new());
        for (name, symbol) in list {
            match config_value(&config, symbol) {
                Some('y') => builtin.push(name.to_string()),
                Some(_) => wanted.push(module_key(name)),
                None => bail!("Debian's kernel {version} lacks CONFIG_{symbol} ({name})"),
            }
        }
        Ok((wanted, builtin))
    };
    let (wanted, builtin) = split(MODULES)?;
    let (demo_wanted, demo_builtin) = split(DEMO_MODULES)?;
    // Unpack the wanted modules, then what they depend on, until closed.
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Each once: a module both lists want (gntdev, gntalloc) is unpacked once.
    let mut todo: Vec<String> = Vec::new();
    for m in wanted.iter().chain(&demo_wanted) {
        if !todo.contains(m) {
            todo.push(m.clone());
        }
    }
    while !todo.is_empty() {
        let members = todo
            .iter()
            .map(|m| {
                by_name.get(m).cloned().ok_or_else(|| {
                    Error(format!("module {m}: not in linux-image-{version}-unsigned"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
        linux::copy_members(&package, &tmp, &refs)?;
        let mut next = Vec::new();
        for (m, member) in todo.iter().zip(&members) {
            let ds: Vec<String> = module_depends(&std::fs::read(tmp.join(member))?)
                .map_err(|e| Error(format!("{member}: {e}")))?
                .iter()
                .map(|d| module_key(d))
                .collect();
            for dep in &ds {
                if !deps.contains_key(dep) && !todo.contains(dep) && !next.contains(dep) {
                    next.push(dep.clone());
                }
            }
            deps.insert(m.clone(), ds);
        }
        todo = next;
    }
    let paths = |wanted: &[String]| -> Result<Vec<String>> {
        Ok(load_order(wanted, &deps)?
            .iter()
            .map(|m| by_name[m].trim_start_matches(&prefix).to_string())
            .collect())
    };
    let order = paths(&wanted)?;
    let demo_order = paths(&demo_wanted)?;
    let _ = std::fs::remove_dir_all(&mdir);
    std::fs::create_dir_all(&mdir)?;
    linux::rename(&tmp.join("lib"), &mdir.join("lib"))?;
    linux::rename(
        &tmp.join(&config_member),
        &mdir.join(format!("config-{version}")),
    )?;
    let _ = std::fs::remove_dir_all(&tmp);
    let lines = |v: &[String]| v.iter().map(|s| format!("{s}\n")).collect::<String>();
    linux::write_atomic(&mdir.join("builtin"), lines(&builtin).as_bytes())?;
    linux::write_atomic(&mdir.join("order"), lines(&order).as_bytes())?;
    linux::write_atomic(&mdir.join("demo-builtin"), lines(&demo_builtin).as_bytes())?;
    linux::write_atomic(&mdir.join("demo-order"), lines(&demo_order).as_bytes())?;
    Ok((
        ModuleSet { order, builtin },
        ModuleSet {
            order: demo_order,
            builtin: demo_builtin,
        },
    ))
}

/// An initramfs being assembled: every path once, parents before children
/// (written in path order), later additions replacing earlier ones.
#[derive(Default)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
}

enum Entry {
    Dir,
    File(u32, Vec<u8>),
    Link(String),
    Node(u32, u32, u32),
}

impl Tree {
    fn parents(&mut self, path: &str) {
        let mut p = path;
        while let Some((parent, _)) = p.rsplit_once('/') {
            self.entries.entry(parent.to_string()).or_insert(Entry::Dir);
            p = parent;
        }
    }
    fn put(&mut self, path: &str, e: Entry) {
        let path = path.trim_matches('/');
        self.parents(path);
        self.entries.insert(path.to_string(), e);
    }
    pub fn dir(&mut self, path: &str) {
        self.put(path, Entry::Dir);
    }
    pub fn file(&mut self, path: &str, perm: u32, data: impl Into<Vec<u8>>) {
        self.put(path, Entry::File(perm, data.into()));
    }
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.put(path, Entry::Link(target.into()));
    }
    pub fn node(&mut self, path: &str, perm: u32, major: u32, minor: u32) {
        self.put(path, Entry::Node(perm, major, minor));
    }
    /// Add the tree under `from` at `at`, the paths (relative to `from`)
    /// `keep` accepts (a refused directory is skipped whole).
    pub fn add_dir_tree(
        &mut self,
        from: &Path,
        at: &str,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<()> {
        fn go(
            t: &mut Tree,
            dir: &Path,
            rel: &str,
            at: &str,
            keep: &dyn Fn(&str) -> bool,
        ) -> Result<()> {
            let mut entries: Vec<_> = std::fs::read_dir(dir)
                .map_err(|e| Error(format!("{}: {e}", dir.display())))?
                .flatten()
                .collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let name = e.file_name().to_string_lossy().into_owned();
                let r = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                if !keep(&r) {
                    continue;
                }
                let dest = if at.is_empty() {
                    r.clone()
                } else {
                    format!("{at}/{r}")
                };
                let p = e.path();
                let m = std::fs::symlink_metadata(&p)?;
                if m.is_symlink() {
                    t.symlink(&dest, &std::fs::read_link(&p)?.to_string_lossy());
                } else if m.is_dir() {
                    t.dir(&dest);
                    go(t, &p, &r, at, keep)?;
                } else if m.is_file() {
                    use std::os::unix::fs::PermissionsExt;
                    t.file(&dest, m.permissions().mode() & 0o7777, std::fs::read(&p)?);
                }
            }
            Ok(())
        }
        go(self, from, "", at, keep)
    }
    /// The newc archive.
    pub fn cpio(&self) -> Vec<u8> {
        let mut c = Cpio::default();
        for (path, e) in &self.entries {
            match e {
                Entry::Dir => c.dir(path),
                Entry::File(perm, data) => c.file(path, *perm, data),
                Entry::Link(target) => c.symlink(path, target),
                Entry::Node(perm, major, minor) => c.node(path, *perm, *major, *minor),
            }
        }
        c.finish()
    }
}

/// busybox at `/bin/busybox` and a symbolic link per applet.
fn busybox_tree(t: &mut Tree, busybox: &Path) -> Result<()> {
    t.file("bin/busybox", 0o755, std::fs::read(busybox)?);
    for a in linux::busybox_applets(busybox)? {
        t.symlink(&a, "/bin/busybox");
    }
    Ok(())
}

/// The demo domU's initramfs: busybox, its init, the modules of
/// `modules` (paths under `MDIR/lib/modules/VERSION/`, in load order; the
/// list in `/etc/demo/modules`), its scripts (`/etc/demo/NAME`) and the
/// static program `gnttool` at [`GNTTOOL`].
pub fn demo_initramfs(
    busybox: &Path,
    mdir: &Path,
    version: &str,
    modules: &[String],
    gnttool: &Path,
) -> Result<Vec<u8>> {
    let mut t = Tree::default();
    busybox_tree(&mut t, busybox)?;
    t.file(
        GNTTOOL.trim_start_matches('/'),
        0o755,
        std::fs::read(gnttool).map_err(|e| Error(format!("{}: {e}", gnttool.display())))?,
    );
    let mroot = mdir.join("lib").join("modules").join(version);
    for m in modules {
        t.file(
            &format!("lib/modules/{version}/{m}"),
            0o644,
            std::fs::read(mroot.join(m))?,
        );
    }
    t.file(
        "etc/demo/modules",
        0o644,
        modules.iter().map(|m| format!("{m}\n")).collect::<String>(),
    );
    for (name, text) in DEMO_SCRIPTS {
        t.file(&format!("etc/demo/{name}"), 0o755, *text);
    }
    for p in ["dev", "proc", "sys", "tmp", "run", "root", "etc"] {
        t.dir(p);
    }
    t.node("dev/console", 0o600, 5, 1);
    t.file("init", 0o755, DEMO_INIT);
    t.file("etc/profile", 0o644, "export PS1='demo# '\n");
    Ok(t.cpio())
}

/// dom0's initramfs for a run: the image's, with `exec` as
/// `/etc/warden-exec` if given (a copy with a second archive appended).
pub fn initrd_for(img: &Image, exec: Option<&str>) -> Result<PathBuf> {
    match exec {
        Some(cmd) => linux::initrd_with_exec(&img.initrd, cmd),
        None => Ok(img.initrd.clone()),
    }
}

/// dom0's initramfs for a run with `files` added too (`cargo xtask run
/// --dom0-file`): see [`linux::initrd_with`].
pub fn initrd_with_files(
    img: &Image,
    exec: Option<&str>,
    files: &[linux::ExtraFile],
) -> Result<PathBuf> {
    if files.is_empty() {
        return initrd_for(img, exec);
    }
    linux::initrd_with(&img.initrd, exec, files)
}

/// Messages that end a captured run at once: a crashed dom0 or hypervisor.
pub const FATAL: &[&str] = &[
    "Kernel panic",
    "stack guard page",
    "Fatal exception",
    "BUG: ",
    "Panic on CPU",
    "*** Warden stopped",
    "*** Warden cannot boot",
];

/// How Debian's Xen 4.17 boots the dom0 image.
#[derive(Debug, Clone)]
pub struct XenBoot {
    /// A PV dom0 instead of PVH.
    pub pv: bool,
    /// dom0's memory (`dom0_mem=M,max:M`).
    pub dom0_mem_mib: u32,
    /// QEMU's memory.
    pub memory_mib: u32,
    /// dom0's command to run (`/etc/warden-exec`), or None for a shell.
    pub exec: Option<String>,
    /// Multi-threaded TCG (see [`Machine::mttcg`]). On by default: with
    /// single-threaded TCG and 2 CPUs, QEMU 7.2 delivers an interrupt that
    /// Xen injects through EVENTINJ twice (shared/reference/linux-on-xen.md,
    /// "Traps under QEMU 7.2 TCG"), and a PVH dom0 dies with `ENTRY_TRAMPOLINE
    /// stack guard page was hit` as its toolstack starts (4 of 5 boots here).
    /// A PV dom0 is not exposed (no EVENTINJ).
    pub mttcg: bool,
}

impl Default for XenBoot {
    fn default() -> Self {
        XenBoot {
            pv: false,
            dom0_mem_mib: DOM0_MEM_MIB,
            memory_mib: linuxbench::MEMORY_MIB,
            exec: None,
            mttcg: true,
        }
    }
}

/// dom0's memory: the image unpacked (about 85 MiB, most of it the demo's
/// kernel) plus xl reading that kernel to build the domU.
pub const DOM0_MEM_MIB: u32 = 512;

/// Xen's command line.
pub fn xen_cmdline(b: &XenBoot) -> String {
    format!(
        "console=com1 com1=115200,8n1 {}dom0_mem={m}M,max:{m}M dom0_max_vcpus={} loglvl=all guest_loglvl=all noreboot",
        if b.pv { "" } else { "dom0=pvh " },
        linuxbench::SMP,
        m = b.dom0_mem_mib
    )
}

/// The QEMU machine: Debian's Xen 4.17 with the image as dom0, with
/// bench-linux's flags (`-machine q35 -device intel-iommu`, which Xen's PVH
/// dom0 needs; 2 CPUs), the TCG threading of [`XenBoot::mttcg`].
pub fn xen_machine(img: &Image, b: &XenBoot) -> Result<Machine> {
    let mut m = Machine::new(Boot::Kernel {
        image: linux::xen(false)?,
        cmdline: xen_cmdline(b),
        modules: vec![
            Module {
                path: img.vmlinux.clone(),
                args: DOM0_CMDLINE.into(),
            },
            Module {
                path: initrd_for(img, b.exec.as_deref())?,
                args: String::new(),
            },
        ],
    });
    m.smp = linuxbench::SMP;
    m.memory_mib = b.memory_mib;
    m.mttcg = b.mttcg;
    m.extra = linuxbench::MACHINE.iter().map(|s| s.to_string()).collect();
    Ok(m)
}

/// A run of dom0's command on Xen: the captured serial console and the
/// command's status (None if dom0 never printed it).
pub fn run_on_xen(
    img: &Image,
    b: &XenBoot,
    timeout: Duration,
) -> Result<(qemu::Outcome, Option<i32>)> {
    run_captured(&xen_machine(img, b)?, timeout)
}

/// Warden's command line for the dom0 image: the memory and vCPUs of
/// Xen's side ([`xen_cmdline`]).
pub fn warden_cmdline() -> String {
    format!(
        "console=com1 loglvl=info dom0_mem={DOM0_MEM_MIB}M dom0_max_vcpus={}",
        linuxbench::SMP
    )
}

/// The QEMU machine: Warden (the production image, as `cargo xtask run`)
/// with the default policy (enforcing) and the image as its PVH dom0, with
/// Xen's side's machine flags ([`xen_machine`]) but Warden's TCG threading
/// (single-threaded: docs/ARCHITECTURE.md, "Known issues").
pub fn warden_machine(img: &Image, exec: Option<&str>) -> Result<Machine> {
    let mut m = Machine::new(Boot::Kernel {
        image: crate::build::build_image(false)?,
        cmdline: warden_cmdline(),
        modules: vec![
            Module {
                path: crate::build::build_policy(false)?,
                args: String::new(),
            },
            Module {
                path: img.vmlinux.clone(),
                args: DOM0_CMDLINE.into(),
            },
            Module {
                path: initrd_for(img, exec)?,
                args: "initrd".into(),
            },
        ],
    });
    m.smp = linuxbench::SMP;
    m.memory_mib = linuxbench::MEMORY_MIB;
    m.extra = linuxbench::MACHINE.iter().map(|s| s.to_string()).collect();
    Ok(m)
}

/// A run of dom0's command on Warden: the captured serial console and the
/// command's status (None if dom0 never printed it).
pub fn run_on_warden(
    img: &Image,
    exec: &str,
    timeout: Duration,
) -> Result<(qemu::Outcome, Option<i32>)> {
    run_captured(&warden_machine(img, Some(exec))?, timeout)
}

/// Run `m` until dom0's exec status line (or a fatal message, or the
/// timeout): the captured console and the status.
fn run_captured(m: &Machine, timeout: Duration) -> Result<(qemu::Outcome, Option<i32>)> {
    let mut stop_on: Vec<String> = FATAL.iter().map(|s| s.to_string()).collect();
    stop_on.push(EXEC_STATUS.into());
    let o = qemu::run_with(
        m.command(),
        timeout,
        qemu::Options {
            stop_on,
            ..Default::default()
        },
    )?;
    let status = o.lines.iter().find_map(|(_, l)| qemu::exec_status(l));
    Ok((o, status))
}

/// `cargo xtask dom0-image --help`.
pub const IMAGE_HELP: &str = "\
cargo xtask dom0-image [--refresh]
  Build dom0's initramfs (target/dom0/initrd) from Debian 12's packages,
  downloaded once with apt-get download into target/dom0/: the Xen 4.17
  toolstack (xen-utils-4.17, xen-utils-common, xenstore-utils, the libxen*
  libraries, libyajl2) and the block hotplug script's bash, flock and losetup
  (packages bash, util-linux, mount) with the host libraries ldd finds missing,
  the kernel modules dom0 loads (from the kernel package of cargo xtask
  linux-assets), busybox, the init (xtask/src/dom0-init.sh) and the demo domU
  (/etc/xen/demo.cfg: PVH, the same kernel, 128 MiB, 1 vCPU; its initramfs with
  xen-blkfront, ext4, xen-gntdev, xen-gntalloc and gnttool, built from
  tests/gnttool; /etc/xen/demo-disk.cfg: the same with /root/disk.img
  as its xvda). Prints what it holds.
  --refresh: download and unpack everything again";

/// `cargo xtask dom0-image`.
pub fn image_cmd(args: &[String]) -> Result<()> {
    use lexopt::prelude::*;
    let mut refresh = false;
    let mut p = lexopt::Parser::from_args(args.iter().cloned());
    while let Some(arg) = p.next()? {
        match arg {
            Long("refresh") => refresh = true,
            Long("help") | Short('h') => {
                println!("{IMAGE_HELP}");
                return Ok(());
            }
            other => bail!("dom0-image: {}", other.unexpected()),
        }
    }
    deps::ensure(deps::LINUX)?;
    let img = image(refresh)?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0;
    println!("kernel {} (dom0 and the demo domU)", img.kernel_version);
    println!("{}  (dom0's kernel, ELF)", img.vmlinux.display());
    println!(
        "{}  (dom0's initramfs, {:.1} MiB)",
        img.initrd.display(),
        size(&img.initrd)
    );
    println!(
        "{}  (the demo domU's initramfs, {:.1} MiB)",
        img.demo_initrd.display(),
        size(&img.demo_initrd)
    );
    println!("packages: {}", img.packages.join(" "));
    println!("host libraries: {}", img.host_libraries.join(" "));
    println!("modules (load order): {}", img.modules.join(" "));
    println!(
        "the demo domU's modules (load order): {}",
        img.demo_modules.join(" ")
    );
    if !img.builtin.is_empty() {
        println!("built into the kernel: {}", img.builtin.join(" "));
    }
    println!(
        "dom0's command line: {DOM0_CMDLINE}; a command to run is added as /etc/warden-exec (cargo xtask run --dom0 linux boots it on Warden, cargo xtask run-xen on Xen 4.17)"
    );
    Ok(())
}

/// `cargo xtask run-xen --help`.
pub const RUN_XEN_HELP: &str = "\
cargo xtask run-xen [--exec CMD] [--pv] [--dom0-mem MIB] [--memory MIB] [--timeout SECONDS]
                    [--single-threaded]
  Boot Debian's Xen 4.17 (the reference Warden is compared with) in QEMU with the
  dom0 image (cargo xtask dom0-image) as its dom0: a root shell on the serial
  console once the toolstack is up (xl list, xl create /etc/xen/demo.cfg, ...;
  'poweroff -f' ends it). QEMU: -machine q35 -device intel-iommu -smp 2,
  multi-threaded TCG (single-threaded, QEMU 7.2 crashes Xen's PVH dom0 as its
  toolstack starts: an EVENTINJ interrupt delivered twice).
  --exec CMD        run CMD with sh -c in dom0 once the toolstack is up, print the
                    serial console when QEMU ends and exit with CMD's status
  --pv              a PV dom0 (default PVH: dom0=pvh)
  --dom0-mem MIB    dom0's memory (default 512)
  --memory MIB      QEMU's memory (default 1024)
  --timeout SECONDS stop QEMU after this long (default with --exec: 900)
  --single-threaded single-threaded TCG (as bench-linux; fine for a PV dom0)";

/// `cargo xtask run-xen`; the exit status for `--exec`.
pub fn run_xen_cmd(args: &[String]) -> Result<i32> {
    use lexopt::prelude::*;
    let mut b = XenBoot::default();
    let mut timeout = None;
    let mut p = lexopt::Parser::from_args(args.iter().cloned());
    let num = |p: &mut lexopt::Parser, f: &str| -> Result<u32> {
        crate::run::number(&crate::run::value(p, f)?, f)
    };
    while let Some(arg) = p.next()? {
        match arg {
            Long("exec") => b.exec = Some(crate::run::value(&mut p, "--exec")?),
            Long("pv") => b.pv = true,
            Long("single-threaded") => b.mttcg = false,
            Long("dom0-mem") => b.dom0_mem_mib = num(&mut p, "--dom0-mem")?,
            Long("memory") => b.memory_mib = num(&mut p, "--memory")?,
            Long("timeout") => {
                timeout = Some(Duration::from_secs(num(&mut p, "--timeout")?.into()))
            }
            Long("help") | Short('h') => {
                println!("{RUN_XEN_HELP}");
                return Ok(0);
            }
            other => bail!("run-xen: {}", other.unexpected()),
        }
    }
    deps::ensure(&[deps::QEMU, deps::LINUX].concat())?;
    let img = image(false)?;
    if b.exec.is_some() {
        let (o, status) = run_on_xen(&img, &b, timeout.unwrap_or(Duration::from_secs(900)))?;
        print!("{}", o.serial);
        match status {
            Some(s) => {
                eprintln!(
                    "xtask: run-xen: dom0's command ended with status {s} ({:.1} s after QEMU's start)",
                    o.elapsed.as_secs_f64()
                );
                Ok(s)
            }
            None => bail!(
                "run-xen: dom0 printed no exec status ({})",
                if let Some(s) = &o.stopped_on {
                    format!("stopped on '{s}'")
                } else if o.timed_out {
                    "timeout".into()
                } else {
                    format!("QEMU exited with {:?}", o.status)
                }
            ),
        }
    } else {
        let m = xen_machine(&img, &b)?;
        let r = qemu::run_interactive(m.command(), timeout, false)?;
        Ok(r.status.map(|_| 0).unwrap_or(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_is_parsed() {
        let out = "\tlinux-vdso.so.1 (0x00007ffc1d7e4000)\n\
                   \tlibxenlight.so.4.17 => /t/root/usr/lib/x86_64-linux-gnu/libxenlight.so.4.17 (0x00007f)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                   \tlibfoo.so.1 => not found\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(out),
            [
                LddLine::Found("/t/root/usr/lib/x86_64-linux-gnu/libxenlight.so.4.17".into()),
                LddLine::Found("/lib/x86_64-linux-gnu/libc.so.6".into()),
                LddLine::Missing("libfoo.so.1".into()),
                LddLine::Found("/lib64/ld-linux-x86-64.so.2".into()),
            ]
        );
        assert!(parse_ldd("\tnot a dynamic executable\n").is_empty());
    }

    #[test]
    fn config_values() {
        let c = "# CONFIG_XEN_PVCALLS_FRONTEND is not set\nCONFIG_XENFS=m\nCONFIG_XEN_BALLOON=y\nCONFIG_XEN=y\n";
        assert_eq!(config_value(c, "XENFS"), Some('m'));
        assert_eq!(config_value(c, "XEN"), Some('y'));
        assert_eq!(config_value(c, "XEN_PVCALLS_FRONTEND"), None);
        assert_eq!(config_value(c, "XE"), None);
    }

    #[test]
    fn dependencies_load_first() {
        let mut deps = BTreeMap::new();
        deps.insert("xenfs".to_string(), vec!["xen-privcmd".to_string()]);
        deps.insert(
            "bridge".to_string(),
            vec!["llc".to_string(), "stp".to_string()],
        );
        deps.insert("stp".to_string(), vec!["llc".to_string()]);
        let wanted: Vec<String> = ["xenfs", "xen-privcmd", "bridge"].map(String::from).into();
        assert_eq!(
            load_order(&wanted, &deps).unwrap(),
            ["xen-privcmd", "xenfs", "llc", "stp", "bridge"]
        );
        deps.insert("llc".to_string(), vec!["bridge".to_string()]);
        assert!(load_order(&wanted, &deps).is_err(), "a cycle is refused");
        assert_eq!(module_key("xen_netback.ko"), "xen-netback");
    }

    #[test]
    fn modinfo_depends_are_read() {
        let m = b"license=GPL\0depends=llc,stp\0name=bridge\0";
        assert_eq!(modinfo_depends(m), ["llc", "stp"]);
        assert!(modinfo_depends(b"depends=\0name=xen_netback\0").is_empty());
    }

    #[test]
    fn exec_status_lines() {
        use qemu::exec_status;
        assert_eq!(exec_status("dom0: exec status 0"), Some(0));
        assert_eq!(exec_status("(XEN) x dom0: exec status 127\r"), Some(127));
        assert_eq!(exec_status("dom0: exec status"), None);
        assert_eq!(exec_status("dom0: toolstack up"), None);
        assert_eq!(exec_status("warden-init: exec status 3"), Some(3));
    }

    #[test]
    fn tree_writes_parents_first_once() {
        let mut t = Tree::default();
        t.file("usr/bin/a", 0o755, "x");
        t.dir("usr");
        t.symlink("var/run", "/run");
        t.file("usr/bin/a", 0o644, "y");
        let names: Vec<&str> = t.entries.keys().map(String::as_str).collect();
        assert_eq!(names, ["usr", "usr/bin", "usr/bin/a", "var", "var/run"]);
        let a = t.cpio();
        assert!(a.windows(9).any(|w| w == b"usr/bin/a"));
    }

    #[test]
    fn the_disk_config_is_the_demos_with_a_disk() {
        let c = demo_disk_cfg();
        let settings = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.starts_with('#'))
                .map(String::from)
                .collect()
        };
        let mut demo = settings(&demo_cfg());
        demo.push("disk = [ 'format=raw, vdev=xvda, access=rw, target=/root/disk.img' ]".into());
        assert_eq!(settings(&c), demo);
        // The init runs what demo.run names, and the scripts exist.
        assert!(DEMO_INIT.contains("demo.run=*)"));
        let names: Vec<&str> = DEMO_SCRIPTS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["disk-test", "disk-bench"]);
        assert!(
            DEMO_SCRIPTS
                .iter()
                .all(|(_, t)| t.starts_with("#!/bin/sh\n"))
        );
    }

    #[test]
    fn xen_command_lines() {
        let mut b = XenBoot::default();
        assert!(xen_cmdline(&b).contains("dom0=pvh dom0_mem=512M,max:512M dom0_max_vcpus=2"));
        b.pv = true;
        assert!(!xen_cmdline(&b).contains("dom0=pvh"));
    }
}
