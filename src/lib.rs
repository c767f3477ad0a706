//! millpond: a durable single-node broker that speaks the SQS, SNS and Kinesis wire protocols.

pub mod codec;
pub mod log;
