//! Feeds arbitrary bytes to the hardened image reader, the code `verify`, `inspect` and `diff`
//! run on downloaded files. Any panic, abort, timeout or allocation over libFuzzer's limits is
//! a finding. backhand's own panics count too: libfuzzer-sys aborts on a panic before the
//! reader's `catch_unwind` could hide it.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use sysext_assembler::image_reader::{Image, Limits};

fuzz_target!(|data: &[u8]| {
    // Smaller content budget than the default so a claimed multi-GiB sparse file costs
    // milliseconds, not seconds, per input; every other bound is the one the commands use.
    let limits = Limits { max_content_bytes: 64 << 20, ..Limits::DEFAULT };
    if let Ok(image) = Image::from_reader(Cursor::new(data.to_vec()), data.len() as u64, &limits) {
        for entry in &image.entries {
            if entry.size.is_some_and(|size| size <= 4096) {
                let _ = image.read_file(&entry.path, 4096);
            }
        }
    }
});
