"""Run one bad-argument attempt in this fresh process; print {"returned": ...} as JSON.

Used by lsuite.checks.rejection for CUDA, where a device-side assert poisons the whole process.
`python -m lsuite.checks.isolate '{"impl": NAME_OR_SPEC, "case": {...}, "seed": 0, "target": "K"}'`
"""

import json
import sys

from lsuite.catalogs import catalog, loading, peers
from lsuite.checks.rejection import attempt
from lsuite.inputs.cases import Case
from lsuite.running.runner import Context


def main(argv: list[str]) -> int:
    request = json.loads(argv[0])
    name = request["impl"]
    impl = (catalog.by_name() | peers.by_name()).get(name) or loading.load(name)
    ctx = Context(impl=impl, case=Case(**request["case"]), seed=request["seed"])
    print(json.dumps({"returned": attempt(ctx, target=request["target"])}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
