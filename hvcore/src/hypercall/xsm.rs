//! xsm_op: the FLASK security server (Xen's flask_op sub-operations).
//! Without FLASK (`flask=disabled`) every sub-operation is -ENOSYS, as in Xen.

use super::{Call, HcResult};
use crate::gate::table::*;
use warden_abi::errno;
use warden_abi::xsm::*;
use xsm::{Sid, flask::OconKind};

fn xe(e: xsm::Error) -> i32 {
    e.errno()
}

/// Longest boolean name accepted.
const MAX_BOOL_NAME: usize = 256;

pub fn xsm_op(c: &mut Call<'_>, arg: u64) -> HcResult {
    let mut op: FlaskOp = c.read(arg)?;
    if op.interface_version != FLASK_INTERFACE_VERSION {
        return Err(errno::ENOSYS);
    }
    // With FLASK disabled every row's default action is -ENOSYS; the checks
    // below return it before the security server is needed.
    match op.cmd {
        LOAD => {
            let p = c.check::<FlaskLoad>()?;
            let a: Load = op.arg();
            if a.size > MAX_POLICY_SIZE {
                return Err(errno::EINVAL);
            }
            let f = c.flask(&p)?;
            let buf = c.read_bytes(
                a.buffer,
                a.size as usize,
                MAX_POLICY_SIZE as usize,
                errno::EINVAL,
            )?;
            let change = c.global(&p).labels_changing();
            if let Err(e) = f.load_policy(&buf) {
                let n = e.errno();
                log::warn!(
                    "Flask: policy load from d{} refused: {e} (-{n} {}); the policy in force is unchanged",
                    c.caller.id,
                    errno::name(n)
                );
                return Err(n);
            }
            change.relabel_all();
            let g = c.global(&p);
            let late = g.first_late_load();
            if late {
                if !f.enforcing() {
                    f.set_enforcing(true);
                }
                log::info!("Flask: Policy loaded, continuing in enforcing mode.");
            } else {
                log::info!(
                    "Flask: policy ({} bytes) loaded by d{}",
                    a.size,
                    c.caller.id
                );
            }
            Ok(0)
        }
        GETENFORCE => {
            let p = c.check::<FlaskGetEnforce>()?;
            Ok(c.flask(&p)?.enforcing() as u64)
        }
        SETENFORCE => {
            let p = c.check::<FlaskSetEnforce>()?;
            let a: SetEnforce = op.arg();
            let on = a.enforcing != 0;
            if c.flask(&p)?.set_enforcing(on) {
                log::info!(
                    "Flask: d{} switched to {} mode",
                    c.caller.id,
                    if on { "enforcing" } else { "permissive" }
                );
            }
            Ok(0)
        }
        CONTEXT_TO_SID => {
            let p = c.check::<FlaskContextToSid>()?;
            let mut a: SidContext = op.arg();
            let f = c.flask(&p)?;
            let mut text = c.read_bytes(
                a.context,
                a.size as usize,
                MAX_CONTEXT_LEN as usize,
                errno::ENOENT,
            )?;
            while text.last() == Some(&0) {
                text.pop();
            }
            a.sid = f.context_to_sid(&text).map_err(xe)?.raw();
            op.set_arg(&a);
            c.write(arg, &op)?;
            Ok(0)
        }
        SID_TO_CONTEXT => {
            let p = c.check::<FlaskSidToContext>()?;
            let mut a: SidContext = op.arg();
            let text = c
                .flask(&p)?
                .sid_to_context(Sid::from_raw(a.sid))
                .map_err(xe)?;
            let need = u32::try_from(text.len() + 1).map_err(|_| errno::ERANGE)?;
            if need > a.size {
                a.size = need;
                op.set_arg(&a);
                c.write(arg, &op)?;
                return Err(errno::ERANGE);
            }
            let mut bytes = alloc::vec::Vec::from(text.as_bytes());
            bytes.push(0);
            c.write_bytes(a.context, &bytes)?;
            a.size = need;
            op.set_arg(&a);
            c.write(arg, &op)?;
            Ok(0)
        }
        ACCESS => {
            let p = c.check::<FlaskAccess>()?;
            let mut a: Access = op.arg();
            let f = c.flask(&p)?;
            let d = f
                .compute_av(
                    Sid::from_raw(a.ssid),
                    Sid::from_raw(a.tsid),
                    a.tclass as u32,
                )
                .map_err(xe)?;
            a.allowed = d.allowed;
            a.audit_allow = d.auditallow;
            a.audit_deny = d.auditdeny;
            a.seqno = f.seqno();
            op.set_arg(&a);
            c.write(arg, &op)?;
            Ok(0)
        }
        CREATE | RELABEL | MEMBER => {
            let cmd = op.cmd;
            let f = match cmd {
                CREATE => c.flask(&c.check::<FlaskCreate>()?)?,
                RELABEL => c.flask(&c.check::<FlaskRelabel>()?)?,
                _ => c.flask(&c.check::<FlaskMember>()?)?,
            };
            let mut a: Transition = op.arg();
            let (s, t, cl) = (
                Sid::from_raw(a.ssid),
                Sid::from_raw(a.tsid),
                a.tclass as u32,
            );
            let r = match cmd {
                CREATE => f.compute_create(s, t, cl),
                RELABEL => f.compute_relabel(s, t, cl),
                _ => f.compute_member(s, t, cl),
            };
            a.newsid = r.map_err(xe)?.raw();
            op.set_arg(&a);
            c.write(arg, &op)?;
            Ok(0)
        }
        POLICYVERS => {
            let p = c.check::<FlaskPolicyVers>()?;
            Ok(c.flask(&p)?.policyvers() as u64)
        }
        GETBOOL | SETBOOL => {
            let set = op.cmd == SETBOOL;
            let (f, setp) = if set {
                let p = c.check::<FlaskSetBool>()?;
                (c.flask(&p)?, Some(p))
            } else {
                (c.flask(&c.check::<FlaskGetBool>()?)?, None)
            };
            let mut a: Boolean = op.arg();
            // Xen numbers booleans from 0; the server from 1. u32::MAX: by name.
            let info = if a.bool_id == u32::MAX {
                let name = c.read_bytes(a.name, a.size as usize, MAX_BOOL_NAME, errno::ENOENT)?;
                let name = core::str::from_utf8(&name).map_err(|_| errno::ENOENT)?;
                f.get_bool_by_name(name.trim_end_matches('\0'))
                    .map_err(xe)?
            } else {
                f.get_bool(a.bool_id.checked_add(1).ok_or(errno::ENOENT)?)
                    .map_err(xe)?
            };
            a.bool_id = info.id - 1;
            if set {
                // Conditional type_transition rules may give domains other
                // `_self` labels once the value is committed.
                let change = setp
                    .as_ref()
                    .filter(|_| a.commit != 0)
                    .map(|p| c.global(p).labels_changing());
                f.set_bool(info.id, a.new_value != 0, a.commit != 0)
                    .map_err(xe)?;
                if let Some(change) = change {
                    change.relabel_all();
                }
                let now = f.get_bool(info.id).map_err(xe)?;
                a.enforcing = now.current as u8;
                a.pending = now.pending as u8;
                op.set_arg(&a);
                c.write(arg, &op)?;
                return Ok(0);
            }
            a.enforcing = info.current as u8;
            a.pending = info.pending as u8;
            if a.size > 0 && a.name != 0 && op.arg::<Boolean>().bool_id != u32::MAX {
                let need = info.name.len() as u32;
                if need > a.size {
                    a.size = need;
                    op.set_arg(&a);
                    c.write(arg, &op)?;
                    return Err(errno::ERANGE);
                }
                c.write_bytes(a.name, info.name.as_bytes())?;
                a.size = need;
            }
            op.set_arg(&a);
            c.write(arg, &op)?;
            Ok(0)
        }
        COMMITBOOLS => {
            let p = c.check::<FlaskCommitBools>()?;
            let change = c.global(&p).labels_changing();
            c.flask(&p)?.commit_bools().map_err(xe)?;
            change.relabel_all();
            Ok(0)
        }
        MLS => {
            let p = c.check::<FlaskMls>()?;
            Ok(c.flask(&p)?.mls_enabled() as u64)
        }
        GETAVC_THRESHOLD => {
            let p = c.check::<FlaskGetAvcThreshold>()?;
            Ok(c.flask(&p)?.avc_threshold() as u64)
        }
        SETAVC_THRESHOLD => {
            let p = c.check::<FlaskSetAvcThreshold>()?;
            let a: SetAvcThreshold = op.arg();
            c.flask(&p)?.set_avc_threshold(a.threshold).map_err(xe)?;
            Ok(0)
        }
        AVC_HASHSTATS => {
            let p = c.check::<FlaskAvcHashStats>()?;
            let h = c.flask(&p)?.hash_stats();
            op.set_arg(&HashStats {
                entries: h.entries,
                buckets_used: h.buckets_used,
                buckets_total: h.buckets_total,
                max_chain_len: h.max_chain_len,
            });
            c.write(arg, &op)?;
            Ok(0)
        }
        AVC_CACHESTATS => {
            let p = c.check::<FlaskAvcCacheStats>()?;
            let mut a: CacheStats = op.arg();
            if a.cpu >= c.global(&p).nr_cpus() {
                return Err(errno::ENOENT);
            }
            let s = c
                .flask(&p)?
                .cache_stats(a.cpu as usize)
                .ok_or(errno::ENOENT)?;
            a.lookups = s.lookups as u32;
            a.hits = s.hits as u32;
            a.misses = s.misses as u32;
            a.allocations = s.allocations as u32;
            a.reclaims = s.reclaims as u32;
            a.frees = s.frees as u32;
            op.set_arg(&a);
            c.write(arg, &op)?;
            Ok(0)
        }
        ADD_OCONTEXT | DEL_OCONTEXT => {
            let add = op.cmd == ADD_OCONTEXT;
            let f = if add {
                c.flask(&c.check::<FlaskAddOcontext>()?)?
            } else {
                c.flask(&c.check::<FlaskDelOcontext>()?)?
            };
            let a: Ocontext = op.arg();
            let kind = match a.ocon {
                ocon::PIRQ => OconKind::Pirq,
                ocon::IOPORT => OconKind::Ioport,
                ocon::IOMEM => OconKind::Iomem,
                ocon::DEVICE => OconKind::Device,
                _ => return Err(errno::EINVAL),
            };
            if a.low > a.high {
                return Err(errno::EINVAL);
            }
            if add {
                f.add_ocontext(kind, a.low, a.high, Sid::from_raw(a.sid))
                    .map_err(xe)?;
            } else {
                f.del_ocontext(kind, a.low, a.high).map_err(xe)?;
            }
            Ok(0)
        }
        GET_PEER_SID => {
            let _p = c.check::<FlaskGetPeerSid>()?;
            let mut a: PeerSid = op.arg();
            // As Xen: the label of the domain at the other end of one of the
            // caller's interdomain channels (EINVAL for any other port).
            let me = c.caller;
            let snap = c.port_snapshot(&me, a.evtchn)?;
            let crate::xen::evtchn::State::Interdomain { remote_id, .. } = snap.state else {
                return Err(errno::EINVAL);
            };
            a.sid = c.target(remote_id).map_err(|_| errno::EINVAL)?.sid;
            op.set_arg(&a);
            c.write(arg, &op)?;
            Ok(0)
        }
        RELABEL_DOMAIN => {
            let a: Relabel = op.arg();
            let new = a.sid;
            let id = u16::try_from(a.domid).map_err(|_| errno::ESRCH)?;
            let t = c.target(id)?;
            let (d, f, checked) = if t.id == c.caller.id {
                let p = c.check_req::<FlaskRelabelSelf>(Some(t), Some(new))?;
                let checked = *p.target().ok_or(errno::ESRCH)?;
                (c.resolve(&p)?.relabelling(), c.flask(&p)?, checked)
            } else {
                let p = c.check_req::<FlaskRelabelDomain>(Some(t), Some(new))?;
                let checked = *p.target().ok_or(errno::ESRCH)?;
                (c.resolve(&p)?.relabelling(), c.flask(&p)?, checked)
            };
            let old = f.sid_to_context(Sid::from_raw(t.sid)).unwrap_or_default();
            let text = f.sid_to_context(Sid::from_raw(new)).map_err(xe)?;
            // Written only if the slot still holds the domain and label
            // that were checked (not by id: the id may have been reused).
            d.relabel(&checked, new)?;
            log::info!(
                "Flask: d{} relabelled d{} from {old} to {text}",
                c.caller.id,
                d.id
            );
            Ok(0)
        }
        DEVICETREE_LABEL => {
            let a: DevicetreeLabel = op.arg();
            if a.sid != 0 {
                c.check::<FlaskDevicetreeLabel>().map(drop)?;
            } else {
                c.check::<FlaskDevicetreeUnlabel>().map(drop)?;
            }
            let _path = c.read_bytes(a.path, a.length as usize, 4096, errno::ENOENT)?;
            // x86 platforms describe devices with ACPI and PCI, not a device tree.
            Err(errno::EOPNOTSUPP)
        }
        n => c.unknown("xsm_op", n as u64),
    }
}
