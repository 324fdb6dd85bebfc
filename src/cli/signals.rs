//! Ctrl-C and SIGTERM: how a run, a service and an agent server stop.

use tokio_util::sync::CancellationToken;

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    Signals::new().next().await;
}

/// Ctrl-C and SIGTERM as one stream of interruptions.
pub struct Signals {
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    pub fn new() -> Signals {
        let terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        Signals { terminate }
    }

    /// Waits for the next Ctrl-C or SIGTERM.
    pub async fn next(&mut self) {
        let terminate = async {
            match &mut self.terminate {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate => {}
        }
    }
}

/// The first Ctrl-C cancels the run cleanly (agents' tasks are cancelled,
/// skill processes stopped); SIGTERM stops it the same way but leaves it
/// resumable (`interrupt` is cancelled first). A second signal exits at once.
pub async fn stop_on_signal(cancel: CancellationToken, interrupt: CancellationToken) {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match &mut terminate {
            Some(signal) => signal.recv().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            errln!("cancelling the run (press Ctrl-C again to exit at once)");
        }
        _ = terminated => interrupt.cancel(),
    }
    cancel.cancel();
    Signals::new().next().await;
    std::process::exit(130);
}
