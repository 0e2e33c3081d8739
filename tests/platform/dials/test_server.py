"""The local DIALS server answers with the DIALS v1 shapes (checked with plain HTTP requests)."""

from __future__ import annotations

import requests

from dqm_playground_ds.platform.dials.server import LocalDials
from tests.platform.dials.conftest import DATASET, LIMITED, TOKEN
from tests.platform.helpers import RUNS, TITLE_2D, TITLES_1D, make_table

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def get(server, route, headers=AUTH, **params):
    return requests.get(server.url + route, headers=headers, params=params, timeout=5)


def test_cursor_pages_default_10_capped_at_500_absolute_next(dials):
    page = get(dials, "th1/", dataset=DATASET).json()
    assert set(page) == {"next", "previous", "results"} and len(page["results"]) == 10
    assert page["next"].startswith(dials.url + "th1/?") and "next_token=" in page["next"]
    keys = [(r["dataset_id"], r["run_number"], r["ls_number"], r["me_id"]) for r in page["results"]]
    assert keys == sorted(keys)
    whole = get(dials, "th1/", dataset=DATASET, page_size=500).json()
    assert len(whole["results"]) == len(RUNS) * 40 * 2 and whole["next"] is None
    nxt = requests.get(page["next"], headers=AUTH, timeout=5).json()
    assert (nxt["results"][0]["run_number"], nxt["results"][0]["ls_number"]) >= keys[-1][1:3]
    rec = page["results"][0]
    assert list(rec)[:6] == ["dataset_id", "dataset", "me", "file_id", "run_number", "ls_number"]
    assert isinstance(rec["x_bin"], int) and isinstance(rec["entries"], int)


def test_page_size_above_500_is_silently_capped():
    with LocalDials({"tracker": make_table(n_ls=100)}, token=TOKEN) as big:  # 600 1D rows
        body = get(big, "th1/", page_size=10_000).json()
        assert len(body["results"]) == 500 and body["next"] is not None
        rest = requests.get(body["next"], headers=AUTH, timeout=5).json()
        assert len(rest["results"]) == 100 and rest["next"] is None


def test_mes_is_a_plain_list_and_2d_rows_are_y_rows(dials):
    mes = get(dials, "mes/").json()
    assert isinstance(mes, list) and {m["me"] for m in mes} == {*TITLES_1D, TITLE_2D}
    assert {m["dim"] for m in mes if m["me"] == TITLE_2D} == {2}
    rec = get(dials, "th2/", dataset=DATASET, me=TITLE_2D).json()["results"][0]
    assert len(rec["data"]) == rec["y_bin"] == 3 and len(rec["data"][0]) == rec["x_bin"] == 5


def test_filters_fields_counts_and_bad_values(dials):
    only = get(dials, "th1/", dataset=DATASET, run_number=RUNS[1], ls_number__lte=3,
               me__regex="PXLayer", page_size=500).json()["results"]  # fmt: skip
    assert {(r["run_number"], r["me"]) for r in only} == {(RUNS[1], TITLES_1D[0])}
    assert sorted(r["ls_number"] for r in only) == [1, 2, 3]
    assert get(dials, "th1/", me="no/such/ME").json()["results"] == []  # unknown ME: empty 200
    bad = get(dials, "th1/", run_number="abc")
    assert bad.status_code == 400 and "run_number" in bad.json()
    trimmed = get(dials, "run/", fields="run_number").json()["results"]
    assert all(list(r) == ["run_number"] for r in trimmed)
    for _ in range(2):  # encoded on the first request, then kept: the same answer
        hist = get(dials, "th1/", dataset=DATASET, fields="data,nope,run_number").json()["results"]
        assert hist and all(list(r) == ["run_number", "data"] for r in hist)  # serializer order
    whole = get(dials, "th1/", dataset=DATASET).json()["results"]
    assert [r["data"] for r in whole] == [r["data"] for r in hist] and "dataset" in whole[0]
    assert b", " not in get(dials, "th1/", dataset=DATASET).content  # compact, as DRF renders
    assert get(dials, "run/count/", dataset=DATASET).json() == {"count": len(RUNS)}
    missing = get(dials, "nothing/")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]


def test_auth_is_403_with_a_code_and_workspaces_are_checked(dials):
    none = get(dials, "mes/", headers={})
    assert none.status_code == 403 and none.json()["code"] == "authorization_not_found"
    bad = get(dials, "mes/", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 403 and bad.json()["code"] == "token_not_valid"
    unknown = get(dials, "mes/", headers={**AUTH, "Workspace": "nowhere"})
    assert unknown.status_code == 404 and unknown.json() == {
        "detail": "Workspace 'nowhere' not found"
    }
    limited = {"Authorization": f"Bearer {LIMITED}"}
    assert get(dials, "mes/", headers=limited).status_code == 403  # default workspace: tracker
    assert get(dials, "mes/", headers={**limited, "Workspace": "ecal"}).status_code == 200
