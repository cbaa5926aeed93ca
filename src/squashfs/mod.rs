//! Writing SquashFS images whose bytes depend only on the payload and the options: the writer
//! ([`writer`], backhand's `FilesystemWriter` with everything it would take from the environment
//! pinned) and the compressor choice with its parallel block compression ([`compress`]), which
//! the writer uses and which knows nothing of the writer. Reading images back is
//! [`crate::image_reader`]'s job: it trusts nothing this module wrote.

pub mod compress;
pub mod writer;
