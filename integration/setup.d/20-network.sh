#!/usr/bin/env bash
# Container networking: the CNI plugins the agent runs (bridge, host-local,
# portmap and firewall from Debian's containernetworking-plugins, in
# /usr/lib/cni) and what they run themselves: iptables (the nf_tables
# backend, Debian's default) for ipMasq and port mappings, iproute2 for the
# tests. Nothing is built, so nothing is cached: a cold run is the apt
# install, a warm one a dpkg query.
set -euo pipefail

apt_install containernetworking-plugins iptables iproute2

for plugin in bridge host-local portmap firewall; do
  if [ ! -x "/usr/lib/cni/$plugin" ]; then
    log "network: /usr/lib/cni/$plugin is missing after installing containernetworking-plugins"
    exit 1
  fi
done
# IPv4 forwarding, which the bridge plugin's isGateway/ipMasq traffic needs
# (the plugin turns it on itself when it sets a gateway up; set here too so
# that the tests start from a known state).
sysctl -q -w net.ipv4.ip_forward=1 >&2 || log "network: cannot enable net.ipv4.ip_forward"

echo "export CRUN_SHIM_CNI_PATH=/usr/lib/cni"
