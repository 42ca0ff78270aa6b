//! Generates a large Xen-style policy source for the benchmark in BENCHMARKS.md:
//! Warden's class definitions plus N guest domain types declared through
//! Xen-style interface macros (declare_domain, create_domain, manage_domain,
//! domain_comms, ...), about 50 rules per domain after expansion.
//!
//!     cargo run --release -p policy-compiler --example gen-bench-policy -- OUTDIR [N]
//!
//! writes OUTDIR/bench.m4 (the entry file) and OUTDIR/bench.if (the macros); the
//! flask definitions are included from policies/flask by absolute path.
use std::fmt::Write as _;
use std::path::Path;

const MACROS: &str = r#"divert(-1)
define(`declare_domain', `
type $1, domain_type`'ifelse(`$#', `1', `', `, shift($@)');
type $1_self, domain_type, domain_self_type;
type_transition $1 $1:domain $1_self;
type $1_channel, event_type;
type_transition $1 dom0_t:event $1_channel;
type_transition $1 xenstore_t:event $1_channel;
allow $1 $1_self:grant { query setup };
allow $1 $1_self:mmu { adjust physmap map_read map_write stat pinpage updatemp mmuext_op };
allow $1 $1_self:hvm { getparam setparam };
allow $1 $1_self:domain2 { get_vnumainfo sched_self vcpu_op };
allow $1 $1_self:domain getvcpuinfo;
allow $1 xen_t:version { xen_extraversion xen_compile_info xen_capabilities xen_version xen_get_features };
')
define(`create_domain', `
allow $1 $2:domain { create max_vcpus setdomainmaxmem setaddrsize getdomaininfo
    hypercall setvcpucontext getscheduler getvcpuinfo getaddrsize getaffinity
    setaffinity settime setdomainhandle getvcpucontext set_misc_info };
allow $1 $2:domain2 { set_cpu_policy settsc setscheduler setclaim get_cpu_policy };
allow $1 $2:shadow enable;
allow $1 $2:mmu { map_read map_write adjust memorymap physmap pinpage mmuext_op };
allow $1 $2:grant setup;
allow $1 $2:hvm { getparam hvmctl sethvmc setparam };
allow $1 $2_channel:event create;
')
define(`manage_domain', `
allow $1 $2:domain { getdomaininfo getvcpuinfo pause unpause shutdown destroy };
allow $1 $2:domain2 set_vnumainfo;
')
define(`create_channel', `
allow $1 $3:event { create send status };
allow $3 $2:event bind;
')
define(`domain_comms', `
create_channel($1, $2, $1_channel)
allow $1 $2:grant { map_read map_write copy unmap };
create_channel($2, $1, $2_channel)
allow $2 $1:grant { map_read map_write copy unmap };
')
define(`migrate_domain_out', `
allow $1 $2:hvm { gethvmc getparam };
allow $1 $2:mmu { stat pageinfo map_read };
allow $1 $2:domain { getaddrsize getvcpucontext pause destroy };
allow $1 $2:domain2 gettsc;
allow $1 $2:shadow { enable disable logdirty };
')
define(`domain_self_comms', `
create_channel($1, $1_self, $1_channel)
allow $1 $1_self:grant { map_read map_write copy unmap };
')
define(`guest', `
declare_domain($1, guest_type)
create_domain(dom0_t, $1)
manage_domain(dom0_t, $1)
migrate_domain_out(dom0_t, $1)
domain_self_comms($1)
domain_comms(dom0_t, $1)
domain_comms(xenstore_t, $1)
ifelse(`$2', `', `', `domain_comms($1, $2)')
')
divert`'dnl
"#;

/// Writes OUTDIR/bench.if and OUTDIR/bench.m4 with `n` guest domain types.
pub fn generate(dir: &Path, n: usize) -> std::io::Result<()> {
    let flask = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policies/flask")
        .canonicalize()?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("bench.if"), MACROS)?;
    let mut s = String::new();
    for f in ["security_classes", "initial_sids", "access_vectors"] {
        let _ = writeln!(s, "include(`{}')dnl", flask.join(f).display());
    }
    s.push_str("include(`bench.if')dnl\n");
    s.push_str("attribute domain_type;\nattribute domain_self_type;\nattribute event_type;\nattribute guest_type;\n");
    s.push_str("type xen_t;\ntype security_t;\n");
    s.push_str("declare_domain(dom0_t)\ndeclare_domain(xenstore_t)\n");
    s.push_str("allow dom0_t xen_t:xen { readconsole writeconsole physinfo };\n");
    s.push_str("allow dom0_t security_t:security { setenforce load_policy };\n");
    s.push_str("bool guest_writeconsole true;\n");
    for i in 0..n {
        let peer = if i % 2 == 1 {
            format!("g{}_t", i - 1)
        } else {
            String::new()
        };
        let _ = writeln!(s, "guest(g{i}_t, {peer})");
    }
    s.push_str("if (guest_writeconsole) { allow guest_type xen_t:xen writeconsole; }\n");
    s.push_str("neverallow guest_type security_t:security { setenforce load_policy };\n");
    s.push_str(
        "role system_r;\nrole system_r types { domain_type event_type xen_t security_t };\n",
    );
    s.push_str("user system_u roles system_r;\n");
    for sid in [
        "xenboot",
        "xen",
        "dom0",
        "domio",
        "domxen",
        "unlabeled",
        "security",
        "ioport",
        "iomem",
        "irq",
        "device",
        "domU",
        "domDM",
    ] {
        let t = match sid {
            "dom0" | "domU" | "domDM" => "dom0_t",
            "security" => "security_t",
            _ => "xen_t",
        };
        let _ = writeln!(s, "sid {sid} system_u:system_r:{t}");
    }
    std::fs::write(dir.join("bench.m4"), s)
}

#[allow(dead_code)]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first() else {
        eprintln!("usage: gen-bench-policy OUTDIR [N]");
        std::process::exit(2);
    };
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2000);
    if let Err(e) = generate(Path::new(out), n) {
        eprintln!("gen-bench-policy: {e}");
        std::process::exit(1);
    }
    eprintln!("wrote {out}/bench.m4 with {n} guest domain types");
}
