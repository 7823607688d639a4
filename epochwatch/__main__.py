import sys

from epochwatch.cli import main

sys.exit(main())
