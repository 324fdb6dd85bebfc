//! The running service of `--server URL`/`PALLET_SERVER`, if any.

use crate::api::client::ApiClient;
use crate::cli::args::ServerArgs;
use crate::cli::printer::BadInput;

/// The service named by `--server`/`PALLET_SERVER`, with its token.
pub fn client(args: &ServerArgs) -> anyhow::Result<Option<ApiClient>> {
    let Some(text) = args.server.as_deref().filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    let token = args.token.clone().filter(|token| !token.is_empty());
    let client = ApiClient::new(text, token).map_err(|error| match error.is_bad_url() {
        true => anyhow::Error::new(
            BadInput::new(error.to_string()).hint("e.g. --server http://127.0.0.1:8080"),
        ),
        false => anyhow::Error::new(error),
    })?;
    Ok(Some(client))
}
