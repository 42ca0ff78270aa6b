//! Live-patch payloads for the QEMU tests.
//!
//! The good payloads are built the operator's way, by `livepatch build`
//! from the diffs in `tests/livepatch/` against the test image, signed with
//! the build's development key (`target/keys/dev.key`); they are cached per
//! image build-id in `<target>/warden/payloads/<build-id>/`. The refused
//! ones are derived from them (unsigned, a flipped byte, another key, another
//! hypervisor build-id, a truncated ELF, an unknown symbol, wrong expected
//! bytes, over the size limit) or written with the format's writer (more
//! NOPs than the function has bytes; a NOP patch with hooks).

use livepatch_format::sig;
use livepatch_format::write::{Builder, FuncSpec};
use object::{Object, ObjectSection};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The payload files for one test image.
#[derive(Debug, Clone)]
pub struct Payloads {
    pub dir: PathBuf,
}

impl Payloads {
    /// A payload file by name (`hello.livepatch`).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

/// A refused payload: file name and the errno the hypervisor must return.
pub const REFUSALS: &[(&str, i32)] = &[
    ("unsigned.livepatch", 61),   // ENODATA
    ("flipped.livepatch", 129),   // EKEYREJECTED
    ("otherkey.livepatch", 126),  // ENOKEY
    ("otherbuild.livepatch", 22), // EINVAL (built for another hypervisor)
    ("nodep.livepatch", 67),      // ENOLINK (bye without hello)
    ("truncated.livepatch", 8),   // ENOEXEC
    ("badsym.livepatch", 2),      // ENOENT
    ("badbytes.livepatch", 84),   // EILSEQ
    ("small.livepatch", 28),      // ENOSPC
    ("huge.livepatch", 7),        // E2BIG
];

/// Build (or reuse) every payload for `image` (the test image).
pub fn payloads(image: &Path) -> Payloads {
    static BUILT: OnceLock<Mutex<Option<Payloads>>> = OnceLock::new();
    let m = BUILT.get_or_init(|| Mutex::new(None));
    let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = g.as_ref() {
        return p.clone();
    }
    let p = build_all(image);
    *g = Some(p.clone());
    p
}

fn build_all(image: &Path) -> Payloads {
    let build_id = xtask::build::build_id(image).expect("image build-id");
    let dir = xtask::bare_metal_target_dir()
        .join("payloads")
        .join(&build_id);
    std::fs::create_dir_all(&dir).expect("payload dir");
    // Test binaries run at once (`cargo xtask test`; livepatch and dom0ops
    // both need the payloads): one process builds, in the shared work
    // directory, while the others wait and then find the files.
    let lock = std::fs::File::create(dir.parent().expect("payloads/").join(".lock"))
        .expect("the payloads' lock file");
    lock.lock().expect("lock the payloads' directory");
    let key = xtask::build::dev_key_prefix().with_extension("key");
    // The default work directory, shared with the tool's own test: only
    // what each patch changes is rebuilt.
    let work = livepatch::build::default_work_dir(&root());
    let build = |name: &str, lower: Option<&str>| {
        let out = dir.join(format!("{name}.livepatch"));
        if out.exists() {
            return;
        }
        let diff = root().join("tests/livepatch").join(format!("{name}.diff"));
        let opts = livepatch::build::Options {
            source: root(),
            image: image.to_path_buf(),
            patch: diff,
            on_top_of: lower
                .map(|l| vec![root().join("tests/livepatch").join(format!("{l}.diff"))])
                .unwrap_or_default(),
            depends: lower.map(|l| dir.join(format!("{l}.livepatch"))),
            key: key.clone(),
            output: out.clone(),
            name: name.to_string(),
            description: Some(format!("test payload {name}")),
            features: vec!["test-hooks".into()],
            work: work.clone(),
        };
        if let Err(e) = livepatch::build::build(&opts) {
            panic!("livepatch build {name}: {e}");
        }
    };
    build("hello", None);
    build("bye", Some("hello"));
    build("replace", None);
    derive_refusals(&dir, image, &key);
    drop(lock);
    Payloads { dir }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn section_range(elf: &[u8], name: &str) -> (usize, usize) {
    let f = object::File::parse(elf).expect("payload ELF");
    let s = f.section_by_name(name).expect("section");
    let (o, n) = s.file_range().expect("file range");
    (o as usize, n as usize)
}

/// File offset of the last byte of the name of the undefined symbol `name`
/// (in `.strtab`).
fn import_name(elf: &[u8], name: &str) -> usize {
    let (sym, sym_len) = section_range(elf, ".symtab");
    let (str_off, _) = section_range(elf, ".strtab");
    for e in elf[sym..sym + sym_len].chunks_exact(24) {
        let st_name = u32::from_le_bytes([e[0], e[1], e[2], e[3]]) as usize;
        let shndx = u16::from_le_bytes([e[6], e[7]]);
        let at = str_off + st_name;
        if shndx == 0 && elf[at..].starts_with(name.as_bytes()) && elf[at + name.len()] == 0 {
            return at + name.len() - 1;
        }
    }
    panic!("no undefined symbol {name} in the payload");
}

fn derive_refusals(dir: &Path, image: &Path, key: &Path) {
    let seed = livepatch::secret_key(key).expect("dev key");
    let hello = std::fs::read(dir.join("hello.livepatch")).expect("hello payload");
    let (elf, _) = sig::split(&hello).expect("signed");
    let elf = elf.to_vec();
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).expect("write");
    let resign = |e: &[u8]| {
        let mut v = e.to_vec();
        v.extend_from_slice(&sig::sign(e, &seed));
        v
    };
    write("unsigned.livepatch", &elf);
    let mut flipped = hello.clone();
    let mid = elf.len() / 2;
    flipped[mid] ^= 0x40;
    write("flipped.livepatch", &flipped);
    let mut other_seed = [0u8; 32];
    other_seed.copy_from_slice(&sig::digest(b"not a trusted key", &sig::KeyId([7; 16])));
    let mut other = elf.clone();
    other.extend_from_slice(&sig::sign(&elf, &other_seed));
    write("otherkey.livepatch", &other);
    let img = livepatch::image::ImageFile::read(image).expect("image");
    let mut ob = elf.clone();
    let at = find(&ob, &img.build_id).expect("xen_depends holds the image's build-id");
    ob[at] ^= 0xff;
    write("otherbuild.livepatch", &resign(&ob));
    std::fs::copy(dir.join("bye.livepatch"), dir.join("nodep.livepatch")).expect("copy bye");
    write("truncated.livepatch", &resign(&elf[..elf.len() * 2 / 3]));
    let mut bs = elf.clone();
    let at = import_name(&bs, "hvcore::version::xen_extra_version");
    bs[at] = b'X';
    write("badsym.livepatch", &resign(&bs));
    let mut bb = elf.clone();
    let (o, _) = section_range(&bb, ".livepatch.funcs");
    bb[o + 24] ^= 0xff;
    write("badbytes.livepatch", &resign(&bb));
    write("small.livepatch", &resign(&too_small(&img)));
    write("huge.livepatch", &vec![0u8; (2 << 20) + 1]);
    write("nop.livepatch", &resign(&nop_with_hooks(&img)));
}

/// A NOP patch with every hook: two NOPs over the short jump that starts
/// `warden_lp_nop_probe` (it then returns 2 instead of 1), and one hook
/// of each kind, each `mov edi, KIND; jmp warden_lp_test_hook` (which logs
/// the hook and the probe's value).
fn nop_with_hooks(img: &livepatch::image::ImageFile) -> Vec<u8> {
    use livepatch_format::payload::{HookKind, Region};
    let image = img.image();
    let t = image.symbols;
    let probe = t
        .lookup_name("warden_lp_nop_probe")
        .expect("warden_lp_nop_probe in the test image");
    let hook = t
        .lookup_name("warden_lp_test_hook")
        .expect("warden_lp_test_hook in the test image");
    let off = (probe.addr - img.text_addr) as usize;
    let expect = img.text[off..off + (probe.size as usize).min(8)].to_vec();
    assert_eq!(expect[0], 0xeb, "the probe starts with a short jump");
    let kinds = [
        HookKind::Load,
        HookKind::Unload,
        HookKind::PreApply,
        HookKind::PostApply,
        HookKind::PreRevert,
        HookKind::PostRevert,
    ];
    let mut code = Vec::new();
    for k in 0..kinds.len() as u32 {
        code.push(0xbf);
        code.extend_from_slice(&k.to_le_bytes());
        code.extend_from_slice(&[0xe9, 0, 0, 0, 0]);
    }
    let mut b = Builder::new(&img.build_id);
    let text = b.section(".text", Region::Text, 16, code);
    let target = b.import("warden_lp_test_hook", hook.addr);
    for (i, k) in kinds.iter().enumerate() {
        let f = b.define(&format!("nop_hook_{i}"), text, i as u64 * 10, 10, true);
        // R_X86_64_PLT32 on the jump's displacement.
        b.reloc(text, i as u64 * 10 + 6, 4, target, -4);
        b.hook(*k, f);
    }
    let old = b.import("warden_lp_nop_probe", probe.addr);
    b.func(FuncSpec {
        old,
        new: None,
        old_size: probe.size as u32,
        new_size: 2,
        expect,
    });
    b.meta("name", "nop");
    b.build()
}

/// A payload writing more bytes than the function has: 20 NOPs over the
/// 14-byte `warden_lp_nop_probe` (Warden's functions all have frame
/// pointers, so none is below the 5-byte jump; the check is the same).
fn too_small(img: &livepatch::image::ImageFile) -> Vec<u8> {
    let image = img.image();
    let probe = image
        .symbols
        .lookup_name("warden_lp_nop_probe")
        .expect("warden_lp_nop_probe in the test image");
    assert!(probe.size < 20, "the probe is {} bytes", probe.size);
    let off = (probe.addr - img.text_addr) as usize;
    let expect = img.text[off..off + 8].to_vec();
    let mut b = Builder::new(&img.build_id);
    let old = b.import("warden_lp_nop_probe", probe.addr);
    b.func(FuncSpec {
        old,
        new: None,
        old_size: probe.size as u32,
        new_size: 20,
        expect,
    });
    b.meta("name", "small");
    b.build()
}
