//! Every wire parser (JSON 1.0/1.1 bodies, CBOR, query forms of every SQS and SNS operation,
//! event-stream frames) on arbitrary bytes: must never panic, loop or allocate without bound.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    millpond::protocol::parse_any(data);
});
