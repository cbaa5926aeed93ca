//! A little-endian reader over decompressed table bytes. The inode and directory walks read
//! records whose lengths come from the image; every read here fails with an error instead of
//! panicking when a record runs past the end of its table.

use anyhow::{bail, Result};

/// A little-endian cursor whose reads fail instead of panicking past the end.
pub(super) struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    pub(super) fn new(data: &'a [u8]) -> Bytes<'a> {
        Bytes { data, pos: 0 }
    }
    /// Offset of the next read from the start of the table.
    pub(super) fn position(&self) -> usize {
        self.pos
    }
    pub(super) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.data.len());
        let Some(end) = end else {
            bail!(
                "a record at offset {} runs past the end of its table",
                self.pos
            );
        };
        let slice = &self.data[self.pos..end];
        self.pos = end;
        Ok(slice)
    }
    pub(super) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into()?))
    }
    pub(super) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }
    pub(super) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }
    pub(super) fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
}
