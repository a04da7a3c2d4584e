import sys

try:
    from nixld.cli import main
except KeyboardInterrupt:  # Ctrl-C while Python is still importing (a busy machine)
    print("\nnixld-hook: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
