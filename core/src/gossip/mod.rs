//! Membership by gossip: SWIM (Das, Gupta, Motivala 2002) with the Lifeguard
//! extensions (Dadgar et al. 2018).
//!
//! Owns the rules a member list lives by: which news about a member wins,
//! how long a suspicion lasts, how far this node's own health stretches its
//! timeouts, how often news is passed on. It must never read a clock, draw
//! entropy or touch a socket: every rule here is a pure function of the
//! numbers it is given, and gives the same answer on every machine (no
//! floating-point logarithm: they are computed in fixed point).
//!
//! The rules and data structures live in their own modules, each tested
//! by tables of exact outputs; [`machine::Gossip`] drives them.

pub mod dissemination;
pub mod events;
pub mod fixed;
pub mod lifeguard;
pub mod machine;
pub mod member;
pub mod message;
pub mod probe;
