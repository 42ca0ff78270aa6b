//! set_timer_op (hypercall 15) and vm_assist (hypercall 21).

use super::{Call, HcResult};
use crate::gate::table::{SetTimerOp, VmAssistDisable, VmAssistEnable};
use warden_abi::errno;
use warden_abi::xen::xen::vm_assist::{DISABLE, ENABLE, HVM_MASK};

/// A deadline this far ahead (2^50 ns, about 13 days) or negative is one of
/// Linux's wrapped jiffies: Xen fires the timer in 100 ms instead.
const HUGE_OFFSET_SHIFT: u32 = 50;
const HUGE_FALLBACK_NS: u64 = 100_000_000;

/// `set_timer_op(timeout)`: arm the calling vCPU's single-shot timer at
/// absolute system time `timeout` (0: stop it). A deadline already past
/// fires at once.
pub fn set_timer_op(c: &mut Call<'_>, timeout: u64) -> HcResult {
    let p = c.check::<SetTimerOp>()?;
    let own = c.own(&p);
    let v = own.vcpu();
    let now = c.now_ns();
    if timeout == 0 {
        own.set_timer(v, None);
    } else if (timeout as i64) < 0
        || timeout
            .checked_sub(now)
            .is_some_and(|off| off > 0 && (off >> HUGE_OFFSET_SHIFT) as u32 != 0)
    {
        own.set_timer(v, Some(now.saturating_add(HUGE_FALLBACK_NS)));
    } else if timeout <= now {
        own.set_timer(v, None);
        own.timer_event(v);
    } else {
        own.set_timer(v, Some(timeout));
    }
    Ok(0)
}

/// `vm_assist(cmd, type)`: only the assists of an HVM domain
/// (`runstate_update_flag`); any other type is -EINVAL, checked first.
pub fn vm_assist(c: &mut Call<'_>, cmd: u64, kind: u64) -> HcResult {
    if kind >= 64 || HVM_MASK & (1 << kind) == 0 {
        return Err(errno::EINVAL);
    }
    match cmd {
        x if x == ENABLE as u64 => {
            let p = c.check::<VmAssistEnable>()?;
            c.own(&p).set_vm_assist(kind as u32, true);
            Ok(0)
        }
        x if x == DISABLE as u64 => {
            let p = c.check::<VmAssistDisable>()?;
            c.own(&p).set_vm_assist(kind as u32, false);
            Ok(0)
        }
        n => c.unknown("vm_assist cmd", n),
    }
}
