# Copyright (C) 2026 The aio_gnutls_transport authors
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Entry point for ``python3 -m aio_gnutls_transport``; see _cli.py."""

import sys

from aio_gnutls_transport._cli import main

if __name__ == "__main__":
    sys.exit(main())
