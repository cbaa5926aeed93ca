//! Feeds arbitrary bytes to the DDI reader (GPT, partition roles, verity superblock, signature
//! JSON), which `verify`, `inspect`, `diff` and `sign` run before the SquashFS reader on any file
//! that starts with a protective MBR. Any panic, abort, timeout or oversized allocation is a
//! finding.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use sysext_assembler::ddi;

fuzz_target!(|data: &[u8]| {
    let _ = ddi::read(&mut Cursor::new(data), data.len() as u64);
});
