# nixpkgs' lib/asserts.nix as nix/sysext-image.nix uses it: assertMsg throws its message when the
# predicate is false, assertOneOf is assertMsg on list membership. One difference: nixpkgs prints
# the values with lib.generators.toPretty, this stand-in with builtins.toJSON.
rec {
  assertMsg = pred: msg: pred || builtins.throw msg;
  assertOneOf = name: val: xs: assertMsg
    (builtins.elem val xs)
    "${name} must be one of ${builtins.toJSON xs}, but is: ${builtins.toJSON val}";
}
