//! What the boot modules are for.
//!
//! - The FLASK policy: the first module whose first u32 is 0xf97cff8c (as Xen).
//!   A later module with the same magic is not the policy; it is classified
//!   like any other module (so normally handed to dom0, as Xen does) and
//!   listed in [`Plan::other_policies`] for a boot warning.
//! - dom0's kernel: the first other module; its command line is dom0's.
//! - Boot-built domains (dom0less style): modules whose command line starts
//!   with the word `domain`:
//!
//!   ```text
//!   domain [name=NAME] [label=USER:ROLE:TYPE[:LEVEL]] [mem=SIZE] [vcpus=N]
//!          [weight=W] [domid=N] [-- GUEST COMMAND LINE]
//!   ```
//!
//!   built after dom0, in module order, each from its own kernel (a PVH
//!   kernel, or an ELF64 one with Warden's 64-bit start).
//! - A module whose command line is exactly `initrd`, directly after a
//!   `domain` module, is that domain's initrd (module 0 of its
//!   `hvm_start_info`, handed over without a command line). Anywhere else
//!   it is an ordinary module for dom0.
//! - Every other module is handed to dom0 (copied into its memory and listed
//!   in its start information with its command line), in order.

use crate::cmdline::{parse_size, parse_u64, tokenize};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// The FLASK policy magic (first u32 of a binary policy).
pub const XSM_MAGIC: u32 = 0xf97c_ff8c;

/// Default memory of a boot-built domain.
pub const DEFAULT_DOMAIN_MEM: u64 = 16 << 20;

/// A boot-built domain's parameters (from its module's command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSpec {
    /// Module index of its kernel.
    pub module: usize,
    pub name: String,
    /// Security context (None: the domU initial SID).
    pub label: Option<String>,
    pub mem: u64,
    pub vcpus: u32,
    pub weight: u32,
    pub domid: Option<u16>,
    /// The guest's own command line (after `--`).
    pub cmdline: String,
    /// Module index of its initrd (the `initrd` module right after it).
    pub initrd: Option<usize>,
}

/// The plan for the boot modules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub policy: Option<usize>,
    pub dom0: Option<usize>,
    pub domains: Vec<DomainSpec>,
    /// Modules for dom0, in order.
    pub dom0_modules: Vec<usize>,
    /// Modules other than the policy that carry the policy magic (warned
    /// about: they are not the boot policy; like Xen, Warden hands them to
    /// dom0, which may load one at run time).
    pub other_policies: Vec<usize>,
}

/// Parse a `domain ...` command line (without the leading word).
pub fn parse_domain(module: usize, args: &str) -> Result<DomainSpec, String> {
    let (opts, guest) = match args.split_once(" -- ") {
        Some((o, g)) => (o, g.trim().to_string()),
        None => match args.trim_end().strip_suffix(" --") {
            Some(o) => (o, String::new()),
            None => (args, String::new()),
        },
    };
    let mut s = DomainSpec {
        module,
        name: format!("domain{module}"),
        label: None,
        mem: DEFAULT_DOMAIN_MEM,
        vcpus: 1,
        weight: crate::sched::DEFAULT_WEIGHT,
        domid: None,
        cmdline: guest,
        initrd: None,
    };
    for tok in tokenize(opts) {
        let (k, v) = tok
            .split_once('=')
            .ok_or_else(|| format!("'{tok}' is not key=value"))?;
        match k {
            "name" => {
                if v.is_empty() || v.len() > 64 {
                    return Err(format!("name '{v}' must be 1 to 64 characters"));
                }
                s.name = v.to_string();
            }
            "label" => s.label = Some(v.to_string()),
            "mem" => {
                s.mem = parse_size(v)
                    .filter(|&m| m >= crate::builder::MIN_MEM)
                    .ok_or_else(|| format!("mem={v}: expected a size of at least 1M"))?
            }
            "vcpus" => {
                s.vcpus = parse_u64(v)
                    .filter(|n| (1..=warden_abi::vcpu::MAX_VCPUS as u64).contains(n))
                    .ok_or_else(|| {
                        format!("vcpus={v}: expected 1 to {}", warden_abi::vcpu::MAX_VCPUS)
                    })? as u32
            }
            "weight" => {
                s.weight = parse_u64(v)
                    .filter(|n| crate::sched::WEIGHT_RANGE.contains(&(*n as u32)) && *n <= 65535)
                    .ok_or_else(|| format!("weight={v}: expected 1 to 65535"))?
                    as u32
            }
            "domid" => {
                s.domid = Some(
                    parse_u64(v)
                        .filter(|&n| n >= 1 && (n as usize) < crate::domain::MAX_DOMAINS)
                        .ok_or_else(|| {
                            format!(
                                "domid={v}: expected 1 to {}",
                                crate::domain::MAX_DOMAINS - 1
                            )
                        })? as u16,
                )
            }
            _ => return Err(format!("unknown option '{k}'")),
        }
    }
    Ok(s)
}

/// Classify modules given each one's first word of content (`magic`) and command line.
pub fn plan(modules: &[(Option<u32>, &str)]) -> Result<Plan, String> {
    let mut p = Plan::default();
    for (i, (magic, cmdline)) in modules.iter().enumerate() {
        if *magic == Some(XSM_MAGIC) {
            if p.policy.is_none() {
                p.policy = Some(i);
                continue;
            }
            p.other_policies.push(i);
        }
        if p.dom0.is_none() {
            p.dom0 = Some(i);
            continue;
        }
        let line = cmdline.trim_start();
        if line.trim_end() == "initrd"
            && i > 0
            && let Some(d) = p.domains.last_mut()
            && d.module == i - 1
        {
            d.initrd = Some(i);
            continue;
        }
        if line == "domain" || line.starts_with("domain ") {
            let spec = parse_domain(i, line.strip_prefix("domain").unwrap_or(""))
                .map_err(|e| format!("module {i}: {e}"))?;
            if let Some(id) = spec.domid
                && p.domains.iter().any(|d| d.domid == Some(id))
            {
                return Err(format!("module {i}: domid={id} given twice"));
            }
            p.domains.push(spec);
        } else {
            p.dom0_modules.push(i);
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_modules() {
        let p = plan(&[
            (Some(0x464c457f), "console=hvc0"),
            (Some(XSM_MAGIC), ""),
            (Some(XSM_MAGIC), "second policy: a payload for dom0"),
            (
                Some(0x464c457f),
                "domain name=a label=system_u:system_r:domU_t vcpus=2 mem=8M -- role=burner x=1",
            ),
            (None, "payload"),
            (Some(0x464c457f), "domain"),
        ])
        .unwrap();
        assert_eq!(p.policy, Some(1));
        assert_eq!(p.dom0, Some(0));
        assert_eq!(p.dom0_modules, [2, 4]);
        assert_eq!(p.other_policies, [2]);
        assert_eq!(p.domains.len(), 2);
        let a = &p.domains[0];
        assert_eq!(a.module, 3);
        assert_eq!(a.name, "a");
        assert_eq!(a.label.as_deref(), Some("system_u:system_r:domU_t"));
        assert_eq!((a.vcpus, a.mem), (2, 8 << 20));
        assert_eq!(a.cmdline, "role=burner x=1");
        assert_eq!(p.domains[1].mem, DEFAULT_DOMAIN_MEM);
        assert_eq!(p.domains[1].cmdline, "");
    }

    #[test]
    fn initrd_after_a_domain_is_its_own() {
        let p = plan(&[
            (None, ""),
            (None, "initrd"),
            (None, "domain name=a -- console=hvc0"),
            (None, "initrd"),
            (None, "initrd"),
            (None, "domain name=b"),
            (None, "payload"),
            (None, "initrd "),
            (None, "domain name=c"),
            (None, "initrd x"),
        ])
        .unwrap();
        assert_eq!(p.dom0, Some(0));
        let got: Vec<(&str, Option<usize>)> = p
            .domains
            .iter()
            .map(|d| (d.name.as_str(), d.initrd))
            .collect();
        assert_eq!(got, [("a", Some(3)), ("b", None), ("c", None)]);
        // Only the module right after a domain is its initrd; the others
        // (and `initrd x`) go to dom0.
        assert_eq!(p.dom0_modules, [1, 4, 6, 7, 9]);
    }

    #[test]
    fn refuses_bad_domain_options() {
        for bad in [
            "domain vcpus=0",
            "domain vcpus=65",
            "domain mem=1k",
            "domain weight=0",
            "domain colour=red",
            "domain name",
            "domain domid=0",
            "domain domid=5000",
        ] {
            assert!(plan(&[(None, "dom0"), (None, bad)]).is_err(), "{bad}");
        }
        assert!(
            plan(&[
                (None, ""),
                (None, "domain domid=3"),
                (None, "domain domid=3")
            ])
            .is_err()
        );
        assert_eq!(plan(&[]).unwrap(), Plan::default());
    }
}
