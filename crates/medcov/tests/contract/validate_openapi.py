"""Validates OpenAPI documents with an independent validator (openapi-spec-validator, the
OpenAPI 3.1 rules and JSON Schema 2020-12), and prints one JSON object on stdout:

  {"<file>": ["<error>", ...], ...}      (an empty list: valid)

    python validate_openapi.py doc1.json [doc2.json ...]

Exits 0 when it could check every document, whatever it found; the caller reads the report.
"""

import json
import sys

from openapi_spec_validator import OpenAPIV31SpecValidator


def main() -> int:
    report = {}
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
        errors = []
        try:
            for error in OpenAPIV31SpecValidator(document).iter_errors():
                where = "/".join(str(p) for p in error.absolute_path) or "(document)"
                errors.append(f"{where}: {error.message[:300]}")
                if len(errors) >= 50:
                    errors.append("(more left out)")
                    break
        except Exception as error:  # a reference to nothing stops the validator: report it
            errors.append(f"{type(error).__name__}: {str(error)[:300]}")
        report[path] = errors
    json.dump(report, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
