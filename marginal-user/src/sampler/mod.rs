//! The io_uring O_DIRECT sampler (being written).
pub mod cli;
