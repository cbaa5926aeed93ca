# Two NixOS VMs on one link merge the shipped image with the real systemd-sysext, run keepalived
# from it through the shipped unit, and hand the virtual address over when the master fails.
# Addresses come only from 192.0.2.0/24 (TEST-NET-1); the test network is the VMs' own switch.
{ lib
, testers
, image
}:

let
  vip = "192.0.2.100";

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
        # NixOS's systemd does not necessarily search /usr/lib/systemd/system (Flatcar's does):
        # expose the merged unit and drop-in in the runtime unit directory, which every systemd
        # searches first, so that the manager loads exactly the shipped files.
        machine.succeed(
            "ln -s /usr/lib/systemd/system/keepalived.service /run/systemd/system/keepalived.service",
            "mkdir -p /run/systemd/system/multi-user.target.d",
            "ln -s /usr/lib/systemd/system/multi-user.target.d/10-keepalived.conf /run/systemd/system/multi-user.target.d/",
            "systemctl daemon-reload",
        )
        machine.succeed("systemctl show --property=UpheldBy --value keepalived.service | grep -qw multi-user.target")
        machine.succeed("systemctl start keepalived.service")
        machine.wait_for_unit("keepalived.service")
        machine.succeed("systemctl show --property=ExecStart keepalived.service | grep -qF /usr/bin/keepalived")

    with subtest("the higher priority node holds the address, and only it"):
        master.wait_until_succeeds(holds_vip, timeout=30)
        for _ in range(5):
            master.succeed(holds_vip)
            backup.fail(holds_vip)
            master.sleep(1)

    with subtest("master's keepalived stops: the backup takes the address"):
        master.succeed("systemctl stop keepalived.service")
        backup.wait_until_succeeds(holds_vip, timeout=10)
        master.fail(holds_vip)

    with subtest("master returns and preempts"):
        master.succeed("systemctl start keepalived.service")
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
