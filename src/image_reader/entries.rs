//! What the commands see of an image: one [`ImageEntry`] per path, built from backhand's parsed
//! nodes only after the precheck's own directory walk agrees with backhand on how many there are,
//! and with every file hashed within the content budget (sparse blocks cost no disk but do cost
//! reading).

use std::collections::HashMap;

use anyhow::{anyhow, bail, Result};
use backhand::{FilesystemReader, InnerNode};
use sha2::{Digest, Sha256};

use super::content::read_content;
use super::limits::Limits;
use crate::hex;

/// What an entry of an image is, as its inode says: besides the three kinds a payload and a
/// manifest hold ([`crate::payload::EntryKind`]), device nodes, fifos and sockets are listed so
/// `inspect` can show a foreign image as it is; `verify` refuses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileType {
    Dir,
    File,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl FileType {
    /// The name used in manifests and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::Dir => "dir",
            FileType::File => "file",
            FileType::Symlink => "symlink",
            FileType::CharDevice => "char-device",
            FileType::BlockDevice => "block-device",
            FileType::Fifo => "fifo",
            FileType::Socket => "socket",
        }
    }

    /// The type letter `ls -l` and `unsquashfs -lls` print.
    pub fn ls_letter(self) -> char {
        match self {
            FileType::Dir => 'd',
            FileType::File => '-',
            FileType::Symlink => 'l',
            FileType::CharDevice => 'c',
            FileType::BlockDevice => 'b',
            FileType::Fifo => 'p',
            FileType::Socket => 's',
        }
    }
}

/// One entry as stored in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    /// Relative to the image root, `/`-separated, no leading `/`; empty for the root itself.
    pub path: String,
    pub kind: FileType,
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

/// backhand's nodes as entries: the root apart, the rest sorted by path in byte order.
pub(super) struct Entries {
    pub(super) root: ImageEntry,
    pub(super) entries: Vec<ImageEntry>,
    /// Path -> index into `fs.root.nodes`, for files.
    pub(super) file_nodes: HashMap<String, usize>,
}

/// Turns backhand's nodes into [`ImageEntry`]s, hashing every file under the content budget.
/// `walked` is the number of entries below the root the precheck's directory walk counted.
pub(super) fn from_nodes(
    fs: &FilesystemReader<'static>,
    walked: usize,
    limits: &Limits,
) -> Result<Entries> {
    if fs.root.nodes.len() != walked + 1 {
        bail!(
            "the SquashFS reader found {} entries where the directory walk found {}",
            fs.root.nodes.len().saturating_sub(1),
            walked
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
    let mut entries = Vec::with_capacity(walked);
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
            kind: FileType::Dir,
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
                entry.kind = FileType::File;
                let mut hasher = Sha256::new();
                let size = read_content(fs, file, &entry.path, |chunk| hasher.update(chunk))?;
                entry.size = Some(size);
                entry.sha256 = Some(hex(&hasher.finalize()));
                file_nodes.insert(entry.path.clone(), index);
            }
            InnerNode::Symlink(link) => {
                entry.kind = FileType::Symlink;
                let target = link.link.to_str().ok_or_else(|| {
                    anyhow!("the symlink {} has a target that is not UTF-8", entry.path)
                })?;
                entry.target = Some(target.to_string());
            }
            InnerNode::CharacterDevice(dev) => {
                entry.kind = FileType::CharDevice;
                entry.device = Some(dev.device_number);
            }
            InnerNode::BlockDevice(dev) => {
                entry.kind = FileType::BlockDevice;
                entry.device = Some(dev.device_number);
            }
            InnerNode::NamedPipe => entry.kind = FileType::Fifo,
            InnerNode::Socket => entry.kind = FileType::Socket,
        }
        if entry.path.is_empty() {
            root = Some(entry);
        } else {
            entries.push(entry);
        }
    }
    let root = root.ok_or_else(|| anyhow!("it has no root directory"))?;
    entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    Ok(Entries {
        root,
        entries,
        file_nodes,
    })
}
