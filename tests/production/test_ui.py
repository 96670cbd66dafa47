"""The UI as a person sees it, in a real headless Chromium against the production webserver: the
asset graph shows the analytics assets, an asset's Automation tab says why it was requested, and a
dbt table shows its column types, row count, column lineage and why the automation built it."""

import re
from pathlib import Path

import pytest
from deployment import SENSOR, Deployment
from harness import REPO_ROOT
from playwright.sync_api import expect, sync_playwright

# Debian's Chromium, driven by Playwright's Python package; no browser is downloaded.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 60_000
# The asset graph lays out every asset before it shows a name: far longer than expect's default
# 5 s on a busy 2-core machine.
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture
def page(chromium: Path):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            # The UI may greet a new browser with a "Join the Dagster community" dialog.
            page.add_locator_handler(
                page.get_by_role("button", name="Skip", exact=True), lambda skip: skip.click()
            )
            yield page
        finally:
            browser.close()


def test_asset_graph_and_automation_tab(
    chromium: Path, deployment: Deployment, settled: set[str], page, artifacts_dir: Path
):
    # `chromium` first: without a browser the test skips (or fails under CI=true) before the
    # services start.
    # The global asset graph: analytics and talent assets are nodes, seeds to marts and matches.
    page.goto(f"{deployment.url}/asset-groups", wait_until="networkidle")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    # With more than one group the global graph opens with the groups collapsed: both are there.
    for group in ("analytics", "talent"):
        expect(page.get_by_text(group, exact=True).first).to_be_visible()
    page.screenshot(path=artifacts_dir / "ui-asset-groups.png")
    # An asset's lineage graph shows the assets around it, analytics and talent alike.
    for asset, parents in (
        ("customer_orders", ("stg_customers", "stg_orders")),
        ("matches", ("candidate_vectors", "job_vectors")),
    ):
        page.goto(f"{deployment.url}/assets/{asset}?view=lineage", wait_until="networkidle")
        for name in (asset, *parents):
            expect(page.get_by_text(name, exact=True).first).to_be_visible()
    page.screenshot(path=artifacts_dir / "ui-asset-graph-matches.png")

    # The sensor that evaluates the conditions is listed, under the project's code location.
    page.goto(f"{deployment.url}/automation", wait_until="networkidle")
    expect(page.get_by_text(SENSOR, exact=True)).to_be_visible()
    expect(page.get_by_text("Automation condition sensor").first).to_be_visible()

    # stg_customers's Automation tab: the tick that requested it, and the condition tree that
    # says why, with the library's labels.
    page.goto(f"{deployment.url}/assets/stg_customers?view=automation", wait_until="networkidle")
    requested = page.locator("tr").filter(has=page.get_by_text("Requested", exact=True)).first
    expect(requested).to_be_visible()
    requested.get_by_role("button").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("stg_customers", exact=True).first).to_be_visible()
    expect(dialog.get_by_text(re.compile(r"^Runs \(1\)$"))).to_be_visible()
    for label in ("on_change", "stale", "missing", "deps_updated", "not_busy"):
        expect(dialog.get_by_text(label, exact=True).first).to_be_visible()
    on_change = dialog.locator("tr").filter(has=page.get_by_text("on_change", exact=True)).first
    expect(on_change).to_contain_text("True")
    page.screenshot(path=artifacts_dir / "ui-stg_customers-automation.png")


LINEAGE_SCREENSHOT = REPO_ROOT / "docs" / "column-lineage-customer_segments.png"


def test_dbt_tables_show_types_row_counts_lineage_and_why_they_ran(
    chromium: Path, deployment: Deployment, settled: set[str], artifacts_dir: Path
):
    # Built as the Materialize button builds them: the tables wait for their 06:00 cron.
    for asset in ("customer_orders", "customer_segments"):
        deployment.wait_for_run(deployment.launch(asset), timeout=300)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            # No handler for the community dialog here: the instance settings turn it off.
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{deployment.url}/assets/customer_orders", wait_until="networkidle")
            columns = page.locator("tr").filter(has=page.get_by_text("lifetime_value", exact=True))
            # The Columns table: the warehouse's types next to the documented descriptions.
            expect(columns.first).to_contain_text("numeric")
            expect(
                page.locator("tr").filter(has=page.get_by_text("customer_id", exact=True)).first
            ).to_contain_text("integer")
            expect(page.get_by_text("Row count", exact=True)).to_be_visible()
            expect(page.get_by_text("Row count", exact=True).locator("..")).to_contain_text("200")
            # Its policy in words, in its metadata.
            policy = page.locator("tr").filter(has=page.get_by_text("autopilot/policy", exact=True))
            expect(policy.first).to_contain_text("rebuild at '0 6 * * *' (UTC) if missing")
            assert page.get_by_text("Join the Dagster community").count() == 0
            assert page.get_by_role("dialog").count() == 0
            page.screenshot(path=artifacts_dir / "ui-customer_orders-overview.png")

            # The column lineage of customer_segments: each column, the parent's columns it is
            # computed from, and the ancestors' behind them (stg_orders is a view).
            page.goto(f"{deployment.url}/assets/customer_segments?view=events", wait_until="networkidle")
            lineage = (
                page.locator("tr")
                .filter(has=page.get_by_text("autopilot/column_lineage", exact=True))
                .first
            )
            row = lineage.locator("tr").filter(has=page.get_by_text("lifetime_value", exact=True))
            expect(row).to_contain_text("customer_orders.lifetime_value")
            expect(row).to_contain_text("stg_orders.amount")
            page.set_viewport_size({"width": 2000, "height": 1000})
            lineage.screenshot(path=LINEAGE_SCREENSHOT)
            assert LINEAGE_SCREENSHOT.stat().st_size < 150_000

            # Why the automation built a view (on the first tick, with its seed): the sentence on
            # its materialization.
            page.goto(f"{deployment.url}/assets/stg_customers", wait_until="networkidle")
            # Never materialized on the first tick, or (after the service tests' manual run of its
            # seed) only its seed's update.
            expect(
                page.get_by_text(
                    re.compile(
                        r"^stg_customers was requested by the automation because "
                        r"(it was never materialized and )?raw_customers was updated\.$"
                    )
                )
            ).to_be_visible()
        finally:
            browser.close()
