//! What reading one image may cost, in one place: every other file of the reader checks against
//! these numbers, and the fuzz target and the hostile-image tests tighten them.

/// Bounds on what reading one image may cost. [`Limits::DEFAULT`] is what the commands use; the
/// numbers are far above any sysext (the keepalived image has a dozen entries and 30 MB of content)
/// and far below what would hurt the machine running the check.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest image file accepted.
    pub max_image_bytes: u64,
    /// Most inodes and most directory entries.
    pub max_entries: u32,
    /// Most bytes of decompressed inode table plus directory table.
    pub max_metadata_bytes: usize,
    /// Longest path inside the image (Linux's PATH_MAX).
    pub max_path_bytes: usize,
    /// Deepest directory nesting.
    pub max_depth: usize,
    /// Most bytes of all paths together (each entry holds its full path in memory).
    pub max_total_path_bytes: usize,
    /// Most bytes of file content read and hashed, sparse blocks included.
    pub max_content_bytes: u64,
    /// Most bytes of decompressed fragment blocks (backhand caches every fragment it reads).
    pub max_fragment_cache_bytes: u64,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_image_bytes: 8 << 30,
        max_entries: 1 << 20,
        max_metadata_bytes: 256 << 20,
        max_path_bytes: 4096,
        max_depth: 256,
        max_total_path_bytes: 256 << 20,
        max_content_bytes: 8 << 30,
        max_fragment_cache_bytes: 1 << 30,
    };
}
