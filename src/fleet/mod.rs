//! The fleet: one test driven from many hosts; [`render`] writes what starts it on a cluster engine.
pub mod render;
