//! The feed: what a build publishes next to its image and what nodes and users check it by. The
//! JSON manifest ([`manifest`]), `SHA256SUMS` ([`sums`]) and the hashes of whole image files
//! they carry ([`file_hash`]), the sysupdate transfer file ([`sysupdate`]), the rule that a
//! published version never changes ([`published`]), and the crash-safe writing of all of them
//! into the output directory ([`output`]), where an image's companions lie next to it
//! ([`image_paths`]), and a published DDI rewritten signed with its manifest and `SHA256SUMS`
//! line ([`sign`]).

pub mod file_hash;
pub mod image_paths;
pub mod manifest;
pub mod output;
pub mod published;
pub mod sign;
pub mod sums;
pub mod sysupdate;
