//! xen/include/public/io/console.h: the console ring shared between a
//! domain and its console backend (`HVM_PARAM_CONSOLE_PFN` /
//! `HVM_PARAM_CONSOLE_EVTCHN`).

/// Bytes of the input ring (backend to guest).
pub const IN_SIZE: u32 = 1024;
/// Bytes of the output ring (guest to backend).
pub const OUT_SIZE: u32 = 2048;

crate::pod! {
    /// `struct xencons_interface`: two byte rings with free-running u32
    /// indexes (an index is masked with the ring size minus one to address
    /// it). The producer writes the bytes, then advances its index; the
    /// consumer reads them, then advances its own.
    pub struct Interface {
        pub input: [u8; 1024],
        pub output: [u8; 2048],
        pub in_cons: u32,
        pub in_prod: u32,
        pub out_cons: u32,
        pub out_prod: u32,
    }
}

/// Offset of `in_cons` in the page.
pub const IN_CONS: u64 = 3072;
/// Offset of `in_prod`.
pub const IN_PROD: u64 = 3076;
/// Offset of `out_cons`.
pub const OUT_CONS: u64 = 3080;
/// Offset of `out_prod`.
pub const OUT_PROD: u64 = 3084;
/// Offset of the output ring.
pub const OUT: u64 = 1024;

const _: () = assert!(core::mem::size_of::<Interface>() == 3088);
