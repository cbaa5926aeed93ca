//! Where an image's companions are: `build` writes `NAME-vVERSION-ARCH.raw`, its
//! `.manifest.json` and `SHA256SUMS` into one directory, and `verify` and `sign` find them there
//! from the image's path alone.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// An image's path taken apart: its directory (`.` for a bare file name) and its file name.
pub struct ImagePaths {
    pub image: PathBuf,
    pub dir: PathBuf,
    /// The file name, UTF-8 because it is compared with names in `SHA256SUMS` and the manifest.
    pub file_name: String,
}

impl ImagePaths {
    pub fn of(image: &Path) -> Result<Self> {
        let file_name = image
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no UTF-8 file name", image.display()))?
            .to_string();
        let dir = match image.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(ImagePaths {
            image: image.to_path_buf(),
            dir,
            file_name,
        })
    }

    /// The file name without `.raw`: `NAME-vVERSION-ARCH` for an image `build` wrote.
    pub fn stem(&self) -> Option<&str> {
        self.file_name.strip_suffix(".raw")
    }

    /// `STEM.manifest.json` next to the image, for a file name ending in `.raw`.
    pub fn manifest(&self) -> Option<PathBuf> {
        self.stem()
            .map(|stem| self.dir.join(format!("{stem}.manifest.json")))
    }

    /// `SHA256SUMS` next to the image.
    pub fn sums(&self) -> PathBuf {
        self.dir.join("SHA256SUMS")
    }
}
