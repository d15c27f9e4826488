//! Changing the will of a live connection. MQTT has no packet for it (a will is set at CONNECT
//! and kept for the connection's life), but MQTT-SN does (WILLTOPICUPD, WILLMSGUPD, §6.4 of
//! MQTT-SN 1.2), and its gateway drives its clients' sessions through [`Connection`]. The new
//! will is stored as CONNECT stores one: under the listener's mount point, with the client's
//! user name and listener for the access check at publication, and in the journal with the
//! session when it is persistent.

use std::sync::Arc;
use std::time::Duration;

use midge_codec::Will;

use crate::broker::mounted_topic;
use crate::connection::Connection;
use crate::message::Message;
use crate::session::PendingWill;

impl Connection {
    /// Replaces the connection's will with `will` (`None` removes it). Returns the journal
    /// sequence number to wait for before acknowledging, 0 without persistence.
    pub fn replace_will(&mut self, will: Option<&Will>) -> u64 {
        let pending = will.map(|will| PendingWill {
            username: self.username.clone(),
            listener: self.listener,
            delay: Duration::from_secs(u64::from(will.properties.will_delay_interval.unwrap_or(0))),
            message: Arc::new(Message::new(
                mounted_topic(self.mount_point.as_ref(), &will.topic).unwrap_or_else(|| will.topic.clone()),
                will.payload.clone(),
                will.qos,
                will.retain,
                crate::broker::will_as_publish_properties(&will.properties),
                None,
                Some(self.session.client_id.clone()),
            )),
        });
        let mut session = self.session.state.lock();
        if session.generation != self.generation {
            return 0;
        }
        session.will = pending.map(Box::new);
        self.broker
            .persist_session_record(&self.session.client_id, &session)
    }
}
