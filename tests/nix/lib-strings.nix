# The string functions of nixpkgs' lib/strings.nix that the nix/*.nix files use, with nixpkgs'
# definitions, for the stand-in nixpkgs of tests/nix/evaluate.nix and tests/nix/sandbox.nix:
# both must quote and strip exactly as the real lib does, or the scripts they check would differ
# from what Nix builds.
rec {
  escapeShellArg = arg:
    let
      string = toString arg;
    in
    if builtins.match "[[:alnum:],._+:@%/-]+" string == null
    then "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] string}'"
    else string;
  hasPrefix = prefix: string: builtins.substring 0 (builtins.stringLength prefix) string == prefix;
  hasSuffix = suffix: string:
    let
      suffixLength = builtins.stringLength suffix;
      stringLength = builtins.stringLength string;
    in
    suffixLength <= stringLength && builtins.substring (stringLength - suffixLength) suffixLength string == suffix;
  removePrefix = prefix: string:
    if hasPrefix prefix string
    then builtins.substring (builtins.stringLength prefix) (builtins.stringLength string) string
    else string;
  # lib.splitString: builtins.split on the escaped separator, keeping the strings between matches.
  splitString = separator: string:
    builtins.filter builtins.isString (builtins.split (escapeRegex separator) string);
  escapeRegex = builtins.replaceStrings
    [ "\\" "[" "{" "(" ")" "^" "$" "|" "*" "+" "?" "." ]
    [ "\\\\" "\\[" "\\{" "\\(" "\\)" "\\^" "\\$" "\\|" "\\*" "\\+" "\\?" "\\." ];
  escapeShellArgs = args: builtins.concatStringsSep " " (map escapeShellArg args);
  optionalString = condition: string: if condition then string else "";
  concatMapStrings = f: list: builtins.concatStringsSep "" (map f list);
  removeSuffix = suffix: string:
    let
      suffixLength = builtins.stringLength suffix;
      stringLength = builtins.stringLength string;
    in
    if suffixLength <= stringLength
      && builtins.substring (stringLength - suffixLength) suffixLength string == suffix
    then builtins.substring 0 (stringLength - suffixLength) string
    else string;
}
