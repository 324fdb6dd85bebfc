//! The options of `pallet serve`: exposure, limits, the seed's workflow types.

use crate::api::{self, AdmissionLimits, ServiceOptions};
use crate::cli::args::ServeArgs;
use crate::cli::printer::BadInput;
use crate::http_server::ConnectionLimits;

/// The service's options; beyond loopback only with a token.
pub fn options(args: &ServeArgs) -> anyhow::Result<ServiceOptions> {
    let token = args.token.clone().filter(|token| !token.is_empty());
    api::check_exposure(args.addr, token.as_deref())
        .map_err(|error| BadInput::new(error.to_string()).hint(crate::bearer::TOKEN_HINT))?;
    let mut options = ServiceOptions {
        token,
        grace: args.grace,
        connections: ConnectionLimits {
            max_connections: args.max_connections as usize,
            header_timeout: args.header_timeout,
        },
        body_timeout: args.body_timeout,
        max_event_streams: args.max_event_streams as usize,
        admission: AdmissionLimits {
            max_active_runs: args.max_active_runs as usize,
            max_inflight_input_bytes: args.max_inflight_input_bytes,
            max_input_bytes: args.max_input_bytes,
            max_queued_runs: args.max_queued_runs as usize,
        },
        ..ServiceOptions::default()
    };
    for pair in &args.workflow_types {
        let Some((name, reference)) = pair
            .split_once('=')
            .filter(|(name, reference)| !name.is_empty() && !reference.is_empty())
        else {
            return Err(
                BadInput::new(format!("--workflow-type `{pair}` is not TYPE=REF"))
                    .hint("e.g. --workflow-type specify=spec-writer-v1")
                    .into(),
            );
        };
        options
            .workflow_types
            .insert(name.to_string(), reference.to_string());
    }
    Ok(options)
}
