//! `midge sub`: mosquitto_sub. Subscribes to every `-t` filter in one SUBSCRIBE, sends one
//! UNSUBSCRIBE per `-U`, then prints messages until `-C` messages were printed, `-W` seconds
//! passed, `--retained-only` saw a live message, `-E` saw the SUBACK, or the connection ended.
//!
//! `-R` and `--retained-only` are applied here as well as asked of an MQTT 5 server;
//! `--remove-retained` clears each retained message printed, and the tool waits for those
//! PUBACKs before leaving.

use std::collections::VecDeque;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use midge_client::{Client, ClientError, Event, PendingPublish};
use midge_codec::properties::PublishProperties;
use midge_codec::{Disconnect, QoS, ReasonCode, RetainHandling, SubAck, SubscriptionOptions};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::Instant;

use super::Tool;
use super::args::{self, Config};
use super::connect::{self, Failure, err_print};
use super::mosquitto_text::MosqError;
use super::publish::{report, stopped_for};

pub(crate) async fn main(args: Vec<String>) -> i32 {
    let cfg = match args::parse(Tool::Sub, &args) {
        Ok(cfg) => cfg,
        Err(stop) => return stopped_for(Tool::Sub, stop),
    };
    if cfg.no_retain && cfg.retained_only {
        eprint!("\nError: Combining '-R' and '--retained-only' makes no sense.\n");
        return 1;
    }
    let id = connect::client_id(&cfg);
    let mut options = connect::options(&cfg, &id);
    if cfg.debug {
        // Trace lines and printed messages interleave in wire order, as mosquitto_sub's do.
        options.one_event_at_a_time = true;
        options.event_capacity = 1;
        options.trace = Some(super::debug_log::trace_with_subscribed(
            &id,
            cfg.protocol,
            cfg.quiet,
        ));
    }
    let (client, mut events) = match connect::connect(&cfg, options).await {
        Ok(connected) => connected,
        Err(Failure::Exit(code)) => return code,
        Err(Failure::Refused { v5, code }) => return Failure::report_refusal(v5, code, cfg.quiet),
    };

    let mut suback = None;
    if !cfg.topics.is_empty() {
        let options = SubscriptionOptions {
            qos: cfg.qos,
            no_local: false,
            retain_as_published: cfg.retain_as_published,
            retain_handling: if cfg.no_retain {
                RetainHandling::DoNotSend
            } else {
                RetainHandling::SendAtSubscribe
            },
        };
        let filters: Vec<(&str, SubscriptionOptions)> =
            cfg.topics.iter().map(|t| (t.as_str(), options)).collect();
        match client
            .start_subscribe(&filters, cfg.properties.subscribe.clone())
            .await
        {
            Ok(pending) => suback = Some(pending),
            Err(error) => return report(&cfg, &error),
        }
    }
    for topic in &cfg.unsub_topics {
        // The answers do not matter; mosquitto_sub does not wait for them either.
        if let Err(error) = client
            .start_unsubscribe(&[topic.as_str()], cfg.properties.unsubscribe.clone())
            .await
        {
            return report(&cfg, &error);
        }
    }

    // As mosquitto_sub: SIGINT and SIGTERM leave with DISCONNECT (reason 0x04 in MQTT 5, so the
    // will is still published) and exit 0.
    let mut interrupt = signal(SignalKind::interrupt());
    let mut terminate = signal(SignalKind::terminate());
    let deadline = (cfg.timeout > 0).then(|| Instant::now() + Duration::from_secs(u64::from(cfg.timeout)));
    let mut printed = 0u32;
    let mut processing = true;
    let mut removals: VecDeque<PendingPublish> = VecDeque::new();
    let mut stdout = std::io::stdout().lock();
    loop {
        tokio::select! {
            biased;
            answer = maybe(suback.as_mut()), if suback.is_some() => {
                suback = None;
                if let Err(error) = answer.map(|_: SubAck| ()) {
                    return report(&cfg, &error);
                }
                if cfg.exit_after_sub {
                    return leave(&cfg, &client, ReasonCode::Success).await;
                }
            }
            done = maybe(removals.front_mut()), if !removals.is_empty() => {
                removals.pop_front();
                if let Err(error) = done {
                    return report(&cfg, &error);
                }
                if !processing && removals.is_empty() {
                    return leave(&cfg, &client, ReasonCode::Success).await;
                }
            }
            event = events.recv() => match event {
                Some(Event::Publish(message)) => {
                    if !processing {
                        continue;
                    }
                    if cfg.retained_only && !message.retain {
                        processing = false;
                        if removals.is_empty() {
                            return leave(&cfg, &client, ReasonCode::Success).await;
                        }
                        continue;
                    }
                    if message.retain && cfg.no_retain {
                        continue;
                    }
                    if cfg.filter_outs.iter().any(|f| matches(f.as_str(), message.topic.as_str())) {
                        continue;
                    }
                    if cfg.remove_retained && message.retain {
                        match client
                            .start_publish(
                                message.topic.as_str(),
                                Bytes::new(),
                                QoS::AtLeastOnce,
                                true,
                                PublishProperties::default(),
                            )
                            .await
                        {
                            Ok(pending) => removals.push_back(pending),
                            Err(error) => return report(&cfg, &error),
                        }
                    }
                    if super::format::print_message(&cfg, &message, &mut stdout).is_err() {
                        return 1;
                    }
                    if cfg.msg_count > 0 {
                        printed += 1;
                        if printed == cfg.msg_count {
                            processing = false;
                            if removals.is_empty() {
                                return leave(&cfg, &client, ReasonCode::Success).await;
                            }
                        }
                    }
                }
                Some(Event::Disconnect(_)) => {}
                Some(Event::ConnectionLost(error)) => {
                    return lost(&cfg, &error, printed);
                }
                Some(_) => {}
                None => return 0,
            },
            () = stopping(&mut interrupt, &mut terminate) => {
                let _ = stdout.flush();
                return match disconnect(&cfg, &client, ReasonCode::DisconnectWithWillMessage).await {
                    Ok(()) => 0,
                    Err(error) => report(&cfg, &error),
                };
            }
            () = sleep_until(deadline) => {
                // As mosquitto_sub on SIGALRM: leave with the will (MQTT 5), then say so.
                let _ = stdout.flush();
                let _ = disconnect(&cfg, &client, ReasonCode::DisconnectWithWillMessage).await;
                err_print(&cfg, "Timed out\n");
                return MosqError::Timeout as i32;
            }
        }
    }
}

/// Completes on SIGINT or SIGTERM (never, if the handlers could not be installed).
async fn stopping(interrupt: &mut std::io::Result<Signal>, terminate: &mut std::io::Result<Signal>) {
    let interrupted = async {
        match interrupt {
            Ok(signal) => signal.recv().await,
            Err(_) => std::future::pending().await,
        }
    };
    let terminated = async {
        match terminate {
            Ok(signal) => signal.recv().await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = interrupted => {}
        _ = terminated => {}
    }
}

/// Awaits the future if there is one; never completes otherwise.
pub(super) async fn maybe<F: Future + Unpin>(future: Option<&mut F>) -> F::Output {
    match future {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

pub(super) async fn disconnect(cfg: &Config, client: &Client, reason: ReasonCode) -> Result<(), ClientError> {
    let mut disconnect = Disconnect::new(reason);
    *disconnect.properties = cfg.properties.disconnect.clone();
    client.disconnect(disconnect).await
}

/// Disconnects and gives the exit code.
async fn leave(cfg: &Config, client: &Client, reason: ReasonCode) -> i32 {
    match disconnect(cfg, client, reason).await {
        Ok(()) => 0,
        Err(error) => report(cfg, &error),
    }
}

/// The connection ended under us: Mosquitto's message and code.
fn lost(cfg: &Config, error: &ClientError, printed: u32) -> i32 {
    if cfg.msg_count > 0 && printed >= cfg.msg_count {
        return 0;
    }
    report(cfg, error)
}

/// MQTT topic matching for `-T`: `+` one level, `#` the rest (and the parent level), `$`
/// topics only when the filter names them.
fn matches(filter: &str, topic: &str) -> bool {
    midge_codec::topic::filter_matches(filter, topic)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn filter_out_matching() {
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("a/+/c", "a/b/c"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(!matches("#", "$SYS/x"));
        assert!(matches("+/+", "/x"));
    }
}
