//! The marginal-path decision engine (being written): pure, clock-injected.
pub mod params;
pub use params::Params;
