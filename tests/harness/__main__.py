"""python -m harness SUBCOMMAND ...  (SUBCOMMAND: cluster)"""
import sys

from harness import cluster


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python3 -m harness cluster {up,down,status} [--dir D] [--password PW]")
        return 0 if argv else 2
    if argv[0] == "cluster":
        return cluster.main(argv[1:])
    print("unknown subcommand %r (known: cluster)" % argv[0], file=sys.stderr)
    return 2


sys.exit(main(sys.argv[1:]))
