//! Disk images: the SquashFS wrapped as a Discoverable Disk Image ([`ddi`]), the GUID partition
//! table it lives in ([`gpt`]) and the dm-verity hash tree that lets the kernel check every block
//! it reads ([`verity`]). `ddi` uses the other two; they know nothing of each other or of `ddi`.

pub mod ddi;
pub mod gpt;
pub mod verity;
