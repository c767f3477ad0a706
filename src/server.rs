//! The server: placeholder until the front door lands.
