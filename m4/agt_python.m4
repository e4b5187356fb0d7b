# agt_python.m4 - locate what a CPython extension module needs
#
# Copyright (C) 2026 The aio_gnutls_transport authors
# SPDX-License-Identifier: LGPL-2.1-or-later

# AGT_PYTHON_EXTENSION
# --------------------
# Run after AM_PATH_PYTHON.  Asks $PYTHON (through sysconfig) for its C
# header directories and its extension module suffix, and checks that
# <Python.h> compiles.  Extension modules are not linked against libpython:
# the interpreter that loads them provides its symbols.
#
# Sets and substitutes:
#   PYTHON_CPPFLAGS    -I options for the Python headers (user-overridable)
#   PYTHON_EXT_SUFFIX  e.g. ".cpython-311-x86_64-linux-gnu.so"
AC_DEFUN([AGT_PYTHON_EXTENSION],
[AC_REQUIRE([AC_PROG_CC])dnl
AC_ARG_VAR([PYTHON_CPPFLAGS],
  [preprocessor flags for the Python headers (default: asked from $PYTHON)])
AC_ARG_VAR([PYTHON_EXT_SUFFIX],
  [file name suffix of Python extension modules (default: asked from $PYTHON)])

AC_MSG_CHECKING([for the Python headers of $PYTHON])
AS_IF([test -z "$PYTHON_CPPFLAGS"],
[PYTHON_CPPFLAGS=`$PYTHON -c '
import sysconfig
dirs = list()
for d in (sysconfig.get_path("include"), sysconfig.get_path("platinclude"),
          sysconfig.get_config_var("INCLUDEPY")):
    if d and d not in dirs:
        dirs.append(d)
print(" ".join("-I" + d for d in dirs))
' 2>&AS_MESSAGE_LOG_FD`])
AC_MSG_RESULT([$PYTHON_CPPFLAGS])

AC_MSG_CHECKING([for the extension module suffix of $PYTHON])
AS_IF([test -z "$PYTHON_EXT_SUFFIX"],
[PYTHON_EXT_SUFFIX=`$PYTHON -c '
import sysconfig
print(sysconfig.get_config_var("EXT_SUFFIX") or ".so")
' 2>&AS_MESSAGE_LOG_FD`])
AC_MSG_RESULT([$PYTHON_EXT_SUFFIX])
AS_CASE([$PYTHON_EXT_SUFFIX],
  [.*.so], [],
  [AC_MSG_ERROR([unexpected extension module suffix '$PYTHON_EXT_SUFFIX' from $PYTHON])])

AC_CACHE_CHECK([whether Python.h compiles], [agt_cv_python_h],
[agt_save_CPPFLAGS=$CPPFLAGS
CPPFLAGS="$PYTHON_CPPFLAGS $CPPFLAGS"
AC_COMPILE_IFELSE([AC_LANG_PROGRAM([[
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#if PY_VERSION_HEX < 0x03090000
# error "Python >= 3.9 required"
#endif
]], [[PyObject *o = Py_None; (void) o;]])],
  [agt_cv_python_h=yes], [agt_cv_python_h=no])
CPPFLAGS=$agt_save_CPPFLAGS])
AS_IF([test "$agt_cv_python_h" != yes],
  [AC_MSG_ERROR([cannot compile with <Python.h> of $PYTHON (looked in: $PYTHON_CPPFLAGS).
Install the Python development headers for this interpreter:
  Debian/Ubuntu: apt-get install python3-dev
  Fedora:        dnf install python3-devel
or point PYTHON= at an interpreter that has them.])])
AC_SUBST([PYTHON_CPPFLAGS])
AC_SUBST([PYTHON_EXT_SUFFIX])
])

# AGT_PYTHON_DEBIAN_DIRS
# ----------------------
# Run after AM_PATH_PYTHON.  Debian's interpreter does not search the
# site-packages directories that AM_PATH_PYTHON picks by default; it
# searches /usr/local/lib/pythonX.Y/dist-packages and, for the system's own
# packages, /usr/lib/python3/dist-packages.  When $PYTHON is Debian's and
# the directories are still the defaults, switch to those.  Explicit choices
# (e.g. "make install pyexecdir=DIR") are still honoured.
AC_DEFUN([AGT_PYTHON_DEBIAN_DIRS],
[AC_MSG_CHECKING([whether $PYTHON uses Debian's dist-packages layout])
agt_python_debian=`$PYTHON -c '
import sysconfig
print("yes" if "deb_system" in sysconfig.get_scheme_names() else "no")
' 2>&AS_MESSAGE_LOG_FD`
AS_IF([test "x$agt_python_debian" != xyes], [agt_python_debian=no])
AC_MSG_RESULT([$agt_python_debian])
AS_IF([test "$agt_python_debian" = yes],
[agt_prefix=$prefix
test "x$agt_prefix" = xNONE && agt_prefix=$ac_default_prefix
AS_IF([test "x$agt_prefix" = x/usr],
  [agt_python_dist=python3/dist-packages],
  [agt_python_dist=python$PYTHON_VERSION/dist-packages])
AS_CASE([$pythondir],
  ['${PYTHON_PREFIX}/lib/python'*/site-packages],
  [pythondir='${PYTHON_PREFIX}'/lib/$agt_python_dist])
AS_CASE([$pyexecdir],
  ['${PYTHON_EXEC_PREFIX}/lib/python'*/site-packages],
  [pyexecdir='${PYTHON_EXEC_PREFIX}'/lib/$agt_python_dist])
AC_MSG_CHECKING([where to install Python modules])
AC_MSG_RESULT([$pyexecdir])])
])
