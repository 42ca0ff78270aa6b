//! placeholder: built by cargo xtask
fn main() {}
