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
//!
//! Each file checks one part of the format, in the order they run: `superblock`, `metadata`
//! (blocks and tables under one budget), `inodes`, `directories` and `regions` (the byte map
//! `diff` uses); `precheck` runs them in that order. Once backhand has parsed, `entries` lists
//! and hashes what it found, reading files through `content`; [`listing`] shows an entry as
//! `unsquashfs -lls` and JSON do. Public are [`Image`], [`Limits`], the entry and region types,
//! [`compressor_name`], `listing` and [`report`], what `inspect` shows of an image.

mod backhand_errors;
mod content;
mod cursor;
mod directories;
mod entries;
mod inodes;
mod limits;
pub mod listing;
mod metadata;
mod precheck;
mod regions;
pub mod report;
mod superblock;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use backhand::{FilesystemReader, InnerNode, Squashfs, SuperBlock};

use self::backhand_errors::describe;
use self::content::read_content;
pub use self::entries::{FileType, ImageEntry};
pub use self::limits::Limits;
pub use self::regions::Region;
pub use self::superblock::compressor_name;
use crate::disk::ddi::{self, Ddi};

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
    /// Where each part of the file lies, sorted by offset, covering the whole file (for a DDI:
    /// the root partition, offsets relative to its start).
    pub regions: Vec<Region>,
    /// The disk image around the SquashFS, when the file is a DDI.
    pub ddi: Option<Ddi>,
    fs: FilesystemReader<'static>,
    /// Path -> index into `fs.root.nodes`, for files.
    file_nodes: HashMap<String, usize>,
}

impl Image {
    /// Opens the image at `path` with [`Limits::DEFAULT`]: a bare SquashFS, or a DDI whose root
    /// partition is read as the SquashFS (its structure is checked; its hash tree is `verify`'s
    /// job). Errors name the file and what is wrong.
    pub fn open(path: &Path) -> Result<Image> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Image::open_file(file, path)
    }

    /// [`Image::open`] of a file already open (`path` names it in errors): whoever opened it
    /// checks these bytes and no others, even if the path is given another file meanwhile.
    pub fn open_file(mut file: File, path: &Path) -> Result<Image> {
        let len = file
            .metadata()
            .with_context(|| format!("cannot stat {}", path.display()))?
            .len();
        if ddi::looks_like_ddi(&mut file)
            .with_context(|| format!("cannot read {}", path.display()))?
        {
            let layout = ddi::read(&mut file, len)
                .with_context(|| format!("{} is not a readable DDI", path.display()))?;
            let reader = layout.root_reader(file);
            let mut image = Image::from_reader(reader, layout.root.size(), &Limits::DEFAULT)
                .with_context(|| {
                    format!(
                        "the root partition of {} is not a readable SquashFS image",
                        path.display()
                    )
                })?;
            image.ddi = Some(layout);
            return Ok(image);
        }
        file.rewind()
            .with_context(|| format!("cannot read {}", path.display()))?;
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
        let checked = precheck::precheck(&mut reader, len, limits)?;
        reader.rewind().context("cannot rewind the image")?;

        let kind = superblock::squashfs_kind();
        let parsed = catch_unwind(AssertUnwindSafe(move || {
            Squashfs::from_reader_with_offset_and_kind(reader, 0, kind)
                .and_then(Squashfs::into_filesystem_reader)
        }));
        let fs = match parsed {
            Ok(Ok(fs)) => fs,
            Ok(Err(err)) => bail!("the SquashFS reader rejected it: {}", describe(&err)),
            Err(_) => bail!("the SquashFS reader crashed on it (the image is malformed)"),
        };
        let listed = entries::from_nodes(&fs, checked.entry_count, limits)?;
        Ok(Image {
            file_size: len,
            superblock: checked.superblock,
            xz_filter: checked.xz_filter,
            root: listed.root,
            entries: listed.entries,
            regions: checked.regions,
            ddi: None,
            fs,
            file_nodes: listed.file_nodes,
        })
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
