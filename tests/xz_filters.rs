//! `--xz-filter` and `--block-size`: a BCJ filter shrinks machine code and is kept only where it
//! wins; the images read back byte for byte through Debian's unsquashfs and `verify`; the options
//! block, the manifest and `inspect` say which filter and block size were used. The kernel's
//! decoders are tested in root_sysext.rs (loop mounts and systemd-sysext merges).

mod common;

use std::fs;
use std::path::Path;

use common::*;

/// Builds `t` for `arch` from machine code (its BCJ filter's target) and text with `settings`;
/// returns the image and the code.
fn build_code(dir: &Path, arch: &str, settings: &[&str]) -> (std::path::PathBuf, Vec<u8>) {
    let payload = dir.join(format!("payload-{arch}"));
    let code = branchy_code(arch, 600_000);
    if !payload.exists() {
        fs::create_dir_all(payload.join("usr/bin")).unwrap();
        fs::write(payload.join("usr/bin/code"), &code).unwrap();
        fs::write(payload.join("usr/bin/text"), Rng::new(5).text(300_000)).unwrap();
    }
    let out = dir.join(format!("out-{arch}-{}", settings.join("-")));
    let built = Build::new(&out)
        .arch(arch)
        .tree(&payload)
        .epoch(0)
        .args(settings)
        .run();
    (built.image, code)
}

#[test]
fn a_bcj_filter_shrinks_machine_code_and_reads_back() {
    require_tool("unsquashfs");
    let dir = tempdir();
    for (arch, filter) in [("x86-64", "x86"), ("arm64", "arm64")] {
        let (plain, _) = build_code(dir.path(), arch, &["--xz-filter", "none"]);
        let (filtered, code) = build_code(dir.path(), arch, &["--xz-filter", filter]);
        let (plain_size, filtered_size) = (
            fs::metadata(&plain).unwrap().len(),
            fs::metadata(&filtered).unwrap().len(),
        );
        assert!(
            filtered_size * 10 < plain_size * 9,
            "{arch}: {filtered_size} bytes with {filter}, {plain_size} without"
        );
        // Debian's unsquashfs (its own liblzma) decodes the filtered blocks.
        let extracted = dir.path().join(format!("x-{arch}"));
        unsquashfs_extract(&filtered, &extracted);
        assert!(
            fs::read(extracted.join("usr/bin/code")).unwrap() == code,
            "{arch}"
        );
        // verify decodes every entry against the manifest, which names the filter.
        let output = cli(&[&"verify", &filtered]);
        expect_status(&output, 0);
        let manifest = fs::read_to_string(filtered.with_extension("manifest.json")).unwrap();
        assert!(
            manifest.contains(&format!("\"xz_filter\": \"{filter}\"")),
            "{manifest}"
        );
        let inspect = stdout(&cli(&[&"inspect", &filtered]));
        assert!(
            inspect.contains(&format!("xz filter {filter},")),
            "{inspect}"
        );
    }
}

#[test]
fn text_keeps_its_plain_blocks_under_a_filter() {
    // The filter is tried per block and kept only where it wins: on text it never does, so the
    // image equals the unfiltered one but for the options block and the manifest's record.
    let dir = tempdir();
    let payload = dir.path().join("payload");
    fs::create_dir_all(payload.join("usr/share")).unwrap();
    fs::write(payload.join("usr/share/text"), Rng::new(9).text(700_000)).unwrap();
    let sizes: Vec<u64> = ["none", "x86"]
        .iter()
        .map(|filter| {
            let built = Build::new(&dir.path().join(filter))
                .tree(&payload)
                .args(["--xz-filter", filter])
                .run();
            fs::metadata(built.image).unwrap().len()
        })
        .collect();
    assert!(sizes[1] <= sizes[0] + 4096, "{sizes:?}");
}

#[test]
fn block_sizes_are_recorded_and_bad_ones_refused() {
    let dir = tempdir();
    let (image, _) = build_code(dir.path(), "x86-64", &["--block-size", "1M"]);
    let bytes = fs::read(&image).unwrap();
    assert_eq!(
        u32::from_le_bytes(bytes[12..16].try_into().unwrap()),
        1 << 20
    );
    let manifest = fs::read_to_string(image.with_extension("manifest.json")).unwrap();
    assert!(manifest.contains("\"block_size\": 1048576"), "{manifest}");
    let tree = dir.path().join("payload-x86-64");
    let refused = dir.path().join("refused");
    for bad in ["3K", "2M", "100000", "1G", "", "128KB"] {
        Build::new(&refused)
            .tree(&tree)
            .args(["--block-size", bad])
            .refused(&[
                &format!("block size {bad:?}"),
                "use a power of two from 4K to 1M",
            ]);
    }
    Build::new(&refused)
        .tree(&tree)
        .compression("zstd")
        .args(["--xz-filter", "x86"])
        .refused(&["--xz-filter x86 needs --compression xz"]);
}
