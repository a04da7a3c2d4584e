import sys

from nixld.cli import main

sys.exit(main())
