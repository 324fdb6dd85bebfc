//! One integration test binary; each module covers one area against real servers.

mod registry;
mod registry_interop;
mod support;
mod validate;
