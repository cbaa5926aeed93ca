//! What a node trusts, and the checks that make it so: the certificates systemd checks dm-verity
//! root hash signatures against ([`certificate`]), the image policy that makes systemd-sysext
//! demand such a signature ([`policy`]), signing a DDI's root hash and checking that signature
//! as systemd does ([`signing`], through OpenSSL), and the feed's OpenPGP signature of
//! `SHA256SUMS` as systemd-sysupdate checks it ([`openpgp`], through gpgv).

pub mod certificate;
pub mod openpgp;
pub mod policy;
pub mod signing;
