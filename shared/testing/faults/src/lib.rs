//! Reliability harnesses for Ember's guarantees (see `RELIABILITY.md`):
//!
//! - [`proxy::FaultProxy`]: a fault-injecting HTTP/1.1 proxy put in front of a real protocol
//!   peer (moto's DynamoDB, SES v2, EventBridge and SQS endpoint, or a webhook receiver). It
//!   answers some requests itself with the peer's own throttling or 5xx errors, holds some until
//!   the client gives up, forwards some and then resets the connection (the peer applied the
//!   request, the client never hears), and slows some down. Decisions come from a seeded RNG.
//! - [`receiver::Receiver`]: a webhook receiver on loopback that records what it got by
//!   `webhook-id`.
//! - [`ports`]: the loopback ports these harnesses may use (18800–18899).
//!
//! Only tests and the soak driver use this crate; no product binary links it.

pub mod http1;
pub mod ports;
pub mod proxy;
pub mod receiver;

pub use proxy::{Applied, Fault, FaultPlan, FaultProxy, Peer};
pub use receiver::{Received, Receiver};
