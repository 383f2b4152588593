//! Every integration test of the workspace checks in one binary (`autotests = false` in Cargo.toml): one
//! compile and link instead of 3; nextest still runs each test in a process of its own.

mod docs;
mod layering;
mod template;
