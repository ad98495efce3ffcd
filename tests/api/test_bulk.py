"""Bulk actions over HTTP: export jobs (progress, then download), evaluate, delete."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from typing import Any

import httpx

from conveyor.api import ApiDeps
from conveyor.server import create_app
from tests.api.conftest import Api, error_of, label_definition, until


async def seeded(api: Api, n: int, **changes: Any) -> str:
    """A fresh label-review pipeline with ``n`` tasks, all in the store."""
    definition = label_definition("bulk")
    definition.update(changes)
    name = await api.apply(definition)
    rows = [{"id": f"r{i}", "text": f"=text {i}"} for i in range(n)]
    r = await api.post(
        f"/api/v1/pipelines/{name}/tasks/batch", json={"rows": rows, "key_column": "id"}
    )
    assert r.json()["created"] == n, r.text

    async def total() -> int:
        return int((await api.get(f"/api/v1/pipelines/{name}/counts")).json()["total"])

    await until(total, lambda t: t == n)
    return name


async def finished_job(api: Api, job_id: str, who: str) -> dict[str, Any]:
    async def status() -> dict[str, Any]:
        r = await api.get(f"/api/v1/bulk/exports/{job_id}", as_=who)
        assert r.status_code == 200, r.text
        return dict(r.json())

    return await until(status, lambda j: j["state"] not in ("queued", "running"))


async def test_export_job_then_download(api: Api) -> None:
    name = await seeded(api, 3)
    r = await api.post("/api/v1/bulk/exports", json={"pipeline": name}, as_="vera")
    assert r.status_code == 202, r.text
    job = r.json()
    assert (
        job["owner"] == "vera"
        and job["format"] == "csv"
        and job["state"] in ("queued", "running", "done")
    )
    job = await finished_job(api, job["id"], "vera")
    assert (job["state"], job["rows_done"], job["rows_total"], job["error"]) == ("done", 3, 3, None)
    assert job["download"] == f"/api/v1/bulk/exports/{job['id']}/download" and job["size_bytes"] > 0

    r = await api.get(job["download"], as_="vera")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert f'filename="{name}-{job["id"]}.csv"' in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert sorted(row["task_key"] for row in rows) == ["r0", "r1", "r2"]
    assert {row["label.text"] for row in rows} == {"'=text 0", "'=text 1", "'=text 2"}

    # a ZIP of a filtered selection, by an admin; the viewer cannot see the admin's job
    body = {"pipeline": name, "format": "zip", "filter": {"workflow_ids": [f"{name}/r1"]}}
    admin_job = (await api.post("/api/v1/bulk/exports", json=body)).json()
    admin_job = await finished_job(api, admin_job["id"], "root")
    assert admin_job["rows_done"] == 1
    with zipfile.ZipFile(io.BytesIO((await api.get(admin_job["download"])).content)) as archive:
        assert sorted(archive.namelist()) == ["manifest.json", "tasks.csv", "tasks.jsonl"]
        [line] = archive.read("tasks.jsonl").decode().splitlines()
        assert json.loads(line)["workflow_id"] == f"{name}/r1"
    error_of(await api.get(f"/api/v1/bulk/exports/{admin_job['id']}", as_="vera"), 404, "no_job")
    error_of(await api.get(admin_job["download"], as_="vera"), 404, "no_job")
    assert admin_job["id"] not in {
        j["id"] for j in (await api.get("/api/v1/bulk/exports", as_="vera")).json()
    }
    assert {job["id"], admin_job["id"]} <= {
        j["id"] for j in (await api.get("/api/v1/bulk/exports")).json()
    }

    r = await api.delete(f"/api/v1/bulk/exports/{job['id']}", as_="vera")
    assert r.status_code == 204
    error_of(await api.get(f"/api/v1/bulk/exports/{job['id']}", as_="vera"), 404, "no_job")
    assert not list((api.data_dir / "exports").glob(f"{job['id']}*"))

    error_of(
        await api.post("/api/v1/bulk/exports", json={"pipeline": "nope-404"}),
        404,
        "unknown_pipeline",
    )


async def test_export_jobs_outlive_the_api_process(api: Api) -> None:
    name = await seeded(api, 2)
    job = (await api.post("/api/v1/bulk/exports", json={"pipeline": name}, as_="vera")).json()
    job = await finished_job(api, job["id"], "vera")
    # a job another process was running when it stopped: its record says running
    exports = api.data_dir / "exports"
    stopped = json.loads((exports / f"{job['id']}.job.json").read_text())
    stopped.update(id="0" * 32, state="running", rows_done=1, finished_at=None)
    (exports / f"{'0' * 32}.job.json").write_text(json.dumps(stopped))
    (exports / f"{'0' * 32}.csv.part").write_text("half a file")
    (exports / "garbled.job.json").write_text("{not json")

    deps = ApiDeps(conveyor=api.conveyor, sessions=api.sessions, data_dir=api.data_dir)
    transport = httpx.ASGITransport(app=create_app(deps))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as restarted:
        vera = {"Authorization": f"Bearer {api.keys['vera']}"}
        r = await restarted.get(f"/api/v1/bulk/exports/{job['id']}", headers=vera)
        assert r.status_code == 200, r.text
        assert {k: r.json()[k] for k in ("state", "rows_done", "size_bytes")} == {
            k: job[k] for k in ("state", "rows_done", "size_bytes")
        }
        r = await restarted.get(job["download"], headers=vera)
        assert r.status_code == 200
        assert sorted(row["task_key"] for row in csv.DictReader(io.StringIO(r.text))) == [
            "r0",
            "r1",
        ]
        r = await restarted.get(f"/api/v1/bulk/exports/{'0' * 32}", headers=vera)
        assert (r.json()["state"], r.json()["download"]) == ("failed", None)
        assert "start it again" in r.json()["error"]
        assert not (exports / f"{'0' * 32}.csv.part").exists()
        r = await restarted.delete(f"/api/v1/bulk/exports/{'0' * 32}", headers=vera)
        assert r.status_code == 204
    assert not list(exports.glob(f"{'0' * 32}*"))
    (exports / "garbled.job.json").unlink()


async def test_delete_needs_confirmation(api: Api) -> None:
    name = await seeded(api, 3)
    other = await seeded(api, 1)
    error_of(
        await api.post("/api/v1/bulk/delete", json={"pipeline": name}), 422, "confirmation_required"
    )
    one = {"filter": {"workflow_ids": [f"{name}/r0"]}, "confirm": True}
    r = await api.post("/api/v1/bulk/delete", json=one)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "deleted": 1,
        "already_gone": 0,
        "errors": [],
        "deleted_ids": [f"{name}/r0"],
    }
    error_of(await api.get(f"/api/v1/tasks/{name}/r0"), 404, "task_not_found")

    mixed = {"pipeline": name, "filter": {"workflow_ids": [f"{other}/r0"]}, "confirm": True}
    error_of(await api.post("/api/v1/bulk/delete", json=mixed), 422, "invalid_input")

    rest = {"pipeline": name, "filter": {"status": ["In Progress"]}, "confirm": True}
    r = await api.post("/api/v1/bulk/delete", json=rest)
    assert r.json()["deleted"] == 2, r.text
    assert (await api.get(f"/api/v1/pipelines/{name}/counts")).json()["total"] == 0
    assert (await api.get(f"/api/v1/pipelines/{other}/counts")).json()["total"] == 1


async def test_bulk_evaluate_start_status_cancel(api: Api) -> None:
    definition = label_definition("bulk")
    definition["nodes"][1]["evaluators"] = [
        {"name": "has_label", "kind": "regex", "fields": ["label"], "pattern": "."}
    ]
    name = await api.apply(definition)
    wid = await api.create(name, "e1")
    r = await until(
        lambda: api.post(f"/api/v1/tasks/{wid}/claim", json={"node": "label"}, as_="ana"),
        lambda r: r.status_code == 200,
    )
    r = await api.post(
        f"/api/v1/tasks/{wid}/submit",
        json={"node": "label", "token": r.json()["token"], "values": {"label": "neutral"}},
        as_="ana",
    )
    assert r.status_code == 200, r.text

    async def detail() -> dict[str, Any]:
        return dict((await api.get(f"/api/v1/tasks/{wid}")).json())

    await until(detail, lambda d: bool(d["nodes"][1]["evaluations"]))

    extra = {
        "node": "label",
        "evaluator": {"name": "long_label", "kind": "length", "fields": ["label"], "min_length": 3},
    }
    r = await api.post("/api/v1/bulk/evaluations", json={"pipeline": name, "entries": [extra]})
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["id"].startswith(f"bulk-evaluate/{name}/")
    assert started["evaluators"][0].startswith("label.long_label@")

    async def status(evaluation_id: str) -> dict[str, Any]:
        r = await api.get(f"/api/v1/bulk/evaluations/{evaluation_id}", as_="vera")
        assert r.status_code == 200, r.text
        return dict(r.json()["progress"])

    progress = await until(lambda: status(started["id"]), lambda p: p["state"] != "running")
    assert (progress["state"], progress["tasks_seen"], progress["evaluated"]) == ("finished", 1, 1)

    # by name, with an id of our choosing: the task evaluated it on submit already
    body = {"pipeline": name, "evaluators": ["label.has_label"], "id": f"eval-{name}"}
    r = await api.post("/api/v1/bulk/evaluations", json=body)
    assert r.json()["id"] == f"eval-{name}"
    r = await api.post(f"/api/v1/bulk/evaluations/eval-{name}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["progress"]["state"] in ("cancelled", "finished")
    progress = await status(f"eval-{name}")
    assert progress["state"] in ("cancelled", "finished")

    bad_ref = {"pipeline": name, "evaluators": ["label.nope"]}
    assert (
        "label.has_label"
        in error_of(await api.post("/api/v1/bulk/evaluations", json=bad_ref), 422)["message"]
    )
    both = {"pipeline": name, "evaluators": ["label.has_label"], "entries": [extra]}
    error_of(await api.post("/api/v1/bulk/evaluations", json=both), 422, "invalid_input")
    unknown = {"pipeline": "nope-404", "evaluators": ["a.b"]}
    error_of(await api.post("/api/v1/bulk/evaluations", json=unknown), 404, "unknown_pipeline")
    error_of(await api.get("/api/v1/bulk/evaluations/bulk-evaluate/none/x"), 404)
    error_of(await api.get(f"/api/v1/bulk/evaluations/{wid}"), 404, "not_found")
