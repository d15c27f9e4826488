//! `midge pub`: mosquitto_pub. Connects, publishes the message (`-m`, `-f`, `-s`, `-n`) once
//! or `--repeat` times, or each line of stdin (`-l`), waits for each QoS flow to finish, and
//! disconnects; exits with Mosquitto's codes.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use midge_client::{Client, ClientError, PendingPublish};
use midge_codec::properties::PublishProperties;
use midge_codec::{Disconnect, ReasonCode};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use super::Tool;
use super::args::{self, Config, PubMode, Stop};
use super::connect::{self, Failure, err_print};
use super::mosquitto_text::{MosqError, reason_string};
use super::usage::{usage, version_line};

/// Publications started but not yet awaited, in `-l` mode, before the oldest is awaited.
const PIPELINE: usize = 64;

pub(crate) async fn main(args: Vec<String>) -> i32 {
    let cfg = match args::parse(Tool::Pub, &args) {
        Ok(cfg) => cfg,
        Err(stop) => return stopped(stop),
    };
    let payload = match payload(&cfg).await {
        Ok(payload) => payload,
        Err(code) => return code,
    };
    let Some(topic) = cfg.topic.clone().filter(|_| cfg.pub_mode != PubMode::None) else {
        eprintln!("Error: Both topic and message must be supplied.");
        print!("{}", usage(Tool::Pub));
        return 1;
    };
    let id = connect::client_id(&cfg);
    let (client, events) = match connect::connect(&cfg, connect::options(&cfg, &id)).await {
        Ok(connected) => connected,
        Err(Failure::Exit(code)) => return code,
        Err(Failure::Refused { v5, code }) => {
            let exit = Failure::report_refusal(v5, code, cfg.quiet);
            let error = if v5 {
                MosqError::Protocol
            } else {
                MosqError::ConnRefused
            };
            err_print(&cfg, &format!("Error: {}\n", error.message()));
            return exit;
        }
    };
    // A publisher has nothing to read but the server's DISCONNECT, which ends the
    // operations in flight anyway.
    drop(events);
    let result = match payload {
        Some(payload) => publish_repeatedly(&cfg, &client, &topic, payload).await,
        None => publish_lines(&cfg, &client, &topic).await,
    };
    if let Err(error) = result {
        return report(&cfg, &error);
    }
    let mut disconnect = Disconnect::new(ReasonCode::Success);
    *disconnect.properties = cfg.properties.disconnect.clone();
    match client.disconnect(disconnect).await {
        Ok(()) => 0,
        Err(error) => report(&cfg, &error),
    }
}

/// The message `-m`, `-n`, `-f` or `-s` gives (`None` for `-l` or none), or the exit code
/// after Mosquitto's message for a file or stdin that cannot be read.
pub(super) async fn payload(cfg: &Config) -> Result<Option<Bytes>, i32> {
    Ok(match &cfg.pub_mode {
        PubMode::Message(message) => Some(Bytes::copy_from_slice(message)),
        PubMode::Null => Some(Bytes::new()),
        PubMode::File(path) => match std::fs::read(path) {
            Ok(data) => Some(Bytes::from(data)),
            Err(_) => {
                err_print(cfg, &format!("Error: Unable to open file \"{path}\".\n"));
                err_print(cfg, &format!("Error loading input file \"{path}\".\n"));
                return Err(1);
            }
        },
        PubMode::Stdin => {
            let mut data = Vec::new();
            if tokio::io::stdin().read_to_end(&mut data).await.is_err() {
                err_print(cfg, "Error loading input from stdin.\n");
                return Err(1);
            }
            Some(Bytes::from(data))
        }
        PubMode::StdinLines | PubMode::None => None,
    })
}

/// Prints what a parse stop calls for and gives the exit code (always 1, as Mosquitto).
pub(super) fn stopped(stop: Stop) -> i32 {
    stopped_for(Tool::Pub, stop)
}

/// As [`stopped`], for either tool.
pub(super) fn stopped_for(tool: Tool, stop: Stop) -> i32 {
    match stop {
        Stop::Help => print!("{}", usage(tool)),
        Stop::Version => println!("{}", version_line(tool)),
        Stop::Error(message) => {
            eprint!("{message}");
            eprint!("\nUse '{} --help' to see usage.\n", tool.name());
        }
    }
    1
}

async fn start(
    cfg: &Config,
    client: &Client,
    topic: &str,
    payload: Bytes,
) -> Result<PendingPublish, ClientError> {
    let properties: PublishProperties = cfg.properties.publish.clone();
    client
        .start_publish(topic, payload, cfg.qos, cfg.retain, properties)
        .await
}

/// Awaits one publication and warns, as mosquitto_pub does, if the server refused it.
async fn finish(cfg: &Config, pending: PendingPublish, mid: u16) -> Result<(), ClientError> {
    let outcome = pending.await?;
    if outcome.reason_code.is_error() {
        let mid = outcome.packet_id.map_or(mid, |id| id.get());
        err_print(
            cfg,
            &format!(
                "Warning: Publish {mid} failed: {}.\n",
                reason_string(outcome.reason_code.as_u8())
            ),
        );
        if let Some(reason) = &outcome.properties.reason_string {
            err_print(cfg, &format!("{reason}\n"));
        }
    }
    Ok(())
}

async fn publish_repeatedly(
    cfg: &Config,
    client: &Client,
    topic: &str,
    payload: Bytes,
) -> Result<(), ClientError> {
    for n in 0..cfg.repeat_count {
        if n > 0 && cfg.repeat_delay > Duration::ZERO {
            tokio::time::sleep(cfg.repeat_delay).await;
        }
        let pending = start(cfg, client, topic, payload.clone()).await?;
        finish(cfg, pending, (n + 1) as u16).await?;
    }
    Ok(())
}

/// `-l`: one message per line of stdin, without its newline; a last line without one is sent
/// too. Publications are pipelined, a bounded number at a time.
async fn publish_lines(cfg: &Config, client: &Client, topic: &str) -> Result<(), ClientError> {
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut in_flight: VecDeque<(PendingPublish, u16)> = VecDeque::new();
    let mut mid: u16 = 0;
    loop {
        let mut line = Vec::new();
        match stdin.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        mid = mid.wrapping_add(1);
        in_flight.push_back((start(cfg, client, topic, Bytes::from(line)).await?, mid));
        if in_flight.len() >= PIPELINE
            && let Some((pending, mid)) = in_flight.pop_front()
        {
            finish(cfg, pending, mid).await?;
        }
    }
    while let Some((pending, mid)) = in_flight.pop_front() {
        finish(cfg, pending, mid).await?;
    }
    Ok(())
}

/// Mosquitto's message and exit code for a failure after connecting.
pub(super) fn report(cfg: &Config, error: &ClientError) -> i32 {
    let mosq = match error {
        ClientError::QosNotSupported(_) => {
            err_print(
                cfg,
                "Error: Message QoS not supported on broker, try a lower QoS.\n",
            );
            return MosqError::QosNotSupported as i32;
        }
        ClientError::PacketTooLarge { .. } => {
            err_print(cfg, "Error: Message payload is too large.\n");
            return MosqError::PayloadSize as i32;
        }
        ClientError::KeepAliveTimeout => MosqError::Keepalive,
        ClientError::Tls {
            error: rustls::Error::AlertReceived(_),
            ..
        } => MosqError::ConnLost,
        ClientError::Tls { .. } => MosqError::Tls,
        ClientError::Decode(_) | ClientError::Protocol(_) => MosqError::Protocol,
        ClientError::Disconnected => MosqError::NoConn,
        _ => MosqError::ConnLost,
    };
    err_print(cfg, &format!("Error: {}\n", mosq.message()));
    mosq as i32
}
