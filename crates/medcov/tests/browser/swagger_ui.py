"""Drives MedCov's Swagger UI (/docs) in headless Chromium, as a person would, and prints what
happened as one JSON object on stdout:

  {"operations": <operations rendered>, "violations": [<CSP violations>], "errors": [<page errors>],
   "tried": [{"operation": "GET /api/...", "status": <code shown in the UI>}]}

    python swagger_ui.py --url http://127.0.0.1:3000/docs/ [--token <bearer>] [--try "GET /api/auth/me" ...]

With --token it signs in through the Authorize dialog; each --try operation is expanded, "Try it
out" and "Execute" are pressed, and the status code Swagger UI shows is reported. Chromium is
Debian's (/usr/bin/chromium, or $MEDCOV_CHROMIUM); nothing is downloaded.
"""

import argparse
import json
import os
import sys

from playwright.sync_api import sync_playwright

VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__violations.push({directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample});
});
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--token")
    parser.add_argument("--try", dest="tries", action="append", default=[])
    parser.add_argument("--timeout-ms", type=int, default=30000)
    args = parser.parse_args()

    chromium = os.environ.get("MEDCOV_CHROMIUM", "/usr/bin/chromium")
    report = {"operations": 0, "violations": [], "errors": [], "tried": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        page = browser.new_page()
        page.set_default_timeout(args.timeout_ms)
        page.add_init_script(VIOLATIONS)
        page.on("pageerror", lambda e: report["errors"].append(str(e)))
        page.on("console", lambda m: m.type == "error" and report["errors"].append(m.text))
        page.goto(args.url)
        page.wait_for_selector(".opblock")
        report["operations"] = page.locator(".opblock").count()

        if args.token:
            page.click("button.authorize")
            page.fill(".modal-ux input[type=text]", args.token)
            page.click(".modal-ux button.authorize")
            page.click(".modal-ux button.close-modal")

        for operation in args.tries:
            method, path = operation.split(" ", 1)
            block = page.locator(f".opblock-{method.lower()}").filter(
                has=page.locator(f'.opblock-summary-path[data-path="{path}"]')
            ).first
            block.locator(".opblock-summary").click()
            block.locator("button.try-out__btn").click()
            block.locator("button.execute").click()
            status = block.locator(".live-responses-table tr.response .response-col_status").first
            status.wait_for()
            report["tried"].append({"operation": operation, "status": int(status.inner_text().strip().split()[0])})

        report["violations"] = page.evaluate("window.__violations")
        browser.close()
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
