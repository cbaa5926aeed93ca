# Two NixOS VMs on one link merge the shipped image with the real systemd-sysext, run keepalived
# from it through the shipped unit, and hand the virtual address over when the master fails.
# Addresses come only from 192.0.2.0/24 (TEST-NET-1); the test network is the VMs' own switch.
{ lib
, testers
, image
}:

let
  vip = "192.0.2.100";

  # The units and drop-ins the image ships, read from the payload tree the image was built from,
  # so the test cannot drift from it: every unit file, every drop-in directory with its files,
  # and every Upholds= a drop-in declares (e.g. multi-user.target upholds keepalived.path).
  unitDir = image.payload + "/usr/lib/systemd/system";
  unitEntries = builtins.readDir unitDir;
  unitFiles = builtins.filter (name: unitEntries.${name} == "regular") (builtins.attrNames unitEntries);
  dropInDirs = builtins.filter (name: unitEntries.${name} == "directory" && lib.hasSuffix ".d" name)
    (builtins.attrNames unitEntries);
  dropInsOf = dir: builtins.attrNames (builtins.readDir (unitDir + "/${dir}"));
  upholdsIn = dir: file: lib.concatMap
    (line: lib.splitString " " (lib.removePrefix "Upholds=" line))
    (builtins.filter (lib.hasPrefix "Upholds=") (lib.splitString "\n" (builtins.readFile (unitDir + "/${dir}/${file}"))));
  # [ { unit = "multi-user.target"; upheld = "keepalived.path"; } ]
  upholds = lib.concatMap
    (dir: lib.concatMap
      (file: map (upheld: { unit = lib.removeSuffix ".d" dir; inherit upheld; }) (upholdsIn dir file))
      (dropInsOf dir))
    dropInDirs;
  # The commands that expose the merged units to the manager (see the test script for why). The
  # lists are interpolated into the Python test script as JSON, which Python reads as literals.
  linkCommands =
    [ "mkdir -p ${attachedDir}" ]
    ++ map (unit: "ln -s /usr/lib/systemd/system/${unit} ${attachedDir}/${unit}") unitFiles
    ++ lib.concatMap
      (dir: [ "mkdir -p ${attachedDir}/${dir}" ]
      ++ map (file: "ln -s /usr/lib/systemd/system/${dir}/${file} ${attachedDir}/${dir}/${file}") (dropInsOf dir))
      dropInDirs;
  attachedDir = "/run/systemd/system.attached";

  # A node that looks like Flatcar to systemd-sysext (the image says ID=flatcar,
  # SYSEXT_LEVEL=1.0) and carries one keepalived.conf; nothing else of keepalived is on it.
  node = { address, priority }: {
    virtualisation.interfaces.eth1.vlan = 1;
    networking.interfaces.eth1.ipv4.addresses = [{ inherit address; prefixLength = 24; }];
    # The NixOS firewall would drop VRRP (IP protocol 112) and split the pair into two masters.
    networking.firewall.enable = false;

    environment.etc."os-release".text = lib.mkForce ''
      ID=flatcar
      NAME="Flatcar Container Linux (NixOS test VM)"
      SYSEXT_LEVEL=1.0
    '';

    environment.etc."keepalived/keepalived.conf" = {
      mode = "0600";
      text = ''
        global_defs {
          router_id node_${toString priority}
          enable_script_security
        }
        vrrp_instance VI_1 {
          state BACKUP
          interface eth1
          virtual_router_id 51
          priority ${toString priority}
          advert_int 1
          authentication {
            auth_type PASS
            auth_pass vm-test
          }
          virtual_ipaddress {
            ${vip}/24 dev eth1
          }
        }
      '';
    };
  };
in
testers.runNixOSTest {
  name = "keepalived-sysext-failover";

  nodes = {
    master = node { address = "192.0.2.1"; priority = 100; };
    backup = node { address = "192.0.2.2"; priority = 99; };
  };

  testScript = ''
    image = "${image}/${image.imageFile}"
    holds_vip = "ip -4 -o addr show dev eth1 | grep -qF ' ${vip}/24 '"

    start_all()
    for machine in (master, backup):
        machine.wait_for_unit("multi-user.target")
        machine.succeed(f"install -D -m 0644 {image} /var/lib/extensions/keepalived.raw")
        machine.succeed("systemd-sysext merge >&2")
        machine.succeed("test -x /usr/bin/keepalived")
        machine.succeed("test -f /usr/lib/systemd/system/keepalived.service")
        machine.succeed("grep -qx 'ARCHITECTURE=${image.arch}' /usr/lib/extension-release.d/extension-release.keepalived")
        # NixOS's systemd does not search /usr/lib/systemd/system (nixpkgs patches it out;
        # Flatcar's does): expose every merged unit and drop-in in /run/systemd/system.attached,
        # which every systemd searches after /run/systemd/system. That keeps the operators'
        # runtime mask (a /dev/null link in /run/systemd/system) above the shipped unit, as it is
        # above /usr/lib/systemd/system on Flatcar.
        machine.succeed(*${builtins.toJSON linkCommands})
        machine.succeed("systemctl daemon-reload")
        for relation in ${builtins.toJSON upholds}:
            machine.succeed(
                f"systemctl show --property=UpheldBy --value {relation['upheld']} | grep -qw {relation['unit']}"
            )
        # Nothing starts keepalived by hand: the upheld path unit starts it, since the
        # configuration exists.
        machine.wait_for_unit("keepalived.path")
        machine.wait_for_unit("keepalived.service")
        machine.succeed("systemctl show --property=ExecStart keepalived.service | grep -qF /usr/bin/keepalived")

    # Stopping keepalived on purpose, as the README tells operators: a plain stop would be undone
    # by keepalived.path, so mask the service for this boot first.
    stop_keepalived = "systemctl mask --runtime keepalived.service && systemctl stop keepalived.service"
    start_keepalived = "systemctl unmask --runtime keepalived.service && systemctl start keepalived.service"

    with subtest("the higher priority node holds the address, and only it"):
        master.wait_until_succeeds(holds_vip, timeout=30)
        for _ in range(5):
            master.succeed(holds_vip)
            backup.fail(holds_vip)
            master.sleep(1)

    with subtest("master's keepalived stops: the backup takes the address"):
        master.succeed(stop_keepalived)
        backup.wait_until_succeeds(holds_vip, timeout=10)
        master.fail(holds_vip)
        # The mask holds: the path unit does not bring keepalived back.
        master.sleep(3)
        master.fail("systemctl is-active keepalived.service")

    with subtest("master returns and preempts"):
        master.succeed(start_keepalived)
        master.wait_until_succeeds(holds_vip, timeout=30)
        backup.wait_until_fails(holds_vip, timeout=10)

    with subtest("master's link fails: the backup takes the address"):
        master.block()
        backup.wait_until_succeeds(holds_vip, timeout=10)
        master.unblock()
        backup.wait_until_fails(holds_vip, timeout=30)
        master.succeed(holds_vip)

    with subtest("systemd-sysext reports the extension"):
        master.succeed("systemd-sysext list >&2")
        master.succeed("systemd-sysext status | grep -qw keepalived")
  '';
}
