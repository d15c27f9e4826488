//! `midge rr`: mosquitto_rr, MQTT 5 request/response. Subscribes to the response topic
//! (`-e`), publishes the request (`-m`, `-f`, `-s`, `-n`) to `-t` with that topic as its
//! Response Topic, prints the first message that comes back as `midge sub` would (`-v`, `-F`,
//! `-N`), and leaves without DISCONNECT, as mosquitto_rr does (so the broker publishes the
//! will). `-W` bounds the wait ("Timed out", exit 27).
//!
//! Correlation data is sent only when `-D publish correlation-data` asks for it; the response
//! is not matched against it (nor is mosquitto_rr's). With `-V 311` the request goes without
//! properties and the responder must know the response topic some other way.
//!
//! Spec: MQTT 5.0 §4.10 (request/response).

use std::io::Write;
use std::time::Duration;

use midge_client::Event;
use midge_codec::properties::PublishProperties;
use midge_codec::{ReasonCode, SubscriptionOptions, TopicName};
use tokio::time::Instant;

use super::Tool;
use super::args;
use super::connect::{self, Failure, err_print};
use super::mosquitto_text::{MosqError, reason_string};
use super::publish::{payload, report, stopped_for};
use super::subscribe::{disconnect, maybe, sleep_until};

pub(crate) async fn main(args: Vec<String>) -> i32 {
    let cfg = match args::parse(Tool::Rr, &args) {
        Ok(cfg) => cfg,
        Err(stop) => return stopped_for(Tool::Rr, stop),
    };
    // mosquitto_rr 2.0.11 sends an empty message for -f and -s; later versions (and Midge)
    // read the file or stdin.
    let payload = match payload(&cfg).await {
        Ok(payload) => payload,
        Err(code) => return code,
    };
    let (Some(topic), Some(payload), Some(response_topic)) =
        (cfg.topic.clone(), payload, cfg.response_topic.clone())
    else {
        eprintln!("Error: All of topic, message, and response topic must be supplied.");
        eprint!("\nUse '{} --help' to see usage.\n", Tool::Rr.name());
        return 1;
    };
    if cfg.properties.publish.response_topic.is_some() {
        err_print(&cfg, "Error in PUBLISH properties: Duplicate response topic.\n");
        return 1;
    }

    let id = connect::client_id(&cfg);
    let mut options = connect::options(&cfg, &id);
    if cfg.debug {
        // The response is printed after the trace lines of its own flow, as mosquitto_rr does.
        options.one_event_at_a_time = true;
        options.event_capacity = 1;
    }
    let deadline = (cfg.timeout > 0).then(|| Instant::now() + Duration::from_secs(u64::from(cfg.timeout)));
    let (client, mut events) = match connect::connect(&cfg, options).await {
        Ok(connected) => connected,
        Err(Failure::Exit(code)) => return code,
        Err(Failure::Refused { code, .. }) => {
            // mosquitto_rr words every refusal as an MQTT 5 reason, whatever the version.
            if code == ReasonCode::UnsupportedProtocolVersion.as_u8() {
                err_print(
                    &cfg,
                    &format!(
                        "Connection error: {}. mosquitto_rr only supports connecting to an MQTT v5 broker\n",
                        reason_string(code)
                    ),
                );
            } else {
                err_print(&cfg, &format!("Connection error: {}\n", reason_string(code)));
            }
            return i32::from(code);
        }
    };

    let subscription = SubscriptionOptions {
        qos: cfg.qos,
        ..SubscriptionOptions::default()
    };
    let mut suback = match client
        .start_subscribe(
            &[(response_topic.as_str(), subscription)],
            cfg.properties.subscribe.clone(),
        )
        .await
    {
        Ok(pending) => Some(pending),
        Err(error) => return report(&cfg, &error),
    };
    let mut properties: PublishProperties = cfg.properties.publish.clone();
    properties.response_topic = TopicName::new(response_topic.as_str()).ok();
    let mut payload = Some(payload);
    let mut stdout = std::io::stdout().lock();
    loop {
        tokio::select! {
            biased;
            answer = maybe(suback.as_mut()), if suback.is_some() => {
                suback = None;
                let granted = match answer {
                    Ok(suback) => suback.reason_codes.first().copied(),
                    Err(error) => return report(&cfg, &error),
                };
                if let Some(refused) = granted.filter(|code| code.is_error()) {
                    // As mosquitto_rr: say why, leave, exit 0.
                    err_print(&cfg, &format!("{}\n", reason_string(refused.as_u8())));
                    let _ = disconnect(&cfg, &client, ReasonCode::Success).await;
                    return 0;
                }
                // The request goes out once the response topic is subscribed; its own
                // acknowledgement is not waited for.
                let Some(payload) = payload.take() else { continue };
                if let Err(error) = client
                    .start_publish(topic.as_str(), payload, cfg.qos, false, properties.clone())
                    .await
                {
                    return report(&cfg, &error);
                }
            }
            event = events.recv() => match event {
                Some(Event::Publish(message)) => {
                    if super::format::print_message(&cfg, &message, &mut stdout).is_err() {
                        return 1;
                    }
                    let _ = stdout.flush();
                    // No DISCONNECT: mosquitto_rr just goes.
                    let _ = client.close().await;
                    return 0;
                }
                Some(Event::ConnectionLost(error)) => return report(&cfg, &error),
                Some(_) => {}
                None => return 0,
            },
            () = sleep_until(deadline) => {
                let _ = stdout.flush();
                let _ = disconnect(&cfg, &client, ReasonCode::DisconnectWithWillMessage).await;
                err_print(&cfg, "Timed out\n");
                return MosqError::Timeout as i32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rr_defaults_to_mqtt5_and_takes_only_its_flags() {
        let args: Vec<String> = "-t req -e resp -m hi -v -W 2"
            .split(' ')
            .map(str::to_owned)
            .collect();
        let cfg = args::parse(Tool::Rr, &args).unwrap();
        assert!(cfg.protocol.is_v5());
        assert_eq!(cfg.response_topic.as_deref(), Some("resp"));
        assert!(cfg.verbose);
        for flag in ["-C", "-l", "-r", "-E", "-U", "-T", "--retained-only"] {
            let args: Vec<String> = vec!["-t".into(), "a".into(), flag.into(), "1".into()];
            assert_eq!(
                args::parse(Tool::Rr, &args).unwrap_err(),
                args::Stop::Error(format!("Error: Unknown option '{flag}'.\n")),
            );
        }
    }
}
