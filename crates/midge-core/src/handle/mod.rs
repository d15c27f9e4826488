//! Per-packet handling, one file per packet family: decide what the packet means for the
//! session and the broker, and put the answer in the outbox. Decoding happened in the codec;
//! sockets are the runtime's.

mod ack;
mod auth;
mod disconnect;
mod publish;
mod subscribe;
mod will;
