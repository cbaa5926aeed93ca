//! Reading SquashFS images that may be hostile: `verify`, `inspect` and `diff` run on files
//! downloaded from anywhere, so opening one must end in a listing or a clear error, never in a
//! panic, a hang or an allocation the file's size does not justify.
//!
//! backhand trusts several header fields: a file inode's size decides how many block sizes it
//! pre-allocates (up to 2 GiB), a metadata block may decompress to 4 MiB instead of 8 KiB,
//! directory depth becomes recursion depth and every entry clones its full path. So before
//! backhand sees an image, [`Image::from_reader`] checks the superblock, decompresses the inode
//! and directory tables itself under a budget, walks every inode and directory entry with
//! explicit bounds, and only then lets backhand parse the same bytes. backhand runs inside
//! `catch_unwind` as a last line of defence; a panic there is reported as a malformed image.
//! File contents are hashed under a total budget, since sparse blocks cost no bytes on disk.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use backhand::{FilesystemReader, InnerNode, Squashfs, SquashfsFileReader, SuperBlock};
use sha2::{Digest, Sha256};

use crate::hex;

mod backhand_errors;
mod cursor;
mod directories;
mod inodes;
mod limits;
mod metadata;
mod precheck;
mod regions;
mod superblock;

use self::backhand_errors::describe;
pub use self::limits::Limits;
use self::precheck::{precheck, Checked};
pub use self::regions::Region;
pub use self::superblock::compressor_name;
use self::superblock::squashfs_kind;

/// What an entry is. Device nodes, fifos and sockets are listed so `inspect` can show a foreign
/// image as it is; `verify` refuses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    Dir,
    File,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl EntryKind {
    /// The name used in manifests and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Dir => "dir",
            EntryKind::File => "file",
            EntryKind::Symlink => "symlink",
            EntryKind::CharDevice => "char-device",
            EntryKind::BlockDevice => "block-device",
            EntryKind::Fifo => "fifo",
            EntryKind::Socket => "socket",
        }
    }

    /// The type letter `ls -l` and `unsquashfs -lls` print.
    pub fn ls_letter(self) -> char {
        match self {
            EntryKind::Dir => 'd',
            EntryKind::File => '-',
            EntryKind::Symlink => 'l',
            EntryKind::CharDevice => 'c',
            EntryKind::BlockDevice => 'b',
            EntryKind::Fifo => 'p',
            EntryKind::Socket => 's',
        }
    }
}

/// One entry as stored in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    /// Relative to the image root, `/`-separated, no leading `/`; empty for the root itself.
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits including setuid, setgid and sticky (`0o7777` at most).
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u32,
    /// Files: content length.
    pub size: Option<u64>,
    /// Files: lowercase hex sha256 of the content.
    pub sha256: Option<String>,
    /// Symlinks: the target.
    pub target: Option<String>,
    /// Device nodes: the device number as stored.
    pub device: Option<u32>,
}

/// An opened, fully checked image: its superblock, every entry with content hashes, and a
/// handle to read small files (extension-release) again.
pub struct Image {
    pub file_size: u64,
    pub superblock: SuperBlock,
    /// The BCJ filter an xz options block declares: `none` (also for other compressors), `x86`,
    /// `arm64`, or `other` for any other combination of squashfs-tools' filter bits.
    pub xz_filter: &'static str,
    /// The root directory (path "").
    pub root: ImageEntry,
    /// Every other entry, sorted by path in byte order.
    pub entries: Vec<ImageEntry>,
    /// Where each part of the file lies, sorted by offset, covering the whole file.
    pub regions: Vec<Region>,
    fs: FilesystemReader<'static>,
    /// Path -> index into `fs.root.nodes`, for files.
    file_nodes: HashMap<String, usize>,
}

impl Image {
    /// Opens the image at `path` with [`Limits::DEFAULT`]. Errors name the file and what is wrong.
    pub fn open(path: &Path) -> Result<Image> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("cannot stat {}", path.display()))?
            .len();
        Image::from_reader(
            BufReader::with_capacity(1 << 16, file),
            len,
            &Limits::DEFAULT,
        )
        .with_context(|| format!("{} is not a readable SquashFS image", path.display()))
    }

    /// Checks and reads an image of `len` bytes from `reader`, which must start at the image.
    pub fn from_reader<R>(mut reader: R, len: u64, limits: &Limits) -> Result<Image>
    where
        R: BufRead + Seek + Send + 'static,
    {
        let checked = precheck(&mut reader, len, limits)?;
        reader.rewind().context("cannot rewind the image")?;

        let kind = squashfs_kind();
        let parsed = catch_unwind(AssertUnwindSafe(move || {
            Squashfs::from_reader_with_offset_and_kind(reader, 0, kind)
                .and_then(Squashfs::into_filesystem_reader)
        }));
        let fs = match parsed {
            Ok(Ok(fs)) => fs,
            Ok(Err(err)) => bail!("the SquashFS reader rejected it: {}", describe(&err)),
            Err(_) => bail!("the SquashFS reader crashed on it (the image is malformed)"),
        };
        build_image(fs, checked, len, limits)
    }

    /// Reads one whole file of the image, refusing files above `max` bytes.
    pub fn read_file(&self, path: &str, max: u64) -> Result<Vec<u8>> {
        let index = *self
            .file_nodes
            .get(path)
            .ok_or_else(|| anyhow!("{path} is not a regular file in the image"))?;
        let InnerNode::File(file) = &self.fs.root.nodes[index].inner else {
            bail!("{path} is not a regular file in the image");
        };
        let len = file.file_len() as u64;
        if len > max {
            bail!("{path} is {len} bytes, more than the {max} bytes expected");
        }
        let mut content = Vec::with_capacity(len as usize);
        read_content(&self.fs, file, path, |chunk| {
            content.extend_from_slice(chunk)
        })?;
        Ok(content)
    }

    /// The entry at `path` ("" for the root).
    pub fn entry(&self, path: &str) -> Option<&ImageEntry> {
        if path.is_empty() {
            return Some(&self.root);
        }
        self.entries
            .binary_search_by(|e| e.path.as_bytes().cmp(path.as_bytes()))
            .ok()
            .map(|i| &self.entries[i])
    }

    pub fn compression(&self) -> &'static str {
        compressor_name(self.superblock.compressor)
    }
}

/// Turns backhand's nodes into [`ImageEntry`]s, hashing every file under the content budget.
fn build_image(
    fs: FilesystemReader<'static>,
    checked: Checked,
    len: u64,
    limits: &Limits,
) -> Result<Image> {
    if fs.root.nodes.len() != checked.entry_count + 1 {
        bail!(
            "the SquashFS reader found {} entries where the directory walk found {}",
            fs.root.nodes.len().saturating_sub(1),
            checked.entry_count
        );
    }
    let declared: u64 = fs
        .root
        .nodes
        .iter()
        .filter_map(|node| match &node.inner {
            InnerNode::File(file) => Some(file.file_len() as u64),
            _ => None,
        })
        .sum();
    if declared > limits.max_content_bytes {
        bail!(
            "its files declare {declared} bytes of content; this tool reads at most {}",
            limits.max_content_bytes
        );
    }

    let mut root = None;
    let mut entries = Vec::with_capacity(checked.entry_count);
    let mut file_nodes = HashMap::new();
    for (index, node) in fs.root.nodes.iter().enumerate() {
        let full = node
            .fullpath
            .to_str()
            .ok_or_else(|| anyhow!("it holds a name that is not UTF-8: {:?}", node.fullpath))?;
        let path = full.strip_prefix('/').unwrap_or(full).to_string();
        let header = node.header;
        let mut entry = ImageEntry {
            path,
            kind: EntryKind::Dir,
            mode: header.permissions & 0o7777,
            uid: header.uid,
            gid: header.gid,
            mtime: header.mtime,
            size: None,
            sha256: None,
            target: None,
            device: None,
        };
        match &node.inner {
            InnerNode::Dir(_) => {}
            InnerNode::File(file) => {
                entry.kind = EntryKind::File;
                let mut hasher = Sha256::new();
                let size = read_content(&fs, file, &entry.path, |chunk| hasher.update(chunk))?;
                entry.size = Some(size);
                entry.sha256 = Some(hex(&hasher.finalize()));
                file_nodes.insert(entry.path.clone(), index);
            }
            InnerNode::Symlink(link) => {
                entry.kind = EntryKind::Symlink;
                let target = link.link.to_str().ok_or_else(|| {
                    anyhow!("the symlink {} has a target that is not UTF-8", entry.path)
                })?;
                entry.target = Some(target.to_string());
            }
            InnerNode::CharacterDevice(dev) => {
                entry.kind = EntryKind::CharDevice;
                entry.device = Some(dev.device_number);
            }
            InnerNode::BlockDevice(dev) => {
                entry.kind = EntryKind::BlockDevice;
                entry.device = Some(dev.device_number);
            }
            InnerNode::NamedPipe => entry.kind = EntryKind::Fifo,
            InnerNode::Socket => entry.kind = EntryKind::Socket,
        }
        if entry.path.is_empty() {
            root = Some(entry);
        } else {
            entries.push(entry);
        }
    }
    let root = root.ok_or_else(|| anyhow!("it has no root directory"))?;
    entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    Ok(Image {
        file_size: len,
        superblock: checked.superblock,
        xz_filter: checked.xz_filter,
        root,
        entries,
        regions: checked.regions,
        fs,
        file_nodes,
    })
}

/// Streams one file's content to `sink`, checking that exactly the declared length arrives.
fn read_content(
    fs: &FilesystemReader<'static>,
    file: &SquashfsFileReader,
    path: &str,
    mut sink: impl FnMut(&[u8]),
) -> Result<u64> {
    let declared = file.file_len() as u64;
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<u64> {
        let mut reader = fs
            .file(file)
            .reader_checked()
            .map_err(|err| anyhow!("{path}: {}", describe(&err)))?;
        let mut buf = vec![0u8; 1 << 17];
        let mut total = 0u64;
        loop {
            let n = reader
                .read(&mut buf)
                .with_context(|| format!("cannot read the content of {path}"))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            sink(&buf[..n]);
        }
        Ok(total)
    }));
    let total = match outcome {
        Ok(result) => result?,
        Err(_) => bail!("the SquashFS reader crashed reading {path} (the image is malformed)"),
    };
    if total != declared {
        bail!(
            "{path} declares {declared} bytes but {total} could be read (truncated or corrupted)"
        );
    }
    Ok(total)
}
