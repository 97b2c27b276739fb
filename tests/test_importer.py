"""The importer: valid files load, bad files are rejected whole with row numbers and reasons."""

from __future__ import annotations

import bz2
import gzip
import logging
import os
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from ownlens_ml.cli import State, app
from ownlens_ml.data.importer import contract, contract_markdown, import_files
from ownlens_ml.db import get_engine, init_db
from ownlens_ml.errors import MissingTableError, ValidationError
from ownlens_ml.settings import Settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "import-contract.md"
MIND_NEWS = Path("/work/shared/datasets/mind_small_subset/news.tsv")


def _write(tmp: Path, name: str, content: str) -> Path:
    path = tmp / name
    path.write_text(content.lstrip("\n"), encoding="utf-8")
    return path


def _count(settings: Settings, table: str) -> int:
    with get_engine(settings).connect() as conn:
        return conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()


def _load(settings: Settings, table: str, *files: Path):
    report = import_files(settings, table, list(files))
    assert report.ok, [r.describe() for f in report.files for r in f.rejects]
    return report


def _reference(settings: Settings, tmp: Path) -> None:
    """Brands, countries, device types, categories and two authors, through the importer."""
    init_db(settings)
    _load(
        settings,
        "brands",
        _write(
            tmp,
            "brands.csv",
            """
brand_id,name,domain
1,Daily Post,dailypost.example
2,Evening Star,eveningstar.example
""",
        ),
    )
    _load(
        settings,
        "countries",
        _write(
            tmp,
            "countries.csv",
            """
country_code,name,region
GB,United Kingdom,Europe
DE,Germany,Europe
US,United States,Americas
""",
        ),
    )
    _load(
        settings, "device_types", _write(tmp, "devices.tsv", "device_type_id\tname\n1\tdesktop\n2\tmobile\n3\ttablet\n")
    )
    _load(
        settings,
        "categories",
        _write(
            tmp,
            "categories.csv",
            """
category_id,name
1,news
2,sports
3,finance
""",
        ),
    )
    _load(
        settings,
        "authors",
        _write(
            tmp,
            "authors.csv",
            """
author_id,brand_id,name,joined_at
10,1,Ada Writer,2024-01-01
11,2,"Lovelace, Grace",2024-06-01T09:00:00Z
""",
        ),
    )


def _users(tmp: Path) -> Path:
    return _write(
        tmp,
        "users.csv",
        """
user_id,brand_id,signup_at,country_code,device_type_id,subscription_tier,subscribed_at,newsletter_opt_in
1,1,2026-01-01T08:00:00,GB,1,free,,false
2,1,2026-01-02 10:30:00+02:00,DE,2,paid,2026-01-05T00:00:00Z,TRUE
3,2,2026-01-03,US,3,,,1
""",
    )


def _articles(tmp: Path) -> Path:
    frame = pd.DataFrame(
        {
            "article_id": [100, 101, 102],
            "brand_id": [1, 1, 2],
            "author_id": [10, 10, 11],
            "category_id": [1, 2, 3],
            "topic": ["elections", "football", "markets"],
            "title": ["Polls close", "Cup final, at last", "Rates hold"],
            "published_at": pd.to_datetime(["2026-01-01 06:00", "2026-01-02 07:00", "2026-01-03 08:00"]).tz_localize(
                "UTC"
            ),
            "word_count": [800, 650, 1200],
            "is_premium": [False, True, False],
            "has_video": [True, False, False],
            "image_count": [2, 0, 1],
        }
    )
    path = tmp / "articles.parquet"
    frame.to_parquet(path, index=False)
    return path


def _sessions(tmp: Path) -> Path:
    return _write(
        tmp,
        "sessions.csv",
        """
session_id,user_id,brand_id,started_at,ended_at,device_type_id,referrer,page_views,engaged_seconds
1000,1,1,2026-01-06T08:00:00Z,2026-01-06T08:10:00Z,1,search,2,300
1001,2,1,2026-01-06T09:00:00Z,2026-01-06T09:01:00Z,2,social,1,40
""",
    )


def _events(tmp: Path) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": pd.array([1, 2, 3, 4], dtype="Int64"),
            "session_id": [1000, 1000, 1001, 1001],
            "user_id": [1, 1, 2, 2],
            "article_id": pd.array([100, 100, 101, None], dtype="Int64"),
            "event_type": ["page_view", "scroll", "paywall_hit", "subscribe"],
            "event_at": [
                "2026-01-06T08:00:05Z",
                "2026-01-06T08:01:00Z",
                "2026-01-06T09:00:10Z",
                "2026-01-06T09:00:50Z",
            ],
            "scroll_depth": [None, 0.75, None, None],
            "engaged_seconds": pd.array([30, None, 5, None], dtype="Int64"),
        }
    )


def _platform(settings: Settings, tmp: Path) -> None:
    _reference(settings, tmp)
    _load(settings, "users", _users(tmp))
    _load(settings, "articles", _articles(tmp))
    _load(settings, "sessions", _sessions(tmp))


def test_valid_csv_and_parquet_files_load(any_settings, tmp_path):
    _platform(any_settings, tmp_path)
    events = tmp_path / "events.parquet"
    _events(tmp_path).to_parquet(events, index=False)
    report = _load(any_settings, "events", events)
    assert report.rows_loaded == 4 and report.files[0].rows_loaded == 4
    counts = {
        t: _count(any_settings, t)
        for t in (
            "brands",
            "countries",
            "device_types",
            "categories",
            "authors",
            "users",
            "articles",
            "sessions",
            "events",
        )
    }
    assert counts == {
        "brands": 2,
        "countries": 3,
        "device_types": 3,
        "categories": 3,
        "authors": 2,
        "users": 3,
        "articles": 3,
        "sessions": 2,
        "events": 4,
    }
    with get_engine(any_settings).connect() as conn:
        users = pd.read_sql(text("SELECT * FROM users ORDER BY user_id"), conn)
        events_back = pd.read_sql(text("SELECT * FROM events ORDER BY event_id"), conn)
    signup = pd.to_datetime(users["signup_at"], utc=True)
    # Naive means UTC; an offset is converted to UTC.
    assert signup.tolist() == [
        pd.Timestamp("2026-01-01 08:00", tz="UTC"),
        pd.Timestamp("2026-01-02 08:30", tz="UTC"),
        pd.Timestamp("2026-01-03 00:00", tz="UTC"),
    ]
    assert users["subscription_tier"].tolist() == ["free", "paid", "free"]  # empty means the default
    assert [bool(v) for v in users["newsletter_opt_in"]] == [False, True, True]
    assert events_back["article_id"].isna().tolist() == [False, False, False, True]
    assert events_back["scroll_depth"].iloc[1] == pytest.approx(0.75)


def _rejects(report) -> set[tuple[int | None, str | None]]:
    return {(r.row, r.column) for f in report.files for r in f.rejects}


def test_bad_csv_rejected_with_line_numbers_and_nothing_written(any_settings, tmp_path):
    _platform(any_settings, tmp_path)
    before = _count(any_settings, "users")
    bad = _write(
        tmp_path,
        "bad_users.csv",
        """
user_id,brand_id,signup_at,country_code,device_type_id,subscription_tier,subscribed_at,newsletter_opt_in
10,1,2026-02-01T08:00:00Z,GB,1,free,,false
11,1,2026-02-01,FR,1,free,,false
10,1,2026-02-02,GB,1,free,,false
abc,1,2026-02-02,GB,1,free,,false
12,1,2026-02-30,GB,1,free,,false
13,1,,GB,1,gold,,maybe

14,1,2026-02-05,GB,1,paid,2026-02-01,true
2,1,2026-02-05,GB,1,free,,false
15,9,2026-02-05,GB,4,free,,false
""",
    )
    report = import_files(any_settings, "users", [bad])
    assert not report.ok
    (file,) = report.files
    assert file.rows_loaded == 0 and file.row_unit == "line"
    expected = {
        (3, "country_code"),  # FR not in countries
        (4, "user_id"),  # duplicates line 2
        (5, "user_id"),  # abc
        (6, "signup_at"),  # no 30 February
        (7, "signup_at"),
        (7, "subscription_tier"),
        (7, "newsletter_opt_in"),
        (9, "subscribed_at"),  # before signup (line 8 is blank)
        (10, "user_id"),  # already in the database
        (11, "brand_id"),
        (11, "device_type_id"),
    }
    assert _rejects(report) == expected
    assert file.problems == len(expected) and file.rows_rejected == 8 and file.rows_read == 9
    reasons = {(r.row, r.column): r.describe() for r in file.rejects}
    assert reasons[(3, "country_code")] == "line 3: country_code 'FR' not found in countries.country_code"
    assert reasons[(4, "user_id")] == "line 4: user_id '10' duplicates line 2"
    assert reasons[(5, "user_id")] == "line 5: user_id 'abc' is not an integer"
    assert "'2026-02-30' is not an ISO-8601 timestamp" in reasons[(6, "signup_at")]
    assert reasons[(7, "signup_at")] == "line 7: signup_at is missing (required)"
    assert "'gold' is not one of free, paid" in reasons[(7, "subscription_tier")]
    assert "is before signup_at '2026-02-05'" in reasons[(9, "subscribed_at")]
    assert reasons[(10, "user_id")] == "line 10: user_id '2' already in users"
    assert _count(any_settings, "users") == before


def test_bad_parquet_rejected_with_row_numbers(any_settings, tmp_path):
    _platform(any_settings, tmp_path)
    good = tmp_path / "events.parquet"
    _events(tmp_path).to_parquet(good, index=False)
    _load(any_settings, "events", good)
    bad = pd.DataFrame(
        {
            "event_id": [5, 6, 7, 7, 3, 9],
            "session_id": [1000, 4242, 1000, 1000, 1000, 1000],
            "user_id": [1, 1, 1, 1, 1, 1],
            "article_id": pd.array([100, 100, 999, 100, 100, 100], dtype="Int64"),
            "event_type": ["click", "scroll", "page_view", "page_view", "share", "scroll"],
            "event_at": pd.to_datetime(["2026-01-06 08:02"] * 6).tz_localize("UTC"),
            "scroll_depth": [None, 1.5, None, None, None, -0.1],
            "engaged_seconds": pd.array([None, None, -3, None, None, None], dtype="Int64"),
        }
    )
    path = tmp_path / "bad_events.parquet"
    bad.to_parquet(path, index=False)
    before = _count(any_settings, "events")
    report = import_files(any_settings, "events", [path])
    assert report.files[0].row_unit == "row"
    assert _rejects(report) == {
        (1, "event_type"),
        (2, "session_id"),
        (2, "scroll_depth"),
        (3, "article_id"),
        (3, "engaged_seconds"),
        (4, "event_id"),
        (5, "event_id"),
        (6, "scroll_depth"),
    }
    reasons = [r.describe("row") for r in report.files[0].rejects]
    assert "row 2: scroll_depth '1.5' is out of range: must be between 0 and 1" in reasons
    assert "row 3: engaged_seconds '-3' is out of range: must be at least 0" in reasons
    assert "row 4: event_id '7' duplicates row 3" in reasons
    assert _count(any_settings, "events") == before


def test_each_file_all_or_nothing_and_rejects_listed_up_to_the_limit(any_settings, tmp_path):
    _platform(any_settings, tmp_path)
    ok = _write(tmp_path, "ok.csv", "category_id,name\n4,culture\n")
    rows = "\n".join(f"{i}," for i in range(50, 80))  # 30 rows, each missing its name
    bad = _write(tmp_path, "bad.csv", "category_id,name\n5,science\n" + rows + "\n")
    report = import_files(any_settings, "categories", [ok, bad], max_rejects=5)
    assert [f.rows_loaded for f in report.files] == [1, 0]
    assert not report.ok
    assert report.files[1].rows_rejected == 30 and report.files[1].problems == 30
    assert [r.row for r in report.files[1].rejects] == [3, 4, 5, 6, 7]
    assert _count(any_settings, "categories") == 4  # 3 + culture; not science


def test_a_file_gone_while_an_earlier_one_loads_is_refused_naming_what_was_committed(any_settings, tmp_path):
    _reference(any_settings, tmp_path)
    first = _write(tmp_path, "a.csv", "category_id,name\n4,culture\n5,science\n")
    second = _write(tmp_path, "b.csv", "category_id,name\n6,travel\n")

    class DeleteSecondOnceFirstLoads(logging.Handler):  # the importer logs each file's outcome once written
        def emit(self, record: logging.LogRecord) -> None:
            if "rows loaded" in record.msg and record.args[0] == first:
                second.unlink()

    logger, handler = logging.getLogger("ownlens_ml.data.importer"), DeleteSecondOnceFirstLoads()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with pytest.raises(ValidationError) as refused:
            import_files(any_settings, "categories", [first, second])
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert (
        f"{second}: no such file; check the path; committed before it (each file is all-or-nothing): {first} (2 rows)"
        in str(refused.value)
    )
    assert _count(any_settings, "categories") == 5  # 3 + a.csv's two, as the message says


def test_compressed_csv_files_load_and_their_text_is_checked_for_nul_bytes(local_settings, tmp_path):
    _reference(local_settings, tmp_path)
    plain = "category_id,name\n{id},{name}\n"
    gz, bz2_ = tmp_path / "c.csv.gz", tmp_path / "c.csv.bz2"
    gz.write_bytes(gzip.compress(plain.format(id=4, name="culture").encode()))
    bz2_.write_bytes(bz2.compress(plain.format(id=5, name="science").encode()))
    with zipfile.ZipFile(tmp_path / "c.csv.zip", "w") as archive:
        archive.writestr("c.csv", plain.format(id=6, name="travel"))
    _load(local_settings, "categories", gz, bz2_, tmp_path / "c.csv.zip")
    assert _count(local_settings, "categories") == 6
    nul = tmp_path / "nul.csv.gz"
    nul.write_bytes(gzip.compress(b'category_id,name\n7,ok\n8,"cut\x00short"\n'))
    with pytest.raises(ValidationError, match="nul.csv.gz: line 3 contains a NUL byte"):
        import_files(local_settings, "categories", [nul])


def test_parquet_values_a_column_cannot_hold_are_refused_with_column_and_row(any_settings, tmp_path):
    _reference(any_settings, tmp_path)
    path = tmp_path / "brands.parquet"
    pq.write_table(
        pa.table(
            {
                "brand_id": pa.array([7, 2**64 - 1, 9], pa.uint64()),
                "name": pa.array([["a", "b"], ["c"], ["d"]]),
                "domain": ["a.example", "b.example", "c.example"],
            }
        ),
        path,
    )
    reasons = [r.describe("row") for r in import_files(any_settings, "brands", [path]).files[0].rejects]
    assert "row 2: brand_id '18446744073709551615' is out of range for SMALLINT" in reasons, reasons
    assert "row 1: name \"['a' 'b']\" is a list or struct; a column holds one value per row" in reasons, reasons
    struct = tmp_path / "struct.parquet"
    pq.write_table(pa.table({"brand_id": [8], "name": [{"x": 1}], "domain": ["d.example"]}), struct)
    reasons = [r.describe("row") for r in import_files(any_settings, "brands", [struct]).files[0].rejects]
    assert reasons == ["row 1: name \"{'x': 1}\" is a list or struct; a column holds one value per row"]
    assert _count(any_settings, "brands") == 2


def test_one_timestamp_range_for_csv_and_parquet(local_settings, tmp_path):
    _reference(local_settings, tmp_path)
    csv = _write(tmp_path, "authors.csv", "author_id,brand_id,name,joined_at\n20,1,Old,1500-06-01T00:00:00Z\n")
    parquet = tmp_path / "authors.parquet"
    pq.write_table(
        pa.table(
            {
                "author_id": [21],
                "brand_id": [1],
                "name": ["Old"],
                "joined_at": pa.array([datetime(1500, 6, 1, tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
            }
        ),
        parquet,
    )
    report = import_files(local_settings, "authors", [csv, parquet])
    reasons = [r.reason for f in report.files for r in f.rejects]
    assert (
        reasons
        == ["is outside the timestamp range 1677-09-22..2262-04-11 (the platform's timestamps are nanoseconds)"] * 2
    ), reasons
    assert _count(local_settings, "authors") == 2


def test_a_fifo_or_a_device_is_not_a_regular_file(local_settings, tmp_path):
    _reference(local_settings, tmp_path)
    os.mkfifo(tmp_path / "fifo.csv")
    (tmp_path / "zero.csv").symlink_to("/dev/zero")
    for name in ("fifo.csv", "zero.csv"):
        with pytest.raises(ValidationError, match=f"{name}: not a regular file"):
            import_files(local_settings, "categories", [tmp_path / name])


def test_sessions_ending_before_they_start_are_rejected(any_settings, tmp_path):
    _platform(any_settings, tmp_path)
    bad = _write(
        tmp_path,
        "sessions2.csv",
        """
session_id,user_id,brand_id,started_at,ended_at,device_type_id,referrer,page_views,engaged_seconds
2000,1,1,2026-01-07T08:00:00Z,2026-01-07T07:59:00Z,1,direct,1.0,-1
""",
    )
    report = import_files(any_settings, "sessions", [bad])
    assert _rejects(report) == {(2, "ended_at"), (2, "engaged_seconds")}  # 1.0 is a fine integer
    assert _count(any_settings, "sessions") == 2


def test_quoted_newlines_keep_line_numbers_true(local_settings, tmp_path):
    _reference(local_settings, tmp_path)
    path = _write(
        tmp_path,
        "articles.csv",
        """
article_id,brand_id,author_id,category_id,topic,title,published_at,word_count,is_premium,has_video,image_count
1,1,10,1,politics,"A title
over three
lines",2026-01-01T00:00:00Z,100,false,false,0
2,1,10,1,politics,Fine,2026-01-01T00:00:00Z,-5,false,false,0
""",
    )
    report = import_files(local_settings, "articles", [path])
    assert _rejects(report) == {(5, "word_count")}


def test_structural_problems_raise_before_anything_loads(local_settings, tmp_path):
    _reference(local_settings, tmp_path)
    good = _users(tmp_path)
    with pytest.raises(ValidationError, match="unknown table 'user'; importable tables: brands"):
        import_files(local_settings, "user", [good])
    missing = _write(tmp_path, "missing.csv", "user_id,brand_id\n1,1\n")
    with pytest.raises(ValidationError, match="missing required column.*signup_at, country_code, device_type_id"):
        import_files(local_settings, "users", [good, missing])
    unknown = _write(tmp_path, "unknown.csv", "category_id,name,colour\n9,x,red\n")
    with pytest.raises(ValidationError, match="'colour' are not in table categories"):
        import_files(local_settings, "categories", [unknown])
    dupes = _write(tmp_path, "dupes.csv", "category_id,name,name\n9,x,y\n")
    with pytest.raises(ValidationError, match="name appear more than once"):
        import_files(local_settings, "categories", [dupes])
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not a parquet file")
    with pytest.raises(ValidationError, match="garbage.parquet: cannot read the file"):
        import_files(local_settings, "categories", [garbage])
    with pytest.raises(ValidationError, match="unknown file type"):
        import_files(local_settings, "categories", [_write(tmp_path, "c.json", "{}")])
    empty = _write(tmp_path, "empty.csv", "")
    with pytest.raises(ValidationError, match="empty"):
        import_files(local_settings, "categories", [empty])
    assert _count(local_settings, "users") == 0  # `good` came first but nothing was loaded


def test_missing_tables_name_the_fix(any_settings, tmp_path):
    with pytest.raises(MissingTableError, match="does not exist; run `ownlens-ml db init`"):
        import_files(any_settings, "users", [_users(tmp_path)])


def _cli(settings: Settings, *args: str):
    env = {
        "OWNLENS_HOME": str(settings.home),
        "OWNLENS_DATABASE_URL": settings.database_url,
        "OWNLENS_PROFILE": settings.profile,
        "COLUMNS": "200",
    }
    try:
        return CliRunner().invoke(app, list(args), env=env)
    finally:
        State.settings = None


def test_cli_exit_code(any_settings, tmp_path):
    _reference(any_settings, tmp_path)
    good = _users(tmp_path)
    done = _cli(any_settings, "data", "import", "users", str(good))
    assert done.exit_code == 0, done.output
    assert "users.csv" in done.output
    bad = _write(tmp_path, "bad.csv", "category_id,name\n1,news\nx,\n")
    done = _cli(any_settings, "data", "import", "categories", str(bad))
    assert done.exit_code == 1
    assert "line 2: category_id+name" not in done.output  # keys are reported per key
    assert re.search(r"line 3: category_id 'x' is not an integer", done.output), done.output
    assert "file not loaded" in done.output


def test_contract_documented_and_in_sync_with_the_schema():
    doc = DOC.read_text(encoding="utf-8")
    generated = doc.split("<!-- contract:begin -->\n", 1)[1].split("<!-- contract:end -->", 1)[0]
    assert generated == contract_markdown(), (
        "docs/import-contract.md is out of date; regenerate the part between the markers with "
        "`python -c 'from ownlens_ml.data.importer import contract_markdown; print(contract_markdown(), end=\"\")'`"
    )
    assert contract("users").required == ["user_id", "brand_id", "signup_at", "country_code", "device_type_id"]
    assert contract("events").columns["event_type"].allowed[0] == "page_view"


@pytest.mark.skipif(not MIND_NEWS.is_file(), reason="MIND subset not present on this machine")
def test_real_mind_news_slice_imports_as_articles(local_settings, tmp_path):
    """A slice of real MIND news, mapped to the articles contract in a temp dir (never committed)."""
    news = pd.read_csv(
        MIND_NEWS,
        sep="\t",
        header=None,
        nrows=300,
        quoting=3,
        names=["news_id", "category", "subcategory", "title", "abstract", "url", "te", "ae"],
    )
    init_db(local_settings)
    cats = sorted(news["category"].unique())
    _load(local_settings, "brands", _write(tmp_path, "b.csv", "brand_id,name,domain\n1,MSN,msn.example\n"))
    _load(
        local_settings,
        "authors",
        _write(tmp_path, "a.csv", "author_id,brand_id,name,joined_at\n1,1,Newsroom,2019-01-01\n"),
    )
    cat_file = tmp_path / "cats.csv"
    pd.DataFrame({"category_id": range(1, len(cats) + 1), "name": cats}).to_csv(cat_file, index=False)
    _load(local_settings, "categories", cat_file)
    articles = pd.DataFrame(
        {
            "article_id": news["news_id"].str[1:].astype(int),
            "brand_id": 1,
            "author_id": 1,
            "category_id": news["category"].map({c: i for i, c in enumerate(cats, 1)}),
            "topic": news["subcategory"],
            "title": news["title"],
            "published_at": "2019-11-09T00:00:00Z",  # MIND has no publish time
            "word_count": news["abstract"].fillna("").str.split().str.len(),
            "is_premium": "false",
            "has_video": news["subcategory"].str.contains("video"),
            "image_count": 0,
        }
    )
    path = tmp_path / "mind_articles.csv"
    articles.to_csv(path, index=False)
    report = _load(local_settings, "articles", path)
    assert report.rows_loaded == len(news) == _count(local_settings, "articles")
