//! End-to-end tests of loho live in `tests/`: real zenoh sessions over loopback, real
//! processes. This library is empty; see `tests/nodes.rs`.
