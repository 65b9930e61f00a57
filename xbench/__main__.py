import sys

from xbench.cli import main

sys.exit(main())
