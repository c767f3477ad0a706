//! millpond: a durable single-node broker that speaks the SQS, SNS and Kinesis wire protocols.
//!
//! Three layers, each ignorant of the one above it:
//! - storage ([`log`]): segmented, checksummed write-ahead logs. Knows nothing of AWS.
//! - services ([`sqs`], [`sns`], [`kinesis`]): typed requests in, typed responses or
//!   [`error::ServiceError`]s out; they write through storage. Know nothing of HTTP.
//! - protocols ([`protocol`]): wire formats, routing, error rendering. Know nothing of files.
//!
//! [`server`] wires them together.

pub mod codec;
pub mod config;
pub mod context;
pub mod error;
pub mod kinesis;
pub mod log;
pub mod protocol;
pub mod server;
pub mod service;
pub mod sns;
pub mod sqs;
