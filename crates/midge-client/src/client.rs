//! The handle applications hold: [`Client`] to act, [`Events`] to hear from the server.
//!
//! A `Client` is a cheap, cloneable sender of commands to the connection task; each operation
//! awaits its own answer (PUBACK, PUBCOMP, SUBACK, ...). Topics and filters are validated here,
//! before anything reaches the task, so a caller's mistake is an error for that call and never
//! a broken connection. The task ends when [`Client::disconnect`] is called or every handle is
//! dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use midge_codec::properties::{PublishProperties, SubscribeProperties, UnsubscribeProperties};
use midge_codec::{
    ConnAck, Disconnect, PacketId, Publish, QoS, ReasonCode, SubAck, Subscribe, Subscription,
    SubscriptionOptions, TopicFilter, TopicName, UnsubAck, Unsubscribe,
};
use tokio::sync::{mpsc, oneshot};

use crate::connection::{Task, establish_as_bridge_or_not};
use crate::error::ClientError;
use crate::options::ClientOptions;
use crate::session::{PublishOutcome, Reply};
use crate::tls::TlsConnector;
use crate::transport::{Connector, TcpConnector};

/// Commands in flight from handles to the task at once; senders wait beyond it.
const COMMAND_CAPACITY: usize = 64;

/// Something the server told us.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// An application message, with all its properties. QoS 1 and 2 messages are acknowledged
    /// once the event is queued.
    Publish(Publish),
    /// The server sent DISCONNECT (MQTT 5); the connection ends after it.
    Disconnect(Disconnect),
    /// The connection was lost; with a reconnect delay set, reconnection follows.
    ConnectionLost(Arc<ClientError>),
    /// A new connection is up after a loss. `session_present` says whether the server resumed
    /// the session (subscriptions included); unacknowledged messages have been sent again.
    Reconnected(ConnAck),
    /// The first connection of a client started with [`Client::spawn_with`] is up.
    Connected(ConnAck),
    /// A connection attempt of a client started with [`Client::spawn_with`] failed; the next
    /// follows after the reconnect delay.
    ConnectFailed(Arc<ClientError>),
}

/// Requests from a handle to the connection task.
#[derive(Debug)]
pub(crate) enum Command {
    Publish {
        publish: Publish,
        /// `None`: nobody waits for the outcome ([`Client::queue_publish_packet`]).
        reply: Option<Reply<PublishOutcome>>,
    },
    Subscribe {
        packet: Subscribe,
        reply: Reply<SubAck>,
    },
    Unsubscribe {
        packet: Unsubscribe,
        reply: Reply<UnsubAck>,
    },
    Disconnect {
        disconnect: Disconnect,
        reply: Reply<()>,
    },
    Close {
        reply: Reply<()>,
    },
    Reconnect,
}

/// The receiving end of a client's events. Drain it while waiting on QoS 1 and 2 operations:
/// when it is full the client stops reading from the server, acknowledgements included. Drop
/// it if events do not matter; they are then discarded.
#[derive(Debug)]
pub struct Events(mpsc::Receiver<Event>);

impl Events {
    /// The next event; `None` once the client has ended and every event was taken.
    pub async fn recv(&mut self) -> Option<Event> {
        self.0.recv().await
    }

    /// Every event already queued, up to `limit`, appended to `buffer`; waits only while
    /// there is none. Returns how many were taken: 0 once the client has ended and every
    /// event was taken (or when `limit` is 0). For a consumer that keeps up with thousands of
    /// messages a second, one wake-up per batch instead of one per message.
    pub async fn recv_many(&mut self, buffer: &mut Vec<Event>, limit: usize) -> usize {
        self.0.recv_many(buffer, limit).await
    }
}

/// A handle on a connected client.
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    connack: Arc<ConnAck>,
}

/// An operation handed to the connection: await it for the server's answer.
#[derive(Debug)]
pub struct Pending<T>(oneshot::Receiver<Result<T, ClientError>>);

/// A publication under way.
pub type PendingPublish = Pending<PublishOutcome>;

impl<T> Future for Pending<T> {
    type Output = Result<T, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ClientError::Disconnected)))
    }
}

impl Client {
    /// Connects over TCP, or TLS when `options.tls` is set, to `options.host:options.port`
    /// and returns once the server has accepted the connection (CONNACK with Success).
    pub async fn connect(options: ClientOptions) -> Result<(Self, Events), ClientError> {
        let connector = TcpConnector {
            host: options.host.clone(),
            port: options.port,
            nodelay: options.nodelay,
        };
        match options.tls.clone() {
            Some(config) => {
                let tls = TlsConnector::new(connector, config, &options.host).map_err(|_| {
                    ClientError::InvalidOptions("the host is not a name or address TLS can check")
                })?;
                Self::connect_with(tls, options).await
            }
            None => Self::connect_with(connector, options).await,
        }
    }

    /// Connects over the streams `connector` opens (TLS, WebSocket, a test pipe, ...).
    /// `options.host` and `options.port` are not used.
    pub async fn connect_with<C: Connector>(
        connector: C,
        mut options: ClientOptions,
    ) -> Result<(Self, Events), ClientError> {
        let clean_start = options.clean_start;
        let established = establish_as_bridge_or_not(&connector, &mut options, clean_start).await?;
        let (commands, command_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (event_tx, events) = mpsc::channel(options.event_capacity.max(1));
        let connack = Arc::new(established.connack.clone());
        let task = Task::new(connector, options, command_rx, event_tx);
        tokio::spawn(task.run(Some(established)));
        Ok((Self { commands, connack }, Events(events)))
    }

    /// Starts a client that connects in the background over the streams `connector` opens, and
    /// keeps trying: each failed attempt is an [`Event::ConnectFailed`], followed by the next
    /// after the reconnect delay (or the end of the client, without one); the first connection
    /// is an [`Event::Connected`], and later ones, after losses, are as with
    /// [`Client::connect_with`]. Commands wait for a connection. [`Client::connack`] is not the
    /// server's (there may be none yet): watch the events. This is how a bridge runs.
    pub fn spawn_with<C: Connector>(connector: C, options: ClientOptions) -> (Self, Events) {
        let (commands, command_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (event_tx, events) = mpsc::channel(options.event_capacity.max(1));
        let task = Task::new(connector, options, command_rx, event_tx);
        tokio::spawn(task.run(None));
        let connack = Arc::new(ConnAck::new(ReasonCode::Success));
        (Self { commands, connack }, Events(events))
    }

    /// The CONNACK of the first connection: session present, and the server's MQTT 5
    /// properties (assigned client identifier, limits, ...).
    pub fn connack(&self) -> &ConnAck {
        &self.connack
    }

    /// Publishes and waits for the end of the QoS flow: at once for QoS 0, PUBACK for QoS 1,
    /// PUBCOMP (or a failing PUBREC) for QoS 2. The outcome carries the server's reason code.
    pub async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
        properties: PublishProperties,
    ) -> Result<PublishOutcome, ClientError> {
        self.start_publish(topic, payload, qos, retain, properties)
            .await?
            .await
    }

    /// Hands a publication to the connection and returns without waiting for its
    /// acknowledgement: for pipelining many messages. Waits only while the command queue is
    /// full.
    pub async fn start_publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
        properties: PublishProperties,
    ) -> Result<PendingPublish, ClientError> {
        let topic = TopicName::new(topic).map_err(|e| ClientError::InvalidTopic {
            topic: topic.to_owned(),
            reason: e.to_string(),
        })?;
        let mut publish = Publish::new(topic, payload);
        publish.qos = qos;
        publish.retain = retain;
        publish.properties = properties.into();
        self.start_publish_packet(publish).await
    }

    /// As [`start_publish`](Self::start_publish), with a PUBLISH built by the caller (its packet
    /// identifier and DUP are set by the client).
    pub async fn start_publish_packet(&self, mut publish: Publish) -> Result<PendingPublish, ClientError> {
        publish.dup = false;
        publish.packet_id = None;
        let (reply, answer) = oneshot::channel();
        self.send(Command::Publish {
            publish,
            reply: Some(reply),
        })
        .await?;
        Ok(Pending(answer))
    }

    /// Hands a PUBLISH to the connection with no way to learn its outcome: for QoS 0, where
    /// there is nothing to wait for, without the cost of a reply channel per message. (At QoS
    /// 1 and 2 the message is still sent, retried and acknowledged as usual; an error, such
    /// as a packet too large for the server, is only logged.) Waits only while the command
    /// queue is full.
    pub async fn queue_publish_packet(&self, mut publish: Publish) -> Result<(), ClientError> {
        publish.dup = false;
        publish.packet_id = None;
        self.send(Command::Publish { publish, reply: None }).await
    }

    /// Subscribes to `filters`, each with its options; returns the SUBACK (one reason code per
    /// filter, in order).
    pub async fn subscribe(
        &self,
        filters: &[(&str, SubscriptionOptions)],
        properties: SubscribeProperties,
    ) -> Result<SubAck, ClientError> {
        self.start_subscribe(filters, properties).await?.await
    }

    /// Sends SUBSCRIBE without waiting for the SUBACK: commands are sent in the order they are
    /// started, so a SUBSCRIBE started before an UNSUBSCRIBE goes out first.
    pub async fn start_subscribe(
        &self,
        filters: &[(&str, SubscriptionOptions)],
        properties: SubscribeProperties,
    ) -> Result<Pending<SubAck>, ClientError> {
        let subscriptions = filters
            .iter()
            .map(|(filter, options)| {
                Ok(Subscription {
                    filter: topic_filter(filter)?,
                    options: *options,
                })
            })
            .collect::<Result<Vec<_>, ClientError>>()?;
        if subscriptions.is_empty() {
            return Err(ClientError::InvalidOptions("SUBSCRIBE needs at least one filter"));
        }
        let packet = Subscribe {
            packet_id: PLACEHOLDER_ID,
            subscriptions,
            properties,
        };
        let (reply, answer) = oneshot::channel();
        self.send(Command::Subscribe { packet, reply }).await?;
        Ok(Pending(answer))
    }

    /// Subscribes to one filter at `qos` with default options; returns its reason code.
    pub async fn subscribe_one(&self, filter: &str, qos: QoS) -> Result<ReasonCode, ClientError> {
        let options = SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        };
        let suback = self
            .subscribe(&[(filter, options)], SubscribeProperties::default())
            .await?;
        suback
            .reason_codes
            .first()
            .copied()
            .ok_or(ClientError::Protocol("SUBACK without a reason code"))
    }

    /// Unsubscribes from `filters`; returns the UNSUBACK (reason codes only in MQTT 5).
    pub async fn unsubscribe(
        &self,
        filters: &[&str],
        properties: UnsubscribeProperties,
    ) -> Result<UnsubAck, ClientError> {
        self.start_unsubscribe(filters, properties).await?.await
    }

    /// Sends UNSUBSCRIBE without waiting for the UNSUBACK.
    pub async fn start_unsubscribe(
        &self,
        filters: &[&str],
        properties: UnsubscribeProperties,
    ) -> Result<Pending<UnsubAck>, ClientError> {
        let filters = filters
            .iter()
            .map(|f| topic_filter(f))
            .collect::<Result<Vec<_>, ClientError>>()?;
        if filters.is_empty() {
            return Err(ClientError::InvalidOptions(
                "UNSUBSCRIBE needs at least one filter",
            ));
        }
        let packet = Unsubscribe {
            packet_id: PLACEHOLDER_ID,
            filters,
            properties,
        };
        let (reply, answer) = oneshot::channel();
        self.send(Command::Unsubscribe { packet, reply }).await?;
        Ok(Pending(answer))
    }

    /// Sends DISCONNECT with `disconnect`'s reason and properties (MQTT 5; earlier versions
    /// send a bare DISCONNECT), flushes, and closes. Messages still in flight fail with
    /// [`ClientError::Disconnected`]. The server then discards the will unless the reason is
    /// Disconnect with Will Message.
    pub async fn disconnect(&self, disconnect: Disconnect) -> Result<(), ClientError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Disconnect { disconnect, reply }).await?;
        answer.await.unwrap_or(Err(ClientError::Disconnected))
    }

    /// Writes what is already queued (acknowledgements included), then closes the connection
    /// without DISCONNECT: to the server the connection was lost, so it publishes the will.
    /// This is how `mosquitto_rr` leaves once it has its response.
    pub async fn close(&self) -> Result<(), ClientError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Close { reply }).await?;
        answer.await.unwrap_or(Err(ClientError::Disconnected))
    }

    /// Drops the connection now, without DISCONNECT (the server publishes the will), and
    /// connects again at once, resuming the session as after any loss: for a client that must
    /// move to another server address. Without a reconnect delay the client ends instead.
    pub async fn reconnect(&self) -> Result<(), ClientError> {
        self.send(Command::Reconnect).await
    }

    /// True once the connection task has ended.
    pub fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }

    async fn send(&self, command: Command) -> Result<(), ClientError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| ClientError::Disconnected)
    }
}

/// Replaced by the connection task with a free identifier.
const PLACEHOLDER_ID: PacketId = PacketId::MIN;

fn topic_filter(filter: &str) -> Result<TopicFilter, ClientError> {
    TopicFilter::new(filter).map_err(|e| ClientError::InvalidTopic {
        topic: filter.to_owned(),
        reason: e.to_string(),
    })
}
