//! FLASK commands as Xen's tools do them (`xl getenforce`, `xl setenforce`,
//! `flask-get-bool -a`, `flask-set-bool`): the values they accept, the
//! booleans of the loaded policy, and the mode as the operator should see it.

use crate::hypercall::{self as hc, Errno};
use alloc::string::String;
use alloc::vec::Vec;
use warden_abi::errno;

/// `setenforce` values: `0`, `1`, `permissive`, `enforcing` (the words in
/// any case, as `xl setenforce`). Anything else is refused.
pub fn parse_enforce(v: &str) -> Result<bool, String> {
    match v {
        "1" => Ok(true),
        "0" => Ok(false),
        _ if v.eq_ignore_ascii_case("enforcing") => Ok(true),
        _ if v.eq_ignore_ascii_case("permissive") => Ok(false),
        _ => Err(alloc::format!(
            "invalid mode '{v}': expected 0, 1, permissive or enforcing"
        )),
    }
}

/// `setbool` values: `0`, `1`, `true`, `false`, `on`, `off` (the words in any
/// case). Anything else, or nothing, is refused.
pub fn parse_bool(v: Option<&str>) -> Result<bool, String> {
    let Some(v) = v else {
        return Err("a value is required: 0, 1, true, false, on or off".into());
    };
    match v {
        "1" => Ok(true),
        "0" => Ok(false),
        _ if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("on") => Ok(true),
        _ if v.eq_ignore_ascii_case("false") || v.eq_ignore_ascii_case("off") => Ok(false),
        _ => Err(alloc::format!(
            "invalid value '{v}': expected 0, 1, true, false, on or off"
        )),
    }
}

/// One boolean of the loaded policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bool {
    pub name: String,
    pub current: bool,
    pub pending: bool,
}

/// Every boolean of the loaded policy, by number from 0 until -ENOENT (as
/// `flask-get-bool -a`).
pub fn booleans() -> Result<Vec<Bool>, Errno> {
    let mut v = Vec::new();
    for id in 0..4096 {
        match hc::flask_getbool_byid(id) {
            Ok((name, current, pending)) => v.push(Bool {
                name,
                current,
                pending,
            }),
            Err(Errno(errno::ENOENT)) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(v)
}

/// The FLASK state as the operator should see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `flask=disabled`: FLASK_GETENFORCE is -ENOSYS.
    Disabled,
    Enforcing,
    Permissive,
    /// No policy is loaded (`flask=late` before dom0 loads one, or a
    /// permissive boot whose policy was refused): everything is allowed.
    /// `enforcing` is the mode that applies once a policy is loaded.
    NoPolicy {
        enforcing: bool,
    },
}

/// The mode: FLASK_GETENFORCE (Xen answers 1 under `flask=late` before any
/// policy is loaded, as if it enforced), and whether a policy is loaded —
/// FLASK_SID_TO_CONTEXT of the caller's own label fails with -EINVAL only
/// when none is.
pub fn mode(own_domid: u16) -> Result<Mode, Errno> {
    let e = match hc::flask_getenforce() {
        Ok(e) => e == 1,
        Err(Errno(errno::ENOSYS)) => return Ok(Mode::Disabled),
        Err(e) => return Err(e),
    };
    let sid = hc::getdomaininfo(own_domid)?.ssidref;
    let mut b = [0u8; 256];
    match hc::flask_sid_to_context(sid, &mut b) {
        Err(Errno(errno::EINVAL)) => Ok(Mode::NoPolicy { enforcing: e }),
        _ if e => Ok(Mode::Enforcing),
        _ => Ok(Mode::Permissive),
    }
}

impl core::fmt::Display for Mode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Mode::Disabled => f.write_str("Flask XSM Disabled"),
            Mode::Enforcing => f.write_str("Enforcing"),
            Mode::Permissive => f.write_str("Permissive"),
            Mode::NoPolicy { enforcing } => write!(
                f,
                "No policy loaded: everything is allowed until one is (then {})",
                if *enforcing {
                    "enforcing"
                } else {
                    "permissive"
                }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setenforce_values() {
        for (v, want) in [
            ("1", true),
            ("0", false),
            ("enforcing", true),
            ("Enforcing", true),
            ("permissive", false),
            ("PERMISSIVE", false),
        ] {
            assert_eq!(parse_enforce(v), Ok(want), "{v}");
        }
        for bad in ["", "2", "on", "true", "enforce", "01", " 1", "yes"] {
            assert!(parse_enforce(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn setbool_values() {
        for (v, want) in [
            ("1", true),
            ("0", false),
            ("true", true),
            ("false", false),
            ("on", true),
            ("off", false),
            ("ON", true),
            ("False", false),
        ] {
            assert_eq!(parse_bool(Some(v)), Ok(want), "{v}");
        }
        for bad in ["", "2", "10", "yes", "enabled", "y", "of"] {
            assert!(parse_bool(Some(bad)).is_err(), "{bad:?} must be refused");
        }
        assert!(
            parse_bool(None)
                .unwrap_err()
                .contains("a value is required")
        );
    }

    #[test]
    fn modes_read_as_xl_prints_them() {
        assert_eq!(alloc::format!("{}", Mode::Enforcing), "Enforcing");
        assert_eq!(alloc::format!("{}", Mode::Disabled), "Flask XSM Disabled");
        assert!(
            alloc::format!("{}", Mode::NoPolicy { enforcing: true })
                .starts_with("No policy loaded")
        );
    }
}
