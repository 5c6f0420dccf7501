"""python -m lsuite_docs [PAGE | --path]: print a documentation page (default: the
specification) or, with --path, the folder that holds the pages."""

import sys

from . import HERE, page


def main(argv: list[str]) -> int:
    if argv[:1] == ["--path"]:
        print(HERE)
        return 0
    try:
        print(page(argv[0] if argv else "specification").read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        print(f"lsuite_docs: {error.args[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
