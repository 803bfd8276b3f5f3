"""Registering uploads in a data collection from the dashboard, by keyboard only."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from rich.text import Text

from synapse_tui.engine.collections import Collection
from synapse_tui.engine.errors import UploadGone
from synapse_tui.engine.events import JobQueued, JobState, JobStateChanged
from synapse_tui.ui.app import SynapseApp
from synapse_tui.ui.collection_choice import build_plan, describe_plan, suggest_spec_map
from synapse_tui.ui.messages import EngineUpdate
from synapse_tui.ui.screens.collection import CollectionScreen
from synapse_tui.ui.screens.job_details import JobDetailsScreen, details_table
from tests.ui.conftest import TOKEN, Backend, settings_for, wait_for

COLLECTIONS = [("images", ["image", "meta"])]


@pytest.fixture
def collection_backend(tmp_path: Path) -> Iterator[Backend]:
    b = Backend(root=tmp_path / "server-c", token=TOKEN, collections=COLLECTIONS)
    b.start()
    yield b
    b.stop()


def make_app(backend: Backend, directory: Path, **kwargs: Any) -> SynapseApp:
    kwargs.setdefault("progress_interval", 0.05)
    settings = kwargs.pop("settings", None) or settings_for(backend)
    return SynapseApp(settings, str(directory), **kwargs)


def units(backend: Backend) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{backend.url}/data_units/",
        params={"data_collection": "1"},
        headers={"Synapse-Access-Token": f"Token {backend.token}"},
    )
    answer.raise_for_status()
    data = answer.json()
    return data["results"] if isinstance(data, dict) else data


async def open_dialog(pilot: Any) -> CollectionScreen:
    app = pilot.app
    await wait_for(pilot, lambda: app.bridge is not None and app.bridge.running)
    await wait_for(pilot, lambda: len(app.dashboard.browser.root.children) >= 2)
    await pilot.press("c")
    await wait_for(pilot, lambda: isinstance(app.screen, CollectionScreen))
    await pilot.pause()
    return app.screen


def plain(renderable: Any) -> str:
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def counts(app: Any) -> dict[str, int]:
    return app.dashboard.queue.counts()


async def test_choose_spec_queue_and_register(collection_backend: Backend, data_dir: Path) -> None:
    app = make_app(collection_backend, data_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_dialog(pilot)
        assert screen.collection is not None and screen.collection.name == "images"
        # enter: the collection; enter: the first spec (image); meta; enter: apply
        await pilot.press("enter", "enter", *"site=A", "enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, CollectionScreen))
        plan = app.dashboard.plan
        assert plan is not None and plan.spec == "image" and plan.meta == {"site": "A"}
        target = str(app.dashboard.query_one("#collection-target").render())
        assert "→ collection images (image, meta)" in target
        await pilot.press("u")  # the highlighted folder: images/ (two .tif files)
        await wait_for(pilot, lambda: counts(app).get("done") == 2, timeout=30)
        found = units(collection_backend)
        assert len(found) == 2
        assert {u["data_collection"] for u in found} == {1}
        assert all(set(u["files"]) == {"image"} for u in found)
        assert all(u["meta"].get("site") == "A" for u in found)
        lines = app.dashboard.log_widget.lines_written
        assert sum("data unit" in line and "collection 1" in line for line in lines) == 2
        # the details screen shows the data file and data unit ids
        await pilot.press("2" if app.size.width < 110 else "tab", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, JobDetailsScreen))
        details = app.screen.details  # type: ignore[attr-defined]
        assert details.unit_id in {u["id"] for u in found}
        fields = plain(details_table(details))
        assert "Data unit id" in fields and str(details.unit_id) in fields
        assert "Data file id" in fields and str(details.data_file_id) in fields
        await app.shutdown_engine()


async def test_group_by_stem_validation(collection_backend: Backend, data_dir: Path) -> None:
    pairs = data_dir / "pairs"
    pairs.mkdir()
    for stem in ("a", "b"):
        (pairs / f"{stem}.jpg").write_bytes(stem.encode() * 3000)
        (pairs / f"{stem}.json").write_bytes(b'{"stem": "%s"}' % stem.encode())
    app = make_app(collection_backend, data_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        browser = app.dashboard.browser
        await wait_for(pilot, lambda: len(browser.root.children) >= 3)
        await pilot.press("j", "j", "enter")  # images/, notes/, pairs/: open pairs/
        await wait_for(pilot, lambda: "jpg" in browser.extensions())
        screen = await open_dialog(pilot)
        await pilot.press("enter", "down", "down")  # specs: image, meta, group by stem
        assert screen.group_by_stem
        spec_map = screen.query_one("#spec-map")
        assert spec_map.value == "jpg=image,json=meta"  # type: ignore[attr-defined]
        await pilot.press("enter")  # to the spec map
        assert app.focused is spec_map
        await pilot.press("ctrl+a", "ctrl+k", *"jpg=picture", "ctrl+s")
        error = screen.query_one("#collection-error")
        await wait_for(pilot, lambda: "no spec picture" in str(error.render()))
        assert isinstance(app.screen, CollectionScreen)  # still open, nothing crashed
        assert error.has_class("-shown")
        await pilot.press("ctrl+a", "ctrl+k", *"jpg=image,json=meta", "enter", "enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, CollectionScreen))
        plan = app.dashboard.plan
        assert plan is not None and plan.group_by_stem
        assert plan.spec_map == {"jpg": "image", "json": "meta"}
        await pilot.press("u")  # pairs/ is highlighted
        await wait_for(pilot, lambda: counts(app).get("done") == 4, timeout=30)
        found = units(collection_backend)
        assert len(found) == 2
        assert all(set(u["files"]) == {"image", "meta"} for u in found)
        await app.shutdown_engine()


async def test_backend_without_collections(backend: Backend, data_dir: Path) -> None:
    app = make_app(backend, data_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.bridge is not None and app.bridge.running)
        await pilot.press("c")
        await wait_for(
            pilot, lambda: any("no data collections" in n.message for n in app._notifications)
        )
        assert not isinstance(app.screen, CollectionScreen)

        async def missing() -> list[Collection]:  # a plain drf server: 404
            raise UploadGone("upload not found: Not found.", status=404)

        assert app.bridge is not None
        app.bridge.collections = missing  # type: ignore[method-assign]
        app.clear_notifications()
        await pilot.press("c")
        await wait_for(pilot, lambda: any("404" in n.message for n in app._notifications))
        assert app.dashboard.plan is None
        await app.shutdown_engine()


def test_plan_helpers() -> None:
    images = Collection(1, "images", ("image", "meta"))
    assert suggest_spec_map(images.specs, {"tif", "json", "txt"}) == "json=meta,tif=image"
    assert suggest_spec_map(("json", "csv"), {"csv", "json"}) == "csv=csv,json=json"
    plan = build_plan(images, "meta", False, "", "a=1, b=2")
    assert plan.meta == {"a": "1", "b": "2"}
    assert describe_plan(plan) == "→ collection images (image, meta) · spec meta · meta a=1,b=2"
    with pytest.raises(Exception, match="KEY=VALUE"):
        build_plan(images, "meta", False, "", "oops")
    with pytest.raises(Exception, match="spec map"):
        build_plan(images, None, True, "", "")


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_collection_modal_snapshot(
    snap_compare: Any, collection_backend: Backend, data_dir: Path, size: tuple[int, int]
) -> None:
    async def opened(pilot: Any) -> None:
        screen = await open_dialog(pilot)
        for field in screen.query("Input"):
            field.cursor_blink = False  # type: ignore[attr-defined]
        await pilot.pause(0.1)

    app = make_app(collection_backend, data_dir, frozen=True)
    assert snap_compare(app, terminal_size=size, run_before=opened)


async def test_palette_opens_dialog_and_escape_cancels(
    collection_backend: Backend, data_dir: Path
) -> None:
    app = make_app(collection_backend, data_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.bridge is not None and app.bridge.running)
        await pilot.press("ctrl+p", *"Choose data collection")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, CollectionScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, CollectionScreen))
        assert app.dashboard.plan is None
        assert not app.dashboard.query_one("#collection-target").has_class("-shown")
        # choosing "none" clears a plan: back to plain uploads
        app.dashboard.set_plan(
            build_plan(Collection(1, "images", ("image", "meta")), "image", False, "", "")
        )
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CollectionScreen))
        await pilot.press("up", "enter")  # none: plain uploads
        await wait_for(pilot, lambda: not isinstance(app.screen, CollectionScreen))
        assert app.dashboard.plan is None
        await app.shutdown_engine()


async def test_registering_state_is_distinct(backend: Backend, data_dir: Path) -> None:
    app = make_app(backend, data_dir, start_engine=False)
    async with app.run_test(size=(120, 40)) as pilot:
        queue = app.dashboard.queue
        app.dashboard.apply(EngineUpdate([JobQueued(7, "x.tif", 10)], {}))
        app.dashboard.apply(EngineUpdate([JobStateChanged(7, JobState.FINALIZING)], {}))
        final = queue.cells(7)[0]
        assert isinstance(final, Text)
        app.dashboard.apply(EngineUpdate([JobStateChanged(7, JobState.REGISTERING)], {}))
        await pilot.pause()
        registering = queue.cells(7)[0]
        assert isinstance(registering, Text)
        assert registering.plain == "◇ regist" and registering.plain != final.plain
        assert registering.spans[0].style != final.spans[0].style  # its own colour
        assert "registering 1" in str(app.dashboard.counts.render())
