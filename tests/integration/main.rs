//! One integration test binary; each module covers one area against real servers.

mod examples;
mod support;
