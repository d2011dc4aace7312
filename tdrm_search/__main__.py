import sys

from tdrm_search.cli import main

sys.exit(main())
