//! The compressor choice (xz, zstd or gzip, with their fixed levels) and block compression for
//! backhand's writer: parallel, with output identical to compressing the blocks one after
//! another. The writer (`squashfs::writer`) uses this module; this module knows nothing of the
//! writer.
//!
//! backhand's `FilesystemWriter::write` compresses every data and fragment block on the calling
//! thread, one at a time: with xz that is several times slower than mksquashfs on two cores. It
//! does, however, take its compressor through the `CompressionAction` trait. So before the write,
//! [`plan`] predicts the blocks backhand will compress, in order (the same walk over the sorted
//! files, the same block splitting and fragment packing); worker threads compress them ahead;
//! and [`PlannedCompressor::compress`] hands backhand the precomputed result when the block it
//! asks for is byte-for-byte the one planned, and compresses it itself otherwise.
//!
//! Why the output cannot depend on the number of cores or on timing: every block, planned or
//! not, goes through the same pure function [`compress_block`] of its bytes and the settings; a
//! precomputed result is used only after comparing the requested block with the planned one;
//! and backhand writes results in its own order. A wrong prediction only costs speed.
//!
//! [`compress_block`] encodes xz as mksquashfs does, one single-threaded .xz stream per block
//! (preset 6, dictionary = block size, CRC32), rather than through backhand's default, which
//! starts liblzma's multi-threaded encoder for every 128 KiB block; zstd reuses one context per
//! thread instead of creating one per block. Same formats, less overhead. gzip uses backhand's
//! encoder (zlib-rs, level 9, window 15).

use std::cell::RefCell;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use backhand::compression::{CompressionAction, CompressionOptions, Compressor, DefaultCompressor};
use backhand::kind::Kind;
use backhand::{BackhandError, FilesystemCompressor, SuperBlock};
use clap::ValueEnum;
use liblzma::stream::{Action, Check, Filters, LzmaOptions, Status, Stream};

use crate::names::{self, Arch};
use crate::payload::{Node, Payload};

/// zstd level, mksquashfs's default (15): images are written once and read on every boot.
pub const ZSTD_LEVEL: u32 = 15;

/// xz preset (6, liblzma's default and mksquashfs's); the dictionary is the block size.
/// gzip uses backhand's settings: zlib level 9, window 15, as mksquashfs.
pub const XZ_LEVEL: u32 = 6;

/// The SquashFS compressors the tool writes. All come from code pinned in Cargo.lock and built
/// from source (liblzma-sys and zstd-sys vendored, zlib-rs in Rust), never from system libraries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Compression {
    #[default]
    Xz,
    Zstd,
    Gzip,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        names::write_choice(self, f)
    }
}

impl Compression {
    /// The backhand compressor settings. xz without a BCJ filter and gzip use backhand's defaults
    /// (no options block in the image, like mksquashfs without -X options); xz with a filter
    /// records it and the dictionary size (the block size), as mksquashfs -Xbcj does; zstd
    /// records its level.
    pub(crate) fn filesystem_compressor(
        self,
        block_size: u32,
        xz_filter: XzFilter,
    ) -> FilesystemCompressor {
        let (id, options) = match self {
            Compression::Xz if xz_filter == XzFilter::None => (Compressor::Xz, None),
            Compression::Xz => (Compressor::Xz, Some(xz_options(block_size, xz_filter))),
            Compression::Gzip => (Compressor::Gzip, None),
            Compression::Zstd => (
                Compressor::Zstd,
                Some(CompressionOptions::Zstd(backhand::compression::Zstd {
                    compression_level: ZSTD_LEVEL,
                })),
            ),
        };
        FilesystemCompressor::new(id, options).expect("valid compressor settings")
    }
}

/// The xz options block: dictionary size and the filter bit (mksquashfs's numbering).
fn xz_options(block_size: u32, xz_filter: XzFilter) -> CompressionOptions {
    CompressionOptions::Xz(backhand::compression::Xz {
        dictionary_size: block_size,
        filters: backhand::v4::compressor::XzFilter::new(xz_filter.options_bit()),
        bit_opts: None,
        fb: None,
    })
}

/// A BCJ filter: it turns the relative branch targets of one architecture's machine code into
/// absolute ones, so xz finds more repeats. Like mksquashfs -Xbcj, every data block is
/// compressed with and without it and the smaller result is kept, so data that is not machine
/// code costs only compression time. Metadata blocks never use it. The kernel's SquashFS
/// decoder needs the matching CONFIG_XZ_DEC_* (x86: every kernel; arm64: Linux 6.12 and later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum XzFilter {
    None,
    X86,
    Arm64,
}

impl fmt::Display for XzFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        names::write_choice(self, f)
    }
}

impl XzFilter {
    /// The filter for an image of `arch` that the kernels of every supported Flatcar release
    /// decode: x86 BCJ (in every kernel's xz decoder; Flatcar's kernel config leaves it on) for
    /// x86-64; none for arm64, whose BCJ decoder exists from Linux 6.12 on, while Flatcar's
    /// LTS-2024 stream (4081) runs 6.6 and was still maintained in 2026 beside its successor,
    /// 4593 (6.12).
    pub fn default_for(arch: Arch) -> XzFilter {
        match arch {
            Arch::X86_64 => XzFilter::X86,
            Arch::Arm64 => XzFilter::None,
        }
    }

    /// The bit squashfs-tools' xz options block uses for the filter.
    fn options_bit(self) -> u32 {
        match self {
            XzFilter::None => 0,
            XzFilter::X86 => 0x01,
            XzFilter::Arm64 => 0x40,
        }
    }
}

/// The compressor installed into backhand's `Kind`.
pub struct PlannedCompressor;

static PLANNED_COMPRESSOR: PlannedCompressor = PlannedCompressor;

/// A little-endian SquashFS 4.0 kind that compresses through [`PlannedCompressor`].
pub fn kind() -> Kind {
    Kind::new_v4(&PLANNED_COMPRESSOR)
}

/// A slice of a file's contents.
#[derive(Clone)]
struct Piece {
    data: Arc<[u8]>,
    range: Range<usize>,
}

impl Piece {
    fn bytes(&self) -> &[u8] {
        &self.data[self.range.clone()]
    }
}

/// One block backhand will compress: a data block (one piece) or a fragment block (the tails
/// of several small files).
struct Job {
    pieces: Vec<Piece>,
    len: usize,
}

impl Job {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for piece in &self.pieces {
            out.extend_from_slice(piece.bytes());
        }
        out
    }

    fn equals(&self, mut bytes: &[u8]) -> bool {
        if bytes.len() != self.len {
            return false;
        }
        for piece in &self.pieces {
            let (head, rest) = bytes.split_at(piece.range.len());
            if head != piece.bytes() {
                return false;
            }
            bytes = rest;
        }
        true
    }
}

/// The blocks backhand will compress for a payload, in order.
pub struct Plan {
    compression: Compression,
    xz_filter: XzFilter,
    compressor: FilesystemCompressor,
    /// `compressor` in Debug form: backhand's settings type has no `PartialEq`.
    compressor_id: String,
    block_size: u32,
    jobs: Vec<Job>,
}

impl Plan {
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

/// Predicts backhand 0.25's data writer (`DataWriter::add_bytes` and `finalize`): files in node
/// order (backhand sorts by `Path`, i.e. component by component); an empty file stores nothing;
/// a file shorter than a block is appended to the current fragment block, which is compressed
/// first when the file would not fit; a longer file is cut into blocks, the last one possibly
/// short, and all-zero blocks become holes without compression; the last fragment block is
/// compressed at the end even when empty.
pub fn plan(
    payload: &Payload,
    compression: Compression,
    block_size: u32,
    xz_filter: XzFilter,
) -> Plan {
    let block = block_size as usize;
    let mut files: Vec<(&str, &crate::payload::FileData)> = payload
        .entries()
        .filter_map(|(path, node)| match node {
            Node::File(file) => Some((path, file)),
            _ => None,
        })
        .collect();
    files.sort_by(|a, b| Path::new(a.0).cmp(Path::new(b.0)));

    let mut jobs = Vec::new();
    let mut fragment = Job {
        pieces: Vec::new(),
        len: 0,
    };
    for (_, file) in files {
        let len = file.contents.len();
        if len == 0 {
            continue;
        }
        if len < block {
            if fragment.len + len > block {
                jobs.push(std::mem::replace(
                    &mut fragment,
                    Job {
                        pieces: Vec::new(),
                        len: 0,
                    },
                ));
            }
            fragment.pieces.push(Piece {
                data: file.contents.clone(),
                range: 0..len,
            });
            fragment.len += len;
            continue;
        }
        for start in (0..len).step_by(block) {
            let range = start..(start + block).min(len);
            if file.contents[range.clone()].iter().all(|b| *b == 0) {
                continue;
            }
            let len = range.len();
            jobs.push(Job {
                pieces: vec![Piece {
                    data: file.contents.clone(),
                    range,
                }],
                len,
            });
        }
    }
    jobs.push(fragment);
    let compressor = compression.filesystem_compressor(block_size, xz_filter);
    Plan {
        compression,
        xz_filter,
        compressor,
        compressor_id: format!("{compressor:?}"),
        block_size,
        jobs,
    }
}

/// How far the workers may run ahead of backhand, in blocks per worker: enough to keep every
/// core busy, little enough to bound memory.
const LOOKAHEAD_PER_WORKER: usize = 4;

/// A compressed block once a worker has produced it (or the worker's error).
type Compressed = Option<Result<Vec<u8>, String>>;

struct Shared {
    plan: Plan,
    results: Mutex<Vec<Compressed>>,
    ready: Condvar,
    next_job: AtomicUsize,
    consumed: AtomicUsize,
    stop: AtomicBool,
    window: usize,
}

struct Consumer {
    shared: Arc<Shared>,
    next: usize,
}

thread_local! {
    /// The plan of the write running on this thread, if any. Thread-local so that concurrent
    /// builds in one process (tests) never see each other's blocks.
    static ACTIVE: RefCell<Option<Consumer>> = const { RefCell::new(None) };
}

/// How a write used its plan: tests check that every planned block was taken, i.e. that the
/// prediction matches what backhand asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanUse {
    pub planned: usize,
    pub used: usize,
}

/// Runs `write` (a backhand write on this thread) while worker threads compress `plan` ahead.
pub fn with_plan<T>(plan: Plan, write: impl FnOnce() -> T) -> (T, PlanUse) {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let count = plan.len();
    let shared = Arc::new(Shared {
        plan,
        results: Mutex::new((0..count).map(|_| None).collect()),
        ready: Condvar::new(),
        next_job: AtomicUsize::new(0),
        consumed: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        window: workers * LOOKAHEAD_PER_WORKER,
    });
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let shared = Arc::clone(&shared);
            scope.spawn(move || work(&shared));
        }
        ACTIVE.with(|active| {
            *active.borrow_mut() = Some(Consumer {
                shared: Arc::clone(&shared),
                next: 0,
            })
        });
        let output = write();
        let used = ACTIVE
            .with(|active| active.borrow_mut().take())
            .map_or(0, |c| c.next);
        shared.stop.store(true, Ordering::SeqCst);
        let _guard = shared.results.lock().unwrap_or_else(|e| e.into_inner());
        shared.ready.notify_all();
        (
            output,
            PlanUse {
                planned: count,
                used,
            },
        )
    })
}

fn work(shared: &Shared) {
    while !shared.stop.load(Ordering::SeqCst) {
        let index = shared.next_job.fetch_add(1, Ordering::SeqCst);
        if index >= shared.plan.jobs.len() {
            return;
        }
        {
            let mut results = shared.results.lock().unwrap_or_else(|e| e.into_inner());
            while index >= shared.consumed.load(Ordering::SeqCst) + shared.window
                && !shared.stop.load(Ordering::SeqCst)
            {
                results = shared
                    .ready
                    .wait(results)
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let input = shared.plan.jobs[index].bytes();
        // A panic must still fill the slot, or backhand's thread would wait for it forever.
        let plan = &shared.plan;
        let output = std::panic::catch_unwind(|| {
            compress_block(
                plan.compression,
                &input,
                plan.compressor,
                plan.block_size,
                plan.xz_filter,
            )
        })
        .map_err(|_| "compressor panicked".to_string())
        .and_then(|result| result.map_err(|e| e.to_string()));
        let mut results = shared.results.lock().unwrap_or_else(|e| e.into_inner());
        results[index] = Some(output);
        shared.ready.notify_all();
    }
}

impl Consumer {
    /// The precomputed result for `bytes` if it is the next planned block.
    fn take(
        &mut self,
        bytes: &[u8],
        fc: &FilesystemCompressor,
        block_size: u32,
    ) -> Option<Vec<u8>> {
        let shared = &self.shared;
        let job = shared.plan.jobs.get(self.next)?;
        if block_size != shared.plan.block_size
            || format!("{fc:?}") != shared.plan.compressor_id
            || !job.equals(bytes)
        {
            return None;
        }
        let mut results = shared.results.lock().unwrap_or_else(|e| e.into_inner());
        let result = loop {
            if let Some(result) = results[self.next].take() {
                break result;
            }
            results = shared
                .ready
                .wait(results)
                .unwrap_or_else(|e| e.into_inner());
        };
        self.next += 1;
        shared.consumed.store(self.next, Ordering::SeqCst);
        shared.ready.notify_all();
        // A failed precomputation is retried on this thread, which reports the error itself.
        result.ok()
    }
}

impl CompressionAction for PlannedCompressor {
    type Compressor = Compressor;
    type FilesystemCompressor = FilesystemCompressor;
    type SuperBlock = SuperBlock;
    type Error = BackhandError;

    fn decompress(
        &self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        compressor: Self::Compressor,
    ) -> Result<(), Self::Error> {
        DefaultCompressor.decompress(bytes, out, compressor)
    }

    fn compress(
        &self,
        bytes: &[u8],
        fc: Self::FilesystemCompressor,
        block_size: u32,
    ) -> Result<Vec<u8>, Self::Error> {
        let (planned, unfiltered) = ACTIVE.with(|active| {
            let mut active = active.borrow_mut();
            let Some(consumer) = active.as_mut() else {
                return (None, fc);
            };
            let plan = &consumer.shared.plan;
            let unfiltered = plan
                .compression
                .filesystem_compressor(plan.block_size, XzFilter::None);
            (consumer.take(bytes, &fc, block_size), unfiltered)
        });
        match planned {
            Some(output) => Ok(output),
            // Metadata blocks, and any block the plan did not predict: never a BCJ filter (it
            // would only hurt on metadata, and mksquashfs does not filter it either).
            None => DefaultCompressor.compress(bytes, unfiltered, block_size),
        }
    }

    fn compression_options(
        &self,
        superblock: &mut Self::SuperBlock,
        kind: &Kind,
        fs_compressor: Self::FilesystemCompressor,
    ) -> Result<Option<Vec<u8>>, Self::Error> {
        DefaultCompressor.compression_options(superblock, kind, fs_compressor)
    }
}

/// Compresses one block. Pure: the output depends only on the arguments.
fn compress_block(
    compression: Compression,
    bytes: &[u8],
    fc: FilesystemCompressor,
    block_size: u32,
    xz_filter: XzFilter,
) -> Result<Vec<u8>, BackhandError> {
    match compression {
        Compression::Xz => {
            let plain = xz_block(bytes, block_size, XzFilter::None)?;
            if xz_filter == XzFilter::None {
                return Ok(plain);
            }
            // The smaller of with and without the filter; a tie keeps the plain block.
            let filtered = xz_block(bytes, block_size, xz_filter)?;
            Ok(if filtered.len() < plain.len() {
                filtered
            } else {
                plain
            })
        }
        Compression::Zstd => zstd_block(bytes),
        Compression::Gzip => DefaultCompressor.compress(bytes, fc, block_size),
    }
}

fn xz_block(bytes: &[u8], block_size: u32, xz_filter: XzFilter) -> Result<Vec<u8>, BackhandError> {
    let xz_error = |e: liblzma::stream::Error| {
        BackhandError::StdIo(std::io::Error::other(format!("xz encoder: {e}")))
    };
    let mut options = LzmaOptions::new_preset(XZ_LEVEL).map_err(xz_error)?;
    options.dict_size(block_size);
    let mut filters = Filters::new();
    match xz_filter {
        XzFilter::None => {}
        XzFilter::X86 => {
            filters.x86();
        }
        // As mksquashfs: arm64 instructions are 4-byte aligned, so LZMA2 models literals and
        // positions on that alignment.
        XzFilter::Arm64 => {
            filters.arm64();
            options.literal_position_bits(2);
            options.literal_context_bits(2);
        }
    }
    filters.lzma2(&options);
    let mut stream = Stream::new_stream_encoder(&filters, Check::Crc32).map_err(xz_error)?;
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 8 + 4096);
    loop {
        let consumed = stream.total_in() as usize;
        match stream
            .process_vec(&bytes[consumed..], &mut out, Action::Finish)
            .map_err(xz_error)?
        {
            Status::StreamEnd => return Ok(out),
            _ => out.reserve(out.capacity().max(4096)),
        }
    }
}

thread_local! {
    /// One zstd context per thread: creating one per 128 KiB block costs more than using it.
    static ZSTD: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

fn zstd_block(bytes: &[u8]) -> Result<Vec<u8>, BackhandError> {
    ZSTD.with(|cell| {
        let mut cell = cell.borrow_mut();
        let compressor = match cell.as_mut() {
            Some(compressor) => compressor,
            None => cell.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL as i32)?),
        };
        Ok(compressor.compress(bytes)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names --compression and --xz-filter accept are the ones printed, and a wrong one is
    /// answered with every accepted name.
    #[test]
    fn choices_parse_print_and_list_their_names() {
        for choice in [Compression::Xz, Compression::Zstd, Compression::Gzip] {
            let parsed = names::parse_choice::<Compression>("compression", &choice.to_string());
            assert_eq!(parsed.unwrap(), choice);
        }
        for filter in [XzFilter::None, XzFilter::X86, XzFilter::Arm64] {
            let parsed = names::parse_choice::<XzFilter>("xz filter", &filter.to_string());
            assert_eq!(parsed.unwrap(), filter);
        }
        assert_eq!(
            names::parse_choice::<Compression>("compression", "lz4")
                .unwrap_err()
                .to_string(),
            "unknown compression \"lz4\"; use xz, zstd or gzip"
        );
        assert_eq!(
            names::parse_choice::<XzFilter>("xz filter", "X86")
                .unwrap_err()
                .to_string(),
            "unknown xz filter \"X86\"; use none, x86 or arm64"
        );
    }

    #[test]
    fn job_equality_is_piecewise() {
        let a: Arc<[u8]> = Arc::from(&b"hello"[..]);
        let b: Arc<[u8]> = Arc::from(&b"world"[..]);
        let job = Job {
            pieces: vec![
                Piece {
                    data: a,
                    range: 1..5,
                },
                Piece {
                    data: b,
                    range: 0..2,
                },
            ],
            len: 6,
        };
        assert!(job.equals(b"ellowo"));
        assert!(!job.equals(b"ellowx"));
        assert!(!job.equals(b"ellow"));
        assert_eq!(job.bytes(), b"ellowo");
    }

    /// Our encoders give what backhand's decoder (and thus the format) expects.
    #[test]
    fn blocks_round_trip_through_backhand_decoder() {
        let mut input = Vec::new();
        for i in 0..50_000u32 {
            input.extend_from_slice(format!("{} ", i % 977).as_bytes());
        }
        for (compression, id) in [
            (Compression::Xz, Compressor::Xz),
            (Compression::Zstd, Compressor::Zstd),
            (Compression::Gzip, Compressor::Gzip),
        ] {
            let fc = compression.filesystem_compressor(131_072, XzFilter::None);
            let packed = compress_block(compression, &input, fc, 131_072, XzFilter::None).unwrap();
            assert!(packed.len() < input.len() / 3, "{compression}");
            let mut unpacked = Vec::with_capacity(input.len());
            DefaultCompressor
                .decompress(&packed, &mut unpacked, id)
                .unwrap();
            assert_eq!(unpacked, input, "{compression}");
            // the same context reused gives the same bytes
            assert_eq!(
                compress_block(compression, &input, fc, 131_072, XzFilter::None).unwrap(),
                packed
            );
        }
    }
}
