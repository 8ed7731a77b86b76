//! A policy on the bus: the policy node around any [`loho_core::policy::Policy`]
//! ([`node`], also the `policy/infer` queryable), a policy served by such a node
//! elsewhere ([`remote`]), and openpi's websocket protocol both ways ([`openpi`]).

pub mod node;
pub mod openpi;
pub mod remote;
