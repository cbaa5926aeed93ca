# The keepalived source for one entry of keepalived.json: a release tarball (type "url") or a
# GitHub commit (type "github"). The hash in the data file is the only trust anchor.
{ fetchurl
, fetchFromGitHub
, version
, src
}:

if src.type == "url" then
  fetchurl
  {
    name = "keepalived-${version}.tar.gz";
    inherit (src) url hash;
  }
else if src.type == "github" then
# Fetch the commit the tag pointed at when the hash was verified, so a moved tag cannot change
# what is downloaded (the hash would catch it, but the build should not depend on that).
  fetchFromGitHub
  {
    name = "keepalived-${version}-source";
    inherit (src) owner repo hash;
    rev = src.commit;
  }
else
  throw "nix/keepalived.json: keepalived ${version} has src.type \"${src.type}\"; expected \"url\" or \"github\""
