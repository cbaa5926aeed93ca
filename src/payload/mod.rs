//! The payload: what goes into the image, collected from `--tree` directories and `--file`
//! arguments into one normalised in-memory tree, with every layout rule enforced on the way in.
//!
//! Only what the image's bytes may depend on survives collection: the relative path, the file
//! contents, whether a file is executable, and symlink targets. Owners, mtimes, other permission
//! bits, enumeration order and the absolute location of the inputs are dropped here, which is the
//! first half of the determinism guarantee (the second half is in [`crate::squashfs`]). The
//! extension-release file the build adds to every payload is [`extension_release`].
//!
//! The layout rules are public ([`check_path`], [`check_entry`], [`check_symlink_target`]) so
//! that `verify` applies exactly the same rules to an image it did not build.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};

use serde::{Deserialize, Serialize};

pub mod extension_release;

/// Top-level directories a system extension may ship: systemd-sysext overlays only /usr and /opt.
pub const ALLOWED_TOP_LEVEL: [&str; 2] = ["usr", "opt"];

/// Paths that are symlinks on the target system (merged /usr). An extension that ships a
/// directory there overlays a real directory on top of the symlink, which hides everything the
/// host has behind it: on Flatcar (since 4152) `/usr/sbin` is a symlink to `bin`, and an image
/// with `usr/sbin` leaves the host with a `/usr/sbin` holding only the extension's files.
pub const MERGED_USR_SYMLINKS: [(&str, &str); 1] = [("usr/sbin", "bin")];

/// Directories every host has. Overlayfs lets the upper layer win when it holds a non-directory
/// where the lower one has a directory, so an image with a file or symlink at one of these paths
/// hides the host's whole directory (all of /usr/lib, say) once merged.
pub const HOST_DIRECTORIES: [&str; 10] = [
    "usr/bin",
    "usr/include",
    "usr/lib",
    "usr/lib/extension-release.d",
    "usr/lib/systemd",
    "usr/lib/systemd/system",
    "usr/lib64",
    "usr/libexec",
    "usr/local",
    "usr/share",
];

/// Rejects a path that must not appear in a system extension image.
///
/// `path` is relative to the image root, `/`-separated. Checked: every component is non-empty,
/// not `.` or `..`, free of control characters; the first component is `usr` or `opt`; nothing
/// lies at or below a merged-/usr symlink such as `usr/sbin`.
pub fn check_path(path: &str) -> Result<()> {
    if path.is_empty() {
        bail!("empty path: name a path inside the image such as usr/bin/NAME");
    }
    for component in path.split('/') {
        match component {
            "" => bail!(
                "{path:?}: empty path component (leading, trailing or doubled '/'); write paths \
                 relative to the image root such as usr/bin/NAME"
            ),
            "." | ".." => bail!(
                "{path:?}: the component {component:?} is not allowed; write the plain path \
                 relative to the image root"
            ),
            _ => {}
        }
        if component.chars().any(char::is_control) {
            bail!(
                "{path:?}: the name contains a control character (newline, tab, ...); rename it: \
                 such names break line-oriented tools that list images"
            );
        }
    }
    let top = path.split('/').next().unwrap_or_default();
    if !ALLOWED_TOP_LEVEL.contains(&top) {
        bail!(
            "{path}: top-level entry {top:?} is outside usr/ and opt/; systemd-sysext only merges \
             /usr and /opt, so move it below usr/ or opt/ (configuration belongs in a confext or \
             in Butane, not in a sysext)"
        );
    }
    for (link, target) in MERGED_USR_SYMLINKS {
        if path == link || path.starts_with(&format!("{link}/")) {
            bail!(
                "{path}: /{link} is a symlink to {target} on the target system (merged /usr, \
                 Flatcar 4152 and later); an image that ships {link}/ overlays a directory on it \
                 and hides the host's whole /{link}. Install to usr/{target}/ instead"
            );
        }
    }
    Ok(())
}

/// Rejects an entry of the given kind and permission bits (`mode & 0o7777`) at `path`, and for
/// symlinks checks `target` with [`check_symlink_target`]. Includes [`check_path`].
pub fn check_entry(path: &str, kind: EntryKind, mode: u32, target: Option<&str>) -> Result<()> {
    check_path(path)?;
    if ALLOWED_TOP_LEVEL.contains(&path) && kind != EntryKind::Dir {
        bail!("{path}: must be a directory, not a {}", kind_name(kind));
    }
    if HOST_DIRECTORIES.contains(&path) && kind != EntryKind::Dir {
        bail!(
            "{path}: is a {} in the image but a directory on every host; merged, it would hide \
             the host's whole /{path}. Ship a directory there",
            kind_name(kind)
        );
    }
    if kind != EntryKind::Symlink && mode & 0o7000 != 0 {
        let mut bits = Vec::new();
        if mode & 0o4000 != 0 {
            bits.push("setuid");
        }
        if mode & 0o2000 != 0 {
            bits.push("setgid");
        }
        if mode & 0o1000 != 0 {
            bits.push("sticky");
        }
        bail!(
            "{path}: has the {} bit (mode {:04o}); a system extension must not ship privileged or \
             special-mode entries. Clear it with chmod ug-s,o-t",
            bits.join(" and "),
            mode & 0o7777
        );
    }
    if kind == EntryKind::Symlink {
        let target = target.ok_or_else(|| anyhow!("{path}: symlink without a target"))?;
        check_symlink_target(path, target)?;
    }
    Ok(())
}

/// Refusal for a device node, fifo or socket at `path`; `what` names the type.
pub fn special_file_error(path: &str, what: &str) -> anyhow::Error {
    anyhow!(
        "{path}: is a {what}; a system extension may hold only directories, regular files and \
         symlinks. Remove it from the payload"
    )
}

/// Rejects a symlink at `path` whose `target` escapes the image: the target, resolved lexically
/// from the link's directory (or from the root when absolute), must stay inside usr/ or opt/,
/// the only parts of the file system the image provides.
pub fn check_symlink_target(path: &str, target: &str) -> Result<()> {
    if target.is_empty() {
        bail!("{path}: symlink with an empty target");
    }
    if target.chars().any(char::is_control) {
        bail!("{path}: symlink target {target:?} contains a control character");
    }
    let mut resolved: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut parent: Vec<&str> = path.split('/').collect();
        parent.pop();
        parent
    };
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if resolved.pop().is_none() {
                    bail!(
                        "{path}: symlink target {target:?} climbs above the image root; point it \
                         at a path inside usr/ or opt/"
                    );
                }
            }
            name => resolved.push(name),
        }
    }
    let top = resolved.first().copied().unwrap_or_default();
    if !ALLOWED_TOP_LEVEL.contains(&top) {
        bail!(
            "{path}: symlink target {target:?} resolves to /{} outside usr/ and opt/, which the \
             image does not provide; point it at a path inside usr/ or opt/",
            resolved.join("/")
        );
    }
    Ok(())
}

/// What an entry of the payload, and so of the image and its manifest, is. Nothing else is
/// allowed in: device nodes, fifos and sockets are refused on the way in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    Dir,
    File,
    Symlink,
}

fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Dir => "directory",
        EntryKind::File => "regular file",
        EntryKind::Symlink => "symlink",
    }
}

/// A regular file of the payload, held in memory: the bytes hashed for the manifest are the
/// bytes written to the image, even if the source changes during the build.
#[derive(Clone)]
pub struct FileData {
    pub contents: Arc<[u8]>,
    pub executable: bool,
    pub sha256: [u8; 32],
}

impl FileData {
    pub fn new(contents: impl Into<Arc<[u8]>>, executable: bool) -> Self {
        let contents = contents.into();
        let sha256 = Sha256::digest(&contents).into();
        FileData {
            contents,
            executable,
            sha256,
        }
    }

    /// `0755` or `0644`: the only file modes an image holds.
    pub fn mode(&self) -> u16 {
        if self.executable {
            0o755
        } else {
            0o644
        }
    }
}

/// One entry of the normalised tree.
#[derive(Clone)]
pub enum Node {
    Dir,
    File(FileData),
    Symlink(String),
}

impl Node {
    pub fn kind(&self) -> EntryKind {
        match self {
            Node::Dir => EntryKind::Dir,
            Node::File(_) => EntryKind::File,
            Node::Symlink(_) => EntryKind::Symlink,
        }
    }

    fn same_as(&self, other: &Node) -> bool {
        match (self, other) {
            (Node::Dir, Node::Dir) => true,
            (Node::File(a), Node::File(b)) => {
                a.executable == b.executable && a.sha256 == b.sha256 && a.contents == b.contents
            }
            (Node::Symlink(a), Node::Symlink(b)) => a == b,
            _ => false,
        }
    }
}

struct Slot {
    node: Node,
    /// Where the entry came from, for error messages.
    origin: String,
}

/// The payload tree: image path (relative, `/`-separated) to entry. The root directory is
/// implicit. Keys are kept in a `BTreeMap`, so iteration is in byte order of the path.
#[derive(Default)]
pub struct Payload {
    entries: BTreeMap<String, Slot>,
}

impl Payload {
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries in byte order of their paths, root excluded.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.entries
            .iter()
            .map(|(path, slot)| (path.as_str(), &slot.node))
    }

    /// Merges the directory tree at `root` into the payload: `root/usr/bin/x` becomes
    /// `usr/bin/x`. Symlinks are kept as symlinks; device nodes, fifos, sockets and
    /// setuid/setgid/sticky bits are refused.
    pub fn add_tree(&mut self, root: &Path) -> Result<()> {
        let meta = fs::metadata(root)
            .with_context(|| format!("--tree {}: cannot read it", root.display()))?;
        if !meta.is_dir() {
            bail!(
                "--tree {}: not a directory; give a directory holding usr/ and/or opt/",
                root.display()
            );
        }
        let origin = format!("--tree {}", root.display());
        // Walk and check the paths first, then stat, read and hash the regular files on all
        // cores, then check their modes and insert everything in walk order: errors and
        // conflicts are reported in the same order every time.
        let mut found: Vec<(String, Option<Node>, PathBuf)> = Vec::new();
        let walk = walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
            .min_depth(1);
        for item in walk {
            let item = item.with_context(|| format!("{origin}: cannot walk the tree"))?;
            let relative = item
                .path()
                .strip_prefix(root)
                .expect("walkdir yields paths below root");
            let path = relative_utf8(relative)
                .with_context(|| format!("{origin}: {}", item.path().display()))?;
            let file_type = item.file_type();
            if file_type.is_file() {
                // mode bits are checked once the file is open, below
                check_entry(&path, EntryKind::File, 0, None)
                    .with_context(|| format!("refusing {origin}"))?;
                found.push((path, None, item.path().to_path_buf()));
                continue;
            }
            let meta = item
                .path()
                .symlink_metadata()
                .with_context(|| format!("{origin}: cannot stat {}", item.path().display()))?;
            let mode = meta.permissions().mode() & 0o7777;
            let node = if file_type.is_dir() {
                check_entry(&path, EntryKind::Dir, mode, None)
                    .with_context(|| format!("refusing {origin}"))?;
                Node::Dir
            } else if file_type.is_symlink() {
                let target = fs::read_link(item.path()).with_context(|| {
                    format!("{origin}: cannot read link {}", item.path().display())
                })?;
                let target = target.to_str().ok_or_else(|| {
                    anyhow!("refusing {origin}: {path}: symlink target {target:?} is not UTF-8")
                })?;
                check_entry(&path, EntryKind::Symlink, mode, Some(target))
                    .with_context(|| format!("refusing {origin}"))?;
                Node::Symlink(target.to_string())
            } else {
                let what = if file_type.is_block_device() {
                    "block device"
                } else if file_type.is_char_device() {
                    "character device"
                } else if file_type.is_fifo() {
                    "fifo"
                } else if file_type.is_socket() {
                    "socket"
                } else {
                    "special file"
                };
                return Err(special_file_error(&path, what))
                    .with_context(|| format!("refusing {origin}"));
            };
            found.push((path, Some(node), PathBuf::new()));
        }
        let sources: Vec<&Path> = found
            .iter()
            .filter(|(_, node, _)| node.is_none())
            .map(|(_, _, source)| source.as_path())
            .collect();
        let mut files = read_all(&sources).into_iter();
        for (path, node, source) in found {
            let node = match node {
                Some(node) => node,
                None => {
                    let file = files
                        .next()
                        .expect("one read per file")
                        .with_context(|| format!("{origin}: cannot read {}", source.display()))?;
                    check_entry(&path, EntryKind::File, file.mode, None)
                        .with_context(|| format!("refusing {origin}"))?;
                    Node::File(FileData {
                        contents: file.contents,
                        executable: file.mode & 0o111 != 0,
                        sha256: file.sha256,
                    })
                }
            };
            self.insert(&path, node, &origin)?;
        }
        Ok(())
    }

    /// Places the regular file `source` (symlinks followed) at `dest`, creating parent
    /// directories. Mode 0755 if `source` has any executable bit, else 0644.
    pub fn add_file(&mut self, dest: &str, source: &Path) -> Result<()> {
        let origin = format!("--file {dest}={}", source.display());
        let dest = dest.strip_prefix('/').unwrap_or(dest);
        let meta =
            fs::metadata(source).with_context(|| format!("{origin}: cannot read the source"))?;
        if !meta.is_file() {
            bail!("{origin}: the source is not a regular file");
        }
        let mode = meta.permissions().mode() & 0o7777;
        check_entry(dest, EntryKind::File, mode, None)
            .with_context(|| format!("refusing {origin}"))?;
        let contents = fs::File::open(source)
            .and_then(|mut file| read_shared(&mut file, meta.len()))
            .with_context(|| format!("{origin}: cannot read the source"))?;
        self.insert(
            dest,
            Node::File(FileData::new(contents, mode & 0o111 != 0)),
            &origin,
        )
    }

    /// Adds a file the tool itself writes (extension-release), refusing if the payload already
    /// holds something at `path`.
    pub fn add_generated_file(&mut self, path: &str, contents: Vec<u8>, why: &str) -> Result<()> {
        check_path(path)?;
        if let Some(existing) = self.entries.get(path) {
            bail!(
                "refusing {}: {path}: the payload already holds this file, but {why}; remove it \
                 from the payload",
                existing.origin
            );
        }
        self.insert(
            path,
            Node::File(FileData::new(contents, false)),
            "sysext-assembler",
        )
    }

    /// Inserts `node` at `path`, creating missing parent directories and checking conflicts.
    fn insert(&mut self, path: &str, node: Node, origin: &str) -> Result<()> {
        let mut parent_end = 0;
        while let Some(offset) = path[parent_end..].find('/') {
            let parent = &path[..parent_end + offset];
            match self.entries.get(parent) {
                None => {
                    self.entries.insert(
                        parent.to_string(),
                        Slot {
                            node: Node::Dir,
                            origin: origin.to_string(),
                        },
                    );
                }
                Some(Slot {
                    node: Node::Dir, ..
                }) => {}
                Some(existing) => bail!(
                    "{origin} puts {path} inside {parent}, but {parent} is a {} from {}; a path \
                     cannot be both",
                    kind_name(existing.node.kind()),
                    existing.origin
                ),
            }
            parent_end += offset + 1;
        }
        match self.entries.get(path) {
            None => {
                self.entries.insert(
                    path.to_string(),
                    Slot {
                        node,
                        origin: origin.to_string(),
                    },
                );
            }
            Some(existing) if existing.node.same_as(&node) => {}
            Some(existing) => bail!(
                "{path} comes from two sources that differ: {} ({}) and {origin} ({}); the same \
                 path from two sources must be identical. Remove one of them",
                existing.origin,
                describe(&existing.node),
                describe(&node)
            ),
        }
        Ok(())
    }
}

fn describe(node: &Node) -> String {
    match node {
        Node::Dir => "directory".to_string(),
        Node::File(file) => format!(
            "{} file, {} bytes, sha256 {}",
            if file.executable {
                "executable"
            } else {
                "non-executable"
            },
            file.contents.len(),
            crate::hex(&file.sha256)
        ),
        Node::Symlink(target) => format!("symlink to {target:?}"),
    }
}

/// A regular file read from a tree: permission bits, contents, SHA-256.
struct ReadFile {
    mode: u32,
    contents: Arc<[u8]>,
    sha256: [u8; 32],
}

/// Opens, stats, reads and hashes the regular files `sources` on all cores; results in the order
/// of `sources`. The mode comes from the open file, so it belongs to the bytes that were read.
fn read_all(sources: &[&Path]) -> Vec<std::io::Result<ReadFile>> {
    fn read_one(source: &Path) -> std::io::Result<ReadFile> {
        let mut file = fs::File::open(source)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::other("no longer a regular file"));
        }
        let contents = read_shared(&mut file, meta.len())?;
        let sha256 = Sha256::digest(&contents).into();
        Ok(ReadFile {
            mode: meta.permissions().mode() & 0o7777,
            contents,
            sha256,
        })
    }

    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<std::io::Result<ReadFile>>>> =
        sources.iter().map(|_| Mutex::new(None)).collect();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers.min(sources.len()) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(source) = sources.get(index) else {
                    return;
                };
                let read = read_one(source);
                *results[index].lock().unwrap_or_else(|e| e.into_inner()) = Some(read);
            });
        }
    });
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every file was read")
        })
        .collect()
}

/// The rest of `file`, read straight into the shared buffer the payload keeps: turning a `Vec`
/// into an `Arc<[u8]>` copies it, which for a large tree cost a serial pass over every payload
/// byte between reading and compressing. `len` is the size from `stat`; a file that changes size
/// while it is read is kept as read, like `read_to_end` would, at the cost of that copy.
fn read_shared(file: &mut fs::File, len: u64) -> std::io::Result<Arc<[u8]>> {
    let len = usize::try_from(len).map_err(std::io::Error::other)?;
    let mut contents: Arc<[u8]> = std::iter::repeat_n(0, len).collect();
    let buffer = Arc::get_mut(&mut contents).expect("a new Arc is not shared");
    let mut filled = 0;
    while filled < len {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    let mut rest = Vec::new();
    file.read_to_end(&mut rest)?;
    if filled == len && rest.is_empty() {
        return Ok(contents);
    }
    let mut resized = buffer[..filled].to_vec();
    resized.extend_from_slice(&rest);
    Ok(resized.into())
}

/// `relative` as a `/`-separated UTF-8 string, refusing names that are not UTF-8.
fn relative_utf8(relative: &Path) -> Result<String> {
    let mut parts = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(name) => parts.push(name.to_str().ok_or_else(|| {
                anyhow!(
                    "refusing {}: the name {name:?} is not UTF-8; rename it",
                    relative.to_string_lossy()
                )
            })?),
            other => bail!(
                "unexpected path component {other:?} in {}",
                relative.display()
            ),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that grew or shrank between `stat` and the read is kept exactly as read.
    #[test]
    fn read_shared_keeps_what_was_read_when_the_size_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let contents: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&path, &contents).unwrap();
        for stat_len in [0, 1, 299_999, 300_000, 300_001, 1 << 20] {
            let mut file = fs::File::open(&path).unwrap();
            let read = read_shared(&mut file, stat_len).unwrap();
            assert_eq!(&read[..], &contents[..], "stat said {stat_len} bytes");
        }
    }

    #[test]
    fn paths_outside_usr_and_opt_are_refused() {
        assert!(check_path("usr/bin/keepalived").is_ok());
        assert!(check_path("opt/foo").is_ok());
        let err = check_path("etc/keepalived/keepalived.conf")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("etc/keepalived/keepalived.conf") && err.contains("outside usr/ and opt/"),
            "{err}"
        );
    }

    #[test]
    fn merged_usr_symlinks_are_refused() {
        for path in ["usr/sbin", "usr/sbin/keepalived"] {
            let err = check_path(path).unwrap_err().to_string();
            assert!(err.contains(path) && err.contains("usr/bin/"), "{err}");
        }
        assert!(check_path("usr/sbinx").is_ok());
    }

    #[test]
    fn bad_components_are_refused() {
        for path in [
            "",
            "usr//bin",
            "usr/bin/",
            "/usr/bin",
            "usr/./bin",
            "usr/../etc",
            "usr/a\nb",
        ] {
            assert!(check_path(path).is_err(), "{path:?} accepted");
        }
    }

    #[test]
    fn symlink_targets_must_stay_inside() {
        assert!(check_symlink_target("usr/bin/k", "../lib/k/k").is_ok());
        assert!(check_symlink_target("usr/bin/k", "/usr/lib/k").is_ok());
        assert!(check_symlink_target("usr/bin/k", "k2").is_ok());
        assert!(check_symlink_target("opt/a/b", "../../usr/bin/x").is_ok());
        for target in [
            "../../../etc/passwd",
            "/etc/passwd",
            "../../etc",
            "/",
            "",
            "../..",
        ] {
            let err = check_symlink_target("usr/bin/k", target)
                .unwrap_err()
                .to_string();
            assert!(err.contains("usr/bin/k"), "{err}");
        }
    }

    #[test]
    fn special_bits_are_refused() {
        let err = check_entry("usr/bin/x", EntryKind::File, 0o4755, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("setuid") && err.contains("usr/bin/x"), "{err}");
        assert!(check_entry("usr/bin/x", EntryKind::File, 0o2755, None).is_err());
        assert!(check_entry("usr/share", EntryKind::Dir, 0o1777, None).is_err());
        assert!(check_entry("usr", EntryKind::File, 0o644, None).is_err());
        assert!(check_entry("usr/bin/x", EntryKind::File, 0o700, None).is_ok());
    }

    #[test]
    fn host_directories_must_stay_directories() {
        let err = check_entry("usr/lib", EntryKind::Symlink, 0o777, Some("/opt/lib"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("usr/lib") && err.contains("hide"), "{err}");
        assert!(check_entry("usr/share", EntryKind::File, 0o644, None).is_err());
        assert!(check_entry("usr/lib", EntryKind::Dir, 0o755, None).is_ok());
        assert!(check_entry("usr/lib/foo", EntryKind::Symlink, 0o777, Some("bar")).is_ok());
    }

    #[test]
    fn conflicting_sources_are_refused_identical_ones_merge() {
        let mut payload = Payload::new();
        payload
            .insert(
                "usr/bin/a",
                Node::File(FileData::new(b"x".to_vec(), true)),
                "one",
            )
            .unwrap();
        payload
            .insert(
                "usr/bin/a",
                Node::File(FileData::new(b"x".to_vec(), true)),
                "two",
            )
            .unwrap();
        let err = payload
            .insert(
                "usr/bin/a",
                Node::File(FileData::new(b"x".to_vec(), false)),
                "three",
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("usr/bin/a") && err.contains("one") && err.contains("three"),
            "{err}"
        );
        let err = payload
            .insert("usr/bin/a/b", Node::Dir, "four")
            .unwrap_err()
            .to_string();
        assert!(err.contains("usr/bin/a"), "{err}");
        let paths: Vec<_> = payload.entries().map(|(p, _)| p.to_string()).collect();
        assert_eq!(paths, ["usr", "usr/bin", "usr/bin/a"]);
    }
}
