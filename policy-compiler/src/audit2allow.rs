//! `audit2allow`: turns `avc:  denied` lines into allow rules grouped per source
//! type and per (source, target, class), each annotated with the number of
//! denials it covers — the `xl dmesg | audit2allow` workflow.
//!
//! Reads Xen's audit format (`avc:  denied  { perms } for [source=dN ]...
//! scontext=CTX tcontext=CTX tclass=CLASS`) and SELinux's (which adds
//! `permissive=`). `granted` lines are skipped. With a binary policy, unnamed
//! permission bits (`0x...`) are named and rules naming classes, permissions
//! or types the policy lacks are flagged.
//!
//! Only the hypervisor's own records are taken ([`hypervisor_record`]): a
//! line whose start is exactly
//!
//! ```text
//! ["(XEN) "] ["[" TIME "] "] [LEVEL " "+] ["audit(" SECS "." MSECS ":" SERIAL "): "] "avc:" " "+ "denied" " "+ "{"
//! ```
//!
//! with LEVEL one of `ERROR WARN INFO DEBUG TRACE` (Warden's console ring:
//! `[    1.234567] WARN  audit(1.234:7): avc:  denied  { ... }`; Xen's:
//! `(XEN) avc:  denied  { ... }`). A guest's console output cannot take that
//! form: the hypervisor writes every guest line as `(dN) [TIME] TEXT`, so a
//! forged record is preceded by `(dN) `. Lines that mention `avc:` and
//! `denied` in any other form are not turned into rules; they are counted
//! and listed as ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Names read from a binary policy: classes with their permissions (by bit),
/// and the type names.
#[derive(Debug, Default)]
pub struct PolicyNames {
    pub classes: BTreeMap<String, Vec<String>>,
    pub types: BTreeSet<String>,
}

struct Rd<'a> {
    b: &'a [u8],
    i: usize,
}

impl Rd<'_> {
    fn u32(&mut self) -> Result<u32, String> {
        let s = self.b.get(self.i..self.i + 4).ok_or("truncated policy")?;
        self.i += 4;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn skip(&mut self, n: usize) -> Result<(), String> {
        if self.b.len() < self.i.saturating_add(n) {
            return Err("truncated policy".into());
        }
        self.i += n;
        Ok(())
    }
    fn str(&mut self, n: u32) -> Result<String, String> {
        let n = n as usize;
        if n > 4096 {
            return Err("implausible name length".into());
        }
        let s = self.b.get(self.i..self.i + n).ok_or("truncated policy")?;
        self.i += n;
        Ok(String::from_utf8_lossy(s).into_owned())
    }
    fn ebitmap(&mut self) -> Result<(), String> {
        let _mapsize = self.u32()?;
        let _high = self.u32()?;
        let count = self.u32()?;
        if count > 1 << 20 {
            return Err("implausible bitmap".into());
        }
        self.skip(count as usize * 12)
    }
    fn perms(&mut self, n: u32, out: &mut Vec<(u32, String)>) -> Result<(), String> {
        for _ in 0..n {
            let len = self.u32()?;
            let v = self.u32()?;
            out.push((v, self.str(len)?));
        }
        Ok(())
    }
    fn constraints(&mut self, n: u32, version: u32) -> Result<(), String> {
        for _ in 0..n {
            let _perms = self.u32()?;
            let nexpr = self.u32()?;
            for _ in 0..nexpr {
                let t = self.u32()?;
                let _attr = self.u32()?;
                let _op = self.u32()?;
                if t == 5 {
                    self.ebitmap()?;
                    if version >= 29 {
                        self.ebitmap()?;
                        self.ebitmap()?;
                        self.u32()?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl PolicyNames {
    /// Reads class, permission and type names from a Xen binary policy.
    pub fn from_binary(b: &[u8]) -> Result<PolicyNames, String> {
        let mut r = Rd { b, i: 0 };
        if r.u32()? != crate::write::POLICYDB_MAGIC {
            return Err("not a binary policy (bad magic)".into());
        }
        let len = r.u32()?;
        let target = r.str(len)?;
        if target != "XenFlask" {
            return Err(format!("not a Xen policy (target string {target:?})"));
        }
        let version = r.u32()?;
        let _config = r.u32()?;
        let _syms = r.u32()?;
        let _ocons = r.u32()?;
        r.ebitmap()?; // policy capabilities
        r.ebitmap()?; // permissive types
        let mut commons: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
        let _ = r.u32()?;
        let ncommons = r.u32()?;
        for _ in 0..ncommons {
            let len = r.u32()?;
            let _v = r.u32()?;
            let _nprim = r.u32()?;
            let nel = r.u32()?;
            let name = r.str(len)?;
            let mut perms = Vec::new();
            r.perms(nel, &mut perms)?;
            commons.insert(name, perms);
        }
        let mut names = PolicyNames::default();
        let _ = r.u32()?;
        let nclasses = r.u32()?;
        for _ in 0..nclasses {
            let len = r.u32()?;
            let len2 = r.u32()?;
            let _v = r.u32()?;
            let _nprim = r.u32()?;
            let nel = r.u32()?;
            let ncons = r.u32()?;
            let name = r.str(len)?;
            let mut perms = Vec::new();
            if len2 > 0 {
                let com = r.str(len2)?;
                perms.extend(commons.get(&com).cloned().unwrap_or_default());
            }
            r.perms(nel, &mut perms)?;
            r.constraints(ncons, version)?;
            let nvt = r.u32()?;
            r.constraints(nvt, version)?;
            if version >= 27 {
                r.skip(12)?;
            }
            if version >= 28 {
                r.skip(4)?;
            }
            let mut by_bit = vec![String::new(); 32];
            for (v, p) in perms {
                if (1..=32).contains(&v) {
                    by_bit[v as usize - 1] = p;
                }
            }
            while by_bit.last().is_some_and(String::is_empty) {
                by_bit.pop();
            }
            names.classes.insert(name, by_bit);
        }
        let _ = r.u32()?;
        let nroles = r.u32()?;
        for _ in 0..nroles {
            let len = r.u32()?;
            r.skip(8)?;
            r.str(len)?;
            r.ebitmap()?;
            r.ebitmap()?;
        }
        let _ = r.u32()?;
        let ntypes = r.u32()?;
        for _ in 0..ntypes {
            let len = r.u32()?;
            r.skip(12)?;
            names.types.insert(r.str(len)?);
        }
        Ok(names)
    }
}

/// (target type, class) -> (permissions, number of denials)
type Rules = BTreeMap<(String, String), (BTreeSet<String>, usize)>;

/// One parsed denial.
#[derive(Debug, PartialEq, Eq)]
pub struct Denial {
    pub perms: Vec<String>,
    pub scontext: String,
    pub tcontext: String,
    pub tclass: String,
}

/// Parses one audit line; `None` if it is not an `avc:  denied` record.
pub fn parse_line(line: &str) -> Option<Denial> {
    let i = line.find("avc:")?;
    let rest = line[i + 4..].trim_start();
    let rest = rest.strip_prefix("denied")?.trim_start();
    let rest = rest.strip_prefix('{')?;
    let close = rest.find('}')?;
    let perms: Vec<String> = rest[..close].split_whitespace().map(String::from).collect();
    let mut s = None;
    let mut t = None;
    let mut c = None;
    for f in rest[close + 1..].split_whitespace() {
        if let Some(v) = f.strip_prefix("scontext=") {
            s = Some(v.to_string());
        } else if let Some(v) = f.strip_prefix("tcontext=") {
            t = Some(v.to_string());
        } else if let Some(v) = f.strip_prefix("tclass=") {
            c = Some(v.to_string());
        }
    }
    if perms.is_empty() {
        return None;
    }
    Some(Denial {
        perms,
        scontext: s?,
        tcontext: t?,
        tclass: c?,
    })
}

/// The `avc: ...` part of a line if the line is one of the hypervisor's own
/// audit records (the form in the module documentation), else None.
pub fn hypervisor_record(line: &str) -> Option<&str> {
    let mut l = line.trim_end_matches(['\r', '\n']);
    l = l.strip_prefix("(XEN) ").unwrap_or(l);
    if let Some(rest) = l.strip_prefix('[') {
        let close = rest.find("] ")?;
        if rest[..close].contains('[') {
            return None;
        }
        l = &rest[close + 2..];
    }
    for level in ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"] {
        if let Some(rest) = l.strip_prefix(level)
            && rest.starts_with(' ')
        {
            l = rest.trim_start_matches(' ');
            break;
        }
    }
    if let Some(rest) = l.strip_prefix("audit(") {
        let close = rest.find("): ")?;
        let stamp = &rest[..close];
        let (time, serial) = stamp.split_once(':')?;
        let (secs, ms) = time.split_once('.')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !(digits(secs) && digits(ms) && digits(serial)) {
            return None;
        }
        l = &rest[close + 3..];
    }
    let rest = l.strip_prefix("avc:")?;
    let after = rest.trim_start_matches(' ');
    if after.len() == rest.len() {
        return None;
    }
    let after_denied = after.strip_prefix("denied")?;
    let brace = after_denied.trim_start_matches(' ');
    if brace.len() == after_denied.len() || !brace.starts_with('{') {
        return None;
    }
    Some(l)
}

fn type_of(ctx: &str) -> Option<&str> {
    ctx.split(':').nth(2)
}

/// Produces the allow rules for every denial in `input`.
pub fn run(input: &str, policy: Option<&PolicyNames>) -> String {
    // source -> (target, class) -> (perms, count)
    let mut rules: BTreeMap<String, Rules> = BTreeMap::new();
    let mut unusable = Vec::new();
    let mut foreign = Vec::new();
    for line in input.lines() {
        if !line.contains("avc:") || !line.contains("denied") {
            continue;
        }
        let Some(record) = hypervisor_record(line) else {
            if !line.contains("avc:  granted") {
                foreign.push(line.trim().to_string());
            }
            continue;
        };
        let Some(d) = parse_line(record) else {
            unusable.push(line.trim().to_string());
            continue;
        };
        let (Some(st), Some(tt)) = (type_of(&d.scontext), type_of(&d.tcontext)) else {
            unusable.push(line.trim().to_string());
            continue;
        };
        let e = rules
            .entry(st.to_string())
            .or_default()
            .entry((tt.to_string(), d.tclass.clone()))
            .or_default();
        e.1 += 1;
        for p in d.perms {
            let named = match (
                p.strip_prefix("0x"),
                policy.and_then(|pn| pn.classes.get(&d.tclass)),
            ) {
                (Some(hex), Some(perms)) => u32::from_str_radix(hex, 16)
                    .ok()
                    .filter(|v| v.count_ones() == 1)
                    .and_then(|v| perms.get(v.trailing_zeros() as usize))
                    .filter(|n| !n.is_empty())
                    .cloned()
                    .unwrap_or(p),
                _ => p,
            };
            e.0.insert(named);
        }
    }
    let mut out = String::new();
    for (src, m) in &rules {
        let _ = writeln!(out, "\n#============= {src} ==============");
        for ((tgt, class), (perms, n)) in m {
            let mut notes = Vec::new();
            if let Some(pn) = policy {
                for t in [src, tgt] {
                    if !pn.types.contains(t) {
                        notes.push(format!("type {t} is not in the policy"));
                    }
                }
                match pn.classes.get(class) {
                    None => notes.push(format!("class {class} is not in the policy")),
                    Some(defined) => {
                        for p in perms {
                            if !defined.contains(p) {
                                notes.push(format!("{class} has no permission {p} in the policy"));
                            }
                        }
                    }
                }
            }
            for note in notes {
                let _ = writeln!(out, "#!!!! {note}");
            }
            let plist: Vec<&str> = perms.iter().map(String::as_str).collect();
            let pstr = if plist.len() == 1 {
                plist[0].to_string()
            } else {
                format!("{{ {} }}", plist.join(" "))
            };
            let _ = writeln!(out, "# {n} denial{}", if *n == 1 { "" } else { "s" });
            let _ = writeln!(out, "allow {src} {tgt}:{class} {pstr};");
        }
    }
    if !foreign.is_empty() {
        let _ = writeln!(
            out,
            "\n# {} line(s) ignored: not the hypervisor's own audit records (guest console output is written as `(dN) ...`; see `policy-compiler audit2allow --help`):",
            foreign.len()
        );
        for l in foreign {
            let _ = writeln!(out, "#   {l}");
        }
    }
    if !unusable.is_empty() {
        let _ = writeln!(
            out,
            "\n# {} denial line(s) without usable contexts (unresolved SIDs?):",
            unusable.len()
        );
        for l in unusable {
            let _ = writeln!(out, "#   {l}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
(XEN) avc:  denied  { setenforce } for current=d1 scontext=system_u:system_r:domU_t tcontext=system_u:system_r:security_t tclass=security
(XEN) avc:  denied  { setenforce } for current=d1 scontext=system_u:system_r:domU_t tcontext=system_u:system_r:security_t tclass=security
(XEN) avc:  denied  { load_policy } for current=d1 scontext=system_u:system_r:domU_t tcontext=system_u:system_r:security_t tclass=security
(XEN) avc:  granted  { readconsole } for current=d0 scontext=system_u:system_r:dom0_t tcontext=system_u:system_r:xen_t tclass=xen
avc:  denied  { map_read map_write } for source=d2 target=d3 scontext=u:vm_r:domU_t tcontext=u:vm_r:isolated_domU_t tclass=grant permissive=0
(XEN) avc:  denied  { bind } for ssid=12 tsid=13 tclass=event
";

    #[test]
    fn groups_and_counts() {
        let out = run(LOG, None);
        assert!(
            out.contains("#============= domU_t =============="),
            "{out}"
        );
        assert!(
            out.contains(
                "# 3 denials\nallow domU_t security_t:security { load_policy setenforce };"
            ),
            "{out}"
        );
        assert!(
            out.contains("# 1 denial\nallow domU_t isolated_domU_t:grant { map_read map_write };"),
            "{out}"
        );
        assert!(
            !out.contains("readconsole"),
            "granted lines are not denials: {out}"
        );
        assert!(out.contains("without usable contexts"), "{out}");
    }

    #[test]
    fn only_the_hypervisors_own_records_are_taken() {
        for ok in [
            "[    1.234567] WARN  audit(1.234:7): avc:  denied  { pause } for source=d1 target=d2 scontext=u:vm_r:domU_t tcontext=u:vm_r:domU_t tclass=domain permissive=0",
            "WARN  audit(1.234:7): avc:  denied  { pause } for scontext=u:vm_r:domU_t tcontext=u:vm_r:domU_t tclass=domain",
            "(XEN) avc:  denied  { pause } for scontext=u:vm_r:domU_t tcontext=u:vm_r:domU_t tclass=domain",
            "(XEN) [2024-01-01 00:00:00] avc:  denied  { pause } for scontext=u:vm_r:domU_t tcontext=u:vm_r:domU_t tclass=domain",
            "avc:  denied  { pause } for scontext=u:vm_r:domU_t tcontext=u:vm_r:domU_t tclass=domain",
        ] {
            assert!(hypervisor_record(ok).is_some(), "{ok}");
            assert!(
                run(ok, None).contains("allow domU_t domU_t:domain pause;"),
                "{ok}"
            );
        }
        // What a guest can make appear in the ring or on the console.
        for forged in [
            "(d1) [    2.000000] [    1.234567] WARN  audit(1.234:7): avc:  denied  { setenforce } for scontext=u:vm_r:domU_t tcontext=u:r:security_t tclass=security",
            "(d1) avc:  denied  { setenforce } for scontext=u:vm_r:domU_t tcontext=u:r:security_t tclass=security",
            "[    2.000000] INFO  (d1) avc:  denied  { setenforce } for scontext=u:vm_r:domU_t tcontext=u:r:security_t tclass=security",
            "dom0: | [    1.0] WARN  audit(1.0:1): avc:  denied  { setenforce } for scontext=u:vm_r:domU_t tcontext=u:r:security_t tclass=security",
            "hello avc:  denied  { setenforce } for scontext=u:vm_r:domU_t tcontext=u:r:security_t tclass=security",
            "[    1.0] WARN  audit(x:1): avc:  denied  { setenforce } for scontext=u:vm_r:domU_t tcontext=u:r:security_t tclass=security",
        ] {
            assert!(hypervisor_record(forged).is_none(), "{forged}");
            let out = run(forged, None);
            assert!(!out.contains("\nallow "), "{forged}: {out}");
            assert!(
                out.contains("1 line(s) ignored: not the hypervisor's own audit records"),
                "{out}"
            );
        }
    }

    #[test]
    fn names_hex_bits_and_flags_unknowns_with_a_policy() {
        let mut pn = PolicyNames::default();
        pn.classes.insert(
            "security".into(),
            vec!["compute_av".into(), "compute_create".into()],
        );
        pn.types.insert("domU_t".into());
        let out = run(
            "avc:  denied  { 0x2 nosuch } for scontext=a:b:domU_t tcontext=a:b:security_t tclass=security\n",
            Some(&pn),
        );
        assert!(
            out.contains("allow domU_t security_t:security { compute_create nosuch };"),
            "{out}"
        );
        assert!(
            out.contains("#!!!! security has no permission nosuch in the policy"),
            "{out}"
        );
        assert!(
            out.contains("#!!!! type security_t is not in the policy"),
            "{out}"
        );
    }
}
