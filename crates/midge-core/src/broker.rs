//! The broker's shared state and the decisions that span sessions: accepting a CONNECT (client
//! identifier, keep alive, takeover, clean start), routing a message to every matching session,
//! wills, and session expiry.
//!
//! Locks, and the one order they are taken in: the session map, then a session; or the
//! subscription index (read for publishing, write for subscribing), then sessions one at a time.
//! No code holds a session's lock while it takes the map or the index, so publishers on
//! different cores meet only on the sessions they both deliver to.
//!
//! The clock is an argument: `now` comes from the runtime (or a test), never from here.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use bytestring::ByteString;
use midge_codec::{ConnAck, Connect, Packet, ProtocolVersion, QoS, ReasonCode, TopicFilter, TopicName};
use midge_store::{Journal, Seq};
use parking_lot::Mutex;

use crate::access::{Access, AccessControl, Credentials, Identity};
use crate::auth::ConnectionAuth;
use crate::config::{BrokerConfig, ClientRules};
use crate::connection::Connection;
use crate::link::Link;
use crate::message::{Delivery, Message};
use crate::outbox::Outbox;
use crate::retained::RetainedStore;
use crate::session::{PendingWill, Session, SessionCell};
use crate::stats::Stats;
use crate::topic_index::{Matches, Subscriber, TopicIndex};

/// No access rules are installed.
const NO_RULES: u8 = 0;
/// The installed rules judge only `$` topics ([`AccessControl::only_dollar_topics`]).
const DOLLAR_RULES: u8 = 1;
/// The installed rules judge every topic.
const ALL_RULES: u8 = 2;

/// The most entries a thread's kept match list may have room for after a publish.
const KEEP_MATCHES_CAPACITY: usize = 1024;

thread_local! {
    /// The match lists `Broker::publish` fills and empties, kept per thread between publishes.
    static MATCHES: std::cell::Cell<Matches> = std::cell::Cell::new(Matches::default());
}

/// Why a CONNECT was refused; the CONNACK saying so, if any, is already in the outbox (a
/// client that disconnects during enhanced authentication gets none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The reason sent (as the nearest 3.1.1 return code to older clients).
    pub reason: ReasonCode,
    /// What to log.
    pub detail: String,
}

/// Deadlines the broker must act on: delayed wills and session expiry.
#[derive(Debug, Default)]
struct Timers {
    wills: BTreeMap<(Instant, u64), (Arc<SessionCell>, u64)>,
    expiries: BTreeMap<(Instant, u64), (Arc<SessionCell>, u64)>,
    sequence: u64,
}

impl Timers {
    fn key(&mut self, at: Instant) -> (Instant, u64) {
        self.sequence += 1;
        (at, self.sequence)
    }
}

/// The broker: every session, the subscription index, retained messages and counters.
#[derive(Debug)]
pub struct Broker {
    pub(crate) config: BrokerConfig,
    pub(crate) sessions: Mutex<HashMap<ByteString, Arc<SessionCell>>>,
    pub(crate) index: SharedIndex,
    pub(crate) retained: RetainedStore,
    timers: Mutex<Timers>,
    stats: Stats,
    id_counter: AtomicU64,
    id_seed: u64,
    /// Read on every publish and delivery, replaced on reload: a snapshot that readers load
    /// without a lock or a shared counter.
    access: ArcSwapOption<Rules>,
    /// What `access` judges: [`NO_RULES`], [`DOLLAR_RULES`] or [`ALL_RULES`]. A decision about
    /// a topic the rules do not judge reads this alone, not the `ArcSwap`, whose load showed
    /// in publish profiles.
    access_scope: AtomicU8,
    /// Where persistent sessions and retained messages are written, if persistence is on.
    pub(crate) journal: Option<Arc<Journal>>,
    /// Per-topic counts for the web view, kept only while someone watches (`admin.rs`).
    pub(crate) tap: crate::admin::TopicTap,
    /// Told of retained messages set here, in a cluster.
    retained_observer: std::sync::OnceLock<Arc<dyn crate::routes::RetainedObserver>>,
    /// Told of changes to persistent sessions here, in a cluster.
    session_observer: std::sync::OnceLock<Arc<dyn crate::routes::SessionObserver>>,
    /// Whether publishes name the persistent sessions they queued a QoS 1 or 2 message for
    /// ([`Routed::durable`]): a cluster logs those before acknowledging.
    report_durable: std::sync::atomic::AtomicBool,
    /// Where clients' QoS 1 and 2 messages for persistent sessions are kept beyond this node
    /// before they are acknowledged, in a cluster.
    durable_log: std::sync::OnceLock<Arc<dyn crate::routes::DurableLog>>,
}

impl Broker {
    /// A broker with no sessions. `id_seed` varies assigned client identifiers between runs.
    pub fn new(config: BrokerConfig, id_seed: u64) -> Arc<Self> {
        Self::build(config, id_seed, None)
    }

    /// A broker with no sessions that writes persistent sessions and retained messages to
    /// `journal`; see [`Broker::restore`] to start from what a store held.
    pub fn with_journal(config: BrokerConfig, id_seed: u64, journal: Arc<Journal>) -> Arc<Self> {
        Self::build(config, id_seed, Some(journal))
    }

    fn build(config: BrokerConfig, id_seed: u64, journal: Option<Arc<Journal>>) -> Arc<Self> {
        Arc::new(Self {
            config,
            sessions: Mutex::new(HashMap::new()),
            index: SharedIndex::default(),
            retained: RetainedStore::default(),
            timers: Mutex::new(Timers::default()),
            stats: Stats::default(),
            id_counter: AtomicU64::new(0),
            id_seed,
            access: ArcSwapOption::empty(),
            access_scope: AtomicU8::new(NO_RULES),
            journal,
            tap: crate::admin::TopicTap::default(),
            retained_observer: std::sync::OnceLock::new(),
            report_durable: std::sync::atomic::AtomicBool::new(false),
            durable_log: std::sync::OnceLock::new(),
            session_observer: std::sync::OnceLock::new(),
        })
    }

    /// The journal, if persistence is on.
    pub fn journal(&self) -> Option<&Arc<Journal>> {
        self.journal.as_ref()
    }

    /// The configuration in force.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Sessions held, online or not.
    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Calls [`Link::tick`] on the link of every connected client.
    pub fn tick_links(&self, now: Instant) {
        self.for_each_link(|link| link.tick(now));
    }

    /// Calls `each` on the link of every connected client, with no lock held: the map's lock
    /// is released before any session's is taken, and each session's before the call.
    fn for_each_link(&self, each: impl Fn(&dyn Link)) {
        let sessions: Vec<Arc<SessionCell>> = self.sessions.lock().values().cloned().collect();
        for cell in sessions {
            let link = cell.state.lock().link.clone();
            if let Some(link) = link {
                each(link.as_ref());
            }
        }
    }

    /// What the broker holds now, counted for `$SYS` and metrics: it walks every session, so
    /// call it once per reporting interval, not per message.
    pub fn census(&self) -> Census {
        let sessions: Vec<Arc<SessionCell>> = self.sessions.lock().values().cloned().collect();
        let (retained, retained_bytes) = self.retained.totals();
        let mut census = Census {
            sessions: sessions.len(),
            retained,
            retained_bytes,
            ..Census::default()
        };
        for cell in &sessions {
            census.connected += usize::from(cell.is_online());
            let session = cell.state.lock();
            census.subscriptions += session.subscriptions.len();
            census.shared_subscriptions += session
                .subscriptions
                .values()
                .filter(|s| s.filter.shared().is_some())
                .count();
            census.queued += session.queue.len() + session.paged.len() + session.inflight.len();
            census.queued_on_disk += session.paged.len();
            census.queued_bytes += session.queued_bytes + session.inflight_bytes;
        }
        census
    }

    /// Publishes a message from the broker itself (`$SYS` topics): QoS 0, retained if asked,
    /// delivered to every subscriber the access rules let read it.
    pub fn publish_system(&self, topic: TopicName, payload: Bytes, retain: bool, now: Instant) {
        let message = Arc::new(Message::new(
            topic,
            payload,
            QoS::AtMostOnce,
            retain,
            midge_codec::properties::PublishProperties::default(),
            None,
            None,
        ));
        let keep = if retain { Keep::InMemory } else { Keep::Nothing };
        self.publish(message, keep, now);
    }

    /// Subscriptions held across all sessions.
    pub fn subscription_count(&self) -> usize {
        self.index.read().len()
    }

    /// Retained messages held.
    pub fn retained_count(&self) -> usize {
        self.retained.totals().0
    }

    /// Installs (or with `None` removes) the topic access rules. Every connection's next
    /// publish, subscribe and delivery is judged by the new rules.
    pub fn set_access_control(&self, access: Option<Arc<dyn AccessControl>>) {
        match access {
            Some(rules) => {
                let scope = if rules.only_dollar_topics() {
                    DOLLAR_RULES
                } else {
                    ALL_RULES
                };
                // Widened before the rules change and narrowed after: a decision never skips
                // rules that judge its topic.
                self.access_scope.fetch_max(scope, Ordering::AcqRel);
                self.access.store(Some(Arc::new(Rules(rules))));
                self.access_scope.store(scope, Ordering::Release);
            }
            None => {
                self.access_scope.store(NO_RULES, Ordering::Release);
                self.access.store(None);
            }
        }
    }

    /// The topic access rules in force, if any, for the length of one decision.
    pub(crate) fn access_control(&self) -> AccessGuard {
        if self.access_scope.load(Ordering::Acquire) == NO_RULES {
            AccessGuard(None)
        } else {
            AccessGuard(Some(self.access.load()))
        }
    }

    /// The rules in force for decisions about `topic`: none when the rules do not judge it.
    pub(crate) fn access_control_for(&self, topic: &str) -> AccessGuard {
        match self.access_scope.load(Ordering::Acquire) {
            NO_RULES => AccessGuard(None),
            DOLLAR_RULES if !topic.starts_with('$') => AccessGuard(None),
            _ => AccessGuard(Some(self.access.load())),
        }
    }

    /// Accepts or refuses a CONNECT whose credentials need no checking (no password file).
    /// See [`Broker::connect_with`].
    pub fn connect(
        self: &Arc<Self>,
        connect: Connect,
        link: Arc<dyn Link>,
        now: Instant,
        out: &mut Outbox,
    ) -> Result<Connection, Refusal> {
        self.connect_with(connect, Credentials::Unchecked, link, now, out)
    }

    /// Accepts or refuses a CONNECT. Either way the CONNACK is in `out`; on acceptance so are
    /// any messages the resumed session had waiting. `credentials` is the runtime's verdict on
    /// the user name and password; `link` is how the broker reaches this connection later.
    pub fn connect_with(
        self: &Arc<Self>,
        connect: Connect,
        credentials: Credentials,
        link: Arc<dyn Link>,
        now: Instant,
        out: &mut Outbox,
    ) -> Result<Connection, Refusal> {
        let rules = self.config.client_rules();
        self.connect_on(connect, credentials, &rules, link, now, out)
    }

    /// [`Broker::connect_with`] under the client rules of the listener the connection came in
    /// on (`per_listener_settings`).
    pub fn connect_on(
        self: &Arc<Self>,
        connect: Connect,
        credentials: Credentials,
        rules: &ClientRules,
        link: Arc<dyn Link>,
        now: Instant,
        out: &mut Outbox,
    ) -> Result<Connection, Refusal> {
        self.attach_with(connect, credentials, rules, link, now, out, None)
    }

    /// Attaches a CONNECT whose enhanced authentication succeeded (`auth`: the method, and
    /// the data for the CONNACK), after the checks every CONNECT passes.
    pub(crate) fn attach(
        self: &Arc<Self>,
        connect: Connect,
        rules: &ClientRules,
        link: Arc<dyn Link>,
        now: Instant,
        out: &mut Outbox,
        auth: Option<(ConnectionAuth, Option<Bytes>)>,
    ) -> Result<Connection, Refusal> {
        self.attach_with(connect, Credentials::Valid, rules, link, now, out, auth)
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "connect_on's arguments and the enhanced authentication's outcome"
    )]
    fn attach_with(
        self: &Arc<Self>,
        connect: Connect,
        credentials: Credentials,
        rules: &ClientRules,
        link: Arc<dyn Link>,
        now: Instant,
        out: &mut Outbox,
        auth: Option<(ConnectionAuth, Option<Bytes>)>,
    ) -> Result<Connection, Refusal> {
        let version = connect.protocol;
        out.set_version(version);
        let checked = match self.check_connect(&connect, credentials, rules, auth.is_some()) {
            Ok(checked) => checked,
            Err(refusal) => {
                Stats::bump(&self.stats.connects_refused);
                crate::connack::send_refusal(&connect, rules, &refusal, true, out);
                return Err(refusal);
            }
        };
        let client_id = checked.client_id.clone();
        let Some((cell, session_present, will_to_publish)) =
            self.take_session(&client_id, connect.clean_start)
        else {
            Stats::bump(&self.stats.connects_refused);
            let refusal = Refusal {
                reason: ReasonCode::QuotaExceeded,
                detail: "global_max_clients reached".to_owned(),
            };
            crate::connack::send_refusal(&connect, rules, &refusal, true, out);
            return Err(refusal);
        };
        if let Some(will) = will_to_publish {
            self.publish_will(*will, now);
        }

        let expiry = self.session_expiry(&connect);
        let will = connect.will.as_ref().map(|will| {
            Box::new(PendingWill {
                username: connect.username.as_deref().map(ByteString::from),
                listener: rules.listener,
                delay: Duration::from_secs(u64::from(will.properties.will_delay_interval.unwrap_or(0))),
                message: Arc::new(Message::new(
                    mounted_topic(checked.mount_point.as_ref(), &will.topic)
                        .unwrap_or_else(|| will.topic.clone()),
                    will.payload.clone(),
                    will.qos,
                    will.retain,
                    will_as_publish_properties(&will.properties),
                    None,
                    Some(client_id.clone()),
                )),
            })
        });
        let client_receive_maximum = connect.properties.receive_maximum.map_or(u16::MAX, |r| r.get());
        let (generation, stored) = {
            let mut session = cell.state.lock();
            session.generation += 1;
            // Another connection of this client attached since `take_session` looked: this one
            // takes over from it, as from one attached before.
            if let Some(old) = session.link.replace(link) {
                tracing::info!(client_id = %client_id, "Client {client_id} already connected, closing old connection.");
                old.close(ReasonCode::SessionTakenOver);
            }
            session.note_attached();
            session.version = Some(version);
            session.internal = crate::routes::is_internal(&cell.client_id);
            session.window = if session.internal {
                client_receive_maximum
            } else {
                self.config.inflight_window(client_receive_maximum)
            };
            session.username = connect.username.as_deref().map(ByteString::from);
            session.listener = rules.listener;
            session.will = will;
            session.expiry = expiry;
            session.disconnected_at = None;
            cell.set_online(true);
            let stored = self.persist_connect(&cell.client_id, &mut session);
            (session.generation, stored)
        };
        // The session may have left the map since `take_session` (a clean start of the same
        // client here replaced it, or its client was claimed by another node of a cluster):
        // this connection would live on with a session no longer here, and never be taken
        // over. Refused instead, as busy; the client connects again.
        if !self
            .sessions
            .lock()
            .get(&client_id)
            .is_some_and(|current| Arc::ptr_eq(current, &cell))
        {
            {
                let mut session = cell.state.lock();
                session.generation += 1;
                session.link = None;
                session.will = None;
            }
            cell.set_online(false);
            Stats::bump(&self.stats.connects_refused);
            let refusal = Refusal {
                reason: ReasonCode::ServerBusy,
                detail: format!("the session of {client_id} was replaced while it connected"),
            };
            crate::connack::send_refusal(&connect, rules, &refusal, true, out);
            return Err(refusal);
        }
        self.checkpoint(&cell);
        Stats::bump(&self.stats.connects);

        let mut connack = ConnAck::new(ReasonCode::Success);
        connack.session_present = session_present;
        let (auth, auth_data) = auth.map_or((None, None), |(auth, data)| (Some(auth), data));
        if version.is_v5() {
            let mut properties = crate::connack::accepted(&self.config, &connect, &checked);
            if let Some(auth) = &auth {
                // [MQTT-4.12.0-5]: the CONNECT's method, and the method's last word.
                properties.authentication_method = Some(auth.method.clone());
                properties.authentication_data = auth_data;
            }
            connack.properties = properties.into();
        }
        out.require_durable(stored);
        out.send(&Packet::ConnAck(connack));

        let mut connection = Connection::new(self.clone(), cell, generation, &connect, checked, expiry);
        connection.auth = auth.map(Box::new);
        if session_present {
            connection.resend_inflight(now, out);
        }
        connection.drain(now, out);
        Ok(connection)
    }

    /// Brings the store in line with a session a CONNECT has just (re)attached: written whole
    /// if it has become persistent, its record rewritten if it was, deleted if it no longer
    /// outlives the connection. The last write's sequence number, or 0.
    fn persist_connect(&self, client_id: &str, session: &mut Session) -> Seq {
        let Some(journal) = &self.journal else { return 0 };
        let wanted = session.expiry != Some(Duration::ZERO);
        match (session.persistent, wanted) {
            (false, false) => 0,
            (true, false) => {
                session.persistent = false;
                journal.delete_session(client_id)
            }
            (true, true) => journal.put_session(client_id, &session.record(journal.clock())),
            (false, true) => {
                session.persistent = true;
                session.persist_all(client_id, journal)
            }
        }
    }

    /// Rewrites a persistent session's record after its expiry, will or connection changed.
    pub(crate) fn persist_session_record(&self, client_id: &str, session: &Session) -> Seq {
        match &self.journal {
            Some(journal) if session.persistent => {
                journal.put_session(client_id, &session.record(journal.clock()))
            }
            _ => 0,
        }
    }

    /// Stops writing a session and deletes what the store has of it; under its lock, so
    /// that no write for it can follow.
    pub(crate) fn unpersist(&self, client_id: &str, session: &mut Session) {
        if session.persistent {
            session.persistent = false;
            if let Some(journal) = &self.journal {
                journal.delete_session(client_id);
            }
        }
    }

    /// The checks a CONNECT must pass before any session is touched.
    fn check_connect(
        &self,
        connect: &Connect,
        credentials: Credentials,
        rules: &ClientRules,
        authenticated: bool,
    ) -> Result<CheckedConnect, Refusal> {
        let refuse = |reason, detail: &str| {
            Err(Refusal {
                reason,
                detail: detail.to_owned(),
            })
        };
        if let Some(redirect) = crate::connack::redirect(rules) {
            return Err(redirect);
        }
        let version = connect.protocol;
        if !rules.accepted_versions.is_empty() && !rules.accepted_versions.contains(&version) {
            return refuse(
                ReasonCode::UnsupportedProtocolVersion,
                "protocol version not accepted on this listener (accept_protocol_versions)",
            );
        }
        let mut assigned = false;
        let mut client_id = if connect.client_id.is_empty() {
            if version == ProtocolVersion::V31 {
                return refuse(
                    ReasonCode::ClientIdentifierNotValid,
                    "MQTT 3.1 requires a client identifier",
                );
            }
            if version == ProtocolVersion::V311 && !connect.clean_start {
                // [MQTT-3.1.3-8]
                return refuse(
                    ReasonCode::ClientIdentifierNotValid,
                    "zero-length client identifier with clean session 0",
                );
            }
            if !rules.allow_zero_length_clientid {
                return refuse(
                    ReasonCode::ClientIdentifierNotValid,
                    "zero-length client identifier and allow_zero_length_clientid is false",
                );
            }
            assigned = true;
            self.assign_client_id(&rules.auto_id_prefix)
        } else {
            // A copy of its own: a slice of the CONNECT would keep the whole read buffer alive
            // for as long as the session lasts.
            ByteString::from(&*connect.client_id)
        };

        let mut keep_alive = connect.keep_alive;
        let max = self.config.max_keepalive;
        if keep_alive > max || (keep_alive == 0 && max < u16::MAX) {
            if version.is_v5() {
                keep_alive = max;
            } else if keep_alive > max {
                // 3.x has no way to tell the client; Mosquitto refuses it like this.
                return refuse(
                    ReasonCode::ClientIdentifierNotValid,
                    &format!("keep alive {keep_alive} exceeds max_keepalive {max}"),
                );
            }
        }

        if connect.username.is_none() && !rules.allow_anonymous {
            return refuse(ReasonCode::NotAuthorized, "anonymous clients are not allowed");
        }
        if credentials == Credentials::Invalid {
            return refuse(ReasonCode::NotAuthorized, "bad user name or password");
        }
        if rules.use_username_as_clientid {
            // After authentication, as Mosquitto does; the identifier is then the user's.
            match &connect.username {
                Some(username) => {
                    client_id = ByteString::from(&**username);
                    assigned = false;
                }
                None => {
                    return refuse(
                        ReasonCode::NotAuthorized,
                        "use_username_as_clientid and no user name",
                    );
                }
            }
        }
        if version.is_v5() && connect.properties.authentication_method.is_some() && !authenticated {
            // Enhanced authentication goes through `Broker::admit`.
            return refuse(
                ReasonCode::BadAuthenticationMethod,
                "enhanced authentication is not offered here [MQTT-4.12.0-1]",
            );
        }
        if let Some(will) = &connect.will {
            if will.retain && !self.config.retain_available {
                return refuse(
                    ReasonCode::RetainNotSupported,
                    "will retain, and retain_available is false [MQTT-3.2.2-13]",
                );
            }
            if will.qos > self.config.max_qos {
                return refuse(
                    ReasonCode::QosNotSupported,
                    "will QoS above max_qos [MQTT-3.2.2-12]",
                );
            }
            if will.properties.payload_format_indicator == Some(midge_codec::PayloadFormat::Utf8)
                && std::str::from_utf8(&will.payload).is_err()
            {
                return refuse(
                    ReasonCode::PayloadFormatInvalid,
                    "will payload is not UTF-8, as its Payload Format Indicator says (§3.1.3.2.3)",
                );
            }
        }
        Ok(CheckedConnect {
            client_id,
            assigned,
            keep_alive,
            mount_point: rules.mount_point.clone(),
            listener: rules.listener,
        })
    }

    fn assign_client_id(&self, prefix: &str) -> ByteString {
        let n = self.id_counter.fetch_add(1, Ordering::Relaxed);
        // splitmix64: distinct for every n, and not guessable from the count alone.
        let mut z = self.id_seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ByteString::from(format!("{prefix}{z:016X}"))
    }

    /// How long the session outlives the connection: MQTT 5 says so itself; 3.x persistent
    /// sessions follow `persistent_client_expiration`. `None` is forever.
    fn session_expiry(&self, connect: &Connect) -> Option<Duration> {
        if connect.protocol.is_v5() {
            match connect.properties.session_expiry_interval.unwrap_or(0) {
                u32::MAX => None,
                seconds => Some(Duration::from_secs(u64::from(seconds))),
            }
        } else if connect.clean_start {
            Some(Duration::ZERO)
        } else {
            self.config.persistent_client_expiration
        }
    }

    /// Finds or makes the session for `client_id` and detaches whatever connection had it
    /// (takeover, §3.1.4). Returns the session, whether it is resumed, and a will the old
    /// connection leaves to publish now. `None` when a new session would exceed
    /// `global_max_clients`.
    fn take_session(
        &self,
        client_id: &ByteString,
        clean_start: bool,
    ) -> Option<(Arc<SessionCell>, bool, Option<Box<PendingWill>>)> {
        let mut sessions = self.sessions.lock();
        let Some(existing) = sessions.get(client_id).cloned() else {
            if self.config.max_clients.is_some_and(|max| sessions.len() >= max) {
                return None;
            }
            let cell = Arc::new(SessionCell::new(client_id.clone()));
            sessions.insert(client_id.clone(), cell.clone());
            return Some((cell, false, None));
        };
        let mut will_now = None;
        {
            let mut session = existing.state.lock();
            session.release_waiters();
            if let Some(old) = session.link.take() {
                tracing::info!(client_id = %client_id, "Client {client_id} already connected, closing old connection.");
                old.close(ReasonCode::SessionTakenOver);
                existing.set_online(false);
            }
            // The old connection's will: published now unless the session lives on and the will
            // was to wait (a reconnect within the Will Delay Interval cancels it, §3.1.3.2.2).
            if let Some(will) = session.will.take()
                && (clean_start || will.delay.is_zero())
            {
                will_now = Some(will);
            }
            session.disconnected_at = None;
            if !clean_start {
                return Some((existing.clone(), true, will_now));
            }
            self.unpersist(client_id, &mut session);
        }
        // Clean start: a fresh session replaces the old one, whose subscriptions go.
        let cell = Arc::new(SessionCell::new(client_id.clone()));
        sessions.insert(client_id.clone(), cell.clone());
        drop(sessions);
        self.forget_subscriptions(&existing);
        Some((cell, false, will_now))
    }

    /// Removes every subscription of a session that is going away.
    pub(crate) fn forget_subscriptions(&self, cell: &Arc<SessionCell>) {
        let filters: Vec<_> = {
            let mut session = cell.state.lock();
            let filters = session
                .subscriptions
                .drain()
                .map(|(_, subscription)| subscription.filter)
                .collect();
            session.reset();
            filters
        };
        let mut index = self.index.write();
        for filter in &filters {
            index.unsubscribe(filter, cell);
        }
    }

    /// Tells `observer` of every change to this node's route set from now on (a filter's first
    /// subscription here, its last one gone; see [`crate::routes`]) and returns the set as it
    /// is now.
    pub fn observe_routes(&self, observer: Arc<dyn crate::routes::RouteObserver>) -> Vec<String> {
        self.index.write().observe_routes(observer)
    }

    /// Closes the connection of `client_id` with `reason` (MQTT 5 clients get a DISCONNECT
    /// saying it). Its will is published if `publish_will`, and its session lives on or ends
    /// as its expiry says. False if the client is not connected.
    pub(crate) fn close_client(
        &self,
        client_id: &str,
        reason: ReasonCode,
        publish_will: bool,
        now: Instant,
    ) -> bool {
        let Some(cell) = self.sessions.lock().get(client_id).cloned() else {
            return false;
        };
        let (link, generation) = {
            let session = cell.state.lock();
            (session.link.clone(), session.generation)
        };
        let Some(link) = link else { return false };
        // Detached first, so the connection's own end finds nothing to do and the will and
        // expiry are settled here, once.
        self.detach(&cell, generation, publish_will, now);
        link.close(reason);
        true
    }

    /// The client connected here as `client_id` connected to another node of the cluster
    /// since: its connection here is closed with 0x8E Session taken over [MQTT-3.1.4-3], and
    /// its will published as for any connection the server closes. False if it is not
    /// connected here.
    pub fn take_over_client(&self, client_id: &str, now: Instant) -> bool {
        self.take_over_client_and_queue(client_id, now).0
    }

    /// As [`Broker::take_over_client`], and returns the QoS 1 and 2 messages the session
    /// here still held (in flight, then queued), for the node it moved to: it may have read
    /// the session's messages from the cluster before these were queued here.
    pub fn take_over_client_and_queue(&self, client_id: &str, now: Instant) -> (bool, Vec<Arc<Message>>) {
        let mut held = Vec::new();
        let mut closed = self.close_client(client_id, ReasonCode::SessionTakenOver, true, now);
        // A connection that attached after `close_client` looked, closed too below: it would
        // otherwise live on with a session no longer here.
        let mut late = None;
        if closed {
            tracing::info!(
                event = "client.taken_over",
                client_id,
                "Client {client_id} connected to another node: its connection here is closed (session taken over)."
            );
        }
        // The session lives on where the client went: nothing of it stays here (and its end
        // is not told: the new node's session is the same one).
        if let Some(cell) = self.sessions.lock().remove(client_id) {
            {
                let mut session = cell.state.lock();
                held.extend(
                    session
                        .inflight
                        .iter()
                        .map(|inflight| &inflight.delivery)
                        .chain(session.queue.iter())
                        .filter(|delivery| delivery.qos != QoS::AtMostOnce)
                        .map(|delivery| delivery.message.clone()),
                );
                session.generation += 1;
                session.will = None;
                cell.set_online(false);
                self.unpersist(client_id, &mut session);
                late = session.link.take();
            }
            self.forget_subscriptions(&cell);
        }
        if let Some(link) = late {
            link.close(ReasonCode::SessionTakenOver);
            closed = true;
        }
        (closed, held)
    }

    /// From now on, each publish names the persistent sessions it queued a QoS 1 or 2
    /// message for ([`Routed::durable`]).
    pub fn report_durable_deliveries(&self) {
        self.report_durable.store(true, Ordering::Relaxed);
    }

    /// Hands `log` each QoS 1 or 2 message a client publishes here that is queued for
    /// persistent sessions, and holds the publisher's acknowledgement until the log settles
    /// it ([`crate::routes::DurableLog`]). False if one was installed already.
    pub fn keep_durable_in(&self, log: Arc<dyn crate::routes::DurableLog>) -> bool {
        self.report_durable_deliveries();
        self.durable_log.set(log).is_ok()
    }

    /// The durable log installed, if any.
    pub fn durable_log(&self) -> Option<&Arc<dyn crate::routes::DurableLog>> {
        self.durable_log.get()
    }

    /// Messages the session of `client_id` has queued or in flight (sent, not yet
    /// acknowledged); `None` if there is no such session.
    pub fn session_pending(&self, client_id: &str) -> Option<usize> {
        let cell = self.sessions.lock().get(client_id).cloned()?;
        let session = cell.state.lock();
        Some(session.queue.len() + session.paged.len() + session.inflight.len())
    }

    /// Queues `message` for the session of `client_id` alone, through those of its
    /// subscriptions that match it (a message the cluster's log kept for the session, replayed
    /// where the session moved). False if the session is not here or nothing of it matches.
    pub fn replay_into(&self, client_id: &str, message: Arc<Message>, now: Instant) -> bool {
        let Some(cell) = self.sessions.lock().get(client_id).cloned() else {
            return false;
        };
        let mut matches = Matches::default();
        self.index.read().matches(&message.topic, &mut matches);
        matches
            .plain
            .retain(|subscriber| Arc::ptr_eq(&subscriber.session, &cell));
        let Some(delivery) = self.merge(&message, &matches.plain, None) else {
            return false;
        };
        let guard = self.access_control_for(&message.topic);
        self.deliver(&cell, delivery, guard.rules(), now).is_some()
    }

    /// Tells `observer` of every change to the persistent sessions here from now on (see
    /// [`crate::routes::SessionObserver`]). False if one was installed already.
    pub fn observe_sessions(&self, observer: Arc<dyn crate::routes::SessionObserver>) -> bool {
        self.session_observer.set(observer).is_ok()
    }

    /// Tells the session observer, if any, how a session that outlives its connection is now.
    pub(crate) fn checkpoint(&self, cell: &SessionCell) {
        let Some(observer) = self.session_observer.get() else {
            return;
        };
        let checkpoint = {
            let session = cell.state.lock();
            if session.expiry == Some(Duration::ZERO) {
                return;
            }
            crate::routes::SessionCheckpoint {
                client_id: cell.client_id.to_string(),
                expiry: session.expiry,
                subscriptions: session
                    .subscriptions
                    .values()
                    .map(|s| (s.filter.clone(), s.options, s.id))
                    .collect(),
                will: session.will.as_ref().map(|will| crate::routes::CheckpointWill {
                    publish: will.message.to_publish(
                        will.message.qos,
                        will.message.retain,
                        &[],
                        Instant::now(),
                    ),
                    delay: will.delay,
                    username: will.username.as_ref().map(ToString::to_string),
                    listener: will.listener,
                }),
            }
        };
        observer.session_changed(checkpoint);
    }

    /// Takes up here a session another node kept (its client connects here now), unless a
    /// session of that client exists here already: offline, with its subscriptions, until
    /// the client's CONNECT attaches it. True if it was taken up. Its will is left to the
    /// node its connection was on (which publishes it when it closes that connection).
    pub fn adopt_session(&self, checkpoint: crate::routes::SessionCheckpoint, now: Instant) -> bool {
        self.take_up(checkpoint, false, now)
    }

    /// As [`Broker::adopt_session`], for the session of a node that is lost (`lost_at`):
    /// its connection ended with that node, so the will it left waiting is published as for
    /// a connection that ended then without DISCONNECT (at once, or after what remains of
    /// its Will Delay Interval unless the client connects again first).
    pub fn adopt_lost_session(&self, checkpoint: crate::routes::SessionCheckpoint, lost_at: Instant) -> bool {
        self.take_up(checkpoint, true, lost_at)
    }

    fn take_up(&self, checkpoint: crate::routes::SessionCheckpoint, with_will: bool, now: Instant) -> bool {
        let client_id = ByteString::from(checkpoint.client_id.as_str());
        let cell = {
            let mut sessions = self.sessions.lock();
            if sessions.contains_key(&client_id) {
                return false;
            }
            let cell = Arc::new(SessionCell::new(client_id.clone()));
            sessions.insert(client_id, cell.clone());
            cell
        };
        {
            let mut session = cell.state.lock();
            session.expiry = checkpoint.expiry;
            session.disconnected_at = Some(now);
            session.will = checkpoint.will.filter(|_| with_will).map(|will| {
                let publish = will.publish;
                Box::new(PendingWill {
                    message: Arc::new(Message::new(
                        publish.topic,
                        publish.payload,
                        publish.qos,
                        publish.retain,
                        publish.properties,
                        None,
                        Some(cell.client_id.clone()),
                    )),
                    username: will.username.map(ByteString::from),
                    listener: will.listener,
                    delay: will.delay,
                })
            });
            for (filter, options, id) in &checkpoint.subscriptions {
                session.subscriptions.insert(
                    filter.as_byte_string().clone(),
                    crate::session::SessionSubscription {
                        filter: filter.clone(),
                        options: *options,
                        id: *id,
                    },
                );
            }
        }
        {
            let mut index = self.index.write();
            for (filter, options, id) in checkpoint.subscriptions {
                index.subscribe(
                    &filter,
                    Subscriber {
                        session: cell.clone(),
                        options,
                        id,
                    },
                );
            }
        }
        // Timed to expire like any offline session, should its client not come after all.
        self.resume_offline(&cell, now);
        tracing::info!(event = "session.adopted", client_id = %cell.client_id, "Session of {} taken up from the cluster.", cell.client_id);
        true
    }

    /// Tells `observer` of every retained message clients set here from now on (see
    /// [`crate::routes::RetainedObserver`]). False if one was installed already.
    pub fn observe_retained(&self, observer: Arc<dyn crate::routes::RetainedObserver>) -> bool {
        self.retained_observer.set(observer).is_ok()
    }

    /// Stores a retained message another node set (an empty payload clears the topic's),
    /// in memory and in the journal, without delivering it to anyone or telling the retained
    /// observer. Returns the journal write (0 if none).
    pub fn keep_retained(&self, message: Arc<Message>) -> Seq {
        let mut retained = self.retained.shard(message.topic.as_str());
        retained.set(message.clone());
        self.journal_retained(&message)
    }

    /// Writes `message` as its topic's retained message to the journal, if there is one.
    fn journal_retained(&self, message: &Message) -> Seq {
        let Some(journal) = &self.journal else {
            return 0;
        };
        if message.payload.is_empty() {
            journal.delete_retained(message.topic.as_str())
        } else {
            journal.put_retained(&message.record(journal.clock()))
        }
    }

    /// Delivers a message another node forwarded to the sessions here that match it. Nothing
    /// is kept (the retained copy travels on its own), and access to publish was decided
    /// where it was published; each receiver's access to read is decided here. Sessions
    /// subscribed with No Local are spared if `message.publisher` names them, as the
    /// cluster's own session is. Returns where it went, with the journal write to wait for
    /// before acknowledging it.
    pub fn publish_forwarded(&self, message: Arc<Message>, now: Instant) -> Routed {
        self.publish(message, Keep::Nothing, now)
    }

    /// Tells every connected client's connection to close with `reason` (a shutdown). Each
    /// connection sends its MQTT 5 clients a DISCONNECT with it; no will is published.
    pub fn close_all(&self, reason: ReasonCode) {
        self.for_each_link(|link| link.close(reason));
    }

    /// Sends `message` to every session with a matching subscription, first keeping it as its
    /// topic's retained message as `keep` says.
    ///
    /// The topic's shard of the retained store stays locked while the subscribers are looked
    /// up, and a SUBSCRIBE holds every shard while it adds its subscription and queues the
    /// retained messages: a subscription made at the same moment as a retained publish gets the
    /// message once, as the retained copy or as a live one, never both, and never an older
    /// value after it. Publishers to other shards (and all non-retained publishers) do not
    /// wait for each other.
    pub(crate) fn publish(&self, message: Arc<Message>, keep: Keep, now: Instant) -> Routed {
        self.publish_matched(message, keep, now, None)
    }

    /// [`publish`](Self::publish) by a connected client: through its [`RouteCache`], and
    /// saying whether the client's own session got the message ([`Routed::reached_publisher`]).
    pub(crate) fn publish_from(
        &self,
        message: Arc<Message>,
        keep: Keep,
        now: Instant,
        session: &Arc<SessionCell>,
        cache: &mut Option<Box<RouteCache>>,
    ) -> Routed {
        if keep == Keep::Nothing {
            self.publish_cached(message, now, session, cache)
        } else {
            self.publish_matched(message, keep, now, Some(session))
        }
    }

    /// A publish that keeps nothing, through the publisher's [`RouteCache`].
    fn publish_cached(
        &self,
        message: Arc<Message>,
        now: Instant,
        publisher: &Arc<SessionCell>,
        cache: &mut Option<Box<RouteCache>>,
    ) -> Routed {
        if let Some(kept) = cache.as_deref_mut()
            && kept.generation == self.index.generation()
            && kept.topic.as_ref() == Some(&message.topic)
        {
            self.tap.record(&message, now);
            return self.route(&message, &mut kept.matches, Some(publisher), now);
        }
        let kept = cache.get_or_insert_with(Box::default);
        kept.topic = None;
        kept.matches.plain.clear();
        kept.matches.shared.clear();
        let generation = {
            let index = self.index.read();
            index.matches(&message.topic, &mut kept.matches);
            self.index.generation()
        };
        self.tap.record(&message, now);
        sort_matches(&mut kept.matches);
        let routed = self.route(&message, &mut kept.matches, Some(publisher), now);
        if kept.matches.shared.is_empty() && kept.matches.plain.len() <= ROUTE_CACHE_MAX {
            kept.topic = Some(message.topic.clone());
            kept.generation = generation;
        } else {
            // Not kept: nothing of the match outlives the publish.
            *cache = None;
        }
        routed
    }

    fn publish_matched(
        &self,
        message: Arc<Message>,
        keep: Keep,
        now: Instant,
        publisher: Option<&Arc<SessionCell>>,
    ) -> Routed {
        self.tap.record(&message, now);
        // The match lists are this thread's, kept between publishes: a fresh pair cost two
        // allocations per message.
        let mut matches = MATCHES.take();
        let mut stored = 0;
        if keep == Keep::Nothing {
            self.index.read().matches(&message.topic, &mut matches);
        } else {
            let mut retained = self.retained.shard(message.topic.as_str());
            retained.set(message.clone());
            if keep == Keep::Journaled {
                stored = self.journal_retained(&message);
                if let Some(observer) = self.retained_observer.get() {
                    observer.retained(&message);
                }
            }
            self.index.read().matches(&message.topic, &mut matches);
        }
        sort_matches(&mut matches);
        let mut routed = self.route(&message, &mut matches, publisher, now);
        matches.plain.clear();
        matches.shared.clear();
        // A publish to a crowd does not leave every thread holding a crowd-sized list.
        if matches.plain.capacity() > KEEP_MATCHES_CAPACITY {
            matches.plain = Vec::new();
        }
        if matches.shared.capacity() > KEEP_MATCHES_CAPACITY {
            matches.shared = Vec::new();
        }
        MATCHES.set(matches);
        routed.durable_after = routed.durable_after.max(stored);
        routed
    }

    /// Queues `message` for the subscriptions that matched it.
    fn route(
        &self,
        message: &Arc<Message>,
        matches: &mut Matches,
        publisher: Option<&Arc<SessionCell>>,
        now: Instant,
    ) -> Routed {
        let guard = self.access_control_for(&message.topic);
        let access = guard.rules();
        let mut routed = Routed::default();
        let report = self.report_durable.load(Ordering::Relaxed);
        let log = if report { self.durable_log.get() } else { None };
        // Overlapping subscriptions of one session yield one delivery at the highest QoS with
        // every subscription identifier [MQTT-3.3.4-2] [MQTT-3.3.4-3..5]: sorted by session
        // (`sort_matches`), each session's subscriptions are one run.
        debug_assert!(matches.plain.is_sorted_by_key(|s| Arc::as_ptr(&s.session)));
        let mut rest = matches.plain.as_slice();
        while let Some(first) = rest.first() {
            let run = rest
                .iter()
                .position(|s| !Arc::ptr_eq(&s.session, &first.session))
                .unwrap_or(rest.len());
            let (group, after) = rest.split_at(run);
            rest = after;
            if let Some(mut delivery) = self.merge(message, group, publisher) {
                if let Some(log) = log
                    && delivery.qos != QoS::AtMostOnce
                    && crate::routes::is_internal(&first.session.client_id)
                {
                    let (ticket, settlement) = log.forward_ticket();
                    delivery.settles = Some(Arc::new(settlement));
                    routed.forward_ticket = routed.forward_ticket.max(ticket);
                }
                let queued = self.deliver(&first.session, delivery, access, now);
                routed.add(queued, &first.session, publisher, report);
            }
        }
        for member in &matches.shared {
            if let Some(delivery) = self.merge(message, std::slice::from_ref(member), publisher) {
                let queued = self.deliver(&member.session, delivery, access, now);
                routed.add(queued, &member.session, publisher, report);
            }
        }
        routed
    }

    /// One session's delivery of `message` through the given subscriptions, or none if No
    /// Local excludes them all.
    fn merge(
        &self,
        message: &Arc<Message>,
        subscriptions: &[Subscriber],
        publisher: Option<&Arc<SessionCell>>,
    ) -> Option<Delivery> {
        let mut delivery: Option<Delivery> = None;
        for subscription in subscriptions {
            // Asked only under No Local: most subscriptions do not ask. A connected
            // publisher's session is the one session with its client identifier; a message
            // without one (a will) names its client.
            if subscription.options.no_local
                && match publisher {
                    Some(cell) => Arc::ptr_eq(cell, &subscription.session),
                    None => message.publisher.as_ref() == Some(&subscription.session.client_id),
                }
            {
                continue;
            }
            let qos = if self.config.upgrade_outgoing_qos {
                subscription.options.qos
            } else {
                message.qos.min(subscription.options.qos)
            };
            // [MQTT-3.3.1-9]/[MQTT-3.3.1-12]: RETAIN is cleared unless Retain As Published.
            let retain = message.retain && subscription.options.retain_as_published;
            let entry = delivery.get_or_insert_with(|| Delivery {
                message: message.clone(),
                qos,
                retain,
                subscription_ids: Vec::new(),
                stored: None,
                settles: None,
            });
            entry.qos = entry.qos.max(qos);
            entry.retain |= retain;
            entry.subscription_ids.extend(subscription.id);
        }
        delivery
    }

    /// Queues a delivery in a session and wakes its connection, if `access` lets the session's
    /// client read the topic. `None` if not queued.
    pub(crate) fn deliver(
        &self,
        cell: &Arc<SessionCell>,
        delivery: Delivery,
        access: Option<&dyn AccessControl>,
        now: Instant,
    ) -> Option<Queued> {
        let mut session = cell.state.lock();
        if let Some(access) = access {
            let who = Identity {
                client_id: &cell.client_id,
                username: session.username.as_deref(),
                listener: session.listener,
            };
            if !access.allows(&who, &delivery.message.topic, Access::Read) {
                Stats::bump(&self.stats.denied_read);
                return None;
            }
        }
        let online = session.link.is_some();
        let durable = delivery.qos != QoS::AtMostOnce && session.expiry != Some(Duration::ZERO);
        let queued = session.enqueue(
            delivery,
            online,
            &self.config,
            &self.stats,
            &cell.client_id,
            self.journal.as_ref(),
            now,
        );
        let seq = queued?;
        if let Some(link) = &session.link {
            link.wake();
        }
        Some(Queued {
            seq,
            congested: session.congested(&self.config, now),
            durable,
        })
    }

    /// Publishes a will as if its client had sent it, if the rules in force still let that
    /// client write to the will's topic.
    fn publish_will(&self, will: PendingWill, now: Instant) {
        if let Some(access) = self.access_control().rules() {
            let client_id = will.message.publisher.as_deref().unwrap_or_default();
            let who = Identity {
                client_id,
                username: will.username.as_deref(),
                listener: will.listener,
            };
            if !access.allows(&who, &will.message.topic, Access::Write) {
                Stats::bump(&self.stats.denied_write);
                tracing::info!(client_id, topic = %will.message.topic, "Will of {client_id} to {} not published: not authorized.", will.message.topic);
                return;
            }
        }
        let message = will.message;
        let message = match message.properties.message_expiry_interval {
            Some(seconds) => Arc::new(Message::new(
                message.topic.clone(),
                message.payload.clone(),
                message.qos,
                message.retain,
                message.properties.clone(),
                Some(now + Duration::from_secs(u64::from(seconds))),
                message.publisher.clone(),
            )),
            None => message,
        };
        tracing::debug!(topic = %message.topic, "publishing will");
        let keep = Keep::retained_if(message.retain);
        self.publish(message, keep, now);
    }

    /// A connection ended: detach it from its session, deal with its will, and start (or
    /// finish) the session's expiry. A stale connection (already replaced) changes nothing.
    pub(crate) fn detach(&self, cell: &Arc<SessionCell>, generation: u64, publish_will: bool, now: Instant) {
        let (will, expiry, had_will) = {
            let mut session = cell.state.lock();
            if session.generation != generation || session.link.is_none() {
                return;
            }
            session.link = None;
            session.release_waiters();
            cell.set_online(false);
            session.disconnected_at = Some(now);
            let had_will = session.will.is_some();
            let will = session.will.take().filter(|_| publish_will);
            (will, session.expiry, had_will)
        };
        self.after_disconnect(cell, generation, will, expiry, now, now);
        // The cluster's checkpoint no longer has the will (dropped, or published), or has the
        // one that waits for its delay.
        if had_will {
            self.checkpoint(cell);
        }
    }

    /// What follows a connection's end (or, at startup, the end of the connections a restored
    /// session had): the will is published now or at its delay, and the session ends now or
    /// is timed to expire. `ended` is when the connection ended.
    fn after_disconnect(
        &self,
        cell: &Arc<SessionCell>,
        generation: u64,
        will: Option<Box<PendingWill>>,
        expiry: Option<Duration>,
        ended: Instant,
        now: Instant,
    ) {
        let mut will_now = None;
        let mut will_due = None;
        {
            let mut session = cell.state.lock();
            if session.generation != generation || session.link.is_some() {
                // Reattached meanwhile: the new connection owns the session now.
                return;
            }
            if let Some(will) = will {
                if ended + will.delay <= now {
                    will_now = Some(will);
                } else {
                    // It waits for its delay or the session's end, whichever comes first
                    // [MQTT-3.1.2-8]: `end_session` publishes a will still waiting.
                    let ends_first = expiry.is_some_and(|e| e <= will.delay);
                    if !ends_first {
                        will_due = Some(ended + will.delay);
                    }
                    session.will = Some(will);
                }
            }
            // The record now says when the connection ended and which will still waits.
            self.persist_session_record(&cell.client_id, &session);
        }
        if let Some(due) = will_due {
            let mut timers = self.timers.lock();
            let key = timers.key(due);
            timers.wills.insert(key, (cell.clone(), generation));
        }
        if let Some(will) = will_now {
            self.publish_will(*will, now);
        }
        let expiry = expiry.map(|e| (ended + e).saturating_duration_since(now));
        match expiry {
            Some(expiry) if expiry.is_zero() => {
                self.end_session(cell, generation, now);
            }
            Some(expiry) => {
                let mut timers = self.timers.lock();
                let key = timers.key(now + expiry);
                timers.expiries.insert(key, (cell.clone(), generation));
            }
            None => {}
        }
    }

    /// Starts a session restored from the store as if its connection had just ended.
    pub(crate) fn resume_offline(&self, cell: &Arc<SessionCell>, now: Instant) {
        let (generation, will, expiry, ended) = {
            let mut session = cell.state.lock();
            let will = session.will.take();
            (
                session.generation,
                will,
                session.expiry,
                session.disconnected_at.unwrap_or(now),
            )
        };
        self.after_disconnect(cell, generation, will, expiry, ended, now);
    }

    /// Ends a session for good, if it is still the one that expired.
    /// True if it ended it.
    fn end_session(&self, cell: &Arc<SessionCell>, generation: u64, now: Instant) -> bool {
        let will = {
            let mut session = cell.state.lock();
            if session.generation != generation || session.link.is_some() {
                return false;
            }
            self.unpersist(&cell.client_id, &mut session);
            session.will.take()
        };
        if let Some(observer) = self.session_observer.get() {
            observer.session_ended(&cell.client_id);
        }
        // A delayed will still pending goes out when the session ends [MQTT-3.1.2-8].
        if let Some(will) = will {
            self.publish_will(*will, now);
        }
        {
            let mut sessions = self.sessions.lock();
            if sessions
                .get(&cell.client_id)
                .is_some_and(|c| Arc::ptr_eq(c, cell))
            {
                // A connection may have taken the session up since it was looked at above:
                // it stays, or that connection would live on with a session no longer here.
                let reattached = {
                    let session = cell.state.lock();
                    session.generation != generation || session.link.is_some()
                };
                if reattached {
                    return false;
                }
                sessions.remove(&cell.client_id);
            }
        }
        self.forget_subscriptions(cell);
        true
    }

    /// Acts on every deadline that has passed: delayed wills and expired sessions. Returns the
    /// next deadline, so the runtime knows when to call again.
    pub fn tick(&self, now: Instant) -> Option<Instant> {
        loop {
            let due = {
                let mut timers = self.timers.lock();
                match timers.wills.first_key_value() {
                    Some((key, _)) if key.0 <= now => timers.wills.pop_first().map(|(_, v)| v),
                    _ => None,
                }
            };
            let Some((cell, generation)) = due else { break };
            let will = {
                let mut session = cell.state.lock();
                if session.generation == generation && session.link.is_none() {
                    let will = session.will.take();
                    self.persist_session_record(&cell.client_id, &session);
                    will
                } else {
                    None
                }
            };
            if let Some(will) = will {
                self.publish_will(*will, now);
                self.checkpoint(&cell);
            }
        }
        loop {
            let due = {
                let mut timers = self.timers.lock();
                match timers.expiries.first_key_value() {
                    Some((key, _)) if key.0 <= now => timers.expiries.pop_first().map(|(_, v)| v),
                    _ => None,
                }
            };
            let Some((cell, generation)) = due else { break };
            if self.end_session(&cell, generation, now) {
                Stats::bump(&self.stats.sessions_expired);
            }
        }
        let timers = self.timers.lock();
        let next_will = timers.wills.first_key_value().map(|(k, _)| k.0);
        let next_expiry = timers.expiries.first_key_value().map(|(k, _)| k.0);
        next_will.into_iter().chain(next_expiry).min()
    }
}

/// Where a publish put a message.
#[derive(Debug, Default)]
pub struct Routed {
    /// How many sessions it was queued for.
    pub sessions: usize,
    /// The journal write that must be durable before the message is acknowledged; 0 if none.
    pub durable_after: Seq,
    /// The sessions whose queues it left congested (`backpressure.rs`).
    pub(crate) congested: Vec<Arc<SessionCell>>,
    /// Whether it was queued for the publisher's own session (a client subscribed to what it
    /// publishes), as far as the publisher was named ([`Broker::publish_from`]).
    pub(crate) reached_publisher: bool,
    /// The persistent sessions it was queued for at QoS 1 or 2, if the broker was asked to
    /// tell ([`Broker::report_durable_deliveries`]).
    pub durable: Vec<ByteString>,
    /// The cluster's ticket for its copies to other nodes, if it went to any at QoS 1 or 2
    /// ([`crate::routes::DurableLog::forward_ticket`]); 0 if none.
    pub forward_ticket: u64,
}

impl Routed {
    fn add(
        &mut self,
        queued: Option<Queued>,
        cell: &Arc<SessionCell>,
        publisher: Option<&Arc<SessionCell>>,
        report: bool,
    ) {
        if let Some(queued) = queued {
            if report && queued.durable {
                self.durable.push(cell.client_id.clone());
            }
            self.sessions += 1;
            self.reached_publisher |= publisher.is_some_and(|publisher| Arc::ptr_eq(publisher, cell));
            self.durable_after = self.durable_after.max(queued.seq);
            if queued.congested {
                self.congested.push(cell.clone());
            }
        }
    }
}

/// A delivery queued in a session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Queued {
    /// The journal write that stored it (0 if none).
    pub(crate) seq: Seq,
    /// Whether the session's queue is now congested (`backpressure.rs`).
    pub(crate) congested: bool,
    /// Whether it is a QoS 1 or 2 message for a session that outlives its connection.
    pub(crate) durable: bool,
}

/// What a publish does with its retained copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Nothing: a message without RETAIN.
    Nothing,
    /// Kept in memory only (`$SYS`, republished every interval anyway).
    InMemory,
    /// Kept in memory and in the journal, when there is one.
    Journaled,
}

impl Keep {
    /// What a client's (or a will's) message asks for: journaled if RETAIN is set.
    pub(crate) fn retained_if(retain: bool) -> Self {
        if retain { Self::Journaled } else { Self::Nothing }
    }
}

/// What the broker holds at one moment (see [`Broker::census`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// Sessions, connected or not.
    pub sessions: usize,
    /// Sessions with a connection.
    pub connected: usize,
    /// Subscriptions, shared ones included.
    pub subscriptions: usize,
    /// Shared subscriptions.
    pub shared_subscriptions: usize,
    /// Retained messages.
    pub retained: usize,
    /// Their topic and payload bytes.
    pub retained_bytes: u64,
    /// Messages queued or in flight for sessions.
    pub queued: usize,
    /// Of those, the ones kept only in the persistence store (queued for absent clients).
    pub queued_on_disk: usize,
    /// Their topic and payload bytes.
    pub queued_bytes: u64,
}

/// The topic index, behind a lock whose readers each take a lock of their own thread's shard
/// (`crossbeam_utils::sync::ShardedLock`): every PUBLISH reads the index, and publishers on
/// different cores never write to a shared cache line to do it. SUBSCRIBE and UNSUBSCRIBE,
/// far rarer, lock every shard.
///
/// Its generation counts the times it was locked for writing: a [`RouteCache`] made at one
/// generation is the index's answer for as long as the generation stays.
#[derive(Debug, Default)]
pub(crate) struct SharedIndex {
    index: crossbeam_utils::sync::ShardedLock<TopicIndex>,
    generation: AtomicU64,
}

impl SharedIndex {
    /// For matching. A panic never happens while the index is locked (nothing in it panics),
    /// so a poisoned lock still guards a whole index.
    pub(crate) fn read(&self) -> crossbeam_utils::sync::ShardedLockReadGuard<'_, TopicIndex> {
        self.index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// For subscribing and unsubscribing. Moves the generation on, under the lock, before any
    /// change: a publisher that still sees the old generation publishes as if before the
    /// change, which has not returned to its caller yet.
    pub(crate) fn write(&self) -> crossbeam_utils::sync::ShardedLockWriteGuard<'_, TopicIndex> {
        let guard = self
            .index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::AcqRel);
        guard
    }

    /// The current generation.
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// The subscribers one topic matched, kept by a publishing connection: a client publishes to
/// the same topic again and again far more often than anyone subscribes or unsubscribes, and
/// a publish that finds its topic here at the index's current generation neither locks the
/// index nor walks it, nor takes and drops a reference to every subscriber.
///
/// Only matches without shared subscriptions are kept (a group's member is chosen per
/// message), and only up to [`ROUTE_CACHE_MAX`] subscribers.
#[derive(Debug, Default)]
pub(crate) struct RouteCache {
    topic: Option<TopicName>,
    generation: u64,
    matches: Matches,
}

/// Orders matches by session, as [`Broker::route`] needs them.
fn sort_matches(matches: &mut Matches) {
    if matches.plain.len() > 1 {
        matches.plain.sort_by_key(|s| Arc::as_ptr(&s.session));
    }
}

/// The most subscribers a [`RouteCache`] holds.
const ROUTE_CACHE_MAX: usize = 64;

/// The access rules as stored: `ArcSwap` needs a sized type.
#[derive(Debug)]
struct Rules(Arc<dyn AccessControl>);

/// A loaded snapshot of the access rules.
pub(crate) struct AccessGuard(Option<arc_swap::Guard<Option<Arc<Rules>>>>);

impl AccessGuard {
    /// The rules, if any are installed.
    pub(crate) fn rules(&self) -> Option<&dyn AccessControl> {
        self.0.as_ref()?.as_deref().map(|rules| &*rules.0)
    }
}

/// What `check_connect` settled.
#[derive(Debug, Clone)]
pub(crate) struct CheckedConnect {
    pub(crate) client_id: ByteString,
    pub(crate) assigned: bool,
    pub(crate) keep_alive: u16,
    pub(crate) mount_point: Option<ByteString>,
    pub(crate) listener: usize,
}

/// `topic` under a listener's `mount_point`; `None` without one, or if the result would not
/// be a valid topic name (too long).
pub(crate) fn mounted_topic(mount_point: Option<&ByteString>, topic: &TopicName) -> Option<TopicName> {
    let mount = mount_point?;
    TopicName::new(format!("{mount}{topic}")).ok()
}

/// `filter` under a listener's `mount_point`, inside `$share/{group}/` for a shared one.
pub(crate) fn mounted_filter(mount_point: Option<&ByteString>, filter: &TopicFilter) -> Option<TopicFilter> {
    let mount = mount_point?;
    let text = match filter.shared() {
        Some(shared) => format!("$share/{}/{mount}{}", shared.group, shared.filter),
        None => format!("{mount}{filter}"),
    };
    TopicFilter::new(text).ok()
}

/// Will properties carried over to the PUBLISH the will becomes (§3.1.3.2).
pub(crate) fn will_as_publish_properties(
    will: &midge_codec::properties::WillProperties,
) -> midge_codec::properties::PublishProperties {
    let mut properties = midge_codec::properties::PublishProperties::default();
    properties.payload_format_indicator = will.payload_format_indicator;
    properties.message_expiry_interval = will.message_expiry_interval;
    properties.content_type = will.content_type.clone();
    properties.response_topic = will.response_topic.clone();
    properties.correlation_data = will.correlation_data.clone();
    properties.user_properties = will.user_properties.clone();
    properties
}
