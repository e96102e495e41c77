"""The status page (docs/METRICS.md "Status page") in a real headless browser: Debian's
chromium and chromium-driver driven by python3-selenium (tools/setup installs them). A cluster
of its own (it tampers with a node's state) with an audit every 5 s: the page loads, shows three
members and one leader and draws its charts under load; after the leader is killed it shows
the dead node unreachable and the new leader; after a value is changed in one node's `kv`
column family with `ldb` (as the audit tests do), it flags that node's state digest.

FAUNA_STATUS_SCREENSHOTS=DIR saves the page under load (status-page.png) and with the
tampered node flagged (status-page-alert.png): docs/ holds the ones taken so."""
from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest

import fauna
from conftest import FaunaCluster, _bin_dir

CHROMEDRIVER = "/usr/bin/chromedriver"
DATA_GROUP = "0000000000000001"  # the data group's key prefix in every column family


def _require(what: str) -> None:
    message = f"{what} is missing: run tools/setup (Debian's chromium, chromium-driver, python3-selenium)"
    if os.environ.get("FAUNA_REQUIRE_CLUSTER"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def browser() -> Iterator[object]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _require("python3-selenium")
    if not os.access(CHROMEDRIVER, os.X_OK):
        _require(CHROMEDRIVER)
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(10)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page_cluster(tmp_path: Path) -> Iterator[FaunaCluster]:
    faunad = _bin_dir() / "faunad"
    if not os.access(faunad, os.X_OK):
        pytest.skip(f"no faunad at {faunad}")
    c = FaunaCluster(faunad.parent, tmp_path, cluster_extra=("audit_interval_s = 5",))
    try:
        for n in c.names:
            c.start(n)
        c.wait_ready()
        yield c
    finally:
        c.shutdown()


def wait_until(what: str, check: Callable[[], bool], timeout_s: float, driver: object) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"the page did not show {what} within {timeout_s} s; it shows:\n"
                         f"{driver.find_element('tag name', 'body').text}")  # type: ignore[attr-defined]


def rows(driver: object) -> dict[str, dict[str, str]]:
    """Each member row's data attributes, by node name (read in one script: the page redraws)."""
    return driver.execute_script(  # type: ignore[attr-defined]
        "return Object.fromEntries([...document.querySelectorAll('#nodes tr')].map(r => [r.dataset.node, {...r.dataset}]))")


def alerts(driver: object) -> list[str]:
    return driver.execute_script(  # type: ignore[attr-defined]
        "return [...document.querySelectorAll('#alerts li')].map(li => (li.dataset.level || 'none') + ': ' + li.textContent)")


def tamper(cluster: FaunaCluster, name: str, key: bytes) -> None:
    """Flips the last bit of `key`'s stored record in `name`'s (stopped) `kv` column family."""
    ldb = shutil.which("ldb")
    assert ldb, "ldb (rocksdb-tools) is missing: run tools/setup"
    db = str(cluster.run_dir / "data" / name / "db")
    hex_key = "0x" + DATA_GROUP + key.hex().upper()
    got = subprocess.run([ldb, f"--db={db}", "--column_family=kv", "--hex", "get", hex_key],
                         capture_output=True, text=True, timeout=30)
    value = got.stdout.strip()
    assert got.returncode == 0 and value.startswith("0x"), f"ldb get: {got.stdout}{got.stderr}"
    changed = value[:-2] + f"{int(value[-2:], 16) ^ 1:02X}"
    put = subprocess.run([ldb, f"--db={db}", "--column_family=kv", "--hex", "put", hex_key, changed],
                         capture_output=True, text=True, timeout=30)
    assert put.returncode == 0, f"ldb put: {put.stdout}{put.stderr}"


def test_status_page_shows_members_leader_change_and_tampered_node(page_cluster: FaunaCluster, browser: object) -> None:
    c, driver = page_cluster, browser
    shots = os.environ.get("FAUNA_STATUS_SCREENSHOTS")
    leader = c.wait_ready()
    page = next(n for n in c.names if n != leader)
    url = f"http://{c.metrics_addr[page]}/"

    # Load, so the charts have something to draw: writes through one client, bounded in time.
    stop = threading.Event()

    def load() -> None:
        with c.client(timeout=5.0) as client:
            deadline = time.monotonic() + 60
            i = 0
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    client.put(b"page/%d" % (i % 500), b"v%d" % i)
                    if i % 4 == 0:
                        client.get(b"page/%d" % (i % 500))
                except fauna.FaunaError:
                    time.sleep(0.05)
                i += 1

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    try:
        # The leader's page first: it answers the writes, so both charts have data there.
        driver.get(f"http://{c.metrics_addr[leader]}/")  # type: ignore[attr-defined]

        def three_members_one_leader() -> bool:
            r = rows(driver)
            return (sorted(r) == sorted(c.names) and all(x["reachable"] == "true" for x in r.values())
                    and [n for n, x in r.items() if x["role"] == "leader"] == [leader])

        wait_until(f"three reachable members with leader {leader}", three_members_one_leader, 20, driver)

        def charts_drawn() -> bool:
            counts = driver.execute_script(  # type: ignore[attr-defined]
                "return ['commits (cluster)', 'writes answered here', 'write p99'].map(s => "
                "[...document.querySelectorAll(`polyline[data-series='${s}']`)]"
                ".reduce((n, p) => n + p.getAttribute('points').split(' ').length, 0))")
            return all(n >= 3 for n in counts)

        wait_until("throughput and latency charts with data", charts_drawn, 30, driver)
        if shots:
            time.sleep(8)  # a few more samples in the charts
            driver.save_screenshot(str(Path(shots) / "status-page.png"))  # type: ignore[attr-defined]

        # A follower's page from here on: it outlives the leader.
        driver.get(url)  # type: ignore[attr-defined]
        wait_until(f"three reachable members with leader {leader}", three_members_one_leader, 20, driver)
        assert driver.find_element("id", "served-by").text == page  # type: ignore[attr-defined]
        wait_until("a clean audit", lambda: driver.find_element("id", "audit").get_attribute("data-clean") == "true",  # type: ignore[attr-defined]
                   30, driver)
        assert all(x["rootAgrees"] == "true" and x["digestAgrees"] == "true" for x in rows(driver).values()), rows(driver)
    finally:
        stop.set()
        loader.join(10)

    # The leader dies: the page shows it unreachable and the one new leader.
    c.kill(leader)
    new_leader: list[str] = []

    def new_leader_shown() -> bool:
        r = rows(driver)
        leaders = [n for n, x in r.items() if x["role"] == "leader"]
        if r.get(leader, {}).get("reachable") == "false" and len(leaders) == 1 and leaders[0] != leader:
            new_leader[:] = leaders
            return True
        return False

    wait_until(f"{leader} unreachable and a new leader", new_leader_shown, 30, driver)
    assert any(a.startswith("critical:") and f"{leader} (" in a and "does not answer" in a for a in alerts(driver)), alerts(driver)
    assert new_leader[0] == c.wait_for_leader(avoid=leader)
    c.start(leader)
    c.wait_ready()
    wait_until(f"{leader} back", lambda: rows(driver).get(leader, {}).get("reachable") == "true", 30, driver)

    # One node's state is changed at rest: the next audit flags its digest, and only its.
    target = next(n for n in c.names if n != page)
    with c.client(timeout=10.0) as client:
        client.put(b"page/tampered", b"the value every node agreed on")
    c.wait_caught_up()
    c.stop(target)
    tamper(c, target, b"page/tampered")
    c.start(target)
    c.wait_ready()

    def digest_flagged() -> bool:
        r = rows(driver)
        return (r.get(target, {}).get("digestAgrees") == "false"
                and all(x["digestAgrees"] == "true" for n, x in r.items() if n != target))

    wait_until(f"{target}'s state digest flagged", digest_flagged, 40, driver)
    assert any(a.startswith("critical:") and f"{target}'s state digest differs" in a for a in alerts(driver)), alerts(driver)
    assert driver.find_element("id", "summary").get_attribute("data-level") == "critical"  # type: ignore[attr-defined]
    assert driver.find_element("id", "audit").get_attribute("data-clean") == "false"  # type: ignore[attr-defined]
    if shots:
        driver.save_screenshot(str(Path(shots) / "status-page-alert.png"))  # type: ignore[attr-defined]


def test_status_json_and_unknown_path(page_cluster: FaunaCluster) -> None:
    """`/status.json` is what the page draws; an unknown path is a 404 naming the pages."""
    import json
    import urllib.error
    import urllib.request

    c = page_cluster
    addr = c.metrics_addr["n1"]
    deadline = time.monotonic() + 20
    data: Optional[dict[str, object]] = None
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://{addr}/status.json", timeout=5) as r:
            assert r.headers["Content-Type"] == "application/json"
            data = json.loads(r.read())
        if data and len(data["nodes"]) == 3 and data.get("leader"):  # type: ignore[arg-type]
            break
        time.sleep(0.5)
    assert data is not None and data["cluster"] == "pytest" and data["node"] == "n1", data
    assert data["leader"] == c.wait_for_leader() and data["auditIntervalSeconds"] == 5, data
    with urllib.request.urlopen(f"http://{addr}/", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/html") and b"status.json" in r.read()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://{addr}/nope", timeout=5)
    assert e.value.code == 404 and b"/status.json" in e.value.read()
