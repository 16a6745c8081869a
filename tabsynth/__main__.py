import sys

from tabsynth.cli import main

sys.exit(main())
