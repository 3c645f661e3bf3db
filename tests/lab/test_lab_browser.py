"""`scorelab lab` in a real browser: Debian's headless chromium driven by Selenium (chromium-driver).

Loads the page, moves a control (the false-attribution rate of the rural cameras) and checks that the plots'
data change, with the unchanged policy left as it was. Skipped, with the reason, where selenium, chromium or
chromedriver is missing. SCORELAB_LAB_SCREENSHOTS=DIR keeps before/after screenshots there.
"""

import os
import shutil
from pathlib import Path

import pytest


webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install '.[test]')")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver)")


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1800",
              "--disable-gpu", "--no-first-run"):
        opts.add_argument(a)
    opts.binary_location = CHROMIUM
    try:
        d = webdriver.Chrome(service=Service(DRIVER), options=opts)
    except Exception as e:  # noqa: BLE001 - a browser that cannot start is an environment problem
        pytest.skip(f"chromium could not start under chromedriver: {type(e).__name__}: {str(e).splitlines()[0]}")
    yield d
    d.quit()


def _views(d) -> int:
    return int(d.find_element("tag name", "body").get_attribute("data-views") or 0)


def _plot_y(d, div: str) -> list:
    return d.execute_script(f"return document.getElementById({div!r}).data.map(t => Array.from(t.y));")


def _shot(d, name: str) -> None:
    where = os.environ.get("SCORELAB_LAB_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        d.save_screenshot(str(Path(where) / name))


def test_moving_a_control_changes_the_plots(browser, lab_url):
    from selenium.webdriver.support.ui import WebDriverWait

    d = browser
    d.get(lab_url + "?preset=rr1")
    WebDriverWait(d, 60).until(lambda d: _views(d) >= 1)
    d.execute_script("document.getElementById('population').value = 5000; document.getElementById('days').value = 60;"
                     "document.getElementById('population').dispatchEvent(new Event('change'));")
    WebDriverWait(d, 60).until(lambda d: _views(d) >= 2 and d.find_element("tag name", "body").get_attribute("data-state") == "ready")
    _shot(d, "lab-before.png")
    before = _plot_y(d, "plot-wrongful")
    assert before[0] == before[1]  # nothing moved yet: the changed policy is the preset's
    assert d.execute_script("return typeof Plotly") == "object"  # served by the lab itself, no internet
    n = _views(d)
    slider = d.find_element("css selector", 'input[data-path="sensors[camera].false_attribution.rate.rural"]')
    from selenium.webdriver.common.keys import Keys

    slider.click()  # a real user event on the control, then move it to the far right
    slider.send_keys(Keys.END)
    WebDriverWait(d, 60).until(lambda d: _views(d) > n and d.find_element("tag name", "body").get_attribute("data-state") == "ready")
    _shot(d, "lab-after.png")
    after = _plot_y(d, "plot-wrongful")
    groups = d.execute_script("return Array.from(document.getElementById('plot-wrongful').data[0].x);")
    rural = groups.index("rural")
    assert after[0] == before[0]  # the unchanged policy on the same people is unchanged
    assert after[1][rural] > 5 * max(before[1][rural], 0.1)  # rural wrongful penalties rise
    assert "moved" in d.find_element("css selector", '.knob[data-path="sensors[camera].false_attribution.rate.rural"]').get_attribute("class")
    assert "answered in" in d.find_element("id", "status").text
    assert not [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]
