//! Plain-old-data structures: `#[repr(C)]`, made only of integers and arrays
//! of integers, with every padding byte an explicit field. Any byte string of
//! the right length is a valid value, so structures can be copied to and from
//! guest memory as bytes.

/// A structure whose every bit pattern is valid and which has no implicit
/// padding. Implemented only through the [`pod!`](crate::pod!) macro, which
/// checks at compile time that the size equals the sum of the field sizes.
///
/// # Safety
/// Implementors must be `#[repr(C)]`, contain only integer fields (or arrays
/// of them) and have no padding.
pub unsafe trait Pod: Copy + Default + 'static {
    /// The structure's bytes.
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: `Self: Pod` has no padding, so every byte is initialised;
        // the slice covers exactly the value and borrows it.
        unsafe {
            core::slice::from_raw_parts(
                self as *const Self as *const u8,
                core::mem::size_of::<Self>(),
            )
        }
    }

    /// The structure's bytes, writable.
    fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `as_bytes`; any byte pattern written is a valid `Self`.
        unsafe {
            core::slice::from_raw_parts_mut(
                self as *mut Self as *mut u8,
                core::mem::size_of::<Self>(),
            )
        }
    }

    /// A value from exactly `size_of::<Self>()` bytes (None if the length differs).
    fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != core::mem::size_of::<Self>() {
            return None;
        }
        let mut v = Self::default();
        v.as_bytes_mut().copy_from_slice(b);
        Some(v)
    }
}

macro_rules! prim {
    ($($t:ty),*) => {$(
        // SAFETY: an integer: every bit pattern is valid and there is no padding.
        unsafe impl Pod for $t {}
    )*};
}
prim!(u8, u16, u32, u64, i8, i16, i32, i64);

// SAFETY: zero-sized: no bytes, nothing to be invalid (an empty argument).
unsafe impl Pod for () {}

/// Defines `#[repr(C)]` plain-old-data structures and proves they have no padding.
#[macro_export]
macro_rules! pod {
    ($(
        $(#[$m:meta])*
        pub struct $name:ident {
            $( $(#[$fm:meta])* pub $field:ident : $ty:ty ),* $(,)?
        }
    )*) => {$(
        $(#[$m])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fm])* pub $field: $ty, )*
        }
        impl Default for $name {
            fn default() -> Self {
                // SAFETY: every field is an integer or an array of integers,
                // for which all-zero bytes are a valid value.
                unsafe { core::mem::zeroed() }
            }
        }
        const _: () = assert!(
            core::mem::size_of::<$name>() == 0 $( + core::mem::size_of::<$ty>() )*,
            concat!(stringify!($name), " has implicit padding")
        );
        // SAFETY: repr(C), integer fields only (checked by the types used in
        // this crate), and the assertion above proves there is no padding.
        unsafe impl $crate::Pod for $name {}
    )*};
}

#[cfg(test)]
mod tests {
    use super::Pod;

    crate::pod! {
        /// Test structure.
        pub struct T {
            pub a: u32,
            pub b: u16,
            pub pad: u16,
            pub c: u64,
        }
    }

    #[test]
    fn round_trip() {
        let t = T {
            a: 1,
            b: 2,
            pad: 0,
            c: 3,
        };
        let b = t.as_bytes();
        assert_eq!(b.len(), 16);
        assert_eq!(T::from_bytes(b), Some(t));
        assert_eq!(T::from_bytes(&b[1..]), None);
    }
}
