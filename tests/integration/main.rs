//! One integration test binary; each module covers one area against real servers.

mod support;
mod validate;
