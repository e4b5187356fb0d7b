# agt_compiler.m4 - compiler flag probes for aio_gnutls_transport
#
# Copyright (C) 2026 The aio_gnutls_transport authors
# SPDX-License-Identifier: LGPL-2.1-or-later

# AGT_APPEND_CFLAG(FLAG, VARIABLE)
# --------------------------------
# Append FLAG to the shell VARIABLE when the C compiler accepts it without
# any diagnostic (the probe compiles with -Werror, so a flag that the
# compiler merely warns about is left out).
AC_DEFUN([AGT_APPEND_CFLAG],
[AC_REQUIRE([AC_PROG_CC])dnl
AS_VAR_PUSHDEF([agt_cache], [agt_cv_cflag_$1])dnl
AC_CACHE_CHECK([whether $CC accepts $1], [agt_cache],
[agt_save_CFLAGS=$CFLAGS
CFLAGS="$CFLAGS -Werror $1"
AC_COMPILE_IFELSE([AC_LANG_PROGRAM([], [])],
  [AS_VAR_SET([agt_cache], [yes])],
  [AS_VAR_SET([agt_cache], [no])])
CFLAGS=$agt_save_CFLAGS])
AS_VAR_IF([agt_cache], [yes], [AS_VAR_APPEND([$2], [" $1"])])
AS_VAR_POPDEF([agt_cache])dnl
])
