//! FLASK at boot: the `flask=` mode, the policy from the boot modules, the
//! security server (one global `xsm::Flask`), and the audit sink that puts
//! `avc:` records into the console ring.

use hvcore::cmdline::FlaskMode;
use hvcore::gate::{Gate, Module};
use hvcore::{Result, err};
use log::{info, warn};
use xsm::Flask;
use xsm::audit::{AuditEvent, AuditRecord, AuditSink};

/// Audit records go to the console (ring and serial): denials at warning
/// level, grants (auditallow) and suppression notes at info level.
struct ConsoleAudit;

impl AuditSink for ConsoleAudit {
    fn now_ms(&self) -> u64 {
        crate::time::now_ns() / 1_000_000
    }

    fn emit(&self, r: &AuditRecord) {
        match &r.event {
            AuditEvent::Avc { granted: false, .. } => log::warn!("{r}"),
            _ => log::info!("{r}"),
        }
    }
}

static AUDIT: ConsoleAudit = ConsoleAudit;
static FLASK: spin::Once<Flask> = spin::Once::new();

/// Start the security module selected by `flask=` with the boot policy (if
/// any); refuse to boot where Xen does: an unknown mode, or enforcing mode
/// without a valid policy.
pub fn init(
    mode: FlaskMode,
    invalid: Option<&str>,
    ratelimit: Option<(u32, u64)>,
    policy: Option<(u64, &[u8])>,
) -> Result<Gate> {
    if let Some(v) = invalid {
        return Err(err!(
            InvalidInput,
            "flask={v}: not a FLASK mode (enforcing, permissive, late or disabled)"
        ));
    }
    info!("XSM Framework v1.0.1 initialized");
    if mode == FlaskMode::Disabled {
        info!("Flask:  Disabled at boot.");
        if policy.is_some() {
            info!("Flask:  the policy module is not used (flask=disabled)");
        }
        return Ok(Gate::new(Module::Dummy));
    }
    let enforcing = mode != FlaskMode::Permissive;
    let flask = FLASK.call_once(|| Flask::new(enforcing, Some(&AUDIT)));
    if let Some((burst, ms)) = ratelimit {
        flask.set_audit_ratelimit(burst, ms);
        if burst == u32::MAX {
            info!("Flask:  audit records are not rate limited (audit_ratelimit=0)");
        } else {
            info!("Flask:  audit records limited to {burst} per {ms} ms");
        }
    }
    if mode == FlaskMode::Late {
        if policy.is_some() {
            info!("Flask:  the boot policy module is not loaded (flask=late)");
        }
        info!("Flask:  Access controls disabled until policy is loaded.");
        return Ok(Gate::new(Module::Flask(flask)));
    }
    match policy {
        Some((addr, bytes)) => {
            info!("Policy len {:#x}, start at {addr:#x}.", bytes.len());
            if let Err(e) = flask.load_policy(bytes) {
                if enforcing {
                    return Err(err!(InvalidInput, "Unable to load FLASK policy: {e}"));
                }
                warn!(
                    "Flask:  the boot policy was refused ({e}); everything is allowed until a policy is loaded"
                );
            }
        }
        None if enforcing => {
            return Err(err!(
                InvalidInput,
                "Unable to load FLASK policy: no boot module is a FLASK policy (first u32 {:#x}); boot with the policy module or flask=permissive|late|disabled",
                hvcore::bootplan::XSM_MAGIC
            ));
        }
        None => warn!("Flask:  no policy module; everything is allowed until a policy is loaded"),
    }
    info!(
        "Flask:  Starting in {} mode.",
        if enforcing { "enforcing" } else { "permissive" }
    );
    Ok(Gate::new(Module::Flask(flask)))
}
