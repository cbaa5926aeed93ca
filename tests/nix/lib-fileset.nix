# The part of nixpkgs' lib.fileset that nix/rust-source.nix uses (unions, fileFilter, maybeMissing,
# toSource),
# built on builtins.path, so tests/nix/sandbox can build the crate from the very file set the
# flake builds it from. A file set is a predicate on (absolute path, type). One difference from
# nixpkgs: a directory left without files (tests/nix here) stays as an empty directory, where
# nixpkgs drops it. Cargo does not care, and no file of it is in the source either way.
let
  isUnder = parent: path: path == parent || builtins.substring 0 (builtins.stringLength parent + 1) path == "${parent}/";
  # A path element includes itself, everything under it, and the directories leading to it.
  ofPath = element: path: _type:
    let wanted = toString element; in isUnder wanted path || isUnder path wanted;
  asPredicate = element: if builtins.isFunction element then element else ofPath element;
  hasExt = name: ext: builtins.match ".*\\.${ext}" name != null;
in
{
  unions = elements:
    assert builtins.all (element: builtins.isFunction element || builtins.pathExists element) elements
      || throw "lib.fileset.unions: an element is a path that does not exist (use lib.fileset.maybeMissing)";
    path: type: builtins.any (element: asPredicate element path type) elements;

  # As nixpkgs': a path that exists is the file set of that path, a missing one the empty file set
  # (where a bare missing path is an error: ofPath below would match nothing silently).
  maybeMissing = element: assert builtins.isPath element;
    if builtins.pathExists element then ofPath element else _path: _type: false;

  fileFilter = keep: root: path: type:
    let base = toString root; in
    isUnder path base
    || (isUnder base path && (type == "directory"
    || keep { name = baseNameOf path; hasExt = hasExt (baseNameOf path); inherit type; }));

  toSource = { root, fileset }: builtins.path {
    path = root;
    name = "source";
    filter = path: type: fileset path type;
  };
}
