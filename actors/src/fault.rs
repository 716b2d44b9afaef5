//! Fault injection for tests, in debug builds only (the module is compiled out of release
//! builds). With `TEST_RPC_CRYPTO_FAULT_INJECTION=1` in the server's environment, the rpc method
//! `debug.panic` with `{"actor": "router" | "registry" | "session"}` makes that actor panic, so
//! that a test can see what a panic leaves behind (supervision: docs/OPERATIONS.md).

use actix::prelude::*;

/// Makes the actor that handles it panic.
#[derive(Message)]
#[rtype(result = "()")]
pub struct InjectPanic;

/// Whether this process takes `debug.panic`.
pub fn enabled() -> bool {
    std::env::var_os("TEST_RPC_CRYPTO_FAULT_INJECTION").is_some_and(|v| v == "1")
}
