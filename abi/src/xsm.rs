//! `xsm_op(op)` (hypercall 27): the FLASK security server. `op` points to a
//! [`FlaskOp`] (`interface_version` must be [`FLASK_INTERFACE_VERSION`]);
//! for the sub-operations that return data the structure is copied back.
//! Sub-operations 9 (USER) and 15 (DISABLE) were removed from Xen and are
//! unknown here too (-ENOSYS).

crate::subops! {
    /// Load a new policy ([`Load`], at most [`MAX_POLICY_SIZE`] bytes).
    LOAD = 1, "load";
    /// Returns 1 when enforcing, 0 when permissive.
    GETENFORCE = 2, "getenforce";
    /// Switch mode ([`SetEnforce`]).
    SETENFORCE = 3, "setenforce";
    /// Context string to SID ([`SidContext`]).
    CONTEXT_TO_SID = 4, "context_to_sid";
    /// SID to context string ([`SidContext`]; -ERANGE with the needed size if too small).
    SID_TO_CONTEXT = 5, "sid_to_context";
    /// Compute an access vector ([`Access`]).
    ACCESS = 6, "access";
    /// type_transition label ([`Transition`]).
    CREATE = 7, "create";
    /// type_change label ([`Transition`]).
    RELABEL = 8, "relabel";
    /// Returns the highest policy version understood.
    POLICYVERS = 10, "policyvers";
    /// A boolean's values ([`Boolean`]).
    GETBOOL = 11, "getbool";
    /// Set a boolean's pending value, or with `commit` its value ([`Boolean`]).
    SETBOOL = 12, "setbool";
    /// Apply every pending boolean value.
    COMMITBOOLS = 13, "commitbools";
    /// Returns 1 if the policy is MLS.
    MLS = 14, "mls";
    /// Returns the AVC threshold.
    GETAVC_THRESHOLD = 16, "getavc_threshold";
    /// Set the AVC threshold ([`SetAvcThreshold`]).
    SETAVC_THRESHOLD = 17, "setavc_threshold";
    /// AVC hash statistics ([`HashStats`]).
    AVC_HASHSTATS = 18, "avc_hashstats";
    /// AVC statistics of one CPU ([`CacheStats`]).
    AVC_CACHESTATS = 19, "avc_cachestats";
    /// type_member label ([`Transition`]).
    MEMBER = 20, "member";
    /// Label a resource ([`Ocontext`]).
    ADD_OCONTEXT = 21, "add_ocontext";
    /// Remove a resource label ([`Ocontext`]).
    DEL_OCONTEXT = 22, "del_ocontext";
    /// SID of the peer of one of the caller's interdomain event channels ([`PeerSid`]).
    GET_PEER_SID = 23, "get_peer_sid";
    /// Relabel a domain ([`Relabel`]).
    RELABEL_DOMAIN = 24, "relabel_domain";
    /// Label a device-tree node ([`DevicetreeLabel`]).
    DEVICETREE_LABEL = 25, "devicetree_label";
}

/// The initial SID a toolstack gives a domain created without a label
/// (libxl's `SECINITSID_DOMU`: the `domU` initial SID of Xen 4.17's
/// policy vocabulary, `policies/flask/initial_sids`). A createdomain
/// `ssidref` of 0 is not this: Xen labels such a domain `unlabeled`.
pub const SECINITSID_DOMU: u32 = 12;

/// `FlaskOp::interface_version` (Xen's XEN_FLASK_INTERFACE_VERSION).
pub const FLASK_INTERFACE_VERSION: u32 = 1;
/// Largest policy LOAD accepts (64 MiB, as Xen).
pub const MAX_POLICY_SIZE: u32 = 64 << 20;
/// Longest context string accepted.
pub const MAX_CONTEXT_LEN: u32 = 4096;

/// `Ocontext::ocon` kinds (Xen's OCON_*).
pub mod ocon {
    /// Physical IRQ.
    pub const PIRQ: u32 = 1;
    /// I/O port range.
    pub const IOPORT: u32 = 2;
    /// Memory frame range.
    pub const IOMEM: u32 = 3;
    /// PCI device (SBDF).
    pub const DEVICE: u32 = 4;
}

crate::pod! {
    /// The xsm_op header and argument union.
    pub struct FlaskOp {
        pub cmd: u32,
        pub interface_version: u32,
        pub u: [u8; 56],
    }
    /// `FLASK_LOAD`: `buffer` is a guest pointer to `size` bytes.
    pub struct Load { pub buffer: u64, pub size: u32, pub pad: u32 }
    /// `FLASK_SETENFORCE`.
    pub struct SetEnforce { pub enforcing: u32 }
    /// `FLASK_CONTEXT_TO_SID` / `FLASK_SID_TO_CONTEXT`.
    pub struct SidContext { pub sid: u32, pub size: u32, pub context: u64 }
    /// `FLASK_ACCESS`.
    pub struct Access {
        pub ssid: u32,
        pub tsid: u32,
        pub tclass: u16,
        pub pad: u16,
        pub req: u32,
        pub allowed: u32,
        pub audit_allow: u32,
        pub audit_deny: u32,
        pub seqno: u32,
    }
    /// `FLASK_CREATE` / `FLASK_RELABEL` / `FLASK_MEMBER`.
    pub struct Transition { pub ssid: u32, pub tsid: u32, pub tclass: u16, pub pad: u16, pub newsid: u32 }
    /// `FLASK_GETBOOL` / `FLASK_SETBOOL`: by `bool_id`, or by name when
    /// `bool_id` is u32::MAX (`name`, `size` bytes). GETBOOL with `size` > 0
    /// also returns the name (-ERANGE with the needed size if too small).
    pub struct Boolean {
        pub bool_id: u32,
        pub enforcing: u8,
        pub pending: u8,
        pub new_value: u8,
        pub commit: u8,
        pub size: u32,
        pub pad: u32,
        pub name: u64,
    }
    /// `FLASK_SETAVC_THRESHOLD`.
    pub struct SetAvcThreshold { pub threshold: u32 }
    /// `FLASK_AVC_HASHSTATS`.
    pub struct HashStats { pub entries: u32, pub buckets_used: u32, pub buckets_total: u32, pub max_chain_len: u32 }
    /// `FLASK_AVC_CACHESTATS` for CPU `cpu`.
    pub struct CacheStats {
        pub cpu: u32,
        pub lookups: u32,
        pub hits: u32,
        pub misses: u32,
        pub allocations: u32,
        pub reclaims: u32,
        pub frees: u32,
    }
    /// `FLASK_ADD_OCONTEXT` / `FLASK_DEL_OCONTEXT`.
    pub struct Ocontext { pub ocon: u32, pub sid: u32, pub low: u64, pub high: u64 }
    /// `FLASK_GET_PEER_SID`.
    pub struct PeerSid { pub evtchn: u32, pub sid: u32 }
    /// `FLASK_RELABEL_DOMAIN`.
    pub struct Relabel { pub domid: u32, pub sid: u32 }
    /// `FLASK_DEVICETREE_LABEL`: `path` is a guest pointer to `length` bytes.
    pub struct DevicetreeLabel { pub sid: u32, pub length: u32, pub path: u64 }
}

impl FlaskOp {
    /// An xsm_op for `cmd` with argument `arg`.
    pub fn new<T: crate::Pod>(cmd: u32, arg: &T) -> FlaskOp {
        let mut f = FlaskOp {
            cmd,
            interface_version: FLASK_INTERFACE_VERSION,
            ..Default::default()
        };
        let b = crate::Pod::as_bytes(arg);
        let n = b.len().min(56);
        f.u[..n].copy_from_slice(&b[..n]);
        f
    }

    /// The argument union read as `T`.
    pub fn arg<T: crate::Pod>(&self) -> T {
        let n = core::mem::size_of::<T>().min(56);
        let mut v = T::default();
        crate::Pod::as_bytes_mut(&mut v)[..n].copy_from_slice(&self.u[..n]);
        v
    }

    /// Store `arg` in the union.
    pub fn set_arg<T: crate::Pod>(&mut self, arg: &T) {
        let b = crate::Pod::as_bytes(arg);
        let n = b.len().min(56);
        self.u[..n].copy_from_slice(&b[..n]);
    }
}

const _: () = assert!(core::mem::size_of::<Access>() <= 56);
const _: () = assert!(core::mem::size_of::<CacheStats>() <= 56);
