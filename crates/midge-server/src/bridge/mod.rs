//! Bridges: Mosquitto's `connection` blocks. Each bridge is one task that keeps a link to a
//! remote broker and forwards messages both ways between it and a session of this broker.
//!
//! - `plan`: from the configuration to what a bridge runs with (client identifiers, the
//!   remote connection's options, TLS read at startup).
//! - `topics`: the topic rules: what to subscribe to on each side, how topics are renamed.
//! - `connector`: the remote addresses, tried in turn; TCP options; TLS.
//! - `local`: the bridge's session in this broker, driven in process.
//! - `run`: the task: the link's life, forwarding, acknowledgements, notifications, lazy start.
//! - `status`: the state and counters `$SYS` publishes.
//!
//! What is guaranteed and where Midge differs from Mosquitto: `docs/bridges.md`.

mod connector;
pub(crate) mod local;
mod plan;
mod run;
mod status;
mod topics;

use std::sync::Arc;

use midge_core::Broker;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use plan::{BridgePlan, PlanError, plan, plan_all};
pub use status::BridgeStatus;

/// Starts every bridge in `tasks`; each runs until `stop` changes. Their sessions here exist
/// when this returns, so call it before accepting clients. Returns their statuses, in the
/// order of `plans`.
pub(crate) fn start(
    plans: Vec<BridgePlan>,
    broker: &Arc<Broker>,
    log_settled: Option<&watch::Receiver<u64>>,
    stop: &watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) -> Vec<Arc<BridgeStatus>> {
    plans
        .into_iter()
        .map(|plan| {
            let status = Arc::new(BridgeStatus::new(&plan.name, &plan.local_client_id));
            tasks.spawn(run::start(
                plan,
                broker.clone(),
                status.clone(),
                log_settled.cloned(),
                stop.clone(),
            ));
            status
        })
        .collect()
}
