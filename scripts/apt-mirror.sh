# shellcheck shell=bash
# The Debian mirror this machine's apt uses (sourced by setup.sh and debian.sh): the machine's
# own configuration, so a local mirror or a proxy keeps working; never a hard-coded host.
#   rk_mirror          the archive (Label "Debian"), e.g. http://mirror.example/debian/
#   rk_security_mirror the security archive (Label "Debian-Security"), empty if none
#   rk_apt_proxy       Acquire::http::Proxy, empty if none
rk_mirror_of() {
  apt-get indextargets --format '$(LABEL)|$(REPO_URI)' 'Created-By: Packages' 2>/dev/null |
    awk -F'|' -v l="$1" '$1 == l { print $2; exit }'
}
rk_mirror=$(rk_mirror_of Debian)
rk_security_mirror=$(rk_mirror_of Debian-Security)
if [ -z "$rk_mirror" ]; then
  # No package lists yet (a fresh machine before its first apt-get update).
  rk_mirror=$(grep -rhoE '^(URIs:|deb)[[:space:]]+(\[[^]]*\][[:space:]]+)?[a-z]+://[^[:space:]]+/debian/?' \
    /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | grep -v security | head -1 |
    awk '{print $NF}')
fi
if [ -z "$rk_mirror" ]; then
  echo "setup: no Debian archive in apt's sources (/etc/apt/sources.list*): cannot tell which mirror to use" >&2
  exit 1
fi
rk_mirror=${rk_mirror%/}/
rk_apt_proxy=$(apt-config dump Acquire::http::Proxy 2>/dev/null | sed -n 's/^Acquire::http::Proxy "\(.*\)";$/\1/p')
