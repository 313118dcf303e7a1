//! What the command line runs over the compiler: the trainer ([`train`]),
//! the paper benchmark ([`bench`]) and the memory count both check before
//! they allocate ([`memory`]).

#[cfg(test)]
pub mod alone;
pub mod bench;
pub mod memory;
pub mod train;
