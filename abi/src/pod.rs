//! Plain-old-data structures: `#[repr(C)]`, made only of integers, arrays of
//! them and other such structures, with every padding byte an explicit field.
//! Any byte string of the right length is a valid value, so structures can be
//! copied to and from guest memory as bytes.
//!
//! [`pod!`](crate::pod!) accepts only fields whose type is a [`PodField`]: a
//! field of another type (`bool`, `char`, a reference, an enum: types with
//! invalid bit patterns) does not compile:
//!
//! ```compile_fail,E0277
//! warden_abi::pod! {
//!     pub struct Flagged {
//!         pub flag: bool,
//!         pub pad: [u8; 7],
//!     }
//! }
//! ```
//!
//! while integers, arrays of them and pod! structures do:
//!
//! ```
//! warden_abi::pod! {
//!     pub struct Inner {
//!         pub a: u32,
//!         pub b: [u16; 2],
//!     }
//!     pub struct Outer {
//!         pub inner: Inner,
//!         pub many: [Inner; 3],
//!         pub flags: u64,
//!     }
//! }
//! use warden_abi::Pod;
//! assert_eq!(Outer::default().as_bytes().len(), 40);
//! ```

/// A type that may be a field of a [`pod!`](crate::pod!) structure: every
/// bit pattern of its size is a valid value and it has no padding.
/// Implemented here for the integers and arrays of such types, and by
/// [`pod!`](crate::pod!) for each structure it defines.
///
/// # Safety
/// Implementors must have no padding and no invalid bit pattern (so any
/// bytes, all-zero ones included, are a valid value).
pub unsafe trait PodField: Copy + 'static {}

/// A structure whose every bit pattern is valid and which has no implicit
/// padding. Implemented only through the [`pod!`](crate::pod!) macro, which
/// checks at compile time that every field is a [`PodField`] and that the
/// size equals the sum of the field sizes.
///
/// # Safety
/// Implementors must be `#[repr(C)]`, contain only [`PodField`] fields and
/// have no padding.
pub unsafe trait Pod: PodField + Default {
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
        unsafe impl PodField for $t {}
        // SAFETY: as above.
        unsafe impl Pod for $t {}
    )*};
}
prim!(u8, u16, u32, u64, i8, i16, i32, i64);

// SAFETY: an array has no padding between elements (an element's size is a
// multiple of its alignment) and its bit patterns are those of its elements.
unsafe impl<T: PodField, const N: usize> PodField for [T; N] {}

// SAFETY: zero-sized: no bytes, nothing to be invalid (an empty argument).
unsafe impl PodField for () {}
// SAFETY: as above.
unsafe impl Pod for () {}

/// Compiles only for [`PodField`] types (the field check of [`pod!`](crate::pod!)).
#[doc(hidden)]
pub const fn assert_pod_field<T: PodField>() {}

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
        // Every field is plain old data (a field of another type, such as
        // `bool`, does not compile here).
        const _: () = { $( $crate::pod::assert_pod_field::<$ty>(); )* };
        impl Default for $name {
            fn default() -> Self {
                // SAFETY: every field is a PodField (checked above), for
                // which all-zero bytes are a valid value.
                unsafe { core::mem::zeroed() }
            }
        }
        const _: () = assert!(
            core::mem::size_of::<$name>() == 0 $( + core::mem::size_of::<$ty>() )*,
            concat!(stringify!($name), " has implicit padding")
        );
        // SAFETY: repr(C), PodField fields only and no padding (both checked
        // above): any bytes are a valid value.
        unsafe impl $crate::pod::PodField for $name {}
        // SAFETY: as above.
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
