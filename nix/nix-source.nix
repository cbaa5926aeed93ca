# The repository's Nix files, for the formatting and dead-code checks.
{ lib }:

lib.fileset.toSource {
  root = ../.;
  fileset = lib.fileset.fileFilter (file: file.hasExt "nix") ../.;
}
