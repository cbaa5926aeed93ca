# The repository's Nix files (and the directories holding them), for the formatting and
# dead-code checks.
{ lib }:

lib.sources.sourceFilesBySuffices ../. [ ".nix" ]
