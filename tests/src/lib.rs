//! placeholder: see docs/ARCHITECTURE.md
