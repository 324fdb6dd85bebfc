//! One module per command (or family of commands); each takes what
//! `settings/` resolved (or the arguments it resolves there) and gives the
//! exit status, printing through `printer/`.

pub mod agent;
pub mod agents;
pub mod meta;
pub mod registry;
pub mod remote;
pub mod run;
pub mod runs;
pub mod serve;
pub mod validate;
