#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# Prints the kernel arguments GRUB would take from a config tree: the sourcing lines of
# /usr/sbin/grub-mkconfig (Debian, "if test -f ${sysconfdir}/default/grub ... for x in
# ${sysconfdir}/default/grub.d/*.cfg"), then "${GRUB_CMDLINE_LINUX} ${GRUB_CMDLINE_LINUX_DEFAULT}"
# as 10_linux puts them on the linux line. Usage: grub-mkconfig-source.sh SYSCONFDIR
set -e
sysconfdir="$1"
LC_ALL=C
export LC_ALL
if test -f "${sysconfdir}/default/grub" ; then
  # shellcheck disable=SC1090,SC1091 # the files under test
  . "${sysconfdir}/default/grub"
fi
for x in "${sysconfdir}"/default/grub.d/*.cfg ; do
  if [ -e "${x}" ]; then
    # shellcheck disable=SC1090 # the files under test
    . "${x}"
  fi
done
# shellcheck disable=SC2086 # split into words, as on GRUB's linux line
echo ${GRUB_CMDLINE_LINUX} ${GRUB_CMDLINE_LINUX_DEFAULT}
