"""The upload page in a real browser: headless Chromium (Debian's `chromium`, driven by playwright) picks a photo
on the page of a real server, waits for the answer, and checks the label, the bars, the viewpoint and where the
car's box is drawn; error and non-car answers show their messages. Screenshots go to the test's tmp folder.

The server runs in this process so that the red-box stand-in detector (tests/red_box_detector.py) finds the car
where the test drew it. With CARVISION_SCREENSHOT set, the box screenshot is also saved to
docs/img/serve-page-box.png; when it names a project folder that holds models/ (e.g. a finished `make demo`),
`test_readme_screenshot` serves those models and saves docs/img/serve-page.png from one of its sample photos.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import httpx
import pytest
from red_box_detector import SCORE, car_photo, use_red_box_detector

from carvision.recognise import Recogniser
from carvision.serve.app import create_app
from carvision.serve.limits import Limits
from carvision.settings import DetectorSettings
from conftest import REPO

from .live_server import detector_trained, start_in_thread

W, H = 800, 600  # px, upright
CAR = (430, 150, 750, 390)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """Debian's chromium (playwright's own browser download cannot work offline). CI installs it when missing
    (.ci/run) and sets CARVISION_REQUIRE_BROWSER, so that there a missing browser fails instead of skipping."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        message = f"no chromium at {path}: apt-get install chromium"
        if os.environ.get("CARVISION_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def boxed_server(trained_tasks, tmp_path_factory):
    """A server whose make/model and viewpoint models learnt from detector crops, with the red-box detector."""
    with pytest.MonkeyPatch.context() as mp:
        use_red_box_detector(mp)
        detector = dataclasses.asdict(DetectorSettings(min_box_fraction=0.1))
        models = detector_trained(
            Path(trained_tasks.paths.models), tmp_path_factory.mktemp("page") / "models", detector
        )
        server = start_in_thread(create_app(Recogniser.load(models, device="cpu"), Limits()))
        yield server
        server.stop()


@pytest.fixture(scope="module")
def page_photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("page-photos")
    car_photo(folder / "car.jpg", (W, H), CAR, orientation=6)  # stored turned: shown and boxed upright
    car_photo(folder / "none.jpg", (W, H), None)
    (folder / "notes.jpg").write_text("<html><body>not a photo</body></html>")
    return folder


def recognise_on_page(browser, url: str, photo: Path, viewport=(1200, 800)):
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    page.goto(url + "/")
    page.wait_for_selector("body[data-state=ready]")
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("body[data-state=done], body[data-state=error]", timeout=30_000)
    return page


def test_the_page_shows_the_label_bars_viewpoint_and_the_box_where_the_answer_puts_it(
    browser, boxed_server, page_photos, tmp_path
):
    photo = page_photos / "car.jpg"
    answer = httpx.post(f"{boxed_server.url}/v1/predict", files={"files": photo.read_bytes()}).json()["results"][0]
    assert answer["box"] == pytest.approx(CAR, abs=3) and answer["size"] == [W, H]

    page = recognise_on_page(browser, boxed_server.url, photo)
    assert page.get_attribute("body", "data-state") == "done"
    labels = page.locator("#top5 li .label").all_text_contents()
    assert labels == [t["label"] for t in answer["make_model"]]  # the top-1 first, all five bars
    assert page.locator("#top5 li").count() == 5
    first_bar = page.locator("#top5 li .fill").first.bounding_box()
    track = page.locator("#top5 li .track").first.bounding_box()
    assert first_bar["width"] == pytest.approx(track["width"] * answer["make_model"][0]["prob"], abs=2)
    assert page.text_content("#viewpoint") == answer["viewpoint"]["label"]
    assert page.text_content("#verdict").startswith("A car photo" if answer["is_car"] else "Not a car photo")
    assert page.is_visible("#box") and page.text_content("#box-label") == f"car {SCORE:.2f}"

    # The photo is shown upright (the browser applies its EXIF orientation), and the box sits on the car.
    img = page.locator("#photo").bounding_box()
    box = page.locator("#box").bounding_box()
    assert img["width"] / img["height"] == pytest.approx(W / H, rel=0.01)
    scale = img["width"] / W
    x0, y0, x1, y1 = answer["box"]
    assert box["x"] == pytest.approx(img["x"] + x0 * scale, abs=2)
    assert box["y"] == pytest.approx(img["y"] + y0 * scale, abs=2)
    assert box["width"] == pytest.approx((x1 - x0) * scale, abs=2)
    assert box["height"] == pytest.approx((y1 - y0) * scale, abs=2)

    shot = tmp_path / "serve-page-box.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("CARVISION_SCREENSHOT"):
        (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, REPO / "docs" / "img" / "serve-page-box.png")
    page.close()


def test_a_photo_without_a_car_says_so(browser, boxed_server, page_photos, tmp_path):
    page = recognise_on_page(browser, boxed_server.url, page_photos / "none.jpg")
    assert page.text_content("#verdict").startswith("Not a car photo")
    assert page.is_visible("#note") and "found no car" in page.text_content("#note")
    assert not page.is_visible("#box")
    assert page.locator("#top5 li").count() == 5  # the guesses are still shown, dimmed
    page.screenshot(path=str(tmp_path / "no-car.png"))
    page.close()


def test_a_file_that_is_not_a_photo_shows_the_services_error(browser, boxed_server, page_photos):
    page = recognise_on_page(browser, boxed_server.url, page_photos / "notes.jpg")
    assert page.get_attribute("body", "data-state") == "error"
    assert page.is_visible("#error") and not page.is_visible("#result")
    message = page.text_content("#error-message")
    assert "not an image" in message and "(not_an_image)" in message
    page.close()


def test_a_photo_dropped_on_the_page_is_recognised(browser, boxed_server, page_photos):
    """The drop zone: a file dropped on it (a DataTransfer built in the page, as a drag from the desktop gives)."""
    data = list((page_photos / "car.jpg").read_bytes())
    page = browser.new_page()
    page.goto(boxed_server.url + "/")
    page.wait_for_selector("body[data-state=ready]")
    transfer = page.evaluate_handle(
        """(bytes) => {
            const t = new DataTransfer();
            t.items.add(new File([new Uint8Array(bytes)], "dropped.jpg", {type: "image/jpeg"}));
            return t;
        }""",
        data,
    )
    page.dispatch_event("#upload", "dragover", {"dataTransfer": transfer})
    assert "over" in page.get_attribute("#upload", "class")  # the zone shows it will take the drop
    page.dispatch_event("#upload", "drop", {"dataTransfer": transfer})
    page.wait_for_selector("body[data-state=done]", timeout=30_000)
    assert page.is_visible("#box") and page.locator("#top5 li").count() == 5
    assert "dropped.jpg" in page.get_attribute("#photo", "alt")
    page.close()


def test_readme_screenshot(browser):
    """docs/img/serve-page.png from a finished project's models and the first of its sample photos that they call a
    car with a confident make/model (only when CARVISION_SCREENSHOT names such a folder, e.g. /work/demo)."""
    project = Path(os.environ.get("CARVISION_SCREENSHOT", "/nonexistent"))
    if not (project / "models").is_dir():
        pytest.skip("set CARVISION_SCREENSHOT to a project folder with models/ to take the README screenshot")
    server = start_in_thread(create_app(Recogniser.load(project / "models", device="cpu"), Limits()))
    try:
        for photo in sorted((project / "data" / "raw" / "sample" / "images").glob("*/*.jpg"))[:100]:
            r = httpx.post(f"{server.url}/v1/predict", files={"files": photo.read_bytes()})
            a = r.json()["results"][0] if r.status_code == 200 else {}
            if a.get("is_car") and a["make_model"][0]["prob"] > 0.8:
                break
        else:
            pytest.fail("no sample photo is a confident car")
        page = recognise_on_page(browser, server.url, photo, viewport=(1100, 700))
        assert page.get_attribute("body", "data-state") == "done"
        page.screenshot(path=str(REPO / "docs" / "img" / "serve-page.png"), full_page=True)
    finally:
        server.stop()
