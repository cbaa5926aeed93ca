//! backhand's errors in words a user can act on. With its `error-strings` feature backhand's own
//! messages name its internals ("deku error: …"); the reader says instead what is wrong with the
//! image (truncated, an unknown inode type, an owner outside the id table).

use backhand::BackhandError;

/// Names the variants for the user; the image's path and the failing step come from the caller.
pub(super) fn describe(err: &BackhandError) -> String {
    match err {
        BackhandError::StdIo(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "unexpected end of file (truncated?)".to_string()
        }
        BackhandError::StdIo(io) => format!("I/O error: {io}"),
        BackhandError::Deku(_) => "a structure does not parse".to_string(),
        BackhandError::UnsupportedCompression(_) => "unsupported compression".to_string(),
        BackhandError::CorruptedOrInvalidSquashfs => "corrupted or invalid data".to_string(),
        BackhandError::InvalidCompressionOption => "invalid compression options".to_string(),
        BackhandError::InvalidFilePath => "an invalid file name".to_string(),
        BackhandError::InvalidIdTable | BackhandError::IdNotFoundInTable => {
            "an owner outside the id table".to_string()
        }
        BackhandError::UnsupportedSquashfsVersion(major, minor) => {
            format!("unsupported SquashFS version {major}.{minor} (4.0 is read)")
        }
        BackhandError::UnexpectedInode | BackhandError::UnsupportedInode => {
            "an inode of an unexpected type".to_string()
        }
        BackhandError::CompressionInit(_) => "the decompressor failed".to_string(),
        _ => "malformed data".to_string(),
    }
}
