"""Annotators must not be anchored to the reward model they are meant to correct.

Against a real Label Studio (started by .ci/labelstudio.py): mintline's project keeps the reward
model's predictions, so the `/next/` queue, and the browser's labelling stream through a first
Data Manager tab sorted by score, still serve the least certain pair first, but does not show
them (`show_collab_predictions` off), so a task opens with no choice selected, in headless
Chromium as an annotator sees it. A project made before (predictions shown) is switched
off when mintline binds it, keeping its queue. A pair every annotator skipped counts as skipped,
not pending.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid

import pytest

from annotation.config import LabelStudioSettings
from annotation.labelstudio import LABEL_CONFIG, QUEUE_VIEW, LabelStudioClient
from annotation.labelstudio_annotators import choice_result
from annotation.ledger import Ledger
from annotation.pairs import PreferencePair
from annotation.project import bind_project
from annotation.pull import pull_annotations
from annotation.push import push_pairs, task_payload

pytestmark = pytest.mark.labelstudio
MODEL_VERSION = "rm-anchoring-1"
CONFIDENCES = [0.93, 0.61, 0.78, 0.55, 0.86]  # the queue must serve them ascending
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _pairs(tag: str) -> list[PreferencePair]:
    return [
        PreferencePair(
            f"{tag} question {i}: what does sorted() return?",
            f"A new list ({tag} {i}).",
            f"The same list, sorted in place ({tag} {i}).",
            model="nano-test",
            predicted="a",
            confidence=confidence,
        )
        for i, confidence in enumerate(CONFIDENCES)
    ]


@pytest.fixture(scope="module")
def client(label_studio) -> LabelStudioClient:
    url, key = label_studio
    return LabelStudioClient(url, key, retries=3, backoff=0.2)


@pytest.fixture(scope="module")
def project(client, tmp_path_factory):
    """A project made and filled by mintline: (project id, ledger, pairs)."""
    ledger = Ledger(tmp_path_factory.mktemp("anchoring") / "ledger.sqlite")
    settings = LabelStudioSettings(url=client.url, project_title=f"mintline anchoring {uuid.uuid4().hex[:8]}")
    project_id, created = bind_project(client, ledger, settings, MODEL_VERSION)
    pairs = _pairs("mintline")
    push_pairs(client, ledger, project_id, pairs, model_version=MODEL_VERSION)
    assert created
    yield project_id, ledger, pairs
    ledger.close()


def _project_showing_predictions(client: LabelStudioClient, tag: str) -> int:
    """A project as mintline made them before: the same labelling config, predictions shown."""
    project_id = client.sdk.projects.create(
        title=f"mintline anchoring {tag} {uuid.uuid4().hex[:8]}",
        label_config=LABEL_CONFIG,
        sampling="Uncertainty sampling",
        show_collab_predictions=True,
    ).id
    client.sdk.projects.import_tasks(project_id, request=[task_payload(p, "ab", MODEL_VERSION) for p in _pairs(tag)])
    client.sdk.projects.update(project_id, model_version=MODEL_VERSION)
    assert client.project(project_id)["show_collab_predictions"] is True
    return project_id


def test_predictions_order_the_queue_but_are_not_shown(client, project):
    project_id, ledger, pairs = project
    settings = client.project(project_id)
    assert settings["show_collab_predictions"] is False
    assert settings["model_version"] == MODEL_VERSION  # what the uncertainty queue sorts by
    by_prompt = {p.prompt: p for p in pairs}
    served = []
    while (task := client.next_task(project_id)) is not None:
        assert len(served) < len(pairs), "the queue served a task twice"
        assert task.get("predictions") in (None, [])  # the annotator's task carries no prediction
        pair = by_prompt[task["data"]["prompt"]]
        served.append(pair.confidence)
        if len(served) == 2:  # the Skip button: a cancelled annotation with an empty result
            client.sdk.annotations.create(task["id"], result=[], was_cancelled=True)
        else:
            client.sdk.annotations.create(task["id"], result=choice_result("A"))
    assert served == sorted(CONFIDENCES)  # least certain first, every pair once
    # the browser's queue: a first Data Manager tab by ascending score, whose table shows no prediction
    (tab,) = [
        view
        for view in client.get_json("tabs", "api/dm/views/", {"project": project_id})
        if view["data"]["title"] == QUEUE_VIEW
    ]
    assert tab["data"]["ordering"] == ["tasks:predictions_score"]
    assert "tasks:predictions_results" in tab["data"]["hiddenColumns"]["labeling"]

    # The pair its only annotator skipped is skipped, not pending: nothing more is coming for it.
    pull_annotations(client, ledger, project_id)
    counts = ledger.counts()
    assert (counts["labelled"], counts["pending"], counts["skipped"], counts["skips"]) == (4, 0, 1, 1)
    skipped = min((p for p in pairs if p.confidence != min(CONFIDENCES)), key=lambda p: p.confidence)
    assert ledger.skipped_pairs() == [skipped.pair_id]


def test_a_project_that_showed_predictions_is_switched_off_and_keeps_its_queue(client, tmp_path, caplog):
    project_id = _project_showing_predictions(client, "older")
    with Ledger(tmp_path / "ledger.sqlite") as ledger, caplog.at_level(logging.WARNING, logger="annotation"):
        settings = LabelStudioSettings(url=client.url, project_id=project_id)
        assert bind_project(client, ledger, settings, MODEL_VERSION) == (project_id, False)
    after = client.project(project_id)
    assert after["show_collab_predictions"] is False and after["model_version"] == MODEL_VERSION
    assert "showed the reward model's predictions to annotators; they are hidden now" in caplog.text
    task = client.next_task(project_id)
    assert task["data"]["prompt"].startswith("older question 3:")  # confidence 0.55, the least certain
    tabs = client.get_json("tabs", "api/dm/views/", {"project": project_id})
    assert [view["data"]["title"] for view in tabs] == [QUEUE_VIEW]


# -- in a real browser, as an annotator ---------------------------------------------------------------
@pytest.fixture(scope="module")
def annotator_browser(label_studio):
    """Headless Chromium signed up as a fresh annotator (Debian's chromium + chromedriver, via selenium)."""
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium / chromedriver missing under CI: .ci/run should have installed them")
        pytest.skip("Debian's chromium and chromium-driver are missing (apt-get install chromium chromium-driver)")
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium must never fetch a browser or a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = label_studio
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(90)
    try:
        driver.get(f"{url}/user/signup/")
        driver.find_element(By.NAME, "email").send_keys(f"annotator-{uuid.uuid4().hex[:8]}@example.com")
        driver.find_element(By.NAME, "password").send_keys(uuid.uuid4().hex)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(driver, 90).until(lambda d: "/user/signup" not in d.current_url)
        yield driver, url
    finally:
        driver.quit()


def _open_label_stream(driver, url: str, project_id: int) -> tuple[list[bool], str]:
    """Open the project's labelling stream ("Label All Tasks"): the A / B / Tie buttons' states, the page's text."""
    import time

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{url}/projects/{project_id}/data?labeling=1")
    WebDriverWait(driver, 120).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "input[type=radio]")) == 3)
    time.sleep(2)  # the editor may apply a pre-annotation just after drawing the buttons
    states = [radio.is_selected() for radio in driver.find_elements(By.CSS_SELECTOR, "input[type=radio]")]
    return states, driver.find_element(By.TAG_NAME, "body").text


def test_a_fresh_task_opens_with_no_choice_selected(client, annotator_browser, tmp_path):
    driver, url = annotator_browser
    ours = client.sdk.projects.create(
        title=f"mintline anchoring browser {uuid.uuid4().hex[:8]}", label_config=LABEL_CONFIG
    ).id
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        bind_project(client, ledger, LabelStudioSettings(url=client.url, project_id=ours), MODEL_VERSION)
        push_pairs(client, ledger, ours, _pairs("browser"), model_version=MODEL_VERSION)
    states, page = _open_label_stream(driver, url, ours)
    assert states == [False, False, False]
    # the browser's stream follows the first tab's order (ascending score), not /next/: the least certain pair
    assert "browser question 3:" in page and "browser question 1:" not in page
    # The same page with predictions shown pre-selects the model's answer: what annotators saw before.
    showing = _project_showing_predictions(client, "shown")
    states, _ = _open_label_stream(driver, url, showing)
    assert states.count(True) == 1
