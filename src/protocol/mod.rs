//! Wire protocols: placeholder until the front door lands.
