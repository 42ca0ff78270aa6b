//! The error type used across Warden: a kind, a human-readable detail, and the
//! source location where the error arose (captured with `#[track_caller]`).

use alloc::string::String;
use core::fmt;
use core::panic::Location;

/// What went wrong, coarsely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Boot-loader data is inconsistent or out of range.
    InvalidBootInfo,
    /// Input (command line, table, guest data) is malformed.
    InvalidInput,
    /// Not enough physical memory (frames) or heap.
    NoMemory,
    /// The hardware lacks a feature Warden needs.
    Unsupported,
    /// The hardware did not behave as expected.
    Hardware,
    /// Something did not happen in time.
    Timeout,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::InvalidBootInfo => "invalid boot information",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::NoMemory => "out of memory",
            ErrorKind::Unsupported => "unsupported hardware",
            ErrorKind::Hardware => "hardware error",
            ErrorKind::Timeout => "timeout",
        })
    }
}

/// An error with the place it was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    detail: String,
    location: &'static Location<'static>,
}

/// Result with [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

impl Error {
    /// A new error recording the caller's source location.
    #[track_caller]
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Error {
            kind,
            detail: detail.into(),
            location: Location::caller(),
        }
    }

    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The detail message.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// Where the error was created.
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (at {}:{})",
            self.kind,
            self.detail,
            self.location.file(),
            self.location.line()
        )
    }
}

/// `Err(Error::new(kind, format!(...)))` with the caller's location.
#[macro_export]
macro_rules! err {
    ($kind:ident, $($arg:tt)*) => {
        $crate::Error::new($crate::ErrorKind::$kind, alloc::format!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_location_of_creation() {
        let line = line!() + 1;
        let e = Error::new(ErrorKind::NoMemory, "no frames left");
        assert_eq!(e.location().line(), line);
        assert!(e.location().file().ends_with("error.rs"));
        let s = alloc::format!("{e}");
        assert!(s.starts_with("out of memory: no frames left (at "), "{s}");
        assert!(s.ends_with(&alloc::format!("error.rs:{line})")), "{s}");
    }

    #[test]
    fn macro_formats_detail() {
        let e = err!(InvalidInput, "bad value {}", 42);
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.detail(), "bad value 42");
    }
}
