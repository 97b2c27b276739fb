"""The /ui web view in a real headless browser (chromium) against a real ``ownlens-ml serve`` process on a small
trained production platform: the pages render, the champion's report images load, monitoring and alerts show,
and no path outside the reports folder is served."""

from __future__ import annotations

import http.client
import re
import shutil
import signal
import subprocess
import tempfile
from datetime import timedelta

import httpx
import numpy as np
import pandas as pd
import pytest
from serving_platform import build, free_port, new_database
from sqlalchemy import insert, text
from test_serving import serve, wait_for

from ownlens_ml import clock, registry
from ownlens_ml.data.load import copy_frame
from ownlens_ml.db import get_engine
from ownlens_ml.db.schema import ml_alerts, ml_model_monitoring, ml_model_predictions
from ownlens_ml.evaluation.report import report_folder
from ownlens_ml.features.quality import utc_midnight
from ownlens_ml.models import SPECS
from ownlens_ml.pipelines import retention
from ownlens_ml.settings import Settings

pytestmark = pytest.mark.production
PNG = b"\x89PNG\r\n\x1a\n"


def chromium(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "the browser tests need chromium (Debian: apt-get install -y chromium)"
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def dom(url: str) -> str:
    """The page as the browser built it (after its load event)."""
    return chromium("--dump-dom", url).stdout


def images(page: str) -> list[str]:
    return re.findall(r'<img[^>]* src="([^"]+)"', page)


@pytest.fixture(scope="module")
def platform(pg_server, redis_server, tmp_path_factory) -> Settings:
    """churn trained and champion (with its report), five old days of its prediction log summarised by a prune,
    a drift result, one open and one resolved alert."""
    url, drop = new_database(pg_server)
    settings = Settings(
        profile="production",
        home=tmp_path_factory.mktemp("ui"),
        database_url=url,
        redis_url=redis_server,
        project=f"t{np.random.default_rng().integers(1 << 40):x}",
    )
    build(settings)
    rng = np.random.default_rng(3)
    first = utc_midnight(clock.today() - timedelta(days=40))
    as_of = first + pd.to_timedelta(rng.integers(0, 5 * 86_400, 500), unit="s")
    engine = get_engine(settings)
    with engine.begin() as conn:
        copy_frame(
            conn,
            ml_model_predictions,
            pd.DataFrame(
                {
                    "model_name": "churn",
                    "version": 1,
                    "entity_key": [f'{{"user_id":{i}}}' for i in range(500)],
                    "entity_id": np.arange(500),
                    "as_of": as_of,
                    "predicted_at": as_of,
                    "score": rng.beta(2, 5, 500),
                    "source": "online",
                }
            ),
        )
    retention.prune(settings)
    now = clock.now()
    with engine.begin() as conn:
        conn.execute(
            insert(ml_model_monitoring),
            [
                {
                    "model_name": "churn",
                    "version": 1,
                    "kind": "drift",
                    "metric": "psi",
                    "feature": "sessions_7d",
                    "value": 0.02 * d,
                    "window_start": now - timedelta(days=d + 1),
                    "window_end": now - timedelta(days=d),
                    "computed_at": now - timedelta(days=d),
                }
                for d in range(4)
            ],
        )
        conn.execute(
            insert(ml_alerts),
            [
                {
                    "model_name": "churn",
                    "rule": "drift:sessions_7d",
                    "severity": "warning",
                    "message": "sessions_7d drifted: PSI 0.31 above 0.12",
                    "created_at": now - timedelta(hours=5),
                    "resolved_at": None,
                },
                {
                    "model_name": "churn",
                    "rule": "live:roc_auc",
                    "severity": "critical",
                    "message": "an alert long resolved",
                    "created_at": now - timedelta(days=3),
                    "resolved_at": now - timedelta(days=2),
                },
            ],
        )
    yield settings
    drop()


@pytest.fixture(scope="module")
def server(platform) -> str:
    port = free_port()
    process = serve(platform, port)
    try:
        wait_for(port, "/healthz", 200)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def test_overview_lists_every_model_with_its_versions_metrics_and_the_champion_badge(platform, server):
    page = dom(f"{server}/ui")
    champion = registry.get_version(platform, "churn", "champion")
    for name in SPECS:
        assert f'id="model-{name}"' in page
    assert (
        f'<a class="badge champion" href="/ui/models/churn/v{champion.version}">champion v{champion.version}</a>'
        in page
    )
    auc = champion.metrics["holdout"]["model"]["roc_auc"]
    assert "roc_auc" in page and f"{auc:.4f}" in page
    assert 'href="/ui/static/ui.css"' in page and "1 open alert" in page
    assert "No version registered yet: <code>ownlens-ml train conversion</code>" in page


def test_the_champions_report_renders_and_its_images_load(platform, server, tmp_path):
    champion = registry.get_version(platform, "churn", "champion")
    url = f"{server}/ui/models/churn/v{champion.version}"
    page = dom(url)
    assert f"<h1>churn v{champion.version}: evaluation</h1>" in page and "<table>" in page  # Markdown rendered
    assert '<span class="badge champion">champion</span>' in page
    sources = images(page)
    on_disk = sorted(p.name for p in report_folder(platform, "churn", champion.version).glob("*.png"))
    assert len(on_disk) >= 3 and sorted(s.rsplit("/", 1)[1] for s in sources) == on_disk
    folder = report_folder(platform, "churn", champion.version)
    for source in sources:
        answer = httpx.get(server + source)
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        assert answer.content.startswith(PNG) and answer.content == (folder / source.rsplit("/", 1)[1]).read_bytes()

    shot = tmp_path / "report.png"
    chromium(f"--screenshot={shot}", "--window-size=1280,2400", "--hide-scrollbars", url)
    assert shot.read_bytes().startswith(PNG) and shot.stat().st_size > 50_000  # images and text, not a blank page


def test_model_page_shows_monitoring_over_time_and_open_alerts_and_columns_a_migration_adds(platform, server):
    page = dom(f"{server}/ui/models/churn")
    assert "sessions_7d drifted: PSI 0.31 above 0.12" in page and "an alert long resolved" not in page
    for metric in ("daily_predictions", "daily_score_mean", "daily_score_p50", "psi"):
        assert f'src="/ui/models/churn/monitoring/{metric}.png"' in page
    monitoring = page.split('id="monitoring"')[1]
    rows = re.findall(r"<tr[^>]*>\s*<td>(\d+)</td>\s*<td>(\w+)</td>\s*<td>(\w+)</td>", monitoring)
    assert rows and {kind for _, kind, _ in rows} == {"drift", "prediction_log"}
    computed = re.findall(r"<td>(\d{4}-\d\d-\d\d \d\d:\d\d)</td>\s*</tr>", monitoring)
    assert computed == sorted(computed, reverse=True)  # newest first
    plot = httpx.get(f"{server}/ui/models/churn/monitoring/daily_predictions.png")
    assert plot.status_code == 200 and plot.headers["content-type"] == "image/png" and plot.content.startswith(PNG)

    with get_engine(platform).begin() as conn:  # the columns the monitoring migration added
        conn.execute(
            text(
                "UPDATE ml_model_monitoring SET threshold = 0.05, status = CASE WHEN value > 0.05 "
                "THEN 'alert' ELSE 'ok' END WHERE kind = 'drift'"
            )
        )
    page = dom(f"{server}/ui/models/churn")
    assert ">threshold<" in page and ">status<" in page
    assert '<span class="status alert">alert</span>' in page and "0.0500" in page


def test_report_files_outside_the_reports_folder_or_not_images_are_refused(platform, server):
    champion = registry.get_version(platform, "churn", "champion")
    (platform.home / "outside.png").write_bytes(PNG + b"secret")
    host, port = server.removeprefix("http://").split(":")
    base = f"/ui/reports/churn/v{champion.version}/"
    for path in (
        base + "../../../outside.png",
        base + "%2E%2E/%2E%2E/%2E%2E/outside.png",
        base + "..%2F..%2F..%2Foutside.png",
        base + "report.md",
        base + "missing.png",
    ):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", path)  # sent as written: no client-side normalisation of the dots
        answer = conn.getresponse()
        body = answer.read()
        assert answer.status == 404 and b"secret" not in body, path
    assert not any(path.startswith("/ui") for path in httpx.get(f"{server}/openapi.json").json()["paths"])
