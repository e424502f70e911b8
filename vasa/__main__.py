import sys

from vasa.cli import main

sys.exit(main())
